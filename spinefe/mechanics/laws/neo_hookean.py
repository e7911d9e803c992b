"""Compressible neo-Hookean hyperelasticity (large deformation).

    W = mu / 2 (I1 - 3 - 2 ln J) + lambda / 2 (ln J)^2,    F = I + grad u, J = det F,
    I1 = tr(F^T F),

whose small-strain limit is the linear law (mechanics.laws.linear_elastic). In the nearly
incompressible cells (chi = 1) only the isochoric part mu / 2 (J^(-2/3) I1 - 3); the volumetric
energy is the averaged nodal one of the volume change J - 1 (mechanics.pressure).
Parameters: `Isotropic` (laws.base).
"""

from __future__ import annotations

import ufl

from spinefe.mechanics.laws.base import Isotropic as Parameters
from spinefe.mechanics.laws.base import deformation_gradient

FINITE_STRAIN = True
__all__ = ["FINITE_STRAIN", "Parameters", "energy", "energy_of_F", "volume_change"]


def energy_of_F(F, p: Parameters, chi):
    """Strain energy density (mJ/mm^3, per reference volume); isochoric only where chi = 1."""
    J = ufl.det(F)
    I1 = ufl.tr(F.T * F)
    w = (1.0 - chi) * (0.5 * p.mu * (I1 - 3.0 - 2.0 * ufl.ln(J)) + 0.5 * p.lam * ufl.ln(J) ** 2)
    return w + chi * 0.5 * p.mu * (J ** (-2.0 / 3.0) * I1 - 3.0)


def energy(u, p: Parameters, chi):
    return energy_of_F(deformation_gradient(u), p, chi)


def volume_change(u):
    return ufl.det(deformation_gradient(u)) - 1.0
