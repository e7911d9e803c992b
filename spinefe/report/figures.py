"""Pictures of a meshed segment (pyvista, off-screen): gathered to rank 0 and rendered there."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import numpy as np

from spinefe.common import regions as R
from spinefe.geometry.mesh import Model

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


def _no_display() -> bool:
    return sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )


def offscreen_pyvista():
    """pyvista, set up to render off screen, through a backend that needs no X server.

    VTK's wheels choose the OpenGL window at run time and try an X window first: without a
    display that logs "bad X server connection" for every figure before falling back to EGL.
    Without a display we ask VTK for EGL directly (OSMesa if only that is installed), unless
    VTK_DEFAULT_OPENGL_WINDOW says otherwise. Call before the first plotter is made.
    """
    os.environ.setdefault("PYVISTA_OFF_SCREEN", "true")
    if _no_display() and "VTK_DEFAULT_OPENGL_WINDOW" not in os.environ:
        from ctypes.util import find_library

        for library, window in (("EGL", "vtkEGLRenderWindow"),
                                ("OSMesa", "vtkOSOpenGLRenderWindow")):
            if find_library(library):
                os.environ["VTK_DEFAULT_OPENGL_WINDOW"] = window
                log.debug("no display: VTK renders through %s", window)
                break
    import pyvista

    pyvista.OFF_SCREEN = True
    return pyvista


def _role(name: str) -> str:
    for key in ("cortical", "endplate", "trabecular", "lesion", "nucleus", "annulus", "cartilage"):
        if key in name:
            return key
    if name in (R.SEEDS, R.CANAL, R.ENVELOPE):
        return name
    return "posterior"


def gather_grid(model: Model, cell_data: dict[str, np.ndarray] | None = None):
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
    grid, names = gather_grid(model)
    if model.comm.rank != 0:
        return
    pyvista = offscreen_pyvista()
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


def seed_cut(grid, names: list[str]):
    """The plane of the von Mises figure: the vertical plane along the seed needle nearest the
    mid-line, as (origin, unit normal with normal[0] >= 0, label); the mid-sagittal plane where
    the mesh has no seeds.

    The capsules are the connected pieces of the `seeds` region of the gathered `grid`; the one
    whose centre has the smallest |x| gives the needle: its long axis (principal direction of its
    cell centres). The plane holds that axis and z, so it cuts every capsule of the needle along
    its length (a vertical needle: the sagittal plane through it).
    """
    sagittal = (np.zeros(3), np.array([1.0, 0.0, 0.0]), "mid-sagittal cut")
    if R.SEEDS not in names:
        return sagittal
    seeds = grid.extract_cells(grid.cell_data["region"] == names.index(R.SEEDS))
    if seeds.n_cells == 0:
        return sagittal
    # clean(): merge the points that the ranks' parts of a capsule both hold (gather_grid), so
    # that a capsule split between ranks is one piece
    pieces = seeds.clean().connectivity()
    centres = pieces.cell_centers().points
    labels = pieces.cell_data["RegionId"]
    capsules = [centres[labels == k] for k in np.unique(labels)]
    x = np.array([c.mean(axis=0)[0] for c in capsules])
    # mirror-image needles tie (to mesh noise): the patient's right one (x < 0), on any ranks
    capsule = capsules[min(np.flatnonzero(np.abs(x) <= np.abs(x).min() + 0.5), key=x.__getitem__)]
    origin = capsule.mean(axis=0)
    axis = np.linalg.svd(capsule - origin, full_matrices=False)[2][0]
    normal = np.cross(axis, (0.0, 0.0, 1.0))
    if np.linalg.norm(normal) < 0.1:  # a (nearly) vertical needle
        normal = np.array([1.0, 0.0, 0.0])
    normal /= np.linalg.norm(normal)
    normal *= 1.0 if normal[0] >= 0 else -1.0
    angle = np.degrees(np.arccos(min(1.0, normal[0])))
    label = (f"cut along the seed needle nearest the mid-line (through x = {origin[0]:.1f} mm, "
             f"y = {origin[1]:.1f} mm;\n{angle:.0f} deg from sagittal)")
    return origin, normal, label


def render_von_mises(model: Model, fields: dict[str, np.ndarray], filename: Path) -> None:
    """One panel per scenario: von Mises (MPa, log colour scale shared by all panels) on a
    vertical cut along the seed needle nearest the mid-line (`seed_cut`; mid-sagittal without
    seeds), seen from the left. `fields` maps a title to owned-cell values.

    Collective (gathered to rank 0); rank 0 writes the PNG.
    """
    grid, names = gather_grid(model, fields)
    if model.comm.rank != 0:
        return
    pyvista = offscreen_pyvista()
    origin, normal, label = seed_cut(grid, names)
    half = grid.clip(normal=normal, origin=origin)  # keeps the side away from the camera
    side = " (anterior left)" if normal[0] > np.cos(np.radians(45)) else ""
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
        p.add_text(f"{title}\n{label}, seen from the left{side}", font_size=11)
        p.camera_position = [tuple(origin + 320 * normal), tuple(origin), (0, 0, 1)]
        p.camera.parallel_projection = True
        p.reset_camera()
    p.screenshot(str(filename))
    p.close()
    log.info("figure: %s", filename)


def _dose_slice(plan, formalism: str, origin, u, v, extent_mm: float, spacing_mm: float):
    """Total dose (Gy) on a square grid in the plane origin + s u + t v, |s|, |t| <= extent."""
    from dosimetry.tg43 import dose_rate

    s = np.arange(-extent_mm, extent_mm + 1e-9, spacing_mm)
    S, T = np.meshgrid(s, s)
    points = origin + S.ravel()[:, None] * u + T.ravel()[:, None] * v
    return s, points, dose_rate(points, plan, formalism).total_dose_Gy.reshape(S.shape)


def render_isodose(grid, names: list[str], plan, prescription_Gy: float, centre_mm,
                   filename: Path, formalism: str = "2d", spacing_mm: float = 0.5,
                   extent_mm: float = 30.0):
    """Axial and sagittal slices through `centre_mm`: dose (Gy, log colours), isodose lines at
    50/100/150/200 % of the prescription, outlines of the lesion, canal, cortical bone and seeds
    (from the gathered mesh `grid` of `gather_grid`), seeds near the slice as red strokes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    from dosimetry.seed_models import load_seed_model

    centre = np.asarray(centre_mm, float)
    views = [("axial", "z", (1, 0, 0), (0, 1, 0), "x (mm, patient left)", "y (mm, posterior)"),
             ("sagittal", "x", (0, 1, 0), (0, 0, 1), "y (mm, posterior)", "z (mm, superior)")]
    outlines = {"lesion": ([R.LESION], "white"), "canal": ([R.CANAL], "deepskyblue"),
                "cortical bone": ([f"{v}.cortical" for v in R.VERTEBRAE], "0.6"),
                "seed capsules (cut; strokes: seeds within 2.5 mm)": ([R.SEEDS], "red")}
    levels = [0.5 * prescription_Gy, prescription_Gy, 1.5 * prescription_Gy, 2 * prescription_Gy]
    fig, axes = plt.subplots(1, 2, figsize=(13, 6), constrained_layout=True)
    for ax, (title, axis, u, v, xlabel, ylabel) in zip(axes, views, strict=True):
        u, v = np.asarray(u, float), np.asarray(v, float)
        s, points, dose = _dose_slice(plan, formalism, centre, u, v, extent_mm, spacing_mm)
        cell = grid.find_containing_cell(points)
        region = np.where(cell >= 0, grid.cell_data["region"][np.maximum(cell, 0)], -1)
        region = region.reshape(dose.shape)
        shown = np.ma.masked_invalid(np.where(dose > 0, dose, np.nan))
        extent = (s[0] + centre @ u, s[-1] + centre @ u, s[0] + centre @ v, s[-1] + centre @ v)
        img = ax.imshow(shown, origin="lower", extent=extent, cmap="magma",
                        norm=LogNorm(vmin=0.1 * prescription_Gy, vmax=10 * prescription_Gy))
        X, Y = np.meshgrid(s + centre @ u, s + centre @ v)
        cs = ax.contour(X, Y, np.nan_to_num(dose, nan=1e9), levels=levels,
                        colors=["#7fc97f", "#ffff33", "#fdc086", "#f0027f"], linewidths=1.2)
        ax.clabel(cs, fmt={lv: f"{100 * lv / prescription_Gy:.0f}%" for lv in levels},
                  fontsize=7)
        for label, (regions, colour) in outlines.items():
            idx = [names.index(r) for r in regions if r in names]
            if idx:
                mask = np.isin(region, idx).astype(float)
                ax.contour(X, Y, mask, levels=[0.5], colors=[colour], linewidths=0.8,
                           linestyles="--" if label == "canal" else "-")
                ax.plot([], [], color=colour, label=label)
        normal = np.cross(u, v)
        for seed in plan.seeds:
            p, d = np.asarray(seed.position_mm), np.asarray(seed.direction)
            if abs((p - centre) @ normal) <= 2.5:  # seeds within 2.5 mm of the slice
                half = 5.0 * load_seed_model(seed.model).capsule_length_cm  # mm
                ends = np.array([p - half * d, p + half * d])
                ax.plot(ends @ u, ends @ v, color="red", lw=2.5, solid_capstyle="round")
        ax.set_title(f"{title} slice {axis} = {centre @ normal:.1f} mm")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_aspect("equal")
        ax.legend(loc="lower left", fontsize=7, framealpha=0.6)
    fig.colorbar(img, ax=axes, label="total dose (Gy), TG-43U1 dose to water", shrink=0.8)
    fig.suptitle(f"{plan.name}: isodose lines 50/100/150/200 % of {prescription_Gy:g} Gy")
    fig.savefig(filename, dpi=130)
    plt.close(fig)
    log.info("figure: %s", filename)


def render_dvh(table: dict[str, np.ndarray], prescription_Gy: float, filename: Path,
               title: str = "") -> None:
    """Cumulative DVHs (percent volume against dose, Gy) of the structures in `table`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    dose = table["dose_Gy"]
    for name, volume in table.items():
        if name != "dose_Gy":
            ax.plot(dose, volume, label=name, lw=1.8)
    ax.axvline(prescription_Gy, color="0.4", ls=":", label=f"prescription {prescription_Gy:g} Gy")
    ax.set_xlabel("dose (Gy)")
    ax.set_ylabel("volume receiving at least the dose (%)")
    ax.set_xlim(0, dose[-1])
    ax.set_ylim(0, 101)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title or "cumulative DVH")
    fig.savefig(filename, dpi=130)
    plt.close(fig)
    log.info("figure: %s", filename)
