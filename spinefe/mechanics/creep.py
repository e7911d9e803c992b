"""The segment's creep under a sustained load: healthy, tumour and implanted over hours.

The load of `mechanics` (the axial 500 N, or a motion's moment with it) is applied at t = 0 and
held. Two models: the nonlinear segment (ligaments, facet contact, hyperelastic disc) whose
materials with a Prony series (`relaxation`, mechanics.laws.prony) relax (`run_creep`, here),
or the linear segment with a poroelastic disc (mechanics.disc_consolidation). At each time the
record (`creep_point`) holds the axial displacement of L4.superior (its mean along the load,
mm: the segment's creep), the nucleus pressure and the von Mises statistics of the paper's
indicators. The question the paper's clinical timing asks (relief within 6-24 h): does the
seeds' effect on the cortical and endplate stress change with time? `seed_effect` answers it
from the tumour and implanted series.
"""

from __future__ import annotations

import logging
import resource
import time
from pathlib import Path

import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI

from dosimetry import Plan
from spinefe.common import regions as R
from spinefe.common.parallel import write_json
from spinefe.common.provenance import provenance
from spinefe.config.sections import (
    CREEP_HOURS,
    Lesion,
    Materials,
    Mechanics,
    Nonlinear,
    SeedCapsule,
)
from spinefe.geometry.mesh import Model
from spinefe.mechanics.materials import material_fields
from spinefe.mechanics.nonlinear import NewtonOptions, solve_creep
from spinefe.mechanics.scenarios import load_description
from spinefe.mechanics.segment import (
    segment_load_case,
    segment_pairs,
    solver_options,
    with_hyperelastic_regions,
)
from spinefe.mechanics.stress import summarize

log = logging.getLogger(__name__)

INDICATORS = (R.CORTICAL_ENDPLATES, R.CANCELLOUS)


def axial_displacement_mm(model: Model, u: fem.Function, direction: np.ndarray) -> float:
    """Mean displacement of L4.superior along the unit load `direction` (mm); collective."""
    mesh = model.mesh
    ds = ufl.Measure("ds", domain=mesh, subdomain_data=model.facet_tags)
    tag = model.tag(R.L4_SUPERIOR)
    d = fem.Constant(mesh, np.asarray(direction, float))
    num = fem.assemble_scalar(fem.form(ufl.dot(u, d) * ds(tag)))
    area = fem.assemble_scalar(fem.form(1.0 * ds(tag)))
    return mesh.comm.allreduce(num, op=MPI.SUM) / mesh.comm.allreduce(area, op=MPI.SUM)


def run_creep(model: Model, scenario: str, *, materials: Materials, lesion: Lesion,
              mechanics: Mechanics, nonlinear: Nonlinear, seeds: Plan, capsule: SeedCapsule,
              hours=CREEP_HOURS) -> list[dict]:
    """The creep of one scenario under the held load of `mechanics`: a record per time (0 and
    `hours`); collective."""
    fields = with_hyperelastic_regions(model, material_fields(model, materials, lesion,
                                                              scenario),
                                       nonlinear.hyperelastic_regions)
    pairs = segment_pairs(model, nonlinear)
    direction = np.asarray(mechanics.load_direction, float)
    direction /= np.linalg.norm(direction)
    series = []

    def observe(t_s: float, sol) -> None:
        record, _ = summarize(sol, model, scenario, mechanics=mechanics, seeds=seeds,
                              capsule=capsule)
        point = creep_point(t_s, record, axial_displacement_mm(model, sol.u, direction),
                            record.get("nucleus_pressure_MPa"), newton_iterations=sol.iterations)
        log.info("creep %s, t = %.3g h: axial displacement %.4f mm", scenario,
                 point["time_h"], point["axial_displacement_mm"])
        series.append(point)

    nl = nonlinear
    solve_creep(fields, segment_load_case(model, mechanics), np.asarray(hours) * 3600.0,
                observe, pairs.sets, mechanics.nearly_incompressible_nu,
                NewtonOptions(steps=nl.load_steps, line_search=nl.line_search,
                              rtol=nl.newton_rtol, max_iterations=nl.newton_max_iterations,
                              linear=solver_options(mechanics)))
    return series


