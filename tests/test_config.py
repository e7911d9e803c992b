"""Configuration: defaults, the commented TOML round trip, and every bad input of the issue."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

from spinefe.config.sections import Config
from spinefe.config.loading import parse_config
from spinefe.common.errors import ConfigError
from spinefe.config.toml import config_toml, default_toml
from spinefe.geometry.layout import check_layout, segment_layout
from spinefe.geometry.segment import segment_geometry


def _with(path: str, value) -> dict:
    """The default config as a dict with one key (dotted path, list indices allowed) replaced."""
    data = Config().model_dump(mode="json")
    *parents, last = path.split(".")
    node = data
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    node[int(last) if last.isdigit() else last] = value
    return data


def _load(data: dict) -> Config:
    """What every edge does with a segment's config: validate it, then check its layout."""
    cfg = parse_config(data)
    check_layout(cfg)
    return cfg


def test_default_toml_round_trips():
    text = default_toml()
    assert text.count("[[seeds]]") == len(Config().seeds)
    assert parse_config(tomllib.loads(text)) == Config()
    other = parse_config(_with("lesion.enabled", False))
    assert parse_config(tomllib.loads(config_toml(other))) == other
    assert "[panjabi1992]" in text and "(> 0.0)" in text


def test_hash_is_stable_and_sensitive():
    assert Config().hash() == Config().hash()
    other = parse_config(_with("layers.cortical_shell_mm", 1.4))
    assert other.hash() != Config().hash()
    assert other.hash("lesion") == Config().hash("lesion")


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("layers.cortical_shel_mm", 1.5, "layers.cortical_shel_mm: unknown key"),
        (
            "layers.cortical_shell_mm",
            -1.0,
            "layers.cortical_shell_mm: Input should be greater than 0",
        ),
        ("layers.bony_endplate_mm", 0.0, "layers.bony_endplate_mm: Input should be greater than 0"),
        ("layers.cartilage_mm", 0.0, "layers.cartilage_mm: Input should be greater than 0"),
        ("disc.nucleus_fraction", 1.2, "disc.nucleus_fraction: Input should be less than 1"),
        ("disc.nucleus_fraction", 0.0, "disc.nucleus_fraction: Input should be greater than 0"),
        ("lesion.centre_mm", [0.0, -15.0, 18.0], "reaches outside the L4 vertebral body"),
        ("lesion.radii_mm", [30.0, 9.0, 8.0], "reaches outside the L4 vertebral body"),
        ("seeds.0.position_mm", [40.0, 0.0, 18.0], "seeds.0.position_mm: seed 0"),
        ("seeds.0.position_mm", [0.0, 25.0, 18.0], "seed 0 lies in the spinal canal"),
        ("seeds.1.position_mm", [9.0, 3.0, 15.3], "seeds.0 and seeds.1 overlap"),
        ("seeds.2.direction", [0.0, 0.0, 0.0], "seeds.2.direction: must be a non-zero vector"),
        # Strict types (issue 25): no coercion of strings or booleans, numbers are finite.
        ("layers.cortical_shell_mm", True, "layers.cortical_shell_mm: Input should be a valid "
         "number, got True"),
        ("mesh.size_mm", "3.0", "mesh.size_mm: Input should be a valid number, got '3.0'"),
        ("mesh.size_mm", float("nan"), "mesh.size_mm: Input should be a finite number, got nan"),
        ("lesion.radii_mm", [12.0, float("inf"), 8.0], "lesion.radii_mm.1: Input should be a "
         "finite number"),
        ("regions.canal", 1, "regions.canal: Input should be a valid boolean, got 1"),
        ("mesh.algorithm", 3, "mesh.algorithm: Input should be 'hxt' or 'delaunay'"),
    ],
)
def test_bad_input_names_the_key(path, value, expected):
    with pytest.raises(ConfigError) as err:
        _load(_with(path, value))
    assert expected in str(err.value)


