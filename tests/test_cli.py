"""The command line: help, default config, bad input (exit 2, no traceback, all ranks), main job."""

from __future__ import annotations

import json
import logging
import subprocess
import tomllib

import numpy as np
import pytest

from conftest import TEST_H, spinefe_cmd


def run(args, env, ranks=1):
    return subprocess.run(
        spinefe_cmd(*args, ranks=ranks), env=env, capture_output=True, text=True, timeout=600
    )


def test_help_lists_commands(cli_env):
    out = run(["--help"], cli_env)
    assert out.returncode == 0
    for word in ("config", "mesh", "mpiexec -n 2 python -m spinefe"):
        assert word in out.stdout


def test_config_default_is_valid_toml(cli_env, tmp_path):
    out = run(["config", "default"], cli_env)
    assert out.returncode == 0
    tomllib.loads(out.stdout)
    path = tmp_path / "c.toml"
    path.write_text(out.stdout)
    check = run(["config", "check", str(path)], cli_env)
    assert check.returncode == 0 and "valid" in check.stdout


BAD = {
    "unknown key": ("[layers]\ncortical_shel_mm = 1.0\n", "layers.cortical_shel_mm"),
    "zero thickness": ("[layers]\nbony_endplate_mm = 0\n", "layers.bony_endplate_mm"),
    "seed in canal": ("[[seeds]]\nposition_mm = [0.0, 25.0, 18.0]\ndirection = [0, 0, 1]\n",
                      "seeds.0.position_mm"),
    "fibre angle": ("[materials.annulus_fibrosus.fibres]\nangle_deg = 95.0\n",
                    "materials.annulus_fibrosus.fibres.angle_deg"),
    "Prony weights": ("[materials.nucleus_pulposus.relaxation]\ng = [0.7, 0.4]\n"
                      "tau_s = [10.0, 100.0]\n", "the Prony weights must sum below 1"),
    "permeability": ("[materials.annulus_fibrosus.poroelastic]\npermeability_mm4_per_Ns = 0.0\n",
                     "materials.annulus_fibrosus.poroelastic.permeability_mm4_per_Ns"),
}


def _bad_input_fails_cleanly(cli_env, tmp_path, ranks):
    for label, (text, key) in BAD.items():
        path = tmp_path / "bad.toml"
        path.write_text(text)
        out_dir = tmp_path / f"out-{ranks}"
        res = run(["mesh", str(path), "--out", str(out_dir)], cli_env, ranks=ranks)
        assert res.returncode == 2, (label, res.returncode, res.stderr)
        assert key in res.stderr, label
        assert "Traceback" not in res.stderr, label
        assert res.stderr.count("invalid configuration") == 1, label  # rank 0 only
        assert not out_dir.exists(), label  # nothing written, nothing overwritten


def test_bad_input_exit_2_serial(cli_env, tmp_path):
    _bad_input_fails_cleanly(cli_env, tmp_path, ranks=1)


def test_bad_input_ends_both_ranks(cli_env, tmp_path):
    _bad_input_fails_cleanly(cli_env, tmp_path, ranks=2)


#: Plans that cannot be implanted (issue 25, family 1), and the message naming the problem.
BAD_PLANS = {
    "in the canal": ("[[seeds]]\nposition_mm = [0.0, 25.0, 18.0]\ndirection = [0, 0, 1]\n"
                     "strength_U = 0.5\n", "seed 0 lies in the spinal canal"),
    "in the disc": ("[[seeds]]\nposition_mm = [0.0, 0.0, 0.0]\ndirection = [0, 0, 1]\n"
                    "strength_U = 0.5\n", "seed 0 at [0.0, 0.0, 0.0] is not entirely inside bone"),
    "two at one point": ("[[seeds]]\nposition_mm = [0.0, 0.0, 18.0]\ndirection = [0, 0, 1]\n"
                         "strength_U = 0.5\n" * 2, "seeds[0] and seeds[1]: their capsules "
                         "overlap"),  # refused by read_plan: physically impossible
}


def _bad_plans_fail_before_meshing(cli_env, tmp_path, ranks):
    for label, (text, message) in BAD_PLANS.items():
        plan = tmp_path / "plan.toml"
        plan.write_text(text)
        for command in ("dose", "evaluate"):
            out_dir = tmp_path / f"{command}-{ranks}"
            res = run([command, "--plan", str(plan), "--out", str(out_dir)], cli_env, ranks)
            assert res.returncode == 2, (label, command, res.stderr)
            assert f"{plan}: " in res.stderr, (label, command)
            assert message in res.stderr, (label, command, res.stderr)
            assert "Traceback" not in res.stderr and not out_dir.exists(), (label, command)


