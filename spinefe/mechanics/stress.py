"""Results of a mechanics solve: von Mises statistics per region and band, scalars, field files.

Statistics are taken over quadrature points, each weighted by its share of the cell volume, and
reduced over MPI (gathered to rank 0, which is exact for percentiles). With P1 displacements the
stress is constant in a cell (the nodal pressure changes only the mean stress, which von Mises
ignores), so the quadrature values equal the DG0 values; with P2 they differ.

Single-element maxima depend on the mesh near edges and stiff inclusions: every group reports
`max` beside the volume-weighted `p95`, `p99` and `mean`.
"""

from __future__ import annotations

from pathlib import Path

import basix
import dolfinx
import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI

from dosimetry import Plan
from spinefe.common import regions as R
from spinefe.config.sections import Mechanics, SeedCapsule
from spinefe.geometry.mesh import Model, cell_volumes, marker_tags
from spinefe.mechanics.elasticity import ElasticSolution, stress

#: Result group beyond the single regions and the paper's groups (spinefe.common.regions).
SEED_BAND = "seeds.band"


def _groups(model: Model) -> dict[str, list[str]]:
    regions = model.regions()

    def present(names):
        return [n for n in names if n in regions]

    groups = {r: [r] for r in regions}
    groups[R.CORTICAL_ENDPLATES] = present(
        ["L4.cortical", "L4.endplate_superior", "L4.endplate_inferior"]
    )
    groups[R.CANCELLOUS] = present(["L4.trabecular", R.LESION])
    for level in R.VERTEBRAE:
        groups[f"{level}.body"] = present(
            [f"{level}.{p}" for p in R.BODY_PARTS] + [R.LESION] * (level == "L4")
        )
        groups[f"{level}.posterior"] = present([f"{level}.{p}" for p in R.POSTERIOR_PARTS])
    groups["disc"] = present([R.NUCLEUS, R.ANNULUS])
    groups["facet_cartilage"] = [r for r in regions if r.endswith("_cartilage")]
    return {k: v for k, v in groups.items() if v}


def seed_band_cells(model: Model, seeds: Plan, capsule: SeedCapsule,
                    band_mm: float) -> np.ndarray:
    """Owned non-seed cells whose midpoint lies within `band_mm` of a capsule of the meshed
    `seeds`."""
    mesh = model.mesh
    n = mesh.topology.index_map(3).size_local
    if not seeds.seeds or R.SEEDS not in model.names:
        return np.zeros(0, dtype=np.int32)
    x = dolfinx.mesh.compute_midpoints(mesh, 3, np.arange(n, dtype=np.int32))
    near = np.zeros(n, dtype=bool)
    reach = capsule.diameter_mm / 2 + band_mm
    for c, direction in zip(seeds.positions_mm, seeds.directions, strict=True):
        half = 0.5 * capsule.length_mm * direction
        p0, p1 = c - half, c + half
        d = p1 - p0
        t = np.clip((x - p0) @ d / (d @ d), 0.0, 1.0)
        near |= np.linalg.norm(x - (p0 + t[:, None] * d), axis=1) <= reach
    seeds = model.cell_tags.find(model.tag(R.SEEDS))
    near[seeds[seeds < n]] = False
    return np.flatnonzero(near).astype(np.int32)


def weighted_stats(values: np.ndarray, weights: np.ndarray, comm: MPI.Comm) -> dict:
    """max, volume-weighted p95 / p99 / mean and volume over all ranks (gathered to rank 0)."""
    parts = comm.gather((values, weights), root=0)
    out = None
    if comm.rank == 0:
        v = np.concatenate([p[0] for p in parts])
        w = np.concatenate([p[1] for p in parts])
        if v.size:
            order = np.argsort(v)
            v, w = v[order], w[order]
            cum = np.cumsum(w) / w.sum()

            def pct(q):
                return float(v[min(np.searchsorted(cum, q), v.size - 1)])

            out = {
                "max": float(v[-1]),
                "p95": pct(0.95),
                "p99": pct(0.99),
                "mean": float(np.dot(v, w) / w.sum()),
                "volume_mm3": float(w.sum()),
            }
    return comm.bcast(out, root=0)


