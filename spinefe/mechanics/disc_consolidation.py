"""The segment's creep with a poroelastic disc: the consolidation of the linear segment.

The annulus and nucleus are Biot poroelastic (mechanics.laws.poroelastic: their E_MPa and nu are
the drained matrix's, with the config's permeability, alpha and storage); every other region is
linear elastic with the scenario's material fields. The load of `mechanics` is applied at t = 0
and held (mechanics.consolidation, Taylor-Hood P2-P1, MUMPS): the first solve is the undrained
response, then one backward-Euler step to each time. Small strain throughout; the nonlinear
parts of the segment (ligaments, facet contact, a hyperelastic disc) are absent in this model.

Drainage: the pore pressure is zero on the disc's outer surface (the exterior facets of the
annulus: its anterior, lateral and posterior faces, the latter facing the canal, which the
load-bearing model removes). The bone and cartilage are impermeable elastic solids, so the
endplate interfaces carry no flux (docs/materials.md, Poroelastic disc).

The record per time is the Prony creep's (mechanics.creep), with the pore pressure as the
nucleus pressure; the von Mises stress of the disc is its matrix's, which equals the total
stress's (the pore pressure is hydrostatic).
"""

from __future__ import annotations

import logging
import math

import dolfinx.mesh
import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI

from dosimetry import Plan
from spinefe.common import regions as R
from spinefe.common.errors import ConfigError
from spinefe.config.sections import CREEP_HOURS, Lesion, Materials, Mechanics, SeedCapsule
from spinefe.geometry.mesh import Model, marker_tags
from spinefe.mechanics.consolidation import Consolidation, consolidate
from spinefe.mechanics.creep import axial_displacement_mm, creep_point
from spinefe.mechanics.elasticity import ElasticSolution
from spinefe.mechanics.materials import material_fields
from spinefe.mechanics.segment import segment_load_case
from spinefe.mechanics.stress import summarize

log = logging.getLogger(__name__)

#: What the consolidation model leaves out, for the outputs.
MODEL = ("linear segment at small strain with a poroelastic (Biot u-p) disc draining through "
         "its outer annulus surface; absent: ligaments, facet contact, hyperelastic disc")


def drained_facets(model: Model) -> np.ndarray:
    """Local facets on the outer surface of the annulus: exterior facets of the model with an
    annulus cell; collective."""
    mesh = model.mesh
    mesh.topology.create_connectivity(2, 3)
    exterior = dolfinx.mesh.exterior_facet_indices(mesh.topology)
    annulus = np.zeros(mesh.topology.index_map(3).size_local
                       + mesh.topology.index_map(3).num_ghosts, dtype=bool)
    annulus[model.cell_tags.find(model.tag(R.ANNULUS))] = True
    f2c = mesh.topology.connectivity(2, 3)
    keep = [f for f in exterior if annulus[f2c.links(f)].any()]
    facets = np.asarray(keep, dtype=np.int32)
    if mesh.comm.allreduce(facets.size) == 0:
        raise ValueError("the model has no exterior annulus facets to drain through")
    return facets


def poroelastic_description(materials: Materials) -> list[str]:
    """The poroelastic materials and their parameters, for the outputs."""
    return [f"{name} (drained E = {m.E_MPa} MPa, nu = {m.nu}, k = "
            f"{materials.permeability_mm4_per_Ns(name):.3g} mm^4/(N s), alpha = "
            f"{m.poroelastic.alpha}, 1/M = {m.poroelastic.storage_1_per_MPa} 1/MPa)"
            for name, m in materials if m.poroelastic is not None]


