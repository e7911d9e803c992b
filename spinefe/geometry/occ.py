"""The L4-L5 segment as one gmsh OpenCASCADE model with named physical groups.

`build_model(geometry)` adds every part as a primitive solid (from `layout.segment_layout`), cuts
each part by the parts of higher priority that it overlaps, fuses the now disjoint parts with one
`occ.fragment` so that all interfaces are conforming, and tags volumes and surfaces with the names
of `regions.py`.
Call it on one rank only (gmsh is serial); `mesh.py` meshes and distributes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import gmsh
import numpy as np

from dosimetry.plan import Plan
from spinefe.common import regions as R
from spinefe.config.sections import Layers, Lesion, Mesh, SeedCapsule
from spinefe.geometry.anatomy import BodyShape, KidneySection, Plane
from spinefe.geometry.layout import Box, Cylinder, SegmentLayout, seed_axes, segment_layout
from spinefe.geometry.segment import SegmentGeometry

log = logging.getLogger(__name__)
occ = gmsh.model.occ

#: Half extent of the construction prisms along x and of the columns along z (mm).
_BIG = 200.0
#: Geometric tolerance for recognising faces on planes (mm).
_TOL = 1e-5


def _add_box(b: Box) -> int:
    corner, (e1, e2, e3) = b.corner.astype(float), b.edges
    if np.linalg.det(np.column_stack([e1, e2, e3])) < 0:  # keep the solid right-handed
        corner, e1 = corner + e1, -e1
    tag = occ.addBox(0, 0, 0, 1, 1, 1)
    m = np.column_stack([e1, e2, e3, corner])
    occ.affineTransform([(3, tag)], m.ravel().tolist())
    return tag


def _add_cylinder(c: Cylinder) -> int:
    axis = np.asarray(c.axis, float)
    unit = axis / np.linalg.norm(axis)
    major, minor, xdir = c.major, c.minor, np.asarray(c.major_dir, float)
    if major < minor:  # OCC wants rx >= ry: turn the section by 90 degrees
        major, minor = minor, major
        xdir = np.cross(unit, xdir)
    base = np.asarray(c.base, float)
    if c.end is not None:  # start the solid wholly behind the end plane, then clip it there
        point, normal = (np.asarray(v, float) for v in c.end)
        cos = unit @ normal
        behind = max(0.0, ((base - point) @ normal + major * np.sqrt(1.0 - cos**2)) / cos) + 1.0
        base, axis = base - behind * unit, axis + behind * unit
    disk = occ.addDisk(*base, major, minor, zAxis=axis.tolist(), xAxis=xdir.tolist())
    out = occ.extrude([(2, disk)], *axis)
    tag = next(t for d, t in out if d == 3)
    if c.end is None:
        return tag
    ends = np.array([base, base + axis])
    return _intersect(tag, _add_box(_clip_box(point, normal, ends, major + 1.0)))


def _clip_box(point: np.ndarray, normal: np.ndarray, ends: np.ndarray, r: float) -> Box:
    """The side of the plane through `point` that `normal` points to, as a box around the
    cylinder between the centres `ends` of radius at most `r` (mm). Tight, because OCC's
    bounding box of a solid clipped by a larger box grows to that box's, and `_make_disjoint`
    selects its tools by bounding boxes."""
    n = np.asarray(normal, float) / np.linalg.norm(normal)
    e1 = np.cross(n, [1.0, 0.0, 0.0] if abs(n[0]) < 0.9 else [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(n, e1)
    frame = np.array([e1, e2, n])
    local = (ends - point) @ frame.T
    lo = np.array([*(local[:, :2].min(axis=0) - r), 0.0])
    hi = local.max(axis=0) + r
    return Box(point + lo @ frame, tuple((hi[k] - lo[k]) * frame[k] for k in range(3)))


def _prism(lower: Plane, upper: Plane) -> int:
    """The slab between two endplate planes, over |x|, |y| < _BIG."""
    y0, y1, x0 = -_BIG, _BIG, -_BIG
    pts = [
        occ.addPoint(x0, y0, lower.z(y0)),
        occ.addPoint(x0, y1, lower.z(y1)),
        occ.addPoint(x0, y1, upper.z(y1)),
        occ.addPoint(x0, y0, upper.z(y0)),
    ]
    lines = [occ.addLine(pts[i], pts[(i + 1) % 4]) for i in range(4)]
    surf = occ.addPlaneSurface([occ.addCurveLoop(lines)])
    out = occ.extrude([(2, surf)], 2 * _BIG, 0, 0)
    return next(t for d, t in out if d == 3)


def _column(sec: KidneySection) -> int:
    """The kidney section extruded over |z| < _BIG."""
    ellipse = (
        occ.addDisk(0, sec.yc, -_BIG, sec.a, sec.b)
        if sec.a >= sec.b
        else occ.addDisk(0, sec.yc, -_BIG, sec.b, sec.a, zAxis=[0, 0, 1], xAxis=[0, 1, 0])
    )
    notch = occ.addDisk(0, sec.concavity_centre_y, -_BIG, sec.rk, sec.rk)
    shape, _ = occ.cut([(2, ellipse)], [(2, notch)])
    out = occ.extrude(shape, 0, 0, 2 * _BIG)
    return next(t for d, t in out if d == 3)


def _intersect(a: int, b: int) -> int:
    out, _ = occ.intersect([(3, a)], [(3, b)])
    assert len(out) == 1, f"expected one solid, got {out}"
    return out[0][1]


def _body_between(sec: KidneySection, lower: Plane, upper: Plane) -> int:
    return _intersect(_column(sec), _prism(lower, upper))


def _vertebral_body(body: BodyShape, core: BodyShape) -> tuple[dict[str, list[int]], int]:
    """Cortical wall, bony endplates and trabecular core of one body, and the whole body (their
    union) as a separate solid."""
    whole = _body_between(body.section, body.inferior, body.superior)
    hull = occ.copy([(3, whole)])[0][1]
    inner = _column(core.section)
    cortical, _ = occ.cut([(3, whole)], [(3, inner)], removeTool=False)
    parts = {
        "endplate_superior": _intersect(
            _prism(core.superior, body.superior), occ.copy([(3, inner)])[0][1]
        ),
        "endplate_inferior": _intersect(
            _prism(body.inferior, core.inferior), occ.copy([(3, inner)])[0][1]
        ),
        "trabecular": _intersect(_prism(core.inferior, core.superior), inner),
    }
    out = {k: [v] for k, v in parts.items()}
    out["cortical"] = [t for _, t in cortical]
    return out, hull


def _lesion(les: Lesion, cortical: list[int]) -> list[int]:
    """Ellipsoid lesion plus, optionally, the sector of the L4 `cortical` wall it breaches."""
    sphere = occ.addSphere(*les.centre_mm, 1.0)
    occ.dilate([(3, sphere)], *les.centre_mm, *les.radii_mm)
    tags = [sphere]
    if les.cortical_breach > 0:
        cx, cy, cz = les.centre_mm
        phi = np.arctan2(cy, cx) if np.hypot(cx, cy) > 1e-6 else -np.pi / 2  # anterior default
        opening = 2 * np.pi * les.cortical_breach
        rz = les.radii_mm[2]
        sector = occ.addCylinder(0, 0, cz - rz, 0, 0, 2 * rz, _BIG, angle=opening)
        occ.rotate([(3, sector)], 0, 0, 0, 0, 0, 1, phi - 0.5 * opening)
        wall = occ.copy([(3, t) for t in cortical])
        breach, _ = occ.intersect([(3, sector)], wall)
        tags += [t for _, t in breach]
    return tags


def _disc(layout: SegmentLayout) -> tuple[dict[str, list[int]], int]:
    """Annulus (the whole disc; the nucleus overrides it) and the nucleus ellipse prism, and the
    whole disc as a separate solid."""
    disc = layout.disc
    sec, s = disc.section, layout.nucleus_scale
    annulus = _body_between(sec, disc.inferior, disc.superior)
    hull = occ.copy([(3, annulus)])[0][1]
    ellipse = Cylinder(
        np.array([0.0, sec.yc, -_BIG]),
        np.array([0.0, 0.0, 2 * _BIG]),
        s * sec.a,
        s * sec.b,
        np.array([1.0, 0.0, 0.0]),
    )
    nucleus = _intersect(_add_cylinder(ellipse), _prism(disc.inferior, disc.superior))
    return {R.ANNULUS: [annulus], R.NUCLEUS: [nucleus]}, hull


def _seed_solids(seeds: Plan, capsule: SeedCapsule) -> list[int]:
    """One capsule cylinder per seed."""
    r = 0.5 * capsule.diameter_mm
    return [occ.addCylinder(*p0, *(p1 - p0), r) for p0, p1 in seed_axes(seeds, capsule.length_mm)]


def _envelope(margin_mm: float, layout: SegmentLayout, solids: list[int]) -> list[int]:
    """The elliptic column through the corners of the bounding box of `solids`, its semi-axes
    `margin_mm` longer, between the canal's end planes (mm)."""
    lo = np.full(3, np.inf)
    hi = np.full(3, -np.inf)
    for t in solids:
        b = np.array(occ.getBoundingBox(3, t))
        lo, hi = np.minimum(lo, b[:3]), np.maximum(hi, b[3:])
    centre = 0.5 * (lo + hi)
    half = 0.5 * (hi - lo) * np.sqrt(2.0) + margin_mm
    col = Cylinder(
        np.array([centre[0], centre[1], -_BIG]),
        np.array([0.0, 0.0, 2 * _BIG]),
        half[0],
        half[1],
        np.array([1.0, 0.0, 0.0]),
    )
    lower, upper = layout.canal_bounds
    return [_intersect(_add_cylinder(col), _prism(lower, upper))]


