"""Where every part of the L4-L5 segment sits, derived from its geometry record (numpy only).

`segment_layout(geometry)` places the endplate planes, body sections, posterior elements, facet
joints, canal and ligament landmarks. The gmsh model (`occ`) is built from this layout, and
`check_layout` validates a configuration against it before any meshing.

Frame: LPS, origin at the centre of the disc mid-plane; lengths in mm.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from dosimetry.plan import Plan, segment_distance
from spinefe.common.errors import ConfigError
from spinefe.config.sections import Config, Layers, Vertebra
from spinefe.geometry.anatomy import (
    BodyShape,
    KidneySection,
    Plane,
    cylinder_sample_points,
    ellipsoid_surface_points,
    plane_through,
)
from spinefe.geometry.segment import SegmentGeometry, segment_geometry

log = logging.getLogger(__name__)

#: Clearance between the posterior elements of L4 and L5 outside the facet joint (mm).
POSTERIOR_CLEARANCE_MM = 1.5
#: Smallest gap between two seed capsules, so the mesher can place an element between them (mm).
SEED_CLEARANCE_MM = 0.1
#: How far the canal's ellipse reaches into the surrounding bone before the bone cuts it (mm).
CANAL_OVERLAP_MM = 2.0
#: The transverse processes' front face lies this far behind the lamina's front face plus one
#: lamina thickness: there it would pass through the line where the L5 superior articular
#: process's face meets the pedicle (mm).
TP_SETBACK_MM = 2.0
#: Lateral margin of the lamina beyond the end of the pedicles (mm).
LAMINA_MARGIN_MM = 2.0
#: The disc section is the L4 section inset by this much, so that its rim never touches the rim of
#: either body tangentially (tangent contacts give degenerate elements) (mm).
DISC_INSET_MM = 0.5


@dataclass(frozen=True)
class Box:
    """An oriented box: corner + three edge vectors (mm)."""

    corner: np.ndarray
    edges: tuple[np.ndarray, np.ndarray, np.ndarray]

    def contains(self, p: np.ndarray) -> np.ndarray:
        """True for points (n, 3) inside the box."""
        rel = np.atleast_2d(p) - self.corner
        inside = np.ones(len(rel), dtype=bool)
        for e in self.edges:
            t = rel @ e / (e @ e)
            inside &= (t >= 0.0) & (t <= 1.0)
        return inside

    def corners(self) -> np.ndarray:
        """The eight corners (8, 3) in mm."""
        return self.corner + np.array(list(np.ndindex(2, 2, 2))) @ np.array(self.edges)


@dataclass(frozen=True)
class Cylinder:
    """Elliptic cylinder: base centre, axis vector (its length is the height), semi-axes (mm).

    `major` lies along `major_dir` (perpendicular to the axis), `minor` across. With `end`
    (a point and a unit normal pointing into the cylinder), the cylinder ends on that plane
    instead of on its perpendicular section at the base.
    """

    base: np.ndarray
    axis: np.ndarray
    major: float
    minor: float
    major_dir: np.ndarray
    end: tuple[np.ndarray, np.ndarray] | None = None

    def contains(self, p: np.ndarray) -> np.ndarray:
        """True for points (n, 3) inside the cylinder."""
        length = np.linalg.norm(self.axis)
        a = self.axis / length
        rel = np.atleast_2d(p) - self.base
        t = rel @ a
        u, v = rel @ self.major_dir, rel @ np.cross(a, self.major_dir)
        if self.end is None:
            after_base = t >= 0.0
        else:
            point, normal = self.end
            after_base = (np.atleast_2d(p) - point) @ normal >= 0.0
        return after_base & (t <= length) & ((u / self.major) ** 2 + (v / self.minor) ** 2 <= 1.0)


@dataclass(frozen=True)
class FacetJoint:
    """One L4-L5 facet joint in its own frame: centre, unit normal (L5 -> L4), in-plane axes."""

    side: str
    centre: np.ndarray
    normal: np.ndarray
    tangent: np.ndarray


@dataclass
class VertebraLayout:
    """Placement of one vertebra's parts (primitive shapes before boolean operations)."""

    name: str
    body: BodyShape
    core: BodyShape
    parts: dict[str, Box | Cylinder] = field(default_factory=dict)
    pedicle_centre_z: float = 0.0
    lamina_y: float = 0.0


