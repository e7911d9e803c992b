"""Healthy, tumour and implanted L4 on one mesh, and their comparison with the reference paper.

All scenarios are solved on the same mesh (the lesion and seeds are always meshed; only the
materials change), so that differences between scenarios are physics, not mesh noise.
"""

from __future__ import annotations

import dataclasses
import logging
from functools import partial
from pathlib import Path

from dolfinx import fem

from dosimetry import Plan
from spinefe.common.parallel import write_json
from spinefe.common.provenance import provenance, stamp_xdmf
from spinefe.common.regions import CANCELLOUS, CORTICAL_ENDPLATES, SIDES, tip_pair
from spinefe.common.trends import PAPER_TRENDS
from spinefe.config.sections import (
    SCENARIOS,
    Lesion,
    Materials,
    Mechanics,
    Nonlinear,
    SeedCapsule,
)
from spinefe.geometry.mesh import Model
from spinefe.mechanics.materials import material_fields
from spinefe.mechanics.nonlinear import PathPoint, newton_summary
from spinefe.mechanics.segment import solve_segment, solve_segment_nonlinear
from spinefe.mechanics.stress import summarize, write_fields

log = logging.getLogger(__name__)

#: Reference paper, section 3.2 / Figure 3 (shared/reference/paper.toml [peak_von_mises_MPa]):
#: peak von Mises stress (MPa) under 500 N, per scenario.
PAPER_PEAK_MPA = {
    CORTICAL_ENDPLATES: {"healthy": 15.00, "tumour": 20.92, "implanted": 17.52},
    CANCELLOUS: {"healthy": 0.59, "tumour": 0.67, "implanted": 2.40},
}
INDICATOR_LABELS = {
    CORTICAL_ENDPLATES: "L4 cortical shell + endplates",
    CANCELLOUS: "L4 cancellous (trabecular + lesion)",
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScenarioRecord:
    """One scenario's result (its summary.json): the load balance (N), the solve, the disc's
    indicators (where the model has a disc), von Mises statistics per region and group (MPa,
    spinefe.mechanics.stress.summarize), the nonlinear model's state (nonlinear solves), the
    statistics of spatially varying moduli (where a material varies), the provenance and the
    fields' files (where written)."""

    scenario: str
    reaction_N: float
    applied_N: float
    reaction_relative_error: float
    reaction_vector_N: list[float]
    dofs: int
    iterations: int
    solver: str
    petsc_options: dict[str, object]
    converged_reason: str
    strain_energy_mJ: float
    max_displacement_mm: float
    nucleus_pressure_MPa: float | None = None
    disc_bulge_mm: float | None = None
    von_mises_MPa: dict[str, dict[str, float]]
    von_mises_note: str
    timings_seconds: dict[str, float]
    cells: int
    mpi_size: int
    nonlinear: dict | None = None
    material_fields: dict | None = None  # statistics of varying moduli (MaterialFields.summary)
    provenance: dict
    files: list[str] | None = None

    def to_dict(self) -> dict:
        """The record as summary.json holds it: the fields in order, those unset left out."""
        return {f.name: v for f in dataclasses.fields(self)
                if (v := getattr(self, f.name)) is not None or f.default is not None}


def run_scenario(model: Model, scenario: str, outdir: Path, *, materials: Materials,
                 lesion: Lesion, mechanics: Mechanics, seeds: Plan, capsule: SeedCapsule,
                 config_hash: str, nonlinear: Nonlinear | None = None, fields: bool = True,
                 guide: list[PathPoint] = ()
                 ) -> tuple[ScenarioRecord, fem.Function, list[PathPoint]]:
    """Solve one scenario under the load case of `mechanics` (linear, or the `nonlinear`
    model, along the load path of `guide` if given), write DIR/summary.json (and fields);
    returns (record, DG0 von Mises, the nonlinear solve's path: a guide for the next scenario).

    `lesion` and `seeds` (the mesh's capsules) place the tumour's seed cells and the seed band;
    `config_hash` goes into the provenance."""
    moduli = material_fields(model, materials, lesion, scenario)
    if nonlinear is not None:
        sol, pairs = solve_segment_nonlinear(model, moduli, mechanics, nonlinear, guide=guide)
    else:
        sol, pairs = solve_segment(model, moduli, mechanics), None
    record, vm = summarize(sol, model, scenario, mechanics=mechanics, seeds=seeds,
                           capsule=capsule)
    if nonlinear is not None:
        record["nonlinear"] = nonlinear_record(sol, pairs, record["applied_N"], model.comm)
    if moduli.summary:
        record["material_fields"] = moduli.summary
    record["provenance"] = provenance(model.comm, config_hash)
    if fields:
        record["files"] = [p.name for p in write_fields(sol, vm, outdir)]
        stamp_xdmf(model.comm, outdir / "fields.xdmf", record["provenance"])
    result = ScenarioRecord(**record)
    write_json(model.comm, result.to_dict(), outdir / "summary.json")
    return result, vm, sol.path if nonlinear is not None else []


def nonlinear_record(sol, pairs: dict, applied_N: float, comm) -> dict:
    """Newton steps, ligament and contact states, the facet joints' share of the axial load and
    the force of the L4 articular tips on the L5 lamina (N)."""
    pairs = comm.bcast(pairs, root=0)
    contacts = pairs.get("contacts", {})
    facet_force = sum(contacts[side]["contact_force_N"] for side in SIDES if side in contacts)
    return {
        "newton": sol.steps,
        **newton_summary(sol.steps),
        "facet_force_N": facet_force,
        "facet_force_share": facet_force / applied_N if applied_N else 0.0,
        "tip_force_N": sum(contacts[tip_pair(side)]["contact_force_N"] for side in SIDES
                           if tip_pair(side) in contacts),
        "ligament_force_N": sum(v["force_N"] for v in pairs.get("ligaments", {}).values()),
        **pairs,
    }


def nonlinear_markdown(records: dict[str, ScenarioRecord],
                       linear: dict[str, ScenarioRecord]) -> str:
    """Facet and articular tip forces, ligament forces, and every indicator's change from the
    linear model."""
    lines = ["| scenario | facet force (N) | facet share of load | articular tips (N) "
             "| ligament force (N) | active ligaments | Newton its, max per step / per solve |",
             "|---|---|---|---|---|---|---|"]
    for s, rec in records.items():
        nl = rec.nonlinear
        active = ", ".join(k for k, v in nl.get("ligaments", {}).items() if v["state"] == "active")
        lines.append(f"| {s} | {nl['facet_force_N']:.1f} | {100 * nl['facet_force_share']:.1f} % "
                     f"| {nl['tip_force_N']:.1f} | {nl['ligament_force_N']:.1f} | {active or '-'} "
                     f"| {nl['newton_iterations_max_per_step']} / "
                     f"{nl['newton_iterations_max_per_solve']} |")
    lines += ["", "| indicator | statistic | " + " | ".join(
        f"{s}: linear / nonlinear" for s in records) + " |", "|---|---|" + "---|" * len(records)]
    for group in PAPER_PEAK_MPA:
        for stat in ("max", "p99"):
            cells = []
            for s in records:
                a = linear[s].von_mises_MPa[group][stat]
                b = records[s].von_mises_MPa[group][stat]
                cells.append(f"{a:.3g} / {b:.3g} ({_change(b, a)})")
            lines.append(f"| {INDICATOR_LABELS[group]} | {stat} | " + " | ".join(cells) + " |")
    for key, label in (("nucleus_pressure_MPa", "nucleus pressure (MPa)"),
                       ("max_displacement_mm", "max displacement (mm)")):
        pairs = [(getattr(linear[s], key), getattr(records[s], key)) for s in records]
        cells = [f"{a:.3g} / {b:.3g} ({_change(b, a)})" for a, b in pairs]
        lines.append(f"| {label} | mean / max | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def load_description(mechanics: Mechanics) -> str:
    """The load case in words, e.g. 'flexion, 7.5 N m with a 500 N follower preload'."""
    m = mechanics
    if m.load_case == "axial":
        return f"the axial load of {m.load_N:g} N"
    others = "(the paper's peaks are for its axial load only)"
    if m.load_case == "standing":
        return f"standing, a {m.load_N:g} N follower load {others}"
    return (f"{m.load_case.replace('_', ' ')}, {m.moment_Nm:g} N m with a {m.load_N:g} N "
            f"{m.preload} preload {others}")


def change_percent(new: float, old: float) -> float:
    """Relative change from `old` to `new` (%)."""
    return 100.0 * (new - old) / old


def _change(new: float, old: float) -> str:
    return f"{change_percent(new, old):+.1f} %"


def comparison(von_mises: dict[str, dict], paper: bool = True) -> dict:
    """Paper indicators per scenario (ours: max and p99, from the von Mises statistics per
    scenario, `ScenarioRecord.von_mises_MPa`; the paper's peaks when `paper`, i.e. under its
    axial load) and the paper's trends, as a record."""
    table = {}
    for group, peaks in PAPER_PEAK_MPA.items():
        table[group] = {
            s: {
                "max": von_mises[s][group]["max"],
                "p99": von_mises[s][group]["p99"],
                **({"paper_peak": peaks[s]} if paper else {}),
            }
            for s in SCENARIOS
            if s in von_mises
        }
    trends = {}
    if set(SCENARIOS) <= set(von_mises):
        for stat in ("max", "p99"):
            trends[stat] = {t.claim: t.holds(table[t.group][t.new][stat]
                                             - table[t.group][t.old][stat])
                            for t in PAPER_TRENDS}
    return {"indicators": table, "trends_hold": trends}


def comparison_markdown(comp: dict, load: str = "the axial load") -> str:
    """The comparison as a Markdown table with percentage changes (tumour vs healthy, implanted
    vs tumour), ours beside the paper's (where the record has them) under `load`."""
    lines = [
        "| indicator | statistic | healthy | tumour | implanted | tumour vs healthy "
        "| implanted vs tumour |",
        "|---|---|---|---|---|---|---|",
    ]
    for group, rows in comp["indicators"].items():
        if set(SCENARIOS) - set(rows):
            continue
        for stat, label in (
            ("max", "ours, max"),
            ("p99", "ours, p99"),
            ("paper_peak", "paper, peak"),
        ):
            if stat not in rows[SCENARIOS[0]]:
                continue
            h, t, i = (rows[s][stat] for s in SCENARIOS)
            lines.append(
                f"| {INDICATOR_LABELS[group]} | {label} | {h:.3g} | {t:.3g} | {i:.3g} "
                f"| {_change(t, h)} | {_change(i, t)} |"
            )
    lines.append("")
    # A blank line before the list: Python-Markdown (the report's HTML) only starts a list
    # after one, else the items run on in the paragraph.
    lines += [f"Von Mises stress in MPa under {load}. Trends of the paper:", ""]
    for stat, checks in comp["trends_hold"].items():
        for claim, holds in checks.items():
            lines.append(f"- {claim} ({stat}): {'yes' if holds else 'NO'}")
    return "\n".join(lines) + "\n"


def compare_scenarios(model: Model, out: Path, *, materials: Materials, lesion: Lesion,
                      mechanics: Mechanics, seeds: Plan, capsule: SeedCapsule, config_hash: str,
                      nonlinear: Nonlinear | None = None, fields: bool = True,
                      linear: bool = True) -> tuple[dict[str, ScenarioRecord], dict, dict]:
    """Healthy, tumour and implanted on the load-bearing `model` into out/<scenario>/ and the
    comparison with the paper (out/comparison.json and .md; with `nonlinear` and `linear`, also
    the linear model on the same mesh under out/linear/ and the change, unless a material has
    no linear form: a fibre-reinforced annulus); returns (records, comparison,
    von Mises per scenario on the owned cells, MPa); the arguments as `run_scenario`'s;
    collective."""
    n = model.mesh.topology.index_map(3).size_local
    run = partial(run_scenario, model, materials=materials, lesion=lesion, mechanics=mechanics,
                  seeds=seeds, capsule=capsule, config_hash=config_hash)
    records, maps, linear_records = {}, {}, {}
    finite = materials.finite_strain_keys()
    wanted = linear and nonlinear is not None  # the linear companion
    if wanted and finite:
        log.info("no linear companion of the nonlinear comparison: %s has no linear form",
                 ", ".join(finite))
    with_linear = wanted and not finite
    guide = []
    for scenario in SCENARIOS:
        # Each nonlinear scenario follows the load path of the one before (load_steps): the
        # scenarios differ in a few regions' moduli, so its states are close first guesses.
        records[scenario], vm, guide = run(scenario, out / scenario, fields=fields,
                                           nonlinear=nonlinear, guide=guide)
        maps[scenario] = vm.x.array[:n].copy()
        if with_linear:
            linear_records[scenario], *_ = run(scenario, out / "linear" / scenario,
                                               fields=False)
    axial = mechanics.load_case == "axial"
    comp = comparison({s: r.von_mises_MPa for s, r in records.items()}, paper=axial)
    comp["provenance"] = provenance(model.comm, config_hash)
    comp["model"] = "nonlinear" if nonlinear is not None else "linear"
    comp["load_case"] = mechanics.load_case
    table = comparison_markdown(comp, load_description(mechanics))
    if with_linear:
        comp["linear"] = comparison({s: r.von_mises_MPa for s, r in linear_records.items()},
                                    paper=axial)
        table += "\n" + nonlinear_markdown(records, linear_records)
    write_json(model.comm, comp, out / "comparison.json")
    if model.comm.rank == 0:
        (out / "comparison.md").write_text(table)
    return records, comp, maps
