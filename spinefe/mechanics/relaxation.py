"""The history of a Prony-series relaxation (the law: mechanics.laws.prony): DG0 tensors H_i and
the elastic stress of the last converged state, and the stress they add to a nonlinear solve.
"""

from __future__ import annotations

import ufl
from dolfinx import fem

from spinefe.mechanics.laws.prony import Series, history_update, step_factors


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
        self.terms = []  # (series, g_i, tau_i, a_i, b_i, H_i)
        for s in series:
            for g, tau in zip(s.g, s.tau_s, strict=True):
                a, b = fem.Constant(mesh, 1.0), fem.Constant(mesh, 1.0)
                self.terms.append((s, g, tau, a, b, fem.Function(T)))
        self.scale = 1.0 - sum(s.indicator * (1.0 - s.g_inf) for s in series)
        self.H_new = [s.indicator * history_update(H, elastic, self.S_n, g, a, b)
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
            a.value, b.value = step_factors(dt_s, tau)

    def commit(self) -> None:
        """Take the converged state: H_i <- H_i(u), S_n <- S_e(u)."""
        for f, expr in zip(self._new, self._new_expressions, strict=True):
            f.interpolate(expr)  # all evaluated before any history changes
        for (_, _, _, _, _, H), f in zip(self.terms, self._new, strict=True):
            H.x.array[:] = f.x.array
        self.S_n.interpolate(self._elastic_expression)
