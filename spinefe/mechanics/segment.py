"""The segment's static load case (paper section 2): L5 inferior surface clamped, axial force on
the L4 superior surface, materials of one scenario; solved on the load-bearing part of the mesh,
linear (`solve_segment`) or with ligaments, facet contact and neo-Hookean regions
(`solve_segment_nonlinear`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from dolfinx import fem

from spinefe.common import regions as R
from spinefe.common.motions import MOTIONS
from spinefe.config.sections import Mechanics, Nonlinear, Preload
from spinefe.geometry.mesh import Model, submodel
from spinefe.mechanics.contact import (
    SurfaceContact,
    contact_pairs,
    pair_surfaces,
    surface_triangles,
)
from spinefe.mechanics.elasticity import ElasticSolution, LoadCase, solve_elasticity
from spinefe.mechanics.laws import CellLaw
from spinefe.mechanics.ligaments import LigamentSprings, fibres
from spinefe.mechanics.materials import DOSE_ONLY, MaterialFields
from spinefe.mechanics.nonlinear import NewtonOptions, PathPoint, solve_nonlinear
from spinefe.mechanics.pairs import PointPairs
from spinefe.mechanics.points import locate, nearest_node
from spinefe.mechanics.solvers import SolverOptions


def load_bearing(model: Model) -> Model:
    """The segment without its dose-only regions (canal, envelope); collective."""
    regions = [r for r in model.regions() if r not in DOSE_ONLY]
    if len(regions) == len(model.regions()):
        return model
    return submodel(model, regions)


def segment_load(model: Model, load_N: float, preload: Preload, *, motion: str | None = None,
                 moment_Nm: float = 0.0, direction=(0.0, 0.0, -1.0),
                 follower_offset_mm: float = 0.0) -> LoadCase:
    """`L5.inferior` clamped; on `L4.superior` a compression of `load_N` (N), dead along
    `direction` or a follower load normal to the surface (`preload`: "dead" or "follower") whose
    line of action is `follower_offset_mm` posterior of the surface's centroid, and for a
    `motion` the pure moment of `moment_Nm` (N m) about its axis (common.motions)."""
    top = model.facet_tags.find(model.tag(R.L4_SUPERIOR))
    moment = np.zeros(3)
    if motion is not None:
        moment += 1000.0 * moment_Nm * np.asarray(MOTIONS[motion])  # N mm
    if preload == "dead":
        dead = load_N
    else:  # follower: a compression P moved posteriorly (+y) by d adds -P d e_x
        dead = 0.0
        moment[0] -= load_N * follower_offset_mm
    moments = ((top, tuple(moment)),) if moment.any() else ()
    direction = np.asarray(direction, dtype=float) / np.linalg.norm(direction)
    return LoadCase(
        clamped_facets=model.facet_tags.find(model.tag(R.L5_INFERIOR)),
        loaded_facets=top,
        force_N=tuple(dead * direction),
        follower_N=load_N - dead,
        moments=moments,
    )


def segment_load_case(model: Model, mechanics: Mechanics) -> LoadCase:
    """The load case of `mechanics` (config Mechanics.load_case): the paper's axial dead load,
    standing (a follower load), or a motion's pure moment with its preload."""
    m = mechanics
    if m.load_case in ("axial", "standing"):
        return segment_load(model, m.load_N, "dead" if m.load_case == "axial" else "follower",
                            direction=m.load_direction, follower_offset_mm=m.follower_offset_mm)
    return segment_load(model, m.load_N, m.preload, motion=m.load_case, moment_Nm=m.moment_Nm,
                        direction=m.load_direction, follower_offset_mm=m.follower_offset_mm)


def solver_options(mechanics: Mechanics) -> SolverOptions:
    """The linear solver of `mechanics`, with its user PETSc options."""
    m = mechanics
    return SolverOptions(m.solver, m.rtol, m.max_iterations, m.prolongator_smoothing_steps,
                         petsc=tuple(m.petsc.items()))


def solve_segment(model: Model, materials: MaterialFields, mechanics: Mechanics
                  ) -> ElasticSolution:
    """Solve the axial load case of `mechanics` with one scenario's `materials` on a
    load-bearing model (see `load_bearing`); collective."""
    return solve_elasticity(
        materials,
        segment_load_case(model, mechanics),
        degree=mechanics.degree,
        nearly_incompressible_nu=mechanics.nearly_incompressible_nu,
        options=solver_options(mechanics),
    )


def region_cells(model: Model, regions) -> np.ndarray:
    """Local cells (owned and ghost) of those of `regions` that the model has."""
    found = [model.cell_tags.find(model.tag(r)) for r in regions if r in model.names]
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int32)


def region_indicator(model: Model, regions) -> fem.Function:
    """DG0 indicator (1 in the cells of `regions` present in the model, else 0)."""
    Q = fem.functionspace(model.mesh, ("DG", 0))
    chi = fem.Function(Q, name="indicator")
    chi.x.array[Q.dofmap.list[region_cells(model, regions)].ravel()] = 1.0
    return chi


