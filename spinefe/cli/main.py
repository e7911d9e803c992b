"""The `spinefe` command line (also `python -m spinefe`, so `mpiexec -n N python -m spinefe`).

Exit status: 0 success, 2 invalid input (configuration or arguments), 1 any other failure. Under
MPI an error on one rank ends all ranks.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from dosimetry import PlanError, SeedModelError
from spinefe.common.errors import ConfigError, PlanningError
from spinefe.config.loading import load_config
from spinefe.config.sections import SCENARIOS

log = logging.getLogger("spinefe")

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
  spinefe plan --access bilateral --density dense --activity-mCi 0.45 --out results/plan
  spinefe study run studies/paper_baseline.toml     a study: its cases, resumable
  mpiexec -n 4 python -m spinefe study run studies/distribution.toml --ranks-per-case 2
  spinefe report results/paper_baseline               its report.html and report.md

Every command that takes CONFIG.toml runs on the built-in default segment without one.
Units: mm, N, MPa; frame: DICOM patient LPS (+x left, +y posterior, +z superior).
"""


def _parser() -> argparse.ArgumentParser:
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
        description="Linear elastic L4-L5 under the configured axial load (default 500 N on "
        "L4.superior, L5.inferior clamped).",
    )
    _model_args(solve, solver=True)
    solve.add_argument(
        "--scenario",
        choices=SCENARIOS,
        help="overrides mechanics.scenario of the config (default: implanted)",
    )
    solve.add_argument("--no-figure", action="store_true", help="skip the PNG")

    compare = sub.add_parser(
        "compare",
        help="healthy, tumour and implanted on one mesh, compared with the paper",
        description="Solve the three scenarios on one mesh; write DIR/<scenario>/, "
        "DIR/comparison.{json,md} and DIR/von_mises.png (shared colour scale).",
    )
    _model_args(compare, solver=True)
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
    _model_args(rom, solver=True)
    rom.add_argument("--moment-Nm", type=float, help="overrides rom.moment_Nm")
    rom.add_argument("--preload-N", type=float, help="overrides rom.preload_N")
    rom.add_argument("--motions", nargs="+", metavar="MOTION",
                     help="overrides rom.motions (flexion extension lateral_bending_left ...)")
    rom.add_argument("--scenario", choices=SCENARIOS, help="overrides mechanics.scenario")

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
    dose.add_argument("--activity-mCi", type=float, help="overrides dosimetry.activity_mCi")
    dose.add_argument("--prescription-Gy", type=float, help="overrides dosimetry.prescription_Gy")
    dose.add_argument("--no-figure", action="store_true", help="skip the PNGs")

    plan = sub.add_parser(
        "plan",
        help="seed plan of one pattern corner: needles, seed count from D90, TOML/CSV/RT Plan",
        description="Transpedicular needles of one corner (access x density), checked against "
        "bone, canal and each other; the fewest seeds whose TG-43 dose gives lesion D90 >= "
        "prescription. Writes DIR/plan.toml, plan.csv, rtplan.dcm and summary.json (no mesh).",
    )
    plan.add_argument("config", type=Path, nargs="?", metavar="CONFIG.toml",
                      help="segment configuration (default: built-in default segment)")
    plan.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    plan.add_argument("--access", required=True,
                      help="unilateral_left, unilateral_right or bilateral")
    plan.add_argument("--density", required=True, help="dense or sparse")
    plan.add_argument("--activity-mCi", type=float, help="overrides dosimetry.activity_mCi")
    plan.add_argument("--prescription-Gy", type=float, help="overrides dosimetry.prescription_Gy")

    evaluate = sub.add_parser(
        "evaluate",
        help="dose and mechanical metrics of a plan, seeds embedded in a fixed mesh",
        description="Evaluates --plan on the segment meshed without seeds: each capsule's "
        "titanium raises its cells' moduli (homogenisation --rule). Writes DIR/evaluation.json "
        "and evaluation.md; --conforming also remeshes with the capsules and reports both.",
    )
    _model_args(evaluate)
    evaluate.add_argument("--plan", type=Path, required=True, help="plan file (.toml or .csv)")
    evaluate.add_argument("--rule", default="mori_tanaka",
                          choices=("mori_tanaka", "voigt", "reuss"),  # embedded.RULES
                          help="homogenisation rule (default: mori_tanaka)")
    evaluate.add_argument("--conforming", action="store_true",
                          help="also evaluate with the capsules meshed (remesh and solve)")
    evaluate.add_argument("--prescription-Gy", type=float,
                          help="overrides dosimetry.prescription_Gy")

    opt = sub.add_parser(
        "optimise",
        help="Pareto search (NSGA-II) of seed plans: dose coverage against reinforcement",
        description="Searches activity, access, needles, angles, depths, spacing and seeds per "
        "needle for plans with lesion D90 >= prescription that maximise V100 and the "
        "reinforcement with few needles. Writes DIR/pareto.csv, pareto.png, evaluations.csv, "
        "plans/, summary.json; DIR/checkpoint.pkl makes a rerun resume.",
    )
    _model_args(opt)
    opt.add_argument("--population", type=int, help="overrides optimisation.population (44)")
    opt.add_argument("--generations", type=int, help="overrides optimisation.generations (50)")
    opt.add_argument("--seed", type=int, help="overrides optimisation.random_seed (1)")
    opt.add_argument("--mesh-size-mm", type=float,
                     help="overrides optimisation.mesh_size_mm, the search's resolution (2.2)")
    opt.add_argument("--ranks-per-evaluation", type=int,
                     help="overrides optimisation.ranks_per_evaluation (1)")
    opt.add_argument("--hybrid", action="store_true", default=None,
                     help="hybrid activity plans (optimisation.hybrid)")
    opt.add_argument("--prescription-Gy", type=float, help="overrides dosimetry.prescription_Gy")
    opt.add_argument("--v150-max-percent", type=float,
                     help="limit of the lesion V150 (%%; 60, 100 lifts it)")
    opt.add_argument("--v200-max-percent", type=float,
                     help="limit of the lesion V200 (%%; 100: none)")
    opt.add_argument("--canal-d01cc-max-Gy", type=float, help="limit of the canal D0.1cc (Gy)")
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
        q.add_argument("--out", type=Path, metavar="DIR", help="default: results/NAME")
        q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a base or job value in every case (dotted key, TOML "
                       "value; e.g. mesh.size_mm=2.0); repeatable")
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
    rerun.add_argument("--out", type=Path, metavar="DIR",
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


def _model_args(p: argparse.ArgumentParser, solver: bool = False) -> None:
    """CONFIG.toml, --out and the mesh cache options; --solver for the mechanics commands."""
    p.add_argument(
        "config",
        type=Path,
        nargs="?",
        metavar="CONFIG.toml",
        help="segment configuration (default: built-in default segment)",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    p.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="mesh cache (default: $SPINEFE_CACHE or ~/.cache/spinefe/meshes)",
    )
    p.add_argument("--no-cache", action="store_true", help="always remesh; do not cache")
    if solver:
        p.add_argument("--solver", choices=("cg_gamg", "mumps"), help="overrides mechanics.solver")


def _config(args: argparse.Namespace, **sections: dict):
    """The config of args.config with command-line overrides of some sections (None values are
    ignored)."""
    from spinefe.config.loading import parse_config
    from spinefe.geometry.layout import check_layout

    cfg = load_config(args.config)  # every rank validates: a bad config fails on all ranks
    check_layout(cfg)
    data = cfg.model_dump(mode="json")
    changed = False
    for section, overrides in sections.items():
        if not isinstance(overrides, dict):  # a whole section, e.g. seeds=()
            data[section], changed = list(overrides), True
            continue
        overrides = {k: v for k, v in overrides.items() if v is not None}
        data[section].update(overrides)
        changed |= bool(overrides)
    return parse_config(data) if changed else cfg


def _load(args: argparse.Namespace, **sections: dict):
    """`_config` and its meshed model."""
    from mpi4py import MPI

    from spinefe.geometry.mesh import build_mesh, default_cache_dir

    cfg = _config(args, **sections)
    cache = None if args.no_cache else (args.cache_dir or default_cache_dir())
    if MPI.COMM_WORLD.rank == 0:
        args.out.mkdir(parents=True, exist_ok=True)
    return cfg, build_mesh(cfg, MPI.COMM_WORLD, cache)


def _cmd_solve(args: argparse.Namespace) -> int:
    from spinefe.mechanics.scenarios import run_scenario
    from spinefe.mechanics.segment import load_bearing
    from spinefe.report.figures import render_von_mises

    cfg, model = _load(args, mechanics={"scenario": args.scenario, "solver": args.solver})
    model = load_bearing(model)
    scenario = cfg.mechanics.scenario
    record, vm = run_scenario(model, cfg, scenario, args.out)
    if not args.no_figure:
        n = model.mesh.topology.index_map(3).size_local
        render_von_mises(model, {scenario: vm.x.array[:n]}, args.out / "von_mises.png")
    log.info(
        "solve %s: %d dofs, %d iterations, reaction %.6f N (applied %.6f N) -> %s",
        scenario,
        record["dofs"],
        record["iterations"],
        record["reaction_N"],
        record["applied_N"],
        args.out / "summary.json",
    )
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from mpi4py import MPI

    from spinefe.mechanics.scenarios import compare_scenarios
    from spinefe.mechanics.segment import load_bearing
    from spinefe.report.figures import render_von_mises

    cfg, model = _load(args, mechanics={"solver": args.solver})
    model = load_bearing(model)
    _, _, maps = compare_scenarios(model, cfg, args.out, nonlinear=args.nonlinear)
    render_von_mises(model, maps, args.out / "von_mises.png")
    if MPI.COMM_WORLD.rank == 0:
        print((args.out / "comparison.md").read_text())
    return 0


def _cmd_rom(args: argparse.Namespace) -> int:
    from mpi4py import MPI

    from spinefe.mechanics.rom import rom_markdown, run_rom
    from spinefe.mechanics.segment import load_bearing

    cfg, model = _load(
        args,
        mechanics={"scenario": args.scenario, "solver": args.solver},
        rom={"moment_Nm": args.moment_Nm, "preload_N": args.preload_N, "motions": args.motions},
    )
    summary = run_rom(load_bearing(model), cfg, args.out)
    if MPI.COMM_WORLD.rank == 0:
        print(rom_markdown(summary))
    return 0


def _cmd_dose(args: argparse.Namespace) -> int:
    import numpy as np
    from mpi4py import MPI

    from dosimetry import read_plan
    from spinefe.dose.mesh_dose import evaluate_dose, metrics_markdown
    from spinefe.report.dose_files import write_dose_results

    if args.plan and args.activity_mCi is not None:
        raise ConfigError("--activity-mCi: not with --plan (the plan gives each seed's strength)")
    plan = read_plan(args.plan) if args.plan else None  # bad input fails before meshing
    cfg, model = _load(args, dosimetry={"activity_mCi": args.activity_mCi,
                                        "prescription_Gy": args.prescription_Gy})
    meshed = np.array([s.position_mm for s in cfg.seeds]).reshape(-1, 3)
    if plan is not None and (meshed.shape != plan.positions_mm.shape
                             or not np.allclose(meshed, plan.positions_mm, atol=1e-6)):
        log.warning("the plan's seeds differ from the config's meshed capsules: the meshed "
                    "capsule cells stay excluded from the dose statistics, the plan's own "
                    "capsules only where their sample points fall inside them")
    result = evaluate_dose(model, cfg, plan)
    write_dose_results(model, cfg, result, args.out, figures=not args.no_figure)
    if MPI.COMM_WORLD.rank == 0:
        print(metrics_markdown(result, cfg.dosimetry.formalism))
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from mpi4py import MPI

    from dosimetry import write_plan
    from dosimetry.dicom import Study, write_rt_plan
    from spinefe.common.parallel import write_json
    from spinefe.common.provenance import provenance
    from spinefe.planning.patterns import plan_pattern

    cfg = _config(args, dosimetry={"activity_mCi": args.activity_mCi,
                                   "prescription_Gy": args.prescription_Gy})
    activity, rx = cfg.dosimetry.activity_mCi, cfg.dosimetry.prescription_Gy
    plan, needles, coverage = plan_pattern(cfg, args.access, args.density, activity, rx)
    summary = {
        "access": args.access, "density": args.density, "activity_mCi": activity,
        "prescription_Gy": rx, "seeds": coverage.seeds_needed,
        "d90_Gy_by_seed_count": coverage.d90_Gy,
        "needles": [{"name": n.name, "side": n.side, "entry_mm": n.entry_mm, "tip_mm": n.tip_mm,
                     "length_mm": n.length_mm} for n in needles],
        "provenance": provenance(MPI.COMM_WORLD, cfg.hash()),
    }
    if MPI.COMM_WORLD.rank == 0:
        args.out.mkdir(parents=True, exist_ok=True)
        write_plan(plan, args.out / "plan.toml")
        write_plan(plan, args.out / "plan.csv")
        write_rt_plan(plan, args.out / "rtplan.dcm", prescription_Gy=rx,
                      study=Study(provenance=summary["provenance"]))
        print(f"{plan.name}: {coverage.seeds_needed} seeds on {len(needles)} needles, lesion D90 "
              f"{coverage.d90_Gy[coverage.seeds_needed]:.1f} Gy (prescription {rx} Gy)")
    write_json(MPI.COMM_WORLD, summary, args.out / "summary.json")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from mpi4py import MPI

    from dosimetry import read_plan
    from spinefe.common.parallel import on_root, write_json
    from spinefe.common.provenance import provenance
    from spinefe.geometry.mesh import default_cache_dir
    from spinefe.planning.evaluation import PlanEvaluator, evaluate_conforming, evaluation_markdown

    comm = MPI.COMM_WORLD
    plan = read_plan(args.plan)  # every rank reads: a bad plan fails on all ranks
    cfg, model = _load(args, dosimetry={"prescription_Gy": args.prescription_Gy}, seeds=())
    record = {"embedded": PlanEvaluator(model, cfg, rule=args.rule).evaluate(plan).record(),
              "mpi_size": comm.size, "provenance": provenance(comm, cfg.hash())}
    if args.conforming:
        cache = None if args.no_cache else (args.cache_dir or default_cache_dir())
        record["conforming"] = evaluate_conforming(cfg, plan, comm, cache).record()
    write_json(comm, record, args.out / "evaluation.json")
    text = evaluation_markdown(record)
    on_root(comm, lambda: (args.out / "evaluation.md").write_text(text))
    if comm.rank == 0:
        print(text)
    return 0


def _cmd_optimise(args: argparse.Namespace) -> int:
    from mpi4py import MPI

    from spinefe.geometry.mesh import default_cache_dir
    from spinefe.planning.optimisation import optimise

    comm = MPI.COMM_WORLD
    cfg = _config(args, dosimetry={"prescription_Gy": args.prescription_Gy}, optimisation={
        "population": args.population, "generations": args.generations,
        "random_seed": args.seed, "mesh_size_mm": args.mesh_size_mm,
        "ranks_per_evaluation": args.ranks_per_evaluation, "hybrid": args.hybrid,
        "v150_max_percent": args.v150_max_percent, "v200_max_percent": args.v200_max_percent,
        "canal_d01cc_max_Gy": args.canal_d01cc_max_Gy})
    cache = None if args.no_cache else (args.cache_dir or default_cache_dir())
    summary = optimise(cfg, args.out, comm, cache, verify=not args.no_verify)
    if comm.rank == 0:
        print(f"{summary['evaluations']} designs ({summary['valid_designs']} valid) in "
              f"{summary['seconds']} s; {len(summary['front'])} on the front -> {args.out}")
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    from spinefe.config.toml import default_toml
    from spinefe.geometry.layout import check_layout

    if args.action == "default":
        sys.stdout.write(default_toml())
        return 0
    cfg = load_config(args.config)
    check_layout(cfg)
    print(f"{args.config}: valid, {len(cfg.seeds)} seeds, config hash {cfg.hash()}")
    return 0


def _cmd_mesh(args: argparse.Namespace) -> int:
    from mpi4py import MPI

    from spinefe.common.parallel import write_json
    from spinefe.common.provenance import provenance, stamp_xdmf
    from spinefe.geometry.mesh import mesh_summary, write_mesh_xdmf

    comm = MPI.COMM_WORLD
    cfg, model = _load(args)
    summary = mesh_summary(model)
    summary["config"] = cfg.model_dump(mode="json")
    summary["provenance"] = provenance(comm, cfg.hash())
    write_mesh_xdmf(model, args.out / "mesh.xdmf")
    stamp_xdmf(comm, args.out / "mesh.xdmf", summary["provenance"])
    if not args.no_figure:
        from spinefe.report.figures import render_segment

        render_segment(model, args.out / "segment.png")
    write_json(comm, summary, args.out / "summary.json")
    if comm.rank == 0:
        log.info(
            "mesh: %d cells, %d vertices, min quality %.3f, nucleus fraction %.4f -> %s",
            summary["cells"],
            summary["vertices"],
            summary["min_quality"],
            summary["nucleus_fraction"],
            args.out,
        )
    return 0


def _cmd_study(args: argparse.Namespace) -> int:
    from mpi4py import MPI

    from spinefe.study.runner import load_study

    comm = MPI.COMM_WORLD
    # every rank validates every case before any runs
    study = load_study(args.study, _overrides(args.set))
    out = args.out or Path("results") / study.name
    if args.action == "list":
        if comm.rank == 0:
            print(f"{study.name}: {len(study.cases)} cases of job {study.job!r}; varied: "
                  f"{', '.join(study.varied) or 'nothing'}")
            for case in study.cases:
                print(case.id, " ".join(f"{k}={case.parameters.get(k)}" for k in study.varied))
        return 0
    if args.action == "table":
        from spinefe.common.parallel import on_root
        from spinefe.study.runner import study_table, write_table

        on_root(comm, lambda: write_table(study, out))
        if comm.rank == 0:
            rows = study_table(study, out)
            counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "failed", "pending")}
            print(f"{out / 'summary.csv'}: {counts['ok']} done, {counts['failed']} failed, "
                  f"{counts['pending']} pending")
        return 0
    per_task = args.cases_per_task or 1
    if per_task < 1:
        raise ConfigError(f"--cases-per-task: {per_task}, must be at least 1")
    if args.action == "slurm":
        return _write_slurm(args, study, out, per_task)
    return _run_study(args, study, out, per_task)


