"""Studies: many cases of one model with one or two things varied, run, resumed and tabulated.

A study is a TOML file (studies/NAME.toml):

    [study]
    job = "segment"               # what every case runs: a name of spinefe.study.jobs.JOBS
    question = "..."              # what the study asks (the report's first line)

    [base]                        # the segment configuration every case starts from: any
    mesh = { size_mm = 1.0 }      # sections of `spinefe config default`, partial

    [job]                         # the job's own parameters (its pydantic model, jobs.py)
    access = "bilateral"

    [axes]                        # varied keys: dotted config keys or job.KEY
    "dosimetry.activity_mCi" = [0.3, 0.45, 0.6, 0.8]
    "job.density" = ["dense", "sparse"]

The cases are the product of the axes (the first axis varies slowest), or the explicit
`[[cases]]` tables (dotted keys, each a case) when there are no axes; an axis may also be a
range, `{ start = 1.0, stop = 0.5, num = 6 }` (numpy.linspace). Every case is validated before
any runs; its id is the first 12 hex digits of the SHA-256 of its full validated
configuration (segment config, job name and job parameters), so equal cases share an id and a
changed case gets a new one.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import os
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dosimetry.plan import write_text_atomic
from spinefe.common.errors import ConfigError
from spinefe.common.hashing import canonical_hash
from spinefe.common.parallel import on_root, write_csv
from spinefe.common.progress import Progress
from spinefe.common.provenance import provenance
from spinefe.config.loading import (
    format_validation_error,
    parse_config,
    read_toml,
    validate_strict,
)
from spinefe.config.overrides import apply, flatten, merge
from spinefe.config.sections import Config
from spinefe.geometry.layout import check_layout

log = logging.getLogger(__name__)


class AxisRange(BaseModel):
    """`num` values from `start` to `stop`, both included (numpy.linspace)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    start: float
    stop: float
    num: int = Field(ge=1, le=1000)

    def values(self) -> list[float]:
        """The values, rounded to 12 significant digits (0.9, not 0.8999999999999999, so that
        a case equals the one written by hand)."""
        return [float(f"{v:.12g}") for v in np.linspace(self.start, self.stop, self.num)]


