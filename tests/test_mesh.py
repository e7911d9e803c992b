"""The meshed segment: regions, volumes against closed forms, layer thicknesses, seeds, surfaces.

Run serially and on 2 ranks (`make test-mpi` selects `-m parallel`); every quantity is
reduced over MPI, so the same assertions hold on any number of ranks. Tolerances: at h = 2.5 mm
a curved boundary of radius R is represented by chords with sagitta h^2 / (8 R) (about 0.02 mm
at R = 30 mm), so volumes bounded by curved surfaces agree with closed forms to well under 1 %;
planar layers are exact.
"""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

import spinefe  # noqa: F401  (first: spinefe/__init__ loads the PETSc of DOLFINx)
import dolfinx.geometry

from conftest import analytic_shape, breach_and_envelope, coarse
from spinefe.common import regions as R
from spinefe.geometry.layout import segment_layout
from spinefe.geometry.mesh import build_mesh, mesh_summary
from spinefe.geometry.segment import segment_geometry

pytestmark = pytest.mark.parallel


def regions_at(model, points: np.ndarray) -> np.ndarray:
    """Region tag at each point (-1 outside the mesh), identical on every rank."""
    mesh = model.mesh
    n = mesh.topology.index_map(3).size_local
    tree = dolfinx.geometry.bb_tree(mesh, 3, entities=np.arange(n, dtype=np.int32))
    cand = dolfinx.geometry.compute_collisions_points(tree, points)
    cells = dolfinx.geometry.compute_colliding_cells(mesh, cand, points)
    tag_of_cell = np.full(n, -1)
    keep = model.cell_tags.indices < n
    tag_of_cell[model.cell_tags.indices[keep]] = model.cell_tags.values[keep]
    local = np.array(
        [tag_of_cell[cells.links(i)[0]] if len(cells.links(i)) else -1 for i in range(len(points))],
        dtype=np.int64,
    )
    found = np.empty_like(local)
    model.comm.Allreduce(local, found, op=MPI.MAX)  # element-wise over ranks
    return found


def run_length(model, tag: int, start, stop, n: int = 4001) -> float:
    """Length (mm) of the part of the segment start-stop that lies in region `tag`."""
    s = np.linspace(0, 1, n)[:, None]
    pts = np.asarray(start) + s * (np.asarray(stop) - np.asarray(start))
    inside = regions_at(model, pts) == tag
    return float(inside.sum() / (n - 1) * np.linalg.norm(np.subtract(stop, start)))


def test_all_regions_and_surfaces_present(default_model):
    summary = mesh_summary(default_model)
    expected = set(R.vertebra_regions("L4") + R.vertebra_regions("L5"))
    expected |= {R.LESION, R.SEEDS, R.NUCLEUS, R.ANNULUS, R.CANAL}
    expected |= {R.cartilage(s, lv) for s in R.SIDES for lv in R.VERTEBRAE}
    assert set(summary["regions"]) == expected
    for name, r in summary["regions"].items():
        assert r["cells"] > 0 and r["volume_mm3"] > 0, name
    surfaces = {R.L4_SUPERIOR, R.L5_INFERIOR}
    surfaces |= {R.contact_surface(s, lv) for s in R.SIDES for lv in R.VERTEBRAE}
    surfaces |= {R.articular_tip(s) for s in R.SIDES} | {R.L5_LAMINA_SUPERIOR}
    assert set(summary["surfaces"]) == surfaces
    for name, s in summary["surfaces"].items():
        assert s["facets"] > 0, name
    assert summary["min_quality"] > 0
    assert sum(summary["cells_per_rank"]) == summary["cells"]


