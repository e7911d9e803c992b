"""Studies: case expansion and ids, the runner (resume, failures, interrupts, MPI groups), the
Slurm array and the clinical reanalysis."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from mpi4py import MPI

from spinefe.common.errors import ConfigError
from spinefe.common.provenance import read_provenance

from conftest import TEST_H, coarse, require_or_skip

CLINICAL = """
[study]
job = "clinical_vas"
question = "Do the VAS scores of the paper's two groups differ?"
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def shared_tmp(tmp_path_factory, name: str) -> Path:
    """One directory for every rank (rank 0 makes it)."""
    comm = MPI.COMM_WORLD
    path = str(tmp_path_factory.mktemp(name)) if comm.rank == 0 else None
    return Path(comm.bcast(path, root=0))


# ---------------------------------------------------------------------------------------------
# Case expansion


def test_axes_expand_to_their_product_with_ids_from_the_config(tmp_path):
    from spinefe.study.runner import load_study

    text = """
[study]
job = "segment"
[base]
mesh = { size_mm = 2.0 }
[job]
dose = false
[axes]
"dosimetry.activity_mCi" = [0.3, 0.8]
"job.density" = ["dense", "sparse"]
"""
    study = load_study(write(tmp_path / "s.toml", text))
    assert study.name == "s" and len(study.cases) == 4
    assert [c.parameters for c in study.cases][:2] == [
        {"dosimetry.activity_mCi": 0.3, "job.density": "dense"},
        {"dosimetry.activity_mCi": 0.3, "job.density": "sparse"}]
    first = study.cases[0]
    assert first.config.mesh.size_mm == 2.0 and first.config.dosimetry.activity_mCi == 0.3
    assert first.job.density == "dense" and first.job.dose is False
    assert study.varied == ["dosimetry.activity_mCi", "job.density"]
    ids = [c.id for c in study.cases]
    assert len(set(ids)) == 4 and all(len(i) == 12 for i in ids)
    # the same file gives the same ids; one changed axis value changes only its cases
    assert [c.id for c in load_study(tmp_path / "s.toml").cases] == ids
    changed = load_study(write(tmp_path / "s.toml", text.replace("0.8]", "0.6]")))
    assert [c.id for c in changed.cases][:2] == ids[:2] and not set(ids[2:]) & {
        c.id for c in changed.cases}
    # a base value changes every id
    base = load_study(write(tmp_path / "s.toml", text.replace("2.0", "1.9")))
    assert not set(ids) & {c.id for c in base.cases}


def test_nested_tables_set_one_value_and_overrides_apply_to_every_case(tmp_path):
    """An unquoted dotted key in a case is a nested table in TOML: it sets one value, the rest
    of the section stays the base's; --set overrides every case but not a varied key."""
    from spinefe.study.runner import load_study

    text = """
[study]
job = "segment"
[base]
dosimetry = { prescription_Gy = 140.0, activity_mCi = 0.5 }
[[cases]]
dosimetry.activity_mCi = 0.8
[[cases]]
"dosimetry.activity_mCi" = 0.3
"""
    study = load_study(write(tmp_path / "s.toml", text), {"mesh": {"size_mm": 2.0}})
    assert [c.config.dosimetry.prescription_Gy for c in study.cases] == [140.0, 140.0]
    assert [c.config.dosimetry.activity_mCi for c in study.cases] == [0.8, 0.3]
    assert all(c.config.mesh.size_mm == 2.0 for c in study.cases)
    assert study.overrides == {"mesh.size_mm": 2.0}
    with pytest.raises(ConfigError, match="--set dosimetry.activity_mCi: varied by the study"):
        load_study(tmp_path / "s.toml", {"dosimetry.activity_mCi": 0.4})


def test_a_truncated_case_summary_is_named(tmp_path, caplog):
    """Issue 25, family 4: `study table` counts a case whose summary.json is truncated as
    pending and names the file in a warning; `spinefe report` refuses naming it, writing
    nothing."""
    import logging

    from spinefe.report.study_report import write_report
    from spinefe.study.runner import load_study, run_study, write_table

    study = load_study(write(tmp_path / "c.toml", CLINICAL))
    out = tmp_path / "out"
    run_study(study, out, MPI.COMM_SELF)
    summary = out / study.cases[0].id / "summary.json"
    summary.write_text(summary.read_text()[:40])
    with pytest.raises(ConfigError, match="summary.json: not a readable case summary"):
        write_report(out)
    assert not (out / "report.md").exists() and not (out / "report_files").exists()
    with caplog.at_level(logging.WARNING):
        counts = write_table(study, out)
    assert counts["pending"] == 1 and f"{summary}: not a readable summary" in caplog.text


