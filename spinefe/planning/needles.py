"""Transpedicular needles into the L4 body and seeds loaded along them (mm, LPS frame).

A needle is the straight segment from an entry point on the posterior face of a pedicle (where the
pedicle leaves the lamina) to its tip, a target point in the vertebral body. The entry may be moved
on the pedicle face (`entry_offset_mm`: transverse, cranial) so that several needles pass one
pedicle side by side. `check_needles` refuses, naming the needle and the reason, a needle that
- leaves bone (lamina, pedicle, body) on its way to the tip, or ends within the cortical shell;
- comes closer than `canal_margin_mm` (default 3 mm) to the spinal canal;
- passes closer to another needle than the needle diameter (the two would cross).
Seeds are loaded from the tip backwards at a spacing, oriented along the needle (`load_seeds`).

Written with numpy on the analytic layout (geometry.layout), not on the mesh: a plan search checks
thousands of trajectories, and the layout's primitives (kidney-section body, elliptic pedicles,
elliptic canal) are what the mesh was built from.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from spinefe.common.errors import PlanningError
from dosimetry.plan import segment_distance
from spinefe.geometry.anatomy import cylinder_sample_points
from spinefe.geometry.layout import (
    SEED_CLEARANCE_MM,
    Cylinder,
    SegmentLayout,
    canal_ellipse,
    in_canal,
    overlapping_capsules,
)

#: Outer diameter of an 18 G brachytherapy needle (mm), the usual gauge for I-125 seeds.
NEEDLE_DIAMETER_MM = 1.27
#: Distance between points at which a path is checked (mm).
_STEP_MM = 0.25


@dataclass(frozen=True)
class Needle:
    """A straight needle from `entry_mm` to `tip_mm` through the pedicle of `side`."""

    name: str
    side: str  # "left" | "right": the pedicle it passes
    entry_mm: tuple[float, float, float]
    tip_mm: tuple[float, float, float]

    @property
    def direction(self) -> np.ndarray:
        """Unit vector from entry to tip."""
        d = np.subtract(self.tip_mm, self.entry_mm)
        return d / np.linalg.norm(d)

    @property
    def length_mm(self) -> float:
        return float(np.linalg.norm(np.subtract(self.tip_mm, self.entry_mm)))

    def points(self, step_mm: float = _STEP_MM) -> np.ndarray:
        """Points (n, 3) along the needle from entry to tip, at most step_mm apart."""
        n = max(2, int(np.ceil(self.length_mm / step_mm)) + 1)
        t = np.linspace(0.0, 1.0, n)[:, None]
        return np.asarray(self.entry_mm) + t * np.subtract(self.tip_mm, self.entry_mm)


def pedicle_entry(layout: SegmentLayout, side: str, offset_mm=(0.0, 0.0)) -> np.ndarray:
    """Point on the posterior face of the L4 pedicle of `side`, moved by (transverse, cranial)
    mm within that face (perpendicular to the pedicle axis); transverse is positive towards the
    midline."""
    pedicle = _pedicle(layout, side)
    across = np.cross(pedicle.axis, pedicle.major_dir)
    across /= np.linalg.norm(across)
    medial = across if across[0] * pedicle.base[0] < 0.0 else -across
    return pedicle.base + offset_mm[0] * medial + offset_mm[1] * pedicle.major_dir


def transpedicular(layout: SegmentLayout, side: str, target_mm, offset_mm=(0.0, 0.0),
                   name: str | None = None) -> Needle:
    """The needle from the pedicle entry of `side` (moved by offset_mm) to target_mm."""
    entry = pedicle_entry(layout, side, offset_mm)
    return Needle(name or f"{side}", side, tuple(map(float, entry)),
                  tuple(float(v) for v in target_mm))


def _pedicle(layout: SegmentLayout, side: str) -> Cylinder:
    if side not in ("left", "right"):
        raise PlanningError(f"needle side: {side!r}; allowed: 'left', 'right'")
    return layout.L4.parts[f"pedicle.{side}"]


def in_L4_bone(layout: SegmentLayout, p: np.ndarray) -> np.ndarray:
    """True for points (n, 3) inside L4's body, pedicles or lamina."""
    parts = layout.L4.parts
    inside = layout.L4.body.contains(p)
    for side in ("left", "right"):
        inside |= parts[f"pedicle.{side}"].contains(p)
    return inside | parts["lamina"].contains(p)


def canal_distance(layout: SegmentLayout, p: np.ndarray, samples: int = 2048) -> np.ndarray:
    """Distance (mm) in the transverse plane from points (n, 3) to the spinal canal's ellipse
    (negative inside). Point-to-ellipse distance has no closed form; the boundary is sampled
    every 0.03 mm (2048 points), which bounds the error far below the 3 mm margin."""
    a, b, yc = canal_ellipse(layout)
    xy = np.atleast_2d(p)[:, :2]
    d, _ = _ellipse_samples(a, b, yc, samples).query(xy)
    inside = (xy[:, 0] / a) ** 2 + ((xy[:, 1] - yc) / b) ** 2 < 1.0
    return np.where(inside, -d, d)


