"""Benchmark: the paper's open question checked with conforming seeds.

Takes the archive of a Pareto search (DIR/checkpoint.pkl of benchmarks/pareto_search.py), picks
in each of the top `--pairs` V100 bins of its `support_uniformity` analysis the dense
low-activity and the sparse high-activity plan of closest coverage, and re-evaluates both with
their capsules meshed (`evaluate_conforming`, h = --size). Prints, per plan, the lesion bone
strain energy density CoV and the lesion modulus relative to the tumour model, embedded (from
the search) and conforming; rewrites DIR/support_uniformity.json after every plan (a plan that
fails to mesh or solve is recorded with its error and the others go on).

    mpiexec -n 2 python benchmarks/support_uniformity.py --search DIR [--size 2.2] [--pairs 3]
        [--toy]  (one pair, meshed at the test suite's coarse size; benchmarks/toy.py)
"""

from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path


def pairs(rows: list[dict], analysis: dict, n: int) -> list[tuple[dict, dict]]:
    """Per bin (highest V100 first, at most `n` bins): the dense and sparse plans of closest
    V100; bins without both are left out."""
    out = []
    for b in sorted(analysis["bins"], key=lambda b: -b["V100_percent"][0]):
        lo, hi = b["V100_percent"]
        inside = [r for r in rows if r["valid"] and lo <= r["V100_percent"] <= hi
                  and r["D90_Gy"] >= analysis["prescription_Gy"]
                  and not r.get("hybrid_activity_mCi")]
        dense = [r for r in inside if r["activity_mCi"] <= analysis["low_mCi"]]
        sparse = [r for r in inside if r["activity_mCi"] >= analysis["high_mCi"]]
        if dense and sparse and len(out) < n:
            out.append(min(((d, s) for d in dense for s in sparse),
                           key=lambda p: abs(p[0]["V100_percent"] - p[1]["V100_percent"])))
    return out


def main() -> None:
    from mpi4py import MPI

    from spinefe.config.loading import parse_config
    from spinefe.common.errors import SolverError
    from spinefe.planning.evaluation import evaluate_conforming
    from spinefe.geometry.layout import segment_layout
    from spinefe.geometry.segment import segment_geometry
    from spinefe.common.errors import MeshingError
    from spinefe.geometry.mesh import default_cache_dir
    from spinefe.planning.optimisation import design_plan, evaluation_rows, row_design
    from spinefe.common.parallel import write_json
    from toy import segment_data

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--search", type=Path, required=True, help="output DIR of a Pareto search")
    p.add_argument("--size", type=float, default=2.2, help="h (mm) of the conforming meshes")
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--toy", action="store_true", help="one pair on the toy segment")
    args = p.parse_args()
    if args.toy:
        args.pairs = 1
    comm = MPI.COMM_WORLD
    summary = json.loads((args.search / "summary.json").read_text())
    with open(args.search / "checkpoint.pkl", "rb") as f:
        archive = pickle.load(f)[2]["archive"]  # (key, algorithm, state): spinefe.planning.search
    cfg = parse_config(segment_data(args.size, args.toy, seedless=True))
    analysis = summary["support_uniformity"] | {"prescription_Gy": summary["prescription_Gy"]}
    layout = segment_layout(segment_geometry(cfg))
    results = []
    chosen = pairs(evaluation_rows(archive), analysis, args.pairs)
    if comm.rank == 0 and not chosen:
        print("no V100 bin holds both a dense low-activity and a sparse high-activity plan")
    for dense, sparse in chosen:
        for family, row in (("dense", dense), ("sparse", sparse)):
            plan = design_plan(layout, cfg.lesion, cfg.seed_capsule, cfg.dosimetry,
                               row_design(row))
            result = {"family": family, "plan": plan.name, "seeds": row["seeds"],
                      "activity_mCi": row["activity_mCi"], "V100_percent": row["V100_percent"]}
            try:
                rel = evaluate_conforming(cfg, plan, comm, default_cache_dir()).mechanics[
                    "relative_to_tumour"]
            except (MeshingError, SolverError) as err:  # raised on every rank
                result["error"] = str(err)
            else:
                result |= {"bone_sed_cov_ratio": {"embedded": row["lesion_bone_sed_cov_ratio"],
                                                  "conforming": rel["lesion_bone_sed_cov"]},
                           "lesion_modulus_ratio": {"embedded": row["lesion_modulus_ratio"],
                                                    "conforming":
                                                        rel["lesion_apparent_modulus_MPa"]}}
            results.append(result)
            write_json(comm, {"size_mm": cfg.mesh.size_mm, "plans": results},
                       args.search / "support_uniformity.json")
            if comm.rank == 0:
                print(line(family, result), flush=True)


def line(family: str, r: dict) -> str:
    """One printed result: the plan's CoV and modulus ratios, or its error."""
    head = f"{family:6s} {r['plan']:45s} V100 {r['V100_percent']:6.2f} % | "
    if "error" in r:
        return head + "failed: " + r["error"]
    return (head + f"bone SED CoV x{r['bone_sed_cov_ratio']['embedded']:.3f} embedded, "
            f"x{r['bone_sed_cov_ratio']['conforming']:.3f} conforming | lesion modulus "
            f"x{r['lesion_modulus_ratio']['embedded']:.4f} / "
            f"x{r['lesion_modulus_ratio']['conforming']:.4f}")


if __name__ == "__main__":
    main()
