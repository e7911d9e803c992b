"""Quasi-linear viscoelasticity: a Prony-series relaxation of a law's elastic stress.

The stress of a relaxing cell is the hereditary integral of its law's elastic second
Piola-Kirchhoff stress S_e (laws.second_piola) with the relaxation function

    G(t) = g_inf + sum_i g_i exp(-t / tau_i),    g_inf = 1 - sum_i g_i > 0,

so that the law's moduli are the instantaneous ones (t = 0+) and g_inf times them the long-term
ones (Fung's quasi-linear viscoelasticity; the algorithm of Simo, Comput Methods Appl Mech Eng
60:153, 1987, as in Holzapfel, Nonlinear Solid Mechanics, 2000, section 6.10):

    S = g_inf S_e + sum_i H_i,
    H_i(t_n+1) = a_i H_i(t_n) + g_i b_i (S_e(t_n+1) - S_e(t_n)),
    a_i = exp(-dt / tau_i),    b_i = (1 - a_i) tau_i / dt    (b_i = 1 at dt = 0),

which is exact when S_e varies linearly over the step. In a nearly incompressible cell the
law's part is its deviatoric (isochoric) one, so only that relaxes; the averaged nodal pressure
stays elastic. In small-strain cells S_e is the Cauchy stress of the law and F is taken as I.
The history itself (DG0 tensors H_i and S_e(t_n), committed after each converged step) is the
solver's state: mechanics.relaxation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from dolfinx import fem


@dataclass(frozen=True)
class Series:
    """One material's Prony series on its cells: the DG0 `indicator`, weights g_i (-) and
    relaxation times tau_i (s)."""

    indicator: fem.Function
    g: tuple[float, ...]
    tau_s: tuple[float, ...]

    @property
    def g_inf(self) -> float:
        return 1.0 - sum(self.g)


def step_factors(dt_s: float, tau_s: float) -> tuple[float, float]:
    """a = exp(-dt / tau) and b = (1 - a) tau / dt (1 at dt = 0) of a step of dt_s seconds."""
    x = dt_s / tau_s
    return float(np.exp(-x)), 1.0 if x == 0.0 else float(-np.expm1(-x) / x)


def history_update(H, elastic, elastic_previous, g: float, a, b):
    """H_i at the end of a step: a H_i(t_n) + g_i b (S_e - S_e(t_n)) (UFL)."""
    return a * H + g * b * (elastic - elastic_previous)
