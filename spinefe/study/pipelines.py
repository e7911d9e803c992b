"""The pipelines that a command and a study job share: a segment's configuration in, the
segment's files out. Each is composed here once; `spinefe mesh|solve|compare|dose|rom` call one
of them and the jobs of spinefe.study.jobs call the same. They write figures (spinefe.report),
hence this layer; every one is collective over `comm`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dosimetry import Plan
from spinefe.common.parallel import write_json
from spinefe.common.provenance import provenance, stamp_xdmf
from spinefe.config.plans import config_plan
from spinefe.config.sections import CREEP_HOURS, SCENARIOS, Config
from spinefe.dose.mesh_dose import DoseResult, evaluate_dose
from spinefe.geometry.mesh import Model, build_mesh, mesh_summary, write_mesh_xdmf
from spinefe.geometry.segment import segment_geometry
from spinefe.mechanics.creep import run_creep_scenarios
from spinefe.mechanics.disc_consolidation import MODEL as CONSOLIDATION_MODEL
from spinefe.mechanics.disc_consolidation import poroelastic_description, run_consolidation_creep
from spinefe.mechanics.rom import run_rom
from spinefe.mechanics.scenarios import ScenarioRecord, compare_scenarios, run_scenario
from spinefe.mechanics.segment import load_bearing
from spinefe.report.dose_files import write_dose_results
from spinefe.report.figures import render_segment, render_von_mises

log = logging.getLogger(__name__)


def open_segment(cfg: Config, out: Path, comm, cache_dir: Path | None = None) -> Model:
    """The directory `out` (made by rank 0) and the segment of `cfg` meshed (or read from the
    mesh cache `cache_dir`; None meshes in memory)."""
    if comm.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    return build_mesh(segment_geometry(cfg), comm, cache_dir)


def mesh_segment(cfg: Config, out: Path, comm, cache_dir: Path | None = None,
                 figure: bool = True) -> dict:
    """The meshed segment: out/mesh.xdmf (region and surface tags, provenance), out/summary.json
    (the mesh summary, the config) and out/segment.png (`figure`); returns the summary."""
    model = open_segment(cfg, out, comm, cache_dir)
    summary = mesh_summary(model)
    summary["config"] = cfg.model_dump(mode="json")
    summary["provenance"] = provenance(comm, cfg.hash())
    write_mesh_xdmf(model, out / "mesh.xdmf")
    stamp_xdmf(comm, out / "mesh.xdmf", summary["provenance"])
    if figure:
        render_segment(model, out / "segment.png")
    write_json(comm, summary, out / "summary.json")
    return summary


def _scenario_inputs(cfg: Config) -> dict:
    """The sections `run_scenario` and `compare_scenarios` take, the config's seeds (the
    meshed capsules) and its hash."""
    return {"materials": cfg.materials, "lesion": cfg.lesion, "mechanics": cfg.mechanics,
            "seeds": config_plan(cfg), "capsule": cfg.seed_capsule, "config_hash": cfg.hash()}


def solve_scenario(cfg: Config, out: Path, comm, cache_dir: Path | None = None,
                   figure: bool = True) -> ScenarioRecord:
    """The linear segment in the scenario cfg.mechanics.scenario: out/summary.json, the fields,
    and out/von_mises.png (`figure`); returns the scenario's record."""
    model = load_bearing(open_segment(cfg, out, comm, cache_dir))
    scenario = cfg.mechanics.scenario
    record, vm, _ = run_scenario(model, scenario, out, **_scenario_inputs(cfg))
    if figure:
        n = model.mesh.topology.index_map(3).size_local
        render_von_mises(model, {scenario: vm.x.array[:n]}, out / "von_mises.png")
    return record


@dataclass(frozen=True)
class SegmentResult:
    """The three scenarios' records (by scenario), their comparison with the paper, and the
    dose summary (out/dose/summary.json; None without the dose)."""

    records: dict[str, ScenarioRecord]
    comparison: dict
    dose: dict | None


