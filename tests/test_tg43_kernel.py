"""The compiled TG-43 kernel (`tg43.dose_rate`) against the numpy reference, point by point.

Covers the kernel's own machinery (table searches, packing of several models, the capsule test,
the axis guard, the log-linear g_L path beyond 10 cm, threads); the physics of the formulas
themselves is tested in test_dosimetry.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from dosimetry import tg43
from dosimetry.plan import Plan, Seed

RTOL = 1e-12


def _directions(rng, n):
    d = rng.normal(size=(n, 3))
    return d / np.linalg.norm(d, axis=1)[:, None]


def _plan(models, rng, axis_aligned=False):
    n = len(models)
    positions = rng.uniform(-10.0, 10.0, (n, 3))
    directions = np.tile([0.0, 0.0, 1.0], (n, 1)) if axis_aligned else _directions(rng, n)
    return Plan(tuple(Seed(tuple(p), tuple(d), strength_U=rng.uniform(0.3, 0.8), model=m)
                      for p, d, m in zip(positions, directions, models, strict=True)))


def _points(plan, rng, n_cloud=3000):
    """A cloud around the plan plus, for each seed: capsule interiors, points closer than the first
    g_L radius (1 mm) but outside the capsule, on the axis beyond the capsule ends, outside the F
    table's r range (< 5 mm, > 50 mm) and beyond the last g_L radius (> 100 mm). Returns the
    points and a mask of those on an axis."""
    parts = [rng.uniform(-40.0, 40.0, (n_cloud, 3))]
    axis = [np.zeros(n_cloud, bool)]
    for s in plan.seeds:
        pos, u = np.asarray(s.position_mm), np.asarray(s.direction)
        v = np.cross(u, [1.0, 0.0, 0.0] if abs(u[0]) < 0.9 else [0.0, 1.0, 0.0])
        v /= np.linalg.norm(v)
        t = rng.uniform(-1.0, 1.0, 20)
        parts += [
            pos + np.outer(t * 1.9, u) + np.outer(rng.uniform(0, 0.35, 20), v),  # inside
            pos + np.outer(t * 0.3, u) + np.outer(rng.uniform(0.45, 0.95, 20), v),  # r < 1 mm
            pos + np.outer(np.sign(t) * rng.uniform(2.4, 60.0, 20), u),  # on the axis
            pos + np.outer(rng.uniform(2.0, 5.0, 20), _directions(rng, 1)[0]),  # r < 5 mm
            pos + np.outer(rng.uniform(50.0, 99.0, 20), _directions(rng, 1)[0]),
            pos + np.outer(rng.uniform(100.0, 400.0, 20), _directions(rng, 1)[0]),  # > 10 cm
        ]
        axis += [np.arange(120) // 20 == 2]
    return np.concatenate(parts), np.concatenate(axis)


def assert_matches_reference(points, plan, formalism, rtol=RTOL):
    fast = tg43.dose_rate(points, plan, formalism)
    ref = tg43.dose_rate_reference(points, plan, formalism)
    np.testing.assert_array_equal(fast.inside_capsule, ref.inside_capsule)
    ok = ~ref.inside_capsule
    np.testing.assert_allclose(fast.dose_rate_cGy_h[ok], ref.dose_rate_cGy_h[ok], rtol=rtol,
                               atol=0.0)
    return ref


CASES = {
    "6711": ["6711"] * 4,
    "6702": ["6702"] * 4,
    "IAI-125A": ["IAI-125A"] * 4,
    "mixed": ["6711", "IAI-125A", "6702", "6711", "IAI-125A"],
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("axis_aligned", [False, True], ids=["oblique", "axis-aligned"])
def test_2d_matches_reference(case, axis_aligned):
    rng = np.random.default_rng(len(case) + 10 * axis_aligned)
    plan = _plan(CASES[case], rng, axis_aligned)
    points, _ = _points(plan, rng)
    # Points on the seed axes included: rho = |d x u| is rounding-level in both implementations.
    ref = assert_matches_reference(points, plan, "2d")
    assert 0 < ref.n_inside < len(ref.inside_capsule)


@pytest.mark.parametrize("case", ["6711", "6702"])
def test_1d_matches_reference(case):
    rng = np.random.default_rng(7)
    plan = _plan(CASES[case], rng)
    assert_matches_reference(_points(plan, rng)[0], plan, "1d")


def test_exactly_on_axis_takes_the_axis_formula():
    """Seed along z, points with the seed's x and y: rho is exactly 0 in both implementations."""
    plan = Plan((Seed((1.5, -2.0, 3.0), (0.0, 0.0, 1.0)),
                 Seed((1.5, -2.0, -4.0), (0.0, 0.0, -1.0))))
    z = np.concatenate([np.linspace(-80.0, -6.5, 50), np.linspace(5.6, 80.0, 50)])
    points = np.column_stack([np.full_like(z, 1.5), np.full_like(z, -2.0), z])
    ref = assert_matches_reference(points, plan, "2d")
    assert ref.n_inside == 0


@pytest.mark.parametrize("n", [1, 2, 1500])
def test_point_counts_and_threads(n):
    """Any number of points, and one thread gives the same result as all of them."""
    rng = np.random.default_rng(n)
    plan = _plan(["6711"] * 3, rng)
    points = rng.uniform(-200.0, 200.0, (n, 3))  # some beyond 10 cm: both g_L paths in a block
    assert_matches_reference(points, plan, "2d")
    previous = tg43.set_threads(1)
    try:
        one = tg43.dose_rate(points, plan).dose_rate_cGy_h
    finally:
        tg43.set_threads(previous)
    np.testing.assert_array_equal(one, tg43.dose_rate(points, plan).dose_rate_cGy_h)


def test_points_at_seed_centres_and_tips():
    """Points exactly at a seed centre, just inside and just outside its tips: flagged as the
    reference flags them, never a crash (r = 0 must not reach a table lookup)."""
    rng = np.random.default_rng(7)
    plan = _plan(["6711", "6702", "IAI-125A"], rng)
    centres = np.repeat(plan.positions_mm, 200, axis=0)
    tips = np.vstack([plan.positions_mm + f * plan.directions for f in (2.2, -2.2, 2.4, -2.4)])
    ref = assert_matches_reference(np.vstack([centres, tips]), plan, "2d")
    assert ref.inside_capsule[: len(centres)].all()
