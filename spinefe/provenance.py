"""Where a result came from: the package and its git commit, the versions of the libraries
that compute it, the MPI size, the host and the UTC time."""

from __future__ import annotations

import platform
import subprocess
from datetime import UTC, datetime
from functools import cache
from importlib import metadata
from pathlib import Path

#: Distributions whose versions decide the numbers (a missing one is reported as None), read
#: from their metadata: importing h5py after dolfinx fails ("Not a datatype"). dolfinx and
#: petsc4py come bundled in the dolfinx-solver-real wheel, without metadata of their own.
PACKAGES = ("fenics-basix", "fenics-ufl", "fenics-ffcx", "mpi4py", "gmsh", "numpy", "scipy",
            "h5py", "pydicom", "pymoo", "pydantic", "dolfinx-solver-real")


@cache
def _versions() -> dict:
    import spinefe

    out = {"spinefe": spinefe.__version__, "git_commit": _git_commit(),
           "python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    import dolfinx_solver  # noqa: F401  (must precede dolfinx and petsc4py)
    import dolfinx
    from mpi4py import MPI
    from petsc4py import PETSc

    out["dolfinx"] = dolfinx.__version__
    out["PETSc"] = ".".join(map(str, PETSc.Sys.getVersion()))
    out["MPI_library"] = MPI.Get_library_version().splitlines()[0].strip()
    return out


def _git_commit() -> str | None:
    """The commit of the source tree spinefe runs from ('+dirty' with local changes), or None
    outside a git checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"], check=True, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def provenance(comm) -> dict:
    """The record (JSON-ready) for a result computed on `comm`."""
    return {**_versions(), "mpi_size": comm.size, "host": platform.node(),
            "utc": datetime.now(UTC).isoformat(timespec="seconds")}
