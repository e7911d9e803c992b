"""The solver layer: every KSP and SNES of the mechanics is made here.

As DOLFINx's LinearProblem and NonlinearProblem do, each solver object has its own options
prefix (`spinefe_<name>_<id>_`, the same on all ranks); its options are written into PETSc's
options database under that prefix, read by setFromOptions (and by the set-up that follows:
GAMG reads its level options when it builds the hierarchy), and removed again. No global state
is left behind. The options are data: the built-in ones (`ksp_options`, `snes_options`), then
the user's (`SolverOptions.petsc`, the config's `[mechanics.petsc]`), which override them.

Every solve checks its converged reason and raises SolverError with the reason and the
iteration count. `solve_linear` repeats a failed CG + GAMG solve with MUMPS (the direct
fallback); `FactorisedCG` is CG preconditioned by a fixed factorisation (plan evaluation).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from dolfinx import fem
from mpi4py import MPI
from petsc4py import PETSc

from spinefe.common.errors import SolverError

log = logging.getLogger(__name__)

KSP_REASONS = {v: k for k, v in PETSc.KSP.ConvergedReason.__dict__.items()
               if not k.startswith("_")}
SNES_REASONS = {v: k for k, v in PETSc.SNES.ConvergedReason.__dict__.items()
                if not k.startswith("_")}


@dataclass(frozen=True)
class SolverOptions:
    """`cg_gamg` (CG + aggregation AMG, rigid-body near-nullspace; `ksp_options`) or `mumps` (LU).

    direct_fallback: where cg_gamg does not converge (e.g. DIVERGED_INDEFINITE_PC on the slivers
    between closely packed capsules), solve again with MUMPS; the solution's converged_reason
    says so. False raises SolverError instead.
    petsc: the user's PETSc options as (name, value) pairs, names without '-' or prefix (e.g.
    ("ksp_rtol", 1e-10)); applied after the built-in options of every solve, which they override.
    """

    solver: str = "cg_gamg"
    rtol: float = 1e-8
    max_iterations: int = 500
    prolongator_smoothing_steps: int = 0
    direct_fallback: bool = True
    petsc: tuple[tuple[str, Any], ...] = ()

    @property
    def user_options(self) -> dict[str, Any]:
        return dict(self.petsc)


#: GAMG's coarsest grid: at most this many equations, factorised (docs/mechanics.md).
COARSE_EQUATIONS = 10000

#: Options that choose the method: the MUMPS fallback keeps its own (a user's pc_type under
#: preonly would make it return an unsolved system as converged).
METHOD_OPTIONS = ("ksp_type", "pc_type", "pc_factor_mat_solver_type")


def ksp_options(opts: SolverOptions) -> dict:
    """The built-in KSP/PC options of `opts` (without the user's)."""
    if opts.solver == "mumps":
        return {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"}
    if opts.solver != "cg_gamg":
        raise ValueError(f"solver must be 'cg_gamg' or 'mumps', got {opts.solver!r}")
    return {
        "ksp_type": "cg",
        "ksp_norm_type": "unpreconditioned",  # rtol on the true residual ||b - A u|| / ||b||
        "ksp_rtol": opts.rtol,
        "ksp_atol": 0.0,
        "ksp_max_it": opts.max_iterations,
        "pc_type": "gamg",
        "pc_gamg_type": "agg",
        # Dropping weak couplings (< 5 % of the diagonal) from the aggregation graph keeps the
        # aggregates inside one material despite the 1e5 stiffness contrast of bone, disc and
        # titanium. Plain aggregation (nsmooths 0) by default: smoothing the prolongator saves
        # some iterations but its denser coarse operators cost more set-up than it saves.
        "pc_gamg_threshold": 0.05,
        "pc_gamg_agg_nsmooths": opts.prolongator_smoothing_steps,
        # With the threshold on every level the coarsening stalls below ~1e4 equations (near
        # single-node aggregates, 14 levels at h = 2 mm): stop there and factorise the coarse
        # grid (GAMG's coarse solver: LU on one rank), and visit the coarse levels twice per
        # cycle (W-cycle); point-block (3 x 3 nodal) Jacobi inside Chebyshev is cheaper per
        # sweep than SOR and parallelises exactly. Measured in docs/mechanics.md (Performance).
        "pc_gamg_coarse_eq_limit": COARSE_EQUATIONS,
        "pc_mg_cycle_type": "w",
        "mg_levels_ksp_type": "chebyshev",
        "mg_levels_pc_type": "pbjacobi",
    }


def options_prefix(name: str, owner: object, comm) -> str:
    """`spinefe_<name>_<hex>_`: unique among the live solver objects of the process (the id of
    `owner` on rank 0) and the same on every rank of `comm` (an mpi4py communicator);
    collective."""
    return f"spinefe_{name}_{comm.bcast(id(owner), root=0):x}_"


@contextmanager
def pushed_options(prefix: str, options: Mapping[str, Any]) -> Iterator[None]:
    """`options` in PETSc's global options database under `prefix` while the block runs; they
    are removed afterwards, also when it raises."""
    db = PETSc.Options(prefix)
    for key, value in options.items():
        db[key] = value
    try:
        yield
    finally:
        for key in options:
            del db[key]


def ksp_reason(ksp: PETSc.KSP) -> str:
    """The KSP's converged reason by name (e.g. DIVERGED_MAX_IT)."""
    reason = ksp.getConvergedReason()
    return KSP_REASONS.get(reason, str(reason))


def check_ksp(ksp: PETSc.KSP, what: str, rtol: float) -> str:
    """The KSP's converged reason by name; SolverError naming `what`, the reason, the iterations
    and the residual when it did not converge."""
    reason, its = ksp.getConvergedReason(), ksp.getIterationNumber()
    name = ksp_reason(ksp)
    if reason <= 0:
        raise SolverError(f"{what} did not converge: {name} after {its} iterations "
                          f"(residual norm {ksp.getResidualNorm():.3e}, rtol {rtol})")
    return name


class LinearSolver:
    """A KSP on operator A (preconditioned from P, default A) set up from `options` under its
    own prefix; the options are removed once the KSP is set up; collective."""

    def __init__(self, A: PETSc.Mat, options: Mapping[str, Any], name: str,
                 P: PETSc.Mat | None = None):
        comm = A.getComm()
        self.options = dict(options)
        self.prefix = options_prefix(name, self, comm.tompi4py())
        self.ksp = PETSc.KSP().create(comm)
        self.ksp.setOptionsPrefix(self.prefix)
        self.ksp.setOperators(A, P)
        with pushed_options(self.prefix, self.options):
            self.ksp.setFromOptions()
            self.ksp.setUp()

    @property
    def iterations(self) -> int:
        return int(self.ksp.getIterationNumber())

    def destroy(self) -> None:
        self.ksp.destroy()


@dataclass
class LinearSolve:
    """What `solve_linear` did: iterations and converged reason of the solve that counted (with
    the failed cg_gamg solve named after a fallback), the options of that solve, seconds."""

    iterations: int
    reason: str
    options: SolverOptions
    setup_seconds: float
    solve_seconds: float


def solve_linear(A: PETSc.Mat, b: PETSc.Vec, x: PETSc.Vec, options: SolverOptions,
                 name: str = "elasticity") -> LinearSolve:
    """Solve A x = b (x: the initial guess's storage, overwritten) with `options`: the built-in
    KSP options, then the user's; where cg_gamg fails and options.direct_fallback, again with
    MUMPS on the same operator (the user's options but those of METHOD_OPTIONS apply to it
    too, e.g. mat_mumps_icntl_14). SolverError when the last solve did not converge;
    collective."""
    t0 = time.perf_counter()
    solver = LinearSolver(A, {**ksp_options(options), **options.user_options}, name)
    t1 = time.perf_counter()
    solver.ksp.solve(b, x)
    fallback = ""
    ksp = solver.ksp
    if ksp.getConvergedReason() <= 0 and options.solver == "cg_gamg" and options.direct_fallback:
        fallback = (f" (mumps; cg_gamg {ksp_reason(ksp)} after {ksp.getIterationNumber()} "
                    "iterations)")
        log.warning("%s: cg_gamg %s; solving again with MUMPS", name, ksp_reason(ksp))
        solver.destroy()
        user = {k: v for k, v in options.user_options.items() if k not in METHOD_OPTIONS}
        options = replace(options, solver="mumps")
        solver = LinearSolver(A, {**ksp_options(options), **user}, name)
        solver.ksp.solve(b, x)
    t2 = time.perf_counter()
    try:
        reason = check_ksp(solver.ksp, options.solver, options.rtol) + fallback
        return LinearSolve(solver.iterations, reason, options, t1 - t0, t2 - t1)
    finally:
        solver.destroy()


class FactorisedCG(LinearSolver):
    """CG on A preconditioned by a Cholesky factorisation (MUMPS) of P, made once and reused
    while P is fixed (plan evaluation: P the tumour operator, A - P a local change, so CG
    converges in a few iterations); the initial guess is x. `user` options override the
    built-in ones; collective."""

    def __init__(self, A: PETSc.Mat, P: PETSc.Mat, rtol: float, max_iterations: int,
                 user: Mapping[str, Any] | None = None, name: str = "factorised_cg"):
        self.rtol = rtol
        options = {
            "ksp_type": "cg",
            "ksp_norm_type": "unpreconditioned",  # rtol on ||b - A u|| / ||b||
            "ksp_rtol": rtol,
            "ksp_atol": 0.0,
            "ksp_max_it": max_iterations,
            "ksp_initial_guess_nonzero": True,
            "pc_type": "cholesky",
            "pc_factor_mat_solver_type": "mumps",
            "ksp_reuse_preconditioner": True,  # factorise P once
            **(user or {}),
        }
        super().__init__(A, options, name, P)
        self._reuse = bool(options["ksp_reuse_preconditioner"])

    def factorise_each_solve(self, A: PETSc.Mat) -> None:
        """Precondition with the factorisation of A itself, made again at every solve."""
        self.ksp.setOperators(A, A)
        self.ksp.getPC().setReusePreconditioner(False)
        self._reuse = False

    def solve(self, b: PETSc.Vec, x: PETSc.Vec, what: str = "CG") -> int:
        """Solve from the initial guess x; the iterations, or SolverError; collective."""
        self.ksp.solve(b, x)
        check_ksp(self.ksp, what, self.rtol)
        return self.iterations

    @property
    def fixed_factor(self) -> PETSc.Mat | None:
        """P's factorisation when every solve is CG on the true residual preconditioned by it
        (the built-in options: `solve_many` applies), else None (e.g. factorise_each_solve, or a
        user's ksp_type or pc_type)."""
        pc = self.ksp.getPC()
        if (self.ksp.getType() != "cg" or pc.getType() not in ("cholesky", "lu")
                or not self._reuse
                or self.ksp.getNormType() != PETSc.KSP.NormType.UNPRECONDITIONED):
            return None
        return pc.getFactorMatrix()

    def solve_many(self, changes: Sequence[PETSc.Mat], b: PETSc.Vec, x0: PETSc.Vec,
                   what: str = "CG") -> tuple[np.ndarray, list[int], list[int]]:
        """Solve (P + D_j) x_j = b for each change D_j from the initial guess x0: CG as `solve`
        does with A = P + D_j (the same iterates up to round-off, the same stopping test:
        ||b - A x|| <= rtol ||b||), the systems in lockstep, so that each iteration applies P's
        factorisation to the residuals of all systems not yet converged at once. A triangular
        solve with the factor is memory-bound; MUMPS reads the factor once for all right-hand
        sides (78k dofs, 1 rank: 0.13 s for one, 0.018 s each for 16). Needs `fixed_factor`.
        Returns the local rows of the solutions (one column per change), the iterations and
        the systems that did not converge within the iteration limit (their columns hold the
        last iterates: the caller solves them otherwise); SolverError names a system on which
        CG breaks down (an indefinite operator); collective."""
        factor = self.fixed_factor
        if factor is None:
            raise ValueError("solve_many needs CG preconditioned by a fixed factorisation")
        rtol, _, dtol, max_it = self.ksp.getTolerances()
        _, P = self.ksp.getOperators()
        comm = b.getComm()
        mpi = comm.tompi4py()
        n, size = b.getLocalSize(), b.getSize()
        k = len(changes)
        if not k:
            return np.empty((n, 0)), [], []

        def dots(u: np.ndarray, v: np.ndarray) -> np.ndarray:  # column-wise u_j . v_j
            return mpi.allreduce(np.einsum("ij,ij->j", u, v), op=MPI.SUM)

        def dense(M: np.ndarray) -> PETSc.Mat:  # a PETSc view of local rows, F-contiguous
            return PETSc.Mat().createDense(((n, size), (PETSc.DECIDE, M.shape[1])), array=M,
                                           comm=comm)

        X = np.empty((n, k), order="F")  # the solutions, filled as the systems converge
        x = x0.getArray(readonly=True)
        r = b.getArray(readonly=True) - _mult(P, x0, size, comm)  # b - P x0
        R = np.asfortranarray(np.stack([r - _mult(D, x0, size, comm) for D in changes], 1))
        bnorm = b.norm()
        target = rtol * bnorm
        norm = np.sqrt(dots(R, R))
        iterations = np.zeros(k, int)
        # The systems not yet converged, in lockstep: their indices, iterates, residuals,
        # search directions (zero before the first) and last r.z (any value before the first).
        ids = np.arange(k)
        Xa = np.asfortranarray(np.repeat(x[:, None], k, 1))
        Da, beta = np.zeros((n, k), order="F"), np.ones(k)
        while True:
            done = norm[ids] <= target
            if done.any():
                X[:, ids[done]] = Xa[:, done]
                ids, Xa, R, Da, beta = (ids[~done], *(np.asfortranarray(M[:, ~done])
                                                      for M in (Xa, R, Da)), beta[~done])
            if not ids.size:
                return X, iterations.tolist(), []
            if iterations[ids[0]] >= max_it:  # lockstep: every system left is at the limit
                X[:, ids] = Xa
                return X, iterations.tolist(), ids.tolist()
            Z = np.empty_like(R)
            rhs, out = (dense(M) for M in (R, Z))
            factor.matSolve(rhs, out)  # Z = P^-1 R, the factor read once for all columns
            rz = dots(R, Z)
            _check(rz < 0.0, ids, what, "DIVERGED_INDEFINITE_PC")
            Da *= rz / beta
            Da += Z
            beta = rz
            directions = dense(Da)
            product = P.matMult(directions)  # P Da, P read once for all columns
            W = np.array(product.getDenseArray(), order="F")
            for j, i in enumerate(ids):
                W[:, j] += _mult(changes[i], Da[:, j], size, comm)
            for M in (rhs, out, directions, product):
                M.destroy()
            dw = dots(Da, W)
            _check(dw <= 0.0, ids, what, "DIVERGED_INDEFINITE_MAT")
            alpha = rz / dw
            Xa += alpha * Da
            R -= alpha * W
            norm[ids] = np.sqrt(dots(R, R))
            iterations[ids] += 1
            _check(norm[ids] > dtol * bnorm, ids, what, "DIVERGED_DTOL")


def _mult(A: PETSc.Mat, x, size: int, comm) -> np.ndarray:
    """A x (local rows) for a Vec or the local rows of one (a numpy array)."""
    if isinstance(x, np.ndarray):
        x = PETSc.Vec().createWithArray(x, size=(x.size, size), comm=comm)
    y = A.createVecLeft()
    A.mult(x, y)
    return y.getArray()


def _check(failed: np.ndarray, ids: np.ndarray, what: str, reason: str) -> None:
    """SolverError naming the first system of `ids` that `failed`."""
    if failed.any():
        raise SolverError(f"{what} (system {ids[np.argmax(failed)]}) did not converge: {reason}")


def snes_options(line_search: str, max_iterations: int, inexact: bool) -> dict:
    """The built-in SNES options (Newton with a line search); the KSP's come from ksp_options."""
    return {
        "snes_type": "newtonls",
        "snes_linesearch_type": line_search,
        "snes_stol": 0.0,
        "snes_max_it": max_iterations,
        # Eisenstat-Walker: loose linear solves far from the solution (fewer CG iterations
        # in all; measured 58 s against 68 s for a 7.5 N m bending case on the coarse mesh).
        "snes_ksp_ew": inexact,
    }


class NewtonSolver:
    """A PETSc SNES with its own options prefix on residual and Jacobian callbacks; collective.

    Its options stay in the options database while the solver is open (from construction to
    `close`): GAMG reads its level options each time a new Jacobian makes it rebuild the
    hierarchy. Use as a context manager, or call close().
    """

    def __init__(self, comm, b: PETSc.Vec, A: PETSc.Mat, residual: Callable, jacobian: Callable,
                 options: Mapping[str, Any], name: str = "newton",
                 precheck: Callable | None = None):
        self.options = dict(options)
        self.prefix = options_prefix(name, self, comm)
        self._open = ExitStack()
        with ExitStack() as stack:  # undone if the set-up raises
            stack.enter_context(pushed_options(self.prefix, self.options))
            self.snes = PETSc.SNES().create(comm)
            stack.callback(self.snes.destroy)
            self.snes.setOptionsPrefix(self.prefix)
            self.snes.setFunction(residual, b)
            self.snes.setJacobian(jacobian, A)
            self.snes.setFromOptions()
            self.snes.setDivergenceTolerance(1e300)  # contact: a first step may penetrate deeply
            if precheck is not None:
                self.snes.setLineSearchPreCheck(precheck)
            self._open = stack.pop_all()

    def __enter__(self) -> NewtonSolver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Destroy the SNES and remove its options from the database (idempotent)."""
        self._open.close()


def rigid_body_nullspace(V: fem.FunctionSpace) -> PETSc.NullSpace:
    """Six rigid-body modes from the owned dof coordinates (near-nullspace for GAMG)."""
    n = V.dofmap.index_map.size_local
    coords = V.tabulate_dof_coordinates()[:n].ravel()
    vec = PETSc.Vec().createWithArray(coords, bsize=3, comm=V.mesh.comm)
    return PETSc.NullSpace().createRigidBody(vec)
