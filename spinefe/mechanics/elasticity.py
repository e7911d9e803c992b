"""Small-strain linear elasticity: assembly, nearly incompressible regions, solvers, reactions.

Materials are cell-wise constant (`MaterialFields`). Displacements are Lagrange of degree 1 or 2.

Volumetric locking. A linear tetrahedron has one volumetric strain per cell, and a mesh has about
five cells per vertex, so a nucleus with nu = 0.499 (lambda / mu = 500) is over-constrained and
locks under standard P1. Regions whose nu reaches a threshold therefore use the averaged nodal
pressure of Bonet & Burton (Commun Numer Meth Eng 14:437, 1998): the pressure is one value per
vertex, p_i = K / m_i * int(phi_i div u) with the lumped mass m_i = int(phi_i) over those
regions, and the strain energy is split into 2 mu |dev eps|^2 (cell-wise) plus the nodal
volumetric energy. Condensing p gives the symmetric stiffness B^T diag(K / m) B added to the
deviatoric stiffness, so the system stays a single-field SPD problem for CG + GAMG.
Written by hand (no library offers it for DOLFINx); verified against the Lame thick cylinder in
tests/test_elasticity.py.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace

import dolfinx
import dolfinx.fem.petsc
import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI
from petsc4py import PETSc

from spinefe.common.errors import SolverError
from spinefe.geometry.mesh import marker_tags
from spinefe.mechanics.loads import pure_moment
from spinefe.mechanics.materials import MaterialFields

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SolverOptions:
    """`cg_gamg` (CG + smoothed-aggregation AMG, rigid-body near-nullspace) or `mumps` (LU).

    direct_fallback: where cg_gamg does not converge (e.g. DIVERGED_INDEFINITE_PC on the slivers
    between closely packed capsules), solve again with MUMPS; the solution's converged_reason
    says so. False raises SolverError instead.
    """

    solver: str = "cg_gamg"
    rtol: float = 1e-8
    max_iterations: int = 500
    prolongator_smoothing_steps: int = 0
    direct_fallback: bool = True


@dataclass(frozen=True)
class LoadCase:
    """Supports and load. Facet indices are local to each rank.

    clamped_facets: all displacement components zero.
    loaded_facets, force_N: a total force (N) spread as a uniform traction (force / area, MPa).
    rollers: (facets, axis) pairs; displacement component `axis` zero (symmetry planes).
    displacements: (facets, axis, value_mm); displacement component `axis` prescribed.
    pressures: (facets, MPa); a normal pressure (positive into the body).
    moments: (facets, moment_Nmm); a pure moment (3,) about the surface's centroid, applied as a
        traction with no net force (spinefe.mechanics.loads.pure_moment).
    """

    clamped_facets: np.ndarray
    loaded_facets: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    force_N: tuple[float, float, float] = (0.0, 0.0, 0.0)
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


def lame(E, nu):
    """Lame parameters (mu, lambda) from Young's modulus and Poisson's ratio (UFL or numbers)."""
    return E / (2.0 * (1.0 + nu)), E * nu / ((1.0 + nu) * (1.0 - 2.0 * nu))


def strain(u):
    return ufl.sym(ufl.grad(u))


def stress(sol: ElasticSolution):
    """Cauchy stress (MPa) as a UFL expression; the nodal pressure in the incompressible cells."""
    mu, lam = lame(sol.materials.E, sol.materials.nu)
    eps = strain(sol.u)
    chi = sol.incompressible
    eye = ufl.Identity(3)
    sigma = 2.0 * mu * eps + (1.0 - chi) * lam * ufl.tr(eps) * eye
    if sol.pressure is not None:
        sigma -= chi * (sol.pressure + 2.0 * mu / 3.0 * ufl.tr(eps)) * eye  # p: compression > 0
    return sigma


def von_mises(sigma):
    s = ufl.dev(sigma)
    return ufl.sqrt(1.5 * ufl.inner(s, s))


def averaged_pressure_cells(materials: MaterialFields, nearly_incompressible_nu: float):
    """DG0 indicator chi of the cells with nu >= the threshold, their local indices (owned and
    ghost) and whether any rank has one; collective."""
    Q0 = materials.E.function_space
    mesh = Q0.mesh
    chi = fem.Function(Q0, name="averaged_pressure_cells")
    chi.x.array[:] = materials.nu.x.array >= nearly_incompressible_nu
    n_cells = mesh.topology.index_map(3).size_local + mesh.topology.index_map(3).num_ghosts
    cell_dofs = Q0.dofmap.list[np.arange(n_cells)].ravel()
    inc_cells = np.flatnonzero(chi.x.array[cell_dofs] > 0.5).astype(np.int32)
    return chi, inc_cells, mesh.comm.allreduce(inc_cells.size, op=MPI.SUM) > 0


def external_load(mesh, load: LoadCase, v) -> ufl.Form:
    """Work of the surface loads of `load` on the test function v (N mm); collective.

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
    if area <= 0.0 and np.any(force != 0.0):
        raise ValueError("the loaded surface is empty (no facets or zero area)")
    traction = fem.Constant(mesh, force / area if area > 0.0 else force)
    L = ufl.inner(traction, v) * ds(force_tag)
    n = ufl.FacetNormal(mesh)
    for t, (_, value) in zip(pressure_tags, load.pressures, strict=True):
        L += -fem.Constant(mesh, float(value)) * ufl.inner(n, v) * ds(t)
    for t, (_, moment) in zip(moment_tags, load.moments, strict=True):
        L += ufl.inner(pure_moment(mesh, ds, t, moment).traction, v) * ds(t)
    return L