@dataclass
class SegmentLayout:
    """The whole segment: vertebrae, disc, facets, canal and ligament landmarks."""

    L4: VertebraLayout
    L5: VertebraLayout
    disc: BodyShape
    facets: list[FacetJoint]
    canal: Cylinder
    canal_bounds: tuple[Plane, Plane]
    landmarks: dict[str, list[list[list[float]]]]
    #: The nucleus is the disc section's ellipse scaled by this factor about the body axis.
    nucleus_scale: float


def _nucleus_scale(disc: BodyShape, fraction: float) -> float:
    """Scale s of the nucleus ellipse (s a, s b) that holds `fraction` of the disc volume.

    Both are prisms between the same planes, so V_nucleus = pi s^2 a b h(y_c) exactly.
    """
    sec = disc.section
    return float(np.sqrt(fraction * disc.volume() / (np.pi * sec.a * sec.b * disc.height(sec.yc))))


def _section(v: Vertebra) -> KidneySection:
    return KidneySection(
        a=0.5 * v.endplate_width_mm,
        b=0.5 * v.endplate_depth_mm,
        yc=0.0,
        depth=v.posterior_concavity_depth_mm,
        rk=v.posterior_concavity_radius_mm,
    )


def _box(lo, hi) -> Box:
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    d = hi - lo
    return Box(lo, (np.array([d[0], 0, 0]), np.array([0, d[1], 0]), np.array([0, 0, d[2]])))


def _vertebra(
    v: Vertebra, name: str, layers: Layers, inferior: Plane, superior: Plane
) -> VertebraLayout:
    """Body and the level-independent posterior elements of vertebra `name`."""
    sec = _section(v)
    t_ep, t_c = layers.bony_endplate_mm, layers.cortical_shell_mm
    body = BodyShape(sec, inferior, superior)
    core = BodyShape(sec.inset(t_c), inferior.offset(t_ep), superior.offset(-t_ep))
    lay = VertebraLayout(name, body, core)

    y_wall = sec.posterior_wall_y
    y_lam = y_wall + v.canal_depth_mm
    lay.lamina_y = y_lam
    x_ped = 0.5 * v.canal_width_mm + 0.5 * v.pedicle_width_mm
    y_post = sec.yc + sec.b
    z_ped = float(superior.z(y_post)) - 2.0 - 0.5 * v.pedicle_height_mm
    lay.pedicle_centre_z = z_ped
    theta = np.radians(v.pedicle_transverse_angle_deg)
    for side, s in (("left", 1.0), ("right", -1.0)):
        rear = np.array([s * x_ped, y_lam + 0.5 * v.lamina_thickness_mm, z_ped])
        d = np.array([-s * np.sin(theta), -np.cos(theta), 0.0])
        length = (rear[1] - (y_wall - 5.0)) / np.cos(theta)
        # The pedicle ends on the lamina's front face: its tilted perpendicular end in the
        # lamina would reach width/2 * sin(angle) (3.2 mm at L5) to either side of the mid-plane
        # and poke out of a 6 mm lamina, and at L5, where the pedicle rises above the lamina,
        # any end inside the lamina leaves sliver faces and elements.
        lay.parts[f"pedicle.{side}"] = Cylinder(
            base=rear,
            axis=d * length,
            major=0.5 * v.pedicle_height_mm,
            minor=0.5 * v.pedicle_width_mm,
            major_dir=np.array([0.0, 0.0, 1.0]),
            end=(np.array([0.0, y_lam, 0.0]), np.array([0.0, -1.0, 0.0])),
        )
        x_tp0 = s * x_ped
        x_tp1 = s * 0.5 * v.transverse_process_span_mm
        h = 0.5 * v.transverse_process_height_mm
        lay.parts[f"transverse_process.{side}"] = _box(
            (min(x_tp0, x_tp1), y_lam - v.lamina_thickness_mm + TP_SETBACK_MM, z_ped - h),
            (max(x_tp0, x_tp1), y_lam, z_ped + h),
        )
    return lay


