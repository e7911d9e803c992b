"""Ligament springs: stiffness from E A / L0 shared over fibres, tension-only force laws."""

import numpy as np
import pytest

from spinefe.mechanics.ligaments import LIGAMENT_DATA, fibre_force, fibres


def test_stiffness_and_tension_only():
    pairs = [[[x, -17.5, 9.0], [x, -17.5, -9.0]] for x in (-10.0, 0.0, 10.0)]
    springs = fibres({"ALL": pairs})
    E, area, _ = LIGAMENT_DATA["ALL"]
    assert sum(f.stiffness_N_mm for f in springs) == pytest.approx(E * area / 18.0)
    f = springs[0]
    assert fibre_force(f, -0.5) == 0.0
    assert fibre_force(f, 0.5) == pytest.approx(0.5 * f.stiffness_N_mm)


def test_toe_region_is_continuous_and_joins_the_linear_slope():
    f = fibres({"LF": [[[0, 5, 10], [0, 5, -10]]]})[0]
    e_t, L0, k = f.transition_strain, f.rest_length_mm, f.stiffness_N_mm
    dl = e_t * L0
    below, above = fibre_force(f, dl * (1 - 1e-9), "toe"), fibre_force(f, dl * (1 + 1e-9), "toe")
    assert below == pytest.approx(above, rel=1e-6)
    slope = (fibre_force(f, 2 * dl + 1e-3, "toe") - fibre_force(f, 2 * dl, "toe")) / 1e-3
    assert slope == pytest.approx(k, rel=1e-6)
    assert fibre_force(f, -1.0, "toe") == 0.0
    with pytest.raises(ValueError, match="ligaments.law"):
        fibre_force(f, 1.0, "cubic")
    assert np.all(np.diff(fibre_force(f, np.linspace(0, 3 * dl, 50), "toe")) >= 0)
