"""TG-43U1 dosimetry core: published values, table nodes, symmetries, bad input, DVH statistics.

Tolerances: formulas evaluated in double precision agree to 1e-12 relative; published values are
checked to the digits they are published with.
"""

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from dosimetry import (
    MEAN_LIFE_H,
    Plan,
    PlanError,
    Samples,
    Seed,
    SeedModelError,
    dose_by_time_Gy,
    dose_rate,
    load_seed_model,
    read_plan,
    strength_from_activity,
    target_metrics,
    write_plan,
)
from dosimetry.dvh import DVHError, conformity_metrics, oar_metrics
from dosimetry.seed_models import builtin_models, parse_seed_model
from dosimetry.tg43 import TABLE_RTOL, dose_rate_reference

IMPLEMENTATIONS = [dose_rate, dose_rate_reference]
#: Relative tolerance of dose values: the reference evaluates the formulas; the compiled kernel
#: interpolates them from its per-model table (tests/test_tg43_kernel.py).
RTOL = {dose_rate: TABLE_RTOL, dose_rate_reference: 1e-12}


def one_seed(model="6711", strength=1.0, position=(0, 0, 0), direction=(0, 0, 1)):
    return Plan((Seed(position, direction, strength, model),))


def polar_points(r_cm, theta_deg):
    """Points (mm) at distance r and polar angle theta from a seed at the origin along +z."""
    t = np.radians(theta_deg)
    return 10.0 * np.column_stack([r_cm * np.sin(t), np.zeros_like(t), r_cm * np.cos(t)])


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_definitional_value(impl):
    """1 U of model 6711 at 1 cm, 90 deg: 0.965 cGy/h; permanent implant total 1984.72 cGy."""
    d = impl(np.array([[10.0, 0.0, 0.0]]), one_seed())
    assert d.dose_rate_cGy_h[0] == pytest.approx(0.965, rel=RTOL[impl])
    assert 100.0 * d.total_dose_Gy[0] == pytest.approx(1984.72, abs=0.005)
    assert MEAN_LIFE_H == pytest.approx(2056.7, abs=0.05)


def exact_line_source_G(r, theta_deg, L):
    """G_L from the two end-point angles (TG-43U1 eq. 4), an independent form of ours."""
    t = np.radians(theta_deg)
    x, z = r * np.sin(t), r * np.cos(t)
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.arctan2(x, z - L / 2) - np.arctan2(x, z + L / 2)
        return np.where(x > 0, beta / (L * r * np.sin(t)), 1.0 / (r * r - L * L / 4))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("name", builtin_models())
