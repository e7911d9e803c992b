"""Needle geometry checks, seeds along needles, and activity-driven seed counts (no mesh)."""

from __future__ import annotations

import numpy as np
import pytest

import spinefe  # noqa: F401  (first: spinefe/__init__ loads the PETSc of DOLFINx)
from spinefe.config.sections import Config
from spinefe.geometry.layout import overlapping_capsules, segment_layout
from spinefe.geometry.segment import segment_geometry
from spinefe.common.errors import PlanningError
from spinefe.planning.needles import (
    canal_distance,
    check_needle,
    check_needles,
    check_seeds,
    load_seeds,
    transpedicular,
)
from spinefe.planning.patterns import ACCESS, DENSITY, pattern_needles, seed_count

CFG = Config()
LAYOUT = segment_layout(segment_geometry(CFG))
#: What the planner reads besides the layout: the lesion, the capsule and the dose settings.
SITE = (LAYOUT, CFG.lesion, CFG.seed_capsule, CFG.dosimetry)


def test_good_path_along_the_pedicle_is_accepted():
    """Along the pedicle's own axis into the lesion: in bone all the way, > 3 mm from the canal."""
    needle = transpedicular(LAYOUT, "left", (10.0, -6.0, 18.0))
    check_needle(LAYOUT, needle)
    assert canal_distance(LAYOUT, needle.points()).min() > 3.0


@pytest.mark.parametrize(
    ("side", "target", "offset", "reason"),
    [
        ("left", (0.0, -6.0, 18.0), (0.0, 0.0), "from the spinal canal"),  # medial, through canal
        ("left", (-5.0, -6.0, 18.0), (0.0, 0.0), "leaves bone"),  # crosses the canal itself
        ("left", (40.0, -6.0, 18.0), (0.0, 0.0), "leaves bone"),  # out of the body's side
        ("right", (-10.0, -15.0, 18.0), (0.0, 0.0), "cortical shell"),  # tip in the anterior wall
        ("centre", (10.0, -6.0, 18.0), (0.0, 0.0), "allowed: 'left', 'right'"),
    ],
)
def test_bad_paths_are_refused_with_the_reason(side, target, offset, reason):
    needle = transpedicular(LAYOUT, "left" if side == "centre" else side, target, offset)
    if side == "centre":
        needle = type(needle)("n", side, needle.entry_mm, needle.tip_mm)
    with pytest.raises(PlanningError, match=reason):
        check_needle(LAYOUT, needle)


def test_canal_margin_is_a_parameter():
    """The same needle passes a 3 mm margin and fails a 5 mm one (default pedicle axis: 3.6 mm)."""
    needle = transpedicular(LAYOUT, "left", (10.0, -6.0, 18.0))
    check_needle(LAYOUT, needle, canal_margin_mm=3.0)
    with pytest.raises(PlanningError, match="canal_margin_mm = 5.0"):
        check_needle(LAYOUT, needle, canal_margin_mm=5.0)


def test_crossing_needles_are_refused():
    """Two needles of one pedicle whose entry and target orders are swapped cross each other."""
    a = transpedicular(LAYOUT, "left", (8.0, -6.0, 14.0), (-5.0, 4.0), name="a")
    b = transpedicular(LAYOUT, "left", (8.0, -6.0, 22.0), (-5.0, -4.0), name="b")
    with pytest.raises(PlanningError, match="needles a and b.*cross"):
        check_needles(LAYOUT, [a, b])
    c = transpedicular(LAYOUT, "left", (8.0, -6.0, 22.0), (-5.0, 4.0), name="c")
    d = transpedicular(LAYOUT, "left", (8.0, -6.0, 14.0), (-5.0, -4.0), name="d")
    check_needles(LAYOUT, [c, d])
    with pytest.raises(PlanningError, match="unique"):
        check_needles(LAYOUT, [c, c])


def test_seeds_along_a_needle_at_spacing_and_orientation():
    needle = transpedicular(LAYOUT, "left", (10.0, -6.0, 18.0))
    centres, directions = load_seeds(needle, 4, 6.0, capsule_length_mm=4.5)
    np.testing.assert_allclose(np.linalg.norm(np.diff(centres, axis=0), axis=1), 6.0, rtol=1e-12)
    np.testing.assert_allclose(directions, np.tile(needle.direction, (4, 1)), rtol=1e-12)
    # The first capsule's front end is at the tip; all centres lie on the needle.
    np.testing.assert_allclose(centres[0] + 2.25 * needle.direction, needle.tip_mm, atol=1e-12)
    rel = centres - np.asarray(needle.entry_mm)
    np.testing.assert_allclose(np.cross(rel, needle.direction), 0.0, atol=1e-9)
    with pytest.raises(PlanningError, match="shorter than the capsule"):
        load_seeds(needle, 2, 4.0)
    with pytest.raises(PlanningError, match="needle left: 20 seeds"):
        load_seeds(needle, 20, 6.0)