AF = "materials.annulus_fibrosus"
TB = "materials.trabecular_bone"
TUMOUR = "materials.metastatic_tumor"


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (f"{AF}.fibres", {"angle_deg": 0.0}, f"{AF}.fibres.angle_deg: Input should be greater "
         "than 0"),
        (f"{AF}.fibres", {"angle_deg": 90.0}, f"{AF}.fibres.angle_deg: Input should be less "
         "than 90"),
        (f"{AF}.fibres", {"kappa": 0.4}, f"{AF}.fibres.kappa: Input should be less than or "
         "equal to 0.333"),
        (f"{AF}.fibres", {"k1_MPa": 0.0}, f"{AF}.fibres.k1_MPa: Input should be greater than 0"),
        (f"{AF}.fibres", {"matrix_E_MPa": -1.0}, f"{AF}.fibres.matrix_E_MPa: Input should be "
         "greater than 0"),
        (f"{TB}.fibres", {}, "trabecular_bone.fibres: only annulus_fibrosus can take fibres"),
        (f"{AF}.anisotropy", {}, "annulus_fibrosus.anisotropy: only cortical_bone, "
         "trabecular_bone, posterior_bone can take anisotropy"),
        (f"{TB}.anisotropy", {"E_ratios": [0.7, 0.0, 1.0]}, f"{TB}.anisotropy.E_ratios.1: Input "
         "should be greater than 0"),
        (f"{TB}.anisotropy", {"E_ratios": [0.1, 1.0, 1.0], "nu": [0.3, 0.45, 0.3]},
         "the constants are not those of a stable material (compliance not positive "
         "definite)"),
        (f"{TB}.density", {}, "give exactly one of rho_g_cm3 and grid_file"),
        (f"{TB}.density", {"rho_g_cm3": 0.2, "grid_file": "x.npz"}, "give exactly one of"),
        (f"{TB}.density", {"rho_g_cm3": -0.2}, f"{TB}.density.rho_g_cm3: Input should be "
         "greater than 0"),
        (f"{TUMOUR}.variation", {"kind": "random", "cov": 0.0}, "cov: Input should be greater "
         "than 0"),
        (f"{TUMOUR}.variation", {"kind": "random", "correlation_length_mm": -3.0},
         "correlation_length_mm: Input should be greater than 0"),
        (f"{TUMOUR}.variation", {"kind": "mixed", "blastic_E_MPa": 500.0,
                                 "blastic_fraction": 1.0}, "blastic_fraction: Input should be "
         "less than 1"),
        (f"{TUMOUR}.variation", {"kind": "radial", "core_E_MPa": 0.0}, "core_E_MPa: Input "
         "should be greater than 0"),
        (f"{TUMOUR}.variation", {"kind": "fractal"}, f"{TUMOUR}.variation: Input tag 'fractal' "
         "found using 'kind' does not match any of the expected tags: 'random', 'radial', "
         "'mixed'"),
        (f"{TB}.variation", {"kind": "radial", "core_E_MPa": 1.0}, "only metastatic_tumor can "
         "take variation"),
        ("materials.nucleus_pulposus.relaxation", {"g": [0.6, 0.5], "tau_s": [10.0, 1000.0]},
         "the Prony weights must sum below 1 (the long-term modulus g_inf = 1 - sum g is "
         "positive), got sum 1.1"),
        ("materials.nucleus_pulposus.relaxation", {"g": [0.0], "tau_s": [10.0]},
         "each Prony weight g must lie in (0, 1), got [0.0]"),
        ("materials.nucleus_pulposus.relaxation", {"g": [0.5], "tau_s": [0.0]},
         "materials.nucleus_pulposus.relaxation.tau_s.0: Input should be greater than 0"),
        ("materials.nucleus_pulposus.relaxation", {"g": [0.5, 0.1], "tau_s": [10.0]},
         "g and tau_s need one entry each per term, got 2 and 1"),
        (f"{AF}.poroelastic", {"permeability_mm4_per_Ns": 0.0}, f"{AF}.poroelastic."
         "permeability_mm4_per_Ns: Input should be greater than 0"),
        (f"{AF}.poroelastic", {"permeability_mm4_per_Ns": -1e-4}, f"{AF}.poroelastic."
         "permeability_mm4_per_Ns: Input should be greater than 0"),
        (f"{AF}.poroelastic", {"alpha": 0.0}, f"{AF}.poroelastic.alpha: Input should be "
         "greater than 0"),
        (f"{AF}.poroelastic", {"alpha": 1.2}, f"{AF}.poroelastic.alpha: Input should be less "
         "than or equal to 1"),
        (f"{AF}.poroelastic", {"storage_1_per_MPa": -0.1}, f"{AF}.poroelastic."
         "storage_1_per_MPa: Input should be greater than or equal to 0"),
        (f"{TB}.poroelastic", {}, "trabecular_bone.poroelastic: only annulus_fibrosus, "
         "nucleus_pulposus can take poroelastic"),
    ],
)
def test_bad_material_options_name_the_key(path, value, expected):
    """Each bad option value is refused with its key named (issue 22)."""
    with pytest.raises(ConfigError) as err:
        parse_config(_with(path, value))
    assert expected in str(err.value)


