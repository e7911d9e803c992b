"""The dual optimisation: design space, objectives and constraints, the open question's
analysis, the search on MPI sub-communicators and `spinefe optimise`."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

import spinefe  # noqa: F401  (first: spinefe/__init__ loads the PETSc of DOLFINx)
from spinefe.config.sections import Config
from spinefe.config.loading import parse_config
from spinefe.common.errors import ConfigError
from spinefe.geometry.layout import segment_layout
from spinefe.geometry.segment import segment_geometry
from spinefe.common.errors import PlanningError
from spinefe.planning.optimisation import (Design, converged, decode, design_seeds, design_values,
                                  n_genes, recommended, stopped, support_uniformity)
from tests.conftest import TEST_H, coarse, spinefe_cmd

CFG = Config()
OPT = CFG.optimisation
LAYOUT = segment_layout(segment_geometry(CFG))
SITE = (LAYOUT, CFG.lesion, CFG.seed_capsule)  # what a design's seeds are planned in
N_GENES = n_genes(OPT)


def test_decode_covers_every_choice_and_clips():
    ends = [decode(np.full(N_GENES, v), OPT) for v in (0.0, 1.0, 1.7, -3.0)]
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
    assert decode(x, OPT) == decode(x + 1e-6, OPT)
    assert hash(decode(x, OPT)) == hash(decode(x + 1e-6, OPT))


def test_a_design_plans_checked_seeds_along_its_needles():
    design = Design(0.6, "bilateral", 3, 8.0, 0.8, 0.45, 0.5, 2)
    needles, positions, directions, activities = design_seeds(*SITE, design)
    assert len(needles) == 6 and len(positions) == 12 and set(activities) == {0.6}
    np.testing.assert_allclose(np.linalg.norm(directions, axis=1), 1.0)
    with pytest.raises(PlanningError, match="spinal canal"):
        design_seeds(*SITE, Design(0.6, "unilateral_left", 2, 8.0, 0.8, 0.2, 0.5, 2))


def _record(d90, v100, v150, canal, cortical, lesion):
    return {"dose": {"target": {"D90_Gy": d90, "V100_percent": v100, "V150_percent": v150,
                                "V200_percent": v150 / 3},
                     "organ_at_risk": {"D0.1cc_Gy": canal}},
            "mechanics": {"relative_to_tumour": {"L4.cortical_endplates": {"max": cortical},
                                                 "lesion_apparent_modulus_MPa": lesion}}}


def test_hybrid_plans_alternate_activities_between_needles():
    hybrid = OPT.model_copy(update={"hybrid": True})
    assert n_genes(hybrid) == 9
    x = np.array([0.0, 0.9, 0.9, 0.6, 0.8, 0.4, 0.6, 0.3, 0.99])  # bilateral, 4 per side
    design = decode(x, hybrid)
    assert (design.activity_mCi, design.hybrid_activity_mCi) == (0.3, 0.8)
    _, positions, _, activities = design_seeds(*SITE, design)
    assert sorted(set(activities)) == [0.3, 0.8] and len(activities) == len(positions)
    assert [design.needle_activity(i) for i in range(8)] == [0.3, 0.8] * 4
    # The same activity twice, or one needle per side, is a plain plan.
    assert decode(np.r_[x[:8], 0.0], hybrid).hybrid_activity_mCi is None
    assert decode(np.r_[x[:2], 0.0, x[3:]], hybrid).hybrid_activity_mCi is None


def test_activities_outside_the_seed_range_are_refused():
    data = Config().model_dump(mode="json")
    data["optimisation"]["activities_mCi"] = [0.3, 3.0]
    with pytest.raises(ConfigError, match="optimisation.activities_mCi"):
        parse_config(data)


def test_objectives_and_constraints():
    design = Design(0.6, "bilateral", 3, 8.0, 0.8, 0.45, 0.5, 2)
    limits = OPT.model_copy(update={
        "v150_max_percent": 60.0, "v200_max_percent": 30.0, "canal_d01cc_max_Gy": 100.0})
    F, G = design_values(design, _record(165.0, 95.0, 45.0, 80.0, 0.998, 1.02), limits, 150.0)
    assert F == pytest.approx([-95.0, 0.998, -1.02, 6.0])
    assert G == pytest.approx([-0.1, -1.0, -0.25, -0.5, -0.2])  # all met
    _, G = design_values(design, _record(120.0, 80.0, 70.0, 130.0, 0.999, 1.01), limits, 150.0)
    assert G == pytest.approx([0.2, -1.0, 1 / 6, -2 / 9, 0.3])  # D90, V150 and canal violated
    F, G = design_values(design, None, limits, 150.0)  # not a valid plan
    assert min(G) > 0 and F[3] == 6.0
    assert len(design_values(design, None, OPT, 150.0)[1]) == 3  # V150 <= 60 % by default
    unlimited = OPT.model_copy(update={"v150_max_percent": 100.0})
    assert len(design_values(design, None, unlimited, 150.0)[1]) == 2


def test_recommended_plans_follow_the_clinical_reading():
    front = [{"cortical_max_ratio": 0.997, "V100_percent": 92.0, "needles": 8},
             {"cortical_max_ratio": 0.999, "V100_percent": 99.0, "needles": 6},
             {"cortical_max_ratio": 0.998, "V100_percent": 99.0, "needles": 4}]
    picks = recommended(front)
    assert picks["mechanical"] is front[0] and picks["dosimetric"] is front[2]
    assert recommended([]) == {}


def test_the_front_holds_every_feasible_non_dominated_plan():
    from spinefe.planning.optimisation import archive_front

    a, b, c, d = (Design(0.6, "bilateral", n, 8.0, 0.8, 0.45, 0.5, 2) for n in (1, 2, 3, 4))
    archive = {a: _record(160.0, 95.0, 40.0, 50.0, 0.998, 1.01),   # few needles
               b: _record(160.0, 97.0, 40.0, 50.0, 0.997, 1.02),   # more coverage, support
               c: _record(160.0, 96.0, 40.0, 50.0, 0.9975, 1.015),  # dominated by b
               d: _record(140.0, 99.0, 40.0, 50.0, 0.99, 1.05),    # misses D90
               Design(0.6, "unilateral_left", 2, 8.0, 0.8, 0.2, 0.5, 2): None}
    values = {d: design_values(d, record, OPT, 150.0) for d, record in archive.items()}
    assert archive_front(values) == [b, a]  # sorted by -V100


def test_the_stopping_rule_on_the_hypervolume():
    """The search stops once the front's hypervolume grew by less than 1 % over 10
    generations: not while it is 0 (no feasible front) or has fewer generations than the
    window, not on 1 % or more; percent 0 never stops; `stopped` tells the rule from the
    budget."""
    def history(values):
        return [{"generation": g + 1, "evaluations": 44 * (g + 1), "hypervolume": v}
                for g, v in enumerate(values)]

    rising = history([0.0] * 5 + [0.05 * (1 + 0.002 * g) for g in range(11)])  # +2 % over 10
    flat = history([0.0] * 5 + [0.05 * (1 + 0.0008 * g) for g in range(11)])  # +0.8 % over 10
    assert not converged(rising, 1.0, 10) and converged(flat, 1.0, 10)
    assert not converged(flat[:10], 1.0, 10) and not converged(history([0.0] * 20), 1.0, 10)
    assert not converged(flat, 0.0, 10) and converged(rising, 2.5, 10)
    assert converged(rising, 1.0, 3)  # +0.6 % over the last 3
    opt = OPT.model_copy(update={"generations": 50})
    assert stopped(flat, opt) == {"generation": 16, "evaluations": 704, "by": "rule"}
    assert stopped(rising, opt)["by"] == "budget"  # stopped by the budget
    assert stopped(flat, opt.model_copy(update={"generations": 16}))["by"] == "budget"
    assert stopped(flat, opt.model_copy(update={"stop_hypervolume_percent": 0.0}))["by"] == \
        "budget"


def _row(activity, v100, cov, seeds):
    return {"valid": True, "D90_Gy": 160.0, "V100_percent": v100, "activity_mCi": activity,
            "lesion_bone_sed_cov_ratio": cov, "lesion_modulus_ratio": 1.0 + seeds / 1000,
            "seeds": seeds}


def test_support_uniformity_compares_the_families_at_equal_coverage():
    rows = [_row(0.3, 95.5, 0.98, 24), _row(0.3, 96.5, 0.97, 26), _row(0.8, 95.2, 0.99, 10),
            _row(0.8, 99.0, 0.995, 12), _row(0.3, 99.5, 1.01, 30), _row(0.5, 99.1, 0.9, 16),
            _row(0.8, 90.0, 0.5, 8) | {"D90_Gy": 140.0}]  # below the prescription: left out
    out = support_uniformity(rows, 150.0)
    assert out["bins_compared"] == 2 and out["bins_dense_more_uniform"] == 1
    low = out["bins"][0]
    assert low["V100_percent"] == [94.0, 96.0]
    assert low["dense_plans"] == 1 and low["sparse_plans"] == 1
    assert low["dense_lesion_bone_sed_cov_ratio"] == 0.98
    assert out["bins"][1]["dense_seeds"] == 30 and out["bins"][1]["sparse_seeds"] == 12


def search_config(**optimisation):
    """The coarse test segment, searched at its own resolution."""
    return coarse(optimisation={"mesh_size_mm": TEST_H, **optimisation})


#: Three designs and a repeat: bilateral 2 and 3 needles per side, a unilateral design that
#: crosses the canal (not a valid plan).
POPULATION = np.array([[0.9, 0.9, 0.3, 0.6, 0.8, 0.4, 0.6, 0.3],
                       [0.1, 0.9, 0.6, 0.2, 0.7, 0.5, 0.5, 0.5],
                       [0.5, 0.1, 0.3, 0.6, 0.8, 0.0, 0.6, 0.3],
                       [0.9, 0.9, 0.3, 0.6, 0.8, 0.4, 0.6, 0.3]])


@pytest.mark.parallel
def test_search_evaluates_on_subcommunicators(cache_dir):
    """Groups of 1 rank and one group of all ranks give the same objectives (the 1-rank vs
    2-rank check under mpiexec -n 2; CG to rtol 1e-5 keeps the ratios to 1e-5); every rank holds
    the same archive; each distinct design is evaluated once, by one group (a repeat in the
    population or a later one comes from the archive); the invalid design violates its
    constraint."""
    from mpi4py import MPI

    from spinefe.planning.optimisation import PlanSearch

    comm = MPI.COMM_WORLD
    results = []
    for k in sorted({1, comm.size}):
        search = PlanSearch(search_config(ranks_per_evaluation=k), comm, cache_dir)
        evaluated = []  # designs this rank's group evaluated
        evaluate = search._evaluate
        search._evaluate = (lambda designs, seen=evaluated, run=evaluate:
                            seen.extend(designs) or run(designs))
        F, G = search(POPULATION)
        assert search(POPULATION[::-1])[0].tolist() == F[::-1].tolist()  # from the archive
        by_groups = [d for part in comm.allgather(evaluated if search.group.rank == 0 else [])
                     for d in part]
        assert len(by_groups) == len(set(by_groups)) == 3  # each distinct design once, in one group
        assert len(search.archive) == 3 and search.archive[decode(POPULATION[2], OPT)] is None
        assert all(np.array_equal(F, f) for f in comm.allgather(F))
        results.append((F, G))
    (F, G) = results[0]
    assert np.array_equal(F[0], F[3]) and G[2, 1] > 0 and (G[[0, 1, 3], 1] < 0).all()
    assert F[0, 1] < 1.0 and F[0, 2] < -1.0  # seeds lower the cortical peak, stiffen the lesion
    for F2, G2 in results[1:]:
        np.testing.assert_allclose(F2, F, rtol=1e-5)
        np.testing.assert_allclose(G2, G, rtol=1e-5, atol=1e-9)


def _optimise_args(tmp_path) -> list[str]:
    from spinefe.config.toml import config_toml

    cfg = tmp_path / "segment.toml"
    cfg.write_text(config_toml(search_config(population=6, generations=2,
                                             v150_max_percent=100.0)))
    return ["optimise", str(cfg), "--out", str(tmp_path / "out"), "--prescription-Gy", "60"]


@pytest.mark.serial_only
def test_optimise_command(tmp_path, cli_env):
    """`spinefe optimise` on 2 ranks (without the conforming verification, which
    `test_optimise_verifies_the_recommended_plans` runs): the files; a rerun resumes from the
    checkpoint to the same front without evaluating; a rerun with another configuration is
    refused; a group size that does not divide the ranks fails on every rank with the key named
    (exit 2, no hang)."""
    args = [*_optimise_args(tmp_path), "--no-verify"]
    out = tmp_path / "out"
    run = subprocess.run(spinefe_cmd(*args, ranks=2), env=cli_env, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr
    summary = json.loads((out / "summary.json").read_text())
    for name in ("evaluations.csv", "pareto.csv", "pareto.png", "uniformity.png",
                 "plans/recommended_mechanical.toml", "plans/front_00.dcm"):
        assert (out / name).is_file(), name
    assert summary["ranks"] == 2 and len(summary["history"]) == 2 and summary["front"]
    assert summary["stopped"] == {"generation": 2, "evaluations": summary["evaluations"],
                                  "by": "budget"}
    rerun = subprocess.run(spinefe_cmd(*args, ranks=2), env=cli_env, capture_output=True,
                           text=True)
    assert rerun.returncode == 0, rerun.stderr
    again = json.loads((out / "summary.json").read_text())
    assert again["front"] == summary["front"] and again["evaluations"] == summary["evaluations"]
    changed = subprocess.run(spinefe_cmd(*args, "--hybrid", ranks=2),
                             env=cli_env, capture_output=True, text=True)
    assert changed.returncode == 2 and "belongs to another search" in changed.stderr
    bad = subprocess.run(spinefe_cmd(*args, "--ranks-per-evaluation", "3", "--out",
                                     str(tmp_path / "other"), ranks=2),
                         env=cli_env, capture_output=True, text=True)
    assert bad.returncode == 2 and "optimisation.ranks_per_evaluation" in bad.stderr


@pytest.mark.validation
@pytest.mark.serial_only
def test_optimise_verifies_the_recommended_plans(tmp_path, cli_env):
    """`spinefe optimise` on 2 ranks re-evaluates its recommended plans with conforming (meshed)
    capsules: the seeds relieve the cortex and stiffen the lesion in both models, and the
    embedded cortical ratio is within 0.02 of the conforming one."""
    out = tmp_path / "out"
    run = subprocess.run(spinefe_cmd(*_optimise_args(tmp_path), ranks=2, timeout_s=900),
                         env=cli_env, capture_output=True, text=True)  # remeshes the capsules
    assert run.returncode == 0, run.stderr
    check = json.loads((out / "summary.json").read_text())["verification"]["mechanical"]
    assert check["lesion_modulus_ratio"]["conforming"] > 1.0
    assert check["cortical_max_ratio"]["conforming"] < 1.0  # seeds relieve the cortex
    assert check["cortical_max_ratio"]["embedded"] < 1.0
    assert check["cortical_max_ratio"]["conforming"] == pytest.approx(
        check["cortical_max_ratio"]["embedded"], abs=0.02)
