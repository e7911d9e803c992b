"""The configured seeds as a seed plan (`dosimetry.Plan`), and a plan written back into a
configuration: the one conversion between the TOML's [[seeds]] and the plan type that dose,
planning and mechanics use.

A configuration's seeds carry a position and a direction; their model and strength are those of
[dosimetry] (every seed alike). Going back keeps the positions and directions of the plan's seeds
(their strengths and models are not part of the [[seeds]] schema).
"""

from __future__ import annotations

from dosimetry.plan import Plan, strength_from_activity
from spinefe.config.sections import Config, Seed


def config_plan(cfg: Config) -> Plan:
    """The configured seeds as a plan: every seed of `dosimetry.seed_model` and `activity_mCi`."""
    d = cfg.dosimetry
    return Plan.uniform(
        [s.position_mm for s in cfg.seeds],
        [s.unit_direction for s in cfg.seeds],
        strength_from_activity(d.activity_mCi),
        model=d.seed_model,
        name=f"{len(cfg.seeds)} seeds x {d.activity_mCi} mCi ({d.seed_model})",
    )


def plan_config(cfg: Config, plan: Plan) -> Config:
    """`cfg` with the plan's seeds as meshed capsules (positions mm, LPS; unit directions) and
    the implanted scenario: the inverse of `config_plan` for the seeds' geometry."""
    seeds = tuple(Seed(position_mm=tuple(map(float, p)), direction=tuple(map(float, d)))
                  for p, d in zip(plan.positions_mm, plan.directions, strict=True))
    mechanics = cfg.mechanics.model_copy(update={"scenario": "implanted"})
    return cfg.model_copy(update={"seeds": seeds, "mechanics": mechanics})
