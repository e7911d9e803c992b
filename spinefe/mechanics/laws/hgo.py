"""Fibre-reinforced hyperelasticity of Holzapfel-Gasser-Ogden type, for the annulus fibrosus.

A neo-Hookean ground matrix (mechanics.laws.neo_hookean) reinforced by collagen fibre families
with unit directions a_i in the reference configuration, each with the energy of Gasser, Ogden
and Holzapfel (J R Soc Interface 3:15, 2006), which adds a dispersion kappa to Holzapfel, Gasser
and Ogden (J Elasticity 61:1, 2000):

    W = W_matrix(F) + sum_i k1 / (2 k2) (exp(k2 <E_i>^2) - 1),
    E_i = kappa (I1 - 3) + (1 - 3 kappa) (I4_i - 1),    I4_i = a_i . C a_i,   C = F^T F,

with <x> = max(x, 0): a fibre carries tension only (kappa = 0: only when it is stretched,
I4_i > 1). kappa is in [0, 1/3] (0: aligned fibres, 1/3: isotropic dispersion). The fibre terms
use the full invariants I1, I4, not their isochoric parts: with a compressible matrix the
isochoric split makes a stretched fibre family respond as if it were a sphere (Nolan, Gower,
Destrade, Ogden, McGarry, J Mech Behav Biomed Mater 39:48, 2014).
"""

from __future__ import annotations

from dataclasses import dataclass

import ufl

from spinefe.mechanics.laws.base import Isotropic, deformation_gradient
from spinefe.mechanics.laws.neo_hookean import energy_of_F as matrix_energy
from spinefe.mechanics.laws.neo_hookean import volume_change

FINITE_STRAIN = True
__all__ = ["FINITE_STRAIN", "Parameters", "energy", "energy_of_F", "fibre_strain",
           "volume_change"]


@dataclass(frozen=True)
class Parameters:
    """Ground matrix (Lame, MPa), fibre stiffness k1 (MPa), fibre nonlinearity k2 (-),
    dispersion kappa (-) and the fibre directions (unit UFL vectors, reference frame)."""

    matrix: Isotropic
    k1: object
    k2: object
    kappa: object
    fibres: tuple


def fibre_strain(F, a, kappa):
    """E = kappa (I1 - 3) + (1 - 3 kappa) (I4 - 1) of the family with direction a."""
    C = F.T * F
    return kappa * (ufl.tr(C) - 3.0) + (1.0 - 3.0 * kappa) * (ufl.dot(a, C * a) - 1.0)


def energy_of_F(F, p: Parameters, chi):
    """Strain energy density (mJ/mm^3, per reference volume); the matrix is isochoric where
    chi = 1 (mechanics.laws.neo_hookean), the fibres are not."""
    w = matrix_energy(F, p.matrix, chi)
    for a in p.fibres:
        E = fibre_strain(F, a, p.kappa)
        tension = ufl.conditional(ufl.gt(E, 0.0), E, 0.0)
        w += p.k1 / (2.0 * p.k2) * (ufl.exp(p.k2 * tension ** 2) - 1.0)
    return w


def energy(u, p: Parameters, chi):
    return energy_of_F(deformation_gradient(u), p, chi)

