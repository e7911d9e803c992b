"""Load cases on a surface: a pure moment as a distributed traction with no net force, and a
follower pressure.

A moment M (N mm) on a surface S is applied as the traction field of a rigid rotation rate,
t(x) = Omega x (x - c), with c the area centroid of S and Omega = J^-1 M, where
J = int_S (|r|^2 I - r r^T) dA (r = x - c) is the surface's polar inertia tensor. Then
int_S t dA = Omega x int_S r dA = 0 and int_S r x t dA = J Omega = M exactly: a pure moment,
whatever the shape of S. On a flat endplate and a bending moment this is the linear normal
traction of beam theory (t_n = M y / I); about the surface normal it is the torsion shear of a
shaft (t = M r / J). The alternative, a rigid coupling of the surface to a reference node
(multi-point constraints), also stiffens the endplate; the traction leaves it free.

A follower pressure p acts normal to the deformed surface: on the reference surface its nominal
traction is -p cof(F) N (Nanson's formula, cof(F) = J F^-T), so a rigid rotation R of the surface
turns its resultant by R. It is the finite-element form of the in-vitro follower preload
(Patwardhan et al., Spine 24:1003, 1999): a compression that stays normal to the endplate as the
vertebra turns, instead of a dead load whose lever arm grows with the rotation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI


@dataclass(frozen=True)
class SurfaceMoment:
    """Traction t = Omega x (x - c) on one tagged surface (MPa with Omega in 1/mm^2 x N mm)."""

    traction: ufl.core.expr.Expr
    centroid_mm: np.ndarray
    inertia_mm4: np.ndarray
    omega: np.ndarray


def _integrate(form, comm) -> float:
    return comm.allreduce(fem.assemble_scalar(fem.form(form)), op=MPI.SUM)


def pure_moment(mesh, ds: ufl.Measure, tag: int, moment_Nmm) -> SurfaceMoment:
    """Traction on the facets of `ds(tag)` whose resultant is the moment `moment_Nmm` (3,)
    about the surface's centroid and whose net force is zero; collective."""
    comm = mesh.comm
    x = ufl.SpatialCoordinate(mesh)
    area = _integrate(1.0 * ds(tag), comm)
    if area <= 0:
        raise ValueError(f"pure_moment: surface tag {tag} has no area on this mesh")
    c = np.array([_integrate(x[i] * ds(tag), comm) for i in range(3)]) / area
    r = x - ufl.as_vector(c)
    J = np.array([[_integrate(((r[0] ** 2 + r[1] ** 2 + r[2] ** 2) * (i == j) - r[i] * r[j])
                              * ds(tag), comm) for j in range(3)] for i in range(3)])
    omega = np.linalg.solve(J, np.asarray(moment_Nmm, float))
    traction = ufl.cross(ufl.as_vector(omega), r)
    return SurfaceMoment(traction, c, J, omega)


def follower_pressure(mesh, pressure_MPa: float, u=None) -> ufl.core.expr.Expr:
    """Nominal traction (MPa) of a compressive pressure normal to the surface deformed by the
    displacement u (mm); None: along the reference normal (a linear solve)."""
    n = ufl.FacetNormal(mesh)
    p = fem.Constant(mesh, float(pressure_MPa))
    if u is None:
        return -p * n
    return -p * ufl.cofac(ufl.Identity(len(u)) + ufl.grad(u)) * n
