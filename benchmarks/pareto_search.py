"""Benchmark: a full Pareto search of seed plans (spinefe.planning.optimisation) at the optimisation
resolution, its evaluations per second and the convergence of its front.

Runs `optimise` (population x generations, ranks split into groups of --ranks-per-evaluation)
on the segment meshed without seeds at --size, until the budget or the stopping rule
(hypervolume change below --stop-hypervolume-percent over --stop-window generations; 0: the
whole budget), then prints the time, evaluations per second, the hypervolume of the front at
half and at the end of the search, the generation at which it stopped and why, and plots the
hypervolume against the evaluations (DIR/convergence.png). An existing DIR/checkpoint.pkl is
resumed. --toy: population 8, 2 generations on the toy segment (benchmarks/toy.py), 1 rank,
without the verification, in a temporary DIR (removed at the end) unless --out is given.

    python benchmarks/pareto_search.py [--size 2.2] [--verify-size 1.8] [--ranks 2]
        [--population 44] [--generations 50] [--stop-hypervolume-percent 1]
        [--stop-window 10] [--out DIR] [--toy]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import toy
from toy import segment_data


def worker(args) -> None:
    from mpi4py import MPI

    from spinefe.config.loading import parse_config
    from spinefe.geometry.mesh import default_cache_dir
    from spinefe.planning.optimisation import optimise

    data = segment_data(args.verify_size, args.toy)
    data["optimisation"].update(
        mesh_size_mm=args.size, population=args.population, generations=args.generations,
        stop_hypervolume_percent=args.stop_hypervolume_percent, stop_window=args.stop_window,
        random_seed=args.seed, ranks_per_evaluation=args.ranks_per_evaluation,
        hybrid=args.hybrid, v150_max_percent=args.v150_max_percent,
        canal_d01cc_max_Gy=args.canal_d01cc_max_Gy)
    optimise(parse_config(data), args.out, MPI.COMM_WORLD, default_cache_dir(),
             verify=not args.no_verify)


def report(out: Path) -> str:
    s = json.loads((out / "summary.json").read_text())
    h = s["history"]
    half = h[len(h) // 2 - 1] if len(h) > 1 else h[-1]
    return (f"{s['evaluations']} designs evaluated ({s['valid_designs']} valid plans), "
            f"{s['dofs']} dofs, {s['ranks']} ranks in groups of "
            f"{s['optimisation']['ranks_per_evaluation']}: "
            f"search {h[-1]['seconds']:.0f} s after a {s['setup_seconds']:.0f} s set-up, "
            f"{s['evaluations_per_second']:.2f} evaluations/s ({sum(s['cpu_seconds']):.0f} CPU "
            f"s on all ranks with the set-up, {sum(s['cpu_seconds']) / s['evaluations']:.2f} "
            f"per evaluation). Front: {len(s['front'])} plans; "
            f"hypervolume {half['hypervolume']:.4f} at generation {half['generation']} "
            f"({half['evaluations']} evaluations), {h[-1]['hypervolume']:.4f} at "
            f"{h[-1]['generation']} ({h[-1]['evaluations']}). Stopped at generation "
            f"{s['stopped']['generation']} by the {s['stopped']['by']}.")


def plot_convergence(out: Path) -> None:
    """Hypervolume of the front and front size against evaluations: out/convergence.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spinefe.config.sections import Optimisation
    from spinefe.planning.optimisation import converged

    h = json.loads((out / "summary.json").read_text())["history"]
    rule = Optimisation()
    n = [g["evaluations"] for g in h]
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=150)
    ax.plot(n, [g["hypervolume"] for g in h], "k.-", label="hypervolume")
    # Where the default stopping rule stops (or would have, in a run without it).
    percent, window = rule.stop_hypervolume_percent, rule.stop_window
    stop = next((g for i, g in enumerate(h) if converged(h[:i + 1], percent, window)), None)
    if stop is not None:
        ax.axvline(stop["evaluations"], color="0.5", ls="--", lw=0.8)
        ax.annotate(f"stopping rule ({percent:g} % over {window} generations): generation "
                    f"{stop['generation']}", (stop["evaluations"], 0.02),
                    xycoords=("data", "axes fraction"), rotation=90, fontsize=6, color="0.4",
                    ha="right")
    ax.set_xlabel("plans evaluated")
    ax.set_ylabel("hypervolume of the front (HV_BOUNDS)")
    twin = ax.twinx()
    twin.plot(n, [g["front"] for g in h], color="tab:blue", lw=0.8)
    twin.set_ylabel("plans on the front", color="tab:blue")
    fig.tight_layout()
    fig.savefig(out / "convergence.png")
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=float, default=2.2, help="optimisation resolution h (mm)")
    p.add_argument("--verify-size", type=float, default=1.8,
                   help="h (mm) of the conforming re-evaluation of the recommended plans")
    p.add_argument("--hybrid", action="store_true")
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--ranks-per-evaluation", type=int, default=1)
    p.add_argument("--population", type=int, default=44)
    p.add_argument("--generations", type=int, default=50)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--v150-max-percent", type=float, default=60.0, help="100: no limit")
    p.add_argument("--canal-d01cc-max-Gy", type=float)
    p.add_argument("--stop-hypervolume-percent", type=float, default=1.0)
    p.add_argument("--stop-window", type=int, default=10)
    p.add_argument("--no-verify", action="store_true")
    p.add_argument("--toy", action="store_true", help="population 8, 2 generations on the toy "
                   "segment (benchmarks/toy.py), no verification, a temporary DIR")
    p.add_argument("--out", type=Path, help="DIR (default results/benchmarks/pareto_search)")
    p.add_argument("--timeout", type=int, default=7200)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.toy:
        args.size, args.population, args.generations, args.no_verify = toy.SIZE_MM, 8, 2, True
        args.ranks = 1
    if args.worker:
        worker(args)
        return
    temporary = args.out is None and args.toy
    if args.out is None:
        args.out = Path(tempfile.mkdtemp(prefix="pareto-toy-")) if args.toy \
            else Path("results/benchmarks/pareto_search")
    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    t0 = time.perf_counter()
    subprocess.run(["timeout", "-k", "10", str(args.timeout), mpiexec, "-n", str(args.ranks),
                    sys.executable, __file__, "--worker", *sys.argv[1:], "--out", str(args.out)],
                   check=True)
    print(f"total {time.perf_counter() - t0:.0f} s")
    print(report(args.out))
    plot_convergence(args.out)
    if temporary:
        shutil.rmtree(args.out)


if __name__ == "__main__":
    main()