def pedicle_end_half_width(pedicle: Cylinder) -> float:
    """|x| of the lateral-most point of a pedicle's end section (mm): its end plane is y =
    const and its major axis vertical, so the section is an ellipse of half-width
    minor / cos(angle to the y axis) about the axis's crossing of the plane."""
    point, _ = pedicle.end
    a = pedicle.axis / np.linalg.norm(pedicle.axis)
    centre = pedicle.base + (point[1] - pedicle.base[1]) / a[1] * a
    return abs(centre[0]) + pedicle.minor / abs(a[1])


def _pair(p, q) -> list[list[float]]:
    return [np.round(p, 4).tolist(), np.round(q, 4).tolist()]  # JSON-stable


def _capsule_fibres(joint: FacetJoint, u_bone: float, T4: float, T5: float, width: float,
                   height: float) -> list[list[list[float]]]:
    """Capsular ligament fibres (L4 point, L5 point) of one facet joint (mm), on the
    posterolateral faces of the articular processes (the joint's posterior margin, where the
    capsule's collagen runs across the joint [claeson2017]), each point halfway through its
    process's thickness. `u_bone`: distance of the bone faces from the joint's mid-plane; T4,
    T5: the processes' thicknesses; width, height: the joint's. Two fibres run straight across
    the joint a quarter of its height above and below its centre; the third runs obliquely from
    the upper L4 point to the lower L5 point, so that the L4 process sliding up (flexion)
    stretches it."""
    c, n, m = joint.centre, joint.normal, joint.tangent
    w = np.array([0.0, 0.0, 1.0])
    rim = c + 0.5 * width * m

    def on_L4(z):
        return rim + (u_bone + 0.5 * T4) * n + z * w

    def on_L5(z):
        return rim - (u_bone + 0.5 * T5) * n + z * w

    q = 0.25 * height
    return [_pair(on_L4(q), on_L5(q)), _pair(on_L4(-q), on_L5(-q)), _pair(on_L4(q), on_L5(-q))]


def _landmarks(L4: VertebraLayout, L5: VertebraLayout, v4: Vertebra, v5: Vertebra) -> dict:
    """Ligament attachment points (L4 point, L5 point) per fibre, on the bone surfaces (mm)."""
    lm: dict[str, list[list[list[float]]]] = {}

    def wall_fibres(side: str, xs: tuple[float, ...]) -> list[list[list[float]]]:
        """Fibres on the anterior or posterior body wall, 3 mm from the disc, at lateral xs."""
        fibres = []
        for x in xs:
            y4 = L4.body.section.boundary_y(x, side)
            y5 = L5.body.section.boundary_y(x, side)
            fibres.append(
                _pair((x, y4, L4.body.inferior.z(y4) + 3.0), (x, y5, L5.body.superior.z(y5) - 3.0))
            )
        return fibres

    lm["ALL"] = wall_fibres("anterior", (-10.0, 0.0, 10.0))
    lm["PLL"] = wall_fibres("posterior", (-4.0, 0.0, 4.0))
    lam4, lam5 = L4.parts["lamina"], L5.parts["lamina"]
    z4_bot = lam4.corner[2]
    z5_top = lam5.corner[2] + lam5.edges[2][2]
    lm["LF"] = [_pair((x, L4.lamina_y, z4_bot), (x, L5.lamina_y, z5_top)) for x in (-6.0, 6.0)]
    for side in ("left", "right"):
        tp4, tp5 = L4.parts[f"transverse_process.{side}"], L5.parts[f"transverse_process.{side}"]
        s = 1.0 if side == "left" else -1.0
        x4 = s * (0.5 * v4.transverse_process_span_mm - 2.0)
        x5 = s * (0.5 * v5.transverse_process_span_mm - 2.0)
        y4 = tp4.corner[1] + 0.5 * tp4.edges[1][1]
        y5 = tp5.corner[1] + 0.5 * tp5.edges[1][1]
        lm[f"ITL.{side}"] = [
            _pair((x4, y4, tp4.corner[2]), (x5, y5, tp5.corner[2] + tp5.edges[2][2]))
        ]
    sp4, sp5 = L4.parts["spinous_process"], L5.parts["spinous_process"]
    y0 = max(sp4.corner[1], sp5.corner[1]) + 2.0
    y1 = min(sp4.corner[1] + sp4.edges[1][1], sp5.corner[1] + sp5.edges[1][1]) - 2.0
    lm["ISL"] = [
        _pair((0.0, y, sp4.corner[2]), (0.0, y, sp5.corner[2] + sp5.edges[2][2]))
        for y in np.linspace(y0, y1, 3)
    ]
    tip4 = sp4.corner[1] + sp4.edges[1][1]
    tip5 = sp5.corner[1] + sp5.edges[1][1]
    lm["SSL"] = [
        _pair(
            (0.0, tip4, sp4.corner[2] + 0.25 * sp4.edges[2][2]),
            (0.0, tip5, sp5.corner[2] + 0.75 * sp5.edges[2][2]),
        )
    ]
    return lm


