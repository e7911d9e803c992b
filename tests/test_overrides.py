"""The one override path (spinefe.config.overrides): KEY=VALUE pairs read as TOML, dotted keys set
in nested tables, deep merge, flattening, a Config overridden and validated again; and the
command line's flags, --set and --petsc arriving there as dotted keys. No mesh: fast."""

from __future__ import annotations

import pytest

from spinefe.common.errors import ConfigError
from spinefe.config.overrides import (
    apply,
    flatten,
    merge,
    override,
    parse_pairs,
    parse_value,
    petsc_overrides,
    set_dotted,
)
from spinefe.config.sections import Config


@pytest.mark.parametrize(("text", "value"), [
    ("2.0", 2.0), ("3", 3), ("1e-10", 1e-10), ("true", True), ("[1, 2]", [1, 2]),
    ('"mumps"', "mumps"), ("mumps", "mumps"), ("", ""), ("{ a = 1 }", {"a": 1}),
])
def test_values_are_read_as_toml_and_bare_words_as_strings(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_pairs_become_dotted_keys():
    pairs = [" mesh.size_mm = 2.0", "mechanics.solver=mumps", "job.n=[20, 20]", "mesh.size_mm=1.5"]
    assert parse_pairs(pairs) == {"mesh.size_mm": 1.5, "mechanics.solver": "mumps",
                                  "job.n": [20, 20]}  # the later pair of a key wins
    assert parse_pairs(["a=b=c"]) == {"a": "b=c"}  # the first '=' splits
    assert petsc_overrides(["ksp_type=cg", "ksp_rtol=1e-10"]) == {
        "mechanics.petsc.ksp_type": "cg", "mechanics.petsc.ksp_rtol": 1e-10}


@pytest.mark.parametrize("pair", ["job.n", "=3", " =3", ""])
def test_a_pair_without_key_or_value_is_refused_naming_the_option(pair):
    with pytest.raises(ConfigError, match=f"--set: {pair!r}, expected KEY=VALUE"):
        parse_pairs([pair])
    with pytest.raises(ConfigError, match=r"--petsc: .*\(e.g. ksp_rtol=1e-10\)"):
        petsc_overrides([pair])


def test_set_dotted_makes_missing_tables_and_names_a_key_that_is_not_a_table():
    data = {"mesh": {"size_mm": 1.0}, "opt": None}
    set_dotted(data, "mesh.size_mm", 2.0)
    set_dotted(data, "mechanics.petsc.ksp_type", "cg")
    set_dotted(data, "opt.x", 1)  # None: an unset optional table
    set_dotted(data, "top", [1])
    assert data == {"mesh": {"size_mm": 2.0}, "mechanics": {"petsc": {"ksp_type": "cg"}},
                    "opt": {"x": 1}, "top": [1]}
    with pytest.raises(ConfigError, match="'mesh.size_mm.x': 'mesh.size_mm' is not a table"):
        set_dotted(data, "mesh.size_mm.x", 1)
    with pytest.raises(ConfigError, match="'top.0': 'top' is not a table"):
        set_dotted(data, "top.0", 1)


def test_apply_sets_in_order_and_copies_the_values():
    value = [1, 2]
    data = apply({}, {"a.b": value, "a.c": 1, "a.e": {"f": 1}})
    value.append(3)
    assert data == {"a": {"b": [1, 2], "c": 1, "e": {"f": 1}}}


def test_merge_is_deep_and_does_not_alias_the_update():
    update = {"mesh": {"size_mm": 2.0}, "seeds": [{"x": 1}], "new": {"k": 1}}
    data = merge({"mesh": {"size_mm": 1.0, "order": 1}, "seeds": [{"x": 0}, {"x": 2}]}, update)
    assert data == {"mesh": {"size_mm": 2.0, "order": 1}, "seeds": [{"x": 1}], "new": {"k": 1}}
    data["new"]["k"] = 5
    data["seeds"][0]["x"] = 5
    assert update == {"mesh": {"size_mm": 2.0}, "seeds": [{"x": 1}], "new": {"k": 1}}


def test_flatten_gives_dotted_keys_that_apply_back():
    nested = {"dosimetry": {"activity_mCi": 0.8, "prescription_Gy": 140.0},
              "job.access": "bilateral", "mesh": {"size_mm": 2.0}, "rom": {"motions": ["a"]}}
    flat = flatten(nested)
    assert flat == {"dosimetry.activity_mCi": 0.8, "dosimetry.prescription_Gy": 140.0,
                    "job.access": "bilateral", "mesh.size_mm": 2.0, "rom.motions": ["a"]}
    assert flatten(flat) == flat
    assert apply({}, flat) == apply({}, flatten(nested))


def test_a_config_overridden_is_validated_again_naming_the_key():
    cfg = Config()
    assert override(cfg, {}) is cfg
    new = override(cfg, {"dosimetry.activity_mCi": 0.6, "rom.motions": ["flexion"],
                         "seeds": []})
    assert new.dosimetry.activity_mCi == 0.6 and new.rom.motions == ("flexion",)
    assert new.seeds == () and new.mesh == cfg.mesh and new.hash() != cfg.hash()
    assert cfg.dosimetry.activity_mCi != 0.6  # the original is untouched
    with pytest.raises(ConfigError, match="dosimetry.activity_mci: unknown key"):
        override(cfg, {"dosimetry.activity_mci": 0.6})
    with pytest.raises(ConfigError, match="mesh.size_mm: Input should be greater than or equal"):
        override(cfg, {"mesh.size_mm": -1.0})
    with pytest.raises(ConfigError, match="'mesh.size_mm.x': 'mesh.size_mm' is not a table"):
        override(cfg, {"mesh.size_mm.x": 1.0})


# ---------------------------------------------------------------------------------------------
# The command line's overrides (spinefe.cli.commands.overrides): parsing only


def cli_overrides(*argv: str) -> dict:
    from spinefe.cli.commands import overrides
    from spinefe.cli.parser import build_parser

    return overrides(build_parser().parse_args(argv))


def test_command_flags_are_dotted_overrides():
    assert cli_overrides("dose", "--out", "x") == {}
    assert cli_overrides("dose", "--out", "x", "--activity-mCi", "0.6",
                         "--prescription-Gy", "140") == {
        "dosimetry.activity_mCi": 0.6, "dosimetry.prescription_Gy": 140.0}
    assert cli_overrides("rom", "--out", "x", "--motions", "flexion", "extension",
                         "--scenario", "tumour", "--solver", "mumps") == {
        "rom.motions": ["flexion", "extension"], "mechanics.scenario": "tumour",
        "mechanics.solver": "mumps"}
    assert cli_overrides("optimise", "--out", "x", "--hybrid", "--seed", "3") == {
        "optimisation.hybrid": True, "optimisation.random_seed": 3}


@pytest.mark.parametrize("command", [["solve"], ["compare"], ["rom"], ["evaluate", "--plan",
                                     "p.toml"], ["optimise"]])
def test_petsc_options_of_the_solving_commands_are_mechanics_petsc_overrides(command):
    assert cli_overrides(*command, "--out", "x", "--petsc", "ksp_type=cg", "--petsc",
                         "ksp_rtol=1e-10") == {"mechanics.petsc.ksp_type": "cg",
                                               "mechanics.petsc.ksp_rtol": 1e-10}


def test_study_set_and_petsc_are_one_mapping():
    assert cli_overrides("study", "run", "s.toml", "--set", "mesh.size_mm=2.0", "--set",
                         "job.verify=false", "--petsc", "pc_type=lu") == {
        "mesh.size_mm": 2.0, "job.verify": False, "mechanics.petsc.pc_type": "lu"}


def test_petsc_flag_reaches_the_config_and_the_study_cases(tmp_path):
    """--petsc KEY=VALUE sets mechanics.petsc.KEY of the command's config (validated), and of
    every case of a study (a new case id)."""
    from spinefe.cli.commands import _config
    from spinefe.cli.parser import build_parser
    from spinefe.study.runner import load_study

    args = build_parser().parse_args(["solve", "--out", str(tmp_path), "--petsc",
                                      "ksp_type=cg", "--petsc", "ksp_rtol=1e-10"])
    petsc = dict(_config(args).mechanics.petsc)
    assert petsc["ksp_type"] == "cg" and petsc["ksp_rtol"] == pytest.approx(1e-10)
    study = tmp_path / "s.toml"
    study.write_text("[study]\njob = 'segment'\n[axes]\n'mesh.size_mm' = [2.0, 2.5]\n")
    plain = load_study(study)
    tuned = load_study(study, cli_overrides("study", "list", str(study), "--petsc",
                                            "ksp_rtol=1e-10"))
    assert all(dict(c.config.mechanics.petsc)["ksp_rtol"] == pytest.approx(1e-10)
               for c in tuned.cases)
    assert {c.id for c in plain.cases}.isdisjoint(c.id for c in tuned.cases)
