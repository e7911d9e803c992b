"""Nonlinear statics: cell-wise material laws, point pairs (ligaments, contact), load stepping.

The residual is the derivative of the stored energy minus the work of the loads (scaled by the
load factor of each step), plus the pairs' forces (mechanics.pairs). The energy density is that
of each cell's law (mechanics.laws: linear elastic by default; neo-Hookean, fibre-reinforced or
orthotropic where the materials say so); nearly incompressible cells (nu above the threshold)
keep only the deviatoric part of their law and take the volumetric energy from the averaged
nodal volume change (mechanics.pressure): W = sum_i K_i m_i theta_i^2 / 2,
theta_i = int(phi_i e_v) / m_i with e_v the law's volume change. Its residual is the form
int(sqrt(K) p_h de_v) with the P1 field p_h = c / m, c_i = int(sqrt(K) phi_i e_v), so only
its tangent's rank-one part B^T diag(1 / m) B (B = dc/du) is added by hand; at small strain
this is the linear averaged-pressure element.

`NonlinearProblem` holds the forms, the matrices and the state and gives the SNES its residual
and Jacobian; `solve_nonlinear` runs the load steps. Every load step is solved by PETSc SNES
(Newton with a line search; mechanics.solvers). A step that does not converge is retried from
the last converged state with half the load increment (automatic incrementation); after
`max_cutbacks` halvings SolverError reports the load factor, the reason and the residual.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import dolfinx.fem.petsc
import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI
from petsc4py import PETSc

from spinefe.common.errors import SolverError
from spinefe.mechanics.elasticity import (
    ElasticSolution,
    LoadCase,
    external_load,
    owned_constrained_rows,
    support_reactions,
)
from spinefe.mechanics.laws import deformation_gradient_of_cells, mixture, second_piola
from spinefe.mechanics.relaxation import Relaxation
from spinefe.mechanics.materials import MaterialFields
from spinefe.mechanics.pairs import PairAssembler, PointPairs
from spinefe.mechanics.pressure import AveragedPressure
from spinefe.mechanics.solvers import (
    SNES_REASONS,
    NewtonSolver,
    SolverOptions,
    ksp_options,
    rigid_body_nullspace,
    snes_options,
)

log = logging.getLogger(__name__)


#: Over `ksp_options`: SOR smoothing in the Newton solves. With point-block Jacobi, Newton with
#: Eisenstat-Walker tolerances stalls at 7e-7 N on a uniform bar (tests/test_solvers.py) while
#: exact linear solves converge; SOR does not stall.
NEWTON_KSP = {"mg_levels_pc_type": "sor"}


@dataclass(frozen=True)
class NewtonOptions:
    """Load steps and the Newton tolerances: a step converges when the residual (N) is below
    max(atol, rtol times the residual of the step's predictor)."""

    steps: int = 4
    line_search: str = "basic"  # PETSc SNESLineSearch type: basic (full step), bt, cp, l2
    rtol: float = 1e-8
    atol: float = 1e-8
    max_iterations: int = 30
    max_cutbacks: int = 6  # halvings of a load increment whose Newton solve fails
    max_pair_updates: int = 20  # re-solves of a load step after pair updates (contact)
    inexact: bool = True  # Eisenstat-Walker linear tolerances (False: linear.rtol throughout)
    linear: SolverOptions = SolverOptions()  # its `petsc` options apply to the SNES too

    def petsc_options(self) -> dict:
        """The SNES's options: the built-in SNES and KSP ones, then the user's."""
        return {**snes_options(self.line_search, self.max_iterations, self.inexact),
                **ksp_options(self.linear), **NEWTON_KSP, **self.linear.user_options}


@dataclass
class NonlinearSolution(ElasticSolution):
    """ElasticSolution plus Newton data per load step and the pair sets' final states."""

    steps: list = field(default_factory=list)
    pair_states: list = field(default_factory=list)  # du (n, 3) per pair set, on rank 0
    support_reactions_N: np.ndarray | None = None  # (supports, 3), see owned_constrained_rows
    path: list = field(default_factory=list)  # PathPoint per load step (a guide for others)


def newton_summary(steps: list[dict]) -> dict:
    """The most Newton iterations of a load step (all its solves) and of one solve, and the
    contact updates of all steps."""
    return {
        "newton_iterations_max_per_step": max(s["newton_iterations"] for s in steps),
        "newton_iterations_max_per_solve": max(s["newton_iterations_max_per_solve"] for s in steps),
        "contact_updates": sum(s["pair_updates"] for s in steps),
    }


PAIR_UPDATES_EXCEEDED = -1000  # a load step still changed the pairs after max_pair_updates
REASONS = {**SNES_REASONS, PAIR_UPDATES_EXCEEDED: "DIVERGED_PAIR_UPDATES"}


@dataclass
class StepResult:
    """The Newton solves of one load step: the last SNES reason, Newton and linear iterations of
    all solves, pair updates, and the most Newton iterations of one solve."""

    reason: int
    newton: int = 0
    linear: int = 0
    updates: int = 0
    most: int = 0


class NonlinearProblem:
    """Residual, Jacobian and state of the static problem at a load factor; collective.

    The cells' laws are those of `materials` (mechanics.laws.CellLaw); the default law (linear
    elastic) takes the others. Prescribed displacements are scaled with the loads. With
    `time_dependent`, the Prony series of `materials.relaxation` relax the stress of their cells
    (`history`, mechanics.laws.prony); without, every cell responds with its instantaneous
    moduli.
    """

    def __init__(self, materials: MaterialFields, load: LoadCase, pair_sets=(),
                 nearly_incompressible_nu: float = 0.49, time_dependent: bool = False):
        mesh = materials.E.function_space.mesh
        self.comm, self.load, self.materials = mesh.comm, load, materials
        V = self.V = fem.functionspace(mesh, ("Lagrange", 1, (3,)))
        v, du = ufl.TestFunction(V), ufl.TrialFunction(V)
        uh = self.uh = fem.Function(V, name="displacement_mm")
        # With P1 on affine tetrahedra the strain energy density is constant per cell and the
        # nodal volumetric terms are at most linear: degree 2 integrates every volume form
        # exactly (UFL would estimate a high degree from ln J and J^(-2/3) and spend most of
        # the time there).
        quadrature = {"quadrature_degree": 2}
        self.pressure = AveragedPressure(materials, nearly_incompressible_nu, quadrature)
        self.w, e_v = mixture(uh, self.pressure.chi, materials.isotropic, materials.laws)
        self.dx = ufl.Measure("dx", domain=mesh, metadata=quadrature)
        self.factor = fem.Constant(mesh, 0.0)
        self.loads = external_load(mesh, load, v, uh)
        self.history = None
        if time_dependent and materials.relaxation:
            elastic = second_piola(uh, self.pressure.chi, materials.isotropic, materials.laws)
            self.history = Relaxation(mesh, materials.relaxation, elastic,
                                      deformation_gradient_of_cells(uh, materials.laws))
            residual = (ufl.derivative(self.history.scale * self.w * self.dx, uh, v)
                        + self.history.residual(v, self.dx) - self.factor * self.loads)
        else:
            residual = ufl.derivative(self.w * self.dx, uh, v) - self.factor * self.loads
        if self.pressure.active:
            p = self.pressure
            self.p_hat = fem.Function(p.P)  # c / m
            residual += p.sqrt_bulk * self.p_hat * ufl.derivative(e_v, uh, v) * p.dx_inc
            self.c_form = fem.form(p.volume_form(e_v))
            self.B_form = fem.form(ufl.derivative(p.volume_form(e_v), uh, du))
            self.B = dolfinx.fem.petsc.create_matrix(self.B_form)
            self.dinv = p.inverse_mass(self.B)
            self.c_vec = dolfinx.fem.petsc.create_vector(p.P)
        self.F_form = fem.form(residual)
        tangent = ufl.derivative(residual, uh, du)
        if load.follower_N:
            # The follower pressure's load stiffness is not symmetric on an open surface; CG
            # needs a symmetric Jacobian, so Newton takes its symmetric part (the skew part,
            # of the order of the preload over the segment's size, only slows convergence).
            stiffness = ufl.derivative(self.loads, uh, du)
            tangent += 0.5 * self.factor * (stiffness - ufl.adjoint(stiffness))
        self.J_form = fem.form(tangent)

        self.local_rows, self.global_rows, self.values, self.support = owned_constrained_rows(
            V, load)
        if self.comm.allreduce(self.local_rows.size, op=MPI.SUM) == 0:
            raise ValueError("no constrained dofs: the problem has rigid-body motions")
        self.A = dolfinx.fem.petsc.create_matrix(self.J_form)
        self.b = dolfinx.fem.petsc.create_vector(V)
        self.pairs = PairAssembler(list(pair_sets), uh.x.petsc_vec)
        dolfinx.fem.petsc.assemble_matrix(self.A, self.J_form)  # (an empty assembled matrix
        self.A.assemble()                                       # loses its pattern)
        self.pairs.extend_pattern(self.A)
        self.nullspace = rigid_body_nullspace(V)
        self.first_solve = True  # the step's first Newton solve (not a re-solve after updates)

    # -- the SNES callbacks ----------------------------------------------------------------

    def update(self, x: PETSc.Vec) -> None:
        """Take the state x: the displacement and the averaged volume change c / m."""
        x.copy(self.uh.x.petsc_vec)
        self.uh.x.scatter_forward()
        if self.pressure.active:
            with self.c_vec.localForm() as loc:
                loc.set(0.0)
            dolfinx.fem.petsc.assemble_vector(self.c_vec, self.c_form)
            self.c_vec.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
            n = self.pressure.n_owned
            self.p_hat.x.array[:n] = (self.c_vec.getArray(readonly=True)[:n]
                                      * self.pressure.inv_mass)
            self.p_hat.x.scatter_forward()

    def unconstrained_residual(self, x: PETSc.Vec, F: PETSc.Vec) -> None:
        """Internal and pair forces minus the loads at x, constrained rows included."""
        self.update(x)
        with F.localForm() as loc:
            loc.set(0.0)
        dolfinx.fem.petsc.assemble_vector(F, self.F_form)
        F.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        self.pairs.add(x, F=F)

    def residual(self, snes, x: PETSc.Vec, F: PETSc.Vec) -> None:
        self.unconstrained_residual(x, F)
        f = F.getArray()
        rows = self.local_rows
        f[rows] = x.getArray(readonly=True)[rows] - self.factor.value * self.values

    def jacobian(self, snes, x: PETSc.Vec, J: PETSc.Mat, P: PETSc.Mat) -> None:
        self.update(x)
        J.zeroEntries()
        dolfinx.fem.petsc.assemble_matrix(J, self.J_form)
        J.assemble()
        if self.pressure.active:
            self.B.zeroEntries()
            dolfinx.fem.petsc.assemble_matrix(self.B, self.B_form)
            self.B.assemble()
            self.pressure.add_tangent(J, self.B, self.dinv)
        self.pairs.add(x, A=J, first=self.first_solve and snes.getIterationNumber() == 0)
        J.zeroRowsColumns(self.global_rows, diag=1.0)
        J.setNearNullSpace(self.nullspace)  # (a new nonzero pattern may drop it)

    def limit_step(self, x: PETSc.Vec, y: PETSc.Vec) -> bool:
        """Line-search precheck: scale the update so the pairs admit it (contact)."""
        alpha = self.pairs.step_limit(x, y)
        if alpha < 1.0:
            y.scale(alpha)
        return alpha < 1.0

    def solver(self, options: NewtonOptions) -> NewtonSolver:
        """The SNES of this problem (close it after the solve)."""
        return NewtonSolver(self.comm, self.b, self.A, self.residual, self.jacobian,
                            options.petsc_options(),
                            precheck=self.limit_step if self.pairs.pair_sets else None)

    # -- a load step ----------------------------------------------------------------------

    def solve_step(self, snes: PETSc.SNES, x: PETSc.Vec, options: NewtonOptions,
                   reference: PETSc.Vec | None = None) -> StepResult:
        """Newton solves of one load step from x, repeated while the pairs update their fixed
        state (contact multipliers, friction limits) until a solve needs no iteration. The
        tolerance is max(atol, rtol |F|) for every solve of the step, with |F| the smaller of
        the residuals at the predictor x0 and at `reference` (the last converged state, under
        the step's load). The second bounds it by the load increment: a stiffening law (the
        exponential fibres) can make the predictor's residual, and with it a tolerance relative
        to it alone, huge."""
        r = self.b.duplicate()
        self.residual(snes, x, r)
        size = r.norm()
        if reference is not None:
            self.residual(snes, reference, r)
            size = min(size, r.norm())
        snes.setTolerances(atol=max(options.atol, options.rtol * size), rtol=0.0)
        r.destroy()
        out = StepResult(0)
        while True:
            self.first_solve = out.updates == 0
            snes.solve(None, x)
            out.reason = snes.getConvergedReason()
            its = snes.getIterationNumber()
            out.newton += its
            out.linear += snes.getLinearSolveIterations()
            out.most = max(out.most, its)
            if out.reason <= 0 or (out.updates and its == 0) or not self.pairs.update(x):
                return out
            out.updates += 1
            if out.updates > options.max_pair_updates:
                out.reason = PAIR_UPDATES_EXCEEDED
                return out

    # -- results --------------------------------------------------------------------------

    def results(self, x: PETSc.Vec) -> dict:
        """Support reactions, applied force, strain energy and nodal pressure at x."""
        comm = self.comm
        r = self.b.duplicate()
        self.unconstrained_residual(x, r)
        n_supports = 1 + len(self.load.rollers) + len(self.load.displacements)
        reactions = support_reactions(comm, r.getArray(readonly=True), self.local_rows,
                                      self.support, n_supports)
        f_ext = dolfinx.fem.petsc.assemble_vector(fem.form(self.loads))
        f_ext.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        applied = comm.allreduce(f_ext.getArray(readonly=True).reshape(-1, 3).sum(axis=0),
                                 op=MPI.SUM)
        energy = comm.allreduce(fem.assemble_scalar(fem.form(self.w * self.dx)), op=MPI.SUM)
        pressure = None
        if self.pressure.active:
            pressure = self.pressure.nodal_pressure(self.p_hat.x.array)
            c = self.c_vec.getArray(readonly=True)[: self.pressure.n_owned]
            energy += 0.5 * comm.allreduce(float(np.sum(c * c * self.pressure.inv_mass)),
                                           op=MPI.SUM)
        return {"reactions": reactions, "applied": applied, "energy": energy,
                "pressure": pressure}

    def solution(self, x: PETSc.Vec, steps: list[dict], setup_seconds: float,
                 options: NewtonOptions, path: list[PathPoint] = ()) -> NonlinearSolution:
        """The solution at the converged state x after `steps` (u is this problem's)."""
        out = self.results(x)
        return NonlinearSolution(
            u=self.uh,
            pressure=out["pressure"],
            incompressible=self.pressure.chi,
            materials=self.materials,
            reaction_N=out["reactions"].sum(axis=0),
            applied_N=out["applied"],
            iterations=sum(s["newton_iterations"] for s in steps),
            dofs=int(self.V.dofmap.index_map.size_global * 3),
            converged_reason=steps[-1]["reason"],
            strain_energy_mJ=float(out["energy"]),
            timings={"setup_seconds": setup_seconds,
                     "solve_seconds": sum(s["seconds"] for s in steps)},
            petsc_options=options.linear.user_options,
            history=self.history,
            steps=steps,
            pair_states=self.pairs.relative_displacements(x),
            support_reactions_N=out["reactions"],
            path=list(path),
        )

    def commit_history(self, x: PETSc.Vec) -> None:
        """Take the converged state x into the relaxation history (if any)."""
        if self.history is not None:
            self.update(x)
            self.history.commit()

    def destroy(self) -> None:
        self.A.destroy()
        self.pressure.destroy()


@dataclass(frozen=True)
class PathPoint:
    """A converged load step: its load factor, the owned entries of the state and the pairs'
    states held fixed within a solve (PairAssembler.fixed: rank 0, None elsewhere)."""

    factor: float
    state: np.ndarray
    pairs: list | None


def load_steps(problem: NonlinearProblem, snes: PETSc.SNES, options: NewtonOptions,
               guide: list[PathPoint] = ()) -> tuple[PETSc.Vec, list[dict], list[PathPoint]]:
    """Apply the loads in `options.steps` equal steps, each halved on failure up to
    `options.max_cutbacks` times (then SolverError); returns the converged state, the steps'
    records and the path; collective.

    With a `guide` (the path of the same loads on a model that differs a little, e.g. another
    scenario on the same mesh and partition) the steps go to the guide's load factors, each
    starting from the guide's state and pair states there: the load path, and so the friction
    history, is the guide's, and each step converges to this model's own equilibrium from next
    to it (a first guess, nothing of the guide's solution is kept)."""
    steps, path = [], []
    factor, pairs = problem.factor, problem.pairs
    x = problem.uh.x.petsc_vec.copy()
    converged = x.copy()  # the last converged state
    increment = x.duplicate()  # its increment over the state before (the predictor)
    nominal = 1.0 / options.steps
    targets = [p.factor for p in guide]

    def next_size(done: float, size: float) -> float:
        ahead = [f for f in targets if f > done + 1e-12]
        return ahead[0] - done if ahead else min(size, nominal, 1.0 - done)

    done, cutbacks, wasted = 0.0, 0, 0
    size = next_size(0.0, nominal)
    while done < 1.0 - 1e-12:
        factor.value = done + size
        point = next((p for p in guide if abs(p.factor - factor.value) < 1e-12), None)
        if point is not None:
            x.getArray()[:] = point.state
            pairs.hold(point.pairs)
        else:
            # Predictor: the last converged increment, scaled to this step (proportional
            # loading).
            converged.copy(x)
            x.axpy(size / steps[-1]["load_increment"] if steps else 0.0, increment)
        x.getArray()[problem.local_rows] = factor.value * problem.values  # prescribed values
        t1 = time.perf_counter()
        step = problem.solve_step(snes, x, options, reference=converged)
        record = {
            "load_factor": float(factor.value),
            "load_increment": float(size),
            "newton_iterations": step.newton,
            "linear_iterations": step.linear,
            "pair_updates": step.updates,  # re-solves after contact updates
            "newton_iterations_max_per_solve": step.most,
            "residual_N": float(snes.getFunctionNorm()),
            "reason": REASONS.get(step.reason, str(step.reason)),
            "seconds": time.perf_counter() - t1,
            "cutbacks": cutbacks,  # failed tries of this step, their Newton iterations:
            "failed_newton_iterations": wasted,
            "guided": point is not None,
        }
        log.info("load factor %.4g (+%.3g): %d Newton (%d linear) iterations, %d contact "
                 "updates, %s, |F| %.2e N", factor.value, size, step.newton, step.linear,
                 step.updates, record["reason"], record["residual_N"])
        if step.reason <= 0:
            # Cut back: retry from the last converged state, pairs included, with half the
            # increment.
            if cutbacks == options.max_cutbacks:
                raise SolverError(
                    f"Newton did not converge at load factor {factor.value:.3g} after "
                    f"{cutbacks} cutbacks (increment {size:.3g}): {record['reason']} after "
                    f"{record['newton_iterations']} iterations, residual "
                    f"{record['residual_N']:.3e} N"
                )
            pairs.restore()
            cutbacks += 1
            wasted += record["newton_iterations"]
            size /= 2.0
            continue
        x.copy(increment)
        increment.axpy(-1.0, converged)
        x.copy(converged)
        pairs.commit(x)
        problem.commit_history(x)
        steps.append(record)
        path.append(PathPoint(float(factor.value), x.getArray(readonly=True).copy(),
                              pairs.fixed()))
        done, cutbacks, wasted = float(factor.value), 0, 0  # (a copy: .value is a view)
        size = next_size(done, 2.0 * size)  # grows back after a cutback
    return x, steps, path


def solve_nonlinear(
    materials: MaterialFields,
    load: LoadCase,
    pair_sets: list[PointPairs] = (),
    nearly_incompressible_nu: float = 0.49,
    options: NewtonOptions = NewtonOptions(),
    guide: list[PathPoint] = (),
) -> NonlinearSolution:
    """Solve the static problem in load steps (`load_steps`, along the path of `guide` if
    given) with the cells' laws of `materials` (without any: linear elastic, geometrically
    linear, everywhere); collective."""
    t0 = time.perf_counter()
    problem = NonlinearProblem(materials, load, pair_sets, nearly_incompressible_nu)
    try:
        with problem.solver(options) as solver:
            t_setup = time.perf_counter() - t0
            x, steps, path = load_steps(problem, solver.snes, options, guide)
        return problem.solution(x, steps, t_setup, options, path)
    finally:
        problem.destroy()


def solve_creep(
    materials: MaterialFields,
    load: LoadCase,
    times_s,
    observe,
    pair_sets: list[PointPairs] = (),
    nearly_incompressible_nu: float = 0.49,
    options: NewtonOptions = NewtonOptions(),
) -> None:
    """Apply the loads at t = 0 (load steps with no time passing), hold them and follow the
    relaxation of `materials.relaxation` to each of `times_s` (s, increasing, > 0); calls
    observe(t_s, solution) at t = 0 and at every time, with the solution of that moment (its
    fields are only valid during the call); collective. SolverError when a step does not
    converge."""
    times = np.asarray(times_s, dtype=float)
    if times.size == 0 or times[0] <= 0.0 or np.any(np.diff(times) <= 0.0):
        raise ValueError(f"times_s must be positive and increasing, got {times.tolist()}")
    t0 = time.perf_counter()
    problem = NonlinearProblem(materials, load, pair_sets, nearly_incompressible_nu,
                               time_dependent=True)
    try:
        with problem.solver(options) as solver:
            snes = solver.snes
            t_setup = time.perf_counter() - t0
            x, steps, _ = load_steps(problem, snes, options)
            observe(0.0, problem.solution(x, steps, t_setup, options))
            previous = 0.0
            for t in times:
                problem.history.set_step(t - previous)
                t1 = time.perf_counter()
                step = problem.solve_step(snes, x, options)
                record = {"time_s": float(t), "newton_iterations": step.newton,
                          "linear_iterations": step.linear, "pair_updates": step.updates,
                          "newton_iterations_max_per_solve": step.most,
                          "residual_N": float(snes.getFunctionNorm()),
                          "reason": REASONS.get(step.reason, str(step.reason)),
                          "seconds": time.perf_counter() - t1}
                log.info("t = %.4g s: %d Newton iterations, %s", t, step.newton,
                         record["reason"])
                if step.reason <= 0:
                    raise SolverError(f"Newton did not converge at t = {t:.4g} s (step from "
                                      f"{previous:.4g} s): {record['reason']}, residual "
                                      f"{record['residual_N']:.3e} N")
                problem.pairs.commit(x)
                problem.commit_history(x)
                observe(float(t), problem.solution(x, [record], t_setup, options))
                previous = t
    finally:
        problem.destroy()