def von_mises_array(sigma: np.ndarray) -> np.ndarray:
    """Von Mises stress of stress tensors (..., 3, 3), MPa; the numpy twin of
    `elasticity.von_mises` for values already evaluated at points."""
    dev = sigma - np.trace(sigma, axis1=-2, axis2=-1)[..., None, None] / 3.0 * np.eye(3)
    return np.sqrt(1.5 * np.einsum("...ij,...ij->...", dev, dev))


def von_mises_fields(sol: ElasticSolution) -> tuple[fem.Function, np.ndarray, np.ndarray]:
    """DG0 von Mises (of the cell-mean stress) and the quadrature values (owned cells, points).

    Returns the DG0 function, values (n_owned, n_points) in MPa and weights (n_owned, n_points)
    in mm^3.
    """
    mesh = sol.u.function_space.mesh
    degree = sol.u.function_space.element.basix_element.degree
    n = mesh.topology.index_map(3).size_local
    cells = np.arange(n, dtype=np.int32)
    points, qw = basix.make_quadrature(basix.CellType.tetrahedron, 2 * (degree - 1))
    sigma_q = fem.Expression(stress(sol), points).eval(mesh, cells).reshape(n, len(qw), 3, 3)
    values = von_mises_array(sigma_q)
    weights = cell_volumes(mesh)[:, None] * (qw / qw.sum())[None, :]
    mean = np.einsum("q,cqij->cij", qw / qw.sum(), sigma_q)  # cell-mean stress tensor
    Q = fem.functionspace(mesh, ("DG", 0))
    dg0 = fem.Function(Q, name="von_mises_MPa")
    dg0.x.array[Q.dofmap.list[cells].ravel()] = von_mises_array(mean)
    dg0.x.scatter_forward()
    return dg0, values, weights


def summarize(
    sol: ElasticSolution, model: Model, scenario: str, *, mechanics: Mechanics, seeds: Plan,
    capsule: SeedCapsule,
) -> tuple[dict, fem.Function]:
    """The result record of one scenario under the load of `mechanics` (JSON-ready) and the DG0
    von Mises field; `seeds`: the mesh's capsules (of the seed band); collective."""
    comm, mesh = model.comm, model.mesh
    n = mesh.topology.index_map(3).size_local
    dg0, values, weights = von_mises_fields(sol)
    groups = _groups(model)
    stats = {}
    for name, members in groups.items():
        cells = np.concatenate([model.cell_tags.find(model.tag(r)) for r in members])
        cells = np.unique(cells[cells < n])
        stats[name] = weighted_stats(values[cells].ravel(), weights[cells].ravel(), comm)
    band = seed_band_cells(model, seeds, capsule, mechanics.seed_band_mm)
    if comm.allreduce(band.size) > 0:
        stats[SEED_BAND] = weighted_stats(values[band].ravel(), weights[band].ravel(), comm)

    u = sol.u.x.array.reshape(-1, 3)
    n_u = sol.u.function_space.dofmap.index_map.size_local
    umax = comm.allreduce(float(np.linalg.norm(u[:n_u], axis=1).max(initial=0.0)), op=MPI.MAX)
    direction = np.asarray(mechanics.load_direction, float)
    direction /= np.linalg.norm(direction)
    applied = float(sol.applied_N @ direction)  # along the load
    reaction = float(-sol.reaction_N @ direction)  # the support pushes against the load
    record = {
        "scenario": scenario,
        "reaction_N": reaction,
        "applied_N": applied,
        "reaction_relative_error": abs(reaction - applied) / max(abs(applied), 1e-300),
        "reaction_vector_N": sol.reaction_N.tolist(),
        "dofs": sol.dofs,
        "iterations": sol.iterations,
        "solver": mechanics.solver,
        "petsc_options": dict(sol.petsc_options),  # the user's, applied after the built-in ones
        "converged_reason": sol.converged_reason,
        "strain_energy_mJ": sol.strain_energy_mJ,
        "max_displacement_mm": umax,
        **disc_indicators(sol, model),
        "von_mises_MPa": stats,
        "von_mises_note": "quadrature-point values weighted by volume; max is one element",
        "timings_seconds": {
            k.removesuffix("_seconds"): round(v, 3) for k, v in sol.timings.items()
        },
        "cells": int(mesh.topology.index_map(3).size_global),
        "mpi_size": comm.size,
    }
    return record, dg0


