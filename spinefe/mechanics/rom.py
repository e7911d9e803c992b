"""Range of motion (ROM) of L4 on L5 under pure moments, and its validation against the literature.

Each motion applies the configured moment (default 7.5 N m) about one anatomical axis on
`L4.superior` as a traction with no net force (mechanics.loads), with `L5.inferior` clamped and the
full nonlinear model (ligaments, facet contact, neo-Hookean disc). The ROM of a motion is the
rotation of L4 relative to L5, each from a least-squares rigid fit of the vertebra's nodes
(mechanics.kinematics), projected on the motion's axis: one direction, in degrees, positive in the
direction of the motion. The full rotation vector (coupled motion) is reported as well. Both are
measured from the neutral posture: the meshed geometry settled under the preload and the
pre-tension of the ligaments (`neutral_rotation`; the meshed geometry itself with neither).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from dolfinx import fem

from spinefe.common import regions as R
from spinefe.common.errors import SolverError
from spinefe.common.motions import MOTIONS
from spinefe.common.parallel import write_json
from spinefe.common.provenance import provenance
from spinefe.config.sections import (
    FOLLOWER_OFFSET_LIMIT_MM,
    Lesion,
    Materials,
    Mechanics,
    Nonlinear,
    RangeOfMotion,
)
from spinefe.geometry.mesh import Model
from spinefe.mechanics.kinematics import relative_rotation_deg, rigid_fit
from spinefe.mechanics.materials import MaterialFields, material_fields
from spinefe.mechanics.nonlinear import newton_summary
from spinefe.mechanics.segment import region_cells, segment_load, solve_segment_nonlinear
from spinefe.mechanics.stress import disc_indicators

log = logging.getLogger(__name__)

#: Reference paper, Table 3 (shared/reference/paper.toml [rom_deg]): L4-L5 ROM in degrees; the
#: paper states neither the moment nor whether a value is one direction or a full range.
PAPER_TABLE3 = {
    "paper": {"flexion_extension": 8.3, "lateral_bending": 7.6, "axial_rotation": 3.2},
    "Li": {"flexion_extension": 1.9, "lateral_bending": 4.7, "axial_rotation": 2.9},
    "Renner": {"flexion_extension": 13.75, "lateral_bending": 10.35, "axial_rotation": 3.9},
    "Panjabi": {"flexion_extension": 11.5, "lateral_bending": 8.3, "axial_rotation": 1.8},
}

@dataclass(frozen=True)
class InVitro:
    """Published in-vitro ROM, one direction (LB and AR: one side), degrees, and its condition:
    the follower preload (N) and whether the disc was tested alone (posterior elements and
    ligaments removed). docs/nonlinear.md gives the sources and what could be verified."""

    source: str
    preload_N: float
    disc_only: bool
    rom_deg: dict

    def applies(self, preload_N: float, disc_only: bool) -> bool:
        """Whether the data fit a run with `preload_N` (N; with or without) and `disc_only`."""
        return self.disc_only == disc_only and (self.preload_N > 0) == (preload_N > 0)


LITERATURE = (
    InVitro("Yamamoto 1989, L4-L5, 10 N m, no preload (n = 10)", 0.0, False,
            {"flexion": 8.9, "extension": 5.8, "lateral_bending": 5.7, "axial_rotation": 2.2}),
    InVitro("Niosi 2006, L3-L4 (adjacent level), 7.5 N m, no preload (n = 10)", 0.0, False,
            {"flexion": 3.7, "extension": 3.3, "lateral_bending": 3.8, "axial_rotation": 2.1}),
    InVitro("Niosi 2006, L3-L4 (adjacent level), 7.5 N m, 600 N follower preload (n = 10)",
            600.0, False,
            {"flexion": 4.4, "extension": 2.4, "lateral_bending": 2.4, "axial_rotation": 1.2}),
    InVitro("Heuer 2007, L4-L5 disc alone, 7.5 N m, no preload (n = 8)", 0.0, True,
            {"flexion": 10.11, "extension": 10.28, "lateral_bending": 6.43,
             "axial_rotation": 5.73}),
)


def vertebra_nodes(model: Model, u: fem.Function, level: str) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates and displacements (n, 3) of the owned nodes of one vertebra (L4 includes
    the lesion and the seeds)."""
    V = u.function_space
    regions = R.vertebra_regions(level) + ([R.LESION, R.SEEDS] if level == "L4" else [])
    cells = region_cells(model, regions)
    dofs = np.unique(V.dofmap.list[cells].ravel())
    dofs = dofs[dofs < V.dofmap.index_map.size_local]
    return V.tabulate_dof_coordinates()[dofs], u.x.array.reshape(-1, 3)[dofs]


