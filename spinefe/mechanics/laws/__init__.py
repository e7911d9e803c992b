"""Constitutive laws, one module each, stating their strain energy in UFL (laws.base says what a
law provides). Adding a law: one new module and one line in LAWS.

A model's laws are cell-wise: every law but the default has a `CellLaw`, the DG0 indicator of its
cells with their parameters, and the first law of LAWS (isotropic linear elasticity, with the
cell-wise Lame parameters) fills the cells no other law claims. `mixture` composes the energy
(the nonlinear solve), `bilinear` the small-strain stiffness (the linear solve) and `stress` the
Cauchy stress (results). A Prony-series relaxation of the cells' elastic stress (`prony`, in
time-dependent solves; its history: mechanics.relaxation) applies to any of them. Biot
poroelasticity (`poroelastic`) is a displacement-pressure law of its own, solved by
mechanics.consolidation.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from dataclasses import dataclass

import ufl

from spinefe.common.errors import ConfigError
from spinefe.mechanics.laws import hgo, linear_elastic, neo_hookean, orthotropic
from spinefe.mechanics.laws.base import (
    FiniteStrainLaw,
    Isotropic,
    Law,
    SmallStrainLaw,
    deformation_gradient,
    lame,
    strain,
)

#: Law name -> module. The first is the default law of every cell.
LAWS: dict[str, SmallStrainLaw | FiniteStrainLaw] = {
    "linear_elastic": linear_elastic,
    "neo_hookean": neo_hookean,
    "hgo": hgo,
    "orthotropic": orthotropic,
}
DEFAULT_LAW = next(iter(LAWS))

__all__ = ["LAWS", "DEFAULT_LAW", "CellLaw", "FiniteStrainLaw", "Isotropic", "Law",
           "SmallStrainLaw", "bilinear",
           "deformation_gradient", "deformation_gradient_of_cells", "lame", "law", "mixture",
           "second_piola", "strain", "stress"]


def law(name: str) -> Law:
    """The law registered as `name`; KeyError naming the known laws."""
    try:
        return LAWS[name]
    except KeyError:
        raise KeyError(f"unknown material law {name!r}; known: {', '.join(LAWS)}") from None


@dataclass(frozen=True)
class CellLaw:
    """A law (name in LAWS) in the cells where the DG0 `indicator` is 1, with its parameters;
    `key` names the setting that chose it (for messages, e.g. a config key)."""

    name: str
    indicator: object
    parameters: object
    key: str = ""

    @property
    def module(self) -> Law:
        return law(self.name)


def _parts(default: Isotropic, laws: Sequence[CellLaw]):
    """(module, weight, parameters) of every law, the default's weight 1 - sum of the others."""
    if not laws:
        return [(law(DEFAULT_LAW), 1.0, default)]
    claimed = functools.reduce(operator.add, [c.indicator for c in laws])
    return [(law(DEFAULT_LAW), 1.0 - claimed, default),
            *[(c.module, c.indicator, c.parameters) for c in laws]]


def _weighted(terms):
    terms = [t if w == 1.0 else w * t for w, t in terms]
    return functools.reduce(operator.add, terms)


def mixture(u, chi, default: Isotropic, laws: Sequence[CellLaw] = ()):
    """Strain energy density and volume change of a model with cell-wise `laws` (the default
    law, with the Lame parameters `default`, takes the cells they leave). Returns (W, e_v) as UFL
    expressions (laws.base)."""
    parts = _parts(default, laws)
    energy = _weighted([(w, m.energy(u, p, chi)) for m, w, p in parts])
    volume = _weighted([(w, m.volume_change(u)) for m, w, p in parts])
    return energy, volume


def bilinear(u, v, chi, default: Isotropic, laws: Sequence[CellLaw] = ()):
    """The small-strain stiffness integrand of the model; ConfigError naming the key of a
    finite-strain law (it has no linear form here: it needs the nonlinear solve)."""
    for c in laws:
        if c.module.FINITE_STRAIN:
            raise ConfigError(f"{c.key or c.name}: the {c.name} law is a finite-strain law; it "
                              "needs the nonlinear model")
    return _weighted([(w, m.bilinear(u, v, p, chi)) for m, w, p in _parts(default, laws)])


def _first_piola(m, F, p, chi):
    """dW/dF of a finite-strain law at the UFL variable F."""
    return ufl.diff(m.energy_of_F(F, p, chi), F)


def second_piola(u, chi, default: Isotropic, laws: Sequence[CellLaw] = ()):
    """The elastic second Piola-Kirchhoff stress (MPa) of the cells' laws: F^-1 dW/dF for a
    finite-strain law, the small-strain stress otherwise (laws.prony relaxes it)."""
    F = ufl.variable(deformation_gradient(u))
    return _weighted([(w, ufl.inv(F) * _first_piola(m, F, p, chi)) if m.FINITE_STRAIN
                      else (w, m.stress(u, p, chi)) for m, w, p in _parts(default, laws)])


def deformation_gradient_of_cells(u, laws: Sequence[CellLaw] = ()):
    """F = I + grad u in the cells of finite-strain laws, I in the others (small strain)."""
    finite = [c.indicator for c in laws if c.module.FINITE_STRAIN]
    if not finite:
        return ufl.Identity(3)
    return ufl.Identity(3) + functools.reduce(operator.add, finite) * ufl.grad(u)


def stress(u, chi, default: Isotropic, laws: Sequence[CellLaw] = (), pressure=None):
    """Cauchy stress (MPa) of the model: each small-strain law's, and for a finite-strain law
    J^-1 P F^T with P = dW/dF; in the chi cells their deviatoric stress minus the nodal
    pressure p (compression positive) when given."""
    F = ufl.variable(deformation_gradient(u))
    terms = []
    for m, w, p in _parts(default, laws):
        if m.FINITE_STRAIN:
            terms.append((w, _first_piola(m, F, p, chi) * F.T / ufl.det(F)))
        else:
            terms.append((w, m.stress(u, p, chi)))
    sigma = _weighted(terms)
    if pressure is not None:
        sigma -= chi * pressure * ufl.Identity(3)
    return sigma