def with_hyperelastic_regions(model: Model, materials: MaterialFields, regions
                              ) -> MaterialFields:
    """`materials` with the neo-Hookean law in the cells of `regions` that no other law of
    theirs claims (a fibre-reinforced annulus stays fibre-reinforced)."""
    hyper = region_indicator(model, regions)
    for claimed in materials.laws:
        hyper.x.array[:] *= 1.0 - claimed.indicator.x.array
    return materials.with_law(CellLaw("neo_hookean", hyper, materials.isotropic,
                                      "nonlinear.hyperelastic_regions"))


@dataclass
class SegmentPairs:
    """The nonlinear model's point pairs: ligament fibres and one contact set per facet joint
    and per L4 articular tip."""

    ligaments: LigamentSprings | None
    contacts: dict[str, SurfaceContact]  # keys: Model.contact_pairs' (sides, regions.tip_pair)
    sets: list[PointPairs]

    def report(self, states: list[np.ndarray] | None) -> dict:
        """Per ligament and per contact pair (see LigamentSprings.report,
        SurfaceContact.report); rank 0."""
        if states is None:
            return {}
        laws = [ps.law for ps in self.sets]
        out = {}
        if self.ligaments is not None:
            out["ligaments"] = self.ligaments.report(states[laws.index(self.ligaments)])
        out["contacts"] = {key: law.report(states[laws.index(law)])
                           for key, law in self.contacts.items()}
        return out


def segment_pairs(model: Model, nonlinear: Nonlinear) -> SegmentPairs:
    """Ligament springs and contact pairs (facet joints, articular tips) of the `nonlinear`
    model; collective."""
    nl = nonlinear
    V = fem.functionspace(model.mesh, ("Lagrange", 1, (3,)))  # same numbering as the solver's
    sets, springs, contacts = [], None, {}
    if nl.ligaments:
        # Landmarks sit on the curved bone surfaces; each attaches to the nearest node of its
        # vertebra (the snap distance is reported), with L0 from the landmarks.
        springs = LigamentSprings(
            fibres(model.landmarks, nl.ligament_reference_strain.model_dump()), nl.ligament_law)
        ends = []
        for level, attr in (("L4", "upper_mm"), ("L5", "lower_mm")):
            cells = region_cells(model, R.vertebra_regions(level))
            points = np.array([getattr(f, attr) for f in springs.fibres])
            nodes, distance = nearest_node(model.mesh, points, cells)
            springs.snap_mm = max(springs.snap_mm, float(distance.max()))
            ends.append(locate(V, nodes))
        sets.append(PointPairs(ends[0], ends[1], springs))
    if nl.contact:
        # The facet joints (keys: sides) and the L4 articular tips over the L5 lamina
        # (keys: regions.tip_pair).
        for key, (upper, lower) in model.contact_pairs.items():
            if key not in R.SIDES and not nl.tip_contact:
                continue
            geometry = pair_surfaces(surface_triangles(model, upper),
                                     surface_triangles(model, lower))
            if len(geometry.gap_mm) == 0 or geometry.gap_mm.min() <= 0.0:
                what = "facets.gap_mm" if key in R.SIDES else f"geometry ({key} contact)"
                raise ValueError(
                    f"{what}: the surfaces {upper} and {lower} have no pairs with a positive "
                    f"initial gap ({len(geometry.gap_mm)} pairs); the contact needs a gap > 0"
                )
            pairs = contact_pairs(V, geometry, nl.contact_penalty_N_mm3, nl.friction,
                                  nl.penetration_fraction * float(geometry.gap_mm.min()))
            contacts[key] = pairs.law
            sets.append(pairs)
    return SegmentPairs(springs, contacts, sets)


def solve_segment_nonlinear(model: Model, materials: MaterialFields, mechanics: Mechanics,
                            nonlinear: Nonlinear, load: LoadCase | None = None,
                            guide: list[PathPoint] = ()):
    """Nonlinear solve with one scenario's `materials` (default load: the axial load of
    `segment_load_case`); returns the NonlinearSolution and the pairs' report (rank 0; {}
    elsewhere); collective."""
    m, nl = mechanics, nonlinear
    pairs = segment_pairs(model, nl)
    sol = solve_nonlinear(
        with_hyperelastic_regions(model, materials, nl.hyperelastic_regions),
        load or segment_load_case(model, m),
        pairs.sets,
        nearly_incompressible_nu=m.nearly_incompressible_nu,
        options=NewtonOptions(
            steps=nl.load_steps,
            line_search=nl.line_search,
            rtol=nl.newton_rtol,
            max_iterations=nl.newton_max_iterations,
            linear=solver_options(m),
        ),
        guide=guide,
    )
    return sol, pairs.report(sol.pair_states)