def _overrides(pairs: list[str]) -> dict:
    """--set KEY=VALUE pairs as a mapping; VALUE is read as TOML (a bare word as a string)."""
    import tomllib

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set: {pair!r}, expected KEY=VALUE (e.g. mesh.size_mm=2.0)")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value
    return out


def _write_slurm(args, study, out: Path, per_task: int) -> int:
    import shlex

    from mpi4py import MPI

    from spinefe.study.slurm import slurm_script

    script = out / f"{study.name}.sbatch"
    if MPI.COMM_WORLD.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        sets = " ".join(f"--set {shlex.quote(pair)}" for pair in args.set)
        script.write_text(slurm_script(args.study, study.name, len(study.cases), out, script,
                                       args.ranks_per_case, per_task, args.time,
                                       args.partition, sets))
        print(f"{script}: sbatch {script}")
    return 0


def _run_study(args, study, out: Path, per_task: int) -> int:
    from mpi4py import MPI

    from spinefe.geometry.mesh import default_cache_dir
    from spinefe.study.runner import run_study

    cases = None
    if args.task is not None:
        start = args.task * per_task
        if not 0 <= start < len(study.cases):
            raise ConfigError(f"--task: {args.task}, allowed 0 to "
                              f"{(len(study.cases) - 1) // per_task} for {len(study.cases)} "
                              f"cases in chunks of {per_task}")
        cases = range(start, min(start + per_task, len(study.cases)))
    cache = None if args.no_cache else (args.cache_dir or default_cache_dir())
    try:
        run = run_study(study, out, MPI.COMM_WORLD, args.ranks_per_case, args.force, cache,
                        cases)
    except KeyboardInterrupt:
        comm = MPI.COMM_WORLD
        print(f"spinefe: interrupted (rank {comm.rank}); completed cases are in {out} and a "
              "rerun resumes", file=sys.stderr, flush=True)
        if comm.size > 1:  # the other ranks may wait in a collective: end them all
            comm.Abort(130)
        return 130
    if MPI.COMM_WORLD.rank == 0:
        print(f"study {study.name}: {run.ran} ran, {run.skipped} already done, {run.failed} "
              f"failed -> {run.table}")
    return min(10 + run.failed, 125) if run.failed else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from mpi4py import MPI

    from spinefe.common.parallel import on_root
    from spinefe.report.study_report import write_report

    paths = on_root(MPI.COMM_WORLD, lambda: write_report(args.results))
    if paths is not None:
        print(f"{paths[1]} ({paths[0].name} beside it)")
    return 0


