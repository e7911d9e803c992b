"""Ligament springs: stiffness from E A / L_r shared over fibres, rest lengths from reference
strains, tension-only force laws (linear, toe) against closed forms; capsular landmarks."""

import numpy as np
import pytest

from spinefe.config.sections import LigamentReferenceStrain, Nonlinear
from spinefe.mechanics.ligaments import (
    LIGAMENT_DATA,
    LigamentSprings,
    fibre_force,
    fibres,
    kind,
)


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


def test_toe_law_closed_forms():
    """F = E A e^2 / (2 e_t) in the toe region and E A (e - e_t / 2) beyond, tangent k e / e_t
    then k (Blankevoort & Huiskes 1991), at e = e_t / 2 and 2 e_t of one ISL fibre."""
    E, area, e_t = LIGAMENT_DATA["ISL"]
    springs = LigamentSprings(fibres({"ISL": [[[0, 50, 10], [0, 50, -10]]]}), "toe")
    k, L = springs.stiffness_N_mm[0], springs.rest_length_mm[0]
    assert k == pytest.approx(E * area / 20.0)
    for e, force, tangent in ((0.5 * e_t, E * area * e_t / 8, 0.5 * k),
                              (2 * e_t, 1.5 * E * area * e_t, k)):
        f, K = springs.forces(np.array([[0.0, 0.0, e * L]]))
        assert f[0] == pytest.approx([0.0, 0.0, force], rel=1e-12)
        assert K[0, 2, 2] == pytest.approx(tangent, rel=1e-12)
        assert K[0, :2].max() == 0.0


@pytest.mark.parametrize("law", ["linear", "toe"])
@pytest.mark.parametrize(("name", "e_ref"), [("LF", 0.1), ("CL.left", 0.047), ("ISL", -0.1)])
def test_reference_strain_sets_the_rest_length(law, name, e_ref):
    """Rest length L0 / (1 + e_ref), stiffness E A / L_r over the fibres; at du = 0 a
    pre-tensioned ligament pulls with its law at e_ref (linear: E A e_ref; toe: E A e_ref^2 /
    (2 e_t) below e_t, E A (e_ref - e_t / 2) above) and a slack one first pulls after
    L0 - L_r of elongation; the tangent is the derivative of the force (central differences)."""
    E, area, e_t = LIGAMENT_DATA[name]
    pairs = [[[x, 40.0, 6.0], [x + 2.0, 40.0, -6.0]] for x in (20.0, 24.0)]
    springs = LigamentSprings(fibres({name: pairs}, {kind(name): e_ref}), law)
    L0 = np.hypot(2.0, 12.0)
    assert springs.rest_length_mm == pytest.approx(L0 / (1 + e_ref))
    assert springs.stiffness_N_mm.sum() == pytest.approx(E * area * (1 + e_ref) / L0)
    f, _ = springs.forces(np.zeros((2, 3)))
    total = np.linalg.norm(f.sum(axis=0))
    if e_ref < 0:
        assert total == 0.0
        slack = L0 - L0 / (1 + e_ref)  # negative
        n = springs.directions
        assert springs.forces(-(slack + 1e-9) * n)[0].max() == 0.0
        assert np.linalg.norm(springs.forces(-(slack - 1e-3) * n)[0]) > 0.0
    elif law == "linear":
        assert total == pytest.approx(E * area * e_ref, rel=1e-12)
    else:
        toe = E * area * e_ref**2 / (2 * e_t) if e_ref < e_t else E * area * (e_ref - e_t / 2)
        assert total == pytest.approx(toe, rel=1e-12)
    du = np.random.default_rng(1).normal(0.0, 0.3, (2, 3))
    _, K = springs.forces(du)
    h = 1e-6
    for c in range(3):
        step = np.zeros((2, 3))
        step[:, c] = h
        numeric = (springs.forces(du + step)[0] - springs.forces(du - step)[0]) / (2 * h)
        np.testing.assert_allclose(K[:, :, c], numeric, rtol=1e-6, atol=1e-6)


def test_reference_strains_are_configured_per_ligament():
    """The config names one reference strain per kind of ligament (sides share it); toe is the
    default law, and the defaults are those of the sources (CL 4.7 %, others 0)."""
    assert set(LigamentReferenceStrain.model_fields) == {kind(n) for n in LIGAMENT_DATA}
    nl = Nonlinear()
    assert nl.ligament_law == "toe"
    assert nl.ligament_reference_strain.CL == pytest.approx(0.045 / (1 - 0.045), abs=5e-4)
    assert {k for k, v in nl.ligament_reference_strain.model_dump().items() if v} == {"CL"}


def _in_bone(vertebra, points: np.ndarray) -> np.ndarray:
    """True for points inside (or on) one vertebra's bone: its body or a posterior part
    (the facet cartilage is not bone)."""
    inside = vertebra.body.contains(points)
    for name, part in vertebra.parts.items():
        if not name.startswith("facet_cartilage"):
            inside |= part.contains(points)
    return inside


def test_capsular_fibres_lie_on_bone_and_cross_the_joint():
    """CL.left and CL.right: every L4 point on the surface of L4's bone (10 um inward is bone,
    10 um outward along the face's normal is outside it) and outside L5, and the other way
    round; each fibre crosses its joint (its ends on either side of the cartilage and gap,
    both within the joint's width and height), and one of them rises from L5 to L4."""
    from spinefe.config.sections import Config
    from spinefe.geometry.layout import segment_layout
    from spinefe.geometry.segment import segment_geometry

    cfg = Config()
    lay = segment_layout(segment_geometry(cfg))
    f = cfg.facets
    for joint in lay.facets:
        fibres_ = np.array(lay.landmarks[f"CL.{joint.side}"])
        assert fibres_.shape == (3, 2, 3)
        outward = joint.tangent  # the posterolateral faces of the processes
        for end, own, other in ((0, lay.L4, lay.L5), (1, lay.L5, lay.L4)):
            p = fibres_[:, end]
            assert _in_bone(own, p - 1e-2 * outward).all(), (joint.side, end)
            assert not _in_bone(own, p + 1e-2 * outward).any(), (joint.side, end)
            assert not _in_bone(other, p).any(), (joint.side, end)
        u = (fibres_ - joint.centre) @ joint.normal  # across the joint, L5 -> L4
        bone = 0.5 * f.gap_mm + cfg.layers.cartilage_mm
        assert (u[:, 0] > bone).all() and (u[:, 1] < -bone).all()
        t = (fibres_ - joint.centre) @ joint.tangent
        assert np.abs(t) == pytest.approx(0.5 * f.width_mm, abs=1e-3)  # (rounded to 0.1 um)
        z = fibres_[..., 2] - joint.centre[2]
        assert (np.abs(z) < 0.5 * f.height_mm).all()
        assert (z[:, 0] >= z[:, 1]).all() and (z[:, 0] > z[:, 1]).sum() == 1
    # Mirror images of each other about x = 0.
    left, right = (np.array(lay.landmarks[f"CL.{s}"]) for s in ("left", "right"))
    assert np.allclose(left * [-1, 1, 1], right)
