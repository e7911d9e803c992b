"""Plan evaluation: embedded seeds against conforming ones, bounds, 1 vs 2 ranks, the CLI."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from mpi4py import MPI

from dosimetry import Plan, write_plan
from tests.conftest import coarse, seedless, spinefe_cmd

CORTICAL = "L4.cortical_endplates"


@pytest.fixture(scope="module")
def plan():
    """Bilateral sparse loading at 0.8 mCi: 11 seeds on six needles."""
    from spinefe.geometry.layout import segment_layout
    from spinefe.geometry.segment import segment_geometry
    from spinefe.planning.patterns import plan_pattern

    cfg = seedless()
    return plan_pattern(segment_layout(segment_geometry(cfg)), cfg.lesion, cfg.seed_capsule,
                        cfg.dosimetry, "bilateral", "sparse", 0.8, 150.0)[0]


def _evaluator(model, **options):
    """The PlanEvaluator of the seedless config's sections on `model`."""
    from spinefe.geometry.layout import segment_layout
    from spinefe.geometry.segment import segment_geometry
    from spinefe.planning.evaluation import PlanEvaluator

    cfg = seedless()
    return PlanEvaluator(model, segment_layout(segment_geometry(cfg)), materials=cfg.materials,
                         lesion=cfg.lesion, mechanics=cfg.mechanics, capsule=cfg.seed_capsule,
                         dosimetry=cfg.dosimetry, **options)


def _scalars(mech: dict) -> dict:
    return {"cortical max": mech[CORTICAL]["max"], "cortical p99": mech[CORTICAL]["p99"],
            "cortical p95": mech[CORTICAL]["p95"],
            "lesion modulus": mech["lesion"]["apparent_modulus_MPa"],
            "lesion energy": mech["lesion"]["strain_energy_mJ"],
            "axial stiffness": mech["axial_stiffness_N_mm"]}


@pytest.mark.parallel
def test_without_seeds_embedded_equals_conforming(seedless_model, cache_dir):
    """No seed: the embedded model is the tumour model, and so is the conforming one (the same
    mesh; CG + GAMG at rtol 1e-8 against the Cholesky solve)."""
    from spinefe.planning.evaluation import evaluate_conforming

    cfg = seedless()
    ev = _evaluator(seedless_model)
    none = Plan((), name="no seeds")
    embedded = ev.solve(none)
    conforming = evaluate_conforming(cfg, none, MPI.COMM_WORLD, cache_dir).mechanics
    for key, value in _scalars(conforming).items():
        assert _scalars(embedded)[key] == pytest.approx(value, rel=1e-6), key
        assert _scalars(ev.tumour)[key] == pytest.approx(value, rel=1e-6), key
    assert embedded["solver"]["iterations"] <= 1


@pytest.mark.serial_only
def test_embedded_bounds_and_conforming_reference(seedless_model, default_model):
    """The 16 configured seeds, embedded in the seedless mesh and meshed in the default one.
    On one mesh the stiffer rule gives the stiffer segment (compliance is monotone in the
    moduli): tumour < reuss <= mori_tanaka <= voigt. The conforming lesion modulus lies between
    the Reuss and Voigt ones, close to Mori-Tanaka's; so do the cortical percentiles."""
    from spinefe.config.plans import config_plan
    from spinefe.mechanics.segment import load_bearing
    from spinefe.planning.evaluation import conforming_metrics

    cfg = coarse()
    plan = config_plan(cfg)
    results = {rule: _evaluator(seedless_model, rule=rule, factorise_each_plan=rule == "voigt")
               for rule in ("reuss", "mori_tanaka", "voigt")}
    tumour = results["reuss"].tumour
    mech = {rule: ev.evaluate(plan).mechanics for rule, ev in results.items()}
    stiffness = [mech[r]["axial_stiffness_N_mm"] for r in ("reuss", "mori_tanaka", "voigt")]
    assert tumour["axial_stiffness_N_mm"] < stiffness[0] <= stiffness[1] <= stiffness[2]
    modulus = {r: m["lesion"]["apparent_modulus_MPa"] for r, m in mech.items()}
    conforming = conforming_metrics(load_bearing(default_model), cfg.materials, cfg.lesion,
                                    cfg.mechanics)
    reference = conforming["lesion"]["apparent_modulus_MPa"]
    assert modulus["reuss"] <= reference <= modulus["voigt"]
    assert modulus["mori_tanaka"] == pytest.approx(reference, rel=0.05)
    for stat in ("p95", "p99"):
        assert mech["mori_tanaka"][CORTICAL][stat] == pytest.approx(
            conforming[CORTICAL][stat], rel=0.02), stat