def test_explicit_cases_and_ranges(tmp_path):
    from spinefe.study.runner import load_study

    cases = load_study(write(tmp_path / "c.toml", CLINICAL + """
[[cases]]
"job.n" = [41, 55]
[[cases]]
"job.n" = [20, 20]
"""))
    assert [c.job.n for c in cases.cases] == [(41, 55), (20, 20)]
    ranged = load_study(write(tmp_path / "r.toml", """
[study]
job = "segment"
[axes]
"mesh.size_mm" = { start = 1.0, stop = 0.5, num = 6 }
"""))
    assert [c.config.mesh.size_mm for c in ranged.cases] == pytest.approx(
        [1.0, 0.9, 0.8, 0.7, 0.6, 0.5])


@pytest.mark.parametrize(("text", "message"), [
    ("[study]\njob = 'solve'\n", "study.job: 'solve', allowed: clinical_vas, optimise, rom, "
     "segment"),
    ("[study]\njob = 'segment'\n[axes]\n'mesh.size_mm' = [1.0, 9.0]\n",
     "case 1 ({\"mesh.size_mm\": 9.0}): invalid configuration:\n  mesh.size_mm: Input should "
     "be less than or equal to 5"),
    ("[study]\njob = 'segment'\n[axes]\n'job.access' = ['lateral']\n", "job.access"),
    ("[study]\njob = 'segment'\n[axes]\n'mesh.size_mm' = []\n", "axes.mesh.size_mm: empty list"),
    ("[study]\njob = 'segment'\n[axes]\n'a.b' = [1]\n[[cases]]\n'a.b' = 1\n", "not both"),
    ("[study]\njob = 'segment'\nfoo = 1\n", "study.foo"),
    ("[study]\njob = 'segment'\n[axes]\n'job.dose' = [true, true]\n", "same configuration"),
    ("[study]\njob = 'clinical_vas'\n[job]\ntimes = ['pre', 'post']\n",
     "one entry per time point each"),
    ("[study]\njob = 'clinical_vas'\n[job]\nn = [1, 30]\n", "at least 2 patients"),
    # Strict types (issue 25): a quoted number or a number as a flag is refused, naming the key.
    ("[study]\njob = 'segment'\n[axes]\n'mesh.size_mm' = ['2.0']\n",
     "mesh.size_mm: Input should be a valid number, got '2.0'"),
    ("[study]\njob = 'segment'\n[job]\ndose = 1\n", "job.dose: Input should be a valid "
     "boolean, got 1"),
])
def test_bad_study_files_are_refused_naming_the_key(tmp_path, text, message):
    from spinefe.study.runner import load_study

    with pytest.raises(ConfigError, match="s.toml") as err:
        load_study(write(tmp_path / "s.toml", text))
    assert message in str(err.value)


# ---------------------------------------------------------------------------------------------
# The runner, on the clinical job (no mesh: fast)

RUNNER = CLINICAL + """
[axes]
"job.n" = [[41, 55], [20, 20], [30, 25]]
"""