def test_seed_checks_name_the_offending_seed():
    """Seeds end to end on a needle (0.5 mm spacer) pass; a capsule beside another, in the
    canal or outside L4 is refused with its index."""
    needle = transpedicular(LAYOUT, "left", (10.0, -6.0, 18.0))
    centres, directions = load_seeds(needle, 3, 5.0)
    check_seeds(LAYOUT, centres, directions)
    beside = np.vstack([centres, centres[1] + [0.0, 0.0, 0.8]])
    with pytest.raises(PlanningError, match="seeds 1 and 3: capsules overlap"):
        check_seeds(LAYOUT, beside, np.vstack([directions, directions[1]]))
    with pytest.raises(PlanningError, match="seed 3 at .* enters the spinal canal"):
        check_seeds(LAYOUT, np.vstack([centres, [0.0, 25.0, 18.0]]),
                    np.vstack([directions, [0.0, 0.0, 1.0]]))
    with pytest.raises(PlanningError, match="seed 0 at .* not entirely inside the L4"):
        check_seeds(LAYOUT, [[0.0, 0.0, 50.0]], [[1.0, 0.0, 0.0]])
    # Crossed capsules whose flat-end rims meet are caught (rounded ends would pass them).
    crossed = [((-4.5, 0.0, 0.0), (0.0, 0.0, 0.0)), ((0.24, 0.24, 0.0), (0.24, 4.74, 0.0))]
    assert overlapping_capsules(crossed, 0.8)[:2] == (0, 1)
    in_line = [((0.0, 0.0, 0.0), (4.5, 0.0, 0.0)), ((5.0, 0.0, 0.0), (9.5, 0.0, 0.0))]
    assert overlapping_capsules(in_line, 0.8) is None


@pytest.mark.parametrize("density", list(DENSITY))
@pytest.mark.parametrize("access", ACCESS)
def test_pattern_needles_pass_every_check(access, density):
    needles = pattern_needles(LAYOUT, CFG.lesion, access, density)
    sides = 2 if access == "bilateral" else 1
    assert len(needles) == sides * DENSITY[density].needles_per_side
    check_needles(LAYOUT, needles)


def test_seed_count_rises_as_activity_falls():
    """Bilateral dense loading of the default lesion at 150 Gy: the count is monotone in the
    activity and strictly larger at 0.3 than at 0.8 mCi."""
    counts = [seed_count(*SITE, "bilateral", "dense", a, 150.0)[0].seeds_needed
              for a in (0.3, 0.45, 0.6, 0.8)]
    assert all(c is not None for c in counts), counts
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"access": "posterior"}, "access: unknown 'posterior'"),
        ({"density": "medium"}, "density: unknown 'medium'"),
        ({"activity_mCi": 2.5}, "activity_mCi: 2.5 outside the allowed 0.1-2 mCi"),
    ],
)
def test_bad_planner_input_is_refused(kwargs, message):
    args = {"access": "bilateral", "density": "dense", "activity_mCi": 0.45, **kwargs}
    with pytest.raises(PlanningError, match=message):
        seed_count(*SITE, args["access"], args["density"], args["activity_mCi"], 150.0)


def test_a_plan_written_into_the_config_reads_back():
    """plan_config is the inverse of config_plan for the seeds' positions and directions; the
    strengths come from [dosimetry] (every configured seed alike)."""
    from dosimetry import Plan
    from spinefe.config.plans import config_plan, plan_config

    plan = Plan.uniform([[1.0, -2.0, 15.0], [-3.0, -1.5, 20.0]], [[0.0, 0.6, 0.8], [1, 0, 0]],
                        2.0)
    cfg = plan_config(CFG, plan)
    assert cfg.mechanics.scenario == "implanted"
    back = config_plan(cfg)
    np.testing.assert_array_equal(back.positions_mm, plan.positions_mm)
    np.testing.assert_allclose(back.directions, plan.directions, rtol=0, atol=1e-15)
    assert back.strengths_U.tolist() == [1.270 * CFG.dosimetry.activity_mCi] * 2
    again = config_plan(CFG)
    assert plan_config(CFG, again).seeds[3].position_mm == CFG.seeds[3].position_mm
    assert [s.model for s in again.seeds] == [CFG.dosimetry.seed_model] * len(CFG.seeds)


def test_plan_command_writes_a_plan_that_reads_back(tmp_path):
    """`spinefe plan` writes TOML, CSV, RT Plan and a summary whose seed count reaches D90."""
    import json

    from dosimetry import read_plan
    from dosimetry.dicom import read_rt_plan
    from spinefe.cli.main import main

    out = tmp_path / "plan"
    args = ["plan", "--access", "bilateral", "--density", "dense", "--activity-mCi", "0.6",
            "--prescription-Gy", "150", "--out", str(out)]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    n = summary["seeds"]
    assert summary["d90_Gy_by_seed_count"][str(n)] >= 150.0
    assert summary["d90_Gy_by_seed_count"][str(n - 1)] < 150.0
    for name in ("plan.toml", "plan.csv"):
        plan = read_plan(out / name)
        assert len(plan.seeds) == n
        np.testing.assert_allclose([s.strength_U for s in plan.seeds], 0.6 * 1.270, rtol=1e-12)
    dicom = read_rt_plan(out / "rtplan.dcm")
    np.testing.assert_allclose(dicom.positions_mm, read_plan(out / "plan.toml").positions_mm,
                               atol=1e-6)
    assert main([*args[:2], "lateral", *args[3:]]) == 2
