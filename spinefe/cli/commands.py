"""One function per command: the parsed arguments -> one library call -> what the user reads.

Every command takes the arguments and the world communicator and returns nothing; an outcome
other than success raises (the library's errors, or `CasesFailed`, `RerunDiffers` and
`Interrupted` below), and spinefe.cli.main maps each to its exit status. Only rank 0 prints;
a command whose pipeline writes a Markdown report prints that report.
"""

from __future__ import annotations

import logging
import sys
from argparse import Namespace
from pathlib import Path

from dosimetry import read_plan
from spinefe.common.errors import ConfigError
from spinefe.common.parallel import on_root
from spinefe.common.provenance import provenance_text, read_provenance
from spinefe.config.loading import load_config
from spinefe.config.overrides import override, parse_pairs, petsc_overrides
from spinefe.config.plans import plan_config
from spinefe.config.sections import Config
from spinefe.config.toml import default_toml
from spinefe.geometry.layout import check_layout
from spinefe.report.study_report import write_report
from spinefe.study.runner import Study, load_study, rerun_case, run_study, write_table
from spinefe.study.slurm import task_cases, write_slurm_script

# Start-up: `spinefe config ...` must not wait seconds for dolfinx, PETSc and gmsh, so the
# modules that import them (the pipelines, the mesh cache, the optimiser) are imported inside
# the commands that mesh or solve; every other import is above.

log = logging.getLogger("spinefe")


class CasesFailed(Exception):
    """Some cases of a study failed; each is recorded in its summary.json."""

    def __init__(self, failed: int):
        super().__init__(f"{failed} cases failed")
        self.failed = failed


class RerunDiffers(Exception):
    """A rerun did not reproduce its case (the differences are printed)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM; the message says what is kept."""


# ---------------------------------------------------------------------------------------------
# From the arguments to a configuration


def overrides(args: Namespace) -> dict:
    """The configuration overrides of a command line, as dotted keys: the flags that override
    one key (their dest is that key: spinefe.cli.parser._override; unset ones are None), then
    --set KEY=VALUE and --petsc KEY=VALUE (mechanics.petsc.KEY)."""
    flags = {k: v for k, v in vars(args).items() if "." in k and v is not None}
    return flags | parse_pairs(getattr(args, "set", [])) | petsc_overrides(
        getattr(args, "petsc", []))


def _config(args: Namespace) -> Config:
    """The segment of args.config (the built-in default without one) with the command line's
    overrides. Every rank validates, so a bad config fails on all ranks; the file's layout is
    checked as given, and again with the overrides when there are some."""
    cfg = load_config(args.config)
    check_layout(cfg)
    changed = override(cfg, overrides(args))
    if changed is not cfg:
        check_layout(changed)
    return changed


def _cache(args: Namespace) -> Path | None:
    """The mesh cache of --cache-dir, $SPINEFE_CACHE or the default; None with --no-cache."""
    from spinefe.geometry.mesh import default_cache_dir

    return None if args.no_cache else (args.cache_dir or default_cache_dir())


def _print_file(comm, path: Path) -> None:
    if comm.rank == 0:
        print(path.read_text())


# ---------------------------------------------------------------------------------------------
# The commands


def config(args: Namespace, comm) -> None:
    if args.action == "default":
        if comm.rank == 0:
            sys.stdout.write(default_toml())
        return
    cfg = load_config(args.config)
    check_layout(cfg)
    if comm.rank == 0:
        print(f"{args.config}: valid, {len(cfg.seeds)} seeds, config hash {cfg.hash()}")


def mesh(args: Namespace, comm) -> None:
    from spinefe.study import pipelines

    s = pipelines.mesh_segment(_config(args), args.out, comm, _cache(args),
                               figure=not args.no_figure)
    if comm.rank == 0:
        log.info("mesh: %d cells, %d vertices, min quality %.3f, nucleus fraction %.4f -> %s",
                 s["cells"], s["vertices"], s["min_quality"], s["nucleus_fraction"], args.out)


def _no_poroelastic_disc(cfg: Config) -> Config:
    """`cfg`, refused when it has a poroelastic disc: only creep solves it."""
    from spinefe.mechanics.materials import refuse_poroelastic

    refuse_poroelastic(cfg.materials)
    return cfg


def _linear_model(cfg: Config) -> Config:
    """`cfg`, refused when a material option needs the nonlinear model or is a poroelastic
    disc."""
    _no_poroelastic_disc(cfg)
    if keys := cfg.materials.finite_strain_keys():
        raise ConfigError(f"{', '.join(keys)}: a finite-strain law has no linear form; run "
                          "the nonlinear model (compare --nonlinear, rom, creep)")
    return cfg