def rotation_of_L4(model: Model, u: fem.Function) -> np.ndarray:
    """Rotation vector (degrees, LPS axes) of L4 relative to L5; collective."""
    fits = [rigid_fit(*vertebra_nodes(model, u, level), model.comm) for level in ("L4", "L5")]
    return relative_rotation_deg(*fits)


def neutral_rotation(model: Model, materials: MaterialFields, *, rom: RangeOfMotion,
                     mechanics: Mechanics, nonlinear: Nonlinear) -> np.ndarray:
    """Rotation vector (degrees) of L4 relative to L5 without a moment: the segment settled
    under the preload of `rom` and its pre-tensioned ligaments (docs/nonlinear.md, section 3),
    the posture from which an in-vitro test measures ROM; zeros with neither (no solve);
    collective."""
    strains = nonlinear.ligament_reference_strain.model_dump().values()
    if not (rom.preload_N or (nonlinear.ligaments and any(e > 0 for e in strains))):
        return np.zeros(3)
    preloaded = segment_load(model, rom.preload_N, rom.preload,
                             follower_offset_mm=rom.follower_offset_mm)
    sol, _ = solve_segment_nonlinear(model, materials, mechanics, nonlinear, preloaded)
    return rotation_of_L4(model, sol.u)


#: The least-rotation path search: it stops when the preload alone turns L4 by less than this
#: about the left-right axis (deg), after at most PATH_MAX_SOLVES solves; its second offset lies
#: PATH_STEP_MM posterior of the first.
PATH_TOLERANCE_DEG = 0.05
PATH_MAX_SOLVES = 6
PATH_STEP_MM = 5.0


def least_rotation_path(model: Model, materials: MaterialFields, *, rom: RangeOfMotion,
                        mechanics: Mechanics, nonlinear: Nonlinear
                        ) -> tuple[float, np.ndarray, list[tuple[float, float]]]:
    """The follower path of least rotation (Patwardhan 1999): the offset (mm posterior of the
    centroid of L4.superior) at which the preload of `rom` alone turns L4 by at most
    PATH_TOLERANCE_DEG about the left-right axis, by `secant_search` from
    rom.follower_offset_mm (the offset's moment, -P d, is linear in d; the segment's response
    nearly so). Returns the offset, the neutral rotation vector there (deg) and (offset mm,
    rotation deg) of every solve; collective."""
    postures = {}

    def sagittal(offset: float) -> float:
        at = rom.model_copy(update={"follower_offset_mm": offset})
        postures[offset] = neutral_rotation(model, materials, rom=at, mechanics=mechanics,
                                            nonlinear=nonlinear)
        rotation = float(model.comm.bcast(postures[offset][0], root=0))  # one decision
        log.info("follower path: offset %.3f mm, neutral rotation %.3f deg", offset, rotation)
        return rotation

    trail = secant_search(sagittal, rom.follower_offset_mm, PATH_STEP_MM,
                          (-FOLLOWER_OFFSET_LIMIT_MM, FOLLOWER_OFFSET_LIMIT_MM),
                          PATH_TOLERANCE_DEG, PATH_MAX_SOLVES, "rom.follower_path")
    return trail[-1][0], postures[trail[-1][0]], trail


def secant_search(f: Callable[[float], float], start: float, step: float,
                  bounds: tuple[float, float], tol: float, max_evaluations: int,
                  what: str) -> list[tuple[float, float]]:
    """(x, f(x)) of every evaluation until |f(x)| <= tol: at `start`, at `start + step` (or
    `start - step` where that leaves `bounds`), then secant steps, a step beyond a bound
    clamped to it. SolverError, its message starting with `what`, for a non-finite f, an f
    that does not change between the last two points, a root beyond a bound (f keeps its sign
    there) or none in `max_evaluations`. Written by hand: scipy's root finders neither stop
    at a budget of expensive evaluations with their trail nor clamp to bounds this way."""
    lo, hi = bounds
    trail: list[tuple[float, float]] = []

    def text() -> str:
        return ", ".join(f"{x:.3g} -> {y:.3g}" for x, y in trail)

    def evaluate(x: float) -> None:
        y = f(x)
        trail.append((x, y))
        if not np.isfinite(y):
            raise SolverError(f"{what}: not finite at {x:g}: {text()}")

    evaluate(start)
    while abs(trail[-1][1]) > tol:
        if len(trail) == max_evaluations:
            raise SolverError(f"{what}: no root within {tol:g} in {max_evaluations} "
                              f"evaluations: {text()}")
        if len(trail) == 1:
            x = start + step if start + step <= hi else start - step
        else:
            (xa, ya), (xb, yb) = trail[-2:]
            if yb == ya:
                raise SolverError(f"{what}: no change between {xa:g} and {xb:g}: {text()}")
            x = xb - yb * (xb - xa) / (yb - ya)
            if not lo <= x <= hi:
                bound = hi if x > hi else lo
                if bound in (xa, xb):
                    raise SolverError(f"{what}: the root lies beyond {bound:g} (the secant's "
                                      f"next point {x:.3g}): {text()}")
                x = bound
        evaluate(x)
    return trail