def test_table_nodes_reproduce_the_tables(impl, name):
    """At every (r, theta) node of F, Ddot = S_K Lambda G_L/G_L(1, 90) g_L F exactly."""
    m = load_seed_model(name)
    r, t = np.meshgrid(m.F_r_cm, m.F_theta_deg)
    r, t = r.ravel(), t.ravel()
    g = np.array([m.g_L[np.flatnonzero(np.isclose(m.g_r_cm, ri))[0]] for ri in r])
    G0 = exact_line_source_G(1.0, 90.0, m.line_length_cm)
    expected = (2.5 * m.dose_rate_constant * exact_line_source_G(r, t, m.line_length_cm) / G0
                * g * m.F.T.ravel(order="F"))
    got = impl(polar_points(r, t), one_seed(name, 2.5)).dose_rate_cGy_h
    np.testing.assert_allclose(got, expected, rtol=RTOL[impl])


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_interpolation_and_extrapolation_rules(impl):
    """g_L: nearest below the first radius (inside the F table radii), log-linear beyond 10 cm;
    F: nearest in r outside the table, bilinear inside."""
    m = load_seed_model("6711")
    L, G0 = m.line_length_cm, exact_line_source_G(1.0, 90.0, m.line_length_cm)

    def rate(r, t):
        return impl(polar_points(np.array([r]), np.array([t])), one_seed()).dose_rate_cGy_h[0]

    def expected(r, t, g, F):
        return 0.965 * exact_line_source_G(r, t, L) / G0 * g * F

    # r = 0.07 cm at 90 deg (outside the 0.04 cm capsule): g_L(0.1), F(0.5, 90) = 1.
    assert rate(0.07, 90) == pytest.approx(expected(0.07, 90, 1.055, 1.0), rel=RTOL[impl])
    # r = 12 cm: log-linear from (9, 0.109) and (10, 0.0803); F(5 cm) at 60 deg.
    g12 = 0.0803 * (0.0803 / 0.109) ** 2
    assert rate(12, 60) == pytest.approx(expected(12, 60, g12, 0.987), rel=RTOL[impl])
    # Bilinear inside: r = 1.5 cm, theta = 15 deg.
    F = 0.5 * (0.5 * (0.537 + 0.580) + 0.5 * (0.705 + 0.727))
    assert rate(1.5, 15) == pytest.approx(expected(1.5, 15, 0.908, F), rel=RTOL[impl])
    # 120 deg folds onto 60 deg.
    assert rate(2.0, 120) == pytest.approx(rate(2.0, 60), rel=RTOL[impl])
    # F nearest neighbour in r outside its table, on the axis where F varies most with r:
    # r = 0.3 cm -> F(0.5, 0) = 0.333; r = 7 cm -> F(5, 0) = 0.550 (g_L(0.3) linear, g_L(7) node).
    g03 = 1.082 + (0.3 - 0.25) / 0.25 * (1.071 - 1.082)
    assert rate(0.3, 0) == pytest.approx(expected(0.3, 0, g03, 0.333), rel=RTOL[impl])
    assert rate(7.0, 0) == pytest.approx(expected(7.0, 0, 0.199, 0.550), rel=RTOL[impl])


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_anisotropy_tabulated_on_0_to_180_degrees(impl, asymmetric_seed_file):
    """A seed whose F is given on 0-180 deg (no symmetry) is not folded."""
    path = asymmetric_seed_file
    plan = one_seed(model=str(path))
    front = impl(polar_points(np.array([2.0]), np.array([60.0])), plan).dose_rate_cGy_h[0]
    rear = impl(polar_points(np.array([2.0]), np.array([120.0])), plan).dose_rate_cGy_h[0]
    assert rear == pytest.approx(front / 2, rel=RTOL[impl])


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_symmetry_about_the_transverse_plane(impl):
    rng = np.random.default_rng(1)
    p = rng.uniform(-30, 30, (500, 3))
    mirrored = p * np.array([1, 1, -1])
    a = impl(p, one_seed()).dose_rate_cGy_h
    b = impl(mirrored, one_seed()).dose_rate_cGy_h
    np.testing.assert_allclose(a, b, rtol=1e-12)


def random_plan(rng, n=5, models=("6711", "6702", "IAI-125A")):
    return Plan(tuple(
        Seed(tuple(rng.uniform(-8, 8, 3)), tuple(rng.normal(size=3)), rng.uniform(0.3, 1.0),
             models[i % len(models)])
        for i in range(n)
    ))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_superposition(impl):
    rng = np.random.default_rng(2)
    plan = random_plan(rng)
    p = rng.uniform(-25, 25, (400, 3))
    total = impl(p, plan).dose_rate_cGy_h
    parts = sum(impl(p, Plan((s,))).dose_rate_cGy_h for s in plan.seeds)
    ok = np.isfinite(total)
    np.testing.assert_allclose(total[ok], parts[ok], rtol=1e-12)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_rotating_seed_and_points_together(impl):
    rng = np.random.default_rng(3)
    plan = random_plan(rng)
    p = rng.uniform(-25, 25, (400, 3))
    Q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    shift = rng.normal(size=3) * 5
    moved = Plan(tuple(Seed(tuple(Q @ s.position_mm + shift), tuple(Q @ s.direction),
                            s.strength_U, s.model) for s in plan.seeds))
    a = impl(p, plan).dose_rate_cGy_h
    b = impl(p @ Q.T + shift, moved).dose_rate_cGy_h
    np.testing.assert_allclose(a, b, rtol=1e-11)


