"""The poroelastic law and its consolidation solve against Terzaghi's 1D consolidation.

A column (rollers on the sides, fixed impermeable bottom, loaded drained top) under a load q held
from t = 0: the pore pressure and the settlement have closed-form series (Terzaghi; e.g. Verruijt,
Theory and Problems of Poroelasticity, 2016, ch. 2), which the solve must follow. Serial and 2
ranks.
"""

from __future__ import annotations

import numpy as np
import pytest
import ufl
from dolfinx import fem
from dolfinx.mesh import meshtags
from mpi4py import MPI

from boxes import box, midpoints, plane, total
from spinefe.common.errors import ConfigError
from spinefe.config.loading import parse_config
from spinefe.config.sections import Config
from spinefe.mechanics.consolidation import consolidate
from spinefe.mechanics.elasticity import LoadCase
from spinefe.mechanics.laws import Isotropic
from spinefe.mechanics.laws.poroelastic import Parameters
from spinefe.mechanics.materials import material_fields

HEIGHT_MM, WIDTH_MM, LOAD_MPA = 5.0, 0.5, 0.1
#: The annulus's measured drained confined modulus and permeability [perie2005] with nu 0.2.
ANNULUS = Parameters.of(0.74 * 1.2 * 0.6 / 0.8, 0.2, 2.3e-4)
#: Compressible constituents: alpha < 1 and a storage, so that the undrained state settles.
COMPRESSIBLE = Parameters.of(0.74 * 1.2 * 0.6 / 0.8, 0.2, 2.3e-4, alpha=0.8,
                             storage_1_per_MPa=0.5)


def terzaghi(params: Parameters, depth_mm: np.ndarray, T: float, terms: int = 2000):
    """Pore pressure (MPa) at depth_mm below the drained top and settlement (mm) at the time
    factor T = c_v t / H^2 of the column under LOAD_MPA."""
    M = np.pi * (2 * np.arange(terms) + 1) / 2.0
    decay = np.exp(-M ** 2 * T)
    p0 = params.undrained_pressure(LOAD_MPA)
    p = p0 * (2.0 / M * decay * np.sin(np.outer(depth_mm / HEIGHT_MM, M))).sum(axis=1)
    settlement = HEIGHT_MM / params.confined_modulus_MPa * (
        LOAD_MPA - params.alpha * p0 * (2.0 / M ** 2 * decay).sum())
    return p, settlement


def column_errors(params: Parameters, layers: int, steps: int, check_T=(0.05, 0.2, 0.5, 1.0),
                  base: tuple[float, Isotropic] | None = None):
    """Errors of a solve with `steps` log-spaced steps from T = 1e-3 to T = 2 (and the check
    times) on `layers` layers of the poroelastic column, each the largest over nodes or times:
    the undrained pressure at t = 0 below the first five layers and the pressure at the time
    factors check_T (over p0); the settlement at t = 0 and at every later time (over the final
    settlement). base: (thickness_mm, Lame parameters) of an elastic solid under the column
    (impermeable: the column's closed form holds, and the base adds its compression)."""
    thickness, elastic = base or (0.0, None)
    height = thickness + HEIGHT_MM
    mesh = box((WIDTH_MM, WIDTH_MM, height), (1, 1, round(layers * height / HEIGHT_MM)))
    top = plane(mesh, 2, height)
    mid = midpoints(mesh)[: mesh.topology.index_map(3).size_local]
    load = LoadCase(clamped_facets=plane(mesh, 2, 0.0), loaded_facets=top,
                    force_N=(0.0, 0.0, -LOAD_MPA * WIDTH_MM ** 2),
                    rollers=tuple((plane(mesh, axis, x), axis) for axis in (0, 1)
                                  for x in (0.0, WIDTH_MM)))
    base_settlement = 0.0 if elastic is None else LOAD_MPA * thickness / (
        elastic.lam + 2.0 * elastic.mu)
    ds = ufl.Measure("ds", domain=mesh,
                     subdomain_data=meshtags(mesh, 2, np.sort(top), np.ones(top.size, np.int32)))
    scale = HEIGHT_MM ** 2 / params.consolidation_mm2_per_s  # s per unit time factor
    T_all = np.union1d(np.geomspace(1e-3, 2.0, steps), check_T)
    p0 = params.undrained_pressure(LOAD_MPA)
    final = terzaghi(params, np.zeros(1), T_all[-1])[1]
    errors = dict.fromkeys(("undrained_pressure", "pressure", "initial_settlement",
                            "settlement"), 0.0)

    def observe(t, state):
        u, p = state.u, state.p
        T = t / scale
        s = -total(fem.assemble_scalar(fem.form(u[2] * ds(1)))) / WIDTH_MM ** 2 \
            - base_settlement
        n = p.function_space.dofmap.index_map.size_local
        depth = height - p.function_space.tabulate_dof_coordinates()[:n, 2]
        exact_p, exact_s = terzaghi(params, depth, T)
        if t == 0.0:  # undrained; the FE pressure oscillates over the first layers (docstring)
            below = depth > 5.0 * HEIGHT_MM / layers
            local = np.abs(p.x.array[:n][below] - p0).max(initial=0.0)
            errors["undrained_pressure"] = total(local, op=MPI.MAX) / p0
            errors["initial_settlement"] = abs(s - exact_s) / final
            return
        errors["settlement"] = max(errors["settlement"], abs(s - exact_s) / final)
        if np.isclose(T, check_T, rtol=1e-9).any():
            local = np.abs(p.x.array[:n] - exact_p).max(initial=0.0)
            errors["pressure"] = max(errors["pressure"], total(local, op=MPI.MAX) / p0)

    consolidate(mesh, params, load, top, T_all * scale, observe,
                cells=np.flatnonzero(mid[:, 2] > thickness).astype(np.int32), elastic=elastic)
    return errors


