"""The compiled TG-43 kernel (`tg43.dose_rate`) against the numpy reference, point by point.

Covers the kernel's own machinery: its per-model tables (within TABLE_RTOL of the formulas from
1 mm to 10 cm, for every shipped model, both formalisms, a 0-180 deg model), the exact formulas
outside the table (beside a capsule, beyond 10 cm), the packing of several models, the capsule
test (identical flags), the axis, threads. The physics of the formulas themselves is tested in
test_dosimetry.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from dosimetry import tg43
from dosimetry.plan import Plan, Seed
from dosimetry.seed_models import builtin_models, load_seed_model

#: Outside the table the kernel evaluates the same formulas as the reference.
RTOL_FORMULAS = 1e-12


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


def assert_matches_reference(points, plan, formalism, rtol=tg43.TABLE_RTOL):
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


def _shell_points(rng, centre, n, r_cm):
    """n points at distances r_cm[0]..r_cm[1] (log-uniform) in random directions from centre."""
    r = np.exp(rng.uniform(*np.log(r_cm), n))
    return np.asarray(centre) + 10.0 * r[:, None] * _directions(rng, n)


def _capsule_skin(rng, model, seed, n):
    """n points within 0.3 mm outside the capsule surface of `seed` (cylinder and tips)."""
    pos, u = np.asarray(seed.position_mm), np.asarray(seed.direction)
    half = 10.0 * (0.5 * model.capsule_length_cm - model.capsule_radius_cm)
    radius = 10.0 * model.capsule_radius_cm + rng.uniform(1e-6, 0.3, n)
    along = rng.uniform(-half, half, n)
    d = _directions(rng, n)
    d -= np.outer(d @ u, u)
    d /= np.linalg.norm(d, axis=1)[:, None]
    side = pos + np.outer(along, u) + radius[:, None] * d
    k = _directions(rng, n)
    tips = pos + np.outer(np.sign(k @ u) * half, u) + radius[:, None] * k
    return np.vstack([side, tips])


def _table_error(points, plan, formalism):
    """Largest relative difference to the reference at points 1 mm - 10 cm from the seed."""
    fast = tg43.dose_rate(points, plan, formalism)
    ref = tg43.dose_rate_reference(points, plan, formalism)
    np.testing.assert_array_equal(fast.inside_capsule, ref.inside_capsule)
    r = np.linalg.norm(points - plan.positions_mm[0], axis=1) / 10.0
    ok = ~ref.inside_capsule & (r >= tg43.TABLE_R_CM[0]) & (r < tg43.TABLE_R_CM[1])
    assert ok.sum() > 0.9 * len(points)
    return np.max(np.abs(fast.dose_rate_cGy_h[ok] / ref.dose_rate_cGy_h[ok] - 1.0))


@pytest.mark.parametrize("name", builtin_models())
def test_table_within_tolerance_from_1_mm_to_10_cm(name):
    """Every shipped model, each formalism it has: random points 1 mm - 10 cm from the seed
    (log-uniform in r, isotropic) and a skin just outside the capsule, against the formulas."""
    rng = np.random.default_rng(sum(map(ord, name)))
    model = load_seed_model(name)
    seed = Seed(tuple(rng.uniform(-5, 5, 3)), tuple(_directions(rng, 1)[0]), 0.6, name)
    plan = Plan((seed,))
    points = np.vstack([_shell_points(rng, seed.position_mm, 40_000, (0.1, 10.0)),
                        _capsule_skin(rng, model, seed, 5_000)])
    r = np.linalg.norm(points - seed.position_mm, axis=1)
    points = points[(r >= 1.0) & (r < 100.0)]
    for formalism in ("2d", "1d") if model.phi_an is not None else ("2d",):
        assert _table_error(points, plan, formalism) <= tg43.TABLE_RTOL


def test_table_of_a_0_to_180_degree_model(asymmetric_seed_file):
    """A model tabulated on 0-180 deg (conftest: back half at F / 2) gets a table half per
    hemisphere: within the tolerance on both sides, with both formalisms."""
    rng = np.random.default_rng(18)
    name = str(asymmetric_seed_file)
    seed = Seed((1.0, -2.0, 0.5), tuple(_directions(rng, 1)[0]), 0.6, name)
    plan = Plan((seed,))
    points = np.vstack([_shell_points(rng, seed.position_mm, 20_000, (0.1, 10.0)),
                        _capsule_skin(rng, load_seed_model(name), seed, 2_000)])
    r = np.linalg.norm(points - seed.position_mm, axis=1)
    points = points[(r >= 1.0) & (r < 100.0)]
    z = (points - seed.position_mm) @ np.asarray(seed.direction)
    assert (z > 0).sum() > 5000 and (z < 0).sum() > 5000
    for formalism in ("2d", "1d"):
        assert _table_error(points, plan, formalism) <= tg43.TABLE_RTOL


@pytest.mark.parametrize("formalism", ["2d", "1d"])
def test_formulas_outside_the_table(formalism):
    """Closer than 1 mm (beside the capsule) and from 10 cm on, the kernel evaluates the
    formulas: the reference to rounding."""
    rng = np.random.default_rng(5)
    seed = Seed((3.0, 1.0, -2.0), tuple(_directions(rng, 1)[0]), 0.6, "6711")
    plan = Plan((seed,))
    points = np.vstack([_shell_points(rng, seed.position_mm, 3000, (0.04, 0.1)),
                        _shell_points(rng, seed.position_mm, 3000, (10.0, 40.0))])
    r = np.linalg.norm(points - seed.position_mm, axis=1)
    points = points[(r < 1.0) | (r >= 100.0)]
    ref = assert_matches_reference(points, plan, formalism, rtol=RTOL_FORMULAS)
    assert ref.n_inside > 0 and (~ref.inside_capsule).sum() > 3000


def test_capsule_flags_at_the_surface():
    """Points 1e-12 - 1e-3 mm inside and outside the capsule surfaces (wall and tips) of one seed
    per model: the same flags as the reference (the capsule test is the reference's arithmetic,
    run for every point within a capsule's reach)."""
    rng = np.random.default_rng(23)
    plan = _plan(builtin_models(), rng)
    parts = []
    for s in plan.seeds:
        m = load_seed_model(s.model)
        pos, u = np.asarray(s.position_mm), np.asarray(s.direction)
        half = 10.0 * (0.5 * m.capsule_length_cm - m.capsule_radius_cm)
        k = _directions(rng, 4000)
        side = k - np.outer(k @ u, u)
        side /= np.linalg.norm(side, axis=1)[:, None]
        offset = rng.choice([-1.0, 1.0], (2, 4000)) * 10.0 ** rng.uniform(-12, -3, (2, 4000))
        radius = 10.0 * m.capsule_radius_cm + offset
        parts += [pos + np.outer(rng.uniform(-half, half, 4000), u) + radius[0][:, None] * side,
                  pos + np.outer(np.sign(k @ u) * half, u) + radius[1][:, None] * k]
    ref = assert_matches_reference(np.vstack(parts), plan, "2d")
    assert 0.3 < ref.inside_capsule.mean() < 0.7
