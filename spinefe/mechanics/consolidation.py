"""Consolidation: the time-dependent poroelastic (u-p) problem of mechanics.laws.poroelastic.

Taylor-Hood elements: displacement of degree k >= 2 on the whole mesh, pore pressure of degree
k - 1 on a submesh of the poroelastic cells (stable in the undrained, incompressible limit); the
other cells are drained-free linear elastic solid (no pore fluid: their boundary with the
poroelastic cells is impermeable). Backward Euler in time. The load of a `LoadCase` is applied at
t = 0 and held: the first solve is the instantaneous (undrained) response, then one step to each
requested time. Supports are the LoadCase's; the pressure is zero at the vertices of the drained
facets, and every other boundary of the poroelastic cells is impermeable (no flux, the natural
condition). The coupled system is symmetric indefinite and solved by LU (MUMPS) through the
solver layer; the matrix is assembled and factorised again only when the step changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dolfinx.fem.petsc
import dolfinx.mesh
import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI
from petsc4py import PETSc

from spinefe.mechanics.elasticity import LoadCase, external_load
from spinefe.mechanics.laws import Isotropic, linear_elastic, poroelastic
from spinefe.mechanics.solvers import LinearSolver, SolverOptions, check_ksp, ksp_options

log = logging.getLogger(__name__)

POROELASTIC, ELASTIC = 1, 2  # cell markers of the integration measure


@dataclass
class Consolidation:
    """The state at the last time solved: displacement `u` (mm, on the mesh), pore pressure `p`
    (MPa, on the submesh of the poroelastic cells), the times solved so far (s, 0 first), the
    factorisations made, the submesh's cell map (`cell_map`: forms on the mesh that take `p`
    need it as an entity map), the force of the clamped support on the body (`reaction_N`,
    x y z) and the total applied force (`applied_N`)."""

    u: fem.Function
    p: fem.Function
    times_s: list[float]
    factorisations: int
    cell_map: Any = None
    reaction_N: np.ndarray = field(default_factory=lambda: np.zeros(3))
    applied_N: np.ndarray = field(default_factory=lambda: np.zeros(3))


def _supports(V, Q, vertex_map, load: LoadCase, drained_facets) -> list:
    """Dirichlet conditions: the LoadCase's clamped, roller and prescribed displacement
    components, and p = 0 at the vertices of the drained facets (pressure of degree 1)."""
    fixed = [(load.clamped_facets, axis, 0.0) for axis in range(3)]
    fixed += [(facets, axis, 0.0) for facets, axis in load.rollers]
    fixed += list(load.displacements)
    bcs = []
    for facets, axis, value in fixed:
        dofs = fem.locate_dofs_topological(V.sub(axis), 2, np.asarray(facets, np.int32))
        bcs.append(fem.dirichletbc(PETSc.ScalarType(value), dofs, V.sub(axis)))
    mesh = V.mesh
    mesh.topology.create_connectivity(2, 0)
    vertices = dolfinx.mesh.compute_incident_entities(
        mesh.topology, np.asarray(drained_facets, np.int32), 2, 0)
    sub = np.asarray(vertex_map.sub_topology_to_topology(vertices, inverse=True))
    Q.mesh.topology.create_connectivity(0, 3)
    dofs = fem.locate_dofs_topological(Q, 0, sub[sub >= 0].astype(np.int32))
    bcs.append(fem.dirichletbc(PETSc.ScalarType(0.0), dofs, Q))
    return bcs


def consolidate(mesh, params: poroelastic.Parameters, load: LoadCase, drained_facets,
                times_s: Sequence[float],
                observe: Callable[[float, Consolidation], None] | None = None,
                degree: int = 2, petsc: Mapping[str, Any] | None = None,
                cells: np.ndarray | None = None,
                elastic: Isotropic | None = None) -> Consolidation:
    """The consolidation of `mesh` under the load of `load` applied at t = 0 and held, to each
    of the increasing times_s (s, > 0).

    cells: the owned poroelastic cells (`params`; default all); `elastic`: the Lame parameters
    of the others (numbers or cell-wise UFL). observe(t_s, state) is called after each solve
    (t = 0: the undrained response) with the `Consolidation` state: the displacement (mm), the
    pore pressure (MPa, on the submesh) and the reaction of the clamped support. `petsc`:
    options that override the built-in LU ones. SolverError when a solve fails; collective."""
    times = np.asarray(times_s, dtype=float)
    if times.size and (times[0] <= 0.0 or np.any(np.diff(times) <= 0.0)):
        raise ValueError("consolidation times must be positive and increasing (s)")
    if degree != 2:
        raise ValueError(f"consolidation needs displacement degree 2 (Taylor-Hood P2-P1), got "
                         f"{degree}")
    n_owned = mesh.topology.index_map(3).size_local
    cells = np.arange(n_owned, dtype=np.int32) if cells is None else np.asarray(cells, np.int32)
    others = np.setdiff1d(np.arange(n_owned, dtype=np.int32), cells)
    if mesh.comm.allreduce(others.size) and elastic is None:
        raise ValueError("consolidation: cells that are not poroelastic need `elastic`")
    sub, cell_map, vertex_map, _ = dolfinx.mesh.create_submesh(mesh, 3, cells)
    V = fem.functionspace(mesh, ("Lagrange", degree, (3,)))
    Q = fem.functionspace(sub, ("Lagrange", degree - 1))
    marked = np.concatenate([cells, others])
    order = np.argsort(marked)
    tags = dolfinx.mesh.meshtags(mesh, 3, marked[order], np.concatenate(
        [np.full(cells.size, POROELASTIC), np.full(others.size, ELASTIC)]).astype(np.int32)[order])
    dx = ufl.Measure("dx", domain=mesh, subdomain_data=tags)

    W = ufl.MixedFunctionSpace(V, Q)
    (u, p), (v, q) = ufl.TrialFunctions(W), ufl.TestFunctions(W)
    u_h, p_h = fem.Function(V, name="displacement_mm"), fem.Function(Q, name="pore_pressure_MPa")
    u_n, p_n = fem.Function(V), fem.Function(Q)
    dt = fem.Constant(mesh, 0.0)
    F = (poroelastic.residual(u, p, v, q, u_n, p_n, dt, params) * dx(POROELASTIC)
         - external_load(mesh, load, v))
    if elastic is not None:
        F += linear_elastic.bilinear(u, v, elastic) * dx(ELASTIC)
    a = fem.form(ufl.extract_blocks(ufl.lhs(F)), entity_maps=[cell_map])
    L = fem.form(ufl.extract_blocks(ufl.rhs(F)), entity_maps=[cell_map])
    bcs = _supports(V, Q, vertex_map, load, drained_facets)
    reaction = _Reaction(V, F, (u, p), (u_h, p_h), load, cell_map)
    lifting = fem.bcs_by_block(fem.extract_function_spaces(a, 1), bcs)
    by_row = fem.bcs_by_block(fem.extract_function_spaces(L), bcs)
    options = {**ksp_options(SolverOptions(solver="mumps")), **(petsc or {})}
    x = dolfinx.fem.petsc.create_vector([V, Q], kind="mpi")

    state = Consolidation(u_h, p_h, [], 0, cell_map, np.zeros(3), reaction.applied_N)
    solver, A, step, t_prev = None, None, None, 0.0

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
                A = dolfinx.fem.petsc.assemble_matrix(a, bcs=bcs, kind="mpi")
                A.assemble()
                solver = LinearSolver(A, options, "consolidation")
                state.factorisations += 1
            b = dolfinx.fem.petsc.assemble_vector(L, kind="mpi")
            dolfinx.fem.petsc.apply_lifting(b, a, bcs=lifting)
            b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
            dolfinx.fem.petsc.set_bc(b, by_row)
            solver.ksp.solve(b, x)
            b.destroy()
            check_ksp(solver.ksp, f"consolidation at t = {t:g} s", 0.0)
            x.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
            dolfinx.fem.petsc.assign(x, [u_h, p_h])
            state.times_s.append(t)
            state.reaction_N = reaction()
            if observe is not None:
                observe(t, state)
            u_n.x.array[:], p_n.x.array[:] = u_h.x.array, p_h.x.array
            t_prev = t
    finally:
        release()
        x.destroy()
    log.info("consolidation: %d + %d dofs, %d times, %d factorisations",
             V.dofmap.index_map.size_global * 3, Q.dofmap.index_map.size_global,
             times.size + 1, state.factorisations)
    return state


class _Reaction:
    """The force of the clamped support on the body (N): the displacement rows of the residual
    (internal work of the total stress minus the loads) at the solution, summed over the
    clamped dofs; and the applied force, the load vector's sum."""

    def __init__(self, V, F, trial, solution, load: LoadCase, cell_map):
        residual = ufl.extract_blocks(ufl.replace(F, dict(zip(trial, solution, strict=True))))[0]
        self.form = fem.form(residual, entity_maps=[cell_map])
        mesh = V.mesh
        n = V.dofmap.index_map.size_local
        blocks = fem.locate_dofs_topological(V, 2, np.asarray(load.clamped_facets, np.int32))
        self.blocks = blocks[blocks < n]
        f = dolfinx.fem.petsc.assemble_vector(
            fem.form(external_load(mesh, load, ufl.TestFunction(V))))
        f.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        self.applied_N = mesh.comm.allreduce(
            f.getArray(readonly=True).reshape(-1, 3).sum(axis=0), op=MPI.SUM)
        f.destroy()
        self.comm = mesh.comm

    def __call__(self) -> np.ndarray:
        r = dolfinx.fem.petsc.assemble_vector(self.form)
        r.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        local = r.getArray(readonly=True).reshape(-1, 3)[self.blocks].sum(axis=0)
        r.destroy()
        return self.comm.allreduce(local, op=MPI.SUM)
