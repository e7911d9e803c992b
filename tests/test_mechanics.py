"""The segment under the paper's load: materials per scenario, reaction, results, 1 vs 2 ranks."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from mpi4py import MPI

from conftest import coarse, spinefe_cmd
from spinefe.common import regions as R
from spinefe.common.errors import ConfigError
from spinefe.config.loading import parse_config
from spinefe.config.plans import config_plan
from spinefe.mechanics.materials import cell_materials, in_lesion, material_fields

pytestmark = pytest.mark.parallel


def _solve(model, cfg, scenario="implanted"):
    """The linear solve of `scenario` under `cfg`'s sections and its result record."""
    from spinefe.mechanics.segment import solve_segment
    from spinefe.mechanics.stress import summarize

    sol = solve_segment(model, material_fields(model, cfg.materials, cfg.lesion, scenario),
                        cfg.mechanics)
    record = summarize(sol, model, scenario, mechanics=cfg.mechanics, seeds=config_plan(cfg),
                       capsule=cfg.seed_capsule)[0]
    return sol, record


@pytest.fixture(scope="module")
def segment(default_segment):
    return default_segment


@pytest.fixture(scope="module")
def implanted(segment):
    # A user PETSc option equal to the built-in one: the results are those of the default
    # config, and the record shows the option.
    return _solve(segment, coarse(mechanics={"petsc": {"pc_gamg_threshold": 0.05}}))


def _owned(model, region):
    cells = model.cell_tags.find(model.tag(region))
    return cells[cells < model.mesh.topology.index_map(3).size_local]


def test_dose_only_regions_left_out(default_model, segment):
    """The canal carries no load: it is cut out of the mechanics mesh, all else is kept."""
    assert R.CANAL in default_model.regions() and R.CANAL not in segment.regions()
    comm = segment.comm
    n_all = default_model.mesh.topology.index_map(3).size_global
    n_canal = comm.allreduce(_owned(default_model, R.CANAL).size)
    assert segment.mesh.topology.index_map(3).size_global == n_all - n_canal
    for surface in (R.L4_SUPERIOR, R.L5_INFERIOR):
        facets = segment.facet_tags.find(segment.tag(surface))
        parent = default_model.facet_tags.find(default_model.tag(surface))
        assert comm.allreduce(facets.size) == comm.allreduce(parent.size) > 0


@pytest.mark.parametrize("scenario", ["healthy", "tumour", "implanted"])
def test_scenario_materials(segment, scenario):
    """One mesh, three material maps: lesion and seed cells change material, nothing else.

    Checks are made locally and reduced before asserting: a rank may own no lesion or seed cells,
    and an assertion failing on one rank only must not leave the other in a collective.
    """
    import dolfinx

    cfg = coarse()
    names = cell_materials(segment, cfg.lesion, scenario)
    lesion, seeds = _owned(segment, R.LESION), _owned(segment, R.SEEDS)
    trabecular = _owned(segment, "L4.trabecular")
    inside = in_lesion(cfg.lesion, dolfinx.mesh.compute_midpoints(segment.mesh, 3, seeds))
    seed_material = {
        "healthy": np.full(seeds.size, "trabecular_bone"),
        "tumour": np.where(inside, "metastatic_tumor", "trabecular_bone"),  # host material
        "implanted": np.full(seeds.size, "Ti6Al4V"),
    }[scenario]
    checks = {
        "lesion": np.all(
            names[lesion] == ("trabecular_bone" if scenario == "healthy" else "metastatic_tumor")
        ),
        "trabecular": np.all(names[trabecular] == "trabecular_bone"),
        "seeds": np.all(names[seeds] == seed_material),
    }
    comm = segment.comm
    failed = [k for k, ok in checks.items() if not comm.allreduce(bool(ok), op=MPI.LAND)]
    assert not failed, f"{scenario}: wrong materials in {failed}"
    counts = [comm.allreduce(int(n)) for n in (lesion.size, seeds.size, inside.sum())]
    assert min(counts) > 0, counts  # the seeds (some of them in the lesion) are meshed


