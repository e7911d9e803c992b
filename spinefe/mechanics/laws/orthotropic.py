"""Orthotropic linear elasticity at small strain, for anisotropic (trabecular) bone.

    W = 1/2 eps : C : eps,    C = E_ref(x) * C_hat,

where C_hat is the stiffness per unit reference modulus of nine engineering constants in the
segment's frame (x lateral, y antero-posterior, z cranio-caudal; `stiffness`), and E_ref the
cell-wise reference modulus (MPa, the material's E or a density-mapped one,
mechanics.density). Transverse isotropy about z is the case E_x = E_y, G_xz = G_yz,
G_xy = E_x / (2 (1 + nu_xy)); isotropy the case of equal moduli and Poisson's ratios with
G = E / (2 (1 + nu)), which is Hooke's law of mechanics.laws.linear_elastic (tests/test_laws.py).
The law has no nearly incompressible form: its cells never take the averaged pressure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import ufl

from spinefe.common.elastic_constants import orthotropic_compliance
from spinefe.mechanics.laws.base import strain

FINITE_STRAIN = False
__all__ = ["FINITE_STRAIN", "Parameters", "bilinear", "energy", "stiffness", "stress",
           "volume_change"]

#: Voigt order of the strain and stress components (engineering shear strains 2 eps_ij).
VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


def stiffness(E: tuple[float, float, float], G: tuple[float, float, float],
              nu: tuple[float, float, float]) -> np.ndarray:
    """6 x 6 Voigt stiffness (same unit as E) of moduli E = (E_x, E_y, E_z), shear moduli
    G = (G_yz, G_xz, G_xy) and Poisson's ratios nu = (nu_xy, nu_xz, nu_yz), nu_ij = -eps_j / eps_i
    under uniaxial stress along i (so nu_ji = nu_ij E_j / E_i). ValueError when the compliance
    is not positive definite."""
    S = orthotropic_compliance(E, G, nu)
    if np.linalg.eigvalsh(S).min() <= 0.0:
        raise ValueError("the orthotropic constants give a compliance that is not positive "
                         f"definite (E = {E}, G = {G}, nu = {nu})")
    return np.linalg.inv(S)


@dataclass(frozen=True)
class Parameters:
    """Reference modulus E_ref (MPa, UFL, cell-wise) and the 6 x 6 stiffness per unit E_ref."""

    E_ref: object
    C_hat: np.ndarray


def _voigt_strain(eps):
    return ufl.as_vector([eps[i, j] * (1.0 if i == j else 2.0) for i, j in VOIGT])


def _stress_vector(u, p: Parameters):
    return p.E_ref * ufl.dot(ufl.as_matrix(p.C_hat.tolist()), _voigt_strain(strain(u)))


def energy(u, p: Parameters, chi=0.0):
    """Strain energy density (mJ/mm^3); chi is not used (module docstring)."""
    return 0.5 * ufl.dot(_stress_vector(u, p), _voigt_strain(strain(u)))


def volume_change(u):
    return ufl.div(u)


def bilinear(u, v, p: Parameters, chi=0.0):
    """The second variation of `energy`: eps(v) : C : eps(u)."""
    return ufl.dot(_stress_vector(u, p), _voigt_strain(strain(v)))


def stress(u, p: Parameters, chi=0.0):
    """Cauchy stress tensor (MPa)."""
    s = _stress_vector(u, p)
    index = {ij: k for k, ij in enumerate(VOIGT)}
    return ufl.as_matrix([[s[index[(min(i, j), max(i, j))]] for j in range(3)]
                          for i in range(3)])