def creep_point(t_s: float, record: dict, axial_displacement: float,
                nucleus_pressure: float | None, **extra) -> dict:
    """The record at time t_s (s) from a solve's summary record (mechanics.stress.summarize):
    time (h), L4's axial displacement (mm), nucleus pressure (MPa), the indicators' von Mises
    statistics, and `extra`."""
    return {"time_h": t_s / 3600.0, "axial_displacement_mm": axial_displacement,
            "nucleus_pressure_MPa": nucleus_pressure,
            "von_mises_MPa": {g: record["von_mises_MPa"][g] for g in INDICATORS
                              if g in record["von_mises_MPa"]},
            **extra}


def seed_effect(tumour: list[dict], implanted: list[dict]) -> list[dict]:
    """Per time: the change of each indicator's p99 and max from tumour to implanted (%)."""
    out = []
    for t, i in zip(tumour, implanted, strict=True):
        row = {"time_h": t["time_h"]}
        for group in INDICATORS:
            for stat in ("p99", "max"):
                a, b = t["von_mises_MPa"][group][stat], i["von_mises_MPa"][group][stat]
                row[f"{group}.{stat}_change_pct"] = 100.0 * (b - a) / a
        out.append(row)
    return out


def creep_markdown(summary: dict) -> str:
    """The creep table per scenario and the seeds' effect over time."""
    lines = [f"Creep under {summary['load']} held from t = 0; {summary['model']}; "
             "time-dependent materials: " + ", ".join(summary["time_dependent"]) + ".", ""]
    lines += ["| time (h) | " + " | ".join(f"{s}: displacement (mm) / nucleus (MPa) / cortex "
                                            f"p99 (MPa)" for s in summary["scenarios"]) + " |",
              "|---|" + "---|" * len(summary["scenarios"])]
    series = list(summary["scenarios"].values())
    for k, first in enumerate(series[0]):
        cells = []
        for s in series:
            p = s[k]
            pressure = p["nucleus_pressure_MPa"]
            cells.append(f"{p['axial_displacement_mm']:.4f} / "
                         f"{'-' if pressure is None else f'{pressure:.3f}'} / "
                         f"{p['von_mises_MPa'][R.CORTICAL_ENDPLATES]['p99']:.3f}")
        lines.append(f"| {first['time_h']:.3g} | " + " | ".join(cells) + " |")
    if summary.get("seed_effect"):
        keys = [k for k in summary["seed_effect"][0] if k != "time_h"]
        lines += ["", "Seeds' effect (implanted against tumour, %):", "",
                  "| time (h) | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        for row in summary["seed_effect"]:
            lines.append(f"| {row['time_h']:.3g} | "
                         + " | ".join(f"{row[k]:+.2f}" for k in keys) + " |")
    return "\n".join(lines) + "\n"


#: The model of `run_creep`, for the outputs.
NONLINEAR_MODEL = "nonlinear segment (ligaments, facet contact, hyperelastic disc)"


def run_creep_scenarios(model: Model, outdir: Path, scenarios, *, config_hash: str,
                        hours=CREEP_HOURS, runner=None, model_note: str = NONLINEAR_MODEL,
                        time_dependent: list[str] | None = None, **inputs) -> dict:
    """`runner` (default `run_creep`; or mechanics.disc_consolidation.run_consolidation_creep,
    with its `model_note` and `time_dependent` descriptions) for each scenario, timed, with
    each rank's peak memory; writes DIR/summary.json and DIR/creep.md; collective."""
    materials = inputs["materials"]
    runner = runner or run_creep
    results, seconds = {}, {}
    for s in scenarios:
        t0 = time.perf_counter()
        results[s] = runner(model, s, hours=hours, **inputs)
        seconds[s] = round(time.perf_counter() - t0, 1)
    if time_dependent is None:
        time_dependent = [f"{n} (g = {list(m.relaxation.g)}, tau_s = {list(m.relaxation.tau_s)})"
                          for n, m in materials if m.relaxation is not None]
    peak_MiB = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kiB
    summary = {
        "load": load_description(inputs["mechanics"]),
        "load_N": inputs["mechanics"].load_N,
        "hours": list(hours),
        "model": model_note,
        "time_dependent": time_dependent,
        "scenarios": results,
        "seconds_per_scenario": seconds,
        "peak_memory_MiB_per_rank": [round(m, 1) for m in model.comm.allgather(peak_MiB)],
        "seed_effect": (seed_effect(results["tumour"], results["implanted"])
                        if {"tumour", "implanted"} <= set(results) else None),
        "mpi_size": model.comm.size,
        "provenance": provenance(model.comm, config_hash),
    }
    write_json(model.comm, summary, outdir / "summary.json")
    if model.comm.rank == 0:
        (outdir / "creep.md").write_text(creep_markdown(summary))
    return summary
