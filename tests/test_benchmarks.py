"""Every benchmark script runs at toy size (`--toy`, benchmarks/toy.py), so that a renamed or
changed API breaks this test rather than a benchmark nobody runs; `make benchmark` runs them at
full size. Toy runs check that a script completes, not its figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TEST_H, cli_environment, coarse

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
#: Scripts that read another script's output: run after it, on its toy output.
NEEDS_SEARCH = {"support_uniformity"}
SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("*.py") if p.stem != "toy")


def run_toy(name: str, cwd: Path, cache_dir, *args: str) -> subprocess.CompletedProcess:
    """`python benchmarks/NAME.py --toy ARGS` in `cwd` (default outputs land there) on the
    suite's meshes, under a timeout; fails with the script's output when it fails."""
    out = subprocess.run([sys.executable, str(BENCHMARKS / f"{name}.py"), "--toy", *args],
                         cwd=cwd, env=cli_environment(cache_dir), capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, f"{name} --toy: exit {out.returncode}\n{out.stdout[-3000:]}\n" \
                                f"{out.stderr[-3000:]}"
    return out


def test_toy_segment_is_the_suites():
    """The toy segment is the one `make test` has meshed (toy runs read it from the cache)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import toy
    finally:
        sys.path.remove(str(BENCHMARKS))
    assert toy.SIZE_MM == TEST_H
    assert toy.SEED_SIZE_MM == coarse().mesh.seed_size_mm


@pytest.fixture(scope="module")
def toy_search(tmp_path_factory, cache_dir) -> Path:
    """The toy Pareto search's output directory (read by the scripts of NEEDS_SEARCH)."""
    cwd = tmp_path_factory.mktemp("pareto_search")
    run_toy("pareto_search", cwd, cache_dir, "--out", str(cwd / "search"))
    return cwd / "search"


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_runs_at_toy_size(name, tmp_path, cache_dir, toy_search):
    if name == "pareto_search":
        assert (toy_search / "summary.json").exists()
        return
    args = ("--search", str(toy_search)) if name in NEEDS_SEARCH else ()
    run_toy(name, tmp_path, cache_dir, *args)


def test_make_benchmark_runs_every_script():
    """`make benchmark` names every benchmark script (a new one is not forgotten there)."""
    makefile = (BENCHMARKS.parent / "Makefile").read_text()
    recipe = makefile[makefile.index("\nbenchmark:"):].split("\n\n")[0]
    assert [s for s in SCRIPTS if f"benchmarks/{s}.py" not in recipe] == []
