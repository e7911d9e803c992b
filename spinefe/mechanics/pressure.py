"""Averaged nodal pressure for nearly incompressible regions (Bonet & Burton, Commun Numer Meth
Eng 14:437, 1998), shared by the linear and the nonlinear solve.

A linear tetrahedron has one volumetric strain per cell, and a mesh has about five cells per
vertex, so a nucleus with nu = 0.499 (lambda / mu = 500) is over-constrained and locks under
standard P1. The cells whose nu reaches a threshold (indicator chi) therefore keep only the
deviatoric part of their law (mechanics.laws) and take the volumetric energy from the volume
change averaged per vertex: theta_i = int(phi_i e_v) / m_i with the lumped mass
m_i = int(phi_i) over those cells and e_v the law's volume change (div u, or J - 1), so that
W_vol = sum_i K_i m_i theta_i^2 / 2. With c_i = int(sqrt(K) phi_i e_v) this is
sum_i c_i^2 / (2 m_i), whose tangent is B^T diag(1 / m) B with B = dc/du (plus, at finite strain,
the term of the form int(sqrt(K) p_h d2e_v) with the P1 field p_h = c / m). Adding it keeps the
system a single-field SPD problem for CG + GAMG. The pressure is p_i = -K_i theta_i.
Written by hand (no library offers it for DOLFINx); verified against the Lame thick cylinder in
tests/test_elasticity.py.
"""

from __future__ import annotations

import dolfinx.fem.petsc
import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI
from petsc4py import PETSc

from spinefe.geometry.mesh import marker_tags
from spinefe.mechanics.laws import lame
from spinefe.mechanics.materials import MaterialFields


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


class AveragedPressure:
    """The averaged nodal pressure of the cells with nu >= `nearly_incompressible_nu`; collective.

    chi: the DG0 indicator of those cells (zero everywhere when `active` is False, and then no
    other member is made). P: the P1 pressure space, q its test function, dx_inc the measure of
    the chi cells (quadrature `metadata`), sqrt_bulk sqrt(K) (UFL), inv_mass 1 / m_i of the owned
    nodes (0 away from the chi cells).
    """

    def __init__(self, materials: MaterialFields, nearly_incompressible_nu: float,
                 metadata: dict | None = None):
        self.chi, cells, self.active = averaged_pressure_cells(materials,
                                                                nearly_incompressible_nu)
        self._C: PETSc.Mat | None = None
        if not self.active:
            return
        mesh = materials.E.function_space.mesh
        self.P = fem.functionspace(mesh, ("Lagrange", 1))
        self.q = ufl.TestFunction(self.P)
        tags = marker_tags(mesh, 3, [(cells, 1)])
        extra = {} if metadata is None else {"metadata": metadata}
        self.dx_inc = ufl.Measure("dx", domain=mesh, subdomain_data=tags, subdomain_id=1, **extra)
        mu, lam = lame(materials.E, materials.nu)
        self.sqrt_bulk = ufl.sqrt(lam + 2.0 * mu / 3.0)
        m = dolfinx.fem.petsc.assemble_vector(fem.form(self.q * self.dx_inc))
        m.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        self.n_owned = self.P.dofmap.index_map.size_local
        mass = m.getArray(readonly=True)[: self.n_owned].copy()
        self.inv_mass = np.divide(1.0, mass, out=np.zeros_like(mass), where=mass > 0.0)

    def volume_form(self, e_v) -> ufl.Form:
        """c = int(sqrt(K) q e_v) over the chi cells (a linear form in q; B is its derivative)."""
        return self.sqrt_bulk * self.q * e_v * self.dx_inc

    def inverse_mass(self, B: PETSc.Mat) -> PETSc.Vec:
        """diag(1 / m) as a vector laid out as the rows of B."""
        dinv = B.createVecLeft()
        dinv.setArray(self.inv_mass)
        return dinv

    def add_tangent(self, A: PETSc.Mat, B: PETSc.Mat, dinv: PETSc.Vec) -> None:
        """A += B^T diag(1 / m) B; the product's matrix is kept and reused on later calls (its
        pattern is a subset of A's after the first)."""
        DB = B.copy()
        DB.diagonalScale(L=dinv)
        first = self._C is None
        self._C = B.transposeMatMult(DB) if first else B.transposeMatMult(DB, result=self._C)
        DB.destroy()
        A.axpy(1.0, self._C, structure=PETSc.Mat.Structure.DIFFERENT_NONZERO_PATTERN if first
               else PETSc.Mat.Structure.SUBSET_NONZERO_PATTERN)

    def nodal_pressure(self, sqrt_bulk_theta: np.ndarray) -> fem.Function:
        """Pressure (MPa, compression positive, the convention of intradiscal pressure) of the
        nodes: p_i = -K_i theta_i from the owned values sqrt(K) theta_i, with the nodal
        sqrt(K)_i = int(sqrt(K) phi_i) / m_i; collective."""
        k = dolfinx.fem.petsc.assemble_vector(fem.form(self.sqrt_bulk * self.q * self.dx_inc))
        k.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        n = self.n_owned
        pressure = fem.Function(self.P, name="pressure_MPa")
        pressure.x.array[:n] = (-sqrt_bulk_theta[:n] * k.getArray(readonly=True)[:n]
                                * self.inv_mass)
        pressure.x.scatter_forward()
        return pressure

    def destroy(self) -> None:
        if self._C is not None:
            self._C.destroy()
            self._C = None
