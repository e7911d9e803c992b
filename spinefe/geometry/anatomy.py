"""Default L4-L5 dimensions and the analytic shape of the segment.

Every default dimension carries its source. The frame is DICOM patient LPS: +x patient left,
+y posterior, +z superior; the origin is the centre of the L4-L5 disc mid-plane. Lengths in mm,
angles in degrees.

The functions here are pure numpy: they describe where the vertebral bodies, the disc and the
canal are, so that a configuration can be checked (a lesion inside L4, seeds inside bone, not in
the canal) before any meshing, and the ligament landmarks can be placed on bone surfaces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Plane:
    """A sagittal line z(y) = z0 + slope * y extended along x: an endplate plane (mm)."""

    z0: float
    slope: float

    def z(self, y: np.ndarray | float) -> np.ndarray | float:
        """Height of the plane above point (., y) in mm."""
        return self.z0 + self.slope * np.asarray(y)

    def offset(self, dz: float) -> Plane:
        """The parallel plane shifted by dz measured along the plane normal (mm)."""
        return Plane(self.z0 + dz * float(np.hypot(1.0, self.slope)), self.slope)

    @property
    def normal(self) -> np.ndarray:
        """Upward unit normal."""
        n = np.array([0.0, -self.slope, 1.0])
        return n / np.linalg.norm(n)


def plane_through(y_ant: float, z_ant: float, y_post: float, z_post: float) -> Plane:
    """The plane through the anterior point (y_ant, z_ant) and posterior point (y_post, z_post)."""
    slope = (z_post - z_ant) / (y_post - y_ant)
    return Plane(z_ant - slope * y_ant, slope)


@dataclass(frozen=True)
class KidneySection:
    """Vertebral body cross-section: ellipse minus a posterior circular concavity (mm).

    The ellipse has semi-axes `a` (lateral, x) and `b` (anterior-posterior, y) about (0, yc);
    the concavity is a circle of radius `rk` whose centre lies on the midline at
    yc + b - depth + rk, so the posterior wall is `depth` mm in front of the ellipse apex.
    """

    a: float
    b: float
    yc: float
    depth: float
    rk: float

    @property
    def concavity_centre_y(self) -> float:
        return self.yc + self.b - self.depth + self.rk

    def inset(self, t: float) -> KidneySection:
        """The section shrunk by a wall of thickness t (exact on the axes and the concavity)."""
        return KidneySection(self.a - t, self.b - t, self.yc, self.depth, self.rk + t)

    def contains(self, x: np.ndarray, y: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """True where (x, y) lies inside the section, at least `margin` mm (approx.) inside."""
        a, b = self.a - margin, self.b - margin
        inside_ellipse = (x / a) ** 2 + ((y - self.yc) / b) ** 2 <= 1.0
        outside_notch = np.hypot(x, y - self.concavity_centre_y) >= self.rk + margin
        return inside_ellipse & outside_notch

    def boundary_y(self, x: float, side: str) -> float:
        """y of the anterior or posterior wall at lateral position x (|x| < a)."""
        half = self.b * np.sqrt(max(0.0, 1.0 - (x / self.a) ** 2))
        if side == "anterior":
            return self.yc - half
        y_ellipse = self.yc + half
        dx = min(abs(x), self.rk)
        y_notch = self.concavity_centre_y - np.sqrt(self.rk**2 - dx**2)
        return float(min(y_ellipse, y_notch)) if abs(x) < self.rk else float(y_ellipse)

    @property
    def posterior_wall_y(self) -> float:
        """y of the posterior wall on the midline."""
        return self.yc + self.b - self.depth

    def area_centroid(self, n: int = 200_001) -> tuple[float, float]:
        """Area (mm^2) and centroid y (mm), integrating the chord length over x.

        A closed form exists only piecewise (ellipse minus a circular segment); the chord integral
        with n points is accurate to about 1e-9 relative and costs a few milliseconds.
        """
        x = np.linspace(-self.a, self.a, n)
        half = self.b * np.sqrt(np.clip(1.0 - (x / self.a) ** 2, 0.0, None))
        lo, hi = self.yc - half, self.yc + half
        notch = self.concavity_centre_y - np.sqrt(np.clip(self.rk**2 - x**2, 0.0, None))
        hi = np.where(np.abs(x) < self.rk, np.minimum(hi, notch), hi)
        length = np.clip(hi - lo, 0.0, None)
        area = float(np.trapezoid(length, x))
        return area, float(np.trapezoid(length * 0.5 * (hi + lo), x)) / area


@dataclass(frozen=True)
class BodyShape:
    """One vertebral body: kidney section between an inferior and a superior endplate plane."""

    section: KidneySection
    inferior: Plane
    superior: Plane

    def height(self, y: float) -> float:
        """Distance between the endplate planes, measured along z at (., y) (mm)."""
        return float(self.superior.z(y) - self.inferior.z(y))

    def volume(self) -> float:
        """Volume (mm^3): a prism with planar ends holds section area x height at the centroid."""
        area, y_c = self.section.area_centroid()
        return area * self.height(y_c)

    def contains(self, p: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """True for points (N, 3) inside the body, `margin` mm away from its surface."""
        p = np.atleast_2d(p)
        x, y, z = p[:, 0], p[:, 1], p[:, 2]
        between = (z >= self.inferior.z(y) + margin) & (z <= self.superior.z(y) - margin)
        return between & self.section.contains(x, y, margin)


def ellipsoid_surface_points(centre, radii, n: int = 24) -> np.ndarray:
    """Points on an axis-aligned ellipsoid surface (for containment checks), shape (M, 3)."""
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, n), np.linspace(0, np.pi, n // 2 + 1))
    unit = np.stack([np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v)], axis=-1)
    return np.asarray(centre) + unit.reshape(-1, 3) * np.asarray(radii)


def cylinder_sample_points(p0, p1, radius: float, n_axial: int = 9, n_around: int = 12):
    """Points on the surface and axis of the cylinder from p0 to p1 (mm), shape (M, 3)."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    axis = p1 - p0
    d = axis / np.linalg.norm(axis)
    helper = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(d, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(d, e1)
    s = np.linspace(0.0, 1.0, n_axial)[:, None]
    phi = np.linspace(0, 2 * np.pi, n_around, endpoint=False)
    ring = radius * (np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2)
    centres = p0 + s * axis
    return np.vstack([centres, (centres[:, None, :] + ring[None]).reshape(-1, 3)])
