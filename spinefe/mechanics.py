"""The segment's static load case (paper section 2): L5 inferior surface clamped, axial force on
the L4 superior surface, materials of one scenario; solved on the load-bearing part of the mesh.
"""

from __future__ import annotations

import numpy as np

from spinefe import regions as R
from spinefe.config import Config
from spinefe.elasticity import ElasticSolution, LoadCase, SolverOptions, solve_elasticity
from spinefe.materials import DOSE_ONLY, material_fields
from spinefe.mesh import Model, submodel


def load_bearing(model: Model) -> Model:
    """The segment without its dose-only regions (canal, envelope); collective."""
    regions = [r for r in model.regions() if r not in DOSE_ONLY]
    if len(regions) == len(model.regions()):
        return model
    return submodel(model, regions)


def segment_load_case(model: Model, cfg: Config) -> LoadCase:
    """`L5.inferior` clamped; `cfg.mechanics.load_N` along `load_direction` on `L4.superior`."""
    direction = np.asarray(cfg.mechanics.load_direction, dtype=float)
    direction /= np.linalg.norm(direction)
    return LoadCase(
        clamped_facets=model.facet_tags.find(model.tag(R.L5_INFERIOR)),
        loaded_facets=model.facet_tags.find(model.tag(R.L4_SUPERIOR)),
        force_N=tuple(cfg.mechanics.load_N * direction),
    )


def solve_segment(model: Model, cfg: Config, scenario: str | None = None) -> ElasticSolution:
    """Solve one scenario on a load-bearing model (see `load_bearing`); collective."""
    m = cfg.mechanics
    return solve_elasticity(
        material_fields(model, cfg, scenario),
        segment_load_case(model, cfg),
        degree=m.degree,
        nearly_incompressible_nu=m.nearly_incompressible_nu,
        options=SolverOptions(m.solver, m.rtol, m.max_iterations, m.prolongator_smoothing_steps),
    )
