"""How many seeds a loading pattern needs to cover a target: D90 >= prescription.

A pattern is any function n -> (positions (n, 3) mm, directions (n, 3)); the planner (needles)
supplies its own. `uniform_pattern` is a model-free reference: n seed centres spread evenly over
the target (centroidal Voronoi / k-means centres of the target's sample points), all along one
axis, which is what "uniform loading" means in seed-implant practice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dosimetry.dvh import Samples
from dosimetry.plan import Plan, strength_from_activity
from dosimetry.seed_models import DEFAULT_MODEL
from dosimetry.tg43 import dose_rate

Pattern = Callable[[int], tuple[np.ndarray, np.ndarray]]


def ellipsoid_samples(centre_mm, radii_mm, step_mm: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres (N, 3) of a regular grid inside an axis-aligned ellipsoid, and their volumes
    (mm^3)."""
    c, r = np.asarray(centre_mm, float), np.asarray(radii_mm, float)
    axes = [np.arange(-a + step_mm / 2, a, step_mm) for a in r]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    inside = ((grid / r) ** 2).sum(axis=1) < 1.0
    points = grid[inside] + c
    return points, np.full(len(points), step_mm**3)


def uniform_pattern(points_mm: np.ndarray, direction=(0.0, 0.0, 1.0), iterations: int = 30):
    """Pattern: n centres of a k-means (Lloyd) partition of the target points, one axis.

    Lloyd's iteration written out (a dozen lines) rather than taking scikit-learn for it; the
    seeding is deterministic (farthest-point), so a pattern is reproducible.
    """
    pts = np.asarray(points_mm, float)
    d = np.asarray(direction, float) / np.linalg.norm(direction)

    def place(n: int) -> tuple[np.ndarray, np.ndarray]:
        centres = [pts[np.argmin(np.linalg.norm(pts - pts.mean(axis=0), axis=1))]]
        dist = np.linalg.norm(pts - centres[0], axis=1)
        for _ in range(n - 1):
            centres.append(pts[np.argmax(dist)])
            dist = np.minimum(dist, np.linalg.norm(pts - centres[-1], axis=1))
        centres = np.array(centres)
        for _ in range(iterations):
            label = np.argmin(((pts[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
            for k in range(n):
                members = pts[label == k]
                if len(members):
                    centres[k] = members.mean(axis=0)
        return centres, np.tile(d, (n, 1))

    return place


@dataclass(frozen=True)
class Coverage:
    """Seeds needed (None when n_max does not reach the prescription) and D90 (Gy) per count."""

    activity_mCi: float
    prescription_Gy: float
    seeds_needed: int | None
    d90_Gy: dict[int, float]


def seeds_needed(
    points_mm: np.ndarray,
    volumes_mm3: np.ndarray,
    pattern: Pattern,
    activity_mCi: float,
    prescription_Gy: float,
    model: str = DEFAULT_MODEL,
    n_max: int = 60,
    formalism: str = "2d",
) -> Coverage:
    """Smallest seed count n <= n_max whose pattern gives target D90 >= prescription (Gy)."""
    if not prescription_Gy > 0:
        raise ValueError(f"prescription_Gy: must be > 0, got {prescription_Gy}")
    strength = strength_from_activity(activity_mCi)
    d90 = {}
    for n in range(1, n_max + 1):
        positions, directions = pattern(n)
        plan = Plan.uniform(positions, directions, strength, model)
        dose = dose_rate(points_mm, plan, formalism)
        keep = ~dose.inside_capsule
        d90[n] = Samples.of(dose.total_dose_Gy[keep], volumes_mm3[keep]).D(90.0)
        if d90[n] >= prescription_Gy:
            return Coverage(activity_mCi, prescription_Gy, n, d90)
    return Coverage(activity_mCi, prescription_Gy, None, d90)