class StudySection(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    job: str = Field(description="what every case runs (spinefe.study.jobs.JOBS)")
    question: str = Field("", description="what the study asks")


class StudyFile(BaseModel):
    """The TOML file as written; `load_study` expands it."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    study: StudySection
    base: dict[str, Any] = Field(default_factory=dict)
    job: dict[str, Any] = Field(default_factory=dict)
    axes: dict[str, list[Any] | AxisRange] = Field(default_factory=dict)
    cases: list[dict[str, Any]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _axes_or_cases(self):
        if self.axes and self.cases:
            raise ValueError("give [axes] or [[cases]], not both")
        for key, values in self.axes.items():
            if isinstance(values, list) and not values:
                raise ValueError(f"axes.{key}: empty list")
        return self


@dataclass(frozen=True)
class Case:
    """One case: the values of the varied keys, its validated configuration and job
    parameters, and its id (hash of all three but the parameters, which they determine)."""

    parameters: dict
    config: Config
    job_name: str
    job: BaseModel

    @cached_property
    def record(self) -> dict:
        """The full configuration as plain JSON (what the id hashes)."""
        return {"config": self.config.model_dump(mode="json"),
                "job": {"name": self.job_name, **self.job.model_dump(mode="json")}}

    @cached_property
    def id(self) -> str:
        return case_id(self.record)


@dataclass(frozen=True)
class Study:
    name: str
    job: str
    question: str
    cases: tuple[Case, ...]
    path: Path
    overrides: dict

    def record(self) -> dict:
        """What the report needs to know of the study (results/NAME/study.json)."""
        return {"name": self.name, "job": self.job, "question": self.question,
                "varied": self.varied, "overrides": self.overrides,
                "cases": [{"id": c.id, "parameters": c.parameters} for c in self.cases],
                "source": str(self.path), "text": self.path.read_text()}

    @cached_property
    def varied(self) -> list[str]:
        """The keys that vary between cases, in the order of the study file."""
        keys = dict.fromkeys(k for case in self.cases for k in case.parameters)
        return [k for k in keys if len({json.dumps(c.parameters.get(k)) for c in self.cases}) > 1]


def _job_parameters(name: str, model: type[BaseModel], data: dict, where: str) -> BaseModel:
    """The job's parameters validated by its model; ConfigError naming `where` and the key."""
    try:
        return validate_strict(model, data)
    except ValidationError as err:
        keys = f"the job {name!r} takes {', '.join(model.model_fields)}"
        raise ConfigError(format_validation_error(err, f"{where}: invalid job parameters",
                                                  "job.", keys)) from None


def case_id(record: dict) -> str:
    """12 hex digits of the hash of a case's full configuration (Case.record)."""
    return canonical_hash(record, digits=12)


def load_study(path: str | Path, overrides: dict[str, Any] | None = None) -> Study:
    """Read, expand and validate a study file; `overrides` (dotted keys, as in [axes]) replace
    base or job values in every case (e.g. a coarser mesh for a demo); ConfigError names the
    file, the case and the key of every problem (before any case runs)."""
    # The jobs import the pipelines and so dolfinx: imported when a study is loaded, so that
    # the commands that load none (config, report, provenance) start without dolfinx.
    from spinefe.study.jobs import JOBS

    path = Path(path)
    raw = read_toml(path, "study file")
    try:
        spec = validate_strict(StudyFile, raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(
            err, f"{path}: invalid study file",
            keys="docs/studies.md lists a study file's tables and keys")) from None
    if spec.study.job not in JOBS:
        raise ConfigError(f"{path}: study.job: {spec.study.job!r}, allowed: "
                          f"{', '.join(sorted(JOBS))}")
    parameters_model = JOBS[spec.study.job].parameters
    if spec.axes:
        keys = list(spec.axes)
        values = [v.values() if isinstance(v, AxisRange) else v for v in spec.axes.values()]
        variations = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]
    else:
        variations = spec.cases or [{}]
    overrides = flatten(overrides or {})
    varied = {k for parameters in variations for k in flatten(parameters)}
    if shadowed := sorted(varied & set(overrides)):
        raise ConfigError(f"{path}: --set {', '.join(shadowed)}: varied by the study's cases; "
                          "an override would have no effect")
    cases = []
    for i, parameters in enumerate(variations):
        where = f"{path}: case {i} ({json.dumps(parameters)})"
        changes = {**overrides, **flatten(parameters)}
        try:
            data = merge(Config().model_dump(mode="json"), spec.base)
            apply(data, {k: v for k, v in changes.items() if not k.startswith("job.")})
            job_data = apply(copy.deepcopy(spec.job),
                             {k[4:]: v for k, v in changes.items() if k.startswith("job.")})
            config = parse_config(data)
            check_layout(config)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
        job = _job_parameters(spec.study.job, parameters_model, job_data, where)
        cases.append(Case(parameters, config, spec.study.job, job))
    ids = [c.id for c in cases]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{path}: two cases have the same configuration")
    return Study(path.stem, spec.study.job, spec.study.question, tuple(cases), path, overrides)


# ---------------------------------------------------------------------------------------------
# Running


@dataclass(frozen=True)
class StudyRun:
    """What a run did: counts of cases run, skipped (already done), failed and claimed (being
    run by another runner: left to it), and where."""

    ran: int
    skipped: int
    failed: int
    table: Path
    claimed: int = 0


#: A case directory's claim: which runner (host, pid) runs the case, made exclusively before
#: the case runs and removed after its summary is written.
CLAIM = "claim.json"


