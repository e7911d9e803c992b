"""Seed patterns of the paper's four corners along transpedicular needles, and the seed count
that dose coverage needs.

The paper (Table 1) pairs high activity (0.8 mCi, 8-12 seeds) with unilateral, dispersed loading
and low activity (0.3-0.6 mCi, 15-25 seeds) with bilateral or unilateral dense loading. Here the
four corners are access (unilateral left or right, bilateral) x density:
- dense: 4 needles per pedicle, seeds every 5 mm (a 4.5 mm capsule and a 0.5 mm spacer);
- sparse: 3 needles per pedicle, seeds every 8 mm.
Needle tips lie in the anterior part of the lesion (TIP_DEPTH of its semi-axis in front of its
centre), spread over its height; a bilateral needle aims at the lesion half of its side, a
unilateral fan sweeps from its own side to near the midline, about the farthest a pedicle reaches
with 3 mm to the canal.
Entries sit 5 mm lateral on the pedicle face (so the fan can converge), spread cranio-caudally in
the order of their targets, so the needles of one pedicle do not cross.
The number of seeds is not taken from a table: it is the smallest count whose pattern (seeds
filled needle by needle, round robin, from the tips) gives lesion D90 >= prescription
(dosimetry.coverage.seeds_needed, TG-43 point doses on the lesion ellipsoid).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dosimetry.coverage import ellipsoid_samples, seeds_needed
from dosimetry.plan import Plan, strength_from_activity
from spinefe.common.errors import PlanningError
from spinefe.config.sections import Dosimetry, Lesion, SeedCapsule
from spinefe.geometry.layout import SegmentLayout
from spinefe.planning.needles import Needle, check_needles, check_seeds, load_seeds, transpedicular

ACCESS = ("unilateral_left", "unilateral_right", "bilateral")


@dataclass(frozen=True)
class Loading:
    needles_per_side: int
    spacing_mm: float  # seed centre to centre along a needle


DENSITY = {"dense": Loading(4, 5.0), "sparse": Loading(3, 8.0)}
#: Needle tips lie this fraction of the lesion's semi-axis in front of (anterior to) its centre.
TIP_DEPTH = 0.8
#: Margin (mm) by which seed capsules stay inside the L4 body (out of the cortical shell).
SEED_BODY_MARGIN_MM = 1.5


def _choice(field: str, value: str, allowed) -> None:
    if value not in allowed:
        raise PlanningError(f"{field}: unknown {value!r}; allowed: {list(allowed)}")


def pattern_needles(layout: SegmentLayout, lesion: Lesion, access: str,
                    density: str) -> list[Needle]:
    """The checked needles of one corner for `lesion`."""
    _choice("density", density, DENSITY)
    return fan_needles(layout, lesion, access, DENSITY[density].needles_per_side)


def fan_needles(layout: SegmentLayout, lesion: Lesion, access: str, needles_per_side: int,
                tip_depth: float = TIP_DEPTH, aim: float | None = None,
                spread: float = 0.5) -> list[Needle]:
    """The checked fan of `needles_per_side` needles per pedicle of `access`. Tips lie
    `tip_depth` of the lesion's anterior-posterior semi-axis in front of its centre, spread over
    +-`spread` of its cranio-caudal semi-axis; laterally at `aim` of its transverse semi-axis
    on their side (bilateral, default 0.45), or sweeping from `aim` to `aim` - 0.5 (unilateral,
    default 0.6: from the own side to the midline)."""
    _choice("access", access, ACCESS)
    if aim is None:
        aim = 0.45 if access == "bilateral" else 0.6
    centre, radii = np.asarray(lesion.centre_mm), np.asarray(lesion.radii_mm)
    sides = ("left", "right") if access == "bilateral" else (access.split("_")[1],)
    k = needles_per_side
    needles = []
    for side in sides:
        s = 1.0 if side == "left" else -1.0  # +x is the patient's left
        for i in range(k):
            f = i / (k - 1) if k > 1 else 0.5
            x = s * radii[0] * (aim if access == "bilateral" else aim - 0.5 * f)
            z = radii[2] * spread * (2.0 * f - 1.0)
            target = centre + np.array([x, -tip_depth * radii[1], z])
            needles.append(transpedicular(layout, side, target, (-5.0, 4.5 * (2.0 * f - 1.0)),
                                          name=f"{side}.{i + 1}"))
    check_needles(layout, needles)
    return needles


def capacity(layout: SegmentLayout, needle: Needle, spacing_mm: float,
             capsule_length_mm: float = 4.5) -> int:
    """Seeds that fit on `needle` from its tip while staying inside the L4 body."""
    n = 0
    while True:
        try:
            pos, d = load_seeds(needle, n + 1, spacing_mm, capsule_length_mm)
        except PlanningError:
            return n
        half = 0.5 * capsule_length_mm * d
        ends = np.concatenate([pos + half, pos - half])
        if not layout.L4.body.contains(ends, margin=SEED_BODY_MARGIN_MM).all():
            return n
        n += 1


def seed_pattern(layout: SegmentLayout, needles: list[Needle], spacing_mm: float,
                 capsule_length_mm: float = 4.5):
    """Pattern n -> (centres (n, 3), directions): n seeds filled round robin over the needles,
    each from its tip; also returns the largest n the needles hold."""
    caps = [capacity(layout, nd, spacing_mm, capsule_length_mm) for nd in needles]

    def place(n: int) -> tuple[np.ndarray, np.ndarray]:
        if n > sum(caps):
            raise PlanningError(f"{n} seeds do not fit on the needles (at most {sum(caps)})")
        counts = np.zeros(len(needles), dtype=int)
        while counts.sum() < n:
            for j in range(len(needles)):
                if counts.sum() < n and counts[j] < caps[j]:
                    counts[j] += 1
        loaded = [load_seeds(nd, int(c), spacing_mm, capsule_length_mm)
                  for nd, c in zip(needles, counts, strict=True) if c]
        return (np.concatenate([p for p, _ in loaded]), np.concatenate([d for _, d in loaded]))

    return place, sum(caps)


def seed_count(layout: SegmentLayout, lesion: Lesion, capsule: SeedCapsule,
               dosimetry: Dosimetry, access: str, density: str, activity_mCi: float,
               prescription_Gy: float):
    """Seeds one corner needs for lesion D90 >= prescription (Gy) at `activity_mCi` (TG-43,
    seed model and formalism of `dosimetry`): (Coverage, needles, pattern).
    Coverage.seeds_needed is None when the needles cannot hold enough."""
    if not 0.1 <= activity_mCi <= 2.0:
        raise PlanningError(f"activity_mCi: {activity_mCi} outside the allowed 0.1-2 mCi")
    needles = pattern_needles(layout, lesion, access, density)
    place, most = seed_pattern(layout, needles, DENSITY[density].spacing_mm, capsule.length_mm)
    if most == 0:
        raise PlanningError(f"{access} {density}: no seed fits on the needles inside the body")
    points, volumes = ellipsoid_samples(lesion.centre_mm, lesion.radii_mm, 1.0)
    coverage = seeds_needed(points, volumes, place, activity_mCi, prescription_Gy,
                            dosimetry.seed_model, n_max=most, formalism=dosimetry.formalism)
    return coverage, needles, place


def plan_pattern(layout: SegmentLayout, lesion: Lesion, capsule: SeedCapsule,
                 dosimetry: Dosimetry, access: str, density: str, activity_mCi: float,
                 prescription_Gy: float):
    """The plan of one corner with the seed count that covers the lesion (`seed_count`):
    (Plan, needles, Coverage). PlanningError if the needles cannot hold enough seeds."""
    coverage, needles, place = seed_count(layout, lesion, capsule, dosimetry, access, density,
                                          activity_mCi, prescription_Gy)
    if coverage.seeds_needed is None:
        most = max(coverage.d90_Gy)
        advice = "raise the activity" + ("" if access == "bilateral" else
                                         " or use bilateral access")
        raise PlanningError(
            f"{access} {density} at {activity_mCi} mCi: lesion D90 reaches only "
            f"{coverage.d90_Gy[most]:.0f} Gy with all {most} seeds the needles hold, below the "
            f"prescription of {prescription_Gy} Gy; {advice}"
        )
    positions, directions = place(coverage.seeds_needed)
    check_seeds(layout, positions, directions, capsule.diameter_mm, capsule.length_mm)
    plan = Plan.uniform(positions, directions, strength_from_activity(activity_mCi),
                        dosimetry.seed_model, name=f"{access} {density} {activity_mCi} mCi")
    return plan, needles, coverage