def test_a_model_its_command_cannot_run_is_refused(cli_env, tmp_path):
    """A fibre-reinforced annulus in a linear solve, creep without a relaxing material, a
    poroelastic disc outside creep, or in creep beside a Prony series or a nearly incompressible
    nucleus: exit 2 before any meshing, the key named, nothing written (issue 22)."""
    fibres = tmp_path / "fibres.toml"
    fibres.write_text("[materials.annulus_fibrosus.fibres]\n")
    poroelastic = tmp_path / "poroelastic.toml"
    poroelastic.write_text("[materials.annulus_fibrosus.poroelastic]\n")
    both = tmp_path / "poroelastic_disc.toml"
    both.write_text("[materials.nucleus_pulposus]\nnu = 0.3\n"
                    "[materials.nucleus_pulposus.poroelastic]\n"
                    "[materials.annulus_fibrosus.poroelastic]\n")
    with_prony = tmp_path / "with_prony.toml"
    with_prony.write_text(both.read_text() + "[materials.annulus_fibrosus.relaxation]\n"
                          "g = [0.5]\ntau_s = [60.0]\n")
    for args, message in (
        (["compare", str(fibres)], "materials.annulus_fibrosus.fibres: a finite-strain law has "
         "no linear form"),
        (["solve", str(fibres)], "a finite-strain law has no linear form"),
        (["creep"], "creep: no material relaxes"),
        (["creep", str(poroelastic)], "materials.nucleus_pulposus.nu: nearly incompressible"),
        (["creep", str(with_prony)], "materials.annulus_fibrosus.relaxation: a Prony series "
         "does not combine with a poroelastic disc"),
        (["solve", str(both)], "materials.annulus_fibrosus.poroelastic, materials.nucleus_"
         "pulposus.poroelastic: this solve does not take a poroelastic disc"),
        (["rom", str(both)], "only `spinefe creep` does"),
    ):
        out = tmp_path / "out"
        res = run([*args, "--out", str(out)], cli_env)
        assert res.returncode == 2 and message in res.stderr, (args, res.stderr)
        assert "Traceback" not in res.stderr and not out.exists(), args


def test_a_plan_that_cannot_be_implanted_is_refused(cli_env, tmp_path):
    _bad_plans_fail_before_meshing(cli_env, tmp_path, ranks=1)


def test_a_plan_that_cannot_be_implanted_is_refused_on_two_ranks(cli_env, tmp_path):
    _bad_plans_fail_before_meshing(cli_env, tmp_path, ranks=2)


def test_unusable_files_are_named_without_a_traceback(cli_env, tmp_path):
    """Issue 25, family 4: a config or study file that is a directory or binary, an --out that
    is an existing file: exit 2, the file named, no traceback, nothing written."""
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_dir").mkdir()
    (tmp_path / "garbage.toml").write_bytes(bytes(range(256)))
    out = tmp_path / "out"
    cases = [
        (["mesh", str(tmp_path / "a_dir"), "--out", str(out)], "a_dir: a directory, not a TOML"),
        (["mesh", str(tmp_path / "garbage.toml"), "--out", str(out)], "garbage.toml: not a text"),
        (["study", "run", str(tmp_path / "a_dir"), "--out", str(out)], "study file"),
        (["mesh", "--out", str(tmp_path / "a_file")], "a_file exists and is not a directory"),
        (["mesh", "--out", str(tmp_path / "a_file" / "sub")], "a_file is not a directory"),
    ]
    for args, message in cases:
        res = run(args, cli_env)
        assert res.returncode == 2, (args, res.stderr)
        assert message in res.stderr and "Traceback" not in res.stderr, (args, res.stderr)
        assert not out.exists(), args


def test_provenance_of_unreadable_files_names_the_file(cli_env, tmp_path):
    """Issue 25, family 4: spinefe provenance on a JSON list, garbage .xdmf or .dcm, an .h5
    without its .xdmf: a message naming the file, exit 2, no traceback."""
    from spinefe.common.provenance import read_provenance

    (tmp_path / "list.json").write_text("[1, 2]")
    for name in ("garbage.xdmf", "garbage.dcm"):
        (tmp_path / name).write_bytes(bytes(range(256)))
    (tmp_path / "lone.h5").write_bytes(b"")
    for name, message in [("list.json", "a JSON list, not a results summary"),
                          ("garbage.xdmf", "not a readable .xdmf file"),
                          ("garbage.dcm", "not a readable .dcm file"),
                          ("lone.h5", "its record is in")]:
        with pytest.raises(ValueError, match=message):
            read_provenance(tmp_path / name)
    res = run(["provenance", str(tmp_path / "list.json")], cli_env)
    assert res.returncode == 2 and "list.json" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_any_plan_doses_an_unimplantable_plan_with_a_warning(tmp_path, caplog):
    """--any-plan (research) skips the implant checks and says so; it needs --plan."""
    import logging
    from argparse import Namespace

    from spinefe.cli.commands import _implantable_plan
    from spinefe.config.sections import Config

    plan = tmp_path / "plan.toml"
    plan.write_text(BAD_PLANS["in the disc"][0])
    with caplog.at_level(logging.WARNING):
        given = _implantable_plan(Namespace(plan=plan), Config(), unchecked=True)
    assert len(given.seeds) == 1 and "--any-plan" in caplog.text


