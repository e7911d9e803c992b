"""Shared fixtures: coarse segments, meshed once per `make test` and cached.

`make test` meshes the segments of `SEGMENTS` first, on both cores (tests/build_meshes.py), into
the run's cache `$SPINEFE_TEST_CACHE`, which the serial and the 2-rank pass then share; a plain
`pytest` run meshes them on first use into a temporary cache of its own."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

# `make test` runs the serial pass on two pytest-xdist workers. Each worker gets a FEniCS JIT
# cache of its own: processes sharing one wait at most 10 s for each other's compiles and then
# fail (notes/dolfinx-0.11.md). Set before dolfinx is imported, which reads it once.
if worker := os.environ.get("PYTEST_XDIST_WORKER"):
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    os.environ["XDG_CACHE_HOME"] = str(Path(root) / worker)

from mpi4py import MPI  # noqa: E402

from spinefe.config.loading import parse_config  # noqa: E402
from spinefe.config.sections import Config, Seed  # noqa: E402

#: Coarse element size for the tests (mm). A segment costs 10-25 s of CAD and 0.5-1 min of
#: meshing on one core at this size, so the suite builds each geometry once (`SEGMENTS`).
TEST_H = 2.5


def coarse(**sections) -> Config:
    """The default segment at test resolution, with some sections replaced (plain dicts)."""
    data = Config().model_dump(mode="json")
    data["mesh"]["size_mm"] = TEST_H
    data["mesh"]["seed_size_mm"] = 0.5
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    return parse_config(data)


def analytic_shape() -> Config:
    """No lesion, one axial seed in the L4 trabecular core: volumes with closed forms."""
    seed = Seed(position_mm=(0.0, -2.0, 18.0), direction=(0.0, 0.0, 1.0))
    return coarse(
        lesion={"enabled": False}, seeds=[seed.model_dump(mode="json")], mesh={"seed_size_mm": 0.3}
    )


def seedless() -> Config:
    """The default segment without capsules: the fixed mesh of plan evaluation and search."""
    return coarse(seeds=[])


def breach_and_envelope() -> Config:
    """A quarter of the L4 wall breached by the lesion, and the dose envelope (no capsules)."""
    return coarse(seeds=[], lesion={"cortical_breach": 0.25}, regions={"envelope": True})


#: Every segment geometry the suite meshes, by name (tests/build_meshes.py meshes them ahead).
SEGMENTS = {"default": coarse, "seedless": seedless, "analytic": analytic_shape,
            "breach": breach_and_envelope}


@pytest.fixture(scope="session")
def cache_dir():
    """The mesh cache of this run: `$SPINEFE_TEST_CACHE` (`make test`, kept for the 2-rank pass),
    else a temporary one made on rank 0, shared by all ranks and removed at the end.

    (Not tmp_path_factory: under mpiexec every rank would make and clean its own numbered dir.)
    """
    comm = MPI.COMM_WORLD
    if os.environ.get("SPINEFE_TEST_CACHE"):
        yield Path(os.environ["SPINEFE_TEST_CACHE"])
        return
    path = tempfile.mkdtemp(prefix="spinefe-test-cache-") if comm.rank == 0 else None
    path = Path(comm.bcast(path, root=0))
    yield path
    comm.barrier()
    if comm.rank == 0:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def shared_tmp(tmp_path) -> Path:
    """A temporary directory that every rank sees (rank 0's tmp_path): for collective writes
    such as XDMF files, whose path must be the same on all ranks."""
    return Path(MPI.COMM_WORLD.bcast(str(tmp_path), root=0))


def _model(name: str, cache_dir):
    from spinefe.geometry.mesh import build_mesh
    from spinefe.geometry.segment import segment_geometry

    return build_mesh(segment_geometry(SEGMENTS[name]()), MPI.COMM_WORLD, cache_dir)


@pytest.fixture(scope="session")
def default_model(cache_dir):
    return _model("default", cache_dir)


@pytest.fixture(scope="session")
def analytic_model(cache_dir):
    return _model("analytic", cache_dir)


@pytest.fixture(scope="session")
def seedless_model(cache_dir):
    return _model("seedless", cache_dir)


@pytest.fixture(scope="session")
def default_segment(default_model):
    """The default segment without its dose-only regions: what the mechanics solve."""
    from spinefe.mechanics.segment import load_bearing

    return load_bearing(default_model)


def spinefe_cmd(*args: str, ranks: int = 1, timeout_s: int = 300) -> list[str]:
    """Command line for the CLI, under `mpiexec -n ranks` (with a timeout) when ranks > 1."""
    cmd = [sys.executable, "-m", "spinefe", *args]
    if ranks > 1:
        mpiexec = str(Path(sys.executable).parent / "mpiexec")
        cmd = ["timeout", "-k", "5", str(timeout_s), mpiexec, "-n", str(ranks), *cmd]
    return cmd


def cli_environment(cache_dir, jit_cache=None) -> dict:
    """Environment for CLI subprocesses: the session's mesh cache, no inherited MPI variables,
    and a JIT cache of its own when `jit_cache` is given (else this run's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "HYDRA_", "MPI"))}
    env["SPINEFE_CACHE"] = str(cache_dir)
    if jit_cache is not None:
        env["XDG_CACHE_HOME"] = str(jit_cache)
    return env


@pytest.fixture
def cli_env(tmp_path, cache_dir) -> dict:
    """A serial run's subprocesses share its JIT cache (pytest waits for each, so no two compile
    at once); under mpiexec every rank starts its own subprocess, each with a JIT cache of its
    own."""
    return cli_environment(cache_dir, tmp_path / "xdg" if MPI.COMM_WORLD.size > 1 else None)


def dicompyler_dvhcalc():
    """dicompyler-core's DVH module. Version 0.5.6 imports `read_file`, which pydicom 3 removed:
    alias it to `dcmread` first."""
    import pydicom
    import pydicom.dicomio

    pydicom.read_file = pydicom.dicomio.read_file = pydicom.dcmread
    from dicompylercore import dvhcalc

    return dvhcalc


def require_or_skip(tool: str, package: str) -> str:
    """Path of a command-line tool; skip without it, unless SPINEFE_REQUIRE_TOOLS=1 (CI), where
    a missing tool fails the test."""
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} not installed (Debian/Ubuntu package {package})"
        if os.environ.get("SPINEFE_REQUIRE_TOOLS") == "1":
            pytest.fail(message + "; SPINEFE_REQUIRE_TOOLS=1")
        pytest.skip(message)
    return path


@pytest.fixture
def asymmetric_seed_file(tmp_path) -> Path:
    """Model 6711 with F given on 0-180 deg, the back half (90..180 deg) at half the front's
    values: F(r, 180 - t) = F(r, t) / 2 for t < 90 deg."""
    import tomllib
    from importlib import resources

    text = (resources.files("dosimetry") / "data" / "seeds" / "6711.toml").read_text()
    data = tomllib.loads(text)
    rows, theta = data["anisotropy"]["F"], data["anisotropy"]["theta_deg"]
    back = [[v / 2 for v in rows[i]] for i in range(len(rows) - 2, -1, -1)]
    lines = [f"[{', '.join(map(str, r))}]" for r in rows + back]
    head = text[: text.index("[anisotropy]")]
    tail = text[text.index("[anisotropy_factor]"):]
    angles = theta + [180 - t for t in theta[-2::-1]]
    path = tmp_path / "asymmetric.toml"
    path.write_text(f"{head}[anisotropy]\nr_cm = {data['anisotropy']['r_cm']}\n"
                    f"theta_deg = {angles}\nF = [{', '.join(lines)}]\n\n{tail}")
    return path
