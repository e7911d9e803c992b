"""Load cases of the segment (mechanics.segment_load_case): the paper's axial load, standing (a
follower load) and the motions, a pure moment with a dead or follower preload (issue 22, loads)."""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from conftest import coarse
from spinefe.common.errors import ConfigError
from spinefe.common.motions import MOTIONS
from spinefe.config.loading import parse_config
from spinefe.config.plans import config_plan
from spinefe.config.sections import Config
from spinefe.mechanics.materials import material_fields
from spinefe.mechanics.rom import rotation_of_L4
from spinefe.mechanics.scenarios import compare_scenarios
from spinefe.mechanics.segment import solve_segment

pytestmark = pytest.mark.parallel


def _mechanics(**keys):
    data = coarse().model_dump(mode="json")
    data["mechanics"].update(keys)
    return parse_config(data).mechanics


def test_the_load_case_is_validated_and_absent_from_dumps_at_its_default():
    for key in ("load_case", "preload"):
        assert key not in Config().model_dump(mode="json")["mechanics"]
    assert "preload" not in Config().model_dump(mode="json")["rom"]
    data = Config().model_dump(mode="json")
    data["mechanics"]["load_case"] = "twist"
    with pytest.raises(ConfigError, match="mechanics.load_case: Input should be 'axial', "
                                          "'standing', 'flexion'"):
        parse_config(data)


@pytest.mark.parametrize("motion", ["flexion", "lateral_bending_left", "axial_rotation_left"])
def test_a_motion_turns_L4_about_its_axis_and_adds_no_force(default_segment, motion):
    """The moment adds no net force (the reaction is the 500 N dead preload, 1e-6) and L4 turns
    in the motion's direction (linear model)."""
    mechanics = _mechanics(load_case=motion, preload="dead")
    fields = material_fields(default_segment, Config().materials, Config().lesion, "implanted")
    sol = solve_segment(default_segment, fields, mechanics)
    np.testing.assert_allclose(sol.reaction_N, [0.0, 0.0, 500.0], atol=5e-4)
    rotation = rotation_of_L4(default_segment, sol.u)
    along = rotation @ np.asarray(MOTIONS[motion])
    assert along > 0.0 and along > 3.0 * np.linalg.norm(
        rotation - along * np.asarray(MOTIONS[motion]))


def test_the_comparison_under_a_motion_has_no_paper_peaks(default_segment, shared_tmp):
    cfg = coarse()
    mechanics = _mechanics(load_case="extension", moment_Nm=5.0)
    _, comp, _ = compare_scenarios(default_segment, shared_tmp, materials=cfg.materials,
                                   lesion=cfg.lesion, mechanics=mechanics,
                                   seeds=config_plan(cfg), capsule=cfg.seed_capsule,
                                   config_hash="test", fields=False)
    assert comp["load_case"] == "extension"
    assert "paper_peak" not in comp["indicators"]["L4.cortical_endplates"]["tumour"]
    assert set(comp["trends_hold"]) == {"max", "p99"}
    if MPI.COMM_WORLD.rank == 0:
        text = (shared_tmp / "comparison.md").read_text()
        assert "under extension, 5 N m with a 500 N follower preload" in text
        assert "paper, peak" not in text


@pytest.mark.serial_only
def test_nonlinear_scenarios_follow_one_load_path(default_segment, tmp_path):
    """The nonlinear comparison without its linear companion (`linear=False`): the tumour and
    implanted scenarios take the healthy one's load steps, each started from the scenario
    before (`guided`), and no out/linear/ is written. (Toy size: the neo-Hookean disc without
    ligaments and contact, the axial load in two steps.)"""
    import json

    from spinefe.config.sections import Nonlinear

    cfg = coarse()
    records, comp, _ = compare_scenarios(
        default_segment, tmp_path, materials=cfg.materials, lesion=cfg.lesion,
        mechanics=_mechanics(), seeds=config_plan(cfg),
        capsule=cfg.seed_capsule, config_hash="test",
        nonlinear=Nonlinear(ligaments=False, contact=False, load_steps=2), fields=False,
        linear=False)
    steps = {s: r.nonlinear["newton"] for s, r in records.items()}
    assert [x["guided"] for x in steps["healthy"]] == [False, False]
    for scenario in ("tumour", "implanted"):
        assert [x["load_factor"] for x in steps[scenario]] == [0.5, 1.0]
        assert all(x["guided"] for x in steps[scenario])
    assert not (tmp_path / "linear").exists() and "linear" not in comp
    summary = json.loads((tmp_path / "implanted" / "summary.json").read_text())
    assert summary["nonlinear"]["newton"][0]["guided"] is True


def test_standing_is_the_load_normal_to_the_endplate(default_segment):
    """Standing: 500 N as a pressure normal to L4.superior; in a linear solve along its
    reference normal, so the reaction is 500 N along the surface's area-weighted normal (the
    endplate is tilted by the lordosis, so not along z). Tolerance 1e-3 N (CG at 1e-8)."""
    import ufl
    from dolfinx import fem

    from spinefe.common import regions as R

    model = default_segment
    sol = solve_segment(model, material_fields(model, Config().materials, Config().lesion,
                                               "healthy"), _mechanics(load_case="standing"))
    ds = ufl.Measure("ds", domain=model.mesh, subdomain_data=model.facet_tags)
    n = ufl.FacetNormal(model.mesh)
    tag = model.tag(R.L4_SUPERIOR)
    normal = np.array([model.comm.allreduce(fem.assemble_scalar(fem.form(n[i] * ds(tag))),
                                            op=MPI.SUM) for i in range(3)])
    normal /= np.linalg.norm(normal)
    assert normal[2] > 0.99 and abs(normal[1]) > 1e-3  # tilted
    np.testing.assert_allclose(sol.reaction_N, 500.0 * normal, atol=1e-3)


def test_the_follower_path_offset_is_a_moment_of_the_preload(default_segment):
    """A follower preload P moved d posterior of the endplate's centroid adds the moment -P d
    about x (an extension moment) to the motion's; a dead preload takes no offset."""
    from spinefe.mechanics.segment import segment_load

    load = segment_load(default_segment, 500.0, "follower", motion="flexion", moment_Nm=7.5,
                        follower_offset_mm=4.0)
    assert load.follower_N == 500.0 and load.force_N == (0.0, 0.0, 0.0)
    np.testing.assert_allclose(load.moments[0][1], (7500.0 - 2000.0, 0.0, 0.0))
    dead = segment_load(default_segment, 500.0, "dead", follower_offset_mm=4.0)
    assert dead.follower_N == 0.0 and dead.moments == ()
    np.testing.assert_allclose(dead.force_N, (0.0, 0.0, -500.0))
