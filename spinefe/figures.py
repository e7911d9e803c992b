"""Pictures of a meshed segment (pyvista, off-screen): gathered to rank 0 and rendered there."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from spinefe import regions as R
from spinefe.mesh import Model

log = logging.getLogger(__name__)

#: Region colours by role (RGB 0-1): cortical bone dark ivory, cancellous tan, lesion purple, ...
_COLOURS = {
    "cortical": (0.62, 0.58, 0.48),
    "endplate": (0.85, 0.65, 0.25),
    "trabecular": (0.85, 0.72, 0.55),
    "posterior": (0.78, 0.76, 0.70),
    "lesion": (0.55, 0.25, 0.60),
    "seeds": (0.90, 0.05, 0.05),
    "nucleus": (0.30, 0.50, 0.90),
    "annulus": (0.60, 0.80, 0.95),
    "cartilage": (0.30, 0.70, 0.35),
    "canal": (1.00, 0.95, 0.55),
    "envelope": (0.95, 0.80, 0.80),
}


def _role(name: str) -> str:
    for key in ("cortical", "endplate", "trabecular", "lesion", "nucleus", "annulus", "cartilage"):
        if key in name:
            return key
    if name in (R.SEEDS, R.CANAL, R.ENVELOPE):
        return name
    return "posterior"


def _gather_grid(model: Model, cell_data: dict[str, np.ndarray] | None = None):
    """The whole mesh as one pyvista grid on rank 0 (None elsewhere), with a 'region' index and
    the given per-cell arrays (owned cells, in local order)."""
    import pyvista

    from dolfinx.plot import vtk_mesh

    mesh, comm = model.mesh, model.comm
    n = mesh.topology.index_map(3).size_local
    topology, cell_types, x = vtk_mesh(mesh, 3, np.arange(n, dtype=np.int32))
    region = np.full(n, -1, dtype=np.int32)
    names = model.regions()
    tag_to_index = {model.tag(name): i for i, name in enumerate(names)}
    ct = model.cell_tags
    keep = ct.indices < n
    region[ct.indices[keep]] = [tag_to_index.get(v, -1) for v in ct.values[keep]]
    extra = {k: np.asarray(v)[:n] for k, v in (cell_data or {}).items()}
    parts = comm.gather((topology, cell_types, x, region, extra), root=0)
    if comm.rank != 0:
        return None, names
    topo, types, xs, regs, offset = [], [], [], [], 0
    for t, c, xx, r, _ in parts:
        t = t.reshape(-1, 5).copy()
        t[:, 1:] += offset
        topo.append(t.ravel())
        types.append(c)
        xs.append(xx)
        regs.append(r)
        offset += xx.shape[0]
    grid = pyvista.UnstructuredGrid(np.concatenate(topo), np.concatenate(types), np.vstack(xs))
    grid.cell_data["region"] = np.concatenate(regs)
    for key in extra:
        grid.cell_data[key] = np.concatenate([p[4][key] for p in parts])
    return grid, names


def render_segment(model: Model, filename: Path, slice_z_mm: float | None = None) -> None:
    """Two panels: mid-sagittal cut (seeds drawn whole) and an axial cut through the seeds.

    Collective (the mesh is gathered to rank 0); rank 0 writes the PNG.
    """
    grid, names = _gather_grid(model)
    if model.comm.rank != 0:
        return
    os.environ.setdefault("PYVISTA_OFF_SCREEN", "true")
    import pyvista

    pyvista.OFF_SCREEN = True
    colours = np.array([_COLOURS[_role(n)] for n in names])
    seeds_index = names.index(R.SEEDS) if R.SEEDS in names else None
    if slice_z_mm is None:
        if seeds_index is not None:  # through the seed nearest the mean seed height
            seeds = grid.extract_cells(grid.cell_data["region"] == seeds_index)
            z = seeds.cell_centers().points[:, 2]  # inside a capsule, unlike its surface points
            slice_z_mm = float(z[np.argmin(np.abs(z - z.mean()))])
        else:
            slice_z_mm = float(np.mean(grid.points[:, 2]))

    def coloured(mesh):
        rgb = (colours[mesh.cell_data["region"]] * 255).astype(np.uint8)
        mesh.cell_data["rgb"] = rgb
        return mesh

    p = pyvista.Plotter(off_screen=True, shape=(1, 2), window_size=(1800, 900))
    half = coloured(grid.clip(normal=(1, 0, 0), origin=(0, 0, 0)))
    p.subplot(0, 0)
    p.add_mesh(half, scalars="rgb", rgb=True, lighting=False)
    if seeds_index is not None:
        seeds = grid.extract_cells(grid.cell_data["region"] == seeds_index)
        p.add_mesh(seeds, color=_COLOURS["seeds"])
    p.add_text(
        "mid-sagittal cut, viewed from the left (anterior left)\nseeds drawn whole", font_size=10
    )
    p.camera_position = [(320, 0, 0), (0, 5, 0), (0, 0, 1)]
    p.camera.parallel_projection = True
    p.reset_camera()
    p.subplot(0, 1)
    cut = coloured(grid.slice(normal=(0, 0, 1), origin=(0, 0, slice_z_mm)))
    p.add_mesh(cut, scalars="rgb", rgb=True, lighting=False)
    p.add_text(f"axial cut z = {slice_z_mm:.1f} mm, seen from below (anterior up)", font_size=10)
    p.camera_position = [(0, 10, slice_z_mm - 320), (0, 10, slice_z_mm), (0, -1, 0)]
    p.camera.parallel_projection = True
    p.reset_camera()
    roles = sorted({_role(n) for n in names})
    p.add_legend(
        [[r, _COLOURS[r]] for r in roles], bcolor="white", size=(0.22, 0.35), loc="lower right"
    )
    p.screenshot(str(filename))
    p.close()
    log.info("figure: %s", filename)


def render_von_mises(model: Model, fields: dict[str, np.ndarray], filename: Path) -> None:
    """One panel per scenario: von Mises (MPa, log colour scale shared by all panels) on the
    mid-sagittal cut through the segment. `fields` maps a title to owned-cell values.

    Collective (gathered to rank 0); rank 0 writes the PNG.
    """
    grid, _ = _gather_grid(model, fields)
    if model.comm.rank != 0:
        return
    os.environ.setdefault("PYVISTA_OFF_SCREEN", "true")
    import pyvista

    pyvista.OFF_SCREEN = True
    half = grid.clip(normal=(1, 0, 0), origin=(0, 0, 0))
    top = max(float(np.percentile(grid.cell_data[k], 99.9)) for k in fields)
    clim = (max(top * 1e-4, 1e-4), top)
    p = pyvista.Plotter(
        off_screen=True, shape=(1, len(fields)), window_size=(700 * len(fields), 800)
    )
    for i, title in enumerate(fields):
        p.subplot(0, i)
        p.add_mesh(
            half,
            scalars=title,
            cmap="inferno",
            log_scale=True,
            clim=clim,
            lighting=False,
            scalar_bar_args={"title": "von Mises (MPa)", "fmt": "%.2g"} if i == 0 else None,
            show_scalar_bar=i == 0,
            copy_mesh=True,
        )
        p.add_text(f"{title}\nmid-sagittal cut, anterior left", font_size=11)
        p.camera_position = [(320, 0, 0), (0, 5, 0), (0, 0, 1)]
        p.camera.parallel_projection = True
        p.reset_camera()
    p.screenshot(str(filename))
    p.close()
    log.info("figure: %s", filename)