def solve_motion(model: Model, motion: str, materials: MaterialFields, *, rom: RangeOfMotion,
                 mechanics: Mechanics, nonlinear: Nonlinear,
                 neutral_deg: np.ndarray | None = None) -> dict:
    """One motion of `rom` on the `nonlinear` model with one scenario's `materials`: ROM
    (degrees) and coupled rotation from the neutral rotation `neutral_deg` (`neutral_rotation`;
    None: the meshed geometry), Newton record, ligaments and contacts; collective."""
    t0 = time.perf_counter()
    sol, pairs = solve_segment_nonlinear(model, materials, mechanics, nonlinear,
                                         segment_load(
        model, rom.preload_N, rom.preload, motion=motion, moment_Nm=rom.moment_Nm,
        follower_offset_mm=rom.follower_offset_mm))
    rotation = rotation_of_L4(model, sol.u)
    if neutral_deg is not None:
        rotation = rotation - neutral_deg  # small rotations: the vectors subtract
    record = {
        "rom_deg": float(rotation @ np.asarray(MOTIONS[motion])),
        "rotation_vector_deg": rotation.tolist(),
        **disc_indicators(sol, model),  # nucleus pressure (MPa), disc bulge (mm)
        "newton": sol.steps,
        **newton_summary(sol.steps),
        "seconds": round(time.perf_counter() - t0, 1),
        "dofs": sol.dofs,
        "petsc_options": dict(sol.petsc_options),
        **pairs,
    }
    log.info("rom %s: %.2f deg (%d Newton iterations, %.0f s)", motion, record["rom_deg"],
             sol.iterations, record["seconds"])
    return record


def _mean(rom: dict, *keys: str) -> float:
    values = [rom[k] for k in keys if k in rom]
    return float(np.mean(values)) if values else np.nan


def validation(rom: dict[str, float], preload_N: float = 0.0, disc_only: bool = False) -> dict:
    """Our ROM against the paper's Table 3 (as full ranges: flexion + extension, left + right)
    and against the in-vitro data of the run's condition (`preload_N`, `disc_only`; one
    direction); spans and whether ours lies within."""
    ours_total = {
        "flexion_extension": rom.get("flexion", np.nan) + rom.get("extension", np.nan),
        "lateral_bending": rom.get("lateral_bending_left", np.nan)
        + rom.get("lateral_bending_right", np.nan),
        "axial_rotation": rom.get("axial_rotation_left", np.nan)
        + rom.get("axial_rotation_right", np.nan),
    }
    table3 = {}
    for key, value in ours_total.items():
        if np.isnan(value):
            continue
        published = [row[key] for row in PAPER_TABLE3.values()]
        table3[key] = {"ours_full_range": value, "published": published,
                       "span": [min(published), max(published)],
                       "within": bool(min(published) <= value <= max(published))}
    one_side = {
        "flexion": rom.get("flexion", np.nan),
        "extension": rom.get("extension", np.nan),
        "lateral_bending": _mean(rom, "lateral_bending_left", "lateral_bending_right"),
        "axial_rotation": _mean(rom, "axial_rotation_left", "axial_rotation_right"),
    }
    rows = [r for r in LITERATURE if r.applies(preload_N, disc_only)]
    invitro = {key: {"ours_one_direction": value, **{r.source: r.rom_deg[key] for r in rows}}
               for key, value in one_side.items() if not np.isnan(value)}
    return {"paper_table3": table3, "in_vitro": invitro}