def _cmd_provenance(args: argparse.Namespace) -> int:
    from mpi4py import MPI

    from spinefe.common.provenance import provenance_text, read_provenance

    try:
        record = read_provenance(args.result)
    except ValueError as err:
        raise ConfigError(f"RESULT: {err}") from None
    if MPI.COMM_WORLD.rank == 0:
        sys.stdout.write(provenance_text(record))
    return 0


def _cmd_rerun(args: argparse.Namespace) -> int:
    from mpi4py import MPI

    from spinefe.geometry.mesh import default_cache_dir
    from spinefe.study.runner import rerun_case

    comm = MPI.COMM_WORLD
    case_dir = args.result if args.result.is_dir() else args.result.parent
    out = args.out or case_dir / "rerun"
    cache = None if args.no_cache else (args.cache_dir or default_cache_dir())
    check = rerun_case(args.result, out, comm, cache)
    if comm.rank == 0:
        print(f"case {check['id']} rerun on {comm.size} rank(s) -> {check['out']}")
        if not check["same_id"]:
            print("  note: the recorded configuration hashes to another id now (a config "
                  "written by another spinefe version)")
        if check["recorded_mpi_size"] not in (None, comm.size):
            print(f"  note: recorded on {check['recorded_mpi_size']} rank(s): another "
                  "partition changes the last digits of iterative solves")
        for key, (then, now) in check["changed_versions"].items():
            print(f"  version changed: {key} {then} -> {now}")
        if check["status"] != check["recorded_status"]:
            print(f"  recorded {check['recorded_status']}, rerun {check['status']}: "
                  f"{check['error'] or ''}")
        for key, (then, now) in check["differences"].items():
            print(f"  differs: {key}: recorded {then!r}, rerun {now!r}")
    same = not check["differences"] and check["status"] == check["recorded_status"]
    if comm.rank == 0 and same:
        print("  every scalar matches the recorded one exactly")
    return 0 if same else 3


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from mpi4py import MPI

    from spinefe.common.parallel import setup_logging, share_cores

    comm = MPI.COMM_WORLD
    setup_logging(comm, logging.DEBUG if args.verbose else logging.INFO, args.log_all_ranks)
    share_cores(comm)
    handlers = {
        "config": _cmd_config,
        "mesh": _cmd_mesh,
        "solve": _cmd_solve,
        "compare": _cmd_compare,
        "dose": _cmd_dose,
        "rom": _cmd_rom,
        "plan": _cmd_plan,
        "evaluate": _cmd_evaluate,
        "optimise": _cmd_optimise,
        "study": _cmd_study,
        "report": _cmd_report,
        "provenance": _cmd_provenance,
        "rerun": _cmd_rerun,
    }
    try:
        return handlers[args.command](args)
    except (ConfigError, PlanError, PlanningError, SeedModelError) as err:
        if comm.rank == 0:
            print(f"spinefe: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        log.exception("spinefe: failed on rank %d", comm.rank)
        if comm.rank:  # the log shows rank 0 only: name the error before the abort
            print(f"spinefe: failed on rank {comm.rank}: {type(err).__name__}: {err}",
                  file=sys.stderr, flush=True)
        if comm.size > 1:
            comm.Abort(1)  # never leave the other ranks waiting in a collective
        return 1


if __name__ == "__main__":
    sys.exit(main())