@dataclass
class _Solids:
    """The segment's primitive solids before the boolean cuts.

    `parts` holds the solids of every region in priority order (highest first). A hull is a
    separate solid that is exactly the union of the part solids it holds: a vertebral body (its
    cortical wall, endplates and core, which are `layers`, built pairwise disjoint) and the disc
    (nucleus and annulus). Different hulls only touch (they lie between shared endplate planes).
    All of this holds by construction; seeds and lesion, placed by the user, belong to no hull.
    """

    parts: list[tuple[str, list[int]]]
    hull_of: dict[int, int] = field(default_factory=dict)
    layers: set[int] = field(default_factory=set)


def _parts(geometry: SegmentGeometry, layout: SegmentLayout) -> _Solids:
    """All primitive solids, grouped by region name, in priority order, with their hulls."""
    by_name: dict[str, list[int]] = {}
    solids = _Solids([])
    for lay in (layout.L4, layout.L5):
        layers, hull = _vertebral_body(lay.body, lay.core)
        for part, tags in layers.items():
            by_name[f"{lay.name}.{part}"] = tags
            solids.hull_of.update({t: hull for t in tags})
            solids.layers.update(tags)
        for part, shape in lay.parts.items():
            add = _add_box if isinstance(shape, Box) else _add_cylinder
            if part.startswith("facet_cartilage."):
                side = part.split(".")[1]
                by_name[R.cartilage(side, lay.name)] = [add(shape)]
            else:
                by_name[f"{lay.name}.{part}"] = [add(shape)]
    g = geometry
    if g.lesion.enabled:
        by_name[R.LESION] = _lesion(g.lesion, by_name["L4.cortical"])
    disc, hull = _disc(layout)
    by_name.update(disc)
    solids.hull_of.update({t: hull for tags in disc.values() for t in tags})
    if g.seeds.seeds:
        by_name[R.SEEDS] = _seed_solids(g.seeds, g.capsule)
    if g.regions.canal:
        by_name[R.CANAL] = [_intersect(_add_cylinder(layout.canal), _prism(*layout.canal_bounds))]
    if g.regions.envelope:
        everything = [t for tags in by_name.values() for t in tags]
        by_name[R.ENVELOPE] = _envelope(g.regions.envelope_margin_mm, layout, everything)

    order = [R.SEEDS, R.LESION]
    for level in R.VERTEBRAE:
        order += [f"{level}.{p}" for p in R.BODY_PARTS]
    order += [R.NUCLEUS, R.ANNULUS]
    order += [R.cartilage(s_, lv) for s_ in R.SIDES for lv in R.VERTEBRAE]
    for level in R.VERTEBRAE:
        order += [f"{level}.{p}" for p in R.POSTERIOR_PARTS if p.startswith("articular")]
    for level in R.VERTEBRAE:
        order += [f"{level}.{p}" for p in R.POSTERIOR_PARTS if not p.startswith("articular")]
    order += [R.CANAL, R.ENVELOPE]
    solids.parts = [(name, by_name[name]) for name in order if name in by_name]
    return solids