@functools.lru_cache(maxsize=8)
def _ellipse_samples(a: float, b: float, yc: float, samples: int) -> cKDTree:
    """The nearest-point search tree of `samples` points on the ellipse of semi-axes a (x) and
    b (y) centred at (0, yc): the exact nearest sample of each point without comparing it with
    every sample (a plan search checks a few hundred points per needle)."""
    phi = np.linspace(0.0, 2.0 * np.pi, samples, endpoint=False)
    return cKDTree(np.stack([a * np.cos(phi), yc + b * np.sin(phi)], axis=1))


def check_needle(layout: SegmentLayout, needle: Needle, canal_margin_mm: float = 3.0,
                 cortex_mm: float = 1.5) -> None:
    """Raise PlanningError naming `needle` if it leaves bone, ends in the cortical shell (within
    cortex_mm of the body surface) or comes closer than canal_margin_mm to the canal."""
    _pedicle(layout, needle.side)
    pts = needle.points()
    outside = ~in_L4_bone(layout, pts)
    if outside.any():
        first = pts[np.argmax(outside)]
        depth = np.linalg.norm(first - np.asarray(needle.entry_mm))
        raise PlanningError(
            f"needle {needle.name}: leaves bone {depth:.1f} mm from its entry, at "
            f"{np.round(first, 1).tolist()} mm"
        )
    if not layout.L4.body.contains(np.asarray(needle.tip_mm)[None], margin=cortex_mm)[0]:
        raise PlanningError(
            f"needle {needle.name}: tip {np.round(needle.tip_mm, 1).tolist()} mm is not inside "
            f"the L4 body at least {cortex_mm} mm from its surface (cortical shell)"
        )
    dist = canal_distance(layout, pts)
    if dist.min() < canal_margin_mm:
        where = pts[np.argmin(dist)]
        raise PlanningError(
            f"needle {needle.name}: passes {dist.min():.1f} mm from the spinal canal at "
            f"{np.round(where, 1).tolist()} mm; the minimum is canal_margin_mm = "
            f"{canal_margin_mm} mm"
        )


def check_needles(layout: SegmentLayout, needles: list[Needle], canal_margin_mm: float = 3.0,
                  diameter_mm: float = NEEDLE_DIAMETER_MM) -> None:
    """check_needle for every needle, and no two closer than diameter_mm (they would cross)."""
    names = [n.name for n in needles]
    if len(set(names)) != len(names):
        raise PlanningError(f"needle names must be unique, got {names}")
    for needle in needles:
        check_needle(layout, needle, canal_margin_mm)
    for i, a in enumerate(needles):
        for b in needles[i + 1:]:
            dist = segment_distance(np.asarray(a.entry_mm), np.asarray(a.tip_mm),
                                    np.asarray(b.entry_mm), np.asarray(b.tip_mm))
            if dist < diameter_mm:
                raise PlanningError(
                    f"needles {a.name} and {b.name}: {dist:.2f} mm apart, less than the needle "
                    f"diameter {diameter_mm} mm (they cross)"
                )


def load_seeds(needle: Needle, count: int, spacing_mm: float,
               capsule_length_mm: float = 4.5) -> tuple[np.ndarray, np.ndarray]:
    """Centres (count, 3) and directions of `count` seeds loaded from the needle's tip backwards,
    `spacing_mm` centre to centre, the first with its capsule end at the tip."""
    if spacing_mm < capsule_length_mm:
        raise PlanningError(
            f"seed spacing_mm: {spacing_mm} is shorter than the capsule ({capsule_length_mm} mm); "
            "the seeds would overlap"
        )
    first = 0.5 * capsule_length_mm
    depth = first + spacing_mm * np.arange(count)
    if count and depth[-1] + first > needle.length_mm:
        raise PlanningError(
            f"needle {needle.name}: {count} seeds at {spacing_mm} mm need "
            f"{depth[-1] + first:.1f} mm, the needle is {needle.length_mm:.1f} mm long"
        )
    d = needle.direction
    return np.asarray(needle.tip_mm) - depth[:, None] * d, np.tile(d, (count, 1))


def check_seeds(layout: SegmentLayout, positions_mm, directions, diameter_mm: float = 0.8,
                length_mm: float = 4.5) -> None:
    """Raise PlanningError naming the seed (index in the plan) whose capsule leaves L4 bone
    (body, pedicles, lamina) or enters the canal, or two seeds whose capsules overlap
    (`overlapping_capsules`)."""
    positions = np.asarray(positions_mm, float).reshape(-1, 3)
    dirs = np.asarray(directions, float).reshape(-1, 3)
    dirs = dirs / np.linalg.norm(dirs, axis=1)[:, None]
    axes = [(p - 0.5 * length_mm * d, p + 0.5 * length_mm * d)
            for p, d in zip(positions, dirs, strict=True)]
    for i, (p0, p1) in enumerate(axes):
        pts = cylinder_sample_points(p0, p1, 0.5 * diameter_mm)
        where = np.round(positions[i], 1).tolist()
        if in_canal(layout, pts).any():
            raise PlanningError(f"seed {i} at {where} mm: its capsule enters the spinal canal")
        if not in_L4_bone(layout, pts).all():
            raise PlanningError(f"seed {i} at {where} mm: its capsule is not entirely inside "
                                "the L4 vertebra (body, pedicles, lamina)")
    overlap = overlapping_capsules(axes, diameter_mm)
    if overlap is not None:
        i, j, gap = overlap
        raise PlanningError(
            f"seeds {i} and {j}: capsules overlap ({gap:.2f} mm apart, less than the "
            f"clearance {SEED_CLEARANCE_MM} mm)")
