"""Linear isotropic elasticity at small strain (Hooke's law).

    W = mu eps : eps + lambda / 2 (tr eps)^2,    eps = sym(grad u),

and, in the nearly incompressible cells (chi = 1), its deviatoric part mu |dev eps|^2 =
mu eps : eps - mu / 3 (tr eps)^2 (the volumetric energy is the averaged nodal one,
mechanics.pressure). Its volume change is div u = tr eps.

The linear solve assembles the second variation of W in closed form (`bilinear`); the tests hold
it equal to the UFL derivative of `energy` (tests/test_laws.py). `stress` gives the Cauchy stress
for post-processing (von Mises), with the nodal pressure in the chi cells.
"""

from __future__ import annotations

import ufl

from spinefe.mechanics.laws.base import strain


def energy(u, mu, lam, chi):
    """Strain energy density (mJ/mm^3); deviatoric only where chi = 1."""
    eps = strain(u)
    w = mu * ufl.inner(eps, eps) + 0.5 * (1.0 - chi) * lam * ufl.tr(eps) ** 2
    return w - chi * mu / 3.0 * ufl.tr(eps) ** 2  # where chi = 1: mu |dev eps|^2


def volume_change(u):
    return ufl.div(u)


def deviatoric_lambda(mu, lam, chi):
    """The lambda of the second variation of `energy`: lambda where chi = 0, -2 mu / 3 where
    chi = 1 (which leaves 2 mu dev eps(u) : dev eps(v))."""
    return (1.0 - chi) * lam - chi * 2.0 * mu / 3.0


def bilinear(u, v, mu, lam):
    """The second variation of W in closed form: 2 mu eps(u) : eps(v) + lambda div u div v
    (integrand; with lam = deviatoric_lambda(mu, lam, chi) that of `energy`)."""
    return 2.0 * mu * ufl.inner(strain(u), strain(v)) + lam * ufl.div(u) * ufl.div(v)


def stress(u, mu, lam, chi, pressure=None):
    """Cauchy stress (MPa): 2 mu eps + lambda tr(eps) I, in the chi cells 2 mu dev eps - p I with
    the nodal pressure p (compression positive) when given."""
    eps = strain(u)
    eye = ufl.Identity(3)
    sigma = 2.0 * mu * eps + (1.0 - chi) * lam * ufl.tr(eps) * eye
    if pressure is not None:
        sigma -= chi * (pressure + 2.0 * mu / 3.0 * ufl.tr(eps)) * eye
    return sigma