def check_consolidation_model(materials: Materials, nearly_incompressible_nu: float) -> None:
    """ConfigError where the consolidation of a poroelastic disc (the linear segment's) cannot
    take `materials`: a Prony series or a finite-strain law beside it, or another material
    nearly incompressible (nu >= `nearly_incompressible_nu`: an elastic cell has no pressure
    field in this solve)."""
    m = materials
    if keys := [f"materials.{n}.relaxation" for n, x in m if x.relaxation is not None]:
        raise ConfigError(f"{', '.join(keys)}: a Prony series does not combine with a "
                          f"poroelastic disc ({', '.join(m.poroelastic_keys())}); give one "
                          "or the other")
    if keys := m.finite_strain_keys():
        raise ConfigError(f"{', '.join(keys)}: the poroelastic disc's creep is the linear "
                          "segment's, which has no finite-strain law")
    if keys := [f"materials.{n}.nu" for n, x in m
                if x.poroelastic is None and x.nu >= nearly_incompressible_nu]:
        raise ConfigError(f"{', '.join(keys)}: nearly incompressible (nu >= "
                          f"mechanics.nearly_incompressible_nu = {nearly_incompressible_nu}) "
                          "beside a poroelastic disc, whose solve gives other materials no "
                          "pressure field; make both disc materials poroelastic or lower nu")


def run_consolidation_creep(model: Model, scenario: str, *, materials: Materials, lesion: Lesion,
                            mechanics: Mechanics, seeds: Plan, capsule: SeedCapsule,
                            hours=CREEP_HOURS) -> list[dict]:
    """The consolidation of one scenario under the held load of `mechanics`: a record per time
    (0, undrained, and `hours`) as mechanics.creep's; ConfigError where
    `check_consolidation_model` refuses the materials; collective."""
    check_consolidation_model(materials, mechanics.nearly_incompressible_nu)
    mesh = model.mesh
    fields = material_fields(model, materials, lesion, scenario, poroelastic_disc=True)
    poro = fields.poroelastic
    direction = np.asarray(mechanics.load_direction, float)
    direction /= np.linalg.norm(direction)
    none = fem.Function(fields.space, name="incompressible")  # no averaged-pressure cells
    nucleus = marker_tags(mesh, 3, [(model.cell_tags.find(model.tag(R.NUCLEUS)), 1)])
    dxn = ufl.Measure("dx", domain=mesh, subdomain_data=nucleus, subdomain_id=1)
    forms = {}
    series = []

    def total(form) -> float:
        return mesh.comm.allreduce(fem.assemble_scalar(form), op=MPI.SUM)

    def observe(t_s: float, state: Consolidation) -> None:
        if not forms:  # the pore pressure's submesh is the solver's: compile on first call
            m, alpha = poro.params.drained, poro.params.alpha
            bulk = m.lam + 2.0 * m.mu / 3.0
            forms["volume"] = fem.form(1.0 * dxn)
            forms["pore"] = fem.form(state.p * dxn, entity_maps=[state.cell_map])
            forms["total"] = fem.form((alpha * state.p - bulk * ufl.div(state.u)) * dxn,
                                      entity_maps=[state.cell_map])
        volume = total(forms["volume"])
        sol = ElasticSolution(
            u=state.u, pressure=None, incompressible=none, materials=fields,
            reaction_N=state.reaction_N, applied_N=state.applied_N, iterations=1,
            dofs=int(state.u.function_space.dofmap.index_map.size_global * 3
                     + state.p.function_space.dofmap.index_map.size_global),
            converged_reason="mumps", strain_energy_mJ=math.nan)
        record, _ = summarize(sol, model, scenario, mechanics=mechanics, seeds=seeds,
                              capsule=capsule)
        point = creep_point(
            t_s, record, axial_displacement_mm(model, state.u, direction),
            total(forms["pore"]) / volume,
            nucleus_total_pressure_MPa=total(forms["total"]) / volume,
            disc_bulge_mm=record.get("disc_bulge_mm"),
            reaction_relative_error=record["reaction_relative_error"],
            dofs=record["dofs"])
        log.info("consolidation %s, t = %.3g h: axial displacement %.4f mm, nucleus pore "
                 "pressure %.4f MPa", scenario, point["time_h"], point["axial_displacement_mm"],
                 point["nucleus_pressure_MPa"])
        series.append(point)

    consolidate(mesh, poro.params, segment_load_case(model, mechanics), drained_facets(model),
                np.asarray(hours, float) * 3600.0, observe, cells=poro.cells,
                elastic=fields.isotropic)
    return series