def disc_indicators(sol: ElasticSolution, model: Model) -> dict:
    """Nucleus pressure (volume mean of the nodal pressure, MPa; compression positive) and disc
    bulge (largest horizontal displacement of an annulus node, mm)."""
    comm, mesh = model.comm, model.mesh
    out = {}
    if R.NUCLEUS in model.names and sol.pressure is not None:
        tags = marker_tags(mesh, 3, [(model.cell_tags.find(model.tag(R.NUCLEUS)), 1)])
        dxn = ufl.Measure("dx", domain=mesh, subdomain_data=tags, subdomain_id=1)
        p_int = comm.allreduce(fem.assemble_scalar(fem.form(sol.pressure * dxn)), op=MPI.SUM)
        vol = comm.allreduce(fem.assemble_scalar(fem.form(1.0 * dxn)), op=MPI.SUM)
        out["nucleus_pressure_MPa"] = p_int / vol
    if R.ANNULUS in model.names:
        V = sol.u.function_space
        cells = model.cell_tags.find(model.tag(R.ANNULUS))
        dofs = np.unique(V.dofmap.list[cells].ravel())
        dofs = dofs[dofs < V.dofmap.index_map.size_local]
        u = sol.u.x.array.reshape(-1, 3)[dofs]
        bulge = float(np.linalg.norm(u[:, :2], axis=1).max(initial=0.0))
        out["disc_bulge_mm"] = comm.allreduce(bulge, op=MPI.MAX)
    return out


def write_fields(sol: ElasticSolution, von_mises_dg0: fem.Function, outdir: Path) -> list[Path]:
    """Displacement, von Mises, E, nodal pressure and the materials' extra fields (fibre
    directions) for ParaView: VTX (.bp) and XDMF; collective."""
    mesh = sol.u.function_space.mesh
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    # P1 for XDMF (it stores vertex values); VTX takes the displacement's own degree.
    u1 = sol.u
    if sol.u.function_space.element.basix_element.degree != 1:
        u1 = fem.Function(fem.functionspace(mesh, ("Lagrange", 1, (3,))), name=sol.u.name)
        u1.interpolate(sol.u)
    with dolfinx.io.VTXWriter(mesh.comm, outdir / "displacement.bp", [sol.u], engine="BP4") as w:
        w.write(0.0)
    cell_fields = [von_mises_dg0, sol.materials.E, *sol.materials.extra_fields]
    with dolfinx.io.VTXWriter(mesh.comm, outdir / "cell_fields.bp", cell_fields, engine="BP4") as w:
        w.write(0.0)
    written += [outdir / "displacement.bp", outdir / "cell_fields.bp"]
    with dolfinx.io.XDMFFile(mesh.comm, outdir / "fields.xdmf", "w") as xdmf:
        xdmf.write_mesh(mesh)
        xdmf.write_function(u1, 0.0)
        xdmf.write_function(von_mises_dg0, 0.0)
        for f in (sol.materials.E, *sol.materials.extra_fields):
            xdmf.write_function(f, 0.0)
        if sol.pressure is not None:
            xdmf.write_function(sol.pressure, 0.0)
    written.append(outdir / "fields.xdmf")
    return written
