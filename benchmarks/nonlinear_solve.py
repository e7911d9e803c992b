"""Benchmark: the nonlinear segment (ligaments, facet contact, neo-Hookean disc) at h = 1.0 mm.

Two cases, each in its own `mpiexec` (under a timeout): the paper's 500 N axial load on the
implanted segment, and a 7.5 N m flexion moment on the healthy one. Prints per case the dofs, the
Newton and CG iterations of every load step, total seconds and the peak memory summed over the
ranks. The mesh is cached ($SPINEFE_CACHE); the first run meshes it.

    python benchmarks/nonlinear_solve.py [--size 1.0] [--ranks 2] [--cases axial flexion]
        [--toy]  (the flexion case on the test suite's coarse segment, 1 rank; benchmarks/toy.py)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def worker(size: float, toy: bool, case: str) -> None:
    from mpi4py import MPI

    from spinefe.config.loading import parse_config
    from spinefe.mechanics.materials import material_fields
    from spinefe.mechanics.segment import load_bearing, segment_load, solve_segment_nonlinear
    from spinefe.geometry.mesh import build_mesh, default_cache_dir
    from spinefe.geometry.segment import segment_geometry
    from spinefe.mechanics.nonlinear import newton_summary
    from spinefe.mechanics.rom import rotation_of_L4
    from toy import segment_data

    comm = MPI.COMM_WORLD
    cfg = parse_config(segment_data(size, toy))
    model = load_bearing(build_mesh(segment_geometry(cfg), comm, default_cache_dir()))
    comm.barrier()
    t0 = time.perf_counter()
    if case == "axial":
        materials = material_fields(model, cfg.materials, cfg.lesion, "implanted")
        sol, pairs = solve_segment_nonlinear(model, materials, cfg.mechanics, cfg.nonlinear)
        extra = {}
    else:
        materials = material_fields(model, cfg.materials, cfg.lesion, "healthy")
        sol, pairs = solve_segment_nonlinear(model, materials, cfg.mechanics, cfg.nonlinear,
                                             segment_load(model, cfg.rom.preload_N,
                                                          cfg.rom.preload, motion=case,
                                                          moment_Nm=cfg.rom.moment_Nm))
        extra = {"rotation_deg": rotation_of_L4(model, sol.u).tolist()}
    total = time.perf_counter() - t0
    peak = comm.allreduce(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
    if comm.rank == 0:
        row = {
            "case": case,
            "size_mm": cfg.mesh.size_mm,
            "ranks": comm.size,
            "dofs": sol.dofs,
            "steps": [(s["newton_iterations"], s["linear_iterations"]) for s in sol.steps],
            **newton_summary(sol.steps),
            "total_s": round(total, 1),
            "peak_memory_GB": round(peak / 1024.0, 2),
            "contact_force_N": {k: round(v["contact_force_N"], 2)
                                for k, v in pairs.get("contacts", {}).items()},
            **extra,
        }
        print("RESULT " + json.dumps(row), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=float, default=1.0)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--cases", nargs="+", default=["axial", "flexion"])
    p.add_argument("--toy", action="store_true", help="flexion on the toy segment, 1 rank")
    p.add_argument("--worker", nargs=2, metavar=("SIZE", "CASE"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.toy:
        args.ranks, args.cases = 1, ["flexion"]
    if args.worker:
        worker(float(args.worker[0]), args.toy, args.worker[1])
        return
    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    print("machine: 2 cores, 24 GiB (the record in docs/nonlinear.md)")
    failed = False
    for case in args.cases:
        t0 = time.perf_counter()
        cmd = ["timeout", "-k", "10", "3600", mpiexec, "-n", str(args.ranks), sys.executable,
               __file__, "--worker", str(args.size), case] + ["--toy"] * args.toy
        out = subprocess.run(cmd, capture_output=True, text=True)
        rows = [line[7:] for line in out.stdout.splitlines() if line.startswith("RESULT ")]
        if out.returncode or not rows:
            print(f"{case}: failed (exit {out.returncode})\n{out.stderr[-2000:]}")
            failed = True
            continue
        print(json.dumps({**json.loads(rows[0]), "wall_s": round(time.perf_counter() - t0, 1)}))
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
