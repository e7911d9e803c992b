"""Benchmark: TG-43 dose rate of a seed plan at many points, compiled kernel against numpy.

Builds 25 seeds of model 6711 (random positions in a 20 mm cube, random directions, fixed RNG
seed) and 1,000,000 random points in a 60 mm cube, then times `tg43.dose_rate` (the per-model
table kernel; best of 5 after a warm-up call that compiles or loads the kernel and builds the
table) and `tg43.dose_rate_reference` (the numpy formulas, one run), for the 2D and 1D formalisms
and each thread count. Prints a markdown table: wall seconds, point-seed evaluations per second,
CPU nanoseconds per evaluation (process CPU time over evaluations: less sensitive to other load
on a shared machine than the wall clock), speed-up over numpy, the largest relative difference to
the reference over the points between 1 mm and 10 cm from every seed (NaN flags must agree, else
inf), and the peak RSS of the process after the kernel runs (before the numpy reference runs).
`--toy`: 10,000 points and 3 seeds, one thread count (seconds).
Usage: python benchmarks/dose_points.py [--toy] [--points 1000000] [--seeds 25] [--threads 2 1]
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numba
import numpy as np

from dosimetry import tg43
from dosimetry.plan import Plan


def make_case(n_points: int, n_seeds: int, rng_seed: int = 20240607) -> tuple[np.ndarray, Plan]:
    rng = np.random.default_rng(rng_seed)
    positions = rng.uniform(-10.0, 10.0, (n_seeds, 3))
    directions = rng.normal(size=(n_seeds, 3))
    plan = Plan.uniform(positions, directions, strength_U=0.5, model="6711")
    return rng.uniform(-30.0, 30.0, (n_points, 3)), plan


def timed(fn, repeat: int, *args) -> tuple[float, float, tg43.PointDose]:
    """Best wall seconds, best process CPU seconds and the result of `repeat` calls."""
    wall = cpu = np.inf
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn(*args)
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return wall, cpu, result


def in_table_range(points: np.ndarray, plan: Plan) -> np.ndarray:
    """Points between 1 mm and 10 cm from every seed (the table's accuracy range)."""
    ok = np.ones(len(points), bool)
    for p in plan.positions_mm:
        r_cm = np.linalg.norm(points - p, axis=1) / 10.0
        ok &= (r_cm >= tg43.TABLE_R_CM[0]) & (r_cm < tg43.TABLE_R_CM[1])
    return ok


def max_rel_diff(fast: tg43.PointDose, ref: tg43.PointDose, where: np.ndarray) -> float:
    if not np.array_equal(fast.inside_capsule, ref.inside_capsule):
        return np.inf
    ok = where & ~ref.inside_capsule
    a, b = fast.dose_rate_cGy_h[ok], ref.dose_rate_cGy_h[ok]
    return float(np.max(np.abs(a - b) / np.abs(b), initial=0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toy", action="store_true", help="10,000 points, 3 seeds, 1 thread")
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, default=25)
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    args = parser.parse_args()
    if args.toy:
        args.points, args.seeds, args.threads = 10_000, 3, [1]

    points, plan = make_case(args.points, args.seeds)
    evals = args.points * args.seeds
    where = in_table_range(points, plan)
    print(f"numba {numba.__version__}, threading layer after warm-up: ", end="")
    tg43.dose_rate(points[:10], plan)
    print(f"{numba.threading_layer()}, NUMBA_NUM_THREADS = {numba.config.NUMBA_NUM_THREADS}, "
          f"load average {os.getloadavg()[0]:.1f}; {where.mean():.1%} of the points are "
          "1 mm - 10 cm from every seed\n")
    print("| formalism | threads | points | seeds | kernel (s) | evaluations/s | CPU ns/eval "
          "| numpy (s) | ratio to numpy | max rel. diff (1 mm - 10 cm) | peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for formalism in tg43.FORMALISMS:
        rows = []
        for threads in args.threads:
            tg43.set_threads(threads)
            tg43.dose_rate(points[:10], plan, formalism)
            wall, cpu, fast = timed(tg43.dose_rate, 5, points, plan, formalism)
            rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            rows.append((threads, wall, cpu, fast, rss_mb))
        t_ref, _, ref = timed(tg43.dose_rate_reference, 1, points, plan, formalism)
        for threads, wall, cpu, fast, rss_mb in rows:
            print(f"| {formalism} | {threads} | {args.points:,} | {args.seeds} | {wall:.3f} "
                  f"| {evals / wall:.2e} | {1e9 * cpu / evals:.1f} | {t_ref:.2f} "
                  f"| {t_ref / wall:.0f} | {max_rel_diff(fast, ref, where):.1e} | {rss_mb:.0f} |")
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