@pytest.mark.serial_only
def test_evaluation_record(seedless_model, plan):
    """One evaluation carries the dose and the mechanics the optimiser needs."""
    evaluator = _evaluator(seedless_model)
    record = evaluator.evaluate(plan).record()
    assert record["seeds"] == 11 and record["solver"]["dofs"] > 0
    assert record["dose"]["target"]["D90_Gy"] >= 150.0 * 0.98
    assert {"D0.1cc_Gy", "Dmax_Gy"} <= set(record["dose"]["organ_at_risk"])
    relative = record["mechanics"]["relative_to_tumour"]
    assert set(relative[CORTICAL]) == {"max", "p95", "p99", "mean"}
    assert relative[CORTICAL]["p99"] < 1.0  # titanium stiffens the lesion, relieving the shell
    # The support uniformity compares the same bone: the tumour's CoV without the plan's
    # titanium cells (the two code paths of the tumour's own CoV agree to rounding).
    probe, tumour = evaluator.mechanics, evaluator.tumour["lesion"]
    assert probe.bone_sed_cov(evaluator.tumour_sed)[1] == pytest.approx(tumour["bone_sed_cov"],
                                                                        rel=1e-12)
    titanium = evaluator.hosts[evaluator.embed(plan) > 0.0]
    bone_volume, same_bone = probe.bone_sed_cov(evaluator.tumour_sed, titanium)
    lesion = record["mechanics"]["lesion"]
    assert lesion["bone_volume_mm3"] == pytest.approx(bone_volume, rel=1e-12)
    assert bone_volume < tumour["bone_volume_mm3"]
    assert relative["lesion_bone_sed_cov"] == pytest.approx(lesion["bone_sed_cov"] / same_bone,
                                                            rel=1e-12)


@pytest.mark.parallel
def test_plans_evaluated_together_equal_plans_evaluated_alone(seedless_model, plan):
    """evaluate_many (the plans' CG solves in lockstep on one factorisation) gives every plan
    the record `evaluate` gives it, whatever was evaluated before: the same dose, the same CG
    iterations, the mechanics to 1e-9 (round-off in the CG iterates; the search's objectives
    are these metrics); a plan the planner refuses takes its PlanningError's place without
    stopping the others."""
    from spinefe.common.errors import PlanningError

    ev = _evaluator(seedless_model)
    seeds = list(plan.seeds)
    outside = seeds[2].__class__(position_mm=(0.0, 0.0, -20.0), direction=(0.0, 1.0, 0.0),
                                 strength_U=seeds[2].strength_U)
    plans = [plan, Plan(tuple(seeds[:4]), name="four"), Plan((*seeds[:2], outside)),
             Plan(tuple(seeds[::2]), name="every other")]
    one_by_one = [ev.evaluate(p) for p in plans[:2] + plans[3:]]  # first: leaves A = A_p
    together = ev.evaluate_many(plans)
    assert isinstance(together[2], PlanningError)
    ev.block = 2  # in blocks of two plans: the same records
    blocks = ev.evaluate_many(plans)
    assert isinstance(blocks[2], PlanningError)
    for j in (0, 1, 3):
        np.testing.assert_allclose(_leaves(blocks[j].mechanics), _leaves(together[j].mechanics),
                                   rtol=1e-9)
    for alone, record in zip(one_by_one, together[:2] + together[3:], strict=True):
        assert record.dose == alone.dose and record.seeds == alone.seeds
        assert record.solver["iterations"] == alone.solver["iterations"] > 0
        a, b = _leaves(alone.mechanics), _leaves(record.mechanics)
        np.testing.assert_allclose(b, a, rtol=1e-9)


@pytest.mark.parallel
def test_a_plan_the_shared_preconditioner_cannot_solve_is_not_lost(seedless_model, plan):
    """Issue 25, family 7: where CG on the tumour's factorisation does not converge within
    its limit (forced here with a limit of 2 iterations; the paper's protocols at h = 1.0 mm
    need more than 200), the plan is solved with its own factorisation, alone and in a block,
    records that it was, and gives the metrics of a converged solve (to the CG tolerance
    1e-5 of the load: 1e-4 relative on the metrics)."""
    reference = _evaluator(seedless_model).evaluate(plan)
    assert reference.solver["own_factorisation"] is False
    limited = _evaluator(seedless_model, max_iterations=2)
    alone = limited.evaluate(plan)
    together = limited.evaluate_many([plan, Plan(tuple(plan.seeds[:4]), name="four")])
    for record in (alone, together[0]):
        assert record.solver["own_factorisation"] is True
        assert record.dose == reference.dose
        np.testing.assert_allclose(_leaves(record.mechanics), _leaves(reference.mechanics),
                                   rtol=1e-4, atol=1e-9)


def _leaves(d: dict) -> list[float]:
    """The numbers of a nested metrics record, in order."""
    return [x for v in d.values() for x in (_leaves(v) if isinstance(v, dict) else [float(v)])]