def _claim(directory: Path) -> str | None:
    """Claim the case `directory` for this process; None when it got the claim, else who holds
    it. Two runners of one study into one directory (two Slurm array tasks by mistake) so share
    the cases instead of computing each twice. A claim of a process that no longer runs on this
    host is taken over; one of another host is held until removed by hand (its runner cannot be
    checked from here). Root of a case's group only."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CLAIM
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text())
                host, pid = holder["host"], int(holder["pid"])
            except (OSError, ValueError, KeyError, TypeError):
                return f"a runner writing {path}"
            if host == socket.gethostname() and not _alive(pid):
                path.unlink(missing_ok=True)  # its runner died: take the case over
                continue
            return f"{host} pid {pid} (since {holder.get('utc')}; {path})"
        with os.fdopen(fd, "w") as f:
            json.dump({"host": socket.gethostname(), "pid": os.getpid(),
                       "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, f)
        return None
    return f"another runner ({path})"


def _alive(pid: int) -> bool:
    """Whether process `pid` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _read_summary(path: Path) -> dict | None:
    """A case's summary.json, None where there is none yet or it is unreadable (a warning names
    the file: the case counts as pending, and a run does it again)."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        log.warning("%s: not a readable summary (%s); the case counts as pending", path, err)
        return None


#: Set by the SIGTERM handler of `run_study`. An interrupt raised inside a PETSc callback (the
#: contact step limit of a Newton line search) comes back out of PETSc as an error (code 101);
#: this flag tells it from a failure of the case, which would be recorded as failed.
_TERMINATED = threading.Event()


def run_case(case: Case, out: Path, comm, force: bool = False, cache_dir=None) -> str:
    """Run one case on `comm` into out/<id>/ unless its summary.json holds a successful run of
    the same configuration (`force` reruns) or another runner has claimed it (`_claim`); returns
    'ok', 'skipped', 'failed' or 'claimed'; collective.

    A failure is recorded in the summary (status 'failed', the error) and returned, not raised;
    the errors the library raises together on every rank are caught on a group of several ranks
    (another error there ends the run, as a rank alone cannot be caught up with), any error on
    a group of one. The summary is written atomically: an interrupted case leaves none.
    """
    path = out / case.id / "summary.json"

    def completed() -> bool:
        if force:  # from scratch: the job's own checkpoints go too
            shutil.rmtree(out / case.id, ignore_errors=True)
            return False
        done = _read_summary(path)
        return (done is not None and done.get("status") == "ok"
                and case_id(done.get("config", {})) == case.id)

    if comm.bcast(on_root(comm, completed), root=0):
        return "skipped"
    holder = comm.bcast(_claim(out / case.id) if comm.rank == 0 else None, root=0)
    if holder is not None:
        if comm.rank == 0:
            log.warning("case %s: being run by %s; left to it", case.id, holder)
        return "claimed"
    try:
        return _run_claimed(case, out, comm, cache_dir)
    finally:
        if comm.rank == 0:
            (out / case.id / CLAIM).unlink(missing_ok=True)


def _run_claimed(case: Case, out: Path, comm, cache_dir) -> str:
    """Run the claimed case and write its summary (`run_case`); the status; collective."""
    from spinefe.study.jobs import COLLECTIVE_ERRORS, JOBS  # (see load_study)

    catch = Exception if comm.size == 1 else COLLECTIVE_ERRORS
    t0 = time.perf_counter()
    scalars, error, trace = {}, None, None
    try:
        scalars = JOBS[case.job_name].run(case, out / case.id, comm, cache_dir).to_dict()
    except catch as err:
        if _TERMINATED.is_set():  # the interrupt, turned into an error by a PETSc callback
            raise KeyboardInterrupt("terminated during the case") from err
        error, trace = f"{type(err).__name__}: {err}", traceback.format_exc()
        # logged by every rank of the group: the log shows world rank 0 only
        print(f"spinefe: case {case.id} {json.dumps(case.parameters)} failed: {error}",
              file=sys.stderr, flush=True)
    summary = {
        "id": case.id, "status": "failed" if error else "ok", "error": error,
        "traceback": trace,
        "parameters": case.parameters, "scalars": scalars,
        "seconds": round(time.perf_counter() - t0, 2),
        "config": case.record, "provenance": provenance(comm, case.config.hash()),
    }
    if comm.rank == 0:
        write_text_atomic(out / case.id / "summary.json",
                          json.dumps(summary, indent=1, default=float))
    return summary["status"]


def case_from_summary(summary: dict) -> Case:
    """The case a summary.json records (its parameters, config and job), validated again."""
    from spinefe.study.jobs import JOBS

    try:
        record = summary["config"]
        job = dict(record["job"])
        name = job.pop("name")
        parameters_model = JOBS[name].parameters
    except (KeyError, TypeError) as err:
        raise ConfigError(f"the summary records no case configuration (missing {err})") from None
    config = parse_config(record["config"])
    check_layout(config)
    return Case(summary.get("parameters", {}), config, name,
                _job_parameters(name, parameters_model, job, "recorded"))


def _same(a, b) -> bool:
    """Equal scalars, bit for bit (NaN equals NaN: a missing metric reproduced)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (a != a and b != b)
    return a == b