def rigid_body_nullspace(V: fem.FunctionSpace) -> PETSc.NullSpace:
    """Six rigid-body modes from the owned dof coordinates (near-nullspace for GAMG)."""
    n = V.dofmap.index_map.size_local
    coords = V.tabulate_dof_coordinates()[:n].ravel()
    vec = PETSc.Vec().createWithArray(coords, bsize=3, comm=V.mesh.comm)
    return PETSc.NullSpace().createRigidBody(vec)


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


def ksp_options(opts: SolverOptions) -> dict:
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
        # titanium; SOR smoothing copes with the remaining contrast better than Jacobi. Plain
        # aggregation (nsmooths 0) by default: smoothing the prolongator saves some iterations
        # but its dense coarse operators cost more set-up than it saves (docs/mechanics.md).
        "pc_gamg_threshold": 0.05,
        "pc_gamg_agg_nsmooths": opts.prolongator_smoothing_steps,
        "mg_levels_ksp_type": "chebyshev",
        "mg_levels_pc_type": "sor",
    }


_REASONS = {v: k for k, v in PETSc.KSP.ConvergedReason.__dict__.items() if not k.startswith("_")}
_solve_count = 0


def nodal_pressure(P: fem.FunctionSpace, sqrt_bulk, dx_inc, inv_mass: np.ndarray,
                   sqrt_bulk_theta: np.ndarray) -> fem.Function:
    """Pressure (MPa, compression positive, the convention of intradiscal pressure) of the
    averaged-pressure nodes: p_i = -K_i theta_i from the owned values sqrt(K) theta_i, with the
    nodal sqrt(K)_i = int(sqrt(K) phi_i) / m_i (inv_mass = 1 / m_i); collective."""
    q = ufl.TestFunction(P)
    k = dolfinx.fem.petsc.assemble_vector(fem.form(sqrt_bulk * q * dx_inc))
    k.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    n_p = P.dofmap.index_map.size_local
    pressure = fem.Function(P, name="pressure_MPa")
    pressure.x.array[:n_p] = -sqrt_bulk_theta[:n_p] * k.getArray(readonly=True)[:n_p] * inv_mass
    pressure.x.scatter_forward()
    return pressure