def _faces_on_plane(plane: Plane, volumes: set[int]) -> list[int]:
    """Boundary faces of `volumes` that lie in `plane`."""
    n = plane.normal
    faces = []
    for _, f in gmsh.model.getBoundary([(3, v) for v in volumes], combined=True, oriented=False):
        com = np.array(occ.getCenterOfMass(2, abs(f)))
        if abs(com[2] - plane.z(com[1])) * n[2] > _TOL:
            continue
        uv = gmsh.model.getParametrization(2, abs(f), com.tolist())
        normal = np.array(gmsh.model.getNormal(abs(f), uv))
        if abs(abs(normal @ n) - 1.0) < 1e-6:
            faces.append(abs(f))
    return faces


def _faces_on_joint_plane(vol: list[int], centre, normal, offset: float) -> list[int]:
    faces = []
    for _, f in gmsh.model.getBoundary([(3, v) for v in vol], combined=True, oriented=False):
        com = np.array(occ.getCenterOfMass(2, abs(f)))
        if abs((com - centre) @ normal - offset) < 1e-4:
            faces.append(abs(f))
    return faces


def _overlaps(a: list[float], b: list[float]) -> bool:
    return all(a[i] <= b[i + 3] and b[i] <= a[i + 3] for i in range(3))


def _make_disjoint(solids: _Solids) -> list[tuple[str, list[int]]]:
    """Cut every part by the parts of higher priority (earlier in the list) that it overlaps.

    Done before the fragment, so that the surfaces of a lower-priority part (the canal, say) are
    not imprinted inside the bone that overrides it: imprints leave sliver faces and elements.
    Parts of different hulls, and layers of one hull, are disjoint by construction and are not
    cut by each other; a part outside every hull is cut by the hull (one simple solid) instead
    of the parts it holds (the same set of points).
    """
    hull_of, layers = dict(solids.hull_of), set(solids.layers)
    boxes = {h: occ.getBoundingBox(3, h) for h in set(hull_of.values())}
    taken: list[int] = []
    result = []
    for name, tags in solids.parts:
        kept = []
        for tag in tags:
            own = hull_of.get(tag)
            box = occ.getBoundingBox(3, tag)
            tools = []
            for t in taken:
                other = hull_of.get(t)
                if own is not None and other is not None:
                    if own != other or (tag in layers and t in layers):
                        continue
                    tool = t
                else:
                    tool = t if other is None else other
                if tool not in tools and _overlaps(box, boxes[tool]):
                    tools.append(tool)
            if tools:
                out, _ = occ.cut([(3, tag)], [(3, t) for t in tools], removeObject=True,
                                 removeTool=False)
                pieces = [t for d, t in out if d == 3]
                for t in pieces:
                    if own is not None:
                        hull_of[t] = own
                    if tag in layers:
                        layers.add(t)
                kept += pieces
            else:
                kept.append(tag)
        for t in kept:
            boxes[t] = occ.getBoundingBox(3, t)
        taken += kept
        result.append((name, kept))
    occ.remove([(3, h) for h in set(solids.hull_of.values())], recursive=True)
    return result