@dataclass(frozen=True)
class RerunCheck:
    """A study case run again from its recorded configuration (`rerun_case`), against the
    record: the scalars that differ ({key: [recorded, rerun]}), the versions that changed
    ({key: [recorded, now]}), both statuses."""

    id: str
    same_id: bool
    status: str
    recorded_status: str | None
    error: str | None
    differences: dict
    changed_versions: dict
    recorded_mpi_size: int | None
    mpi_size: int
    out: str

    @property
    def matches(self) -> bool:
        """Every scalar reproduced bit for bit, and the same status."""
        return not self.differences and self.status == self.recorded_status

    def to_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        """The report of `spinefe rerun`: where, the notes that explain last-digit changes, and
        every difference (or that there is none)."""
        lines = [f"case {self.id} rerun on {self.mpi_size} rank(s) -> {self.out}"]
        if not self.same_id:
            lines.append("  note: the recorded configuration hashes to another id now (a config "
                         "written by another spinefe version)")
        if self.recorded_mpi_size not in (None, self.mpi_size):
            lines.append(f"  note: recorded on {self.recorded_mpi_size} rank(s): another "
                         "partition changes the last digits of iterative solves")
        for key, (then, now) in self.changed_versions.items():
            lines.append(f"  version changed: {key} {then} -> {now}")
        if self.status != self.recorded_status:
            lines.append(f"  recorded {self.recorded_status}, rerun {self.status}: "
                         f"{self.error or ''}")
        for key, (then, now) in self.differences.items():
            lines.append(f"  differs: {key}: recorded {then!r}, rerun {now!r}")
        if self.matches:
            lines.append("  every scalar matches the recorded one exactly")
        return "\n".join(lines) + "\n"


def rerun_case(result: Path, out: Path, comm, cache_dir=None) -> RerunCheck:
    """Run again the study case whose summary.json is `result` (or in the directory `result`)
    from its recorded configuration, into out/<id>/, and compare the scalars exactly;
    collective."""
    path = result / "summary.json" if result.is_dir() else result
    recorded = _read_summary(path)
    if recorded is None:
        raise ConfigError(f"{path}: not a study case's summary.json (missing or not JSON)")
    case = case_from_summary(recorded)
    if (out / case.id).resolve() == path.parent.resolve():
        raise ConfigError(f"--out: {out}: the rerun would replace the recorded case; choose "
                          "another directory")
    status = run_case(case, out, comm, force=True, cache_dir=cache_dir)
    new = _read_summary(out / case.id / "summary.json") if comm.rank == 0 else None
    new = comm.bcast(new, root=0)
    old_scalars, new_scalars = recorded.get("scalars", {}), new["scalars"]
    differences = {k: [old_scalars.get(k), new_scalars.get(k)]
                   for k in dict.fromkeys([*old_scalars, *new_scalars])
                   if not _same(old_scalars.get(k), new_scalars.get(k))}
    then, now = recorded.get("provenance", {}), provenance(comm)
    changed = {k: [then.get(k), now[k]] for k in now
               if k not in ("mpi_size", "config_hash", "host", "utc") and then.get(k) != now[k]}
    return RerunCheck(case.id, case.id == recorded.get("id"), status, recorded.get("status"),
                      new.get("error"), differences, changed, then.get("mpi_size"), comm.size,
                      str(out / case.id))


def study_table(study: Study, out: Path) -> list[dict]:
    """One row per case, in the study's order: id, status, the varied keys, the scalars
    ('pending' where no summary is written yet)."""
    rows = []
    for case in study.cases:
        summary = _read_summary(out / case.id / "summary.json")
        if summary is None or case_id(summary.get("config", {})) != case.id:
            summary = {"status": "pending", "scalars": {}}
        row = {"case": case.id, "status": summary["status"]}
        row |= {key: case.parameters.get(key) for key in study.varied}
        rows.append(row | summary["scalars"])
    return rows