@pytest.mark.parametrize("name", ["6711", "6702"])
def test_far_field_approaches_the_1d_form(name):
    """The solid-angle average of the 2D dose at r is the 1D dose (phi_an is that average):
    agreement within the consistency of the published F and phi_an tables (2 %); far away the
    line source looks like a point."""
    m = load_seed_model(name)
    theta = np.linspace(0.0, 180.0, 3601)
    for r in (2.0, 3.0, 5.0):
        d2 = dose_rate(polar_points(np.full(theta.size, r), theta), one_seed(name))
        d1 = dose_rate(polar_points(np.array([r]), np.array([90.0])), one_seed(name), "1d")
        w = np.sin(np.radians(theta))
        average = np.trapezoid(d2.dose_rate_cGy_h * w, theta) / np.trapezoid(w, theta)
        assert average == pytest.approx(d1.dose_rate_cGy_h[0], rel=0.02)
    # Far from the seed the line source looks like a point: G_L(r, 90) / G_L(r0, 90) -> 1 / r^2
    # (r0 = 1 cm), G_L(r, 90) r^2 = 1 - L^2 / (12 r^2) + O(L^4 / r^4).
    L = m.line_length_cm
    G0 = 2 * np.arctan(L / 2) / L
    for r in (2.0, 5.0, 10.0):
        d1 = dose_rate(polar_points(np.array([r]), np.array([90.0])), one_seed(name), "1d")
        g = np.interp(r, m.g_r_cm, m.g_L)
        point = m.dose_rate_constant * g * np.interp(r, m.phi_r_cm, m.phi_an) / (G0 * r * r)
        assert d1.dose_rate_cGy_h[0] / point - 1 == pytest.approx(-L * L / (12 * r * r),
                                                                  rel=0.01, abs=1e-6)


def test_points_inside_a_capsule_are_flagged():
    plan = one_seed(direction=(1, 1, 0))
    u = np.array([1, 1, 0]) / np.sqrt(2)
    inside = np.array([[0, 0, 0], 2.2 * u, [0.0, 0.0, 0.35]])  # centre, near a tip, at the wall
    outside = np.array([2.4 * u, [0.0, 0.0, 0.45]])
    d = dose_rate(np.vstack([inside, outside]), plan)
    assert d.inside_capsule.tolist() == [True, True, True, False, False]
    assert d.n_inside == 3 and np.all(np.isnan(d.total_dose_Gy[:3]))
    assert np.all(np.isfinite(d.total_dose_Gy[3:]))


def test_non_finite_points_are_refused():
    with pytest.raises(ValueError, match="points: row 1 is not finite"):
        dose_rate(np.array([[10.0, 0, 0], [np.nan, 0, 0]]), one_seed())


def test_decay():
    rate = np.array([1.0])
    total = dose_by_time_Gy(rate, np.inf)
    assert total[0] == pytest.approx(MEAN_LIFE_H / 100.0, rel=1e-14)
    assert dose_by_time_Gy(rate, 59.40 * 24)[0] == pytest.approx(0.5 * total[0], rel=1e-12)
    assert strength_from_activity(0.5) == pytest.approx(0.635)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"strength_U": 0.0}, "strength_U"),
        ({"strength_U": -1.0}, "strength_U"),
        ({"direction": (0, 0, 0)}, "direction"),
        ({"model": "6799"}, "6711"),
    ],
)
def test_bad_seed_names_the_field(kwargs, field):
    args = {"position_mm": (0, 0, 0)} | kwargs
    with pytest.raises((PlanError, SeedModelError), match=field):
        Seed(**args)


def _model_data():
    import tomllib
    from importlib import resources

    ref = resources.files("dosimetry") / "data" / "seeds" / "6711.toml"
    return tomllib.loads(ref.read_text())


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d["radial_dose"].update(r_cm=d["radial_dose"]["r_cm"][::-1]),
         "radial_dose.r_cm: radii must increase"),
        (lambda d: d["anisotropy"]["theta_deg"].__setitem__(-1, 100),
         "anisotropy.theta_deg: angles must span 0-90"),
        (lambda d: d["anisotropy"]["F"][3].__setitem__(2, -0.5), "anisotropy.F: all values"),
        (lambda d: d["anisotropy"]["F"].pop(), "anisotropy.F: shape"),
        (lambda d: d["radial_dose"]["g_L"].pop(), "radial_dose.g_L: has 15 values"),
        (lambda d: d.pop("dose_rate_constant_cGy_h_U"), "dose_rate_constant_cGy_h_U: missing"),
        (lambda d: d.update(colour="red"), "colour: unknown key"),
        (lambda d: d["anisotropy"].update(r_cm=[1.0], F=[[v] for v in [1.0] * 11]),
         "anisotropy.r_cm: needs at least two radii"),
        (lambda d: d["capsule"].update(length_cm=0.30), "capsule.length_cm"),
        (lambda d: d["anisotropy"].update(theta_deg=["a"] * 11), "anisotropy.theta_deg"),
    ],
)
def test_malformed_seed_model_names_what_is_wrong(edit, message):
    data = _model_data()
    edit(data)
    with pytest.raises(SeedModelError, match=message):
        parse_seed_model(data, source="my_seed.toml")