def build_model(geometry: SegmentGeometry) -> dict[str, float]:
    """Add the segment to the current gmsh model, with physical groups; rank 0 only.

    Returns the CAD volume of every region (mm^3), the reference for the meshed volumes.
    """
    layout = segment_layout(geometry)
    parts = _make_disjoint(_parts(geometry, layout))
    flat = [(3, t) for _, tags in parts for t in tags]
    owner_of_input = [name for name, tags in parts for _ in tags]
    # The parts now only touch, so OCC's gluing mode (faces that coincide but do not cross) can
    # fuse them: a third of the time of the general fragment, the same entities and volumes
    # (checked on the test segments, docs/model.md).
    gmsh.option.setNumber("Geometry.OCCBooleanGlue", 1)
    try:
        _, pieces_of_input = occ.fragment(flat[:1], flat[1:])
    finally:
        gmsh.option.setNumber("Geometry.OCCBooleanGlue", 0)
    occ.synchronize()

    owner: dict[int, str] = {}
    for name, pieces in zip(owner_of_input, pieces_of_input, strict=True):
        for dim, tag in pieces:
            if dim == 3:
                owner.setdefault(tag, name)  # inputs are in priority order: first one wins
    groups: dict[str, list[int]] = {}
    for tag, name in sorted(owner.items()):
        groups.setdefault(name, []).append(tag)
    missing = [name for name, _ in parts if name not in groups]
    if missing:
        raise RuntimeError(f"geometry: regions lost in the boolean fragment: {missing}")
    for name, tags in groups.items():
        gmsh.model.addPhysicalGroup(3, tags, name=name)

    volumes = {name: sum(occ.getMass(3, t) for t in tags) for name, tags in groups.items()}
    L4_vols = {t for n, tags in groups.items() if n.startswith("L4.") or n == R.SEEDS for t in tags}
    L5_vols = {t for n, tags in groups.items() if n.startswith("L5.") or n == R.SEEDS for t in tags}
    surfaces = {
        R.L4_SUPERIOR: _faces_on_plane(layout.L4.body.superior, L4_vols),
        R.L5_INFERIOR: _faces_on_plane(layout.L5.body.inferior, L5_vols),
    }
    half_gap = 0.5 * geometry.facets.gap_mm
    for joint in layout.facets:
        for level, sign in (("L4", 1.0), ("L5", -1.0)):
            vol = groups[R.cartilage(joint.side, level)]
            surfaces[R.contact_surface(joint.side, level)] = _faces_on_joint_plane(
                vol, joint.centre, joint.normal, sign * half_gap
            )
    # The L4 inferior articular tips and the L5 bone beneath them: the horizontal upper faces
    # of the lamina and of the transverse processes (one plane at the default geometry; the
    # processes stand higher when the lamina's top is lowered by the facet height).
    tops = {float(max(layout.L5.parts[part].corners()[:, 2]))
            for part in ("lamina", *(f"transverse_process.{side}" for side in R.SIDES))}
    surfaces[R.L5_LAMINA_SUPERIOR] = sorted(
        {f for z in tops for f in _faces_on_plane(Plane(z, 0.0), L5_vols)})
    for joint in layout.facets:
        tip = layout.L4.parts[f"articular_inferior.{joint.side}"].corners()
        faces = _faces_on_plane(Plane(min(tip[:, 2]), 0.0), L4_vols)
        surfaces[R.articular_tip(joint.side)] = [
            f for f in faces if occ.getCenterOfMass(2, f)[0] * joint.centre[0] > 0.0
        ]
    for name, faces in surfaces.items():
        if not faces:
            raise RuntimeError(f"geometry: surface {name} not found")
        gmsh.model.addPhysicalGroup(2, faces, name=name)
    log.info("geometry: %d regions, %d volumes", len(groups), len(owner))
    return volumes


