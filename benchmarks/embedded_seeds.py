"""Benchmark: embedded seeds (fixed mesh, homogenised cells) against conforming seeds (meshed
capsules), and the time of a plan evaluation against a remesh-and-solve.

Twelve plans span the four corners (bilateral / unilateral x dense / sparse) and the activities
0.3-0.8 mCi. Per plan: `PlanEvaluator.evaluate` with each homogenisation rule on the segment
meshed without seeds, and `evaluate_conforming` on a mesh of the plan's capsules (cached in
$SPINEFE_CACHE; benchmarks/plan_evaluation.py times a remesh). Writes one JSON line per plan and
rule to --out and prints the per-plan table of docs/planning.md (the summary tables there are
computed from the same JSON lines).

    python benchmarks/embedded_seeds.py [--size 1.8] [--ranks 2] [--out FILE] [--plans N]
        [--toy]  (the 4-seed plan on the test suite's coarse segment, 1 rank; benchmarks/toy.py)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

#: (access, density, activity mCi, seeds or None for the count that covers the lesion at 150 Gy)
PLANS = [
    ("bilateral", "dense", 0.3, None), ("bilateral", "dense", 0.45, None),
    ("bilateral", "dense", 0.6, None), ("bilateral", "dense", 0.8, None),
    ("bilateral", "sparse", 0.6, None), ("bilateral", "sparse", 0.8, None),
    ("unilateral_left", "dense", 0.8, 12), ("unilateral_left", "dense", 0.45, 8),
    ("unilateral_right", "dense", 0.6, 10), ("unilateral_left", "sparse", 0.8, 6),
    ("unilateral_right", "sparse", 0.8, 8), ("unilateral_right", "sparse", 0.45, 4),
]
PRESCRIPTION_GY = 150.0
RULES = ("mori_tanaka", "voigt", "reuss")


def make_plan(cfg, access: str, density: str, activity: float, seeds: int | None):
    """The corner's plan: the covering seed count, or `seeds` along its needles (unilateral
    access does not cover the mid-line lesion, docs/planning.md)."""
    from dosimetry.plan import Plan, strength_from_activity
    from spinefe.geometry.layout import segment_layout
    from spinefe.geometry.segment import segment_geometry
    from spinefe.planning.patterns import plan_pattern, seed_count

    site = (segment_layout(segment_geometry(cfg)), cfg.lesion, cfg.seed_capsule, cfg.dosimetry)
    if seeds is None:
        return plan_pattern(*site, access, density, activity, PRESCRIPTION_GY)[0]
    _, _, place = seed_count(*site, access, density, activity, PRESCRIPTION_GY)
    positions, directions = place(seeds)
    return Plan.uniform(positions, directions, strength_from_activity(activity),
                        cfg.dosimetry.seed_model,
                        name=f"{access} {density} {activity} mCi, {seeds} seeds")


def seedless_segment(size: float, toy: bool, comm):
    """The default segment at element size `size` (mm), or the toy one, without seeds:
    (config, model), the mesh cached in $SPINEFE_CACHE; collective."""
    from spinefe.config.loading import parse_config
    from spinefe.geometry.mesh import build_mesh, default_cache_dir
    from spinefe.geometry.segment import segment_geometry
    from toy import segment_data

    cfg = parse_config(segment_data(size, toy, seedless=True))
    return cfg, build_mesh(segment_geometry(cfg), comm, default_cache_dir())


def worker(size: float, toy: bool, out: Path, n_plans: int) -> None:
    from mpi4py import MPI

    from spinefe.geometry.layout import segment_layout
    from spinefe.geometry.mesh import default_cache_dir
    from spinefe.geometry.segment import segment_geometry
    from spinefe.planning.evaluation import PlanEvaluator, evaluate_conforming

    comm = MPI.COMM_WORLD
    cfg, model = seedless_segment(size, toy, comm)
    layout = segment_layout(segment_geometry(cfg))
    evaluators = {}
    for rule in RULES:
        comm.barrier()
        # Voigt stiffens cells 1e4-fold, far from the tumour operator (see PlanEvaluator).
        evaluators[rule] = PlanEvaluator(
            model, layout, materials=cfg.materials, lesion=cfg.lesion,
            mechanics=cfg.mechanics, capsule=cfg.seed_capsule, dosimetry=cfg.dosimetry,
            rule=rule, factorise_each_plan=rule == "voigt")
    # The toy run takes the plan with the fewest capsules to mesh.
    for access, density, activity, seeds in PLANS[-1:] if toy else PLANS[:n_plans]:
        plan = make_plan(cfg, access, density, activity, seeds)
        rows = []
        for rule, ev in evaluators.items():
            ev.evaluate(plan)  # the timed evaluation below is a subsequent one
            comm.barrier()
            rows.append({"rule": rule, **ev.evaluate(plan).record(),
                         "setup_seconds": ev.setup_seconds})
        rows.append({"rule": "conforming",
                     **evaluate_conforming(cfg, plan, comm, default_cache_dir()).record()})
        if comm.rank == 0:
            with open(out, "a") as f:
                for row in rows:
                    f.write(json.dumps({"access": access, "density": density,
                                        "activity_mCi": activity, **row}) + "\n")
            print(f"{plan.name}: done", flush=True)


def tables(rows: list[dict]) -> str:
    """Markdown: per plan the conforming model's values and seed effects (ratio to its tumour
    model), and each embedded rule's error against them."""
    plans: dict[str, dict] = {}
    for r in rows:
        plans.setdefault(r["plan"], {})[r["rule"]] = r
    ce = "L4.cortical_endplates"
    values = [("lesion modulus", lambda m: m["lesion"]["apparent_modulus_MPa"]),
              ("lesion energy", lambda m: m["lesion"]["strain_energy_mJ"]),
              ("cortical max", lambda m: m[ce]["max"]),
              ("cortical p99", lambda m: m[ce]["p99"]),
              ("cortical p95", lambda m: m[ce]["p95"])]
    effects = [("lesion modulus / tumour",
                lambda m: m["relative_to_tumour"]["lesion_apparent_modulus_MPa"]),
               ("cortical max / tumour", lambda m: m["relative_to_tumour"][ce]["max"]),
               ("cortical p99 / tumour", lambda m: m["relative_to_tumour"][ce]["p99"])]
    lines = ["| plan | seeds | model | " + " | ".join(k for k, _ in values + effects) + " |",
             "|---|---|---|" + "---|" * (len(values) + len(effects))]
    for name, by_rule in plans.items():
        ref = by_rule.get("conforming")
        if ref is None:
            continue
        cm = ref["mechanics"]
        lines.append(f"| {name} | {ref['seeds']} | conforming | "
                     + " | ".join(f"{f(cm):.4g}" for _, f in values + effects) + " |")
        for rule in RULES:
            if rule in by_rule:
                m = by_rule[rule]["mechanics"]
                cells = [f"{100 * (f(m) / f(cm) - 1):+.2f} %" for _, f in values]
                cells += [f"{f(m) - f(cm):+.4f}" for _, f in effects]
                lines.append(f"| | | {rule} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=float, default=1.8)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--plans", type=int, default=len(PLANS))
    p.add_argument("--out", type=Path, default=Path("results/benchmarks/embedded_seeds.jsonl"))
    p.add_argument("--timeout", type=int, default=7200)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--tables", action="store_true", help="only print the tables of --out")
    p.add_argument("--toy", action="store_true", help="the 4-seed plan on the toy segment, 1 rank")
    args = p.parse_args()
    if args.toy:
        args.ranks = 1
    if args.worker:
        worker(args.size, args.toy, args.out, args.plans)
        return
    if not args.tables:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.unlink(missing_ok=True)
        mpiexec = str(Path(sys.executable).parent / "mpiexec")
        t0 = time.perf_counter()
        subprocess.run(["timeout", "-k", "10", str(args.timeout), mpiexec, "-n", str(args.ranks),
                        sys.executable, __file__, "--worker", "--size", str(args.size),
                        "--plans", str(args.plans), "--out", str(args.out)]
                       + ["--toy"] * args.toy, check=True)
        print(f"total {time.perf_counter() - t0:.0f} s")
    print(tables([json.loads(line) for line in args.out.read_text().splitlines()]))


if __name__ == "__main__":
    main()
