"""Seed dose on the segment mesh: dose samples per region, dolfinx dose fields, DVHs and metrics.

The thin adapter between the numpy dosimetry core (`dosimetry`) and a distributed dolfinx mesh.
Every owned cell is sampled at the points of a basix quadrature rule mapped to the cell, each point
standing for its quadrature weight times the cell volume: the DVH is then a volume-weighted
distribution that converges as the degree rises. Cells near a seed, where the dose varies as 1/r^2
across one cell, use a higher degree (`dosimetry.near_seed_degree` within `near_seed_mm`). Seed
cells and sample points inside a TG-43 capsule are excluded from every statistic (and counted).

Collective: statistics that need sorting (DVHs of the target and the organ at risk) gather the
samples of those regions on every rank; the others are reduced.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import basix
import dolfinx
import numpy as np
from dolfinx import fem
from mpi4py import MPI

from dosimetry import Plan, Samples, conformity_metrics, oar_metrics, target_metrics
from dosimetry.tg43 import dose_rate, total_dose_Gy
from spinefe.common import regions as R
from spinefe.common.errors import ConfigError
from spinefe.common.parallel import share_cores
from spinefe.config.sections import Dosimetry, SeedCapsule
from spinefe.geometry.mesh import Model

log = logging.getLogger(__name__)

TARGET = R.LESION
ORGAN_AT_RISK = R.CANAL
#: Dose axis of the tabulated cumulative DVHs: 0 to 4 x prescription in 1 % steps.
DVH_AXIS_PERCENT = np.arange(0.0, 400.0 + 1e-9, 1.0)


@dataclass
class RegionSamples:
    """Owned dose samples of one region: total dose (Gy) and volume (mm^3) per sample point."""

    dose_Gy: np.ndarray
    volume_mm3: np.ndarray
    inside_capsule: int  # sample points dropped because they lie inside a TG-43 capsule


def _seed_axis_distance(x: np.ndarray, plan: Plan, half_length_mm: float) -> np.ndarray:
    """Distance (mm) of points x (N, 3) to the nearest seed axis segment."""
    best = np.full(len(x), np.inf)
    for p, d in zip(plan.positions_mm, plan.directions, strict=True):
        t = np.clip((x - p) @ d, -half_length_mm, half_length_mm)
        best = np.minimum(best, np.linalg.norm(x - p - t[:, None] * d, axis=1))
    return best


def quadrature_samples(mesh: dolfinx.mesh.Mesh, cells: np.ndarray, degree: int):
    """Physical points (len(cells) * nq, 3) and their volumes (mm^3) of a degree-`degree`
    collapsed Gauss-Jacobi rule (basix; positive weights, points inside the cell) mapped to each
    cell."""
    X, w = basix.make_quadrature(
        basix.CellType.tetrahedron, degree, rule=basix.QuadratureType.gauss_jacobi
    )
    v = mesh.geometry.x[mesh.geometry.dofmaps[0][cells]]  # (n, 4, 3)
    J = np.transpose(v[:, 1:, :] - v[:, :1, :], (0, 2, 1))  # columns: edge vectors
    points = v[:, None, 0, :] + np.einsum("nij,qj->nqi", J, X)
    volumes = np.abs(np.linalg.det(J))[:, None] * w[None, :]
    return points.reshape(-1, 3), volumes.ravel()


def region_samples(model: Model, plan: Plan, names: list[str], dosimetry: Dosimetry,
                   capsule: SeedCapsule) -> dict:
    """Dose samples of the owned cells of each region in `names` (seeds are never sampled), at
    the quadrature degrees and formalism of `dosimetry`; cells within `near_seed_mm` of a
    capsule's axis (of length `capsule.length_mm`) count as near a seed."""
    d = dosimetry
    mesh = model.mesh
    n_owned = mesh.topology.index_map(3).size_local
    half = 0.5 * capsule.length_mm
    out = {}
    for name in names:
        if name == R.SEEDS:
            raise ValueError("the seed capsules have no dose statistics")
        cells = model.cell_tags.find(model.tag(name))
        cells = cells[cells < n_owned]
        mid = dolfinx.mesh.compute_midpoints(mesh, 3, cells)
        near = _seed_axis_distance(mid, plan, half) <= d.near_seed_mm
        doses, vols, inside = [], [], 0
        for subset, degree in ((cells[~near], d.sampling_degree),
                               (cells[near], d.near_seed_degree)):
            if len(subset) == 0:
                continue
            x, vol = quadrature_samples(mesh, subset, degree)
            pd = dose_rate(x, plan, d.formalism)
            keep = ~pd.inside_capsule
            inside += pd.n_inside
            doses.append(pd.total_dose_Gy[keep])
            vols.append(vol[keep])
        out[name] = RegionSamples(
            np.concatenate(doses) if doses else np.zeros(0),
            np.concatenate(vols) if vols else np.zeros(0),
            inside,
        )
    return out


