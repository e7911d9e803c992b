"""Benchmark: element quality of the default segment at h = 2.0, 1.0, 0.6 mm.

For each size, meshes the default segment (16 seeds) on one rank without the cache and prints
cells, the minimum radius ratio 3 r_in / r_circ (`mesh.cell_quality`; 1 = regular tetrahedron)
and the region holding it, a histogram of the radius ratio, the CAD and gmsh seconds, and the
elements across each thin layer (cortical shell, bony endplates, facet cartilage).
Elements across a layer = thickness / the mean edge length of its tetrahedra.
Meshing at 0.6 mm takes a few minutes; `--toy` measures the test suite's coarse segment
(benchmarks/toy.py), read from the mesh cache ($SPINEFE_CACHE) when it holds it.

    python benchmarks/mesh_quality.py [--sizes 2.0 1.0 0.6] [--toy] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

#: Histogram bin edges of the radius ratio.
BINS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)


def thin_layers(layers) -> dict[str, float]:
    """Thin-layer regions and their thickness (mm)."""
    from spinefe.common import regions as R

    out = {}
    for lv in R.VERTEBRAE:
        out[f"{lv}.cortical"] = layers.cortical_shell_mm
        out[f"{lv}.endplate_superior"] = layers.bony_endplate_mm
        out[f"{lv}.endplate_inferior"] = layers.bony_endplate_mm
        for side in R.SIDES:
            out[R.cartilage(side, lv)] = layers.cartilage_mm
    return out


def measure(size: float, toy: bool) -> dict:
    """Mesh the default segment at `size` (mm) without the cache, or take the toy segment from
    the cache, and measure its elements (one rank)."""
    import numpy as np
    from mpi4py import MPI

    from spinefe.config.loading import parse_config
    from spinefe.geometry.mesh import build_mesh, cell_quality, default_cache_dir
    from spinefe.geometry.segment import segment_geometry
    from toy import segment_data

    cfg = parse_config(segment_data(size, toy))
    t0 = time.perf_counter()
    model = build_mesh(segment_geometry(cfg), MPI.COMM_SELF, default_cache_dir() if toy else None)
    wall = time.perf_counter() - t0
    mesh = model.mesh
    n = mesh.topology.index_map(3).size_local
    q = cell_quality(mesh)
    region = np.full(n, -1)
    keep = model.cell_tags.indices < n
    region[model.cell_tags.indices[keep]] = model.cell_tags.values[keep]
    name_of = {t: name for name, (d, t) in model.names.items() if d == 3}
    worst = int(np.argmin(q))
    x = mesh.geometry.x[mesh.geometry.dofmaps[0][:n]]
    edges = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    mean_edge = np.mean([np.linalg.norm(x[:, i] - x[:, j], axis=1) for i, j in edges], axis=0)
    across = {}
    for name, t in thin_layers(cfg.layers).items():
        sel = region == model.tag(name)
        across[name] = round(float(t / mean_edge[sel].mean()), 2)
    counts, _ = np.histogram(q, bins=BINS)
    bins = zip(BINS[:-1], BINS[1:], counts, strict=True)
    return {
        "size_mm": cfg.mesh.size_mm,
        "cells": int(n),
        "min_radius_ratio": float(q.min()),
        "worst_region": name_of.get(int(region[worst])),
        "worst_centroid_mm": np.round(x[worst].mean(axis=0), 2).tolist(),
        "histogram": {f"{lo}-{hi}": int(c) for lo, hi, c in bins},
        "below_0.05": int((q < 0.05).sum()),
        "elements_across": across,
        "cad_s": model.meta["cad_seconds"],
        "mesh_s": model.meta["mesh_seconds"],
        "total_s": round(wall, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", type=float, nargs="+", default=[2.0, 1.0, 0.6])
    p.add_argument("--toy", action="store_true", help="the test suite's coarse segment")
    p.add_argument("--out", type=Path, default=None, help="also write the rows as JSON")
    args = p.parse_args()
    sizes = args.sizes[:1] if args.toy else args.sizes
    rows = []
    for h in sizes:
        rows.append(measure(h, args.toy))
        print(json.dumps(rows[-1]), flush=True)
    print(f"\nmachine: {platform.node()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print("| h (mm) | cells | min radius ratio (region) | < 0.05 | CAD s | gmsh s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size_mm']} | {r['cells']:,} | {r['min_radius_ratio']:.2e} "
              f"({r['worst_region']}) | {r['below_0.05']} | {r['cad_s']} | {r['mesh_s']} |")
    print("\nradius ratio histogram (cells per bin):")
    print("| h (mm) | " + " | ".join(rows[0]["histogram"]) + " |")
    print("|---" * (len(BINS)) + "|")
    for r in rows:
        print(f"| {r['size_mm']} | " + " | ".join(str(c) for c in r["histogram"].values()) + " |")
    print("\nelements across thin layers (thickness / mean edge length):")
    for r in rows:
        print(f"h = {r['size_mm']}: {r['elements_across']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