def _consolidation_model(cfg: Config) -> Config:
    """`cfg`, refused where the creep of a poroelastic disc cannot use it (before meshing)."""
    from spinefe.mechanics.disc_consolidation import check_consolidation_model

    check_consolidation_model(cfg.materials, cfg.mechanics.nearly_incompressible_nu)
    return cfg


def _plan_model(cfg: Config) -> Config:
    """`cfg`, refused where plan evaluation cannot use it: a finite-strain law, a motion load
    case (its metrics are the axial load's), anisotropic bone in L4 (the seeds' hosts)."""
    from spinefe.planning.evaluation import require_axial_load

    _linear_model(cfg)
    require_axial_load(cfg.mechanics)
    if keys := [f"materials.{n}.anisotropy" for n, m in cfg.materials
                if m.anisotropy is not None]:  # (only bone takes anisotropy: Materials)
        raise ConfigError(f"{', '.join(keys)}: the embedded seeds need isotropic L4 bone")
    return cfg


def solve(args: Namespace, comm) -> None:
    from spinefe.study import pipelines

    r = pipelines.solve_scenario(_linear_model(_config(args)), args.out, comm, _cache(args),
                                 figure=not args.no_figure)
    log.info("solve %s: %d dofs, %d iterations, reaction %.6f N (applied %.6f N) -> %s",
             r.scenario, r.dofs, r.iterations, r.reaction_N, r.applied_N,
             args.out / "summary.json")


def compare(args: Namespace, comm) -> None:
    from spinefe.study import pipelines

    cfg = _no_poroelastic_disc(_config(args)) if args.nonlinear else _linear_model(_config(args))
    pipelines.segment_case(cfg, args.out, comm, _cache(args), nonlinear=args.nonlinear,
                           dose=False)
    _print_file(comm, args.out / "comparison.md")


def rom(args: Namespace, comm) -> None:
    from spinefe.study import pipelines

    pipelines.range_of_motion(_no_poroelastic_disc(_config(args)), args.out, comm, _cache(args))
    _print_file(comm, args.out / "rom.md")


def creep(args: Namespace, comm) -> None:
    from spinefe.study import pipelines

    cfg = _config(args)
    if cfg.materials.poroelastic_keys():
        _consolidation_model(cfg)
    elif all(m.relaxation is None for _, m in cfg.materials):
        raise ConfigError("creep: no material relaxes; give one a Prony series, e.g. "
                          "[materials.nucleus_pulposus.relaxation] g = [0.5], tau_s = [3600.0]")
    pipelines.segment_creep(cfg, args.out, comm, _cache(args), args.scenarios, args.hours)
    _print_file(comm, args.out / "creep.md")


def _implantable_plan(args: Namespace, cfg: Config, unchecked: bool = False,
                      meshed: bool = False):
    """The plan of --plan, refused before any meshing unless it can be implanted in the segment
    of `cfg` (every capsule inside bone, none in the canal, none overlapping another: the checks
    of a config's seeds); `unchecked` doses it anyway, with a warning (research: a seed in the
    disc, say); `meshed`: its capsules will be meshed (check_layout's grazing warning). Every
    rank reads and checks: a bad plan fails on all ranks."""
    given = read_plan(args.plan)
    if unchecked:
        log.warning("%s: --any-plan: the plan is dosed without checking that it can be "
                    "implanted (seeds in bone, not in the canal, not overlapping)", args.plan)
        return given
    check_layout(plan_config(cfg, given), meshed_seeds=meshed,
                 heading=f"{args.plan}: the plan cannot be implanted in the configured segment")
    return given


def dose(args: Namespace, comm) -> None:
    from spinefe.study import pipelines

    if args.plan and "dosimetry.activity_mCi" in overrides(args):
        raise ConfigError("--activity-mCi: not with --plan (the plan gives each seed's strength)")
    if args.any_plan and not args.plan:
        raise ConfigError("--any-plan: only with --plan")
    cfg = _config(args)
    given = _implantable_plan(args, cfg, args.any_plan) if args.plan else None
    pipelines.seed_dose(cfg, args.out, comm, _cache(args), given, figures=not args.no_figure)
    _print_file(comm, args.out / "metrics.md")


def plan(args: Namespace, comm) -> None:
    from spinefe.planning import pipelines

    result = pipelines.write_pattern_plan(_config(args), args.access, args.density, args.out,
                                          comm)
    if comm.rank == 0:
        print(result.text())


