"""Small-strain linear elasticity: assembly, constraints, the static solve, reactions.

Materials are cell-wise constant (`MaterialFields`); displacements are Lagrange of degree 1 or 2.
The bilinear form is the second variation of the cells' small-strain laws (mechanics.laws:
isotropic by default, orthotropic where a material says so); regions whose nu reaches a
threshold keep their deviatoric part
and take the averaged nodal pressure (mechanics.pressure), whose condensed stiffness
B^T diag(K / m) B is added to the assembled matrix. The solve goes through the solver layer
(mechanics.solvers): CG + GAMG with the rigid-body near-nullspace, MUMPS as the fallback.
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

from spinefe.geometry.mesh import marker_tags
from spinefe.mechanics import laws
from spinefe.mechanics.relaxation import Relaxation
from spinefe.mechanics.loads import follower_pressure, pure_moment
from spinefe.mechanics.materials import MaterialFields
from spinefe.mechanics.pressure import AveragedPressure
from spinefe.mechanics.solvers import SolverOptions, rigid_body_nullspace, solve_linear

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadCase:
    """Supports and load. Facet indices are local to each rank.

    clamped_facets: all displacement components zero.
    loaded_facets, force_N: a total force (N) spread as a uniform traction (force / area, MPa).
    follower_N: a compressive force (N) on loaded_facets as a pressure follower_N / area normal
        to the surface as it deforms: it turns with the surface in a nonlinear solve (a
        follower load, mechanics.loads.follower_pressure), along the reference normal in a
        linear one.
    rollers: (facets, axis) pairs; displacement component `axis` zero (symmetry planes).
    displacements: (facets, axis, value_mm); displacement component `axis` prescribed.
    pressures: (facets, MPa); a normal pressure (positive into the body).
    moments: (facets, moment_Nmm); a pure moment (3,) about the surface's centroid, applied as a
        traction with no net force (spinefe.mechanics.loads.pure_moment).
    """

    clamped_facets: np.ndarray
    loaded_facets: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    force_N: tuple[float, float, float] = (0.0, 0.0, 0.0)
    follower_N: float = 0.0
    rollers: tuple[tuple[np.ndarray, int], ...] = ()
    displacements: tuple[tuple[np.ndarray, int, float], ...] = ()
    pressures: tuple[tuple[np.ndarray, float], ...] = ()
    moments: tuple[tuple[np.ndarray, tuple[float, float, float]], ...] = ()


@dataclass
class ElasticSolution:
    """Displacement (mm), nodal pressure (MPa, nearly incompressible regions) and solve data."""

    u: fem.Function
    pressure: fem.Function | None
    incompressible: fem.Function  # DG0 indicator of the averaged-pressure cells
    materials: MaterialFields
    reaction_N: np.ndarray  # force exerted by the support on the body
    applied_N: np.ndarray  # total applied force (assembled load vector)
    iterations: int
    dofs: int
    converged_reason: str
    strain_energy_mJ: float  # 1/2 u.K u (N mm), including the work of prescribed displacements
    timings: dict = field(default_factory=dict)
    petsc_options: dict = field(default_factory=dict)  # the user's PETSc options of the solve
    history: Relaxation | None = None  # relaxation history (time-dependent solves)


def stress(sol: ElasticSolution):
    """Cauchy stress (MPa) of the solution's laws as a UFL expression (mechanics.laws.stress);
    the nodal pressure in the averaged-pressure cells; relaxed by the history of a
    time-dependent solve."""
    m = sol.materials
    sigma = laws.stress(sol.u, sol.incompressible, m.isotropic, m.laws, sol.pressure)
    return sigma if sol.history is None else sigma + sol.history.cauchy_correction()


def von_mises(sigma):
    s = ufl.dev(sigma)
    return ufl.sqrt(1.5 * ufl.inner(s, s))


def external_load(mesh, load: LoadCase, v, u=None) -> ufl.Form:
    """Work of the surface loads of `load` on the test function v (N mm) at the displacement u
    (the follower load's direction depends on it; None: the reference configuration);
    collective.

    dolfinx takes one subdomain data per integral type, so every distinct facet set of the loads
    gets one tag of a single facet marker (loads on the same facets share it; sets given as
    different arrays must not overlap).
    """
    comm = mesh.comm
    surfaces: dict[bytes, int] = {}

    def tag(facets) -> int:
        key = np.unique(np.asarray(facets, dtype=np.int32)).tobytes()
        return surfaces.setdefault(key, len(surfaces) + 1)

    force_tag = tag(load.loaded_facets)
    pressure_tags = [tag(f) for f, _ in load.pressures]
    moment_tags = [tag(f) for f, _ in load.moments]
    marked = [(np.frombuffer(key, dtype=np.int32), t) for key, t in surfaces.items()]
    ds = ufl.Measure("ds", domain=mesh, subdomain_data=marker_tags(mesh, 2, marked))
    area = comm.allreduce(fem.assemble_scalar(fem.form(1.0 * ds(force_tag))), op=MPI.SUM)
    force = np.asarray(load.force_N, dtype=float)
    if area <= 0.0 and (np.any(force != 0.0) or load.follower_N != 0.0):
        raise ValueError("the loaded surface is empty (no facets or zero area)")
    traction = fem.Constant(mesh, force / area if area > 0.0 else force)
    L = ufl.inner(traction, v) * ds(force_tag)
    n = ufl.FacetNormal(mesh)
    if load.follower_N:
        L += ufl.inner(follower_pressure(mesh, load.follower_N / area, u), v) * ds(force_tag)
    for t, (_, value) in zip(pressure_tags, load.pressures, strict=True):
        L += -fem.Constant(mesh, float(value)) * ufl.inner(n, v) * ds(t)
    for t, (_, moment) in zip(moment_tags, load.moments, strict=True):
        L += ufl.inner(pure_moment(mesh, ds, t, moment).traction, v) * ds(t)
    return L


def owned_constrained_rows(
    V: fem.FunctionSpace, load: LoadCase
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Local and global unrolled indices, values (mm) and support number of the owned constrained
    dofs. Supports are numbered clamped (0), then rollers, then prescribed displacements.

    `locate_dofs_topological` also returns dofs found by other ranks (remote=True), so every
    constrained dof is known to its owner even when the owner holds none of the facets.
    """
    supports = [(load.clamped_facets, (0, 1, 2), 0.0)]
    supports += [(facets, (axis,), 0.0) for facets, axis in load.rollers]
    supports += [(facets, (axis,), value) for facets, axis, value in load.displacements]
    n_owned = V.dofmap.index_map.size_local
    values = np.zeros(3 * n_owned)
    support = np.full(3 * n_owned, -1)
    for k, (facets, axes, value) in enumerate(supports):
        blocks = fem.locate_dofs_topological(V, 2, np.asarray(facets, dtype=np.int32))
        blocks = blocks[blocks < n_owned]
        rows = (blocks[:, None] * 3 + np.asarray(axes)).ravel()
        support[rows] = k
        values[rows] = value  # later supports win where they overlap
    local = np.flatnonzero(support >= 0).astype(np.int32)
    first = V.dofmap.index_map.local_range[0] * 3  # owned dofs are contiguous in PETSc order
    return local, (local + first).astype(PETSc.IntType), values[local], support[local]


def support_reactions(comm, residual: np.ndarray, local_rows: np.ndarray, support: np.ndarray,
                      n_supports: int) -> np.ndarray:
    """Force (N, x y z) exerted on the body by each support: the residual (internal minus applied
    forces, owned part) summed over the support's constrained dofs; (n_supports, 3)."""
    out = np.zeros((n_supports, 3))
    np.add.at(out, (support, local_rows % 3), residual[local_rows])
    total = np.empty_like(out)
    comm.Allreduce(out, total, op=MPI.SUM)
    return total


@dataclass
class ElasticSystem:
    """The assembled, constrained linear system K u = f of one set of materials.

    A: the stiffness with the constrained rows and columns replaced by the identity; b: the load
    with the prescribed values lifted in; a: the bilinear form without the averaged-pressure term,
    which (when pressure.active) is B^T diag(dinv) B with B = int(sqrt(K) q div u) on the chi
    cells (dinv = 1 / m).
    """

    V: fem.FunctionSpace
    a: ufl.Form
    A: PETSc.Mat
    f: PETSc.Vec
    b: PETSc.Vec
    uh: fem.Function  # zero but for the prescribed values
    local_rows: np.ndarray
    global_rows: np.ndarray
    values: np.ndarray
    pressure: AveragedPressure
    B: PETSc.Mat | None = None
    dinv: PETSc.Vec | None = None

    @property
    def chi(self) -> fem.Function:
        """DG0 indicator of the averaged-pressure cells."""
        return self.pressure.chi


def assemble_elasticity(
    materials: MaterialFields,
    load: LoadCase,
    degree: int = 1,
    nearly_incompressible_nu: float = 0.49,
) -> ElasticSystem:
    """Assemble and constrain the static problem on the mesh of `materials`; collective."""
    mesh = materials.E.function_space.mesh
    comm = mesh.comm
    V = fem.functionspace(mesh, ("Lagrange", degree, (3,)))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    pressure = AveragedPressure(materials, nearly_incompressible_nu)
    a = laws.bilinear(u, v, pressure.chi, materials.isotropic, materials.laws) * ufl.dx
    L = external_load(mesh, load, v)

    A = dolfinx.fem.petsc.assemble_matrix(fem.form(a))
    A.assemble()
    f = dolfinx.fem.petsc.assemble_vector(fem.form(L))
    f.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)

    B = dinv = None
    if pressure.active:
        B = dolfinx.fem.petsc.assemble_matrix(fem.form(
            pressure.volume_form(ufl.div(u))))
        B.assemble()
        dinv = pressure.inverse_mass(B)
        pressure.add_tangent(A, B, dinv)
        pressure.destroy()  # (its product matrix; B and dinv are kept for the residual)

    local_rows, global_rows, values, _ = owned_constrained_rows(V, load)
    if comm.allreduce(local_rows.size, op=MPI.SUM) == 0:
        raise ValueError("no constrained dofs: the problem has rigid-body motions")
    b = f.copy()
    uh = fem.Function(V, name="displacement_mm")
    uh.x.array[local_rows] = values  # zeroRowsColumns lifts them into b
    A.zeroRowsColumns(global_rows, diag=1.0, x=uh.x.petsc_vec, b=b)
    A.setNearNullSpace(rigid_body_nullspace(V))
    return ElasticSystem(V, a, A, f, b, uh, local_rows, global_rows, values, pressure, B, dinv)