def rom_markdown(summary: dict) -> str:
    """The ROM table and its validation as Markdown."""
    preload = f"preload {summary['preload_N']} N"
    if summary["preload_N"] and summary.get("preload", "dead") == "follower":
        preload += (f" (follower, {summary['follower_offset_mm']:.2f} mm posterior of the "
                    "endplate's centroid")
        if "follower_path_solves" in summary:
            preload += (f"; the path of least rotation, found in "
                        f"{len(summary['follower_path_solves'])} solves")
        preload += ")"
    elif summary["preload_N"]:
        preload += " (dead)"
    lines = [f"Moment {summary['moment_Nm']} N m, {preload}, "
             f"scenario {summary['scenario']}. ROM of L4 relative to L5, degrees.", "",
             "| motion | ROM (deg) | coupled rotation x / y / z (deg) | nucleus pressure (MPa) "
             "| Newton its, max per step / per solve | contact updates |",
             "|---|---|---|---|---|---|"]
    for motion, rec in summary["motions"].items():
        x, y, z = rec["rotation_vector_deg"]
        pressure = rec.get("nucleus_pressure_MPa")
        lines.append(f"| {motion} | {rec['rom_deg']:.2f} | {x:.2f} / {y:.2f} / {z:.2f} "
                     f"| {'-' if pressure is None else f'{pressure:.3f}'} "
                     f"| {rec['newton_iterations_max_per_step']} / "
                     f"{rec['newton_iterations_max_per_solve']} | {rec['contact_updates']} |")
    val = summary["validation"]
    lines += ["", "Against the paper's Table 3 (taken as full ranges: flexion + extension, "
              "left + right):", "",
              "| motion | ours | present study / Li / Renner / Panjabi | span | within |",
              "|---|---|---|---|---|"]
    for key, row in val["paper_table3"].items():
        pub = " / ".join(f"{v:g}" for v in row["published"])
        lines.append(f"| {key} | {row['ours_full_range']:.2f} | {pub} | "
                     f"{row['span'][0]:g}-{row['span'][1]:g} "
                     f"| {'yes' if row['within'] else 'NO'} |")
    sources = [k for k in next(iter(val["in_vitro"].values()), {}) if k != "ours_one_direction"]
    lines += ["", "Against in-vitro data of the same condition (one direction; LB and AR one "
              "side):", "",
              "| motion | ours | " + " | ".join(sources) + " |",
              "|---|---|" + "---|" * len(sources)]
    for key, row in val["in_vitro"].items():
        lines.append(f"| {key} | {row['ours_one_direction']:.2f} | "
                     + " | ".join(f"{row[s]:g}" for s in sources) + " |")
    for motion, error in summary.get("failed", {}).items():
        lines.append(f"\n**{motion} did not converge:** {error}")
    return "\n".join(lines) + "\n"


def run_rom(model: Model, outdir: Path, scenario: str, *, materials: Materials, lesion: Lesion,
            mechanics: Mechanics, nonlinear: Nonlinear, rom: RangeOfMotion,
            config_hash: str) -> dict:
    """Every motion of `rom` with the materials of `scenario`; writes DIR/summary.json and
    DIR/rom.md (`config_hash` in its provenance); collective.

    A motion whose Newton solve fails is recorded with its error and the others still run and
    are written; then SolverError is raised (non-zero exit) naming the failed motions.
    """
    motions, failed = {}, {}
    fields = material_fields(model, materials, lesion, scenario)  # read-only in every solve
    path = None
    if rom.follower_path == "least_rotation":
        offset, neutral, path = least_rotation_path(model, fields, rom=rom, mechanics=mechanics,
                                                    nonlinear=nonlinear)
        rom = rom.model_copy(update={"follower_offset_mm": offset})
    else:
        neutral = neutral_rotation(model, fields, rom=rom, mechanics=mechanics,
                                   nonlinear=nonlinear)
    for motion in rom.motions:
        try:
            motions[motion] = solve_motion(model, motion, fields, rom=rom, mechanics=mechanics,
                                           nonlinear=nonlinear, neutral_deg=neutral)
        except SolverError as err:  # raised on every rank: the SNES reason is collective
            log.error("rom %s: %s", motion, err)
            failed[motion] = str(err)
    rom_deg = {m: rec["rom_deg"] for m, rec in motions.items()}
    summary = {
        "rom_deg": rom_deg,
        "moment_Nm": rom.moment_Nm,
        "preload_N": rom.preload_N,
        "preload": rom.preload,
        "follower_offset_mm": rom.follower_offset_mm,
        "follower_path": rom.follower_path,
        **({"follower_path_solves": path} if path is not None else {}),
        "scenario": scenario,
        "convention": "one direction; rotation of L4 relative to L5 about the motion's axis, "
                      "from the neutral posture (settled under the preload and the ligaments' "
                      "pre-tension)",
        "neutral_rotation_deg": neutral.tolist(),
        "validation": validation(rom_deg, rom.preload_N,
                                 disc_only=not (nonlinear.ligaments or nonlinear.contact)),
        "motions": motions,
        "failed": failed,
        "mpi_size": model.comm.size,
        "provenance": provenance(model.comm, config_hash),
    }
    write_json(model.comm, summary, outdir / "summary.json")
    if model.comm.rank == 0:
        (outdir / "rom.md").write_text(rom_markdown(summary))
    if failed:
        raise SolverError(f"range of motion: {', '.join(failed)} did not converge (the other "
                          f"motions are in {outdir / 'summary.json'}): "
                          + "; ".join(f"{m}: {e}" for m, e in failed.items()))
    return summary
