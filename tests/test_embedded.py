"""Embedded seeds: homogenisation rules and titanium volume fractions on a fixed mesh."""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

import spinefe  # noqa: F401  (first: spinefe/__init__ loads the PETSc of DOLFINx)
import dolfinx

from spinefe.mechanics.embedded import (
    RULES,
    TitaniumFraction,
    bulk_shear,
    capsule_points,
    homogenise,
)

TUMOUR = (1.0, 0.45)
TITANIUM = (144000.0, 0.32)


@pytest.mark.parametrize("rule", RULES)
def test_rules_are_exact_at_the_ends(rule):
    E, nu = homogenise(rule, np.array([0.0, 1.0]), TUMOUR[0], TUMOUR[1], *TITANIUM)
    assert np.allclose(E, [TUMOUR[0], TITANIUM[0]], rtol=1e-12)
    assert np.allclose(nu, [TUMOUR[1], TITANIUM[1]], rtol=1e-12)


def test_rules_are_ordered_and_mori_tanaka_is_the_hashin_shtrikman_lower_bound():
    phi = np.linspace(0.0, 1.0, 41)
    moduli = {r: bulk_shear(*homogenise(r, phi, *TUMOUR, *TITANIUM)) for r in RULES}
    for k in range(2):  # bulk, shear
        assert np.all(moduli["reuss"][k] <= moduli["mori_tanaka"][k] * (1 + 1e-12))
        assert np.all(moduli["mori_tanaka"][k] <= moduli["voigt"][k] * (1 + 1e-12))
    # Hashin-Shtrikman lower bound of the bulk modulus (stiff inclusion, soft matrix).
    Km, Gm = bulk_shear(*TUMOUR)
    Ki, _ = bulk_shear(*TITANIUM)
    hs = Km + phi / (1.0 / (Ki - Km) + 3.0 * (1.0 - phi) / (3.0 * Km + 4.0 * Gm))
    assert np.allclose(moduli["mori_tanaka"][0], hs, rtol=1e-10)


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="homogenisation: 'hill' is not one of"):
        homogenise("hill", 0.1, *TUMOUR, *TITANIUM)


def test_capsule_points_fill_the_cylinder():
    p = np.array([[1.0, 2.0, 3.0]])
    d = np.array([[0.0, 1.0, 1.0]]) / np.sqrt(2.0)
    x, w = capsule_points(p, d, 0.8, 4.5)
    assert w * len(x) == pytest.approx(np.pi * 0.4**2 * 4.5, rel=1e-12)
    t = (x - p) @ d[0]
    radial = np.linalg.norm(x - p - t[:, None] * d[0], axis=1)
    assert np.all(np.abs(t) < 2.25) and np.all(radial < 0.4)
    assert np.mean(x, axis=0) == pytest.approx(p[0], abs=1e-12)


@pytest.mark.parallel
def test_titanium_fraction_conserves_the_capsule_volume():
    """Capsules in a unit-cube mesh: the cells' titanium adds up to the capsules' volume on any
    number of ranks, and a capsule that leaves the cells is found in part only."""
    comm = MPI.COMM_WORLD
    mesh = dolfinx.mesh.create_box(comm, [[0.0, 0.0, 0.0], [10.0, 10.0, 10.0]], [8, 8, 8],
                                   dolfinx.mesh.CellType.tetrahedron)
    n = mesh.topology.index_map(3).size_local
    frac = TitaniumFraction(mesh, np.arange(n, dtype=np.int32))
    positions = np.array([[5.0, 5.0, 5.0], [3.0, 6.0, 4.0], [9.5, 5.0, 5.0]])
    directions = np.array([[0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    phi, found = frac(positions, directions, 0.8, 4.5)
    found = comm.allreduce(found, op=MPI.SUM)
    full = np.pi * 0.4**2 * 4.5
    assert found[:2] == pytest.approx([full, full], rel=1e-12)
    assert found[2] == pytest.approx(full * (0.5 + 0.5 / 4.5), rel=0.03)  # 2.75 of 4.5 mm inside
    total = comm.allreduce(float(phi @ frac.volume), op=MPI.SUM)
    assert total == pytest.approx(found.sum(), rel=1e-12)
    assert 0.0 <= phi.min() and phi.max() <= 1.0