def test_region_volumes_match_closed_forms(analytic_model):
    cfg = analytic_shape()
    lay = segment_layout(segment_geometry(cfg))
    vol = {k: v["volume_mm3"] for k, v in mesh_summary(analytic_model)["regions"].items()}
    L4_body = sum(vol[f"L4.{p}"] for p in R.BODY_PARTS) + vol[R.SEEDS]
    assert L4_body == pytest.approx(lay.L4.body.volume(), rel=5e-3)
    assert vol["L4.trabecular"] + vol[R.SEEDS] == pytest.approx(lay.L4.core.volume(), rel=5e-3)
    L5_body = sum(vol[f"L5.{p}"] for p in R.BODY_PARTS)
    assert L5_body == pytest.approx(lay.L5.body.volume(), rel=5e-3)
    assert vol[R.NUCLEUS] + vol[R.ANNULUS] == pytest.approx(lay.disc.volume(), rel=5e-3)
    # Cartilage layers are planar boxes: exact up to round-off.
    f = cfg.facets
    box = f.width_mm * f.height_mm * cfg.layers.cartilage_mm
    for side in R.SIDES:
        for level in R.VERTEBRAE:
            assert vol[R.cartilage(side, level)] == pytest.approx(box, rel=1e-9)


def test_articular_tips_face_the_L5_lamina(default_model):
    """Each L4 inferior articular tip pairs with the L5 bone beneath it across the clearance of
    the layout (the tip's lower face above the lamina's upper face, planar: exact up to
    round-off), the normals vertical, both sides alike."""
    from spinefe.mechanics.contact import pair_surfaces, surface_triangles

    lay = segment_layout(segment_geometry(coarse()))
    tip_z = lay.L4.parts["articular_inferior.left"].corners()[:, 2].min()
    clearance = tip_z - lay.L5.parts["lamina"].corners()[:, 2].max()
    areas = []
    for side in R.SIDES:
        upper, lower = default_model.contact_pairs[f"tip.{side}"]
        pairs = pair_surfaces(surface_triangles(default_model, upper),
                              surface_triangles(default_model, lower))
        assert len(pairs.gap_mm) > 0
        np.testing.assert_allclose(pairs.gap_mm, clearance, atol=1e-9)
        np.testing.assert_allclose(pairs.normals, np.tile([0.0, 0.0, 1.0], (len(pairs.normals), 1)),
                                   atol=1e-9)
        assert np.all(np.sign(pairs.slave_mm[:, 0]) == (1.0 if side == "left" else -1.0))
        areas.append(pairs.area_mm2.sum())
    assert clearance > 0.0
    assert areas[0] == pytest.approx(areas[1], rel=0.1)  # the mesh is not mirror-symmetric


def test_no_sliver_elements(default_model, analytic_model):
    """The suite's segments at h = 2.5 mm have no sliver: minimum radius ratio above 0.03. Before
    the posterior rules of issue 21 it was 2.4e-4 (default) where three posterior surfaces met
    nearly on one line; 0.05, the goal from 2.0 mm down (benchmarks/mesh_quality.py), is missed
    by one corner at this coarser size (0.046, docs/model.md)."""
    for model in (default_model, analytic_model):
        assert mesh_summary(model)["min_quality"] > 0.03


def test_nucleus_fraction_within_one_percent(default_model, analytic_model):
    for model in (default_model, analytic_model):
        fraction = mesh_summary(model)["nucleus_fraction"]
        assert fraction == pytest.approx(0.35, rel=0.01)


def test_seed_volume_within_five_percent(analytic_model):
    cfg = analytic_shape()
    r, length = 0.5 * cfg.seed_capsule.diameter_mm, cfg.seed_capsule.length_mm
    meshed = mesh_summary(analytic_model)["regions"][R.SEEDS]["volume_mm3"]
    assert meshed == pytest.approx(np.pi * r**2 * length, rel=0.05)