def set_mesh_size(mesh: Mesh, layers: Layers) -> None:
    """Global size h, with finer elements at the seeds, lesion boundary and thin `layers`, and
    `mesh.layer_divisions` elements across the cortical shell once h resolves it."""
    h = mesh.size_mm
    gmsh.option.setNumber("Mesh.MeshSizeMax", h)
    gmsh.option.setNumber("Mesh.MeshSizeMin", min(mesh.seed_size_mm, h) * 0.5)
    gmsh.option.setNumber("Mesh.MeshSizeFromPoints", 0)
    gmsh.option.setNumber("Mesh.MeshSizeExtendFromBoundary", 0)
    # 12 elements per full turn on curved surfaces: resolves the 0.4 mm seed radius (a capsule
    # meshed with 8 segments around loses 6 % of its volume) and changes nothing at bone radii.
    gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 12)
    groups = {gmsh.model.getPhysicalName(d, t): (d, t) for d, t in gmsh.model.getPhysicalGroups()}

    def boundary_of(names: list[str]) -> list[int]:
        vols = [
            v
            for n in names
            if n in groups
            for v in gmsh.model.getEntitiesForPhysicalGroup(*groups[n])
        ]
        return [abs(f) for _, f in gmsh.model.getBoundary([(3, v) for v in vols], oriented=False)]

    fields = []

    def refine(faces: list[int], size: float, dist_max: float) -> None:
        if not faces or size >= h:
            return
        dist = gmsh.model.mesh.field.add("Distance")
        gmsh.model.mesh.field.setNumbers(dist, "SurfacesList", faces)
        gmsh.model.mesh.field.setNumber(dist, "Sampling", 30)
        thr = gmsh.model.mesh.field.add("Threshold")
        gmsh.model.mesh.field.setNumber(thr, "InField", dist)
        gmsh.model.mesh.field.setNumber(thr, "SizeMin", size)
        gmsh.model.mesh.field.setNumber(thr, "SizeMax", h)
        gmsh.model.mesh.field.setNumber(thr, "DistMin", 0.5 * size)
        gmsh.model.mesh.field.setNumber(thr, "DistMax", dist_max)
        fields.append(thr)

    refine(boundary_of([R.SEEDS]), mesh.seed_size_mm, 3.0)
    refine(boundary_of([R.LESION]), mesh.lesion_size_factor * h, 2.0 * h)
    cart = [R.cartilage(s, lv) for s in R.SIDES for lv in R.VERTEBRAE]
    refine(boundary_of(cart), mesh.layer_aspect * layers.cartilage_mm, 1.5)
    endplates = [f"{lv}.endplate_{w}" for lv in R.VERTEBRAE for w in ("superior", "inferior")]
    refine(boundary_of(endplates), mesh.layer_aspect * layers.bony_endplate_mm, 1.5)
    if layers.cortical_shell_mm >= h:  # resolved: the size that puts 2 elements across it
        shells = [v for lv in R.VERTEBRAE if f"{lv}.cortical" in groups
                  for v in gmsh.model.getEntitiesForPhysicalGroup(*groups[f"{lv}.cortical"])]
        inside = gmsh.model.mesh.field.add("Constant")
        gmsh.model.mesh.field.setNumbers(inside, "VolumesList", shells)
        size = layers.cortical_shell_mm / mesh.layer_divisions
        gmsh.model.mesh.field.setNumber(inside, "VIn", size)
        gmsh.model.mesh.field.setNumber(inside, "VOut", h)
        fields.append(inside)
    if fields:
        fmin = gmsh.model.mesh.field.add("Min")
        gmsh.model.mesh.field.setNumbers(fmin, "FieldsList", fields)
        gmsh.model.mesh.field.setAsBackgroundMesh(fmin)
