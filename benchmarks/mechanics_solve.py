"""Benchmark: the implanted segment's linear solve, option sets x mesh sizes x MPI ranks.

For every size and rank count, one `mpiexec` (under a timeout) assembles the system once and
solves it with each option set in turn (a fresh KSP each; `OPTION_SETS` below: the built-in
default, the pre-issue-21 default and the variants weighed against it, or `mumps`). Prints per
set: dofs, CG iterations, preconditioner set-up and solve seconds, microseconds per dof (set-up +
solve), seconds per iteration against one SpMV, the relative displacement difference from the
first set of the run, and per run the peak memory (summed over ranks, and per dof: the whole
process, so the largest set counts), and the speed-up from 1 to 2 ranks per set. The mesh is
cached ($SPINEFE_CACHE; the first run meshes: about 5 minutes at 0.6 mm).

    python benchmarks/mechanics_solve.py [--size 0.6] [--ranks 1 2] [--options default old]
    python benchmarks/mechanics_solve.py --toy  # the toy segment (benchmarks/toy.py), 1 rank

--smoothing N (the former flag) sets `mechanics.prolongator_smoothing_steps` under every set.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: PETSc options applied over the built-in ones (`ksp_options`); `mumps` is the direct solver.
_OLD = {"pc_gamg_threshold": 0.05, "pc_gamg_coarse_eq_limit": 50, "mg_levels_pc_type": "sor",
        "pc_mg_cycle_type": "v",
        "pc_gamg_agg_nsmooths": 0}
_SA = {"pc_gamg_threshold": 0.05, "pc_gamg_agg_nsmooths": 1, "pc_mg_cycle_type": "v"}
#: Smoothed aggregation with point-block Jacobi smoothing and a 10,000-equation coarse grid.
_SA_PB = {**_SA, "pc_gamg_coarse_eq_limit": 10000, "mg_levels_pc_type": "pbjacobi"}

OPTION_SETS: dict[str, dict | None] = {
    "default": {},
    "default_3sweeps": {"mg_levels_ksp_max_it": 3},
    "default_4sweeps": {"mg_levels_ksp_max_it": 4},
    # The default before issue 21: plain aggregation, threshold 0.05, SOR, GAMG's coarse limit.
    "old": _OLD,
    "old_coarse10k": {**_OLD, "pc_gamg_coarse_eq_limit": 10000},
    "pbjacobi_coarse10k": {**_OLD, "pc_gamg_coarse_eq_limit": 10000,
                           "mg_levels_pc_type": "pbjacobi"},
    "pbjacobi_coarse4k": {**_OLD, "pc_gamg_coarse_eq_limit": 4000,
                          "mg_levels_pc_type": "pbjacobi"},
    "pbjacobi_coarse20k": {**_OLD, "pc_gamg_coarse_eq_limit": 20000,
                           "mg_levels_pc_type": "pbjacobi"},
    "pbjacobi_coarse10k_thr0": {**_OLD, "pc_gamg_coarse_eq_limit": 10000,
                                "mg_levels_pc_type": "pbjacobi", "pc_gamg_threshold": 0.0},
    "pbjacobi_coarse10k_w": {**_OLD, "pc_gamg_coarse_eq_limit": 10000,
                             "mg_levels_pc_type": "pbjacobi", "pc_mg_cycle_type": "w"},
    "pbjacobi_coarse10k_2sweeps": {**_OLD, "pc_gamg_coarse_eq_limit": 10000,
                                   "mg_levels_pc_type": "pbjacobi", "mg_levels_ksp_max_it": 4},
    "sa": _SA,
    "sa_coarse10k": {**_SA, "pc_gamg_coarse_eq_limit": 10000},
    "sa_pbjacobi_coarse10k": {**_SA_PB},
    "sa_pbjacobi_coarse10k_thr0": {**_SA_PB, "pc_gamg_threshold": 0.0},
    "sa_pbjacobi_coarse10k_aggr2": {**_SA_PB, "pc_gamg_aggressive_coarsening": 2},
    "sa_pbjacobi_coarse10k_aggr2_thr0": {**_SA_PB, "pc_gamg_aggressive_coarsening": 2,
                                         "pc_gamg_threshold": 0.0},
    "sa_pbjacobi_coarse10k_aggr2_w": {**_SA_PB, "pc_gamg_aggressive_coarsening": 2,
                                      "pc_mg_cycle_type": "w"},
    "sa_pbjacobi_coarse10k_aggr4": {**_SA_PB, "pc_gamg_aggressive_coarsening": 4},
    "sa_pbjacobi_coarse10k_aggr2_mis": {**_SA_PB, "pc_gamg_aggressive_coarsening": 2,
                                        "pc_gamg_aggressive_square_graph": False},
    "old_coarse10k_w": {**_OLD, "pc_gamg_coarse_eq_limit": 10000, "pc_mg_cycle_type": "w"},
    "pbjacobi_coarse4k_w": {**_OLD, "pc_gamg_coarse_eq_limit": 4000,
                            "mg_levels_pc_type": "pbjacobi", "pc_mg_cycle_type": "w"},
    "pbjacobi_coarse2k_w": {**_OLD, "pc_gamg_coarse_eq_limit": 2000,
                            "mg_levels_pc_type": "pbjacobi", "pc_mg_cycle_type": "w"},
    "pbjacobi_coarse10k_w_thr02": {**_OLD, "pc_gamg_coarse_eq_limit": 10000,
                                   "mg_levels_pc_type": "pbjacobi", "pc_mg_cycle_type": "w",
                                   "pc_gamg_threshold": 0.02},
    "pbjacobi_coarse10k_w_thr1": {**_OLD, "pc_gamg_coarse_eq_limit": 10000,
                                  "mg_levels_pc_type": "pbjacobi", "pc_mg_cycle_type": "w",
                                  "pc_gamg_threshold": 0.1},
    "asm_agg_coarse10k": {**_OLD, "pc_gamg_coarse_eq_limit": 10000, "pc_gamg_asm_use_agg": True,
                          "mg_levels_pc_type": "asm", "mg_levels_sub_pc_type": "cholesky",
                          "mg_levels_pc_asm_overlap": 0},
    "bddc": {"pc_type": "bddc"},
    "hypre": {"pc_type": "hypre", "pc_hypre_type": "boomeramg",
              "pc_hypre_boomeramg_nodal_coarsen": 6, "pc_hypre_boomeramg_vec_interp_variant": 3,
              "pc_hypre_boomeramg_strong_threshold": 0.5},
    "mumps": None,
    # A prototype of a nucleus treatment (here only): CG with a symmetric multiplicative
    # composite of an exact (MUMPS) solve on the dofs of the averaged-pressure cells and the
    # pbjacobi_coarse10k GAMG cycle (nucleus, GAMG, nucleus), see `nucleus_block_solve`.
    "nucleus_block": None,
    # A prototype (here only): the averaged-pressure term as a displacement-pressure block
    # system [[K_dev + a C, B^T], [B, -M / (1 - a)]] (C = B^T M^-1 B, a = 0.01: the u block keeps
    # a nucleus bulk modulus of about 5 mu), FGMRES with a Schur-complement field split (selfp),
    # GAMG on both blocks; see `fieldsplit_solve`.
    "fieldsplit_up": None,
}


def skipped(name: str) -> str:
    """Why option set `name` cannot run with this PETSc ('' when it can)."""
    from petsc4py import PETSc

    pc = (OPTION_SETS[name] or {}).get("pc_type")
    if pc == "hypre" and not PETSc.Sys.hasExternalPackage("hypre"):
        return "skipped: this PETSc has no hypre (BoomerAMG)"
    if pc == "bddc":  # PCSetUp fails on an AIJ operator (PETSc error 62, measured)
        return ("skipped: PCBDDC needs the operator as unassembled subdomain matrices (MATIS); "
                "the DOLFINx assembler makes AIJ")
    return ""


def nucleus_block_solve(system, x, rtol: float, max_iterations: int):
    """Solve with the `nucleus_block` set: (iterations, reason, set-up s, solve s)."""
    import numpy as np
    from petsc4py import PETSc

    V, chi = system.V, system.chi
    cells = np.flatnonzero(chi.x.array[chi.function_space.dofmap.list.ravel()] > 0.5)
    nodes = np.unique(V.dofmap.list[cells].ravel())
    nodes = nodes[nodes < V.dofmap.index_map.size_local].astype(np.int32)
    glob = V.dofmap.index_map.local_to_global(nodes)
    dofs = (3 * glob[:, None] + np.arange(3)).ravel().astype(PETSc.IntType)
    options = {"ksp_type": "cg", "ksp_norm_type": "unpreconditioned", "ksp_rtol": rtol,
               "ksp_atol": 0.0, "ksp_max_it": max_iterations, "pc_type": "composite",
               "pc_composite_type": "symmetric_multiplicative", "pc_composite_pcs": "asm,gamg",
               "sub_0_sub_pc_type": "lu", "sub_0_sub_pc_factor_mat_solver_type": "mumps",
               "sub_0_pc_asm_type": "basic",
               **{"sub_1_" + k: v for k, v in OPTION_SETS["pbjacobi_coarse10k"].items()}}
    from spinefe.mechanics.solvers import ksp_reason, pushed_options

    t0 = time.perf_counter()
    ksp = PETSc.KSP().create(system.A.getComm())
    ksp.setOptionsPrefix("nucleus_block_")
    ksp.setOperators(system.A)
    with pushed_options("nucleus_block_", options):
        ksp.setFromOptions()
        asm = ksp.getPC().getCompositePC(0)
        asm.setASMLocalSubdomains(1, [PETSc.IS().createGeneral(dofs, comm=PETSc.COMM_SELF)])
        ksp.setUp()
        ksp.getPC().setUpOnBlocks()
    t1 = time.perf_counter()
    ksp.solve(system.b, x)
    t2 = time.perf_counter()
    out = ksp.getIterationNumber(), ksp_reason(ksp), t1 - t0, t2 - t1
    ksp.destroy()
    return out


def fieldsplit_solve(system, x, rtol: float, max_iterations: int, alpha: float = 0.01):
    """Solve with the `fieldsplit_up` set: (iterations, reason, set-up s, solve s); x gets u."""
    import numpy as np
    from petsc4py import PETSc

    from spinefe.mechanics.solvers import ksp_reason, pushed_options

    t0 = time.perf_counter()
    A, B, dinv, comm = system.A, system.B, system.dinv, system.A.getComm()
    DB = B.copy()
    DB.diagonalScale(L=dinv)
    C = B.transposeMatMult(DB)
    K0 = A.copy()  # C is zero on the constrained rows (they lie away from the nucleus)
    K0.axpy(alpha - 1.0, C, structure=PETSc.Mat.Structure.SUBSET_NONZERO_PATTERN)
    d = dinv.getArray(readonly=True)
    rows = (np.flatnonzero(d > 0) + B.getOwnershipRange()[0]).astype(PETSc.IntType)
    c0, c1 = B.getOwnershipRangeColumn()
    Br = B.createSubMatrix(PETSc.IS().createGeneral(rows, comm=comm),
                           PETSc.IS().createStride(c1 - c0, c0, 1, comm=comm))
    Br.scale(np.sqrt(1.0 - alpha))
    BrT = Br.copy()
    BrT.transpose()
    mass = PETSc.Mat().createAIJ([Br.getSizes()[0]] * 2, nnz=1, comm=comm)
    mass.setUp()
    r0 = mass.getOwnershipRange()[0]
    for i, m in enumerate(1.0 / d[d > 0]):
        mass.setValue(r0 + i, r0 + i, -m)
    mass.assemble()
    K0.setNearNullSpace(A.getNearNullSpace())
    nest = PETSc.Mat().createNest([[K0, BrT], [Br, mass]], comm=comm)
    is_u, is_p = nest.getNestISs()[0]
    block = nest.convert("aij")
    gamg = {k: v for k, v in OPTION_SETS["pbjacobi_coarse10k"].items()}
    options = {"ksp_type": "fgmres", "ksp_gmres_restart": 200, "ksp_rtol": rtol, "ksp_atol": 0.0,
               "ksp_max_it": max_iterations, "pc_type": "fieldsplit",
               "pc_fieldsplit_type": "schur", "pc_fieldsplit_schur_fact_type": "full",
               "pc_fieldsplit_schur_precondition": "selfp",
               "fieldsplit_u_ksp_type": "preonly", "fieldsplit_u_pc_type": "gamg",
               "fieldsplit_p_ksp_type": "preonly", "fieldsplit_p_pc_type": "gamg",
               **{"fieldsplit_u_" + k: v for k, v in gamg.items()}}
    ksp = PETSc.KSP().create(comm)
    ksp.setOptionsPrefix("fieldsplit_up_")
    ksp.setOperators(block)
    with pushed_options("fieldsplit_up_", options):
        ksp.setFromOptions()
        ksp.getPC().setFieldSplitIS(("u", is_u), ("p", is_p))
        ksp.setUp()
        ksp.getPC().getFieldSplitSubKSP()[0].getOperators()[1].setNearNullSpace(
            A.getNearNullSpace())
        ksp.getPC().setUpOnBlocks()
    t1 = time.perf_counter()
    X, rhs = block.createVecs()
    rhs.set(0.0)
    sub = rhs.getSubVector(is_u)
    system.b.copy(sub)
    rhs.restoreSubVector(is_u, sub)
    ksp.solve(rhs, X)
    t2 = time.perf_counter()
    sub = X.getSubVector(is_u)
    sub.copy(x)
    X.restoreSubVector(is_u, sub)
    out = ksp.getIterationNumber(), ksp_reason(ksp), t1 - t0, t2 - t1
    for obj in (ksp, block, nest, mass, Br, BrT, K0, C, DB):
        obj.destroy()
    return out


def spmv_seconds(A, repeat: int = 20) -> float:
    """Seconds of one y = A x (the best of `repeat`)."""
    x, y = A.createVecs()
    x.set(1.0)
    best = float("inf")
    for _ in range(repeat):
        A.getComm().barrier()
        t0 = time.perf_counter()
        A.mult(x, y)
        best = min(best, time.perf_counter() - t0)
    return A.getComm().tompi4py().allreduce(best, op=__import__("mpi4py").MPI.MAX)


def worker(size: float | None, smoothing: int | None, names: list[str], toy: bool) -> None:
    from mpi4py import MPI

    from spinefe.config.loading import parse_config
    from spinefe.config.sections import Config
    from spinefe.geometry.mesh import build_mesh, default_cache_dir
    from spinefe.geometry.segment import segment_geometry
    from spinefe.mechanics.elasticity import assemble_elasticity
    from spinefe.mechanics.materials import material_fields
    from spinefe.mechanics.segment import load_bearing, segment_load_case, solver_options
    from spinefe.mechanics.solvers import solve_linear
    from toy import segment_data

    comm = MPI.COMM_WORLD
    # The toy segment is the test suite's (benchmarks/toy.py), read from $SPINEFE_CACHE.
    data = segment_data(size if size is not None else Config().mesh.size_mm, toy)
    if smoothing is not None:
        data["mechanics"]["prolongator_smoothing_steps"] = smoothing
    cfg = parse_config(data)
    model = load_bearing(build_mesh(segment_geometry(cfg), comm, default_cache_dir()))
    comm.barrier()
    t0 = time.perf_counter()
    system = assemble_elasticity(material_fields(model, cfg.materials, cfg.lesion, "implanted"),
                                 segment_load_case(model, cfg.mechanics),
                                 cfg.mechanics.degree, cfg.mechanics.nearly_incompressible_nu)
    assemble = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    spmv = spmv_seconds(system.A)
    dofs = system.A.getSize()[0]
    base = solver_options(cfg.mechanics)
    reference = None
    for name in names:
        row = {"size_mm": cfg.mesh.size_mm, "ranks": comm.size, "options": name, "dofs": dofs}
        why = skipped(name)
        if why:
            if comm.rank == 0:
                print("RESULT " + json.dumps({**row, "skipped": why}), flush=True)
            continue
        extra = OPTION_SETS[name]
        opts = (base.__class__(**{**base.__dict__, "solver": "mumps"}) if extra is None else
                base.__class__(**{**base.__dict__, "direct_fallback": False,
                                  "petsc": tuple({**base.user_options, **extra}.items())}))
        x = system.uh.x.petsc_vec.copy()
        comm.barrier()
        try:
            if name in ("nucleus_block", "fieldsplit_up"):
                prototype = nucleus_block_solve if name == "nucleus_block" else fieldsplit_solve
                iterations, reason, setup, run = prototype(system, x, base.rtol,
                                                           base.max_iterations)
            else:
                solve = solve_linear(system.A, system.b, x, opts)
                iterations, reason = solve.iterations, solve.reason
                setup, run = solve.setup_seconds, solve.solve_seconds
        except Exception as err:  # noqa: BLE001 (a failing set is a row of the table)
            iterations, reason, setup, run = -1, str(err)[:120], float("nan"), float("nan")
        setup, run = (comm.allreduce(t, op=MPI.MAX) for t in (setup, run))
        if reference is None and iterations >= 0:
            reference = x.copy()
        diff = x.copy()
        diff.axpy(-1.0, reference)
        row.update({
            "iterations": iterations,
            "reason": reason,
            "assemble_s": round(assemble, 2),
            "setup_s": round(setup, 2),
            "solve_s": round(run, 2),
            "us_per_dof": round(1e6 * (setup + run) / dofs, 1),
            "iteration_over_spmv": (round(run / max(iterations, 1) / spmv, 1)
                                    if iterations > 0 else None),
            "spmv_ms": round(1e3 * spmv, 2),
            "rel_diff_vs_first": float(f"{diff.norm() / reference.norm():.2e}"),
        })
        x.destroy()
        diff.destroy()
        if comm.rank == 0:
            print("RESULT " + json.dumps(row), flush=True)
    peak = comm.allreduce(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                          op=MPI.SUM)
    if comm.rank == 0:
        print("PEAK " + json.dumps({"peak_memory_GB": round(peak / 1024.0, 2),
                                    "kB_per_dof": round(1024.0 * peak / dofs, 2)}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--size", type=float, nargs="+", default=[0.6])
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--options", nargs="+", choices=sorted(OPTION_SETS),
                   help="option sets (see OPTION_SETS; default: default old, with --toy default)")
    p.add_argument("--smoothing", type=int, nargs="+", default=[None],
                   help="prolongator_smoothing_steps under every set (default: the config's)")
    p.add_argument("--toy", action="store_true",
                   help="the test suite's segment (benchmarks/toy.py), 1 rank, the default set")
    p.add_argument("--timeout", type=int, default=3600, help="seconds per mpiexec")
    p.add_argument("--out", type=Path, default=Path("results/benchmarks/mechanics.json"))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.toy:
        args.size, args.ranks, args.timeout = [2.5], [1], 300
    args.options = args.options or (["default"] if args.toy else ["default", "old"])
    if args.worker:
        worker(args.size[0], args.smoothing[0], args.options, args.toy)
        return
    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    rows = []
    for size in args.size:
        for smoothing in args.smoothing:
            for ranks in args.ranks:
                cmd = ["timeout", "-k", "10", str(args.timeout), mpiexec, "-n", str(ranks),
                       sys.executable, __file__, "--worker", "--size", str(size),
                       "--options", *args.options] + (["--toy"] if args.toy else [])
                if smoothing is not None:
                    cmd += ["--smoothing", str(smoothing)]
                found = []
                with (tempfile.TemporaryFile("w+") as err,
                      subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True) as run):
                    for line in run.stdout:  # each set as it finishes
                        if line.startswith(("RESULT ", "PEAK ")):
                            found.append(json.loads(line.split(" ", 1)[1]))
                            print(line.strip(), flush=True)
                    run.wait()
                    err.seek(0)
                    stderr = err.read()
                if run.returncode != 0 or not found:
                    sys.exit(f"benchmark run failed ({' '.join(cmd)}):\n{stderr[-3000:]}")
                peak = found[-1] if "kB_per_dof" in found[-1] else {}
                rows += [{**row, "smoothing": smoothing, **peak} for row in found
                         if "options" in row]
    for row in rows:
        one = [r for r in rows if r["ranks"] == 1 and r["ranks"] != row["ranks"]
               and (r["size_mm"], r["options"], r["smoothing"])
               == (row["size_mm"], row["options"], row["smoothing"]) and "setup_s" in r]
        if one and "setup_s" in row:
            row["speedup_vs_1_rank"] = round(
                (one[0]["setup_s"] + one[0]["solve_s"]) / (row["setup_s"] + row["solve_s"]), 2)
            print(f"h {row['size_mm']} {row['options']}: speed-up 1 -> {row['ranks']} ranks "
                  f"(set-up + solve) {row['speedup_vs_1_rank']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