def table(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def failing_for(monkeypatch, n: tuple[int, int], error=ValueError):
    """The clinical job, made to raise `error` for the case of group sizes `n`."""
    from spinefe.study import jobs

    real = jobs.JOBS["clinical_vas"]

    def run(case, out, comm, cache_dir):
        if case.job.n == n:
            raise error(f"deliberate failure of n = {list(n)}")
        return real.run(case, out, comm, cache_dir)

    monkeypatch.setitem(jobs.JOBS, "clinical_vas", jobs.Job(real.parameters, run, "failing"))


def test_a_case_another_runner_claimed_is_left_to_it(tmp_path, caplog):
    """Issue 25, family 6: two runners of one study into one directory share the cases. A case
    whose directory holds the claim of a live process is left to it, with a warning; the claim
    of a process that has ended is taken over; a run leaves no claim behind."""
    import logging
    import socket
    import subprocess

    from spinefe.study.runner import CLAIM, load_study, run_study

    study = load_study(write(tmp_path / "vas.toml", RUNNER))
    out = tmp_path / "out"
    ended = subprocess.Popen(["true"])
    ended.wait()
    for case, pid in ((study.cases[0], os.getppid()), (study.cases[1], ended.pid)):
        (out / case.id).mkdir(parents=True)
        (out / case.id / CLAIM).write_text(json.dumps(
            {"host": socket.gethostname(), "pid": pid, "utc": "2026-12-07T00:00:00Z"}))
    with caplog.at_level(logging.WARNING):
        run = run_study(study, out, MPI.COMM_SELF)
    assert (run.ran, run.claimed) == (2, 1)
    assert f"case {study.cases[0].id}: being run by" in caplog.text
    assert not (out / study.cases[0].id / "summary.json").exists()
    assert not (out / study.cases[1].id / CLAIM).exists()
    assert (out / study.cases[1].id / "summary.json").exists()


def test_resume_skips_completed_cases_and_reruns_changed_and_failed_ones(tmp_path, monkeypatch):
    """A case whose job fails is recorded while the others run, and tried again by a rerun,
    which skips the completed ones; a changed case gets a new id and runs; --force reruns all
    from scratch."""
    from spinefe.study.runner import load_study, run_study

    comm = MPI.COMM_SELF
    failing_for(monkeypatch, (20, 20))
    study = load_study(write(tmp_path / "vas.toml", RUNNER))
    out = tmp_path / "out"
    run = run_study(study, out, comm)
    assert (run.ran, run.skipped, run.failed) == (2, 0, 1)
    failed = json.loads((out / study.cases[1].id / "summary.json").read_text())
    assert failed["status"] == "failed" and "deliberate failure" in failed["error"]
    assert "Traceback" in failed["traceback"]
    rows = table(out / "summary.csv")
    assert [r["case"] for r in rows] == [c.id for c in study.cases]
    assert [r["status"] for r in rows] == ["ok", "failed", "ok"]
    assert "post_9h.welch_p" in rows[0]
    stamp = (out / study.cases[0].id / "summary.json").stat().st_mtime_ns
    again = run_study(study, out, comm)
    assert (again.ran, again.skipped, again.failed) == (0, 2, 1)
    assert (out / study.cases[0].id / "summary.json").stat().st_mtime_ns == stamp

    changed = load_study(write(tmp_path / "vas.toml", RUNNER.replace("[20, 20]", "[30, 30]")))
    run = run_study(changed, out, comm)
    assert (run.ran, run.skipped) == (1, 2)  # [41, 55] and [30, 25] are done
    (out / changed.cases[0].id / "stale.txt").write_text("from an earlier run")
    assert run_study(changed, out, comm, force=True).ran == 3
    assert not (out / changed.cases[0].id / "stale.txt").exists()
    summary = json.loads((out / changed.cases[1].id / "summary.json").read_text())
    assert summary["config"]["job"]["n"] == [30, 30] and summary["provenance"]["mpi_size"] == 1
    assert summary["provenance"]["dolfinx"] and summary["provenance"]["utc"]


@pytest.mark.parametrize("in_callback", [False, True])
def test_an_interrupted_run_leaves_no_half_written_summary(tmp_path, monkeypatch, in_callback):
    """SIGTERM during the second case: the first case's summary is complete, the second has
    none (nor a temporary file), and a rerun completes the study. Also when the interrupt
    reaches the job as an error (`in_callback`: PETSc turns an exception raised in a Python
    callback into an error): it is not recorded as a failed case."""
    from spinefe.common.errors import SolverError
    from spinefe.study import jobs
    from spinefe.study.runner import load_study, run_study

    real = jobs.JOBS["clinical_vas"]

    def slow(case, out, comm, cache_dir):
        if case.job.n == (20, 20):
            threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
            try:
                time.sleep(5.0)
            except KeyboardInterrupt as err:
                if in_callback:
                    raise SolverError("SNESSolve: error code 101") from err
                raise
        return real.run(case, out, comm, cache_dir)

    monkeypatch.setitem(jobs.JOBS, "clinical_vas", jobs.Job(real.parameters, slow, "slow"))
    study = load_study(write(tmp_path / "vas.toml", RUNNER))
    out = tmp_path / "out"
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        run_study(study, out, MPI.COMM_SELF)
    assert signal.getsignal(signal.SIGTERM) is handler  # restored
    assert json.loads((out / study.cases[0].id / "summary.json").read_text())["status"] == "ok"
    assert not (out / study.cases[1].id / "summary.json").exists()
    assert not list(out.rglob("*.tmp*"))
    monkeypatch.setitem(jobs.JOBS, "clinical_vas", real)
    run = run_study(study, out, MPI.COMM_SELF)
    assert (run.ran, run.skipped, run.failed) == (2, 1, 0)


@pytest.mark.parallel
def test_groups_give_the_serial_table(tmp_path_factory, monkeypatch):
    """Under mpiexec -n 2, groups of one rank (each case on one) and one group of two ranks
    give the table of a run on one rank (provenance and timings live in the case summaries,
    not the table); a collective error in a case of the two-rank group is recorded (the
    library's errors are raised on every rank together) and the others run."""
    from spinefe.study.runner import load_study, run_study

    comm = MPI.COMM_WORLD
    failing_for(monkeypatch, (20, 20), ConfigError)
    root = shared_tmp(tmp_path_factory, "groups")
    if comm.rank == 0:
        write(root / "vas.toml", RUNNER)
    comm.Barrier()
    study = load_study(root / "vas.toml")
    for k in sorted({1, comm.size}):
        run = run_study(study, root / f"groups{k}", comm, ranks_per_case=k)
        assert (run.ran, run.failed) == (2, 1)
    if comm.rank == 0:
        run_study(study, root / "serial", MPI.COMM_SELF)
        serial = table(root / "serial" / "summary.csv")
        assert [r["status"] for r in serial] == ["ok", "failed", "ok"]
        for k in sorted({1, comm.size}):
            assert table(root / f"groups{k}" / "summary.csv") == serial
    comm.Barrier()
    with pytest.raises(ConfigError, match="--ranks-per-case: 3 must divide"):
        run_study(study, root / "bad", comm, ranks_per_case=3)


@pytest.mark.mpi_only
def test_a_free_group_takes_the_next_case(tmp_path_factory, monkeypatch):
    """Under mpiexec -n 2, groups of one rank: while one group is held up by a slow first case
    (3 s), the other group runs both of the others (dealt in rounds, the third case would wait
    for the first group)."""
    import time

    from spinefe.study import jobs
    from spinefe.study.runner import load_study, run_study

    comm = MPI.COMM_WORLD
    real = jobs.JOBS["clinical_vas"]

    def run(case, out, group, cache_dir):
        if case.job.n == (41, 55):
            time.sleep(3.0)
        (out / f"ran_by_{comm.rank}").parent.mkdir(parents=True, exist_ok=True)
        (out / f"ran_by_{comm.rank}").touch()
        return real.run(case, out, group, cache_dir)

    monkeypatch.setitem(jobs.JOBS, "clinical_vas", jobs.Job(real.parameters, run, "marked"))
    root = shared_tmp(tmp_path_factory, "dealing")
    if comm.rank == 0:
        write(root / "vas.toml", RUNNER)
    comm.Barrier()
    study = load_study(root / "vas.toml")
    run_study(study, root / "out", comm)
    ranks = [[p.name for p in (root / "out" / c.id).glob("ran_by_*")] for c in study.cases]
    assert all(len(r) == 1 for r in ranks)
    assert ranks[1] == ranks[2] != ranks[0]


def test_slurm_array_covers_every_case_in_chunks(tmp_path):
    from spinefe.study.slurm import slurm_script

    text = slurm_script(Path("studies/x.toml"), "x", 5, Path("results/x"), Path("x.sbatch"),
                        ranks_per_case=4, cases_per_task=2, partition="short")
    assert "#SBATCH --array=0-2\n" in text and "#SBATCH --ntasks=4\n" in text
    assert "#SBATCH --partition=short" in text
    assert '--cases-per-task 2 --task "$SLURM_ARRAY_TASK_ID"' in text
    one = slurm_script(Path("s.toml"), "s", 1, Path("r"), Path("s.sbatch"))
    assert "#SBATCH --array=0-0\n" in one


# ---------------------------------------------------------------------------------------------
# Clinical reanalysis


def test_clinical_reanalysis_matches_hand_computed_t_statistics():
    """Table 2 at 9 h: 6.03 +- 0.97 (n = 41) against 5.75 +- 0.76 (n = 55). By hand:
    Welch t = 0.28 / sqrt(0.97^2/41 + 0.76^2/55), df by Welch-Satterthwaite; Student t with
    the pooled SD; Hedges' g = d (1 - 3 / (4 (n1 + n2) - 9))."""
    from scipy import stats

    from spinefe.study.clinical import between_groups, within_group_bound

    row = between_groups("post_9h", (6.03, 5.75), (0.97, 0.76), (41, 55), "<0.05")
    a, b = 0.97**2 / 41, 0.76**2 / 55
    t_welch = 0.28 / math.sqrt(a + b)
    df = (a + b) ** 2 / (a**2 / 40 + b**2 / 54)
    sp = math.sqrt((40 * 0.97**2 + 54 * 0.76**2) / 94)
    t_student = 0.28 / (sp * math.sqrt(1 / 41 + 1 / 55))
    assert row["welch_t"] == pytest.approx(t_welch, rel=1e-12)
    assert row["welch_df"] == pytest.approx(df, rel=1e-12)
    assert row["welch_p"] == pytest.approx(2 * stats.t.sf(t_welch, df), rel=1e-10)
    assert row["student_t"] == pytest.approx(t_student, rel=1e-12)
    assert row["student_p"] == pytest.approx(2 * stats.t.sf(t_student, 94), rel=1e-10)
    assert row["hedges_g"] == pytest.approx(0.28 / sp * (1 - 3 / (4 * 96 - 9)), rel=1e-12)
    assert round(t_welch, 3) == 1.531 and round(t_student, 3) == 1.586
    within = within_group_bound((7.84, 6.03), (0.80, 0.97), 41)
    assert within["t_at_r0"] == pytest.approx(1.81 / math.sqrt((0.80**2 + 0.97**2) / 41))
    assert within["p_at_r0"] < 1e-3  # the paper's p < 0.001 holds for any r >= 0


# ---------------------------------------------------------------------------------------------
# The segment job and the report, on the coarse test segment

#: A segment study of two activities on the coarse default segment (the session's cached mesh),
#: solved by MUMPS so that a case reruns bit for bit (CG + GAMG does not: docs/mechanics.md).
SEGMENT_STUDY = f"""
[study]
job = "segment"
question = "Does the coarse segment show the paper's trends?"
[base]
mesh = {{ size_mm = {TEST_H}, seed_size_mm = 0.5 }}
mechanics = {{ solver = "mumps" }}
[axes]
"dosimetry.activity_mCi" = [0.4, 0.8]
"""


@pytest.fixture(scope="module")
def segment_study(tmp_path_factory, cache_dir):
    """The study of `SEGMENT_STUDY` run serially: (the study, its results directory). Its
    output is shared: copy a case before changing it."""
    from spinefe.study.runner import load_study, run_study

    root = tmp_path_factory.mktemp("segment_study")
    (root / "segment.toml").write_text(SEGMENT_STUDY)
    study = load_study(root / "segment.toml")
    run = run_study(study, root / "out", MPI.COMM_SELF, cache_dir=cache_dir)
    assert (run.ran, run.failed) == (2, 0)
    return study, root / "out"


def chromium_images_loaded(html: Path) -> list[bool]:
    """Open `html` in headless Chromium (Playwright) and report, per <img>, whether it
    loaded (complete with a natural width)."""
    from playwright.sync_api import sync_playwright

    executable = require_or_skip("chromium", "chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"])
        page = browser.new_page()
        page.goto(html.resolve().as_uri())
        page.wait_for_load_state("load")
        loaded = page.evaluate(
            "Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
        browser.close()
    return loaded


def test_segment_study_and_its_report(segment_study, tmp_path):
    """Two activities of the 16 configured seeds on the coarse segment (the session's study,
    conftest.SEGMENT_STUDY): the paper's indicators per scenario and the dose in the table, the
    trends of the paper's first claim; `spinefe report` writes a self-contained HTML whose
    images load in a headless browser."""
    import shutil

    from spinefe.cli.main import main

    study, results = segment_study
    assert study.cases[0].config == coarse(dosimetry={"activity_mCi": 0.4},
                                           mechanics={"solver": "mumps"})  # cached mesh
    out = shutil.copytree(results, tmp_path / "out")  # the report writes into its study
    rows = table(out / "summary.csv")
    for row in rows:
        value = {k: float(v) for k, v in row.items() if k not in ("case", "status")}
        assert value["seeds"] == 16
        healthy, tumour = (value[f"L4.cortical_endplates.{s}.max_MPa"]
                           for s in ("healthy", "tumour"))
        assert tumour > healthy  # the lesion raises the cortical/endplate peak
        assert value["L4.cortical_endplates.tumour_vs_healthy.max_percent"] == pytest.approx(
            100 * (tumour / healthy - 1))
    # the dose scales with the activity; the mechanics do not depend on it (MUMPS: the same
    # system gives the same stresses to the last bit)
    low, high = ({k: float(v) for k, v in r.items() if k not in ("case", "status")}
                 for r in rows)
    assert high["lesion.D90_Gy"] == pytest.approx(2 * low["lesion.D90_Gy"], rel=1e-9)
    assert high["L4.cortical.implanted.max_MPa"] == low["L4.cortical.implanted.max_MPa"]

    assert main(["report", str(out)]) == 0
    html = out / "report.html"
    text = html.read_text()
    assert "Healthy, tumour and implanted against the paper" in text
    assert 'src="data:image/png;base64,' in text and 'src="report_files' not in text
    loaded = chromium_images_loaded(html)
    assert len(loaded) >= 4 and all(loaded)  # metrics, DVHs, two von Mises maps


def test_a_case_records_its_provenance_everywhere_and_reruns_exactly(segment_study, tmp_path,
                                                                     cache_dir, capsys):
    """One segment case on the coarse mesh (the session's study, conftest.SEGMENT_STUDY),
    solved by MUMPS (a CG + GAMG solve is not reproducible bit for bit: docs/mechanics.md,
    Reproducibility): its summary, the scenario fields' and the dose's XDMF files and its DICOM
    objects record the same versions and the case id. With one recorded scalar moved by one
    ulp, `spinefe rerun` solves the case again and reports that scalar, and only it (exit 3):
    every other scalar, over 40 of them, is reproduced bit for bit, and the moved one equals the
    original run's. A rerun into the recorded case's own directory is refused."""
    import shutil

    from spinefe.cli.main import main
    from spinefe.study.runner import rerun_case

    study, results = segment_study
    case = shutil.copytree(results / study.cases[0].id, tmp_path / "out" / study.cases[0].id)
    summary = json.loads((case / "summary.json").read_text())
    assert summary["status"] == "ok"
    assert summary["provenance"]["config_hash"] == study.cases[0].config.hash()
    versions = {k: v for k, v in summary["provenance"].items() if k != "utc"}
    for result in (case / "healthy" / "fields.xdmf", case / "implanted" / "summary.json",
                   case / "dose" / "dose.h5", case / "dose" / "dicom" / "rtplan.dcm",
                   case / "dose" / "dicom" / "rtdose.dcm", case / "healthy", case):
        record = read_provenance(result)
        assert {k: v for k, v in record.items() if k != "utc"} == versions
    assert main(["provenance", str(case / "dose" / "dose.xdmf")]) == 0
    assert "config_hash" in capsys.readouterr().out

    original = dict(summary["scalars"])
    summary["scalars"]["lesion.D90_Gy"] = math.nextafter(original["lesion.D90_Gy"], 0.0)
    (case / "summary.json").write_text(json.dumps(summary))
    assert main(["rerun", str(case), "--out", str(tmp_path / "again"),
                 "--cache-dir", str(cache_dir)]) == 3
    out = capsys.readouterr().out
    assert [line.split(":")[1].strip() for line in out.splitlines()
            if "differs:" in line] == ["lesion.D90_Gy"], out
    rerun = json.loads((tmp_path / "again" / case.name / "summary.json").read_text())
    assert rerun["scalars"] == original and len(original) > 40
    with pytest.raises(ConfigError, match="would replace the recorded case"):
        rerun_case(case, tmp_path / "out", MPI.COMM_WORLD)


def test_study_command_line(tmp_path, cli_env):
    """`spinefe study list|run|table|slurm` and `report` on two cases that the planner refuses
    (a unilateral fan cannot cover the mid-line lesion at 0.3 mCi: no mesh is made): both are
    recorded as failed, the exit status is 10 + 2; --set changes every case's id; a bad study
    file ends both ranks with exit 2 and the key."""
    import subprocess

    from conftest import spinefe_cmd

    study = write(tmp_path / "uni.toml", """
[study]
job = "segment"
[base]
dosimetry = { activity_mCi = 0.3 }
[axes]
"job.access" = ["unilateral_left", "unilateral_right"]
""")
    out = tmp_path / "out"

    def spinefe(*args, ranks=1):
        return subprocess.run(spinefe_cmd(*args, ranks=ranks), env=cli_env, capture_output=True,
                              text=True)

    listed = spinefe("study", "list", str(study))
    assert listed.returncode == 0
    assert "2 cases of job 'segment'; varied: job.access" in listed.stdout
    coarser = spinefe("study", "list", str(study), "--set", "mesh.size_mm=2.0")
    ids = {line.split()[0] for line in listed.stdout.splitlines()[1:]}
    assert ids.isdisjoint(line.split()[0] for line in coarser.stdout.splitlines()[1:])
    run = spinefe("study", "run", str(study), "--out", str(out), ranks=2)
    assert run.returncode == 12, run.stderr
    assert "0 ran, 0 already done, 2 failed" in run.stdout and "PlanningError" in run.stderr
    assert [r["status"] for r in table(out / "summary.csv")] == ["failed", "failed"]
    (out / "summary.csv").unlink()
    assert spinefe("study", "table", str(study), "--out", str(out)).returncode == 0
    assert len(table(out / "summary.csv")) == 2
    assert spinefe("report", str(out)).returncode == 0
    assert "PlanningError" in (out / "report.md").read_text()
    slurm = spinefe("study", "slurm", str(study), "--out", str(out), "--cases-per-task", "2")
    assert slurm.returncode == 0 and "#SBATCH --array=0-0" in (out / "uni.sbatch").read_text()
    bad = spinefe("study", "run", str(write(tmp_path / "bad.toml", "[study]\njob = 'x'\n")),
                  "--out", str(tmp_path / "bad"), ranks=2)
    assert bad.returncode == 2 and "study.job: 'x', allowed" in bad.stderr
    assert not (tmp_path / "bad").exists()
    unset = spinefe("study", "list", str(study), "--set", "job.n")
    assert unset.returncode == 2 and "--set: 'job.n', expected KEY=VALUE" in unset.stderr


def test_a_rerun_check_lists_what_differs_and_why():
    from spinefe.study.runner import RerunCheck

    same = RerunCheck("abc", True, "ok", "ok", None, {}, {}, 1, 1, "out/abc")
    assert same.matches
    assert same.text() == ("case abc rerun on 1 rank(s) -> out/abc\n"
                           "  every scalar matches the recorded one exactly\n")
    other = RerunCheck("abc", False, "failed", "ok", "SolverError: no convergence",
                       {"lesion.D90_Gy": [150.0, 150.5]}, {"dolfinx": ["0.10.0", "0.11.0"]},
                       2, 1, "out/abc")
    assert not other.matches
    assert other.text().splitlines()[1:] == [
        "  note: the recorded configuration hashes to another id now (a config written by "
        "another spinefe version)",
        "  note: recorded on 2 rank(s): another partition changes the last digits of "
        "iterative solves",
        "  version changed: dolfinx 0.10.0 -> 0.11.0",
        "  recorded ok, rerun failed: SolverError: no convergence",
        "  differs: lesion.D90_Gy: recorded 150.0, rerun 150.5"]
    assert not RerunCheck("abc", True, "ok", "ok", None, {"x": [1, 2]}, {}, 1, 1, "o").matches
    record = RerunCheck("abc", True, "ok", "ok", None, {}, {}, None, 2, "o").to_dict()
    assert record["mpi_size"] == 2 and record["differences"] == {}


def test_each_jobs_record_gives_the_table_its_columns_and_the_report_its_key_metrics(
        tmp_path, monkeypatch):
    """Each job (its pipeline faked: no mesh) returns its typed record, whose `to_dict` is the
    table's row: the columns spelled out here, in this order, with the values unchanged; the
    report's key metrics are columns of a full row; every job has its record."""
    from types import SimpleNamespace

    from spinefe.config.sections import Config
    from spinefe.mechanics.scenarios import ScenarioRecord
    from spinefe.report.records import JOB_SCALARS
    from spinefe.study import jobs

    assert set(JOB_SCALARS) == set(jobs.JOBS)
    for name, job in jobs.JOBS.items():
        assert job.run.__annotations__["return"] == JOB_SCALARS[name].__name__
    scenarios, stats = ("healthy", "tumour", "implanted"), ("max", "p99")
    groups = ("L4.cortical", "L4.endplate_superior", "L4.cortical_endplates", "L4.cancellous")
    von_mises = {s: {g: {"max": 10.0 + i + j / 3, "p99": 5.0 + 2 * i + j / 7, "mean": 1.0}
                     for j, g in enumerate((*groups, "L4.trabecular"))}
                 for i, s in enumerate(scenarios)}
    records = {s: ScenarioRecord(
        scenario=s, reaction_N=500.0, applied_N=500.0, reaction_relative_error=0.0,
        reaction_vector_N=[0.0, 0.0, 500.0], dofs=1200, iterations=9, solver="cg",
        petsc_options={}, converged_reason="CONVERGED_RTOL", strain_energy_mJ=1.0,
        max_displacement_mm=0.1, nucleus_pressure_MPa=0.5 + i, disc_bulge_mm=0.1 * i,
        von_mises_MPa=von_mises[s], von_mises_note="", timings_seconds={}, cells=300,
        mpi_size=1, provenance={}) for i, s in enumerate(scenarios)}
    assert "files" not in records["healthy"].to_dict()  # unset: left out of summary.json
    target = {"D90_Gy": 120.0, "V100_percent": 95.0, "V150_percent": 40.0,
              "V200_percent": 10.0, "D50_Gy": 200.0}
    dose = {"metrics": {"target": target, "organ_at_risk": {"D0.1cc_Gy": 50.0}}}
    monkeypatch.setattr(jobs, "segment_case", lambda *a, **k: SimpleNamespace(
        records=records, comparison={}, dose=dose))
    cfg = Config()
    row = jobs.run_segment(SimpleNamespace(job=jobs.SegmentJob(), config=cfg), tmp_path,
                           MPI.COMM_SELF, None).to_dict()
    expected = {"seeds": len(cfg.seeds), "dofs": 1200, "cells": 300}
    expected |= {f"{g}.{s}.{stat}_MPa": von_mises[s][g][stat]
                 for g in groups for s in scenarios for stat in stats}
    for g in groups[2:]:
        for stat in stats:
            h, t, i = (von_mises[s][g][stat] for s in scenarios)
            expected[f"{g}.tumour_vs_healthy.{stat}_percent"] = 100 * (t - h) / h
            expected[f"{g}.implanted_vs_tumour.{stat}_percent"] = 100 * (i - t) / t
    expected |= {f"{s}.{k}": getattr(records[s], k) for k in ("nucleus_pressure_MPa",
                                                               "disc_bulge_mm")
                 for s in scenarios}
    expected |= {f"lesion.{k}": target[k] for k in list(target)[:4]}
    expected["canal.D0.1cc_Gy"] = 50.0
    assert list(row) == list(expected) and row == expected
    assert set(JOB_SCALARS["segment"].KEY_METRICS) <= set(row)

    rom_deg = {m: 1.0 + i for i, m in enumerate(("flexion", "extension", "lateral_bending_left",
                                                 "lateral_bending_right", "axial_rotation_left",
                                                 "axial_rotation_right"))}
    monkeypatch.setattr(jobs, "range_of_motion",
                        lambda *a: {"rom_deg": rom_deg, "follower_offset_mm": 5.5})
    row = jobs.run_rom(SimpleNamespace(job=jobs.RomJob(), config=cfg), tmp_path, MPI.COMM_SELF,
                       None).to_dict()
    assert row == {f"{m}_deg": v for m, v in rom_deg.items()} | {"follower_offset_mm": 5.5}
    assert list(JOB_SCALARS["rom"].KEY_METRICS) == list(row)[:-1]

    plan = {"seeds": 12, "activity_mCi": 0.5, "V100_percent": 96.0, "D90_Gy": 130.0,
            "cortical_max_ratio": 0.9, "needles": 3}
    monkeypatch.setattr(jobs, "optimise", lambda *a: {
        "history": [{"hypervolume": 0.25}], "evaluations": 40, "front": [{}, {}],
        "recommended": {"mechanical": plan, "dosimetric": plan}})
    row = jobs.run_optimise(SimpleNamespace(job=jobs.OptimiseJob(), config=cfg), tmp_path,
                            MPI.COMM_SELF, None).to_dict()
    assert list(row) == ["evaluations", "front", "hypervolume", *[
        f"{role}.{k}" for role in ("mechanical", "dosimetric") for k in list(plan)[:5]]]
    assert (row["front"], row["hypervolume"], row["dosimetric.D90_Gy"]) == (2, 0.25, 130.0)
    assert set(JOB_SCALARS["optimise"].KEY_METRICS) <= set(row)

    row = jobs.run_clinical_vas(SimpleNamespace(job=jobs.ClinicalVasJob(), config=cfg),
                                tmp_path, MPI.COMM_SELF, None).to_dict()
    tests = ("welch_p", "student_p", "hedges_g")
    assert list(row) == [f"{t}.{k}" for t in ("pre", "post_9h", "post_16h") for k in tests]
    rows = json.loads((tmp_path / "clinical.json").read_text())["between"]
    assert row == {f"{r['time']}.{k}": r[k] for r in rows for k in tests}
    assert set(JOB_SCALARS["clinical_vas"].KEY_METRICS) <= set(row)