@pytest.mark.parametrize(("params", "base"), [(ANNULUS, None), (COMPRESSIBLE, None),
                                             (ANNULUS, (1.0, Isotropic.of(100.0, 0.3)))],
                         ids=["incompressible", "storage", "on_elastic_base"])
def test_terzaghi_consolidation(params, base):
    """Pressure and settlement follow Terzaghi's series (P2-P1, 20 layers).

    Backward Euler is first order in the step: 80 log-spaced steps over T = 1e-3..2 leave 1.46 %
    of p0 in the pressure (at T = 0.05-1) and 0.98 % (0.62 % with storage) of the final
    settlement (measured; 40 layers change them by < 0.1 %), and twice the steps halve them
    (measured ratios 1.85 and 1.95). At t = 0 (undrained) the pressure oscillates over the
    first layers below the drained face, as Taylor-Hood elements do under a sudden load (the
    Vermeer-Verruijt limit on the mesh size for a time step); below five layers it is p0 to
    1e-4 (4e-4 on an elastic base, next to which it oscillates a little too). The column on a
    1 mm elastic base (E = 100 MPa; the pressure on a submesh of the column's cells) has the
    same errors once the base's compression is subtracted. The first layer drains at once: a
    settlement of 1.3 % (0.8 % with storage) of the final one at t = 0, halving with the layer
    thickness. Tolerances: about 1.3-2 times the measured errors."""
    errors = column_errors(params, 20, 80, base=base)
    coarser = column_errors(params, 20, 40, base=base)
    assert errors["undrained_pressure"] < 1e-3
    assert errors["initial_settlement"] < 0.015
    assert errors["pressure"] < 0.02 and errors["settlement"] < 0.0125
    assert 1.6 < coarser["pressure"] / errors["pressure"] < 2.4  # first order
    assert 1.6 < coarser["settlement"] / errors["settlement"] < 2.4


def test_bad_permeability_is_refused():
    with pytest.raises(ValueError, match=r"poroelastic permeability_mm4_per_Ns must be > 0, "
                                         r"got 0.0"):
        Parameters.of(1.0, 0.2, 0.0)
    with pytest.raises(ValueError, match=r"poroelastic alpha must be in \(0, 1\], got 1.5"):
        Parameters.of(1.0, 0.2, 1e-4, alpha=1.5)


