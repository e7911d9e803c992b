"""What a study case runs: each job validates its own parameters (a pydantic model, the
study file's [job] table) and turns one case into files in its directory and a typed record of
scalars (spinefe.report.records; its `to_dict` is the case's row of the study table).

- `segment`: healthy, tumour and implanted L4 under the config's load case (the axial load, or
  a motion) on one mesh (linear or nonlinear), with the seeds of the config or of a planner
  pattern (access x density at the config's activity and prescription), and the seeds' dose;
- `rom`: the range of motion of the nonlinear segment under pure moments;
- `optimise`: the Pareto search of seed plans (spinefe.planning.optimisation);
- `clinical_vas`: the paper's VAS table reanalysed from its summary statistics (no mesh).

Every job is collective over the case's communicator and raises the library's errors on every
rank together, so that a failed case is recorded and the others go on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dosimetry import PlanError, SeedModelError
from spinefe.common.errors import ConfigError, MeshingError, PlanningError, SolverError
from spinefe.common.parallel import write_json
from spinefe.common.provenance import provenance
from spinefe.config.plans import config_plan, plan_config
from spinefe.config.sections import SCENARIOS
from spinefe.geometry.layout import segment_layout
from spinefe.geometry.segment import segment_geometry
from spinefe.mechanics.scenarios import change_percent
from spinefe.planning.optimisation import optimise
from spinefe.planning.patterns import ACCESS, plan_pattern
from spinefe.report.records import (
    CHANGES,
    CLINICAL_TESTS,
    LESION_METRICS,
    PLAN_METRICS,
    STRESS_STATS,
    ClinicalScalars,
    OptimiseScalars,
    RomScalars,
    SegmentScalars,
)
from spinefe.study.clinical import between_groups, clinical_markdown, within_group_bound
from spinefe.study.pipelines import range_of_motion, segment_case

#: The errors the library raises on every rank of a communicator together (bad input found by
#: every rank, or a collective failure); a case that raises one is recorded as failed.
COLLECTIVE_ERRORS = (ConfigError, PlanError, PlanningError, SeedModelError, MeshingError,
                     SolverError)


class _Parameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SegmentJob(_Parameters):
    """Parameters of the `segment` job."""

    access: Literal["config", *ACCESS] = Field(
        "config", description="'config': the config's seeds; else a planner pattern's access")
    density: Literal["dense", "sparse"] = Field("dense", description="the pattern's density")
    nonlinear: bool = Field(False, description="the nonlinear segment (ligaments, contact)")
    linear: bool = Field(True, description="with `nonlinear`: the linear model beside it "
                         "(out/linear/, the table of changes from it)")
    dose: bool = Field(True, description="the seeds' dose (TG-43) on the same mesh")
    fields: bool = Field(True, description="write the displacement and stress fields")


class RomJob(_Parameters):
    """Parameters of the `rom` job (the motions, moment and preload are config keys)."""

    scenario: Literal[*SCENARIOS] = "healthy"


class OptimiseJob(_Parameters):
    """Parameters of the `optimise` job (the search's settings are [optimisation] keys)."""

    verify: bool = Field(True, description="re-evaluate the recommended plans with meshed seeds")


class ClinicalVasJob(_Parameters):
    """Two groups' VAS scores (mean, SD, n) at each time point: the paper's Table 2 by
    default (shared/reference/paper.toml [clinical_vas])."""

    groups: tuple[str, str] = ("high_activity", "low_activity")
    n: tuple[int, int] = (41, 55)
    times: tuple[str, ...] = ("pre", "post_9h", "post_16h")
    mean: tuple[tuple[float, float], ...] = ((7.84, 7.81), (6.03, 5.75), (5.85, 5.66))
    sd: tuple[tuple[float, float], ...] = ((0.80, 0.86), (0.97, 0.76), (0.85, 0.81))
    reported_p: tuple[str, ...] = (">0.05", "<0.05", ">0.05")

    @model_validator(mode="after")
    def _consistent(self):
        if min(self.n) < 2:
            raise ValueError(f"n: {list(self.n)}, each group needs at least 2 patients")
        if not len(self.times) == len(self.mean) == len(self.sd) == len(self.reported_p) >= 2:
            raise ValueError("times, mean, sd and reported_p: one entry per time point each, "
                             "at least two time points")
        if min(min(sd) for sd in self.sd) <= 0.0:
            raise ValueError("sd: every standard deviation must be positive")
        return self


@dataclass(frozen=True)
class Job:
    parameters: type[_Parameters]
    run: Callable  # (case, out: Path, comm, cache_dir) -> its record of scalars
    description: str


def run_segment(case, out: Path, comm, cache_dir) -> SegmentScalars:
    """The three scenarios and the dose (`segment_case`: comparison.json/.md, von_mises.png,
    <scenario>/, dose/) with the config's seeds or the pattern's plan; scalars: the paper's
    indicators per scenario and their changes, the dose metrics."""
    p, cfg = case.job, case.config
    if p.access == "config":
        plan = config_plan(cfg)
    else:  # planned before any meshing: a pattern that cannot cover the lesion fails fast
        d = cfg.dosimetry
        plan = plan_pattern(segment_layout(segment_geometry(cfg)), cfg.lesion, cfg.seed_capsule,
                            d, p.access, p.density, d.activity_mCi, d.prescription_Gy)[0]
        cfg = plan_config(cfg, plan)
    result = segment_case(cfg, out, comm, cache_dir, plan=plan, nonlinear=p.nonlinear,
                          fields=p.fields, dose=p.dose and bool(plan.seeds), linear=p.linear)
    records = result.records
    von_mises = {group: {scenario: {stat: record.von_mises_MPa[group][stat]
                                    for stat in STRESS_STATS}
                         for scenario, record in records.items()}
                 for group in SegmentScalars.INDICATORS}
    changes = {group: {change: {stat: change_percent(von_mises[group][new][stat],
                                                     von_mises[group][old][stat])
                                for stat in STRESS_STATS}
                       for change, (new, old) in CHANGES.items()}
               for group in SegmentScalars.SCENARIO_INDICATORS}
    disc = {key: {scenario: value for scenario, record in records.items()
                  if (value := getattr(record, key)) is not None}
            for key in ("nucleus_pressure_MPa", "disc_bulge_mm")}
    lesion, canal = {}, None
    if result.dose is not None:
        metrics = result.dose["metrics"]
        lesion = {k: metrics["target"][k] for k in LESION_METRICS}
        if "organ_at_risk" in metrics:
            canal = metrics["organ_at_risk"]["D0.1cc_Gy"]
    return SegmentScalars(len(plan.seeds), records["healthy"].dofs, records["healthy"].cells,
                          von_mises, changes, **disc, lesion=lesion, canal_D01cc_Gy=canal)


def run_rom(case, out: Path, comm, cache_dir) -> RomScalars:
    """The range of motion (`range_of_motion`: rom/rom.md, rom/summary.json); scalars: degrees
    per motion, the follower path's offset."""
    summary = range_of_motion(case.config, out / "rom", comm, cache_dir, case.job.scenario)
    return RomScalars(summary["rom_deg"], summary["follower_offset_mm"])


def run_optimise(case, out: Path, comm, cache_dir) -> OptimiseScalars:
    """The Pareto search and its files in optimise/ (spinefe.planning.optimisation.optimise; its
    checkpoint makes a rerun of a failed case resume); scalars: evaluations, front size,
    hypervolume and the recommended plans' reinforcement."""
    summary = comm.bcast(optimise(case.config, out / "optimise", comm, cache_dir,
                                  case.job.verify), root=0)
    history = summary["history"][-1] if summary["history"] else {}
    return OptimiseScalars(summary["evaluations"], len(summary["front"]),
                           history.get("hypervolume"),
                           {role: {k: row[k] for k in PLAN_METRICS}
                            for role, row in summary["recommended"].items()})


def run_clinical_vas(case, out: Path, comm, cache_dir) -> ClinicalScalars:
    """Welch and Student t-tests and effect sizes per time point (clinical.md); scalars: the
    p-values and Hedges' g."""
    p = case.job
    rows = [between_groups(t, m, s, p.n, reported)
            for t, m, s, reported in zip(p.times, p.mean, p.sd, p.reported_p, strict=True)]
    within = {group: {time: within_group_bound((p.mean[0][g], p.mean[i][g]),
                                               (p.sd[0][g], p.sd[i][g]), p.n[g])
                      for i, time in enumerate(p.times[1:], start=1)}
              for g, group in enumerate(p.groups)}
    record = provenance(comm, case.config.hash())
    write_json(comm, {"groups": p.groups, "between": rows, "within": within,
                      "provenance": record}, out / "clinical.json")
    if comm.rank == 0:
        (out / "clinical.md").write_text(clinical_markdown(p.groups, p.n, rows, within))
    return ClinicalScalars({row["time"]: {k: row[k] for k in CLINICAL_TESTS} for row in rows})


JOBS: dict[str, Job] = {
    "segment": Job(SegmentJob, run_segment, "healthy / tumour / implanted L4 and the dose"),
    "rom": Job(RomJob, run_rom, "range of motion of the nonlinear segment"),
    "optimise": Job(OptimiseJob, run_optimise, "Pareto search of seed plans"),
    "clinical_vas": Job(ClinicalVasJob, run_clinical_vas, "VAS reanalysis from summary data"),
}
