"""Where a result came from: the package and its git commit, the versions of the libraries
that compute it, the MPI size, the configuration's hash, the host and the UTC time.

Every result records it: the summary.json files (key "provenance"), each XDMF file of fields
(an Information element "provenance" of its Domain, JSON), and the DICOM objects (Software
Versions, and the whole record as JSON in a private element, dosimetry.dicom).
`read_provenance` reads it back from any of them (`spinefe provenance RESULT`).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from functools import cache
from importlib import metadata
from pathlib import Path

#: The libraries whose versions decide the numbers: record key -> distribution name, read from
#: the package metadata (which works wherever pip installed them: this project's venv and the
#: FEniCS images alike). dolfinx, petsc4py/PETSc and the MPI library are asked at run time
#: (in the dolfinx-solver-real wheel they have no metadata of their own).
DISTRIBUTIONS = {
    "basix": "fenics-basix", "ufl": "fenics-ufl", "ffcx": "fenics-ffcx", "mpi4py": "mpi4py",
    "gmsh": "gmsh", "numpy": "numpy", "scipy": "scipy", "h5py": "h5py", "pydicom": "pydicom",
    "pymoo": "pymoo", "pydantic": "pydantic",
}

#: The keys every record has (`spinefe provenance` and the tests check them).
KEYS = ("spinefe", "git_commit", "python", "dolfinx", *DISTRIBUTIONS, "petsc4py", "PETSc",
        "MPI_library", "mpi_size", "config_hash", "host", "utc")


@cache
def versions() -> dict:
    """Package, commit and library versions of this process (a missing library: None)."""
    import spinefe

    out = {"spinefe": spinefe.__version__, "git_commit": _git_commit(),
           "python": platform.python_version()}
    import dolfinx
    import petsc4py
    from mpi4py import MPI
    from petsc4py import PETSc

    out["dolfinx"] = dolfinx.__version__
    for key, distribution in DISTRIBUTIONS.items():
        try:
            out[key] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            out[key] = None
    out["petsc4py"] = petsc4py.__version__
    out["PETSc"] = ".".join(map(str, PETSc.Sys.getVersion()))
    out["MPI_library"] = MPI.Get_library_version().splitlines()[0].strip()
    return out


def _git_commit() -> str | None:
    """The commit of the source tree spinefe runs from ('+dirty' with local changes); in a
    container image, where the sources come without .git, the commit it was built from
    ($SPINEFE_GIT_COMMIT, set by the image); None outside both."""
    if commit := os.environ.get("SPINEFE_GIT_COMMIT"):
        return commit
    root = Path(__file__).resolve().parents[2]  # the repository
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"], check=True, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def provenance(comm, config_hash: str | None = None) -> dict:
    """The record (JSON-ready) of a result computed on `comm` from a configuration with
    `config_hash` (Config.hash()); not collective."""
    return {**versions(), "mpi_size": comm.size, "config_hash": config_hash,
            "host": platform.node(), "utc": datetime.now(UTC).isoformat(timespec="seconds")}


def stamp_xdmf(comm, path: Path, record: dict) -> None:
    """Add `record` to the closed XDMF file `path` as the Information element "provenance" of
    its Domain (XDMF 3 allows Information in any element; readers that do not know it skip
    it); rank 0 writes; collective.

    Not an attribute of the HDF5 file: h5py, imported after dolfinx, runs against the HDF5
    library of the dolfinx wheel, not its own, and fails to create the attribute ("Not a
    datatype"); the XML needs no HDF5 at all."""
    from xml.sax.saxutils import quoteattr

    from spinefe.common.parallel import on_root

    def stamp():
        text = Path(path).read_text()
        if text.count("<Domain>") != 1:
            raise ValueError(f"{path}: not an XDMF file with one Domain")
        element = f'<Information Name="provenance" Value={quoteattr(json.dumps(record))} />'
        Path(path).write_text(text.replace("<Domain>", f"<Domain>\n    {element}"))

    on_root(comm, stamp)


def read_provenance(path: Path) -> dict:
    """The provenance record of a result: a results directory (its summary.json,
    comparison.json or evaluation.json), a JSON summary, an XDMF or HDF5 file, or a DICOM
    object. ValueError names the path when it holds none."""
    path = Path(path)
    if path.is_dir():
        names = ("summary.json", "comparison.json", "evaluation.json")
        found = [path / name for name in names if (path / name).is_file()]
        if not found:
            raise ValueError(f"{path}: no {', '.join(names)} in this directory")
        path = found[0]
    if not path.is_file():
        raise ValueError(f"{path}: no such file or directory")
    suffix = path.suffix.lower()
    if suffix not in (".json", ".xdmf", ".h5", ".dcm"):
        raise ValueError(f"{path}: a results directory, .json, .xdmf, .h5 or .dcm file "
                         "expected")
    try:
        record = _record_of(path, suffix)
    except FileNotFoundError as err:  # an .h5 without the .xdmf that describes it
        raise ValueError(f"{path}: its record is in {err.filename}, which is missing") from None
    except Exception as err:  # a file of the right name that is not what it says
        raise ValueError(f"{path}: not a readable {suffix} file ({type(err).__name__}: "
                         f"{err})") from None
    if not isinstance(record, dict | None):
        raise ValueError(f"{path}: its provenance is not a record (a JSON object)")
    if record is None:
        raise ValueError(f"{path}: records no provenance (written before spinefe recorded it?)")
    return record


def _record_of(path: Path, suffix: str) -> dict | None:
    """The provenance record in `path` (a file of the given kind), None where it has none."""
    if suffix == ".json":
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"a JSON {type(data).__name__}, not a results summary (an object)")
        return data.get("provenance")
    if suffix in (".xdmf", ".h5"):  # the heavy data's record is in its XDMF file
        import xml.etree.ElementTree as ET

        element = ET.parse(path.with_suffix(".xdmf")).find(
            "Domain/Information[@Name='provenance']")
        return json.loads(element.get("Value")) if element is not None else None
    from dosimetry.dicom import read_provenance as read_dicom

    return read_dicom(path)


def provenance_text(record: dict) -> str:
    """The record as aligned 'key: value' lines, the known keys first."""
    keys = [*KEYS, *(k for k in record if k not in KEYS)]
    width = max(map(len, keys))
    return "\n".join(f"{k:<{width}}  {record.get(k)}" for k in keys) + "\n"