def evaluate(args: Namespace, comm) -> None:
    from spinefe.planning import pipelines

    cfg = _plan_model(_config(args))
    given = _implantable_plan(args, cfg, meshed=args.conforming)
    pipelines.evaluate_plan(cfg, given, args.out, comm, _cache(args), args.rule, args.conforming)
    _print_file(comm, args.out / "evaluation.md")


def optimise(args: Namespace, comm) -> None:
    from spinefe.planning import optimisation

    s = optimisation.optimise(_plan_model(_config(args)), args.out, comm, _cache(args),
                              verify=not args.no_verify)
    if comm.rank == 0:
        print(f"{s['evaluations']} designs ({s['valid_designs']} valid) in {s['seconds']} s; "
              f"{len(s['front'])} on the front -> {args.out}")


def study(args: Namespace, comm) -> None:
    # every rank validates every case before any runs
    loaded = load_study(args.study, overrides(args))
    STUDY_ACTIONS[args.action](args, comm, loaded, args.out or Path("results") / loaded.name)


def _study_list(args: Namespace, comm, study: Study, out: Path) -> None:
    if comm.rank == 0:
        print(f"{study.name}: {len(study.cases)} cases of job {study.job!r}; varied: "
              f"{', '.join(study.varied) or 'nothing'}")
        for case in study.cases:
            print(case.id, " ".join(f"{k}={case.parameters.get(k)}" for k in study.varied))


def _study_table(args: Namespace, comm, study: Study, out: Path) -> None:
    counts = on_root(comm, lambda: write_table(study, out))
    if comm.rank == 0:
        print(f"{out / 'summary.csv'}: {counts['ok']} done, {counts['failed']} failed, "
              f"{counts['pending']} pending")


def _cases_per_task(args: Namespace) -> int:
    per_task = args.cases_per_task or 1
    if per_task < 1:
        raise ConfigError(f"--cases-per-task: {per_task}, must be at least 1")
    return per_task


def _study_slurm(args: Namespace, comm, study: Study, out: Path) -> None:
    per_task = _cases_per_task(args)
    options = [t for pair in args.set for t in ("--set", pair)]
    options += [t for pair in args.petsc for t in ("--petsc", pair)]
    script = on_root(comm, lambda: write_slurm_script(
        args.study, study.name, len(study.cases), out, args.ranks_per_case, per_task,
        args.time, args.partition, options))
    if comm.rank == 0:
        print(f"{script}: sbatch {script}")


def _study_run(args: Namespace, comm, study: Study, out: Path) -> None:
    per_task = _cases_per_task(args)
    cases = None if args.task is None else task_cases(args.task, per_task, len(study.cases))
    try:
        run = run_study(study, out, comm, args.ranks_per_case, args.force, _cache(args), cases)
    except KeyboardInterrupt:
        raise Interrupted(f"completed cases are in {out} and a rerun resumes") from None
    if comm.rank == 0:
        claimed = f", {run.claimed} left to another runner" if run.claimed else ""
        print(f"study {study.name}: {run.ran} ran, {run.skipped} already done, {run.failed} "
              f"failed{claimed} -> {run.table}")
    if run.failed:
        raise CasesFailed(run.failed)


STUDY_ACTIONS = {"list": _study_list, "table": _study_table, "slurm": _study_slurm,
                 "run": _study_run}


def report(args: Namespace, comm) -> None:
    paths = on_root(comm, lambda: write_report(args.results))
    if paths is not None:
        print(f"{paths[1]} ({paths[0].name} beside it)")


def provenance(args: Namespace, comm) -> None:
    try:
        record = read_provenance(args.result)
    except ValueError as err:
        raise ConfigError(f"RESULT: {err}") from None
    if comm.rank == 0:
        sys.stdout.write(provenance_text(record))


def rerun(args: Namespace, comm) -> None:
    case_dir = args.result if args.result.is_dir() else args.result.parent
    check = rerun_case(args.result, args.out or case_dir / "rerun", comm, _cache(args))
    if comm.rank == 0:
        sys.stdout.write(check.text())
    if not check.matches:
        raise RerunDiffers(f"case {check.id}: {len(check.differences)} scalars differ")


COMMANDS = {"config": config, "mesh": mesh, "solve": solve, "compare": compare, "dose": dose,
            "rom": rom, "creep": creep, "plan": plan, "evaluate": evaluate, "optimise": optimise,
            "study": study, "report": report, "provenance": provenance, "rerun": rerun}
