"""Constitutive laws, one module each, stating their strain energy in UFL (laws.base says what a
law provides). Adding a law: one new module and one line in LAWS.

`mixture` composes the laws of a model: every law has a DG0 indicator of its cells, and the
first law of LAWS (linear elasticity) fills the cells no other law claims.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping

from spinefe.mechanics.laws import linear_elastic, neo_hookean
from spinefe.mechanics.laws.base import Law, deformation_gradient, lame, strain

#: Law name -> module. The first is the default law of every cell.
LAWS: dict[str, Law] = {
    "linear_elastic": linear_elastic,
    "neo_hookean": neo_hookean,
}
DEFAULT_LAW = next(iter(LAWS))

__all__ = ["LAWS", "DEFAULT_LAW", "Law", "deformation_gradient", "lame", "law", "mixture",
           "strain"]


def law(name: str) -> Law:
    """The law registered as `name`; KeyError naming the known laws."""
    try:
        return LAWS[name]
    except KeyError:
        raise KeyError(f"unknown material law {name!r}; known: {', '.join(LAWS)}") from None


def mixture(u, mu, lam, chi, cells: Mapping[str, object]):
    """Strain energy density and volume change of a model whose laws are cell-wise: `cells` maps
    a law name to its DG0 indicator (1 in its cells); the default law takes the rest, with the
    indicator 1 - (sum of the others). Returns (W, e_v) as UFL expressions (laws.base)."""
    others = [(law(name), indicator) for name, indicator in cells.items() if name != DEFAULT_LAW]
    if not others:
        default = law(DEFAULT_LAW)
        return default.energy(u, mu, lam, chi), default.volume_change(u)
    claimed = functools.reduce(operator.add, [ind for _, ind in others])
    parts = [(law(DEFAULT_LAW), 1.0 - claimed), *others]
    energy = functools.reduce(operator.add, [ind * m.energy(u, mu, lam, chi) for m, ind in parts])
    volume = functools.reduce(operator.add, [ind * m.volume_change(u) for m, ind in parts])
    return energy, volume