def test_poroelastic_disc_material():
    """A poroelastic material takes its tissue's permeability unless given one, and its nu (the
    drained matrix's) must leave it compressible."""
    config = parse_config(_with(f"{AF}.poroelastic", {}))
    assert config.materials.permeability_mm4_per_Ns("annulus_fibrosus") == 2.3e-4
    data = _with("materials.nucleus_pulposus.poroelastic", {"permeability_mm4_per_Ns": 1e-3})
    with pytest.raises(ConfigError, match=r"materials.nucleus_pulposus: a poroelastic "
                                          r"material's nu is its drained matrix's"):
        parse_config(data)
    data["materials"]["nucleus_pulposus"]["nu"] = 0.2
    config = parse_config(data)
    assert config.materials.permeability_mm4_per_Ns("nucleus_pulposus") == 1e-3


def test_anisotropic_bone_cannot_be_nearly_incompressible():
    data = _with(f"{TB}.anisotropy", {})
    data["materials"]["trabecular_bone"]["nu"] = 0.495
    with pytest.raises(ConfigError, match="materials.trabecular_bone: an anisotropic material "
                                          "has no nearly incompressible form"):
        parse_config(data)


def test_a_material_table_may_give_its_options_only():
    """`[materials.annulus_fibrosus.fibres]` alone keeps the annulus's E and nu, and a config
    without options hashes as before (the options are left out of dumps while absent)."""
    data = Config().model_dump(mode="json")
    data["materials"]["annulus_fibrosus"] = {"fibres": {}}
    cfg = parse_config(data)
    assert cfg.materials.annulus_fibrosus.E_MPa == Config().materials.annulus_fibrosus.E_MPa
    assert cfg.materials.annulus_fibrosus.fibres.angle_deg == 34.5
    assert "fibres" not in Config().model_dump(mode="json")["materials"]["annulus_fibrosus"]
    assert parse_config(tomllib.loads(config_toml(cfg))) == cfg


def test_a_seed_needs_its_direction():
    """No silent +z axis (issue 25): the dose of a seed is anisotropic about its axis."""
    data = _with("seeds.0.position_mm", [9.479, 5.046, 15.0])
    del data["seeds"][0]["direction"]
    with pytest.raises(ConfigError, match="seeds.0.direction: missing"):
        parse_config(data)


def test_an_integer_is_a_number():
    assert parse_config(_with("mesh.size_mm", 2)).mesh.size_mm == 2.0


def test_seed_outside_bone_in_disc_is_rejected():
    with pytest.raises(ConfigError, match="not entirely inside bone"):
        _load(_with("seeds.0.position_mm", [0.0, 0.0, 0.0]))  # disc mid-plane


def test_layout_is_a_stacked_segment():
    lay = segment_layout(segment_geometry(Config()))
    # L5 below the disc below L4, endplates shared exactly.
    assert lay.L4.body.inferior == lay.disc.superior
    assert lay.L5.body.superior == lay.disc.inferior
    assert lay.L5.body.inferior.z(0) < lay.disc.inferior.z(0) < lay.disc.superior.z(0)
    assert lay.disc.superior.z(0) < lay.L4.body.superior.z(0)
    # Lordotic disc: anterior taller than posterior.
    assert lay.disc.superior.z(-17.5) - lay.disc.inferior.z(-17.5) == pytest.approx(12.0)
    # Landmarks: every ligament of the paper, each fibre with an L4 end above its L5 end.
    for name in ("ALL", "PLL", "LF", "ITL.left", "ITL.right", "ISL", "SSL"):
        for p4, p5 in lay.landmarks[name]:
            assert p4[2] > p5[2], name
    # Facet joint normals are unit and point posteromedially (from L5 to L4 surface).
    for joint in lay.facets:
        assert np.linalg.norm(joint.normal) == pytest.approx(1.0)
        assert joint.normal[1] > 0 and joint.normal[0] * joint.centre[0] < 0