@pytest.mark.mpi_only
def test_one_and_two_ranks_agree(plan, cache_dir):
    """The same plan evaluated on 1 rank and on 2 ranks: dose identical (same sample points),
    mechanics to 1e-8 (CG at rtol 1e-11 on an exact factorisation)."""
    from spinefe.geometry.mesh import build_mesh
    from spinefe.geometry.segment import segment_geometry

    records = []
    for comm in (MPI.COMM_SELF, MPI.COMM_WORLD):
        model = build_mesh(segment_geometry(seedless()), comm, cache_dir)
        records.append(_evaluator(model, rtol=1e-11).evaluate(plan).record())
    one, two = records
    for key in ("D90_Gy", "V100_percent", "V150_percent"):
        assert two["dose"]["target"][key] == pytest.approx(one["dose"]["target"][key],
                                                           rel=1e-12), key
    a, b = _scalars(one["mechanics"]), _scalars(two["mechanics"])
    for key in a:
        assert b[key] == pytest.approx(a[key], rel=1e-8), key


@pytest.mark.serial_only
def test_seeds_outside_L4_or_overlapping_are_refused(seedless_model, plan):
    from spinefe.common.errors import PlanningError

    ev = _evaluator(seedless_model)
    seeds = list(plan.seeds)
    in_L5 = Plan((*seeds[:2], seeds[2].__class__(position_mm=(0.0, 0.0, -20.0),
                                                  direction=(0.0, 1.0, 0.0),
                                                  strength_U=seeds[2].strength_U)))
    with pytest.raises(PlanningError, match="seed 2 at .* not entirely inside the L4"):
        ev.evaluate(in_L5)
    shifted = seeds[1].__class__(position_mm=tuple(np.add(seeds[0].position_mm, 0.3)),
                                 direction=seeds[0].direction, strength_U=seeds[0].strength_U)
    with pytest.raises(PlanningError, match="seeds 0 and 1: capsules overlap"):
        ev.evaluate(Plan((seeds[0], shifted)))


@pytest.mark.serial_only
def test_evaluate_command(tmp_path, cli_env, plan):
    """`spinefe evaluate` on 2 ranks writes the evaluation; a bad rule is refused by name."""
    from spinefe.config.toml import config_toml
    from spinefe.mechanics.embedded import RULES

    cfg = tmp_path / "coarse.toml"
    cfg.write_text(config_toml(coarse()))  # the command meshes it without its seeds
    write_plan(plan, tmp_path / "plan.toml")
    out = tmp_path / "out"
    run = subprocess.run(spinefe_cmd("evaluate", str(cfg), "--plan", str(tmp_path / "plan.toml"),
                                     "--out", str(out), ranks=2),
                         env=cli_env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    record = json.loads((out / "evaluation.json").read_text())
    assert record["mpi_size"] == 2 and record["embedded"]["seeds"] == 11
    assert "lesion apparent modulus" in (out / "evaluation.md").read_text()
    bad = subprocess.run(spinefe_cmd("evaluate", "--plan", "p.toml", "--rule", "hill", "--out",
                                     str(out)), env=cli_env, capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice: 'hill'" in bad.stderr
    assert all(rule in bad.stderr for rule in RULES)


@pytest.mark.validation
@pytest.mark.serial_only
@pytest.mark.parametrize(("density", "activity"), [("dense", "0.45"), ("sparse", "0.8")])
def test_the_paper_protocols_evaluate_at_the_default_resolution(tmp_path, cli_env, density,
                                                                activity):
    """Issue 25, family 7: `spinefe evaluate` of the planner's plans for the paper's two
    protocols (bilateral; the unilateral corners cannot reach the prescription) at the default
    h = 1.0 mm, on 2 ranks, completes. There CG on the tumour's factorisation does not converge
    within 200 iterations for the dense plan (2026-12-07), which each plan's own factorisation
    then solves. About 4 min per protocol once the mesh is cached (`make validate`)."""
    plan_dir, out = tmp_path / "plan", tmp_path / "evaluation"
    planned = subprocess.run(spinefe_cmd("plan", "--access", "bilateral", "--density", density,
                                         "--activity-mCi", activity, "--out", str(plan_dir)),
                             env=cli_env, capture_output=True, text=True, timeout=300)
    assert planned.returncode == 0, planned.stderr
    done = subprocess.run(spinefe_cmd("evaluate", "--plan", str(plan_dir / "plan.toml"), "--out",
                                      str(out), ranks=2, timeout_s=1800),
                          env=cli_env, capture_output=True, text=True, timeout=1900)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((out / "evaluation.json").read_text())["embedded"]
    assert record["dose"]["target"]["D90_Gy"] >= 150.0
    assert record["mechanics"]["relative_to_tumour"]
