"""The command line's arguments (argparse): every command, its options and their help.

A flag that overrides one configuration value (`--activity-mCi`) stores it under its dotted key
(dest "dosimetry.activity_mCi"): the commands hand every dotted dest to the one override path,
spinefe.config.overrides, as `--petsc KEY=VALUE` (mechanics.petsc.KEY) and `--set` do.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from spinefe.config.sections import CREEP_HOURS, LOAD_CASES, SCENARIOS


def output_dir(text: str) -> Path:
    """An --out directory: new or an existing directory, and creatable, so that a bad one is
    refused before any work (argparse's exit 2 on every rank), not after a run as a traceback."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} exists and is not a directory")
    parent = next(p for p in (path, *path.parents) if p.exists())  # "." or "/" at the latest
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{path}: {parent} is not writable")
    return path

_EPILOG = """\
examples:
  spinefe config default > my_segment.toml     start a config from the commented default
  spinefe config check my_segment.toml         validate it (exit 2 and a message when invalid)
  spinefe mesh --out results/default           mesh the built-in default segment
  mpiexec -n 2 python -m spinefe mesh my_segment.toml --out results/mine
  spinefe solve my_segment.toml --scenario tumour --out results/tumour
  spinefe compare --out results/default        healthy, tumour, implanted and the paper table
  spinefe dose --out results/dose --activity-mCi 0.5   seed dose, DVHs, metrics, DICOM RT
  spinefe rom --out results/rom --moment-Nm 7.5      range of motion under pure moments
  spinefe compare --nonlinear --out results/nl       the comparison with ligaments and contact
  spinefe compare --nonlinear --load flexion --out results/nl_flexion   under a 7.5 N m flexion
  spinefe creep examples/viscous_disc.toml --out results/creep   0-24 h under the held load
  spinefe plan --access bilateral --density dense --activity-mCi 0.45 --out results/plan
  spinefe study run studies/paper_baseline.toml     a study: its cases, resumable
  mpiexec -n 4 python -m spinefe study run studies/distribution.toml --ranks-per-case 2
  spinefe report results/paper_baseline               its report.html and report.md

Every command that takes CONFIG.toml runs on the built-in default segment without one.
Units: mm, N, MPa; frame: DICOM patient LPS (+x left, +y posterior, +z superior).
"""


def _positive_increasing(text: str) -> tuple[float, ...]:
    """Comma-separated positive, increasing numbers (hours)."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not comma-separated numbers") from None
    if not all(np.isfinite(values)) or values[0] <= 0 or any(
            b <= a for a, b in zip(values, values[1:], strict=False)):
        raise argparse.ArgumentTypeError(f"{text!r}: the hours must be positive, finite and "
                                         "increasing")
    return values


def build_parser() -> argparse.ArgumentParser:
    """The `spinefe` parser: one subcommand per command of spinefe.cli.commands."""
    p = argparse.ArgumentParser(
        prog="spinefe",
        description="L4-L5 finite-element model for I-125 seed implant planning.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--log-all-ranks", action="store_true", help="log from every MPI rank")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    cfg = sub.add_parser("config", help="print or check a configuration")
    cfg_sub = cfg.add_subparsers(dest="action", required=True, metavar="ACTION")
    cfg_sub.add_parser("default", help="print the default segment as a commented TOML file")
    check = cfg_sub.add_parser("check", help="validate CONFIG.toml and print its hash")
    check.add_argument("config", type=Path, metavar="CONFIG.toml")

    mesh = sub.add_parser(
        "mesh",
        help="mesh a segment: writes DIR/mesh.xdmf, DIR/summary.json, DIR/segment.png",
        description="Build the L4-L5 geometry, mesh it (rank 0), distribute it over MPI, and "
        "write the mesh with region and surface tags, a summary and a picture.",
    )
    _model_args(mesh)
    mesh.add_argument("--no-figure", action="store_true", help="skip the PNG")

    solve = sub.add_parser(
        "solve",
        help="solve one mechanics scenario: DIR/summary.json, fields (VTX, XDMF), von_mises.png",
        description="Linear elastic L4-L5 under the configured load (default 500 N axial on "
        "L4.superior, L5.inferior clamped; --load for a motion's pure moment).",
    )
    _model_args(solve, solver=True, petsc=True)
    _override(solve, "--scenario", "mechanics.scenario", choices=SCENARIOS,
              help="overrides mechanics.scenario of the config (default: implanted)")
    _load_case(solve)
    solve.add_argument("--no-figure", action="store_true", help="skip the PNG")

    compare = sub.add_parser(
        "compare",
        help="healthy, tumour and implanted on one mesh, compared with the paper",
        description="Solve the three scenarios on one mesh; write DIR/<scenario>/, "
        "DIR/comparison.{json,md} and DIR/von_mises.png (shared colour scale).",
    )
    _model_args(compare, solver=True, petsc=True)
    _load_case(compare)
    compare.add_argument(
        "--nonlinear", action="store_true",
        help="ligaments, facet contact and neo-Hookean disc ([nonlinear] of the config); adds "
        "facet force share, ligament forces and the change from the linear model",
    )

    rom = sub.add_parser(
        "rom",
        help="range of motion under pure moments: DIR/summary.json (rom_deg), DIR/rom.md",
        description="Nonlinear segment (ligaments, facet contact, neo-Hookean disc) under a pure "
        "moment on L4.superior per motion, L5.inferior clamped; the rotation of L4 relative "
        "to L5 from rigid fits, compared with the paper's Table 3 and in-vitro data.",
    )
    _model_args(rom, solver=True, petsc=True)
    _override(rom, "--moment-Nm", "rom.moment_Nm", type=float, help="overrides rom.moment_Nm")
    _override(rom, "--preload-N", "rom.preload_N", type=float, help="overrides rom.preload_N")
    _override(rom, "--motions", "rom.motions", nargs="+", metavar="MOTION",
              help="overrides rom.motions (flexion extension lateral_bending_left ...)")
    _override(rom, "--scenario", "mechanics.scenario", choices=SCENARIOS,
              help="overrides mechanics.scenario")

    creep = sub.add_parser(
        "creep",
        help="creep of the segment under the held load: DIR/summary.json, DIR/creep.md",
        description="The load of [mechanics] (axial, or a motion with --load) applied at t = 0 "
        "and held. The nonlinear segment, whose materials with a Prony series "
        "([materials.<name>.relaxation]) relax; or, with a poroelastic disc "
        "([materials.<disc>.poroelastic]), the consolidation of the linear segment (no "
        "ligaments, facet contact or hyperelastic disc). Per scenario and time: the "
        "axial displacement of L4.superior, the nucleus pressure, the paper's stress "
        "indicators, and the seeds' effect on them over time.",
    )
    _model_args(creep, solver=True, petsc=True)
    _load_case(creep)
    creep.add_argument("--hours", type=_positive_increasing, default=CREEP_HOURS, metavar="H,H,...",
                       help="hold times in hours, comma-separated and increasing (default "
                       + ",".join(f"{h:g}" for h in CREEP_HOURS) + ")")
    creep.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS),
                       help="scenarios to run (default all three)")

    dose = sub.add_parser(
        "dose",
        help="TG-43U1 dose of the seeds on the mesh: DVHs, plan metrics, isodose, DICOM RT",
        description="Dose of the configured seeds (or of --plan) sampled on every region; "
        "writes DIR/summary.json, metrics.md, dvh.csv, dvh.png, isodose.png, plan.toml, "
        "dose.xdmf and DIR/dicom/ (RT Plan, RT Dose, RT Structure Set).",
    )
    _model_args(dose)
    dose.add_argument("--plan", type=Path, help="plan file (.toml or .csv) instead of the "
                      "config's seeds (the mesh keeps the config's capsules)")
    _override(dose, "--activity-mCi", "dosimetry.activity_mCi", type=float,
              help="overrides dosimetry.activity_mCi")
    _override(dose, "--prescription-Gy", "dosimetry.prescription_Gy", type=float,
              help="overrides dosimetry.prescription_Gy")
    dose.add_argument("--no-figure", action="store_true", help="skip the PNGs")
    dose.add_argument("--any-plan", action="store_true",
                      help="dose --plan without checking that it can be implanted (seeds in "
                      "bone, not in the canal, not overlapping): for research only")

    plan = sub.add_parser(
        "plan",
        help="seed plan of one pattern corner: needles, seed count from D90, TOML/CSV/RT Plan",
        description="Transpedicular needles of one corner (access x density), checked against "
        "bone, canal and each other; the fewest seeds whose TG-43 dose gives lesion D90 >= "
        "prescription. Writes DIR/plan.toml, plan.csv, rtplan.dcm and summary.json (no mesh).",
    )
    plan.add_argument("config", type=Path, nargs="?", metavar="CONFIG.toml",
                      help="segment configuration (default: built-in default segment)")
    plan.add_argument("--out", type=output_dir, required=True, metavar="DIR",
                      help="output directory")
    plan.add_argument("--access", required=True,
                      help="unilateral_left, unilateral_right or bilateral")
    plan.add_argument("--density", required=True, help="dense or sparse")
    _override(plan, "--activity-mCi", "dosimetry.activity_mCi", type=float,
              help="overrides dosimetry.activity_mCi")
    _override(plan, "--prescription-Gy", "dosimetry.prescription_Gy", type=float,
              help="overrides dosimetry.prescription_Gy")

    evaluate = sub.add_parser(
        "evaluate",
        help="dose and mechanical metrics of a plan, seeds embedded in a fixed mesh",
        description="Evaluates --plan on the segment meshed without seeds: each capsule's "
        "titanium raises its cells' moduli (homogenisation --rule). Writes DIR/evaluation.json "
        "and evaluation.md; --conforming also remeshes with the capsules and reports both.",
    )
    _model_args(evaluate, petsc=True)
    evaluate.add_argument("--plan", type=Path, required=True, help="plan file (.toml or .csv)")
    evaluate.add_argument("--rule", default="mori_tanaka",
                          choices=("mori_tanaka", "voigt", "reuss"),  # embedded.RULES
                          help="homogenisation rule (default: mori_tanaka)")
    evaluate.add_argument("--conforming", action="store_true",
                          help="also evaluate with the capsules meshed (remesh and solve)")
    _override(evaluate, "--prescription-Gy", "dosimetry.prescription_Gy", type=float,
              help="overrides dosimetry.prescription_Gy")

    opt = sub.add_parser(
        "optimise",
        help="Pareto search (NSGA-II) of seed plans: dose coverage against reinforcement",
        description="Searches activity, access, needles, angles, depths, spacing and seeds per "
        "needle for plans with lesion D90 >= prescription that maximise V100 and the "
        "reinforcement with few needles. Writes DIR/pareto.csv, pareto.png, evaluations.csv, "
        "plans/, summary.json; DIR/checkpoint.pkl makes a rerun resume.",
    )
    _model_args(opt, petsc=True)
    _override(opt, "--population", "optimisation.population", type=int,
              help="overrides optimisation.population (44)")
    _override(opt, "--generations", "optimisation.generations", type=int,
              help="overrides optimisation.generations (50), the budget")
    _override(opt, "--stop-hypervolume-percent", "optimisation.stop_hypervolume_percent",
              type=float, help="stopping rule: end once the front's hypervolume grew by less "
              "than this %% over --stop-window generations (1; 0: the whole budget)")
    _override(opt, "--stop-window", "optimisation.stop_window", type=int,
              help="overrides optimisation.stop_window (10)")
    _override(opt, "--seed", "optimisation.random_seed", type=int,
              help="overrides optimisation.random_seed (1)")
    _override(opt, "--mesh-size-mm", "optimisation.mesh_size_mm", type=float,
              help="overrides optimisation.mesh_size_mm, the search's resolution (2.2)")
    _override(opt, "--ranks-per-evaluation", "optimisation.ranks_per_evaluation", type=int,
              help="overrides optimisation.ranks_per_evaluation (1)")
    _override(opt, "--hybrid", "optimisation.hybrid", action="store_true", default=None,
              help="hybrid activity plans (optimisation.hybrid)")
    _override(opt, "--prescription-Gy", "dosimetry.prescription_Gy", type=float,
              help="overrides dosimetry.prescription_Gy")
    _override(opt, "--v150-max-percent", "optimisation.v150_max_percent", type=float,
              help="limit of the lesion V150 (%%; 60, 100 lifts it)")
    _override(opt, "--v200-max-percent", "optimisation.v200_max_percent", type=float,
              help="limit of the lesion V200 (%%; 100: none)")
    _override(opt, "--canal-d01cc-max-Gy", "optimisation.canal_d01cc_max_Gy", type=float,
              help="limit of the canal D0.1cc (Gy)")
    opt.add_argument("--no-verify", action="store_true",
                     help="skip the conforming re-evaluation of the recommended plans")
    study = sub.add_parser(
        "study",
        help="run a study (cases of one model, some keys varied), list its cases, or write a "
        "Slurm job array for it",
        description="A study file (studies/NAME.toml) gives a base config, a job and the "
        "varied keys; every case is validated before any runs. Results go to "
        "results/NAME/<case id>/ and the table to results/NAME/summary.csv.",
    )
    study_sub = study.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = study_sub.add_parser(
        "run", help="run the cases (completed ones are skipped: a rerun resumes)",
        description="Exit status: 0 when every case ran; 10 + the number of failed cases (at "
        "most 125); 2 for an invalid study file (before any case runs); 130 when interrupted.")
    list_ = study_sub.add_parser("list", help="print the cases: id and varied keys")
    table = study_sub.add_parser(
        "table", help="write DIR/summary.csv from the cases run so far (runs nothing; e.g. "
        "after a Slurm job array)")
    slurm = study_sub.add_parser("slurm", help="write a Slurm job-array script for the study")
    for q in (run, list_, table, slurm):
        q.add_argument("study", type=Path, metavar="STUDY.toml")
        q.add_argument("--out", type=output_dir, metavar="DIR", help="default: results/NAME")
        q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a base or job value in every case (dotted key, TOML "
                       "value; e.g. mesh.size_mm=2.0); repeatable")
        _petsc(q, "of every case")
    for q in (run, slurm):
        q.add_argument("--ranks-per-case", type=int, default=1, metavar="K",
                       help="MPI ranks per case; the ranks run cases in groups of K (default 1)")
        q.add_argument("--cases-per-task", type=int, default=None, metavar="C",
                       help="with --task: cases per chunk; for slurm: per array task (1)")
    run.add_argument("--task", type=int, metavar="I",
                     help="run only chunk I of --cases-per-task cases (a Slurm array task)")
    run.add_argument("--force", action="store_true",
                     help="rerun every case from scratch (its directory is emptied)")
    run.add_argument("--cache-dir", type=Path, metavar="DIR",
                     help="mesh cache (default: $SPINEFE_CACHE or ~/.cache/spinefe/meshes)")
    run.add_argument("--no-cache", action="store_true", help="always remesh; do not cache")
    report = sub.add_parser(
        "report", help="write a study's report: DIR/report.html (self-contained) and report.md",
        description="The study's question, the table of cases, plots of the key metrics "
        "against the varied parameter, the job's analysis (paper comparison, convergence, "
        "clinical tests, range of motion), figures and provenance.")
    report.add_argument("results", type=Path, metavar="DIR", help="a study's results directory")
    prov = sub.add_parser(
        "provenance", help="print where a result came from: versions, commit, MPI size, "
        "config hash, host, UTC time",
        description="RESULT: a results directory (its summary.json), a summary .json, an "
        ".xdmf/.h5 field file or a DICOM object written by spinefe.")
    prov.add_argument("result", type=Path, metavar="RESULT")
    rerun = sub.add_parser(
        "rerun", help="run a study case again from its recorded configuration and report "
        "whether its scalars match",
        description="RESULT: a study case's directory (results/NAME/<case id>/) or its "
        "summary.json. Exit status: 0 when every scalar matches bit for bit, 3 when some "
        "differ (listed), 2 for an invalid RESULT.")
    rerun.add_argument("result", type=Path, metavar="RESULT")
    rerun.add_argument("--out", type=output_dir, metavar="DIR",
                       help="where the rerun goes (default: RESULT/rerun)")
    rerun.add_argument("--cache-dir", type=Path, metavar="DIR",
                       help="mesh cache, as for study run (default: $SPINEFE_CACHE or "
                       "~/.cache/spinefe/meshes)")
    rerun.add_argument("--no-cache", action="store_true",
                       help="mesh again in memory (as a study run with --no-cache did; a mesh "
                       "from the cache numbers its dofs otherwise: results then agree to the "
                       "solver tolerance, not bit for bit)")
    slurm.add_argument("--time", default="04:00:00", help="wall time per array task")
    slurm.add_argument("--partition", help="Slurm partition (site-specific)")
    return p


def _model_args(p: argparse.ArgumentParser, solver: bool = False, petsc: bool = False) -> None:
    """CONFIG.toml, --out and the mesh cache options; --solver for the mechanics commands,
    --petsc for the commands that solve."""
    p.add_argument(
        "config",
        type=Path,
        nargs="?",
        metavar="CONFIG.toml",
        help="segment configuration (default: built-in default segment)",
    )
    p.add_argument("--out", type=output_dir, required=True, metavar="DIR",
                   help="output directory")
    p.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="mesh cache (default: $SPINEFE_CACHE or ~/.cache/spinefe/meshes)",
    )
    p.add_argument("--no-cache", action="store_true", help="always remesh; do not cache")
    if solver:
        _override(p, "--solver", "mechanics.solver", choices=("cg_gamg", "mumps"),
                  help="overrides mechanics.solver")
    if petsc:
        _petsc(p)


def _load_case(p: argparse.ArgumentParser) -> None:
    _override(p, "--load", "mechanics.load_case", choices=LOAD_CASES,
              help="overrides mechanics.load_case: axial (the paper's 500 N dead load), "
              "standing (load_N as a follower load) or a motion (a pure moment of "
              "mechanics.moment_Nm with load_N as its preload, mechanics.preload)")


def _override(p: argparse.ArgumentParser, flag: str, key: str, **kwargs) -> None:
    """A flag that overrides the config key `key`: its dest is the dotted key, which the
    commands collect (spinefe.cli.commands.overrides); the metavar stays the flag's name."""
    if "choices" not in kwargs and kwargs.get("action") is None:
        kwargs.setdefault("metavar", flag.lstrip("-").replace("-", "_").upper())
    p.add_argument(flag, dest=key, **kwargs)


def _petsc(p: argparse.ArgumentParser, where: str = "") -> None:
    """--petsc KEY=VALUE, repeatable: the overrides mechanics.petsc.KEY (commands.overrides)."""
    p.add_argument("--petsc", action="append", default=[], metavar="KEY=VALUE",
                   help=f"a PETSc option of the mechanics solves{' ' + where if where else ''} "
                   "(the override mechanics.petsc.KEY; TOML value, e.g. ksp_rtol=1e-10); "
                   "repeatable")