def test_layer_thickness_measured_on_mesh(analytic_model):
    cfg = analytic_shape()
    lay = segment_layout(segment_geometry(cfg))
    sec = lay.L4.body.section
    z_mid = 0.5 * float(lay.L4.body.inferior.z(-sec.b) + lay.L4.body.superior.z(-sec.b))
    # Cortical shell on the anterior mid-line (an ellipse axis: exact thickness there).
    shell = run_length(
        analytic_model,
        analytic_model.tag("L4.cortical"),
        (0.0, -sec.b - 1.0, z_mid),
        (0.0, -sec.b + 4.0, z_mid),
    )
    assert shell == pytest.approx(cfg.layers.cortical_shell_mm, abs=0.05)
    # Bony endplates, vertically through the body, off the seed.
    x, y = 8.0, 0.0
    top = float(lay.L4.body.superior.z(y))
    ep = run_length(
        analytic_model,
        analytic_model.tag("L4.endplate_superior"),
        (x, y, top - 3.0),
        (x, y, top + 1.0),
    )
    # Vertical run through a plane tilted by the slope: thickness / cos(tilt).
    tilt = np.arctan(lay.L4.body.superior.slope)
    assert ep * np.cos(tilt) == pytest.approx(cfg.layers.bony_endplate_mm, abs=0.02)


@pytest.mark.mpi_only
def test_same_mesh_on_one_and_two_ranks(cache_dir):
    """A mesh made on rank 0 and distributed (no cache) equals the serial one read from the
    cache: counts and region volumes."""
    comm = MPI.COMM_WORLD
    parallel = mesh_summary(build_mesh(segment_geometry(analytic_shape()), comm, None))
    serial = None
    if comm.rank == 0:  # COMM_SELF: no collective across ranks inside this branch
        serial = mesh_summary(
            build_mesh(segment_geometry(analytic_shape()), MPI.COMM_SELF, cache_dir)
        )
    serial = comm.bcast(serial, root=0)
    assert parallel["cells"] == serial["cells"]
    for name, r in serial["regions"].items():
        assert parallel["regions"][name]["cells"] == r["cells"]
        assert parallel["regions"][name]["volume_mm3"] == pytest.approx(r["volume_mm3"], rel=1e-12)


def test_cache_reproduces_the_mesh(default_model, cache_dir):
    """A cache hit gives the mesh the miss gave (the miss reads its mesh back): the same
    coordinates and cells in the same order, so a run's numbers do not depend on whether the
    cache held the mesh."""
    again = build_mesh(segment_geometry(coarse()), MPI.COMM_WORLD, cache_dir)
    assert again.meta["cache"] == "hit"
    assert np.array_equal(default_model.mesh.geometry.x, again.mesh.geometry.x)
    assert np.array_equal(default_model.mesh.geometry.dofmaps[0], again.mesh.geometry.dofmaps[0])
    assert np.array_equal(default_model.cell_tags.values, again.cell_tags.values)
    a, b = mesh_summary(default_model), mesh_summary(again)
    assert a["cells"] == b["cells"] and a["vertices"] == b["vertices"]
    for name in a["regions"]:
        assert a["regions"][name]["cells"] == b["regions"][name]["cells"]
    assert b["landmarks"] == a["landmarks"]


@pytest.mark.serial_only
def test_cortical_breach_and_envelope(seedless_model, cache_dir):
    """The breach moves a wall sector into the lesion (L4 body volume conserved); the envelope
    wraps the segment without taking the loading surfaces."""
    cfg = breach_and_envelope()
    model = build_mesh(segment_geometry(cfg), MPI.COMM_WORLD, cache_dir)
    vol = {k: v["volume_mm3"] for k, v in mesh_summary(model)["regions"].items()}
    ref = {k: v["volume_mm3"] for k, v in mesh_summary(seedless_model)["regions"].items()}
    breached = ref["L4.cortical"] - vol["L4.cortical"]
    assert vol[R.LESION] - ref[R.LESION] == pytest.approx(breached, rel=0.02)
    # Expected: a quarter of the wall, over the lesion's height out of the body's height.
    lay = segment_layout(segment_geometry(cfg))
    height = lay.L4.body.height(0.0)
    expected = 0.25 * ref["L4.cortical"] * 2 * cfg.lesion.radii_mm[2] / height
    assert breached == pytest.approx(expected, rel=0.25)  # the wall is thicker at the rims
    assert vol[R.ENVELOPE] > 0
    assert model.names[R.L4_SUPERIOR][0] == 2 and model.names[R.L5_INFERIOR][0] == 2