def segment_layout(geometry: SegmentGeometry) -> SegmentLayout:
    """Place all parts of the segment."""
    g = geometry
    d = g.disc
    half_depth = 0.5 * g.L4.endplate_depth_mm
    disc_sup = plane_through(
        -half_depth, 0.5 * d.anterior_height_mm, half_depth, 0.5 * d.posterior_height_mm
    )
    disc_inf = plane_through(
        -half_depth, -0.5 * d.anterior_height_mm, half_depth, -0.5 * d.posterior_height_mm
    )
    L4_sup = plane_through(
        -half_depth,
        float(disc_sup.z(-half_depth)) + g.L4.anterior_height_mm,
        half_depth,
        float(disc_sup.z(half_depth)) + g.L4.posterior_height_mm,
    )
    h5 = 0.5 * g.L5.endplate_depth_mm
    L5_inf = plane_through(
        -h5,
        float(disc_inf.z(-h5)) - g.L5.anterior_height_mm,
        h5,
        float(disc_inf.z(h5)) - g.L5.posterior_height_mm,
    )
    L4 = _vertebra(g.L4, "L4", g.layers, disc_sup, L4_sup)
    L5 = _vertebra(g.L5, "L5", g.layers, L5_inf, disc_inf)
    disc = BodyShape(_section(g.L4).inset(DISC_INSET_MM), disc_inf, disc_sup)

    # Facet joints at the pedicle-lamina junction, centred on the posterior disc level.
    f, t_cart = g.facets, g.layers.cartilage_mm
    alpha = np.radians(f.angle_deg)
    x_f = 0.25 * (
        g.L4.canal_width_mm
        + g.L4.pedicle_width_mm
        + g.L5.canal_width_mm
        + g.L5.pedicle_width_mm
    )
    y_f = 0.5 * (L4.lamina_y + L5.lamina_y)
    z_f = 0.5 * float(disc_sup.z(half_depth) + disc_inf.z(half_depth))
    facets = []
    u_bone = 0.5 * f.gap_mm + t_cart
    z5_tp_top = L5.pedicle_centre_z + 0.5 * g.L5.transverse_process_height_mm
    z4_lam_bot = z_f + 0.5 * f.height_mm + POSTERIOR_CLEARANCE_MM
    capsules = {}
    for side, s in (("left", 1.0), ("right", -1.0)):
        n = np.array([-s * np.cos(alpha), np.sin(alpha), 0.0])
        m = np.array([s * np.sin(alpha), np.cos(alpha), 0.0])
        c = np.array([s * x_f, y_f, z_f])
        facets.append(FacetJoint(side, c, n, m))
        capsules[f"CL.{side}"] = _capsule_fibres(
            facets[-1], u_bone, g.L4.articular_process_thickness_mm,
            g.L5.articular_process_thickness_mm, f.width_mm, f.height_mm)
        w = np.array([0.0, 0.0, 1.0])

        def joint_box(u0, u1, z0, z1, c=c, n=n, m=m, w=w):
            corner = c + u0 * n - 0.5 * f.width_mm * m + (z0 - c[2]) * w
            return Box(corner, ((u1 - u0) * n, f.width_mm * m, (z1 - z0) * w))

        z_lo, z_hi = z_f - 0.5 * f.height_mm, z_f + 0.5 * f.height_mm
        T4, T5 = g.L4.articular_process_thickness_mm, g.L5.articular_process_thickness_mm
        L5.parts[f"facet_cartilage.{side}"] = joint_box(-u_bone, -0.5 * f.gap_mm, z_lo, z_hi)
        L4.parts[f"facet_cartilage.{side}"] = joint_box(0.5 * f.gap_mm, u_bone, z_lo, z_hi)
        # It stands on the transverse process: where its faces crossed the process and the
        # pedicle, three surfaces met nearly on one line and left sliver elements.
        L5.parts[f"articular_superior.{side}"] = joint_box(-u_bone - T5, -u_bone, z5_tp_top, z_hi)
        L4.parts[f"articular_inferior.{side}"] = joint_box(
            u_bone, u_bone + T4, z_lo, z4_lam_bot + 3.0
        )
        # Processes of the neighbouring joints (L3-L4, L5-S1): bone only, no partner. They
        # overlap the lamina only, never a pedicle: a box corner through the curved pedicle
        # surface meshes badly at coarse sizes.
        z4_top = float(L4.body.superior.z(y_f))
        p4, p5 = L4.parts["pedicle.left"], L5.parts["pedicle.left"]
        L4.parts[f"articular_superior.{side}"] = joint_box(
            -u_bone - T4, -u_bone, L4.pedicle_centre_z + p4.major + 1.0, z4_top + 4.0
        )
        z5_bot = float(L5.body.inferior.z(y_f))
        L5.parts[f"articular_inferior.{side}"] = joint_box(
            u_bone, u_bone + T5, z5_bot - 4.0, L5.pedicle_centre_z - p5.major - 1.0
        )

    for lay, v in ((L4, g.L4), (L5, g.L5)):
        ped = lay.parts["pedicle.left"]
        # Wide enough that the pedicle's end (its section in the lamina's front face) lies
        # LAMINA_MARGIN_MM inside the lamina's lateral faces.
        x_lam = pedicle_end_half_width(ped) + LAMINA_MARGIN_MM
        z_top = lay.pedicle_centre_z + ped.major + 3.0
        if lay is L4:
            z_bot = z4_lam_bot
        else:
            z_bot = lay.pedicle_centre_z - v.pedicle_height_mm - 6.0
            # Its top is the plane the superior articular processes stand on (the transverse
            # processes' top): a top just under the pedicle's left a sliver of pedicle above it.
            z_top = min(z_top, z_f - 0.5 * f.height_mm - POSTERIOR_CLEARANCE_MM, z5_tp_top)
        lay.parts["lamina"] = _box(
            (-x_lam, lay.lamina_y, z_bot), (x_lam, lay.lamina_y + v.lamina_thickness_mm, z_top)
        )
        zc, hh = 0.5 * (z_bot + z_top), 0.5 * v.spinous_process_height_mm
        y0 = lay.lamina_y + v.lamina_thickness_mm - 1.0
        lay.parts["spinous_process"] = _box(
            (-0.5 * v.spinous_process_width_mm, y0, zc - hh),
            (0.5 * v.spinous_process_width_mm, y0 + 1.0 + v.spinous_process_length_mm, zc + hh),
        )

    y_wall = 0.5 * (L4.body.section.posterior_wall_y + L5.body.section.posterior_wall_y)
    depth = 0.5 * (g.L4.canal_depth_mm + g.L5.canal_depth_mm)
    width = 0.5 * (g.L4.canal_width_mm + g.L5.canal_width_mm)
    z_bot, z_top = float(L5_inf.z(y_wall + depth)), float(L4_sup.z(y_wall + depth))
    # The canal ellipse overlaps the bones around it by CANAL_OVERLAP_MM (the bones win), so
    # that no curved surface merely touches another: tangent contacts break the mesher.
    canal = Cylinder(
        base=np.array([0.0, y_wall + 0.5 * depth, z_bot - 50.0]),
        axis=np.array([0.0, 0.0, z_top - z_bot + 100.0]),
        major=0.5 * width + CANAL_OVERLAP_MM,
        minor=0.5 * depth + CANAL_OVERLAP_MM,
        major_dir=np.array([1.0, 0.0, 0.0]),
    )
    return SegmentLayout(
        L4,
        L5,
        disc,
        facets,
        canal,
        (L5_inf, L4_sup),
        _landmarks(L4, L5, g.L4, g.L5) | capsules,
        _nucleus_scale(disc, g.disc.nucleus_fraction),
    )


