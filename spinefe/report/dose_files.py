"""The files of a dose result: summary.json, metrics.md, dvh.csv, plan.toml, dose.xdmf, the DVH
and isodose pictures, and the DICOM RT Plan, RT Dose and RT Structure Set."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dosimetry import Plan, write_plan
from dosimetry.dicom import Study, export_plan
from spinefe.common import regions as R
from spinefe.common.parallel import write_json
from spinefe.common.provenance import provenance, stamp_xdmf
from spinefe.config.sections import Dosimetry, Lesion
from spinefe.dose.mesh_dose import (
    ORGAN_AT_RISK,
    TARGET,
    DoseResult,
    dvh_table,
    metrics_markdown,
    write_dose_fields,
)
from spinefe.geometry.mesh import Model
from spinefe.report.figures import gather_grid, render_dvh, render_isodose


def write_dose_results(model: Model, result: DoseResult, out: Path, dosimetry: Dosimetry,
                       lesion: Lesion, config_hash: str, figures: bool = True) -> dict:
    """summary.json, metrics.md, dvh.csv, plan.toml, dose.xdmf (P1 and DG0 dose), dicom/
    (`export_dicom`) and the isodose and DVH pictures in `out`, with the settings of
    `dosimetry` and the provenance of the configuration `config_hash`; collective. Returns the
    summary."""
    comm = model.comm
    d = dosimetry
    table = dvh_table(result)
    summary = {
        "plan": {"name": result.plan.name, "seeds": len(result.plan.seeds),
                 "total_strength_U": result.plan.total_strength_U,
                 "seed_model": sorted({s.model for s in result.plan.seeds})},
        "formalism": d.formalism,
        "dose_medium": "water (TG-43U1)",
        "sampling": {"degree": d.sampling_degree, "near_seed_degree": d.near_seed_degree,
                     "near_seed_mm": d.near_seed_mm,
                     "samples_inside_capsules_excluded": result.inside_capsule_samples},
        "metrics": _json_numbers(result.metrics),
        "regions": _json_numbers(result.region_stats),
        "provenance": provenance(comm, config_hash),
    }
    stamp_xdmf(comm, write_dose_fields(model, result.plan, d.formalism, out / "dose.xdmf"),
               summary["provenance"])
    write_json(comm, summary, out / "summary.json")
    grid, names = gather_grid(model)
    # Rank 0 alone from here on: no collective call may follow (an error here must not leave the
    # other ranks waiting).
    if comm.rank == 0:
        (out / "metrics.md").write_text(metrics_markdown(result, d.formalism))
        header = ",".join(["dose_Gy", *[f"{k}_percent" for k in table if k != "dose_Gy"]])
        np.savetxt(out / "dvh.csv", np.column_stack(list(table.values())), delimiter=",",
                   header=header, comments="", fmt="%.6g")
        write_plan(result.plan, out / "plan.toml")
        export_dicom(grid, names, result.plan, out / "dicom", d, lesion, summary["provenance"])
        if figures:
            render_dvh(table, d.prescription_Gy, out / "dvh.png", title=result.plan.name)
            render_isodose(grid, names, result.plan, d.prescription_Gy, lesion.centre_mm,
                           out / "isodose.png", d.formalism, d.grid_spacing_mm)
    return summary


def _json_numbers(data):
    """NaN (an organ smaller than 2 cm^3 has no D2cc) as null: JSON has no NaN."""
    if isinstance(data, dict):
        return {k: _json_numbers(v) for k, v in data.items()}
    if isinstance(data, float) and not np.isfinite(data):
        return None
    return data


def region_contours(grid, names: list[str], region: str, z_planes_mm) -> list[np.ndarray]:
    """Closed planar contours (n, 3) of a region of the gathered mesh at the given z planes."""
    surface = grid.extract_cells(grid.cell_data["region"] == names.index(region))
    surface = surface.extract_surface(algorithm=None)
    contours = []
    for z in z_planes_mm:
        cut = surface.slice(normal="z", origin=(0.0, 0.0, float(z)))
        if cut.n_points == 0:
            continue
        strips = cut.strip(join=True)
        lines, k = strips.lines, 0
        while k < len(lines):
            ids = lines[k + 1 : k + 1 + lines[k]]
            k += lines[k] + 1
            if len(ids) > 3 and ids[0] == ids[-1]:  # closed loops only
                contours.append(np.asarray(strips.points[ids[:-1]], float))
    return contours


def export_dicom(grid, names: list[str], plan: Plan, out: Path, dosimetry: Dosimetry,
                 lesion: Lesion, record: dict | None = None) -> dict:
    """RT Plan, RT Dose and RT Structure Set (lesion, canal) of `plan` in `out`, at the
    prescription, formalism and grid spacing of `dosimetry`; rank 0 only.

    The dose grid covers the lesion with a 15 mm margin and reaches back to the canal's posterior
    wall; the structures are contoured on the grid's axial planes, so the canal ROI is the part
    of the canal within the grid's height.
    """
    d = dosimetry
    centre, radii = np.asarray(lesion.centre_mm), np.asarray(lesion.radii_mm)
    lower, upper = centre - radii - 15.0, centre + radii + 15.0
    if R.CANAL in names:
        canal = grid.extract_cells(grid.cell_data["region"] == names.index(R.CANAL))
        upper[1] = max(upper[1], canal.bounds[3] + 1.0)
    z_planes = np.arange(lower[2], upper[2] + 1e-9, d.grid_spacing_mm)
    rois = {name: region_contours(grid, names, name, z_planes)
            for name in (TARGET, ORGAN_AT_RISK) if name in names}
    return export_plan(plan, out, rois, lower, upper, d.grid_spacing_mm, d.prescription_Gy,
                       study=Study(provenance=record), formalism=d.formalism,
                       interpreted_types={TARGET: "GTV", ORGAN_AT_RISK: "ORGAN"})
