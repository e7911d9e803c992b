"""What every constitutive law provides, and the kinematics and parameters the laws share.

A law is a module (registered in `spinefe.mechanics.laws.LAWS`) with its own frozen `Parameters`
(cell-wise UFL values, MPa) and:

- `FINITE_STRAIN`: whether the law is stated in F (large deformation) or in the small strain.
- `energy(u, p, chi)`: the strain energy density (mJ/mm^3, per reference volume) as a UFL
  expression of the displacement u. In the cells where the DG0 indicator chi is 1 (nearly
  incompressible, mechanics.pressure) the law keeps only its deviatoric (isochoric) part: their
  volumetric energy is carried by the averaged nodal volume change instead.
- `volume_change(u)`: the volumetric strain measure e_v of the law (div u at small strain,
  J - 1 at finite strain) whose nodal average carries that volumetric energy.
- small-strain laws: `bilinear(u, v, p, chi)`, the second variation of `energy` in closed form
  (the linear solve assembles it), and `stress(u, p, chi)`, the Cauchy stress (MPa) without the
  nodal pressure;
- finite-strain laws: `energy_of_F(F, p, chi)`, the same energy as a function of the
  deformation gradient, from which `spinefe.mechanics.laws.stress` derives the Cauchy stress.

The nonlinear residual and tangent are the UFL derivatives of the energy (mechanics.nonlinear).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import ufl


@runtime_checkable
class Law(Protocol):
    """The functions every constitutive law module provides (module docstring)."""

    FINITE_STRAIN: bool

    def energy(self, u, p, chi) -> ufl.core.expr.Expr: ...

    def volume_change(self, u) -> ufl.core.expr.Expr: ...


@runtime_checkable
class SmallStrainLaw(Law, Protocol):
    """A law stated in the small strain (FINITE_STRAIN False): also its stiffness and stress in
    closed form, for the linear solve."""

    def bilinear(self, u, v, p, chi) -> ufl.Form: ...

    def stress(self, u, p, chi) -> ufl.core.expr.Expr: ...


@runtime_checkable
class FiniteStrainLaw(Law, Protocol):
    """A law stated in the deformation gradient (FINITE_STRAIN True): also its energy as a
    function of F, from which the stress is derived."""

    def energy_of_F(self, F, p, chi) -> ufl.core.expr.Expr: ...


@dataclass(frozen=True)
class Isotropic:
    """Lame parameters mu and lambda (MPa; UFL expressions or numbers)."""

    mu: object
    lam: object

    @classmethod
    def of(cls, E, nu) -> Isotropic:
        """From Young's modulus E (MPa) and Poisson's ratio nu."""
        return cls(*lame(E, nu))

    def __sub__(self, other: Isotropic) -> Isotropic:
        return Isotropic(self.mu - other.mu, self.lam - other.lam)


def lame(E, nu):
    """Lame parameters (mu, lambda) from Young's modulus and Poisson's ratio (UFL or numbers)."""
    return E / (2.0 * (1.0 + nu)), E * nu / ((1.0 + nu) * (1.0 - 2.0 * nu))


def strain(u):
    """Small (infinitesimal) strain tensor sym(grad u)."""
    return ufl.sym(ufl.grad(u))


def deformation_gradient(u):
    """F = I + grad u."""
    return ufl.Identity(3) + ufl.grad(u)