def test_material_override(segment):
    """A material set in the config reaches the cells of its regions."""
    data = coarse().model_dump(mode="json")
    data["materials"]["trabecular_bone"] = {"E_MPa": 250.0, "nu": 0.25}
    fields = material_fields(segment, parse_config(data).materials, coarse().lesion, "healthy")
    dofs = fields.space.dofmap.list[_owned(segment, "L4.trabecular")].ravel()
    assert np.all(fields.E.x.array[dofs] == 250.0) and np.all(fields.nu.x.array[dofs] == 0.25)


@pytest.mark.serial_only
def test_bad_material_rejected():
    data = coarse().model_dump(mode="json")
    data["materials"]["nucleus_pulposus"]["nu"] = 0.5
    with pytest.raises(ConfigError, match=r"materials.nucleus_pulposus.nu"):
        parse_config(data)
    data = coarse().model_dump(mode="json")
    data["mechanics"]["scenario"] = "fractured"
    with pytest.raises(ConfigError, match=r"mechanics.scenario.*healthy.*tumour.*implanted"):
        parse_config(data)


def test_reaction_balances_load(implanted):
    """Residual reaction on L5.inferior equals the 500 N on L4.superior to 1e-6 relative
    (CG stops at a true residual of 1e-8 ||b||, which bounds the imbalance)."""
    sol, record = implanted
    assert record["applied_N"] == pytest.approx(500.0, rel=1e-12)  # traction = force / area
    assert record["reaction_N"] == pytest.approx(500.0, rel=1e-6)
    assert np.abs(sol.reaction_N[:2]).max() < 1e-6 * 500.0
    assert record["converged_reason"] == "CONVERGED_RTOL"


def test_result_record(implanted, segment):
    """Every region and band reports max >= p99 >= p95 and a positive mean; seeds are stiff."""
    from spinefe.mechanics.scenarios import ScenarioRecord

    _, record = implanted
    vm = record["von_mises_MPa"]
    for name in [*segment.regions(), "L4.cortical_endplates", "L4.cancellous", "seeds.band"]:
        s = vm[name]
        assert s["max"] >= s["p99"] >= s["p95"] > 0.0 and s["mean"] > 0.0, name
    # Load path: cortical shell and seeds carry far more stress than the soft lesion.
    assert vm["L4.cortical"]["p99"] > 10 * vm[R.LESION]["p99"]
    assert vm[R.SEEDS]["mean"] > 10 * vm[R.LESION]["mean"]
    # Intradiscal pressure is about 1.3-1.5 x axial force / disc area (spine-mechanics.md);
    # the disc section here is 1195 mm^2 (0.42 MPa mean stress), so 0.3-0.8 MPa brackets it.
    assert 0.3 < record["nucleus_pressure_MPa"] < 0.8
    assert record["strain_energy_mJ"] > 0.0 and record["disc_bulge_mm"] > 0.0
    assert record["petsc_options"] == {"pc_gamg_threshold": 0.05}
    # summary.json: the typed record gives back the summary, in its order, with what
    # run_scenario adds
    full = record | {"nonlinear": {"newton": []}, "provenance": {"utc": "now"}, "files": ["f"]}
    assert list(ScenarioRecord(**full).to_dict().items()) == list(full.items())


def test_averaged_pressure_relieves_locking(segment, implanted):
    """Plain P1 with nu = 0.499 locks the nucleus: the disc is stiffer (less energy, smaller
    bulge) than with the averaged nodal pressure on the same mesh."""
    data = coarse().model_dump(mode="json")
    data["mechanics"]["nearly_incompressible_nu"] = 0.5  # off
    plain, record = _solve(segment, parse_config(data))
    assert plain.pressure is None
    assert plain.strain_energy_mJ < implanted[0].strain_energy_mJ
    assert record["disc_bulge_mm"] < implanted[1]["disc_bulge_mm"]


