"""Nonlinear statics: neo-Hookean regions, point pairs (ligaments, contact), load stepping, SNES.

The residual is the derivative of the stored energy minus the work of the loads (scaled by the
load factor of each step), plus the pairs' forces (mechanics.pairs):
- small-strain linear elastic cells: mu |eps|^2 + lambda / 2 (tr eps)^2;
- neo-Hookean cells (large deformation): mu / 2 (I1 - 3 - 2 ln J) + lambda / 2 (ln J)^2, which has
  the linear law as its small-strain limit;
- nearly incompressible cells (nu above the threshold, see mechanics.elasticity) keep only the
  deviatoric part of their law (isochoric mu / 2 (J^(-2/3) I1 - 3) when neo-Hookean) and take
  the volumetric energy from the averaged nodal volume change theta_i = int(phi_i e_v) / m_i, with
  e_v = div u (linear cells) or J - 1 (neo-Hookean cells): W = sum_i K_i m_i theta_i^2 / 2.
  Its residual is the form int(sqrt(K) p_h de_v) with the P1 field p_h = c / m,
  c_i = int(sqrt(K) phi_i e_v), so only its tangent's rank-one part B^T diag(1 / m) B
  (B = dc/du) is added by hand; at small strain this is the linear averaged-pressure element.
Every load step is solved by PETSc SNES (Newton with a line search). A step that does not converge
is retried from the last converged state with half the load increment (automatic incrementation);
after `max_cutbacks` halvings SolverError reports the load factor, the reason and the residual.
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
from spinefe.geometry.mesh import marker_tags
from spinefe.mechanics.elasticity import (
    ElasticSolution,
    LoadCase,
    SolverOptions,
    averaged_pressure_cells,
    external_load,
    ksp_options,
    lame,
    nodal_pressure,
    owned_constrained_rows,
    rigid_body_nullspace,
    strain,
    support_reactions,
)
from spinefe.mechanics.materials import MaterialFields
from spinefe.mechanics.pairs import PairAssembler, PointPairs

log = logging.getLogger(__name__)


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
    linear: SolverOptions = SolverOptions()


@dataclass
class NonlinearSolution(ElasticSolution):
    """ElasticSolution plus Newton data per load step and the pair sets' final states."""

    steps: list = field(default_factory=list)
    pair_states: list = field(default_factory=list)  # du (n, 3) per pair set, on rank 0
    support_reactions_N: np.ndarray | None = None  # (supports, 3), see owned_constrained_rows


def newton_summary(steps: list[dict]) -> dict:
    """The most Newton iterations of a load step (all its solves) and of one solve, and the
    contact updates of all steps."""
    return {
        "newton_iterations_max_per_step": max(s["newton_iterations"] for s in steps),
        "newton_iterations_max_per_solve": max(s["newton_iterations_max_per_solve"] for s in steps),
        "contact_updates": sum(s["pair_updates"] for s in steps),
    }


_REASONS = {v: k for k, v in PETSc.SNES.ConvergedReason.__dict__.items() if not k.startswith("_")}
_PAIR_UPDATES_EXCEEDED = -1000  # a load step still changed the pairs after max_pair_updates
_REASONS[_PAIR_UPDATES_EXCEEDED] = "DIVERGED_PAIR_UPDATES"
_solve_count = 0


def _energy_density(u, materials: MaterialFields, chi, hyper):
    """Stored energy density (mJ/mm^3) without the nodal volumetric part of the chi cells."""
    mu, lam = lame(materials.E, materials.nu)
    eps = strain(u)
    w_lin = mu * ufl.inner(eps, eps) + 0.5 * (1.0 - chi) * lam * ufl.tr(eps) ** 2
    w_lin -= chi * mu / 3.0 * ufl.tr(eps) ** 2  # deviatoric only: mu |dev eps|^2
    F = ufl.Identity(3) + ufl.grad(u)
    J = ufl.det(F)
    I1 = ufl.tr(F.T * F)
    w_nh = (1.0 - chi) * (0.5 * mu * (I1 - 3.0 - 2.0 * ufl.ln(J)) + 0.5 * lam * ufl.ln(J) ** 2)
    w_nh += chi * 0.5 * mu * (J ** (-2.0 / 3.0) * I1 - 3.0)
    volume_change = (1.0 - hyper) * ufl.div(u) + hyper * (J - 1.0)
    return (1.0 - hyper) * w_lin + hyper * w_nh, volume_change


