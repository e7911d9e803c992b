"""Rigid fit of nodal displacements (range of motion): known rotations are recovered."""

import numpy as np
import pytest

from spinefe.mechanics.kinematics import relative_rotation_deg, rigid_fit


def rotation(axis, angle_deg):
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    t = np.radians(angle_deg)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(t) * K + (1 - np.cos(t)) * K @ K


@pytest.mark.parametrize("axis, angle", [((1, 0, 0), 8.3), ((0, 1, 0), -3.8), ((1, 2, 3), 25.0)])
def test_known_rigid_motion_is_recovered(axis, angle):
    rng = np.random.default_rng(0)
    x = rng.uniform(-20, 20, (500, 3)) + [0, 0, 20]
    R, t = rotation(axis, angle), np.array([0.3, -1.2, 2.0])
    c = x.mean(axis=0)
    u = (x - c) @ R.T + c + t - x
    fit = rigid_fit(x, u)
    np.testing.assert_allclose(fit.rotation, R, atol=1e-12)
    np.testing.assert_allclose(fit.translation_mm, t, atol=1e-12)
    expected = angle * np.asarray(axis, float) / np.linalg.norm(axis)
    np.testing.assert_allclose(fit.rotation_vector_deg, expected, atol=1e-10)


def test_deformation_noise_averages_out_and_relative_rotation():
    rng = np.random.default_rng(1)
    x = rng.uniform(-20, 20, (2000, 3))
    upper = rigid_fit(x, (x @ rotation((1, 0, 0), 6.0).T - x) + rng.normal(0, 0.01, x.shape))
    lower = rigid_fit(x, x @ rotation((1, 0, 0), 1.0).T - x)
    assert relative_rotation_deg(upper, lower) == pytest.approx([5.0, 0, 0], abs=2e-3)