def gather_samples(comm: MPI.Comm, s: RegionSamples) -> Samples:
    """All ranks' samples of a region, sorted (identical on any number of ranks)."""
    dose = np.concatenate(comm.allgather(s.dose_Gy))
    vol = np.concatenate(comm.allgather(s.volume_mm3))
    return Samples.of(dose, vol)


def dose_function(V: fem.FunctionSpace, plan: Plan, formalism: str = "2d",
                  name: str = "dose_Gy") -> fem.Function:
    """Total dose (Gy) interpolated into V (DG0: cell midpoints; P1: vertices; a quadrature
    space: its points). Points inside a capsule get 0 (no dose is defined there)."""
    f = fem.Function(V, name=name)

    def total(x):
        values = total_dose_Gy(dose_rate(np.ascontiguousarray(x.T), plan, formalism)
                               .dose_rate_cGy_h)
        return np.nan_to_num(values, nan=0.0)

    f.interpolate(total)
    return f


def write_dose_fields(model: Model, plan: Plan, formalism: str, path: Path) -> Path:
    """The dose of `plan` (Gy) at the vertices (P1, `dose_Gy`) and per cell (DG0,
    `dose_Gy_cell`) on the mesh in the XDMF file `path`, for ParaView; collective."""
    V1 = fem.functionspace(model.mesh, ("Lagrange", 1))
    V0 = fem.functionspace(model.mesh, ("DG", 0))
    fields = [dose_function(V1, plan, formalism, "dose_Gy"),
              dose_function(V0, plan, formalism, "dose_Gy_cell")]
    if model.comm.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
    model.comm.barrier()
    with dolfinx.io.XDMFFile(model.comm, path, "w") as xdmf:
        xdmf.write_mesh(model.mesh)
        for f in fields:
            xdmf.write_function(f, 0.0)
    return path


@dataclass
class DoseResult:
    """Dose statistics of one plan on one mesh (identical on every rank)."""

    plan: Plan
    target: Samples
    organ_at_risk: Samples | None
    metrics: dict
    region_stats: dict[str, dict]
    inside_capsule_samples: int


