"""Benchmark: the default segment with 25 seeds meshed at h = 1.0, 0.8, 0.6 mm.

Prints cells, P1 vector dofs, seconds (CAD, gmsh meshing, distribution, total) and peak memory of
each run; every size runs in its own process (`spinefe mesh`, no cache) so the peak is its own.
Usage: python benchmarks/mesh_sizes.py [--sizes 1.0 0.8 0.6] [--ranks 1] [--out DIR]
       python benchmarks/mesh_sizes.py --toy  (no seeds, the toy size: benchmarks/toy.py)
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from spinefe.config.loading import parse_config
from spinefe.config.sections import Seed
from spinefe.config.toml import config_toml
from toy import segment_data


def seeds_25() -> list[dict]:
    """25 seeds on a 5 x 5 grid (x 4 mm apart, z 3 mm apart) in the default lesion, along y."""
    return [
        Seed(position_mm=(x, 0.0, z), direction=(0.0, 1.0, 0.0)).model_dump(mode="json")
        for x in (-8.0, -4.0, 0.0, 4.0, 8.0)
        for z in (12.0, 15.0, 18.0, 21.0, 24.0)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[1.0, 0.8, 0.6])
    ap.add_argument("--ranks", type=int, default=1)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--toy", action="store_true", help="no seeds, the toy size, 1 rank")
    args = ap.parse_args()
    if args.toy:
        args.sizes, args.ranks = args.sizes[:1], 1
    out = args.out or Path(tempfile.mkdtemp(prefix="spinefe-bench-"))
    rows = []
    for h in args.sizes:
        data = segment_data(h, args.toy, seedless=args.toy)
        if not args.toy:
            data["seeds"] = seeds_25()
        run = out / f"h{data['mesh']['size_mm']}"
        run.mkdir(parents=True, exist_ok=True)
        toml = run / "config.toml"
        toml.write_text(config_toml(parse_config(data)))
        cmd = [
            sys.executable,
            "-m",
            "spinefe",
            "mesh",
            str(toml),
            "--out",
            str(run),
            "--no-cache",
            "--no-figure",
        ]
        if args.ranks > 1:
            cmd = ["timeout", "-k", "10", "3600", str(Path(sys.executable).parent / "mpiexec"),
                   "-n", str(args.ranks), *cmd]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - t0
        s = json.loads((run / "summary.json").read_text())
        rows.append(
            (
                data["mesh"]["size_mm"],
                s["cells"],
                s["dofs_p1_vector"],
                s["timing"],
                wall,
                max(s["peak_memory_mb_per_rank"]),
                s["min_quality"],
            )
        )
    print(
        f"\nmachine: {platform.node()}, {platform.processor() or platform.machine()}, "
        f"ranks {args.ranks}"
    )
    print(
        "| h (mm) | cells | P1 dofs | CAD s | mesh s | distribute s | total wall s | "
        "peak MB/rank | min quality |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for h, cells, dofs, t, wall, mem, q in rows:
        print(
            f"| {h} | {cells:,} | {dofs:,} | {t['cad_seconds']} | {t['mesh_seconds']} | "
            f"{t['distribute_seconds']} | {wall:.0f} | {mem:.0f} | {q:.2e} |"
        )


if __name__ == "__main__":
    main()
