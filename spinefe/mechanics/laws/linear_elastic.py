"""Linear isotropic elasticity at small strain (Hooke's law).

    W = mu eps : eps + lambda / 2 (tr eps)^2,    eps = sym(grad u),

and, in the nearly incompressible cells (chi = 1), its deviatoric part mu |dev eps|^2 =
mu eps : eps - mu / 3 (tr eps)^2 (the volumetric energy is the averaged nodal one,
mechanics.pressure). Its volume change is div u = tr eps. Parameters: `Isotropic` (laws.base).

The linear solve assembles the second variation of W in closed form (`bilinear`); the tests hold
it equal to the UFL derivative of `energy` (tests/test_laws.py).
"""

from __future__ import annotations

import ufl

from spinefe.mechanics.laws.base import Isotropic as Parameters
from spinefe.mechanics.laws.base import strain

FINITE_STRAIN = False
__all__ = ["FINITE_STRAIN", "Parameters", "bilinear", "energy", "stress", "volume_change"]


def energy(u, p: Parameters, chi):
    """Strain energy density (mJ/mm^3); deviatoric only where chi = 1."""
    eps = strain(u)
    w = p.mu * ufl.inner(eps, eps) + 0.5 * (1.0 - chi) * p.lam * ufl.tr(eps) ** 2
    return w - chi * p.mu / 3.0 * ufl.tr(eps) ** 2  # where chi = 1: mu |dev eps|^2


def volume_change(u):
    return ufl.div(u)


def bilinear(u, v, p: Parameters, chi=0.0):
    """The second variation of `energy`: 2 mu eps(u) : eps(v) + lambda' div u div v with
    lambda' = lambda where chi = 0 and -2 mu / 3 where chi = 1 (2 mu dev eps(u) : dev eps(v))."""
    lam = (1.0 - chi) * p.lam - chi * 2.0 * p.mu / 3.0
    return 2.0 * p.mu * ufl.inner(strain(u), strain(v)) + lam * ufl.div(u) * ufl.div(v)


def stress(u, p: Parameters, chi=0.0):
    """Cauchy stress (MPa): 2 mu eps + lambda tr(eps) I; in the chi cells the deviatoric part
    2 mu dev eps (their mean stress is the nodal pressure's, mechanics.laws.stress)."""
    eps = strain(u)
    return 2.0 * p.mu * eps + ((1.0 - chi) * p.lam - chi * 2.0 * p.mu / 3.0) * ufl.tr(eps) \
        * ufl.Identity(3)
