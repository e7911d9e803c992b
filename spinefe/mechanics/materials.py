"""Which material fills each region, per scenario, as cell-wise (DG0) fields E (MPa) and nu.

The three scenarios share one mesh in which the lesion and the seeds are meshed, so that the
differences between them are physics, not mesh noise:

- `healthy`: lesion and seed cells are trabecular bone;
- `tumour`: lesion cells are tumour tissue; seed cells take the material of their host (tumour
  inside the lesion ellipsoid, trabecular bone outside it);
- `implanted`: seed cells are Ti-6Al-4V inside the tumour.
"""

from __future__ import annotations

from dataclasses import dataclass

import dolfinx
import numpy as np

from spinefe.common import regions as R
from spinefe.config.sections import Lesion, Materials
from spinefe.geometry.mesh import Model

#: Regions that carry no load: they are meshed for dosimetry only.
DOSE_ONLY = (R.CANAL, R.ENVELOPE)


def material_of(region: str) -> str:
    """Material name (a field of `config.Materials`) of a load-bearing region, implanted state."""
    if region == R.SEEDS:
        return "Ti6Al4V"
    if region == R.LESION:
        return "metastatic_tumor"
    if region == R.NUCLEUS:
        return "nucleus_pulposus"
    if region == R.ANNULUS:
        return "annulus_fibrosus"
    if region.endswith("_cartilage"):
        return "articular_cartilage"
    level, _, part = region.partition(".")
    if level in R.VERTEBRAE:
        if part in ("cortical", "endplate_superior", "endplate_inferior"):
            return "cortical_bone"
        if part == "trabecular":
            return "trabecular_bone"
        if part in R.POSTERIOR_PARTS:
            return "posterior_bone"
    raise KeyError(f"region {region!r} has no material (dose-only regions: {DOSE_ONLY})")


def in_lesion(lesion: Lesion, x: np.ndarray) -> np.ndarray:
    """Whether points x (N, 3), mm, lie inside the lesion ellipsoid."""
    if not lesion.enabled:
        return np.zeros(len(x), dtype=bool)
    d = (x - np.asarray(lesion.centre_mm)) / np.asarray(lesion.radii_mm)
    return np.einsum("ij,ij->i", d, d) <= 1.0


def cell_materials(model: Model, lesion: Lesion, scenario: str) -> np.ndarray:
    """Material name of every local cell (owned and ghost) of a load-bearing model; seed cells
    of the tumour scenario are tumour inside the `lesion` ellipsoid."""
    mesh = model.mesh
    n = mesh.topology.index_map(3).size_local + mesh.topology.index_map(3).num_ghosts
    names = np.full(n, "", dtype=object)
    for region in model.regions():
        cells = model.cell_tags.find(model.tag(region))
        material = material_of(region)
        if scenario == "healthy" and region in (R.LESION, R.SEEDS):
            material = "trabecular_bone"
        names[cells] = material
    if scenario == "tumour" and R.SEEDS in model.names:
        cells = model.cell_tags.find(model.tag(R.SEEDS))
        mid = dolfinx.mesh.compute_midpoints(mesh, 3, cells)
        names[cells] = np.where(in_lesion(lesion, mid), "metastatic_tumor", "trabecular_bone")
    if np.any(names == ""):
        raise ValueError(f"{np.sum(names == '')} cells carry no region tag")
    return names


@dataclass
class MaterialFields:
    """Cell-wise Young's modulus E (MPa) and Poisson's ratio nu (DG0 functions)."""

    E: dolfinx.fem.Function
    nu: dolfinx.fem.Function

    @property
    def space(self) -> dolfinx.fem.FunctionSpace:
        return self.E.function_space


def material_fields(model: Model, materials: Materials, lesion: Lesion,
                    scenario: str) -> MaterialFields:
    """DG0 fields E (MPa) and nu of `scenario`, each region's from `materials`."""
    names = cell_materials(model, lesion, scenario)
    table = {k: (m.E_MPa, m.nu) for k, m in materials}
    return piecewise_fields(model.mesh, np.array([table[n] for n in names]))


def piecewise_fields(mesh: dolfinx.mesh.Mesh, E_nu: np.ndarray) -> MaterialFields:
    """DG0 fields from per-cell values E_nu (n_local_cells, 2), cells ordered as in the mesh."""
    Q = dolfinx.fem.functionspace(mesh, ("DG", 0))
    E, nu = dolfinx.fem.Function(Q, name="E_MPa"), dolfinx.fem.Function(Q, name="nu")
    n = mesh.topology.index_map(3).size_local + mesh.topology.index_map(3).num_ghosts
    dofs = Q.dofmap.list[np.arange(n)].ravel()  # DG0 dof of each cell (not the cell index)
    E.x.array[dofs] = E_nu[:, 0]
    nu.x.array[dofs] = E_nu[:, 1]
    return MaterialFields(E, nu)