def test_posterior_parts_meet_cleanly():
    """The rules that keep posterior surfaces apart (issue 21, element quality): each pedicle
    ends on its lamina's front face, with its end section inside the lamina by the margin; the
    L5 superior articular processes stand on the transverse processes' top, which is also the
    L5 lamina's top; the transverse processes' front face is set back."""
    from spinefe.geometry.layout import LAMINA_MARGIN_MM, TP_SETBACK_MM, pedicle_end_half_width

    cfg = Config()
    lay = segment_layout(segment_geometry(cfg))
    for v, level in ((lay.L4, cfg.L4), (lay.L5, cfg.L5)):
        lam = v.parts["lamina"]
        (_, y0, _), (x1, y1, _) = lam.corner, lam.corner + sum(lam.edges)
        assert y1 - y0 == pytest.approx(level.lamina_thickness_mm)
        for side in ("left", "right"):
            ped = v.parts[f"pedicle.{side}"]
            assert ped.base[1] == pytest.approx(0.5 * (y0 + y1))  # the needles' entry
            assert ped.end[0][1] == pytest.approx(y0)
            assert pedicle_end_half_width(ped) == pytest.approx(x1 - LAMINA_MARGIN_MM)
            # Behind the end plane (in the lamina) is not pedicle, just in front of it is.
            unit = ped.axis / np.linalg.norm(ped.axis)
            on_axis = ped.base + (y0 - ped.base[1]) / unit[1] * unit
            behind, ahead = on_axis + [0.0, 0.01, 0.0], on_axis - [0.0, 0.01, 0.0]
            assert not ped.contains(behind)[0] and ped.contains(ahead)[0]
            tp = v.parts[f"transverse_process.{side}"]
            assert tp.corner[1] == pytest.approx(y0 - level.lamina_thickness_mm + TP_SETBACK_MM)
    tp_top = lay.L5.parts["transverse_process.left"].corner[2] + cfg.L5.transverse_process_height_mm
    lam5 = lay.L5.parts["lamina"]
    assert lam5.corner[2] + lam5.edges[2][2] == pytest.approx(tp_top)
    for side in ("left", "right"):
        assert lay.L5.parts[f"articular_superior.{side}"].corner[2] == pytest.approx(tp_top)


def test_a_capsule_grazing_the_lesion_is_reported(caplog):
    """A capsule whose end comes 6 um short of the lesion surface (the default plan before
    issue 21) is named in a warning; the default plan is clear of every surface."""
    import logging

    with caplog.at_level(logging.WARNING, logger="spinefe.geometry.layout"):
        check_layout(Config())
    assert not caplog.records
    direction = np.array([-np.sin(np.radians(10.0)), -np.cos(np.radians(10.0)), 0.0])
    centre = np.array([5.0, 8.0, 21.0]) + 3.0 * direction
    data = {"seeds": [{"position_mm": np.round(centre, 3).tolist(),
                       "direction": np.round(direction, 6).tolist()}]}
    with caplog.at_level(logging.WARNING, logger="spinefe.geometry.layout"):
        check_layout(parse_config(data))
    assert "seeds.0: the capsule comes within mesh.seed_size_mm = 0.3 mm of the lesion" in (
        caplog.text)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"-ksp_rtol": 1e-10}, "mechanics.petsc.-ksp_rtol: write the PETSc option without '-'"),
        ({"spinefe_elasticity_ksp_rtol": 1e-10},
         "mechanics.petsc.spinefe_elasticity_ksp_rtol: write the PETSc option without a prefix"),
        ({"ksp rtol": 1e-10}, "mechanics.petsc.ksp rtol: not a PETSc option name"),
        ({"ksp_rtol": [1e-10]}, "mechanics.petsc.ksp_rtol: a PETSc option value is a string, "
         "number or boolean, not list"),
    ],
)
def test_bad_petsc_option_names_the_key(options, expected):
    with pytest.raises(ConfigError) as err:
        parse_config(_with("mechanics.petsc", options))
    assert expected in str(err.value)


def test_petsc_options_are_frozen_hashed_and_round_trip():
    """The [mechanics.petsc] table: immutable and hashable (a Config stays hashable), left out
    of the dump while empty (config hashes and study case ids are those of before the table
    existed), and written back as a TOML table."""
    default = Config()
    assert "petsc" not in default.model_dump()["mechanics"]
    cfg = parse_config(_with("mechanics.petsc", {"ksp_rtol": 1e-10, "pc_gamg_threshold": 0.02,
                                                "ksp_monitor": "", "snes_ksp_ew": False}))
    assert dict(cfg.mechanics.petsc) == {"ksp_rtol": 1e-10, "pc_gamg_threshold": 0.02,
                                         "ksp_monitor": "", "snes_ksp_ew": False}
    assert hash(cfg) != hash(default) and cfg.hash() != default.hash()
    with pytest.raises(TypeError):
        cfg.mechanics.petsc["ksp_rtol"] = 1.0
    assert parse_config(tomllib.loads(config_toml(cfg))) == cfg
    assert parse_config(cfg.model_dump(mode="json")) == cfg
