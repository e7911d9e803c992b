"""Provenance: the record is complete and stable, every kind of result carries it (summaries,
the XDMF field files, DICOM objects), and a study case rerun from its recorded configuration
reproduces its scalars bit for bit on the same machine."""

from __future__ import annotations

import json
import math
from datetime import datetime

import pytest
from mpi4py import MPI

from spinefe.common.errors import ConfigError
from spinefe.common.provenance import KEYS, provenance, provenance_text, read_provenance

from conftest import TEST_H


def test_the_record_is_complete_and_stable():
    """Every key present, every version known (the tests run from a git checkout), JSON-ready;
    two records differ at most in the time; the versions are those of the running libraries."""
    import dolfinx
    from petsc4py import PETSc

    from spinefe.common.provenance import versions

    first = provenance(MPI.COMM_WORLD, "0123abcd")
    versions.cache_clear()  # the second record asks the libraries and git again
    second = provenance(MPI.COMM_WORLD, "0123abcd")
    assert tuple(first) == KEYS
    assert [k for k, v in first.items() if v in (None, "")] == []
    assert json.loads(json.dumps(first)) == first
    assert {k: v for k, v in first.items() if k != "utc"} == {
        k: v for k, v in second.items() if k != "utc"}
    assert datetime.fromisoformat(first["utc"]).utcoffset().total_seconds() == 0
    assert first["dolfinx"] == dolfinx.__version__
    assert first["PETSc"] == ".".join(map(str, PETSc.Sys.getVersion()))
    assert first["mpi_size"] == MPI.COMM_WORLD.size and first["config_hash"] == "0123abcd"
    assert provenance_text(first).splitlines()[0].split() == ["spinefe", first["spinefe"]]


STUDY = f"""
[study]
job = "segment"
[base]
mesh = {{ size_mm = {TEST_H}, seed_size_mm = 0.5 }}
dosimetry = {{ activity_mCi = 0.4 }}
mechanics = {{ solver = "mumps" }}
"""


def test_a_case_records_its_provenance_everywhere_and_reruns_exactly(tmp_path, cache_dir,
                                                                     capsys):
    """One segment case on the coarse mesh (the session's cache), solved by MUMPS (a CG + GAMG
    solve is not reproducible bit for bit: docs/mechanics.md, Reproducibility): its summary, the
    scenario fields' and the dose's XDMF files and its DICOM objects record the same versions
    and the case id. With one recorded scalar moved by one ulp, `spinefe rerun` solves the
    case again and reports that scalar, and only it (exit 3): every other scalar, over 40 of
    them, is reproduced bit for bit, and the moved one equals the original run's. A rerun
    into the recorded case's own directory is refused."""
    from spinefe.cli.main import main
    from spinefe.study.runner import load_study, rerun_case, run_study

    (tmp_path / "one.toml").write_text(STUDY)
    study = load_study(tmp_path / "one.toml")
    run_study(study, tmp_path / "out", MPI.COMM_WORLD, cache_dir=cache_dir)
    case = tmp_path / "out" / study.cases[0].id
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


def test_a_result_without_provenance_is_named(tmp_path, capsys):
    from spinefe.cli.main import main

    (tmp_path / "summary.json").write_text("{}")
    assert main(["provenance", str(tmp_path)]) == 2
    assert "records no provenance" in capsys.readouterr().err
    assert main(["provenance", str(tmp_path / "mesh.vtu")]) == 2
    assert "no such file" in capsys.readouterr().err
