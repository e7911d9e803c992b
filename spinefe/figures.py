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


def _gather_grid(model: Model):
    """The whole mesh as one pyvista grid on rank 0 (None elsewhere), with a 'region' index."""
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
    parts = comm.gather((topology, cell_types, x, region), root=0)
    if comm.rank != 0:
        return None, names
    topo, types, xs, regs, offset = [], [], [], [], 0
    for t, c, xx, r in parts:
        t = t.reshape(-1, 5).copy()
        t[:, 1:] += offset
        topo.append(t.ravel())
        types.append(c)
        xs.append(xx)
        regs.append(r)
        offset += xx.shape[0]
    grid = pyvista.UnstructuredGrid(np.concatenate(topo), np.concatenate(types), np.vstack(xs))
    grid.cell_data["region"] = np.concatenate(regs)
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