def test_the_grazing_warning_is_for_meshed_capsules_only(tmp_path, caplog):
    """A plan checked for implanting only (evaluate embeds its capsules, dose --plan keeps the
    config's mesh) gets no warning about sliver elements; with its capsules meshed it does."""
    import logging
    from argparse import Namespace

    from spinefe.cli.commands import _implantable_plan
    from spinefe.config.sections import Config

    direction = np.array([-np.sin(np.radians(10.0)), -np.cos(np.radians(10.0)), 0.0])
    centre = np.round(np.array([5.0, 8.0, 21.0]) + 3.0 * direction, 3)  # 6 um from the lesion
    plan = tmp_path / "plan.toml"
    plan.write_text(f"[[seeds]]\nposition_mm = {centre.tolist()}\n"
                    f"direction = {np.round(direction, 6).tolist()}\nstrength_U = 0.5\n")
    with caplog.at_level(logging.WARNING, logger="spinefe.geometry.layout"):
        _implantable_plan(Namespace(plan=plan), Config())
        assert not caplog.records
        _implantable_plan(Namespace(plan=plan), Config(), meshed=True)
    assert "seeds.0: the capsule comes within" in caplog.text


def test_nucleus_too_large_fails_on_both_ranks(cli_env, tmp_path):
    """A geometric check that needs the disc volume still fails before any CAD, on all ranks."""
    path = tmp_path / "nucleus.toml"
    path.write_text("[disc]\nnucleus_fraction = 0.95\n")
    res = run(["mesh", str(path), "--out", str(tmp_path / "o"), "--no-cache"], cli_env, ranks=2)
    assert res.returncode == 2, res.stderr
    assert "disc.nucleus_fraction" in res.stderr


def test_mesh_main_job_on_two_ranks(cli_env, tmp_path):
    cfg = tmp_path / "coarse.toml"
    cfg.write_text(f"[mesh]\nsize_mm = {TEST_H}\nseed_size_mm = 0.5\n")
    out = tmp_path / "out"
    res = run(["mesh", str(cfg), "--out", str(out)], cli_env, ranks=2)
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mpi_size"] == 2 and len(summary["cells_per_rank"]) == 2
    assert summary["mesher"] == "hxt"  # no Delaunay fallback on the default segment
    assert summary["regions"]["L4.lesion"]["cells"] > 0
    assert set(summary["landmarks"]) == {"ALL", "PLL", "LF", "ITL.left", "ITL.right", "ISL", "SSL",
                                         "CL.left", "CL.right"}
    assert (out / "segment.png").stat().st_size > 10_000
    assert (out / "mesh.xdmf").exists() and (out / "mesh.h5").exists()


def _outcomes():
    from dosimetry import PlanError, SeedModelError
    from spinefe.cli.commands import CasesFailed, Interrupted, RerunDiffers
    from spinefe.common.errors import ConfigError, MeshingError, PlanningError

    return [
        (None, 0, ""),
        (ConfigError("mesh.size_mm: bad"), 2, "spinefe: error: mesh.size_mm: bad"),
        (PlanningError("access: bad"), 2, "spinefe: error: access: bad"),
        (PlanError("seeds: bad"), 2, "spinefe: error: seeds: bad"),
        (SeedModelError("model: bad"), 2, "spinefe: error: model: bad"),
        (RerunDiffers("1 scalar differs"), 3, ""),
        (CasesFailed(3), 13, ""),
        (CasesFailed(400), 125, ""),
        (Interrupted("completed cases are in DIR"), 130,
         "spinefe: interrupted (rank 0); completed cases are in DIR"),
        (KeyboardInterrupt(), 130, "spinefe: interrupted (rank 0)"),
        (MeshingError("gmsh failed"), 1, "MeshingError: gmsh failed"),
    ]


@pytest.fixture
def own_logging():
    """main() points the spinefe loggers at the stderr of its time (here capsys's, closed after
    the test): put the session's handlers back."""
    loggers = [logging.getLogger(name) for name in ("spinefe", "dosimetry")]
    saved = [(g.handlers[:], g.level, g.propagate) for g in loggers]
    yield
    for g, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        g.handlers[:], g.propagate = handlers, propagate
        g.setLevel(level)


def test_every_outcome_has_its_exit_status(monkeypatch, capsys, own_logging):
    """spinefe.cli.main maps each outcome of a command to its exit status, in one place."""
    from spinefe.cli import commands
    from spinefe.cli.main import main

    for raised, status, message in _outcomes():
        def command(args, comm, raised=raised):
            if raised is not None:
                raise raised

        monkeypatch.setitem(commands.COMMANDS, "report", command)
        assert main(["report", "results/x"]) == status, raised
        err = capsys.readouterr().err
        assert message in err and ("Traceback" in err) == (status == 1), (raised, err)