def solve_elasticity(
    materials: MaterialFields,
    load: LoadCase,
    degree: int = 1,
    nearly_incompressible_nu: float = 0.49,
    options: SolverOptions = SolverOptions(),
) -> ElasticSolution:
    """Solve the static problem on the mesh of `materials`; collective.

    Raises SolverError when the solver (and its direct fallback, options.direct_fallback) does
    not converge.
    """
    comm = materials.E.function_space.mesh.comm
    t0 = time.perf_counter()
    system = assemble_elasticity(materials, load, degree, nearly_incompressible_nu)
    V, a, A, f, uh = system.V, system.a, system.A, system.f, system.uh
    local_rows, values = system.local_rows, system.values
    t_assemble = time.perf_counter() - t0

    solve = solve_linear(A, system.b, uh.x.petsc_vec, options)
    uh.x.scatter_forward()

    # Residual-based reaction: r = K u - f on the clamped dofs (unconstrained operator).
    r = dolfinx.fem.petsc.assemble_vector(fem.form(ufl.action(a, uh)))
    r.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    pressure = None
    if system.B is not None:
        B, dinv = system.B, system.dinv
        pvec = B.createVecLeft()
        B.mult(uh.x.petsc_vec, pvec)
        pvec.pointwiseMult(pvec, dinv)  # sqrt(K) * averaged volumetric strain
        corr = B.createVecRight()
        B.multTranspose(pvec, corr)
        r.axpy(1.0, corr)
        pressure = system.pressure.nodal_pressure(pvec.getArray(readonly=True))
    r.axpy(-1.0, f)
    owned = r.getArray(readonly=True)
    reaction = np.array([owned[local_rows[local_rows % 3 == k]].sum() for k in range(3)])
    reaction = comm.allreduce(reaction, op=MPI.SUM)
    applied = comm.allreduce(f.getArray(readonly=True).reshape(-1, 3).sum(axis=0), op=MPI.SUM)
    dofs = V.dofmap.index_map.size_global * 3
    # Strain energy 1/2 u.K u = 1/2 (f.u + r.u): r (the support forces) works on prescribed dofs.
    support_work = comm.allreduce(float(owned[local_rows] @ values), op=MPI.SUM)
    energy = 0.5 * (f.dot(uh.x.petsc_vec) + support_work)
    A.destroy()
    log.info(
        "elasticity: %d dofs, %s %s in %d iterations, reaction %s N",
        dofs,
        solve.options.solver,
        solve.reason,
        solve.iterations,
        np.array2string(reaction, precision=6),
    )
    return ElasticSolution(
        u=uh,
        pressure=pressure,
        incompressible=system.chi,
        materials=materials,
        reaction_N=reaction,
        applied_N=applied,
        iterations=solve.iterations,
        dofs=int(dofs),
        converged_reason=solve.reason,
        strain_energy_mJ=float(energy),
        timings={
            "assemble_seconds": t_assemble,
            "setup_seconds": solve.setup_seconds,
            "solve_seconds": solve.solve_seconds,
        },
        petsc_options=options.user_options,
    )