def segment_case(cfg: Config, out: Path, comm, cache_dir: Path | None = None, *,
                 plan: Plan | None = None, nonlinear: bool = False, fields: bool = True,
                 dose: bool = True, linear: bool = True) -> SegmentResult:
    """Healthy, tumour and implanted L4 on one mesh (out/<scenario>/, out/comparison.json and
    .md, out/von_mises.png on one colour scale; `nonlinear`: ligaments, contact and the
    neo-Hookean disc, and with `linear` the linear model beside it) and, with `dose`, the dose
    of `plan` (default: the config's seeds) on the same mesh in out/dose/ (`seed_dose`'s
    files)."""
    model = open_segment(cfg, out, comm, cache_dir)
    bearing = load_bearing(model)
    records, comparison, maps = compare_scenarios(
        bearing, out, **_scenario_inputs(cfg), nonlinear=cfg.nonlinear if nonlinear else None,
        fields=fields, linear=linear)
    render_von_mises(bearing, maps, out / "von_mises.png")
    summary = None
    if dose:
        summary = _dose(model, cfg, config_plan(cfg) if plan is None else plan, out / "dose")[1]
    return SegmentResult(records, comparison, summary)


def _dose(model: Model, cfg: Config, plan: Plan, out: Path,
          figures: bool = True) -> tuple[DoseResult, dict]:
    """The dose of `plan` on `model` and its files in `out` (write_dose_results): the result
    and the summary."""
    result = evaluate_dose(model, plan, cfg.dosimetry, cfg.seed_capsule)
    return result, write_dose_results(model, result, out, cfg.dosimetry, cfg.lesion, cfg.hash(),
                                      figures)


def seed_dose(cfg: Config, out: Path, comm, cache_dir: Path | None = None,
              plan: Plan | None = None, figures: bool = True) -> DoseResult:
    """The TG-43 dose of `plan` (default: the config's seeds) on the meshed segment: out/
    summary.json, metrics.md, dvh.csv, plan.toml, dose.xdmf, dicom/ and the DVH and isodose
    pictures (`figures`); the mesh keeps the config's capsules."""
    model = open_segment(cfg, out, comm, cache_dir)
    meshed = config_plan(cfg)
    if plan is None:
        plan = meshed
    elif (meshed.positions_mm.shape != plan.positions_mm.shape
          or not np.allclose(meshed.positions_mm, plan.positions_mm, atol=1e-6)):
        log.warning("the plan's seeds differ from the config's meshed capsules: the meshed "
                    "capsule cells stay excluded from the dose statistics, the plan's own "
                    "capsules only where their sample points fall inside them")
    return _dose(model, cfg, plan, out, figures)[0]


def segment_creep(cfg: Config, out: Path, comm, cache_dir: Path | None = None,
                  scenarios=SCENARIOS, hours=CREEP_HOURS) -> dict:
    """The segment's creep under the load of cfg.mechanics, held for `hours`, per scenario:
    out/summary.json and out/creep.md (spinefe.mechanics.creep). With a poroelastic disc, the
    consolidation of the linear segment (spinefe.mechanics.disc_consolidation); else the
    nonlinear segment with its relaxing materials."""
    model = load_bearing(open_segment(cfg, out, comm, cache_dir))
    if cfg.materials.poroelastic_keys():
        return run_creep_scenarios(model, out, scenarios, hours=hours,
                                   runner=run_consolidation_creep, model_note=CONSOLIDATION_MODEL,
                                   time_dependent=poroelastic_description(cfg.materials),
                                   **_scenario_inputs(cfg))
    return run_creep_scenarios(model, out, scenarios, hours=hours,
                               nonlinear=cfg.nonlinear, **_scenario_inputs(cfg))


def range_of_motion(cfg: Config, out: Path, comm, cache_dir: Path | None = None,
                    scenario: str | None = None) -> dict:
    """The nonlinear segment under the pure moments of cfg.rom: out/summary.json and out/rom.md
    (spinefe.mechanics.rom.run_rom; `scenario` default cfg.mechanics.scenario); returns the
    summary."""
    return run_rom(load_bearing(open_segment(cfg, out, comm, cache_dir)), out,
                   scenario or cfg.mechanics.scenario, materials=cfg.materials, lesion=cfg.lesion,
                   mechanics=cfg.mechanics, nonlinear=cfg.nonlinear, rom=cfg.rom,
                   config_hash=cfg.hash())