@dataclass
class ElasticSystem:
    """The assembled, constrained linear system K u = f of one set of materials.

    A: the stiffness with the constrained rows and columns replaced by the identity; b: the load
    with the prescribed values lifted in; a: the bilinear form without the averaged-pressure term,
    which (when present) is B^T diag(dinv) B with B = int(sqrt(K) q div u) on the cells chi = 1.
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
    chi: fem.Function
    pressure_operator: tuple | None  # (P, sqrt(K), dx_inc, B, dinv) when chi = 1 anywhere


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
    mu, lam = lame(materials.E, materials.nu)

    chi, inc_cells, has_inc = averaged_pressure_cells(materials, nearly_incompressible_nu)

    lam_dev = (1.0 - chi) * lam - chi * 2.0 * mu / 3.0  # deviatoric only where chi = 1
    a = (2.0 * mu * ufl.inner(strain(u), strain(v)) + lam_dev * ufl.div(u) * ufl.div(v)) * ufl.dx

    L = external_load(mesh, load, v)

    A = dolfinx.fem.petsc.assemble_matrix(fem.form(a))
    A.assemble()
    f = dolfinx.fem.petsc.assemble_vector(fem.form(L))
    f.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)

    pressure_operator = None
    if has_inc:
        P = fem.functionspace(mesh, ("Lagrange", 1))
        q = ufl.TestFunction(P)
        inc_tags = marker_tags(mesh, 3, [(inc_cells, 1)])
        dx_inc = ufl.Measure("dx", domain=mesh, subdomain_data=inc_tags, subdomain_id=1)
        sqrt_bulk = ufl.sqrt(lam + 2.0 * mu / 3.0)
        B = dolfinx.fem.petsc.assemble_matrix(fem.form(sqrt_bulk * q * ufl.div(u) * dx_inc))
        B.assemble()
        m = dolfinx.fem.petsc.assemble_vector(fem.form(q * dx_inc))
        m.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        dinv = B.createVecLeft()
        mass = m.getArray(readonly=True)[: dinv.getLocalSize()]
        dinv.setArray(np.divide(1.0, mass, out=np.zeros_like(mass), where=mass > 0.0))
        DB = B.copy()
        DB.diagonalScale(L=dinv)
        C = B.transposeMatMult(DB)
        A.axpy(1.0, C, structure=PETSc.Mat.Structure.DIFFERENT_NONZERO_PATTERN)
        C.destroy()
        DB.destroy()
        pressure_operator = (P, sqrt_bulk, dx_inc, B, dinv)

    local_rows, global_rows, values, _ = owned_constrained_rows(V, load)
    if comm.allreduce(local_rows.size, op=MPI.SUM) == 0:
        raise ValueError("no constrained dofs: the problem has rigid-body motions")
    b = f.copy()
    uh = fem.Function(V, name="displacement_mm")
    uh.x.array[local_rows] = values  # zeroRowsColumns lifts them into b
    A.zeroRowsColumns(global_rows, diag=1.0, x=uh.x.petsc_vec, b=b)
    A.setNearNullSpace(rigid_body_nullspace(V))
    return ElasticSystem(V, a, A, f, b, uh, local_rows, global_rows, values, chi,
                         pressure_operator)


def create_ksp(comm, A: PETSc.Mat, options: SolverOptions) -> PETSc.KSP:
    """A KSP of `options` on operator A, set up (the preconditioner is built from A).

    The options are removed once the KSP is set up (GAMG reads its level options in set-up), so
    that solves with other options do not inherit them."""
    global _solve_count
    _solve_count += 1
    prefix = f"spinefe_elasticity_{_solve_count}_"
    ksp = PETSc.KSP().create(comm)
    ksp.setOptionsPrefix(prefix)
    opts = PETSc.Options()
    for key, value in ksp_options(options).items():
        opts[prefix + key] = value
    ksp.setOperators(A)
    ksp.setFromOptions()
    ksp.setUp()
    for key in ksp_options(options):
        del opts[prefix + key]
    return ksp


def reason_name(ksp: PETSc.KSP) -> str:
    """The KSP's converged reason by name (e.g. DIVERGED_MAX_IT)."""
    reason = ksp.getConvergedReason()
    return _REASONS.get(reason, str(reason))