def evaluate_dose(model: Model, plan: Plan, dosimetry: Dosimetry,
                  capsule: SeedCapsule) -> DoseResult:
    """Target and organ-at-risk DVHs, plan metrics (prescription `dosimetry.prescription_Gy`)
    and per-region statistics of `plan` (`region_samples`); collective."""
    comm = model.comm
    share_cores(comm)
    rx = dosimetry.prescription_Gy
    names = [n for n in model.regions() if n != R.SEEDS]
    if TARGET not in names:
        raise ConfigError(f"lesion.enabled: the dose needs a target region ({TARGET}); the mesh "
                          "has none")
    samples = region_samples(model, plan, names, dosimetry, capsule)
    target = gather_samples(comm, samples[TARGET])
    oar = gather_samples(comm, samples[ORGAN_AT_RISK]) if ORGAN_AT_RISK in samples else None

    region_stats = {}
    normal_rx = 0.0
    for name, s in samples.items():
        vol = comm.allreduce(float(s.volume_mm3.sum()), op=MPI.SUM)
        integral = comm.allreduce(float(s.dose_Gy @ s.volume_mm3), op=MPI.SUM)
        dmax = comm.allreduce(float(s.dose_Gy.max(initial=0.0)), op=MPI.MAX)
        v_rx = comm.allreduce(float(s.volume_mm3[s.dose_Gy >= rx].sum()), op=MPI.SUM)
        region_stats[name] = {"volume_cc": vol / 1000.0, "Dmean_Gy": integral / vol,
                              "Dmax_Gy": dmax, "V100_cc": v_rx / 1000.0}
        if name != TARGET:
            normal_rx += v_rx
    inside = comm.allreduce(sum(s.inside_capsule for s in samples.values()), op=MPI.SUM)

    metrics = {"prescription_Gy": rx, "target": target_metrics(target, rx)}
    # Normal tissue of the external index: every meshed region but the target and the seeds.
    metrics["conformity"] = conformity_metrics(target, normal_rx, rx)
    if oar is not None:
        metrics["organ_at_risk"] = {"region": ORGAN_AT_RISK, **oar_metrics(oar)}
    return DoseResult(plan, target, oar, metrics, region_stats, inside)


def dvh_table(result: DoseResult) -> dict[str, np.ndarray]:
    """Cumulative DVHs (percent volume) of the target and organ at risk on DVH_AXIS_PERCENT."""
    rx = result.metrics["prescription_Gy"]
    axis = DVH_AXIS_PERCENT * rx / 100.0
    table = {"dose_Gy": axis, TARGET: result.target.cumulative(axis)}
    if result.organ_at_risk is not None:
        table[ORGAN_AT_RISK] = result.organ_at_risk.cumulative(axis)
    return table


def metrics_markdown(result: DoseResult, formalism: str) -> str:
    """The plan metrics as a markdown table (doses in Gy, TG-43U1 dose to water)."""
    m, t = result.metrics, result.metrics["target"]
    rx = m["prescription_Gy"]
    strengths = result.plan.strengths_U
    lines = [
        f"Plan: {result.plan.name}; {len(result.plan.seeds)} seeds, S_K {strengths.min():.4g}-"
        f"{strengths.max():.4g} U (total {strengths.sum():.4g} U); TG-43U1 {formalism} formalism, "
        "dose to water, permanent implant (total dose to full decay).",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| prescription | {rx:g} Gy |",
        f"| target ({TARGET}) volume | {t['volume_cc']:.3f} cm^3 |",
        f"| D90 | {t['D90_Gy']:.1f} Gy ({100 * t['D90_Gy'] / rx:.0f} % Rx) |",
        f"| D100 | {t['D100_Gy']:.1f} Gy |",
    ]
    lines += [f"| V{lv} | {t[f'V{lv}_percent']:.1f} % |" for lv in (90, 100, 150, 200)]
    c = m["conformity"]
    lines += [
        f"| coverage index CI = V_T,Rx / V_T | {c['CI']:.3f} |",
        f"| external index EI = V_N,Rx / V_T | {c['EI']:.3f} |",
        f"| homogeneity index HI = (V_T,Rx - V_T,1.5Rx) / V_T,Rx | {c['HI']:.3f} |",
        f"| conformation number COIN | {c['COIN']:.3f} |",
    ]
    if "organ_at_risk" in m:
        o = m["organ_at_risk"]
        lines += [f"| {ORGAN_AT_RISK} {k.removesuffix('_Gy')} | "
                  + (f"{o[k]:.1f} Gy |" if np.isfinite(o[k]) else "n/a (organ smaller) |")
                  for k in ("Dmax_Gy", "D0.1cc_Gy", "D1cc_Gy", "D2cc_Gy")]
    return "\n".join(lines) + "\n"