def test_the_segment_refuses_a_poroelastic_disc():
    """The segment's solves other than the consolidation (creep) refuse it with the key named,
    before the mesh is read."""
    data = Config().model_dump(mode="json")
    data["materials"]["annulus_fibrosus"]["poroelastic"] = {}
    cfg = parse_config(data)
    with pytest.raises(ConfigError, match=r"materials.annulus_fibrosus.poroelastic: this solve "
                                          r"does not take a poroelastic disc; only `spinefe "
                                          r"creep` does"):
        material_fields(None, cfg.materials, cfg.lesion, "healthy")


def _disc_between_endplates(segment):
    """The disc and the two endplates next to it, cut out of the coarse segment (toy size:
    P2 on the whole segment is 0.57 M dofs), with L4.superior and L5.inferior re-tagged on the
    cut's exterior faces of the L4 and L5 endplate cells (loaded and clamped)."""
    from dataclasses import replace

    from dolfinx.mesh import exterior_facet_indices

    from spinefe.common import regions as R
    from spinefe.geometry.mesh import submodel

    model = submodel(segment, [R.NUCLEUS, R.ANNULUS, "L4.endplate_inferior",
                               "L5.endplate_superior"])
    mesh = model.mesh
    mesh.topology.create_connectivity(2, 3)
    f2c = mesh.topology.connectivity(2, 3)
    exterior = exterior_facet_indices(mesh.topology)
    facets, values = [], []
    for region, surface in (("L4.endplate_inferior", R.L4_SUPERIOR),
                            ("L5.endplate_superior", R.L5_INFERIOR)):
        inside = np.zeros(mesh.topology.index_map(3).size_local
                          + mesh.topology.index_map(3).num_ghosts, dtype=bool)
        inside[model.cell_tags.find(model.tag(region))] = True
        chosen = [f for f in exterior if inside[f2c.links(f)].any()]
        facets.append(np.asarray(chosen, np.int32))
        values.append(np.full(len(chosen), model.tag(surface), np.int32))
    facets, values = np.concatenate(facets), np.concatenate(values)
    order = np.argsort(facets)
    return replace(model, facet_tags=meshtags(mesh, 2, facets[order], values[order]))


@pytest.mark.parallel
def test_segment_disc_consolidates_under_the_held_load(default_segment, shared_tmp):
    """`spinefe creep` with a poroelastic disc, on the disc between its endplates (toy size):
    the undrained response is the stiffer, L4 sinks further as the disc drains through its outer
    surface, the nucleus pore pressure falls toward 0 (a permeability 300 times the disc's, so
    that it drains within the 24 h), the support balances the load, and the summary says which
    model ran."""
    from spinefe.config.plans import config_plan
    from spinefe.mechanics.creep import run_creep_scenarios
    from spinefe.mechanics.disc_consolidation import (
        MODEL,
        poroelastic_description,
        run_consolidation_creep,
    )

    data = Config().model_dump(mode="json")
    poro = {"poroelastic": {"permeability_mm4_per_Ns": 0.1}}
    data["materials"]["annulus_fibrosus"].update(E_MPa=1.76, nu=0.399, **poro)
    data["materials"]["nucleus_pulposus"].update(E_MPa=0.655, nu=0.365, **poro)
    cfg = parse_config(data)
    summary = run_creep_scenarios(
        _disc_between_endplates(default_segment), shared_tmp, ("healthy",), config_hash="test",
        hours=(24.0,), runner=run_consolidation_creep, model_note=MODEL,
        time_dependent=poroelastic_description(cfg.materials), materials=cfg.materials,
        lesion=cfg.lesion, mechanics=cfg.mechanics, seeds=config_plan(cfg),
        capsule=cfg.seed_capsule)
    undrained, drained = summary["scenarios"]["healthy"]
    assert [undrained["time_h"], drained["time_h"]] == [0.0, 24.0]
    assert 0.0 < undrained["axial_displacement_mm"] < 0.9 * drained["axial_displacement_mm"]
    assert undrained["nucleus_pressure_MPa"] > 0.1
    assert abs(drained["nucleus_pressure_MPa"]) < 0.02 * undrained["nucleus_pressure_MPa"]
    assert max(undrained["reaction_relative_error"], drained["reaction_relative_error"]) < 1e-8
    assert "absent: ligaments, facet contact" in summary["model"]
    if MPI.COMM_WORLD.rank == 0:
        assert "| 24 |" in (shared_tmp / "creep.md").read_text()
