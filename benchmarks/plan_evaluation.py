"""Benchmark: time of a plan evaluation (embedded seeds) at the optimisation resolution.

On the segment meshed without seeds at --size (1.8 mm: 104k dofs): the set-up of a
PlanEvaluator (first evaluation), then every plan of benchmarks/embedded_seeds.py evaluated in
turn (subsequent evaluations), each with its parts (embed, assemble dK, CG solve, metrics, dose);
the same plans evaluated together (`evaluate_many`, as the search does: one CG in lockstep on
the shared factorisation) and their largest deviation from the evaluations one by one; the
same plan with the tumour operator's GAMG as the preconditioner instead of its Cholesky
factorisation; and one remesh-and-solve of the plan with its capsules meshed. Prints a Markdown
table and writes --out (JSON). --toy: 3 plans on the toy segment (benchmarks/toy.py), 1 rank,
no remesh.

    python benchmarks/plan_evaluation.py [--size 1.8] [--ranks 2] [--out FILE] [--toy]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from embedded_seeds import PLANS, make_plan, seedless_segment  # noqa: E402  (a sibling script, not a package)


def worker(size: float, out: Path, toy: bool) -> None:
    from mpi4py import MPI

    from spinefe.mechanics.solvers import LinearSolver, SolverOptions, ksp_options
    from spinefe.geometry.layout import segment_layout
    from spinefe.geometry.segment import segment_geometry
    from spinefe.planning.evaluation import PlanEvaluator, evaluate_conforming

    comm = MPI.COMM_WORLD
    cfg, model = seedless_segment(size, toy, comm)
    plans = [make_plan(cfg, *p) for p in (PLANS[:3] if toy else PLANS)]
    comm.barrier()
    t0 = time.perf_counter()
    ev = PlanEvaluator(model, segment_layout(segment_geometry(cfg)), materials=cfg.materials,
                       lesion=cfg.lesion, mechanics=cfg.mechanics, capsule=cfg.seed_capsule,
                       dosimetry=cfg.dosimetry)
    first = ev.evaluate(plans[0])
    first_seconds = time.perf_counter() - t0
    rows = []
    for plan in plans:
        comm.barrier()
        r = ev.evaluate(plan)
        rows.append({"plan": plan.name, "seeds": r.seeds, "iterations": r.solver["iterations"],
                     **{k: round(v, 3) for k, v in r.solver["seconds"].items()}})
    comm.barrier()
    t0 = time.perf_counter()
    together = ev.evaluate_many(plans)
    together_seconds = time.perf_counter() - t0
    alone = [ev.evaluate(plan).mechanics for plan in plans]
    together_deviation = max(abs(a / b - 1.0) for one, many in zip(alone, together, strict=True)
                             for a, b in zip(_leaves(many.mechanics), _leaves(one),
                                             strict=True))
    # Accuracy of the default tolerance: the same plan solved to rtol 1e-11.
    ev.solver.ksp.setTolerances(rtol=1e-11)
    tight = ev.evaluate(plans[1]).mechanics
    ev.solver.ksp.setTolerances(rtol=ev.rtol)
    default = ev.evaluate(plans[1]).mechanics
    deviation = max(abs(a / b - 1.0) for a, b in zip(_leaves(default), _leaves(tight),
                                                      strict=True))
    # The same plan, CG preconditioned by the tumour operator's GAMG (built once) instead.
    gamg_solver = LinearSolver(ev.A, {**ksp_options(SolverOptions(rtol=ev.rtol)),
                                      "ksp_initial_guess_nonzero": True}, "plan_gamg",
                               P=ev.system.A)
    ev.solver.ksp = gamg_solver.ksp
    comm.barrier()
    gamg = ev.evaluate(plans[1])
    remesh = None
    if not toy:
        cache = Path(comm.bcast(tempfile.mkdtemp(prefix="spinefe-remesh-") if comm.rank == 0
                                else None, root=0))
        comm.barrier()
        remesh = evaluate_conforming(cfg, plans[1], comm, cache)
    if comm.rank == 0:
        result = {"size_mm": size, "ranks": comm.size, "dofs": ev.dofs,
                  "setup_seconds": round(ev.setup_seconds, 2),
                  "first_evaluation_seconds": round(first_seconds, 2),
                  "first_plan": first.plan, "evaluations": rows, "rtol": ev.rtol,
                  "together": {"plans": len(plans), "seconds": round(together_seconds, 3),
                               "iterations": [r.solver["iterations"] for r in together],
                               "deviation_from_one_by_one": together_deviation},
                  "metric_deviation_from_rtol_1e-11": deviation,
                  "gamg": {"plan": gamg.plan, "iterations": gamg.solver["iterations"],
                           "seconds": round(gamg.solver["seconds"]["total"], 2)},
                  "remesh": remesh and {
                      "plan": remesh.plan, "dofs": remesh.solver["dofs"],
                      **{k: round(v, 1) for k, v in remesh.solver["seconds"].items()}}}
        out.write_text(json.dumps(result, indent=1))


def _leaves(d: dict) -> list[float]:
    """The numbers of a nested metrics record, in order."""
    out = []
    for v in d.values():
        out += _leaves(v) if isinstance(v, dict) else [float(v)]
    return out


def table(result: dict) -> str:
    rows = result["evaluations"]
    lines = [f"{result['dofs']} dofs (h = {result['size_mm']} mm), {result['ranks']} ranks. "
             f"Set-up {result['setup_seconds']} s; first evaluation (set-up included) "
             f"{result['first_evaluation_seconds']} s.", "",
             "| plan | seeds | CG its | embed | assemble dK | solve | metrics | dose | total (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['plan']} | {r['seeds']} | {r['iterations']} | {r['embed']:.3f} "
                     f"| {r['assemble']:.3f} | {r['solve']:.3f} | {r['metrics']:.3f} "
                     f"| {r['dose']:.3f} | {r['total']:.2f} |")
    totals = sorted(r["total"] for r in rows)
    g, m, t = result["gamg"], result["remesh"], result["together"]
    mean = sum(totals) / len(totals)
    lines += ["", f"Subsequent evaluations: {totals[0]:.2f}-{totals[-1]:.2f} s, mean {mean:.2f} s. "
              f"CG at rtol {result['rtol']:g}: every mechanical metric within "
              f"{result['metric_deviation_from_rtol_1e-11']:.1e} of a solve to rtol 1e-11.",
              f"The {t['plans']} plans evaluated together (evaluate_many, as the search does): "
              f"{t['seconds']:.2f} s, {t['seconds'] / t['plans']:.2f} s per plan; every "
              f"mechanical metric within {t['deviation_from_one_by_one']:.1e} of the "
              "evaluations one by one.",
              f"With the tumour operator's GAMG instead of its factorisation: {g['iterations']} "
              f"CG iterations, {g['seconds']} s ({g['plan']})."]
    if m:
        lines.append(f"Remesh and solve ({m['plan']}, {m['dofs']} dofs): mesh {m['mesh']} s, "
                     f"tumour and implanted solves {m['solve']} s, total {m['total']} s: "
                     f"{m['total'] / mean:.0f} x a mean evaluation.")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=float, default=1.8)
    p.add_argument("--toy", action="store_true",
                   help="3 plans on the toy segment (benchmarks/toy.py), 1 rank, no remesh")
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--out", type=Path, help="JSON (default results/benchmarks/"
                   "plan_evaluation.json, plan_evaluation_toy.json with --toy)")
    p.add_argument("--timeout", type=int, default=3600)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.toy:
        args.ranks = 1
    args.out = args.out or Path("results/benchmarks/plan_evaluation"
                                f"{'_toy' if args.toy else ''}.json")
    if args.worker:
        worker(args.size, args.out, args.toy)
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    subprocess.run(["timeout", "-k", "10", str(args.timeout), mpiexec, "-n", str(args.ranks),
                    sys.executable, __file__, "--worker", "--size", str(args.size),
                    "--out", str(args.out), *(["--toy"] if args.toy else [])], check=True)
    print(table(json.loads(args.out.read_text())))


if __name__ == "__main__":
    main()