def check_converged(ksp: PETSc.KSP, options: SolverOptions) -> str:
    """The KSP's converged reason by name; SolverError when it did not converge."""
    reason, its = ksp.getConvergedReason(), ksp.getIterationNumber()
    name = reason_name(ksp)
    if reason <= 0:
        raise SolverError(
            f"{options.solver} did not converge: {name} after {its} iterations "
            f"(residual norm {ksp.getResidualNorm():.3e}, rtol {options.rtol})"
        )
    return name


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
    V, a, A, f, b, uh = system.V, system.a, system.A, system.f, system.b, system.uh
    local_rows, values, chi = system.local_rows, system.values, system.chi
    t_assemble = time.perf_counter() - t0

    t1 = time.perf_counter()
    ksp = create_ksp(comm, A, options)
    t2 = time.perf_counter()
    ksp.solve(b, uh.x.petsc_vec)
    fallback = ""
    if ksp.getConvergedReason() <= 0 and options.solver == "cg_gamg" and options.direct_fallback:
        fallback = (f" (mumps; cg_gamg {reason_name(ksp)} after {ksp.getIterationNumber()} "
                    "iterations)")
        log.warning("elasticity: cg_gamg %s; solving again with MUMPS", reason_name(ksp))
        ksp.destroy()
        options = replace(options, solver="mumps")
        ksp = create_ksp(comm, A, options)
        ksp.solve(b, uh.x.petsc_vec)
    t3 = time.perf_counter()
    uh.x.scatter_forward()
    its = ksp.getIterationNumber()
    name = check_converged(ksp, options) + fallback

    # Residual-based reaction: r = K u - f on the clamped dofs (unconstrained operator).
    r = dolfinx.fem.petsc.assemble_vector(fem.form(ufl.action(a, uh)))
    r.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    pressure = None
    if system.pressure_operator is not None:
        P, sqrt_bulk, dx_inc, B, dinv = system.pressure_operator
        pvec = B.createVecLeft()
        B.mult(uh.x.petsc_vec, pvec)
        pvec.pointwiseMult(pvec, dinv)  # sqrt(K) * averaged volumetric strain
        corr = B.createVecRight()
        B.multTranspose(pvec, corr)
        r.axpy(1.0, corr)
        pressure = nodal_pressure(P, sqrt_bulk, dx_inc, dinv.getArray(readonly=True),
                                  pvec.getArray(readonly=True))
    r.axpy(-1.0, f)
    owned = r.getArray(readonly=True)
    reaction = np.array([owned[local_rows[local_rows % 3 == k]].sum() for k in range(3)])
    reaction = comm.allreduce(reaction, op=MPI.SUM)
    applied = comm.allreduce(f.getArray(readonly=True).reshape(-1, 3).sum(axis=0), op=MPI.SUM)
    dofs = V.dofmap.index_map.size_global * 3
    # Strain energy 1/2 u.K u = 1/2 (f.u + r.u): r (the support forces) works on prescribed dofs.
    support_work = comm.allreduce(float(owned[local_rows] @ values), op=MPI.SUM)
    energy = 0.5 * (f.dot(uh.x.petsc_vec) + support_work)
    ksp.destroy()
    A.destroy()
    log.info(
        "elasticity: %d dofs, %s %s in %d iterations, reaction %s N",
        dofs,
        options.solver,
        name,
        its,
        np.array2string(reaction, precision=6),
    )
    return ElasticSolution(
        u=uh,
        pressure=pressure,
        incompressible=chi,
        materials=materials,
        reaction_N=reaction,
        applied_N=applied,
        iterations=int(its),
        dofs=int(dofs),
        converged_reason=name,
        strain_energy_mJ=float(energy),
        timings={
            "assemble_seconds": t_assemble,
            "setup_seconds": t2 - t1,
            "solve_seconds": t3 - t2,
        },
    )