def write_table(study: Study, out: Path) -> dict[str, int]:
    """out/summary.csv from the case summaries written so far (`study_table`); returns the
    number of cases per status ('ok', 'failed', 'pending')."""
    rows = study_table(study, out)
    write_csv(rows, out / "summary.csv")
    return {s: sum(r["status"] == s for r in rows) for s in ("ok", "failed", "pending")}


class _Queue:
    """The cases of one run dealt to its groups: a group's root takes case i by creating
    out/.queue-<run>/i exclusively (the first to create it has it) and marks it finished with
    i.<status>. Written by hand on the file system, not with MPI one-sided operations: MPICH
    completes a passive-target update only when the target rank next calls MPI, so a group
    would wait for rank 0's case to end (measured: a 3 s wait behind a 3 s case). Created by
    every rank (collective), used by the groups' roots, removed by rank 0 after the run."""

    def __init__(self, out: Path, comm):
        token = comm.bcast(f"{os.getpid()}-{time.time_ns()}" if comm.rank == 0 else None)
        self.directory = out / f".queue-{token}"
        if comm.rank == 0:
            self.directory.mkdir(parents=True)
        comm.Barrier()

    def take(self, start: int, total: int) -> int | None:
        """The first case from `start` on that no group has taken, now this one's; None when
        every case is taken."""
        for i in range(start, total):
            try:
                os.close(os.open(self.directory / str(i), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                continue
            return i
        return None

    def finish(self, index: int, status: str) -> None:
        (self.directory / f"{index}.{status}").touch()

    def finished(self) -> tuple[int, int]:
        """Cases finished by every group so far, and of those failed."""
        names = [p.suffix for p in self.directory.glob("*.*")]
        return len(names), names.count(".failed")

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def run_study(study: Study, out: Path, comm, ranks_per_case: int = 1, force: bool = False,
              cache_dir=None, cases: range | None = None) -> StudyRun:
    """Run the study's cases (or those of `cases`, indices) into out/<case id>/ and write the
    table out/summary.csv; collective.

    The ranks are split into groups of `ranks_per_case`; a group that is free takes the next
    case in the study's order (`_Queue`), so a long case holds up no other group. Rank 0 shows
    the cases of all groups finished so far. SIGTERM is turned into KeyboardInterrupt, which
    ends the run between atomic writes: no summary is ever half written.
    """
    if ranks_per_case < 1 or comm.size % ranks_per_case:
        raise ConfigError(f"--ranks-per-case: {ranks_per_case} must divide the {comm.size} "
                          "MPI ranks")
    if comm.rank == 0:
        write_text_atomic(out / "study.json", json.dumps(study.record(), indent=1))
    group = comm.Split(comm.rank // ranks_per_case, comm.rank)
    chosen = [study.cases[i] for i in (cases if cases is not None else range(len(study.cases)))]
    counts = dict.fromkeys(("ok", "skipped", "failed", "claimed"), 0)  # this group's

    def terminate(signum, frame):
        _TERMINATED.set()
        raise KeyboardInterrupt(f"signal {signum}")

    _TERMINATED.clear()

    previous = signal.signal(signal.SIGTERM, terminate)
    queue = _Queue(out, comm)
    try:
        with Progress(len(chosen), f"study {study.name}", comm) as progress:
            mine = -1
            while True:
                # The next case in the study's order to the first group free to take it.
                mine = group.bcast(queue.take(mine + 1, len(chosen)) if group.rank == 0
                                   else None)
                if mine is None:
                    break
                status = run_case(chosen[mine], out, group, force, cache_dir)
                counts[status] += 1
                if group.rank == 0:
                    queue.finish(mine, status)
                if comm.rank == 0:  # the cases of every group finished so far
                    finished, failed = queue.finished()
                    progress.update(finished - progress.done, failed=failed)
            totals = {s: sum(c[s] for c in comm.allgather(counts if group.rank == 0 else {})
                             if c) for s in counts}
            progress.update(len(chosen) - progress.done, failed=totals["failed"])
    finally:
        signal.signal(signal.SIGTERM, previous)
        group.Free()
        if comm.rank == 0:  # past the allgather (or interrupted): no group takes cases any more
            queue.remove()
    comm.Barrier()  # every group's summaries are written
    on_root(comm, lambda: write_table(study, out))
    return StudyRun(totals["ok"], totals["skipped"], totals["failed"], out / "summary.csv",
                    totals["claimed"])
