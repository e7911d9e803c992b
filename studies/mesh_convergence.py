"""Mesh convergence of the mechanics indicators at h = 1.0, 0.8, 0.6 mm (paper section 2).

For every element size the three scenarios are solved on one mesh; the script records the paper's
two indicators (von Mises in the L4 cortical shell and in the L4 superior endplate, max and p99),
the cancellous indicator, the nucleus pressure and the disc bulge, and the change between
successive sizes. The paper adopted 0.6 mm after a change below 5 %.

    mpiexec -n 2 python studies/mesh_convergence.py [--sizes 1.0 0.8 0.6] [--out DIR]

Writes DIR/convergence.json, DIR/convergence.md and DIR/comparison_h<finest>.md. Meshes are
cached ($SPINEFE_CACHE); about 40 min on 2 cores for the default sizes.
"""

from __future__ import annotations

import argparse
import logging
from itertools import pairwise
from pathlib import Path

from mpi4py import MPI

from spinefe.config import SCENARIOS, Config, parse_config
from spinefe.mechanics import load_bearing
from spinefe.mesh import build_mesh, default_cache_dir
from spinefe.parallel import setup_logging, write_json
from spinefe.results import CANCELLOUS, CORTICAL_ENDPLATES, summarize
from spinefe.scenarios import comparison, comparison_markdown
from spinefe.mechanics import solve_segment

INDICATORS = ("L4.cortical", "L4.endplate_superior", CORTICAL_ENDPLATES, CANCELLOUS)
SCALARS = ("nucleus_pressure_MPa", "disc_bulge_mm", "strain_energy_mJ")


def run(sizes: list[float], out: Path) -> dict:
    comm = MPI.COMM_WORLD
    rows = {}
    for h in sizes:
        data = Config().model_dump(mode="json")
        data["mesh"]["size_mm"] = h
        cfg = parse_config(data)
        model = load_bearing(build_mesh(cfg, comm, default_cache_dir()))
        records = {}
        for scenario in SCENARIOS:
            records[scenario], _ = summarize(
                solve_segment(model, cfg, scenario), model, cfg, scenario
            )
        rows[h] = {
            s: {
                "dofs": r["dofs"],
                "iterations": r["iterations"],
                **{k: r[k] for k in SCALARS if k in r},
                **{
                    f"{g}.{stat}": r["von_mises_MPa"][g][stat]
                    for g in INDICATORS
                    for stat in ("max", "p99")
                },
            }
            for s, r in records.items()
        }
        if comm.rank == 0:
            (out / f"comparison_h{h}.md").write_text(comparison_markdown(comparison(records)))
        write_json(comm, {"sizes_mm": sizes, "results": rows}, out / "convergence.json")
    return rows


def markdown(rows: dict) -> str:
    sizes = list(rows)
    keys = [k for k in next(iter(rows[sizes[0]].values())) if k not in ("dofs", "iterations")]
    lines = []
    for scenario in SCENARIOS:
        lines += [f"### {scenario}", ""]
        head = " | ".join(f"h = {h} mm" for h in sizes)
        changes = " | ".join(f"{a} -> {b}" for a, b in pairwise(sizes))
        lines += [f"| quantity | {head} | {changes} |", "|---" * (1 + 2 * len(sizes) - 1) + "|"]
        for key in ("dofs", "iterations", *keys):
            vals = [rows[h][scenario][key] for h in sizes]
            cells = " | ".join(f"{v:.4g}" for v in vals)
            rel = " | ".join(
                f"{100 * (b - a) / abs(a):+.1f} %" if key not in ("dofs", "iterations") else ""
                for a, b in pairwise(vals)
            )
            lines.append(f"| {key} | {cells} | {rel} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", type=float, nargs="+", default=[1.0, 0.8, 0.6])
    p.add_argument("--out", type=Path, default=Path("results/mesh_convergence"))
    args = p.parse_args()
    comm = MPI.COMM_WORLD
    setup_logging(comm)
    logging.getLogger("spinefe").info("mesh convergence: sizes %s -> %s", args.sizes, args.out)
    if comm.rank == 0:
        args.out.mkdir(parents=True, exist_ok=True)
    rows = run(args.sizes, args.out)
    if comm.rank == 0:
        text = markdown(rows)
        (args.out / "convergence.md").write_text(text)
        print(text)


if __name__ == "__main__":
    main()