@pytest.mark.mpi_only
def test_one_and_two_ranks_agree(segment, cache_dir):
    """The same segment solved on 1 rank and on 2 ranks agrees to 1e-8 relative (CG at
    rtol 1e-12, so the partition-dependent AMG only changes the iteration count)."""
    from spinefe.geometry.mesh import build_mesh
    from spinefe.geometry.segment import segment_geometry
    from spinefe.mechanics.segment import load_bearing

    data = coarse().model_dump(mode="json")
    data["mechanics"]["rtol"] = 1e-12
    cfg = parse_config(data)
    records = []
    for comm in (MPI.COMM_SELF, MPI.COMM_WORLD):
        model = load_bearing(build_mesh(segment_geometry(coarse()), comm, cache_dir))
        records.append(_solve(model, cfg)[1])
    one, two = records
    assert two["mpi_size"] == 2 and one["dofs"] == two["dofs"]
    for key in ("strain_energy_mJ", "max_displacement_mm", "nucleus_pressure_MPa", "reaction_N"):
        assert two[key] == pytest.approx(one[key], rel=1e-8), key
    for group in ("L4.cortical_endplates", "L4.cancellous", R.NUCLEUS, "seeds.band"):
        for stat in ("max", "p99", "mean"):
            a, b = one["von_mises_MPa"][group][stat], two["von_mises_MPa"][group][stat]
            assert b == pytest.approx(a, rel=1e-8), (group, stat)


@pytest.mark.serial_only
def test_solve_command(tmp_path, cli_env):
    """`spinefe solve` on 2 ranks writes the summary the issue asks for, and the fields."""
    cfg = tmp_path / "coarse.toml"
    from spinefe.config.toml import config_toml

    cfg.write_text(config_toml(coarse()))
    out = tmp_path / "out"
    run = subprocess.run(
        spinefe_cmd("solve", str(cfg), "--scenario", "tumour", "--out", str(out), ranks=2),
        env=cli_env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scenario"] == "tumour" and summary["mpi_size"] == 2
    assert summary["reaction_N"] == pytest.approx(500.0, rel=1e-6)
    assert summary["dofs"] > 0 and summary["iterations"] > 0
    for stats in summary["von_mises_MPa"].values():
        assert set(stats) >= {"max", "p95", "p99", "mean"}
    for name in ("fields.xdmf", "fields.h5", "displacement.bp", "cell_fields.bp", "von_mises.png"):
        assert (out / name).exists(), name


@pytest.mark.serial_only
def test_solve_rejects_bad_scenario(tmp_path, cli_env):
    run = subprocess.run(
        spinefe_cmd("solve", "--scenario", "broken", "--out", str(tmp_path)),
        env=cli_env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert "--scenario" in run.stderr and "healthy" in run.stderr


@pytest.mark.validation
@pytest.mark.serial_only
def test_indicators_converge_on_coarse_meshes(segment, implanted, cache_dir):
    """The paper's indicators (von Mises in the L4 cortical shell and the L4 superior endplate)
    at h = 2.5 and 2.0 mm. Measured: p99 changes 1-3 %, single-element max up to 12 %: the max
    is one element at a sharp CAD edge, and meshing the same CAD in another entity order (issue
    21's CAD change) moved it from 21.98 to 24.59 MPa at 2.5 mm while p99 moved 1 %
    (docs/model.md). Tolerances: 5 % on p99 (the paper's criterion), 15 % on max (its mesher
    variation at these sizes). The full 1.0 / 0.8 / 0.6 mm study is
    studies/mesh_convergence.toml (docs/mechanics.md)."""
    from spinefe.geometry.mesh import build_mesh
    from spinefe.geometry.segment import segment_geometry
    from spinefe.mechanics.segment import load_bearing

    cfg = coarse(mesh={"size_mm": 2.0})
    fine = load_bearing(build_mesh(segment_geometry(cfg), MPI.COMM_WORLD, cache_dir))
    record = _solve(fine, cfg)[1]
    for region in ("L4.cortical", "L4.endplate_superior"):
        a, b = implanted[1]["von_mises_MPa"][region], record["von_mises_MPa"][region]
        assert b["p99"] == pytest.approx(a["p99"], rel=0.05), region
        assert b["max"] == pytest.approx(a["max"], rel=0.15), region