def canal_ellipse(layout: SegmentLayout) -> tuple[float, float, float]:
    """The spinal canal's cross-section: semi-axes along x and y and the centre's y (mm), without
    the overlap into the bones that the meshed cylinder has."""
    c = layout.canal
    return c.major - CANAL_OVERLAP_MM, c.minor - CANAL_OVERLAP_MM, float(c.base[1])


def in_canal(layout: SegmentLayout, p: np.ndarray) -> np.ndarray:
    """True for points (N, 3) inside the spinal canal (outside both vertebral bodies)."""
    a, b, yc = canal_ellipse(layout)
    inside = (p[:, 0] / a) ** 2 + ((p[:, 1] - yc) / b) ** 2 <= 1.0
    lo, hi = layout.canal_bounds
    inside &= (p[:, 2] >= lo.z(p[:, 1])) & (p[:, 2] <= hi.z(p[:, 1]))
    return inside & ~layout.L4.body.contains(p) & ~layout.L5.body.contains(p)


def seed_axes(seeds: Plan, length_mm: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """End points of every seed's capsule axis (mm), for capsules `length_mm` long."""
    axes = []
    for seed in seeds.seeds:
        half = 0.5 * length_mm * np.asarray(seed.direction, float)
        c = np.asarray(seed.position_mm, float)
        axes.append((c - half, c + half))
    return axes


def overlapping_capsules(axes, diameter_mm: float) -> tuple[int, int, float] | None:
    """The first pair (i, j, gap in mm) of capsules, given by their axis end points, closer
    than SEED_CLEARANCE_MM; None when none are. Capsules on one line (seeds end to end on a
    needle) are compared by the gap between their flat ends; any other pair by the distance of
    their axes less a diameter, which is conservative for the flat ends' rims."""
    ends = [(np.asarray(p0, float), np.asarray(p1, float)) for p0, p1 in axes]
    for i in range(len(ends)):
        for j in range(i + 1, len(ends)):
            (a0, a1), (b0, b1) = ends[i], ends[j]
            length = np.linalg.norm(a1 - a0)
            d = (a1 - a0) / length
            rel0, rel1 = b0 - a0, b1 - a0
            off_line = max(np.linalg.norm(rel0 - (rel0 @ d) * d),
                           np.linalg.norm(rel1 - (rel1 @ d) * d))
            if off_line < 1e-6:  # on one line: the gap between the axial intervals
                lo, hi = sorted((rel0 @ d, rel1 @ d))
                gap = max(lo - length, -hi)
            else:
                gap = segment_distance(a0, a1, b0, b1) - diameter_mm
            if gap < SEED_CLEARANCE_MM:
                return i, j, gap
    return None


def grazing_capsules(
    axes, radius_mm: float, surfaces: dict, clearance_mm: float
) -> list[tuple[int, str]]:
    """(seed index, surface name) of every capsule that comes within `clearance_mm` of a
    surface without crossing it by as much on both sides. `surfaces` maps a name to a
    containment test `contains(points, margin)` (margin in mm, positive inwards). Such a capsule
    leaves a gap or lip thinner than the clearance, which the mesher fills with sliver elements.
    """
    c = clearance_mm
    found = []
    for i, (p0, p1) in enumerate(axes):
        pts = cylinder_sample_points(p0, p1, radius_mm, n_axial=17, n_around=24)
        for name, contains in surfaces.items():
            deep, near = contains(pts, c), contains(pts, -c)
            crosses = deep.any() and not near.all()
            if near.any() and not deep.all() and not crosses:
                found.append((i, name))
    return found


def _ellipsoid_contains(centre, radii):
    """Containment test (points, margin) of an axis-aligned ellipsoid (margin approximate)."""
    def contains(p: np.ndarray, margin: float) -> np.ndarray:
        q = (np.atleast_2d(p) - np.asarray(centre)) / (np.asarray(radii) - margin)
        return (q**2).sum(axis=1) <= 1.0
    return contains


def check_layout(cfg: Config, meshed_seeds: bool = True,
                 heading: str = "invalid configuration") -> None:
    """Raise ConfigError naming the key when the geometry of `cfg` is inconsistent (a lesion
    outside L4, a seed outside bone, in the canal or overlapping another, layers too thick).

    Every edge that loads a segment's configuration (a command, a study's cases) calls it before
    any meshing, right after `spinefe.config.loading`. With `meshed_seeds` (the seeds will be
    meshed as capsules) it also warns about capsules that graze a surface (`grazing_capsules`);
    a plan checked for implanting only (embedded, or dosed on another mesh) passes False.
    `heading` starts the message (e.g. the plan file checked)."""
    try:
        _check_layout(segment_geometry(cfg), meshed_seeds)
    except ValueError as err:
        raise ConfigError(f"{heading}:\n  {err}") from None


def _check_layout(geometry: SegmentGeometry, meshed_seeds: bool = True) -> None:
    g = geometry
    for key in ("L4", "L5"):
        v = getattr(g, key)
        t = g.layers.cortical_shell_mm
        if 2 * t >= min(v.endplate_depth_mm, v.endplate_width_mm):
            raise ValueError(f"layers.cortical_shell_mm: {t} leaves no trabecular core in {key}")
        if 2 * g.layers.bony_endplate_mm >= min(v.anterior_height_mm, v.posterior_height_mm):
            raise ValueError(f"layers.bony_endplate_mm: too thick for the {key} body height")
        if v.posterior_concavity_depth_mm >= v.endplate_depth_mm / 2:
            raise ValueError(f"{key}.posterior_concavity_depth_mm: must be < half the body depth")
    layout = segment_layout(g)
    sec, s = layout.disc.section, layout.nucleus_scale
    if s * sec.b > sec.posterior_wall_y - 1.0 or s * sec.a > sec.a - 1.0:
        raise ValueError(
            f"disc.nucleus_fraction: {g.disc.nucleus_fraction} leaves less than 1 mm of "
            "annulus around the nucleus; use a value in 0.30-0.40 (paper) or a smaller one"
        )
    lesion = g.lesion
    if lesion.enabled:
        pts = ellipsoid_surface_points(lesion.centre_mm, lesion.radii_mm)
        if not layout.L4.body.contains(pts).all():
            raise ValueError(
                f"lesion: the ellipsoid centre_mm={list(lesion.centre_mm)}, "
                f"radii_mm={list(lesion.radii_mm)} reaches outside the L4 vertebral body "
                f"(body: width {g.L4.endplate_width_mm} mm, depth {g.L4.endplate_depth_mm} mm, "
                f"endplates at z = {layout.L4.body.inferior.z(0):.1f} .. "
                f"{layout.L4.body.superior.z(0):.1f} mm on the mid-line); move or shrink it"
            )
    r = 0.5 * g.capsule.diameter_mm
    axes = seed_axes(g.seeds, g.capsule.length_mm)
    for i, (p0, p1) in enumerate(axes):
        pts = cylinder_sample_points(p0, p1, r)
        if in_canal(layout, pts).any():
            raise ValueError(f"seeds.{i}.position_mm: seed {i} lies in the spinal canal")
        in_bone = layout.L4.body.contains(pts, margin=0.1) | layout.L5.body.contains(
            pts, margin=0.1
        )
        if not in_bone.all():
            raise ValueError(
                f"seeds.{i}.position_mm: seed {i} at {list(g.seeds.seeds[i].position_mm)} is not "
                "entirely inside bone (L4 or L5 vertebral body, including the lesion)"
            )
    surfaces = {f"{lay.name} cortical shell and endplates (inner surface)": lay.core.contains
                for lay in (layout.L4, layout.L5)}
    if lesion.enabled:
        surfaces["lesion"] = _ellipsoid_contains(lesion.centre_mm, lesion.radii_mm)
    grazing = grazing_capsules(axes, r, surfaces, g.mesh.seed_size_mm) if meshed_seeds else []
    for i, name in grazing:
        log.warning("seeds.%d: the capsule comes within mesh.seed_size_mm = %s mm of the %s "
                    "surface without crossing it by as much; the mesh may get sliver elements "
                    "there (moving the seed by a few tenths of a mm avoids them)",
                    i, g.mesh.seed_size_mm, name)
    overlap = overlapping_capsules(axes, 2 * r)
    if overlap is not None:
        i, j, gap = overlap
        raise ValueError(
            f"seeds.{i} and seeds.{j} overlap: capsules {gap:.2f} mm apart, less "
            f"than the clearance {SEED_CLEARANCE_MM} mm"
        )