def solve_nonlinear(
    materials: MaterialFields,
    load: LoadCase,
    pair_sets: list[PointPairs] = (),
    hyperelastic: fem.Function | None = None,
    nearly_incompressible_nu: float = 0.49,
    options: NewtonOptions = NewtonOptions(),
) -> NonlinearSolution:
    """Solve the static problem in `options.steps` equal load steps, each halved on failure up to
    `options.max_cutbacks` times (then SolverError); collective.

    hyperelastic: DG0 indicator (1 = neo-Hookean cell); None = geometrically linear everywhere.
    Prescribed displacements are scaled with the loads.
    """
    global _solve_count
    mesh = materials.E.function_space.mesh
    comm = mesh.comm
    t0 = time.perf_counter()
    V = fem.functionspace(mesh, ("Lagrange", 1, (3,)))
    v, du = ufl.TestFunction(V), ufl.TrialFunction(V)
    uh = fem.Function(V, name="displacement_mm")
    Q0 = materials.E.function_space
    hyper = hyperelastic if hyperelastic is not None else fem.Function(Q0)
    chi, inc_cells, has_inc = averaged_pressure_cells(materials, nearly_incompressible_nu)
    mu, lam = lame(materials.E, materials.nu)
    w, e_v = _energy_density(uh, materials, chi, hyper)

    # With P1 on affine tetrahedra the strain energy density is constant per cell and the
    # nodal volumetric terms are at most linear: degree 2 integrates every volume form exactly
    # (UFL would estimate a high degree from ln J and J^(-2/3) and spend most of the time there).
    dx = ufl.Measure("dx", domain=mesh, metadata={"quadrature_degree": 2})
    factor = fem.Constant(mesh, 0.0)
    loads = external_load(mesh, load, v)
    residual = ufl.derivative(w * dx, uh, v) - factor * loads

    pressure = None
    if has_inc:
        P = fem.functionspace(mesh, ("Lagrange", 1))
        q = ufl.TestFunction(P)
        inc_tags = marker_tags(mesh, 3, [(inc_cells, 1)])
        dx_inc = ufl.Measure("dx", domain=mesh, subdomain_data=inc_tags, subdomain_id=1,
                             metadata={"quadrature_degree": 2})
        sqrt_bulk = ufl.sqrt(lam + 2.0 * mu / 3.0)
        p_hat = fem.Function(P)  # c / m
        residual += sqrt_bulk * p_hat * ufl.derivative(e_v, uh, v) * dx_inc
        c_form = fem.form(sqrt_bulk * q * e_v * dx_inc)
        B_form = fem.form(ufl.derivative(sqrt_bulk * q * e_v * dx_inc, uh, du))
        m = dolfinx.fem.petsc.assemble_vector(fem.form(q * dx_inc))
        m.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        n_p = P.dofmap.index_map.size_local
        mass = m.getArray(readonly=True)[:n_p].copy()
        inv_mass = np.divide(1.0, mass, out=np.zeros_like(mass), where=mass > 0.0)
        B = dolfinx.fem.petsc.create_matrix(B_form)
        dinv = B.createVecLeft()
        dinv.setArray(inv_mass)
        c_vec = dolfinx.fem.petsc.create_vector(P)
    F_form = fem.form(residual)
    J_form = fem.form(ufl.derivative(residual, uh, du))

    local_rows, global_rows, values, support = owned_constrained_rows(V, load)
    if comm.allreduce(local_rows.size, op=MPI.SUM) == 0:
        raise ValueError("no constrained dofs: the problem has rigid-body motions")
    A = dolfinx.fem.petsc.create_matrix(J_form)
    b = dolfinx.fem.petsc.create_vector(V)
    pairs = PairAssembler(list(pair_sets), uh.x.petsc_vec)
    dolfinx.fem.petsc.assemble_matrix(A, J_form)  # (an empty assembled matrix loses its pattern)
    A.assemble()
    pairs.extend_pattern(A)
    C = None

    def update(x: PETSc.Vec) -> None:
        x.copy(uh.x.petsc_vec)
        uh.x.scatter_forward()
        if has_inc:
            with c_vec.localForm() as loc:
                loc.set(0.0)
            dolfinx.fem.petsc.assemble_vector(c_vec, c_form)
            c_vec.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
            p_hat.x.array[:n_p] = c_vec.getArray(readonly=True)[:n_p] * inv_mass
            p_hat.x.scatter_forward()

    def unconstrained_residual(x: PETSc.Vec, F: PETSc.Vec) -> None:
        update(x)
        with F.localForm() as loc:
            loc.set(0.0)
        dolfinx.fem.petsc.assemble_vector(F, F_form)
        F.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        pairs.add(x, F=F)

    def snes_residual(snes, x, F):
        unconstrained_residual(x, F)
        f = F.getArray()
        f[local_rows] = x.getArray(readonly=True)[local_rows] - factor.value * values

    def snes_jacobian(snes, x, J, Pmat):
        nonlocal C
        update(x)
        J.zeroEntries()
        dolfinx.fem.petsc.assemble_matrix(J, J_form)
        J.assemble()
        if has_inc:
            B.zeroEntries()
            dolfinx.fem.petsc.assemble_matrix(B, B_form)
            B.assemble()
            DB = B.copy()
            DB.diagonalScale(L=dinv)
            first = C is None
            C = B.transposeMatMult(DB) if first else B.transposeMatMult(DB, result=C)
            DB.destroy()
            J.axpy(1.0, C, structure=PETSc.Mat.Structure.DIFFERENT_NONZERO_PATTERN if first
                   else PETSc.Mat.Structure.SUBSET_NONZERO_PATTERN)
        pairs.add(x, A=J, first=first_solve and snes.getIterationNumber() == 0)
        J.zeroRowsColumns(global_rows, diag=1.0)
        J.setNearNullSpace(nullspace)  # (a new nonzero pattern may drop it)

    _solve_count += 1
    prefix = f"spinefe_newton_{_solve_count}_"
    opts = PETSc.Options()
    settings = {
        "snes_type": "newtonls",
        "snes_linesearch_type": options.line_search,
        "snes_stol": 0.0,
        "snes_max_it": options.max_iterations,
        # Eisenstat-Walker: loose linear solves far from the solution (fewer CG iterations
        # in all; measured 58 s against 68 s for a 7.5 N m bending case on the coarse mesh).
        "snes_ksp_ew": options.inexact,
        **ksp_options(options.linear),
    }
    for key, value in settings.items():
        opts[prefix + key] = value
    snes = PETSc.SNES().create(comm)
    snes.setOptionsPrefix(prefix)
    snes.setFunction(snes_residual, b)
    snes.setJacobian(snes_jacobian, A)
    snes.setFromOptions()
    snes.setDivergenceTolerance(1e300)  # contact: a first step may penetrate deeply; keep going

    def limit_step(x, y):
        """Line-search precheck: scale the update so the pairs admit it (contact)."""
        alpha = pairs.step_limit(x, y)
        if alpha < 1.0:
            y.scale(alpha)
        return alpha < 1.0

    if pair_sets:
        snes.setLineSearchPreCheck(limit_step)
    nullspace = rigid_body_nullspace(V)
    first_solve = True  # the step's first Newton solve (not a re-solve after a pair update)
    t_setup = time.perf_counter() - t0

    def solve_step(x: PETSc.Vec) -> tuple[int, int, int, int, int]:
        """Newton solves of one load step from x, repeated while the pairs update their fixed
        state (contact multipliers, friction limits) until a solve needs no iteration. The
        tolerance is max(atol, rtol |F(x0)|) with x0 the predictor, for every solve of the
        step. Returns the last reason, Newton and linear iterations, pair updates and the most
        Newton iterations of one solve."""
        r = b.duplicate()
        snes_residual(snes, x, r)
        snes.setTolerances(atol=max(options.atol, options.rtol * r.norm()), rtol=0.0)
        r.destroy()
        nonlocal first_solve
        newton = linear = updates = most = 0
        while True:
            first_solve = updates == 0
            snes.solve(None, x)
            reason = snes.getConvergedReason()
            newton += snes.getIterationNumber()
            linear += snes.getLinearSolveIterations()
            most = max(most, snes.getIterationNumber())
            if reason <= 0 or (updates and snes.getIterationNumber() == 0):
                return reason, newton, linear, updates, most
            if not pairs.update(x):
                return reason, newton, linear, updates, most
            updates += 1
            if updates > options.max_pair_updates:
                return _PAIR_UPDATES_EXCEEDED, newton, linear, updates, most

    steps = []
    x = uh.x.petsc_vec.copy()
    converged = x.copy()  # the last converged state
    increment = x.duplicate()  # its increment over the state before (the predictor)
    nominal = 1.0 / options.steps
    done, size, cutbacks, wasted = 0.0, nominal, 0, 0
    try:
        while done < 1.0 - 1e-12:
            size = min(size, 1.0 - done)
            factor.value = done + size
            # Predictor: the last converged increment, scaled to this step (proportional loading).
            converged.copy(x)
            x.axpy(size / steps[-1]["load_increment"] if steps else 0.0, increment)
            x.getArray()[local_rows] = factor.value * values  # the step's prescribed displacements
            t1 = time.perf_counter()
            reason, newton, linear, updates, most = solve_step(x)
            record = {
                "load_factor": float(factor.value),
                "load_increment": float(size),
                "newton_iterations": newton,
                "linear_iterations": linear,
                "pair_updates": updates,  # re-solves after contact updates
                "newton_iterations_max_per_solve": most,
                "residual_N": float(snes.getFunctionNorm()),
                "reason": _REASONS.get(reason, str(reason)),
                "seconds": time.perf_counter() - t1,
                "cutbacks": cutbacks,  # failed tries of this step, their Newton iterations:
                "failed_newton_iterations": wasted,
            }
            log.info("load factor %.4g (+%.3g): %d Newton (%d linear) iterations, %d contact "
                     "updates, %s, |F| %.2e N", factor.value, size, newton, linear, updates,
                     record["reason"], record["residual_N"])
            if reason <= 0:
                # Cut back: retry from the last converged state, pairs included, with half
                # the increment.
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
            steps.append(record)
            done, cutbacks, wasted = float(factor.value), 0, 0  # (a copy: .value is a view)
            size = min(2.0 * size, nominal)  # grow back after a cutback
    finally:
        for key in settings:
            del opts[prefix + key]

    # Reactions: the unconstrained residual (internal + pair forces - loads) on the supports.
    r = b.duplicate()
    unconstrained_residual(x, r)
    n_supports = 1 + len(load.rollers) + len(load.displacements)
    reactions = support_reactions(comm, r.getArray(readonly=True), local_rows, support, n_supports)
    f_ext = dolfinx.fem.petsc.assemble_vector(fem.form(loads))
    f_ext.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    applied = comm.allreduce(f_ext.getArray(readonly=True).reshape(-1, 3).sum(axis=0), op=MPI.SUM)
    energy = comm.allreduce(fem.assemble_scalar(fem.form(w * dx)), op=MPI.SUM)
    if has_inc:
        pressure = nodal_pressure(P, sqrt_bulk, dx_inc, inv_mass, p_hat.x.array)
        c = c_vec.getArray(readonly=True)[:n_p]
        energy += 0.5 * comm.allreduce(float(np.sum(c * c * inv_mass)), op=MPI.SUM)
    states = pairs.relative_displacements(x)
    dofs = V.dofmap.index_map.size_global * 3
    snes.destroy()
    A.destroy()
    return NonlinearSolution(
        u=uh,
        pressure=pressure,
        incompressible=chi,
        materials=materials,
        reaction_N=reactions.sum(axis=0),
        applied_N=applied,
        iterations=sum(s["newton_iterations"] for s in steps),
        dofs=int(dofs),
        converged_reason=steps[-1]["reason"],
        strain_energy_mJ=float(energy),
        timings={"setup_seconds": t_setup,
                 "solve_seconds": sum(s["seconds"] for s in steps)},
        steps=steps,
        pair_states=states,
        support_reactions_N=reactions,
    )
