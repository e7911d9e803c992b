"""Provenance: the record is complete and stable, and a result without one is named. That every
kind of result carries it and a study case reruns bit for bit is tested on the study of
tests/test_study.py (test_a_case_records_its_provenance_everywhere_and_reruns_exactly)."""

from __future__ import annotations

import json
from datetime import datetime

from mpi4py import MPI

from spinefe.common.provenance import KEYS, provenance, provenance_text



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


def test_a_result_without_provenance_is_named(tmp_path, capsys):
    from spinefe.cli.main import main

    (tmp_path / "summary.json").write_text("{}")
    assert main(["provenance", str(tmp_path)]) == 2
    assert "records no provenance" in capsys.readouterr().err
    assert main(["provenance", str(tmp_path / "mesh.vtu")]) == 2
    assert "no such file" in capsys.readouterr().err
