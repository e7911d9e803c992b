"""Elastic constants shared by the config's checks and the orthotropic law."""

from __future__ import annotations

import numpy as np


def orthotropic_compliance(E, G, nu) -> np.ndarray:
    """6 x 6 Voigt compliance (1 / unit of E) of moduli E = (E_x, E_y, E_z), shear moduli
    G = (G_yz, G_xz, G_xy) and Poisson's ratios nu = (nu_xy, nu_xz, nu_yz), with
    nu_ij = -eps_j / eps_i under uniaxial stress along i (so nu_ji = nu_ij E_j / E_i). The
    material is stable when it is positive definite."""
    Ex, Ey, Ez = E
    nu_xy, nu_xz, nu_yz = nu
    S = np.zeros((6, 6))
    S[:3, :3] = [[1 / Ex, -nu_xy / Ex, -nu_xz / Ex],
                 [-nu_xy / Ex, 1 / Ey, -nu_yz / Ey],
                 [-nu_xz / Ex, -nu_yz / Ey, 1 / Ez]]
    S[3:, 3:] = np.diag([1 / g for g in G])
    return S