def test_user_seed_model_file(tmp_path):
    from importlib import resources

    text = (resources.files("dosimetry") / "data" / "seeds" / "6711.toml").read_text()
    path = tmp_path / "my_seed.toml"
    path.write_text(text.replace('name = "6711"', 'name = "mine"').replace("0.965", "1.0"))
    plan = one_seed(model=str(path))
    assert dose_rate(np.array([[10.0, 0, 0]]), plan).dose_rate_cGy_h[0] == pytest.approx(1.0)


def test_plan_round_trip(tmp_path):
    # Random seeds, spread 8 mm apart in x so that no capsules overlap (read_plan refuses that).
    plan = Plan(tuple(replace(s, position_mm=(8.0 * i, *s.position_mm[1:]))
                      for i, s in enumerate(random_plan(np.random.default_rng(4)).seeds)))
    for suffix in (".toml", ".csv"):
        back = read_plan(write_plan(plan, tmp_path / f"plan{suffix}"))
        assert back.seeds == plan.seeds
    axis = "direction = [0, 0, 1]\n"
    (tmp_path / "a.toml").write_text(f"[[seeds]]\nposition_mm = [0, 0, 0]\n{axis}"
                                     "activity_mCi = 0.5\n")
    assert read_plan(tmp_path / "a.toml").seeds[0].strength_U == pytest.approx(0.635)
    (tmp_path / "b.toml").write_text(f"[[seeds]]\nposition_mm = [0, 0, 0]\n{axis}strength_U = 0.5\n"
                                     f"[[seeds]]\nposition_mm = [1, 0, 0]\n{axis}strength_U = -2\n")
    with pytest.raises(PlanError, match=r"seeds\[1\].strength_U"):
        read_plan(tmp_path / "b.toml")
    # No default axis (issue 25): the dose of a seed is anisotropic about it.
    (tmp_path / "c.toml").write_text("[[seeds]]\nposition_mm = [0, 0, 0]\nstrength_U = 0.5\n")
    with pytest.raises(PlanError, match=r"seeds\[0\].direction: missing"):
        read_plan(tmp_path / "c.toml")


def test_dvh_statistics_on_a_known_distribution():
    """Dose uniform on 0..100 Gy in 1000 equal volumes of 1 mm^3 (the hottest first)."""
    dose = np.linspace(100.0, 0.1, 1000)
    s = Samples.of(dose[::-1], np.ones(1000))  # input order must not matter
    assert s.D(90.0) == pytest.approx(10.0, abs=0.1)
    assert s.D(100.0) == pytest.approx(0.1)
    assert s.V(50.0) == pytest.approx(50.1)  # 501 samples from 50.0 to 100 Gy
    m = target_metrics(s, prescription_Gy=40.0)
    assert m["V100_percent"] == pytest.approx(60.1)
    assert m["V200_percent"] == pytest.approx(20.1)
    oar = oar_metrics(s)
    assert oar["Dmax_Gy"] == 100.0 and oar["D0.1cc_Gy"] == pytest.approx(90.0, abs=0.1)
    assert np.isnan(oar["D2cc_Gy"])  # the organ is 1 cm^3
    c = conformity_metrics(s, normal_rx_mm3=100.0, prescription_Gy=40.0)
    assert c["CI"] == pytest.approx(0.601) and c["EI"] == pytest.approx(0.1)
    assert c["HI"] == pytest.approx((601 - 401) / 601)  # V(40 Gy), V(60 Gy)
    with pytest.raises(DVHError, match="prescription_Gy"):
        target_metrics(s, 0.0)
    with pytest.raises(DVHError, match="finite"):
        Samples.of(np.array([1.0, np.nan]), np.ones(2))


def run_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "dosimetry", *args], capture_output=True,
                          text=True, timeout=120, **kw)


