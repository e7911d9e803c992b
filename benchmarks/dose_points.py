"""Benchmark: TG-43 dose rate of a seed plan at many points, compiled kernel against numpy.

Builds 25 seeds of model 6711 (random positions in a 20 mm cube, random directions, fixed RNG
seed) and 1,000,000 random points in a 60 mm cube, then times `tg43.dose_rate` (best of 3 after a
warm-up call that compiles or loads the kernel) and `tg43.dose_rate_reference` (one run), for the
2D and 1D formalisms and each thread count. Prints a markdown table: seconds, point-seed
evaluations per second, speed-up over numpy, peak RSS of the process so far, and the largest
relative difference of the compiled result to the reference (NaN flags must agree).
Usage: python benchmarks/dose_points.py [--points 1000000] [--seeds 25] [--threads 2 1]
"""

from __future__ import annotations

import argparse
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


def timed(fn, repeat: int, *args) -> tuple[float, tg43.PointDose]:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best, result


def max_rel_diff(fast: tg43.PointDose, ref: tg43.PointDose) -> float:
    if not np.array_equal(fast.inside_capsule, ref.inside_capsule):
        return np.inf
    a, b = fast.dose_rate_cGy_h[~ref.inside_capsule], ref.dose_rate_cGy_h[~ref.inside_capsule]
    return float(np.max(np.abs(a - b) / np.abs(b), initial=0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, default=25)
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    args = parser.parse_args()

    points, plan = make_case(args.points, args.seeds)
    evals = args.points * args.seeds
    print(f"numba {numba.__version__}, threading layer after warm-up: ", end="")
    tg43.dose_rate(points[:10], plan)
    print(f"{numba.threading_layer()}, NUMBA_NUM_THREADS = {numba.config.NUMBA_NUM_THREADS}\n")
    print("| formalism | threads | points | seeds | compiled (s) | evaluations/s | numpy (s) "
          "| ratio to numpy | peak RSS (MB) | max rel. diff |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for formalism in tg43.FORMALISMS:
        t_ref, ref = timed(tg43.dose_rate_reference, 1, points, plan, formalism)
        for threads in args.threads:
            tg43.set_threads(threads)
            tg43.dose_rate(points[:10], plan, formalism)
            t_fast, fast = timed(tg43.dose_rate, 3, points, plan, formalism)
            rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"| {formalism} | {threads} | {args.points:,} | {args.seeds} | {t_fast:.3f} "
                  f"| {evals / t_fast:.2e} | {t_ref:.2f} | {t_ref / t_fast:.0f} | {rss_mb:.0f} "
                  f"| {max_rel_diff(fast, ref):.1e} |")


if __name__ == "__main__":
    main()
