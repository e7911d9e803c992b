"""Consolidation: the time-dependent poroelastic (u-p) problem of mechanics.laws.poroelastic.

Taylor-Hood elements (displacement of degree k >= 2, pressure k - 1: stable for the undrained,
incompressible limit), backward Euler in time. The load of a `LoadCase` is applied at t = 0 and
held: the first solve is the instantaneous (undrained) response, then one step to each requested
time. Supports are the LoadCase's; the pressure is zero on the drained facets, and every other
boundary is impermeable (no flux, the natural condition). The coupled system is symmetric
indefinite and solved by LU (MUMPS) through the solver layer; the matrix is assembled and
factorised again only when the step changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import basix.ufl
import dolfinx.fem.petsc
import numpy as np
import ufl
from dolfinx import fem
from petsc4py import PETSc

from spinefe.mechanics.elasticity import LoadCase, external_load
from spinefe.mechanics.laws import poroelastic
from spinefe.mechanics.solvers import LinearSolver, SolverOptions, check_ksp, ksp_options

log = logging.getLogger(__name__)


@dataclass
class Consolidation:
    """The state after the last time: the mixed solution `w` (w.sub(0) the displacement, mm;
    w.sub(1) the pore pressure, MPa), the times solved (s, 0 first) and the factorisations
    made."""

    w: fem.Function
    times_s: list[float]
    factorisations: int


def mixed_space(mesh, degree: int = 2) -> fem.FunctionSpace:
    """Displacement (Lagrange, `degree`, 3 components) x pressure (Lagrange, degree - 1)."""
    if degree < 2:
        raise ValueError(f"consolidation needs a displacement degree >= 2 (Taylor-Hood), got "
                         f"{degree}")
    cell = mesh.basix_cell()
    return fem.functionspace(mesh, basix.ufl.mixed_element([
        basix.ufl.element("Lagrange", cell, degree, shape=(3,)),
        basix.ufl.element("Lagrange", cell, degree - 1)]))


def _supports(W: fem.FunctionSpace, load: LoadCase, drained_facets) -> list:
    """Dirichlet conditions: the LoadCase's clamped, roller and prescribed displacement
    components, and p = 0 on the drained facets."""
    U = W.sub(0)
    fixed = [(load.clamped_facets, axis, 0.0) for axis in range(3)]
    fixed += [(facets, axis, 0.0) for facets, axis in load.rollers]
    fixed += list(load.displacements)
    bcs = []
    for facets, axis, value in fixed:
        dofs = fem.locate_dofs_topological(U.sub(axis), 2, np.asarray(facets, np.int32))
        bcs.append(fem.dirichletbc(PETSc.ScalarType(value), dofs, U.sub(axis)))
    dofs = fem.locate_dofs_topological(W.sub(1), 2, np.asarray(drained_facets, np.int32))
    bcs.append(fem.dirichletbc(PETSc.ScalarType(0.0), dofs, W.sub(1)))
    return bcs


def consolidate(mesh, params: poroelastic.Parameters, load: LoadCase, drained_facets,
                times_s: Sequence[float],
                observe: Callable[[float, Any, Any], None] | None = None, degree: int = 2,
                petsc: Mapping[str, Any] | None = None) -> Consolidation:
    """The consolidation of `mesh` (one poroelastic material, `params`) under the load of `load`
    applied at t = 0 and held, to each of the increasing times_s (s, > 0).

    observe(t_s, u, p) is called after each solve (t = 0: the undrained response) with the
    displacement (mm) and pore pressure (MPa) sub-functions. `petsc`: options that override the
    built-in LU ones. SolverError when a solve fails; collective."""
    times = np.asarray(times_s, dtype=float)
    if times.size and (times[0] <= 0.0 or np.any(np.diff(times) <= 0.0)):
        raise ValueError("consolidation times must be positive and increasing (s)")
    W = mixed_space(mesh, degree)
    (u, p), (v, q) = ufl.TrialFunctions(W), ufl.TestFunctions(W)
    w, w_n = fem.Function(W, name="consolidation"), fem.Function(W)
    u_n, p_n = ufl.split(w_n)
    dt = fem.Constant(mesh, 0.0)
    F = (poroelastic.residual(u, p, v, q, u_n, p_n, dt, params) * ufl.dx
         - external_load(mesh, load, v))
    a, L = fem.form(ufl.lhs(F)), fem.form(ufl.rhs(F))
    bcs = _supports(W, load, drained_facets)
    options = {**ksp_options(SolverOptions(solver="mumps")), **(petsc or {})}

    solver, A, step, factorisations, t_prev = None, None, None, 0, 0.0

    def release():
        if solver is not None:
            solver.destroy()
            A.destroy()

    try:
        for t in [0.0, *times.tolist()]:
            if solver is None or not np.isclose(t - t_prev, step, rtol=1e-12, atol=0.0):
                release()
                step = t - t_prev
                dt.value = step
                A = dolfinx.fem.petsc.assemble_matrix(a, bcs=bcs)
                A.assemble()
                solver = LinearSolver(A, options, "consolidation")
                factorisations += 1
            b = dolfinx.fem.petsc.assemble_vector(L)
            dolfinx.fem.petsc.apply_lifting(b, [a], bcs=[bcs])
            b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
            dolfinx.fem.petsc.set_bc(b, bcs)
            solver.ksp.solve(b, w.x.petsc_vec)
            b.destroy()
            check_ksp(solver.ksp, f"consolidation at t = {t:g} s", 0.0)
            w.x.scatter_forward()
            if observe is not None:
                observe(t, w.sub(0), w.sub(1))
            w_n.x.array[:] = w.x.array
            t_prev = t
    finally:
        release()
    log.info("consolidation: %d dofs, %d times, %d factorisations",
             W.dofmap.index_map.size_global * W.dofmap.index_map_bs, times.size + 1,
             factorisations)
    return Consolidation(w, [0.0, *times.tolist()], factorisations)
