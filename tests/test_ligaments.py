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