def test_cli_points(tmp_path):
    pts = tmp_path / "P.csv"
    pts.write_text("x_mm,y_mm,z_mm\n10,0,0\n0,0,0\n0,20,0\n")
    out = run_cli("points", "--model", "6711", "--strength-U", "1", "--points", str(pts))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "x_mm,y_mm,z_mm,dose_rate_cGy_h,total_dose_Gy"
    assert lines[1].split(",")[3:] == ["0.965", "19.847213"]
    assert lines[2].endswith(",,") and "1 of 3 points lie inside" in out.stderr
    plan = write_plan(one_seed(strength=2.0), tmp_path / "plan.toml")
    out = run_cli("points", "--plan", str(plan), "--points", str(pts), "--formalism", "1d",
                  "--out", str(tmp_path / "d.csv"))
    assert out.returncode == 0, out.stderr
    rows = (tmp_path / "d.csv").read_text().splitlines()
    assert float(rows[1].split(",")[3]) == pytest.approx(2 * 0.965 * 0.944, rel=1e-6)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "6711", "--strength-U", "0"], "strength_U: must be a number > 0"),
        (["--model", "6799", "--strength-U", "1"], "unknown; use one of"),
        (["--model", "IAI-125A", "--strength-U", "1", "--formalism", "1d"], "no phi_an"),
        (["--model", "6711"], "--strength-U or --activity-mCi"),
        (["--model", "6711", "--strength-U", "1", "--points", "."], "--points: cannot read"),
        (["--model", "6711", "--strength-U", "1", "--out", "."], "--out: . is a directory"),
    ],
)
def test_cli_bad_input(tmp_path, args, message):
    pts = tmp_path / "P.csv"
    pts.write_text("10,0,0\n")
    out = run_cli("points", *args, *([] if "--points" in args else ["--points", str(pts)]))
    assert out.returncode == 2 and message in out.stderr, out.stderr


def test_a_plan_with_overlapping_capsules_is_refused(tmp_path):
    """Issue 25, family 1: two seeds at one point (which would double the dose) or capsules
    that cross are refused by every reader of plan files, naming the file and the seeds;
    capsules (6711: 4.55 mm x 0.8 mm) end to end at 4.6 mm or side by side at 0.8 mm do not
    overlap."""
    def plan_file(name, positions, directions=((0.0, 0.0, 1.0),) * 2):
        seeds = "".join(f"[[seeds]]\nposition_mm = {list(p)}\ndirection = {list(d)}\n"
                        "strength_U = 0.5\n" for p, d in zip(positions, directions, strict=True))
        path = tmp_path / f"{name}.toml"
        path.write_text(seeds)
        return path

    for name, positions, directions in [
        ("same point", ((1.0, 2.0, 3.0), (1.0, 2.0, 3.0)), ((0, 0, 1), (0, 0, 1))),
        ("crossing", ((0.0, 0.0, 0.0), (0.0, 0.0, 1.0)), ((0, 0, 1), (1, 0, 0))),
    ]:
        with pytest.raises(PlanError, match=r"seeds\[0\] and seeds\[1\]: their capsules "
                           "overlap"):
            read_plan(plan_file(name.replace(" ", "_"), positions, directions))
    for name, positions in [("end_to_end", ((0, 0, 0), (0, 0, 4.6))),
                            ("side_by_side", ((0, 0, 0), (0.8, 0, 0)))]:
        assert len(read_plan(plan_file(name, positions)).seeds) == 2
    out = run_cli("points", "--plan", str(tmp_path / "same_point.toml"), "--points",
                  str(plan_file("p", ((5, 0, 0), (0, 5, 0)))), "--out", str(tmp_path / "d.csv"))
    assert out.returncode == 2 and "their capsules overlap" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "d.csv").exists()


def test_an_atomic_write_that_fails_leaves_no_temporary_file(tmp_path):
    from dosimetry.plan import write_text_atomic

    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError):
        write_text_atomic(tmp_path / "d", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_seeds_needed_falls_as_activity_rises():
    """Uniform loading of the default lesion ellipsoid (3.6 cm^3) to D90 >= 150 Gy."""
    from dosimetry.coverage import ellipsoid_samples, seeds_needed, uniform_pattern

    points, volumes = ellipsoid_samples((0, 0, 18), (12, 9, 8), step_mm=1.0)
    pattern = uniform_pattern(points)
    counts = []
    for activity in (0.3, 0.45, 0.8):
        c = seeds_needed(points, volumes, pattern, activity, 150.0)
        assert c.d90_Gy[c.seeds_needed] >= 150.0 > c.d90_Gy[c.seeds_needed - 1]
        counts.append(c.seeds_needed)
    assert counts[0] > counts[1] > counts[2], counts
    with pytest.raises(ValueError, match="prescription_Gy"):
        seeds_needed(points, volumes, pattern, 0.5, 0.0)
