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

which is exact when S_e varies linearly over the step. The history H_i and S_e(t_n) are DG0
tensors (P1 displacements: constant per cell). In a nearly incompressible cell the law's part is
its deviatoric (isochoric) one, so only that relaxes; the averaged nodal pressure stays elastic.
In small-strain cells S_e is the Cauchy stress of the law and F is taken as I.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import ufl
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


class Relaxation:
    """The history of the relaxing cells of a model and its stress; collective.

    `elastic`: the elastic second Piola-Kirchhoff stress S_e(u) of the cells' laws (UFL);
    `F`: the deformation gradient of the residual (I + grad u in finite-strain cells, I
    elsewhere). `set_step(dt)` before a solve, `commit()` after it converged."""

    def __init__(self, mesh, series: tuple[Series, ...], elastic, F):
        self.series, self.elastic, self.F = series, elastic, F
        T = fem.functionspace(mesh, ("DG", 0, (3, 3)))
        self.points = T.element.interpolation_points
        self.T = T
        self.S_n = fem.Function(T, name="elastic_stress_previous")
        self.terms = []  # (series, g_i, a_i, b_i, H_i)
        for s in series:
            for g, tau in zip(s.g, s.tau_s, strict=True):
                a, b = fem.Constant(mesh, 1.0), fem.Constant(mesh, 1.0)
                self.terms.append((s, g, tau, a, b, fem.Function(T)))
        self.scale = 1.0 - sum(s.indicator * (1.0 - s.g_inf) for s in series)
        self.H_new = [s.indicator * (a * H + g * b * (elastic - self.S_n))
                      for s, g, tau, a, b, H in self.terms]
        # Compiled once: commit() runs after every converged step.
        self._new_expressions = [fem.Expression(h, self.points) for h in self.H_new]
        self._new = [fem.Function(T) for _ in self.H_new]
        self._elastic_expression = fem.Expression(elastic, self.points)

    def stress(self):
        """sum_i H_i(u) at the end of the current step (UFL, MPa)."""
        return sum(self.H_new[1:], self.H_new[0])

    def residual(self, v, dx):
        """The history's internal virtual work int(F H : grad v)."""
        return ufl.inner(self.F * self.stress(), ufl.grad(v)) * dx

    def cauchy_correction(self):
        """The relaxed minus the elastic Cauchy stress of the committed state (UFL, MPa):
        J^-1 F ((g_inf - 1) S_e + sum_i H_i) F^T in the relaxing cells."""
        H = sum((s.indicator * H for s, _, _, _, _, H in self.terms[1:]),
                self.terms[0][0].indicator * self.terms[0][5])
        return self.F * ((self.scale - 1.0) * self.elastic + H) * self.F.T / ufl.det(self.F)

    def set_step(self, dt_s: float) -> None:
        """The factors a_i, b_i of a step of dt_s seconds (0: an instantaneous load step)."""
        for _, _, tau, a, b, _ in self.terms:
            x = dt_s / tau
            a.value = np.exp(-x)
            b.value = 1.0 if x == 0.0 else -np.expm1(-x) / x

    def commit(self) -> None:
        """Take the converged state: H_i <- H_i(u), S_n <- S_e(u)."""
        for f, expr in zip(self._new, self._new_expressions, strict=True):
            f.interpolate(expr)  # all evaluated before any history changes
        for (_, _, _, _, _, H), f in zip(self.terms, self._new, strict=True):
            H.x.array[:] = f.x.array
        self.S_n.interpolate(self._elastic_expression)
