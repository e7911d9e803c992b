"""Which material fills each region, per scenario, as cell-wise (DG0) fields E (MPa) and nu and
the laws of the materials that are not isotropic linear elastic (fibres, anisotropy).

The three scenarios share one mesh in which the lesion and the seeds are meshed, so that the
differences between them are physics, not mesh noise:

- `healthy`: lesion and seed cells are trabecular bone;
- `tumour`: lesion cells are tumour tissue; seed cells take the material of their host (tumour
  inside the lesion ellipsoid, trabecular bone outside it);
- `implanted`: seed cells are Ti-6Al-4V inside the tumour.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import dolfinx
import numpy as np

from spinefe.common import regions as R
from spinefe.common.errors import ConfigError
from spinefe.config.sections import Lesion, Materials
from spinefe.geometry.mesh import Model, cell_volumes
from spinefe.mechanics import tumour
from spinefe.mechanics.density import modulus, read_grid
from spinefe.mechanics.fibres import fibre_directions
from spinefe.mechanics.laws import CellLaw, Isotropic, hgo, orthotropic, poroelastic, prony

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
    """Cell-wise Young's modulus E (MPa) and Poisson's ratio nu (DG0 functions), the laws other
    than isotropic linear elasticity and the cells they take (mechanics.laws.CellLaw), the
    Prony series of the relaxing materials (time-dependent solves only), the fields
    worth writing beside the results (e.g. fibre directions) and a summary of the material
    fields (JSON-ready: the tumour modulus's statistics)."""

    E: dolfinx.fem.Function
    nu: dolfinx.fem.Function
    laws: tuple[CellLaw, ...] = ()
    relaxation: tuple[prony.Series, ...] = ()
    extra_fields: tuple[dolfinx.fem.Function, ...] = ()
    summary: dict = field(default_factory=dict)
    poroelastic: PoroelasticCells | None = None

    @property
    def space(self) -> dolfinx.fem.FunctionSpace:
        return self.E.function_space

    @property
    def isotropic(self) -> Isotropic:
        """The Lame parameters of E and nu (of the default law's cells)."""
        return Isotropic.of(self.E, self.nu)

    def with_law(self, cell_law: CellLaw) -> MaterialFields:
        """A copy (sharing the fields) with one more law."""
        return replace(self, laws=(*self.laws, cell_law))


@dataclass
class PoroelasticCells:
    """The poroelastic cells (owned, local indices) and their Biot law (mechanics.laws.poroelastic:
    the drained matrix of the material fields, cell-wise permeability, alpha and storage)."""

    cells: np.ndarray
    params: poroelastic.Parameters


def refuse_poroelastic(materials: Materials) -> None:
    """ConfigError naming the poroelastic disc options of `materials`: only the consolidation
    solve (`spinefe creep`) has a pore pressure."""
    if keys := materials.poroelastic_keys():
        raise ConfigError(f"{', '.join(keys)}: this solve does not take a poroelastic disc; "
                          "only `spinefe creep` does (docs/materials.md, Poroelastic disc)")


def material_fields(model: Model, materials: Materials, lesion: Lesion, scenario: str, *,
                    poroelastic_disc: bool = False) -> MaterialFields:
    """The fields of `scenario`, each region's from `materials`, with their options (fibres,
    anisotropy, density, variation, poroelastic; config.sections.Material); collective.

    A poroelastic disc material is taken only by the consolidation solve
    (`poroelastic_disc=True`: MaterialFields.poroelastic); otherwise ConfigError naming its key,
    since the other solves have no pore pressure."""
    if not poroelastic_disc:
        refuse_poroelastic(materials)
    mesh = model.mesh
    names = cell_materials(model, lesion, scenario)
    mid = dolfinx.mesh.compute_midpoints(mesh, 3, np.arange(len(names), dtype=np.int32))
    E_nu = np.empty((len(names), 2))
    summary = {}
    for name, m in materials:
        cells = names == name
        E_nu[cells] = m.E_MPa, m.nu
        if m.fibres is not None:
            E_nu[cells, 0] = m.fibres.matrix_E_MPa
        if m.density is not None:
            rho = (np.full(cells.sum(), m.density.rho_g_cm3) if m.density.grid_file is None
                   else read_grid(m.density.grid_file).sample(
                       mid[cells], mesh.comm, f"materials.{name}.density.grid_file",
                       owned=np.flatnonzero(cells) < mesh.topology.index_map(3).size_local))
            E_nu[cells, 0] = modulus(rho, m.density.a_MPa, m.density.b)
        if m.variation is not None:
            E_nu[cells, 0] = tumour.tumour_modulus(m.variation, m.E_MPa, lesion, mid[cells])
            owned = cells[: mesh.topology.index_map(3).size_local]
            volumes = cell_volumes(mesh)[owned]
            tumour.warn_if_unresolved(m.variation, volumes, mesh.comm)
            stats = tumour.statistics(E_nu[: len(owned), 0][owned], volumes, mesh.comm)
            if stats:
                summary[f"{name}.E"] = {**stats, "settings": m.variation.model_dump(mode="json")}
    fields = piecewise_fields(mesh, E_nu)
    laws, extra, relaxation = [], [], []
    for name, m in materials:
        cells = np.flatnonzero(names == name).astype(np.int32)
        key = f"materials.{name}"
        if m.relaxation is not None:
            relaxation.append(prony.Series(_indicator(fields, cells), m.relaxation.g,
                                           m.relaxation.tau_s))
        if m.anisotropy is not None:
            a = m.anisotropy
            C_hat = orthotropic.stiffness(a.E_ratios, a.G_ratios, a.nu)
            laws.append(CellLaw("orthotropic", _indicator(fields, cells),
                                orthotropic.Parameters(fields.E, C_hat), f"{key}.anisotropy"))
        if m.fibres is not None:
            f = m.fibres
            plus, minus = fibre_directions(model, f.angle_deg)
            laws.append(CellLaw("hgo", _indicator(fields, cells), hgo.Parameters(
                fields.isotropic, f.k1_MPa, f.k2, f.kappa, (plus, minus)), f"{key}.fibres"))
            extra += [plus, minus]
    return replace(fields, laws=tuple(laws), relaxation=tuple(relaxation),
                   extra_fields=tuple(extra), summary=summary,
                   poroelastic=_poroelastic_cells(fields, materials, names)
                   if materials.poroelastic_keys() else None)


def _poroelastic_cells(fields: MaterialFields, materials: Materials,
                       names: np.ndarray) -> PoroelasticCells:
    """The Biot law of the poroelastic materials' cells, cell-wise (DG0) where they differ."""
    Q = fields.space
    values = {key: dolfinx.fem.Function(Q, name=key)
              for key in ("permeability_mm4_per_Ns", "alpha", "storage_1_per_MPa")}
    poro = np.zeros(len(names), dtype=bool)
    for name, m in materials:
        if m.poroelastic is None:
            continue
        cells = np.flatnonzero(names == name).astype(np.int32)
        poro[cells] = True
        dofs = Q.dofmap.list[cells].ravel()
        values["permeability_mm4_per_Ns"].x.array[dofs] = materials.permeability_mm4_per_Ns(name)
        values["alpha"].x.array[dofs] = m.poroelastic.alpha
        values["storage_1_per_MPa"].x.array[dofs] = m.poroelastic.storage_1_per_MPa
    owned = np.flatnonzero(poro[: fields.space.mesh.topology.index_map(3).size_local])
    return PoroelasticCells(owned.astype(np.int32), poroelastic.Parameters(
        fields.isotropic, values["permeability_mm4_per_Ns"], values["alpha"],
        values["storage_1_per_MPa"]))


def _indicator(fields: MaterialFields, cells: np.ndarray) -> dolfinx.fem.Function:
    """DG0 indicator of local `cells` (owned and ghost)."""
    Q = fields.space
    chi = dolfinx.fem.Function(Q, name="indicator")
    chi.x.array[Q.dofmap.list[cells].ravel()] = 1.0
    return chi


def piecewise_fields(mesh: dolfinx.mesh.Mesh, E_nu: np.ndarray) -> MaterialFields:
    """DG0 fields from per-cell values E_nu (n_local_cells, 2), cells ordered as in the mesh."""
    Q = dolfinx.fem.functionspace(mesh, ("DG", 0))
    E, nu = dolfinx.fem.Function(Q, name="E_MPa"), dolfinx.fem.Function(Q, name="nu")
    n = mesh.topology.index_map(3).size_local + mesh.topology.index_map(3).num_ghosts
    dofs = Q.dofmap.list[np.arange(n)].ravel()  # DG0 dof of each cell (not the cell index)
    E.x.array[dofs] = E_nu[:, 0]
    nu.x.array[dofs] = E_nu[:, 1]
    return MaterialFields(E, nu)
