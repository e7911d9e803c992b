"""The segment's geometry as configured: the one record that the layout, the gmsh model and the
mesh take, made from a `Config` at the edge by `segment_geometry`."""

from __future__ import annotations

from dataclasses import dataclass

from dosimetry.plan import Plan
from spinefe.config.plans import config_plan
from spinefe.config.sections import (
    Config,
    Disc,
    Facets,
    Layers,
    Lesion,
    Mesh,
    Regions,
    SeedCapsule,
    Vertebra,
)

#: Config sections that determine the mesh (their hash is the mesh cache key's).
GEOMETRY_SECTIONS = (
    "L4",
    "L5",
    "layers",
    "disc",
    "facets",
    "lesion",
    "seed_capsule",
    "seeds",
    "regions",
    "mesh",
)


@dataclass(frozen=True)
class SegmentGeometry:
    """Everything the segment's shape and mesh are made from: the vertebrae, layers, disc, facet,
    lesion, capsule, region and mesh sections, the meshed seeds as a plan (positions mm, LPS;
    unit directions), and the hash of the configured sections (`sections_hash`)."""

    L4: Vertebra
    L5: Vertebra
    layers: Layers
    disc: Disc
    facets: Facets
    lesion: Lesion
    capsule: SeedCapsule
    seeds: Plan
    regions: Regions
    mesh: Mesh
    #: `Config.hash` of GEOMETRY_SECTIONS, the seeds' directions as written (not normalised).
    sections_hash: str


def segment_geometry(cfg: Config) -> SegmentGeometry:
    """The geometry of the configured segment, its [[seeds]] meshed as capsules."""
    return SegmentGeometry(
        L4=cfg.L4,
        L5=cfg.L5,
        layers=cfg.layers,
        disc=cfg.disc,
        facets=cfg.facets,
        lesion=cfg.lesion,
        capsule=cfg.seed_capsule,
        seeds=config_plan(cfg),
        regions=cfg.regions,
        mesh=cfg.mesh,
        sections_hash=cfg.hash(*GEOMETRY_SECTIONS),
    )
