"""The design space of the dual optimisation: decoding, plans, objectives and constraints."""

from __future__ import annotations

import numpy as np
import pytest

import dolfinx_solver  # noqa: F401  (before anything that imports mpi4py)
from spinefe.config import Config
from spinefe.layout import segment_layout
from spinefe.needles import PlanningError
from spinefe.optimisation import (N_GENES, Design, Goals, decode, design_seeds, design_values,
                                  recommended)

CFG = Config()
LAYOUT = segment_layout(CFG)


def test_decode_covers_every_choice_and_clips():
    ends = [decode(np.full(N_GENES, v)) for v in (0.0, 1.0, 1.7, -3.0)]
    assert ends[0] == ends[3] and ends[1] == ends[2]
    lo, hi = ends[0], ends[1]
    assert (lo.activity_mCi, hi.activity_mCi) == (0.3, 0.8)
    assert (lo.access, hi.access) == ("unilateral_left", "bilateral")
    assert (lo.needles_per_side, hi.needles_per_side) == (1, 4)
    assert (lo.spacing_mm, hi.spacing_mm) == (5.0, 10.0)
    assert (lo.seeds_per_needle, hi.seeds_per_needle) == (1, 6)
    assert hi.needles == 8 and lo.needles == 1
    # Genes that plan the same seeds decode to equal (hashable) designs.
    x = np.linspace(0.1, 0.9, N_GENES)
    assert decode(x) == decode(x + 1e-6) and hash(decode(x)) == hash(decode(x + 1e-6))


def test_a_design_plans_checked_seeds_along_its_needles():
    design = Design(0.6, "bilateral", 3, 8.0, 0.8, 0.45, 0.5, 2)
    needles, positions, directions = design_seeds(LAYOUT, CFG, design)
    assert len(needles) == 6 and len(positions) == 12
    np.testing.assert_allclose(np.linalg.norm(directions, axis=1), 1.0)
    with pytest.raises(PlanningError, match="spinal canal"):
        design_seeds(LAYOUT, CFG, Design(0.6, "unilateral_left", 2, 8.0, 0.8, 0.2, 0.5, 2))


def _record(d90, v100, v150, canal, cortical, lesion):
    return {"dose": {"target": {"D90_Gy": d90, "V100_percent": v100, "V150_percent": v150},
                     "organ_at_risk": {"D0.1cc_Gy": canal}},
            "mechanics": {"relative_to_tumour": {"L4.cortical_endplates": {"max": cortical},
                                                 "lesion_apparent_modulus_MPa": lesion}}}


def test_objectives_and_constraints():
    design = Design(0.6, "bilateral", 3, 8.0, 0.8, 0.45, 0.5, 2)
    goals = Goals(150.0, v150_max_percent=60.0, canal_d01cc_max_Gy=100.0)
    F, G = design_values(design, _record(165.0, 95.0, 45.0, 80.0, 0.998, 1.02), goals)
    assert F == pytest.approx([-95.0, 0.998, -1.02, 6.0])
    assert G == pytest.approx([-0.1, -1.0, -0.25, -0.2])  # all met
    _, G = design_values(design, _record(120.0, 80.0, 70.0, 130.0, 0.999, 1.01), goals)
    assert G == pytest.approx([0.2, -1.0, 1 / 6, 0.3])  # D90, V150 and canal violated
    F, G = design_values(design, None, goals)  # not a valid plan
    assert min(G) > 0 and F[3] == 6.0
    assert len(design_values(design, None, Goals(150.0))[1]) == 2


def test_recommended_plans_follow_the_clinical_reading():
    front = [{"cortical_max_ratio": 0.997, "V100_percent": 92.0, "needles": 8},
             {"cortical_max_ratio": 0.999, "V100_percent": 99.0, "needles": 6},
             {"cortical_max_ratio": 0.998, "V100_percent": 99.0, "needles": 4}]
    picks = recommended(front)
    assert picks["mechanical"] is front[0] and picks["dosimetric"] is front[2]
    assert recommended([]) == {}
