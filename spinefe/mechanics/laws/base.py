"""What every constitutive law provides, and the kinematics and parameters the laws share.

A law is a module (registered in `spinefe.mechanics.laws.LAWS`) with two functions of the
displacement u (a UFL coefficient or argument) and the cell-wise Lame parameters:

- `energy(u, mu, lam, chi)`: the strain energy density (mJ/mm^3) as a UFL expression. In the
  cells where the DG0 indicator chi is 1 (nearly incompressible, mechanics.pressure) the law
  keeps only its deviatoric part: their volumetric energy is carried by the averaged nodal
  volume change instead.
- `volume_change(u)`: the volumetric strain measure e_v of the law (div u at small strain,
  J - 1 at finite strain) whose nodal average carries that volumetric energy.

The residual and tangent are the UFL derivatives of the energy (mechanics.nonlinear); the linear
solve uses the second variation of the small-strain law (mechanics.laws.linear_elastic.bilinear).
"""

from __future__ import annotations

from typing import Protocol

import ufl


class Law(Protocol):
    """The functions a constitutive law module provides (module docstring)."""

    def energy(self, u, mu, lam, chi) -> ufl.core.expr.Expr: ...

    def volume_change(self, u) -> ufl.core.expr.Expr: ...


def lame(E, nu):
    """Lame parameters (mu, lambda) from Young's modulus and Poisson's ratio (UFL or numbers)."""
    return E / (2.0 * (1.0 + nu)), E * nu / ((1.0 + nu) * (1.0 - 2.0 * nu))


def strain(u):
    """Small (infinitesimal) strain tensor sym(grad u)."""
    return ufl.sym(ufl.grad(u))


def deformation_gradient(u):
    """F = I + grad u."""
    return ufl.Identity(3) + ufl.grad(u)
