"""Benchmark: the implanted segment at h = 0.6 mm, CG + GAMG, on 1 and 2 MPI ranks.

Prints dofs, assembly, preconditioner set-up and solve seconds, CG iterations, microseconds per
dof (set-up + solve), peak memory (summed over ranks, and per dof), and the speed-up from 1 to 2
ranks. Each run is a separate `mpiexec` (under a timeout); the mesh is cached ($SPINEFE_CACHE), so
build it once first (the first run meshes, which takes about 4 minutes at 0.6 mm).

    python benchmarks/mechanics_solve.py [--size 0.6] [--ranks 1 2] [--smoothing 0 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def worker(size: float, smoothing: int) -> None:
    from mpi4py import MPI

    from spinefe.config.sections import Config
    from spinefe.config.loading import parse_config
    from spinefe.mechanics.materials import material_fields
    from spinefe.mechanics.segment import load_bearing, solve_segment
    from spinefe.geometry.mesh import build_mesh, default_cache_dir
    from spinefe.geometry.segment import segment_geometry

    comm = MPI.COMM_WORLD
    data = Config().model_dump(mode="json")
    data["mesh"]["size_mm"] = size
    data["mechanics"]["prolongator_smoothing_steps"] = smoothing
    cfg = parse_config(data)
    model = load_bearing(build_mesh(segment_geometry(cfg), comm, default_cache_dir()))
    comm.barrier()
    t0 = time.perf_counter()
    sol = solve_segment(model, material_fields(model, cfg.materials, cfg.lesion, "implanted"),
                        cfg.mechanics)
    total = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    peak = comm.allreduce(peak_mb, op=MPI.SUM)
    t = {k: comm.allreduce(v, op=MPI.MAX) for k, v in sol.timings.items()}
    if comm.rank == 0:
        row = {
            "size_mm": size,
            "ranks": comm.size,
            "prolongator_smoothing_steps": smoothing,
            "dofs": sol.dofs,
            "iterations": sol.iterations,
            "assemble_s": round(t["assemble_seconds"], 2),
            "setup_s": round(t["setup_seconds"], 2),
            "solve_s": round(t["solve_seconds"], 2),
            "total_s": round(total, 2),
            "us_per_dof": round(1e6 * (t["setup_seconds"] + t["solve_seconds"]) / sol.dofs, 1),
            "peak_memory_GB": round(peak / 1024.0, 2),
            "kB_per_dof": round(1024.0 * peak / sol.dofs, 2),
            "reaction_N": sol.reaction_N.tolist(),
        }
        print("RESULT " + json.dumps(row), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--size", type=float, default=0.6)
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--smoothing", type=int, nargs="+", default=[0, 1])
    p.add_argument("--out", type=Path, default=Path("results/benchmarks/mechanics.json"))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.size, args.smoothing[0])
        return
    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    rows = []
    for smoothing in args.smoothing:
        for ranks in args.ranks:
            cmd = ["timeout", "-k", "10", "3600", mpiexec, "-n", str(ranks), sys.executable]
            cmd += [__file__, "--worker", "--size", str(args.size), "--smoothing", str(smoothing)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
            if out.returncode != 0 or not lines:
                sys.exit(f"benchmark run failed ({' '.join(cmd)}):\n{out.stderr[-3000:]}")
            rows.append(json.loads(lines[0].removeprefix("RESULT ")))
            print(json.dumps(rows[-1]), flush=True)
    for smoothing in args.smoothing:
        by_ranks = {r["ranks"]: r for r in rows if r["prolongator_smoothing_steps"] == smoothing}
        if 1 in by_ranks and 2 in by_ranks:
            one, two = by_ranks[1], by_ranks[2]
            speedup = (one["setup_s"] + one["solve_s"]) / (two["setup_s"] + two["solve_s"])
            print(f"smoothing {smoothing}: speed-up 1 -> 2 ranks (set-up + solve) {speedup:.2f}")
            two["speedup_vs_1_rank"] = round(speedup, 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
