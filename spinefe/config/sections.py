"""Validated, frozen configuration of a spinefe run (TOML in, pydantic models out).

Every field has a unit in its name and a description that cites the source of its default (keys
of `spinefe.config.sources.SOURCES`). Unknown keys are rejected. `spinefe.config.loading` turns any
validation failure into a `ConfigError` whose message names the key and the allowed range.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    PlainValidator,
    field_validator,
    model_validator,
)
from pydantic_core import core_schema

from spinefe.common.elastic_constants import orthotropic_compliance
from spinefe.common.hashing import canonical_hash
from spinefe.common.motions import MOTIONS

Positive = Annotated[float, Field(gt=0.0)]
Vec3 = tuple[float, float, float]

class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


_OPTION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _option_name(key: str) -> str:
    if key.startswith("-"):
        raise ValueError(f"write the PETSc option without '-' (as {key.lstrip('-')!r})")
    if key.startswith("spinefe_"):
        raise ValueError("write the PETSc option without a prefix: every solver of spinefe has "
                         "its own prefix and takes the option under it")
    if not _OPTION_NAME.fullmatch(key):
        raise ValueError("not a PETSc option name (letters, digits and '_', e.g. ksp_rtol)")
    return key


def _option_value(value: Any) -> str | bool | int | float:
    if not isinstance(value, str | bool | int | float):
        raise ValueError(f"a PETSc option value is a string, number or boolean, not "
                         f"{type(value).__name__}")
    return value


class PetscOptions(Mapping[str, str | bool | int | float]):
    """PETSc options, name (without '-' or prefix) -> value; immutable and hashable, so that a
    frozen Config stays hashable. Validated from a TOML table, written back as one."""

    __slots__ = ("_options",)

    def __init__(self, options: Mapping[str, Any] | None = None):
        self._options = dict(options or {})

    def __getitem__(self, key: str):
        return self._options[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._options)

    def __len__(self) -> int:
        return len(self._options)

    def __hash__(self) -> int:
        return hash(frozenset(self._options.items()))

    def __repr__(self) -> str:
        return f"PetscOptions({self._options!r})"

    @classmethod
    def __get_pydantic_core_schema__(cls, source, handler: GetCoreSchemaHandler):
        table = dict[Annotated[str, AfterValidator(_option_name)],
                     Annotated[Any, PlainValidator(_option_value)]]
        return core_schema.no_info_after_validator_function(
            cls, handler.generate_schema(table),
            serialization=core_schema.plain_serializer_function_ser_schema(dict),
        )


class Vertebra(_Section):
    """Dimensions of one lumbar vertebra (mm, degrees)."""

    endplate_width_mm: Positive = Field(
        description="body (upper endplate) width, left-right [panjabi1992]"
    )
    endplate_depth_mm: Positive = Field(
        description="body depth, anterior-posterior [representative; remus2021]"
    )
    anterior_height_mm: Positive = Field(
        description="body height at the anterior wall [bonczar2024]"
    )
    posterior_height_mm: Positive = Field(
        description="body height at the posterior wall [panjabi1992]"
    )
    posterior_concavity_depth_mm: float = Field(
        ge=0.0, description="depth of the kidney-shaped posterior wall concavity [representative]"
    )
    posterior_concavity_radius_mm: Positive = Field(
        description="radius of the posterior wall concavity [representative]"
    )
    pedicle_width_mm: Positive = Field(description="pedicle width, transverse [panjabi1992]")
    pedicle_height_mm: Positive = Field(description="pedicle height, sagittal [representative]")
    pedicle_transverse_angle_deg: float = Field(
        ge=0.0, le=45.0, description="medial convergence of the pedicle axis [representative]"
    )
    canal_width_mm: Positive = Field(description="spinal canal width [panjabi1992]")
    canal_depth_mm: Positive = Field(description="spinal canal depth [panjabi1992]")
    lamina_thickness_mm: Positive = Field(description="lamina thickness [representative]")
    transverse_process_span_mm: Positive = Field(
        description="transverse process width, tip to tip [representative]"
    )
    transverse_process_height_mm: Positive = Field(
        description="transverse process height [representative]"
    )
    spinous_process_length_mm: Positive = Field(
        description="spinous process length behind the lamina [representative]"
    )
    spinous_process_height_mm: Positive = Field(
        description="spinous process height [representative]"
    )
    spinous_process_width_mm: Positive = Field(
        description="spinous process thickness [representative]"
    )
    articular_process_thickness_mm: Positive = Field(
        description="thickness of the articular processes normal to the facet [representative]"
    )


class Layers(_Section):
    """Thin tissue layers (mm)."""

    cortical_shell_mm: Positive = Field(1.5, description="cortical shell thickness [paper]")
    bony_endplate_mm: Positive = Field(0.5, description="bony endplate thickness [paper]")
    cartilage_mm: Positive = Field(0.3, description="facet articular cartilage thickness [paper]")


class Disc(_Section):
    """L4-L5 intervertebral disc."""

    anterior_height_mm: Positive = Field(
        12.0, description="disc height at the anterior wall [disc]"
    )
    posterior_height_mm: Positive = Field(
        8.0, description="disc height at the posterior wall [disc]"
    )
    nucleus_fraction: float = Field(
        0.35, gt=0.0, lt=1.0, description="nucleus volume / disc volume, 0.30-0.40 [paper]"
    )


class Facets(_Section):
    """L4-L5 facet joints (left and right mirror each other)."""

    angle_deg: float = Field(
        45.0,
        gt=0.0,
        lt=90.0,
        description="joint plane angle to the sagittal plane, 40-50 typical [facets]",
    )
    gap_mm: Positive = Field(0.5, description="joint gap between the cartilage layers [remus2021]")
    width_mm: Positive = Field(14.7, description="articular surface width [panjabi1993]")
    height_mm: Positive = Field(
        10.0,
        description="articular surface height; 16.2 mm measured [panjabi1993], reduced so "
        "that L4 and L5 posterior elements clear each other in this block geometry",
    )


class Lesion(_Section):
    """Metastatic lesion in the L4 body: an axis-aligned ellipsoid."""

    enabled: bool = Field(True, description="model the lesion")
    centre_mm: Vec3 = Field((0.0, 0.0, 18.0), description="centre, LPS (mm)")
    radii_mm: tuple[Positive, Positive, Positive] = Field(
        (12.0, 9.0, 8.0), description="semi-axes along x, y, z (mm)"
    )
    cortical_breach: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="fraction of the cortical wall circumference, over the lesion height, "
        "that the lesion replaces (0 = intact shell)",
    )


class Seed(_Section):
    """One implanted seed: capsule centre and axis direction (LPS, mm)."""

    position_mm: Vec3
    #: No default: the dose of a seed is anisotropic about its axis.
    direction: Vec3

    @field_validator("direction")
    @classmethod
    def _nonzero(cls, v: Vec3) -> Vec3:
        if float(np.linalg.norm(v)) < 1e-9:
            raise ValueError("must be a non-zero vector, e.g. [0, 1, 0]")
        return v

    @property
    def unit_direction(self) -> np.ndarray:
        d = np.asarray(self.direction, float)
        return d / np.linalg.norm(d)


class SeedCapsule(_Section):
    """Titanium capsule of the I-125 seeds (model 6711 type)."""

    diameter_mm: Positive = Field(0.8, description="capsule outer diameter [tg43-i125]")
    length_mm: Positive = Field(4.5, description="capsule length [tg43-i125]")


class Regions(_Section):
    """Optional dose-only regions."""

    canal: bool = Field(True, description="mesh the spinal canal (organ at risk)")
    envelope: bool = Field(False, description="mesh a soft-tissue envelope around the segment")
    envelope_margin_mm: Positive = Field(10.0, description="envelope margin around the bones")


class Mesh(_Section):
    """Mesh resolution and generator."""

    size_mm: float = Field(1.0, ge=0.2, le=5.0, description="global element size h")
    seed_size_mm: float = Field(0.3, ge=0.05, le=2.0, description="element size at the seeds")
    lesion_size_factor: float = Field(
        0.6, gt=0.0, le=1.0, description="element size at the lesion boundary, as a fraction of h"
    )
    layer_aspect: float = Field(
        2.5,
        ge=1.0,
        le=10.0,
        description="largest element size in thin layers, as a multiple of their thickness",
    )
    layer_divisions: float = Field(
        2.7,
        ge=1.0,
        le=10.0,
        description="element size in a layer at least h thick (the cortical shell once h <= its "
        "thickness), as its thickness / this; 2.7 gives 2 elements across (thickness / mean "
        "edge length): gmsh's edges there come out about 1.3 x the size asked for",
    )
    algorithm: Literal["hxt", "delaunay"] = Field(
        "hxt", description="3D mesher; where HXT fails (it can on closely packed capsules), "
        "Delaunay is tried and 'mesher' in the mesh's summary records it")
    threads: int = Field(
        1,
        ge=0,
        description="gmsh threads on rank 0; 1 gives the same mesh on every run, "
        "0 = cores / MPI size (faster, but HXT with threads is not bit-reproducible)",
    )


def _optional(description: str):
    """An optional sub-table: absent (None) by default and then left out of dumps, so that
    config hashes and case ids of models without it do not change."""
    return Field(None, exclude_if=lambda v: v is None, description=description)


class Fibres(_Section):
    """Collagen fibres of the annulus: the Holzapfel-Gasser-Ogden law (mechanics.laws.hgo) in
    the nonlinear model, two families at +-angle_deg to the transverse plane."""

    matrix_E_MPa: Positive = Field(
        0.784, description="ground matrix modulus, 4 C10 (1 + nu) with C10 = 0.1351 MPa "
        "[gruber2024]; with fibres it replaces E_MPa in the annulus"
    )
    k1_MPa: Positive = Field(
        2.67, description="fibre stiffness k1, mean of the 25 annulus regions [gruber2024]")
    k2: Positive = Field(
        60.9, description="fibre nonlinearity k2, mean of the 25 annulus regions [gruber2024]")
    kappa: float = Field(
        0.0752, ge=0.0, le=1.0 / 3.0,
        description="fibre dispersion, 0 (aligned) to 1/3 (isotropic) [gruber2024]",
    )
    angle_deg: float = Field(
        34.5, gt=0.0, lt=90.0,
        description="fibre angle to the transverse plane, +- per family; mean of the regions, "
        "31 deg outer anterior to 38 deg inner posterior [gruber2024]",
    )


class Anisotropy(_Section):
    """Orthotropic linear elasticity in the segment's frame (x lateral, y antero-posterior, z
    cranio-caudal; mechanics.laws.orthotropic); moduli as ratios to the material's E_MPa (or its
    density-mapped modulus). Equal x and y entries make it transversely isotropic about z."""

    E_ratios: tuple[Positive, Positive, Positive] = Field(
        (0.7, 0.7, 1.0), description="E_x, E_y, E_z over E_MPa [lu1996: 140, 140, 200 MPa]"
    )
    G_ratios: tuple[Positive, Positive, Positive] = Field(
        (0.2415, 0.2415, 0.2415),
        description="G_yz, G_xz, G_xy over E_MPa [lu1996: 48.3 MPa]",
    )
    nu: tuple[float, float, float] = Field(
        (0.45, 0.315, 0.315),
        description="nu_xy, nu_xz, nu_yz; nu_ij = -eps_j / eps_i under stress along i; the "
        "compliance must be positive definite [lu1996]",
    )

    @model_validator(mode="after")
    def _positive_definite(self):
        S = orthotropic_compliance(self.E_ratios, self.G_ratios, self.nu)  # (scale-free)
        if np.linalg.eigvalsh(S).min() <= 0.0:
            raise ValueError(f"the constants are not those of a stable material (compliance "
                             f"not positive definite): E_ratios {list(self.E_ratios)}, nu "
                             f"{list(self.nu)}; "
                             f"each |nu_ij| must stay below sqrt(E_i / E_j), with a positive "
                             f"determinant")
        return self


class Density(_Section):
    """Density-dependent modulus E = a rho^b per cell (mechanics.density), in place of E_MPa:
    from a uniform apparent density or from a density grid (e.g. calibrated CT)."""

    a_MPa: Positive = Field(4730.0, description="coefficient a [morgan2003, vertebra]")
    b: Positive = Field(1.56, description="exponent b [morgan2003, vertebra]")
    rho_g_cm3: Positive | None = Field(
        None, description="uniform wet apparent density (g/cm^3); or grid_file"
    )
    grid_file: str | None = Field(
        None, description=".npz file with arrays rho_g_cm3 (nx, ny, nz), origin_mm (3) and "
        "spacing_mm (3) in the segment's frame, sampled at cell midpoints; or rho_g_cm3",
    )

    @model_validator(mode="after")
    def _one_source(self):
        if (self.rho_g_cm3 is None) == (self.grid_file is None):
            raise ValueError("give exactly one of rho_g_cm3 and grid_file")
        return self


class RandomField(_Section):
    """A log-normal random modulus, mean E_MPa: E = E_MPa exp(s g - s^2 / 2) with
    s^2 = ln(1 + cov^2) and g a Gaussian random field of unit variance (Gaussian covariance of
    integral scale correlation_length_mm; mechanics.tumour), reproducible from its seed."""

    kind: Literal["random"] = "random"
    cov: Positive = Field(0.5, description="coefficient of variation of E [representative]")
    correlation_length_mm: Positive = Field(3.0, description="integral scale [representative]")
    seed: int = Field(0, ge=0, description="random seed of the field")


class RadialGradient(_Section):
    """A modulus rising linearly in the ellipsoidal radius r (0 at the lesion centre, 1 on its
    surface) from core_E_MPa (necrotic core) to E_MPa at the rim."""

    kind: Literal["radial"] = "radial"
    core_E_MPa: Positive = Field(description="modulus at the lesion centre (MPa)")


class MixedLesion(_Section):
    """A mixed lytic-blastic lesion: lytic tissue (E_MPa) with blastic patches (blastic_E_MPa)
    where a Gaussian random field (as RandomField) exceeds the quantile of blastic_fraction."""

    kind: Literal["mixed"] = "mixed"
    blastic_E_MPa: Positive = Field(description="modulus of the blastic patches (MPa)")
    blastic_fraction: float = Field(0.5, gt=0.0, lt=1.0, description="expected volume fraction")
    correlation_length_mm: Positive = Field(3.0, description="integral scale of the patches")
    seed: int = Field(0, ge=0, description="random seed of the field")


class Relaxation(_Section):
    """Prony-series relaxation of the material's stress, G(t) = g_inf + sum g_i exp(-t/tau_i)
    with g_inf = 1 - sum g_i (mechanics.laws.prony): E_MPa is the instantaneous modulus (t = 0+,
    what static solves use) and g_inf E_MPa the long-term one (time-dependent solves)."""

    g: tuple[float, ...] = Field(min_length=1, max_length=6,
                                 description="Prony weights, each in (0, 1), summing below 1")
    tau_s: tuple[Positive, ...] = Field(min_length=1, max_length=6,
                                        description="relaxation times (s), one per weight")

    @model_validator(mode="after")
    def _series(self):
        if len(self.g) != len(self.tau_s):
            raise ValueError(f"g and tau_s need one entry each per term, got {len(self.g)} and "
                             f"{len(self.tau_s)}")
        if any(not 0.0 < g < 1.0 for g in self.g):
            raise ValueError(f"each Prony weight g must lie in (0, 1), got {list(self.g)}")
        if sum(self.g) >= 1.0:
            raise ValueError(f"the Prony weights must sum below 1 (the long-term modulus "
                             f"g_inf = 1 - sum g is positive), got sum {sum(self.g):.6g}")
        return self


#: Hydraulic permeability (mm^4/(N s)) of the disc tissues measured in confined compression
#: [perie2005]: a poroelastic disc material takes its tissue's value unless the config gives one.
DISC_PERMEABILITY_MM4_PER_NS = {"annulus_fibrosus": 2.3e-4, "nucleus_pulposus": 6.7e-4}


class Poroelastic(_Section):
    """Biot poroelasticity of a disc material (mechanics.laws.poroelastic, small strain): its
    E_MPa and nu are then the drained solid matrix's, and the pore fluid carries the rest."""

    permeability_mm4_per_Ns: Positive | None = Field(
        None, description="hydraulic permeability k (mm^4/(N s) = 1e-12 m^4/(N s)); absent: the "
        "tissue's, annulus 2.3e-4, nucleus 6.7e-4 [perie2005]")
    alpha: float = Field(1.0, gt=0.0, le=1.0,
                         description="Biot coefficient (1: incompressible constituents)")
    storage_1_per_MPa: float = Field(0.0, ge=0.0, description="storage 1/M, the Biot modulus's "
                                     "inverse (1/MPa; 0: incompressible constituents)")


Variation = Annotated[RandomField | RadialGradient | MixedLesion, Field(discriminator="kind")]


class Material(_Section):
    """Linear elastic isotropic material, with optional anisotropy, fibres, a density-mapped
    modulus or a spatial variation (which regions may take which: `Materials`)."""

    E_MPa: Positive = Field(description="Young's modulus (MPa)")
    nu: float = Field(ge=0.0, lt=0.5, description="Poisson's ratio")
    fibres: Fibres | None = _optional("HGO collagen fibres (annulus_fibrosus only)")
    anisotropy: Anisotropy | None = _optional("orthotropic elasticity (bone materials only)")
    density: Density | None = _optional("E from density (bone materials only)")
    variation: Variation | None = _optional(
        "spatially varying modulus: random, radial or mixed (metastatic_tumor only)")
    relaxation: Relaxation | None = _optional("Prony-series viscoelasticity (any material)")
    poroelastic: Poroelastic | None = _optional(
        "biphasic (u-p) disc: E_MPa and nu drained (annulus_fibrosus, nucleus_pulposus only)")


def _material(E: float, nu: float, source: str):
    return Field(default_factory=lambda: Material(E_MPa=E, nu=nu), description=source)


class Materials(_Section):
    """Materials (E in MPa; options: fibres, anisotropy, density, variation, relaxation,
    poroelastic: see docs/materials.md).

    Regions map to them in `spinefe.mechanics.materials`. A material table may give some keys
    only (e.g. just `fibres`): E_MPa and nu left out keep the default material's
    (config.loading.parse_config)."""

    cortical_bone: Material = _material(12000.0, 0.30, "cortical shell and endplates [paper]")
    trabecular_bone: Material = _material(132.0, 0.20, "vertebral body core [paper]")
    posterior_bone: Material = _material(
        3500.0, 0.25, "posterior elements, homogenised [shiraziadl1986; not in the paper]"
    )
    annulus_fibrosus: Material = _material(4.2, 0.45, "annulus, isotropic [paper]")
    nucleus_pulposus: Material = _material(1.0, 0.499, "nucleus, nearly incompressible [paper]")
    metastatic_tumor: Material = _material(1.0, 0.45, "lytic lesion [paper]")
    Ti6Al4V: Material = _material(144000.0, 0.32, "seed capsules [paper]")
    articular_cartilage: Material = _material(23.8, 0.40, "facet cartilage [paper]")

    def permeability_mm4_per_Ns(self, name: str) -> float:
        """The permeability of poroelastic material `name`: its own, else its tissue's."""
        k = getattr(self, name).poroelastic.permeability_mm4_per_Ns
        return DISC_PERMEABILITY_MM4_PER_NS[name] if k is None else k

    def poroelastic_keys(self) -> list[str]:
        """The keys of poroelastic options (only mechanics.consolidation solves them yet)."""
        return [f"materials.{name}.poroelastic" for name, m in self if m.poroelastic is not None]

    def finite_strain_keys(self) -> list[str]:
        """The keys of options that only the nonlinear model has (a fibre-reinforced annulus)."""
        return [f"materials.{name}.fibres" for name, m in self if m.fibres is not None]

    @model_validator(mode="after")
    def _options_where_they_apply(self):
        allowed = {"fibres": ("annulus_fibrosus",), "anisotropy": BONE, "density": BONE,
                   "variation": ("metastatic_tumor",), "poroelastic": DISC}
        for name, material in self:
            for option, where in allowed.items():
                if getattr(material, option) is not None and name not in where:
                    raise ValueError(f"{name}.{option}: only {', '.join(where)} can take "
                                     f"{option}")
        return self


#: The materials that may be anisotropic or density-mapped.
BONE = ("cortical_bone", "trabecular_bone", "posterior_bone")
#: The materials that may be poroelastic.
DISC = tuple(DISC_PERMEABILITY_MM4_PER_NS)


#: Load cases of the segment: the paper's axial load, standing, and the motions.
LOAD_CASES: tuple[str, ...] = ("axial", "standing", *MOTIONS)
Preload = Literal["follower", "dead"]
#: Largest offset of the follower path from the centroid of L4.superior (mm).
FOLLOWER_OFFSET_LIMIT_MM = 20.0
FOLLOWER_OFFSET = Field(
    0.0, ge=-FOLLOWER_OFFSET_LIMIT_MM, le=FOLLOWER_OFFSET_LIMIT_MM, exclude_if=lambda v: v == 0.0,
    description="posterior offset (mm) of the follower load's line of action from the centroid "
    "of L4.superior (a moment of the load times the offset about the left-right axis); the "
    "in-vitro protocol places the path where the preload alone turns the segment least "
    "[patwardhan1999]",
)
Scenario = Literal["healthy", "tumour", "implanted"]
SCENARIOS: tuple[str, ...] = ("healthy", "tumour", "implanted")
#: Default hold times (h) of `spinefe creep`: the paper's clinical relief is at 6-24 h.
CREEP_HOURS: tuple[float, ...] = (0.1, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 24.0)


class Mechanics(_Section):
    """Static load case, scenario, discretisation and solver of the mechanics."""

    scenario: Scenario = Field(
        "implanted",
        description="healthy: lesion and seed cells are trabecular bone; tumour: lesion tissue "
        "(seed cells take their host's material); implanted: titanium seeds in the lesion",
    )
    load_case: Literal[LOAD_CASES] = Field(
        "axial",
        exclude_if=lambda v: v == "axial",  # (out of dumps at its default: hashes unchanged)
        description="axial: load_N along load_direction on L4.superior, a dead load [paper]; "
        "standing: load_N as a follower load, a pressure normal to L4.superior that turns with "
        "it [rohlmann2009]; a motion (flexion, extension, lateral_bending_left/right, "
        "axial_rotation_left/right): also a pure moment of moment_Nm about its axis on "
        "L4.superior, load_N being its preload (see preload)",
    )
    moment_Nm: float = Field(
        7.5, gt=0.0, le=30.0, exclude_if=lambda v: v == 7.5,
        description="pure moment of the motion load cases [wilke1998]",
    )
    preload: Preload = Field(
        "follower", exclude_if=lambda v: v == "follower",
        description="how load_N acts in a motion load case: follower (normal to L4.superior, "
        "turning with it: the in-vitro protocol [patwardhan1999]) or dead (along "
        "load_direction); the axial case is always dead, standing always follower",
    )
    follower_offset_mm: float = FOLLOWER_OFFSET
    load_N: float = Field(500.0, ge=0.0, description="axial load on L4.superior [paper]")
    load_direction: Vec3 = Field(
        (0.0, 0.0, -1.0), description="load direction (normalised; default inferior) [paper]"
    )
    degree: int = Field(1, ge=1, le=2, description="polynomial degree of the displacement")
    nearly_incompressible_nu: float = Field(
        0.49,
        gt=0.0,
        le=0.5,
        description="regions with nu >= this use an averaged nodal pressure (Bonet & Burton "
        "1998) against volumetric locking; 0.5 switches it off",
    )
    solver: Literal["cg_gamg", "mumps"] = Field(
        "cg_gamg", description="CG + GAMG with the rigid-body near-nullspace (a linear elastic "
        "solve where CG does not converge is repeated with MUMPS, as the results' converged_reason "
        "records), or direct MUMPS"
    )
    rtol: float = Field(1e-8, gt=0.0, lt=1.0, description="CG relative residual tolerance")
    max_iterations: int = Field(500, ge=1, description="CG iteration limit")
    prolongator_smoothing_steps: int = Field(
        0,
        ge=0,
        le=2,
        description="GAMG prolongator smoothing: 0 plain aggregation (cheap set-up), 1 smoothed "
        "aggregation (fewer CG iterations, 5-20x the set-up on these meshes)",
    )
    seed_band_mm: Positive = Field(
        1.0, description="width of the 'around seeds' result band outside the capsules"
    )
    petsc: PetscOptions = Field(
        default_factory=PetscOptions,
        # Left out of dumps (and so of config hashes and case ids) while empty.
        exclude_if=lambda options: not options,
        description="PETSc options of every linear and nonlinear mechanics solve, applied after "
        "the built-in ones (which they override), e.g. { ksp_rtol = 1e-10, pc_gamg_threshold = "
        "0.02 }; names without '-' or prefix; recorded in the results as petsc_options",
    )

    @field_validator("load_direction")
    @classmethod
    def _nonzero_direction(cls, v: Vec3) -> Vec3:
        if np.linalg.norm(v) == 0.0:
            raise ValueError("load_direction must not be the zero vector")
        return v


#: A reference strain: pre-tension or slack of a ligament at the neutral posture.
ReferenceStrain = Annotated[float, Field(gt=-0.5, lt=0.5)]


class LigamentReferenceStrain(_Section):
    """In-situ strain e_ref of each ligament in the neutral geometry: a fibre's rest length is
    L0 / (1 + e_ref) with L0 its landmarks' distance (e_ref > 0 pre-tensioned, < 0 slack). Both
    sides of ITL and CL take one value. Only sourced numbers are defaults; 0 (the paper's rest
    length at neutral) where no in-situ strain was found (docs/nonlinear.md)."""

    ALL: ReferenceStrain = Field(0.0, description="anterior longitudinal [unsourced: 0]")
    PLL: ReferenceStrain = Field(0.0, description="posterior longitudinal [unsourced: 0]")
    LF: ReferenceStrain = Field(
        0.0, description="ligamentum flavum; pre-tensioned in situ [nachemson1968], its strain "
        "not re-read [unsourced: 0]"
    )
    ITL: ReferenceStrain = Field(0.0, description="intertransverse [unsourced: 0]")
    ISL: ReferenceStrain = Field(0.0, description="interspinous [unsourced: 0]")
    SSL: ReferenceStrain = Field(0.0, description="supraspinous [unsourced: 0]")
    CL: ReferenceStrain = Field(
        0.047, description="facet capsule: it shrinks by 4-5 % when released from the bone, "
        "0.045 / (1 - 0.045) of its free length [capsule_insitu]"
    )


class Nonlinear(_Section):
    """Ligaments, facet contact, hyperelastic regions and Newton settings of the nonlinear model."""

    ligaments: bool = Field(True, description="the seven ligaments of the paper and the facet "
                            "capsules as tension-only springs [paper]")
    ligament_law: Literal["linear", "toe"] = Field(
        "toe",
        description="force-strain: with the quadratic toe region of [blankevoort1991] up to each "
        "ligament's transition strain, or linear (E A e, paper Table 4)",
    )
    ligament_reference_strain: LigamentReferenceStrain = Field(
        default_factory=LigamentReferenceStrain,
        description="in-situ strain e per ligament (ALL, PLL, LF, ITL, ISL, SSL, CL; each > -0.5, "
        "< 0.5) at the neutral geometry: rest length L0 / (1 + e), pre-tensioned for e > 0, "
        "acting from the first load step (docs/nonlinear.md); CL 0.047 [capsule_insitu], the "
        "others 0 where no in-situ strain was found (LF is pre-tensioned [nachemson1968])",
    )
    contact: bool = Field(True, description="contact of the facet joints [paper] and of the L4 "
                          "inferior articular tips on the L5 lamina [inoue2020] (augmented "
                          "Lagrangian, with friction)")
    tip_contact: bool = Field(
        True, exclude_if=lambda v: v,
        description="with contact: the L4 articular tips on the L5 lamina too (false: the facet "
        "joints only, the model of calibration step 3a) [inoue2020]",
    )
    contact_penalty_N_mm3: Positive = Field(
        3.0e2,
        description="contact pressure per mm of penetration before the augmented-Lagrangian "
        "updates; stiffer values made Newton chatter on axial rotation [numerical]",
    )
    friction: float = Field(0.1, ge=0.0, le=1.0, description="Coulomb friction of every contact "
                            "(facet joints, articular tips) [paper]")
    penetration_fraction: float = Field(
        0.01, gt=0.0, le=1.0,
        description="largest penetration of a contact at convergence, as a fraction of its "
        "smallest initial gap; augmented-Lagrangian updates reduce it to this [numerical]",
    )
    hyperelastic_regions: tuple[str, ...] = Field(
        ("disc.annulus", "disc.nucleus"),
        description="regions with the compressible neo-Hookean law and large deformation; the "
        "others are small-strain linear elastic",
    )
    load_steps: int = Field(2, ge=1, le=100, description="equal load increments [numerical]")
    line_search: Literal["bt", "basic", "cp", "l2"] = Field(
        "cp", description="Newton line search (PETSc SNESLineSearch): cp (critical point of the "
        "energy along the step), bt (backtracking on the residual norm), basic (full steps), l2 "
        "(secant on the residual norm); with full steps axial rotation cycles once the capsules "
        "follow the toe law [numerical]"
    )
    newton_rtol: float = Field(
        1e-8, gt=0.0, lt=1.0, description="Newton residual tolerance, relative to each step's "
        "first residual [numerical]"
    )
    newton_max_iterations: int = Field(
        30, ge=1, description="Newton iteration limit per solve (a load step that exceeds it is "
        "cut back)"
    )

    @field_validator("hyperelastic_regions")
    @classmethod
    def _known_regions(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from spinefe.common import regions as R

        known = set(R.vertebra_regions("L4") + R.vertebra_regions("L5"))
        known |= {R.NUCLEUS, R.ANNULUS, R.LESION, R.SEEDS}
        known |= {R.cartilage(side, level) for side in R.SIDES for level in R.VERTEBRAE}
        unknown = sorted(set(v) - known)
        if unknown:
            raise ValueError(f"unknown region(s) {unknown}; allowed: {sorted(known)}")
        return v


class RangeOfMotion(_Section):
    """Pure-moment load cases on L4 (L5.inferior clamped) and the range of motion."""

    moment_Nm: float = Field(
        7.5, gt=0.0, le=30.0, description="pure moment of every motion [wilke1998]"
    )
    preload_N: float = Field(
        0.0, ge=0.0, le=2000.0,
        description="compression on L4.superior with the moment [patwardhan1999]",
    )
    preload: Preload = Field(
        "follower", exclude_if=lambda v: v == "follower",
        description="follower (normal to L4.superior, turning with it) or dead (along -z)",
    )
    follower_offset_mm: float = FOLLOWER_OFFSET
    follower_path: Literal["given", "least_rotation"] = Field(
        "given", exclude_if=lambda v: v == "given",
        description="given: the path at follower_offset_mm; least_rotation: searched from "
        "there, the offset at which the preload alone turns L4 least about the left-right "
        "axis (the in-vitro protocol) [patwardhan1999]",
    )
    motions: tuple[str, ...] = Field(
        default_factory=lambda: tuple(MOTIONS), description="motions to run"
    )

    @model_validator(mode="after")
    def _searched_path_needs_a_follower(self):
        if self.follower_path == "least_rotation" and not (
                self.preload == "follower" and self.preload_N > 0.0):
            raise ValueError(f"follower_path = 'least_rotation' needs a follower preload "
                             f"(preload = 'follower' and preload_N > 0), got preload = "
                             f"{self.preload!r}, preload_N = {self.preload_N:g}")
        return self

    @field_validator("motions")
    @classmethod
    def _known_motions(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [m for m in v if m not in MOTIONS]
        if unknown or not v:
            raise ValueError(f"unknown motion(s) {unknown}; allowed: {list(MOTIONS)}")
        return v


class Dosimetry(_Section):
    """TG-43U1 dose of the configured seeds, its DVHs and plan metrics."""

    seed_model: str = Field(
        "6711", description="seed model: built-in (6711, 6702, IAI-125A) or a seed model file"
    )
    activity_mCi: float = Field(
        0.45, ge=0.1, le=2.0, description="apparent activity of every seed (1.270 U/mCi) [paper: "
        "0.3-0.8 mCi]"
    )
    prescription_Gy: Positive = Field(
        150.0, description="prescribed dose: matched peripheral dose of the lesion (Gy) [paper]"
    )
    formalism: Literal["2d", "1d"] = Field(
        "2d", description="TG-43U1 line (2d) or point (1d) source"
    )
    sampling_degree: int = Field(
        2, ge=1, le=20, description="quadrature degree of the dose samples in every cell"
    )
    near_seed_degree: int = Field(
        8, ge=1, le=20,
        description="quadrature degree of the dose samples in cells near a seed, where the dose "
        "varies as 1/r^2 within a cell",
    )
    near_seed_mm: float = Field(
        3.0, ge=0.0, description="distance from a seed axis within which cells use near_seed_degree"
    )
    grid_spacing_mm: Positive = Field(
        0.5, description="voxel size of the exported RT Dose grid and of the isodose pictures"
    )

    @field_validator("seed_model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        from dosimetry.seed_models import SeedModelError, load_seed_model

        try:
            load_seed_model(v)
        except SeedModelError as err:
            raise ValueError(str(err)) from None
        return v


class Optimisation(_Section):
    """Dual optimisation of seed plans: NSGA-II search (spinefe.planning.optimisation)."""

    mesh_size_mm: float = Field(
        2.2, ge=0.2, le=5.0, description="global element size h of the seedless mesh the search "
        "evaluates plans on (the optimisation resolution; docs/optimisation.md)"
    )
    activities_mCi: tuple[float, ...] = Field(
        (0.3, 0.4, 0.5, 0.6, 0.7, 0.8), min_length=1,
        description="seed activities the search chooses from, 0.1-2 mCi each [paper]"
    )
    hybrid: bool = Field(
        False, description="hybrid activity plans: every other needle of a side carries a second "
        "activity of its own"
    )
    max_seeds_per_needle: int = Field(6, ge=1, le=12, description="most seeds on one needle")
    population: int = Field(44, ge=4, description="NSGA-II population")
    generations: int = Field(
        50, ge=1, description="NSGA-II generations: the budget, an upper bound when the stopping "
        "rule (stop_hypervolume_percent) ends the search earlier"
    )
    stop_hypervolume_percent: float = Field(
        1.0, ge=0.0, description="stopping rule: the search ends before the budget once the "
        "hypervolume of the archive's front has grown by less than this share (%) of its value "
        "over the last stop_window generations; 0: always run the whole budget"
    )
    stop_window: int = Field(
        10, ge=1, description="generations over which the stopping rule measures the "
        "hypervolume's change"
    )
    random_seed: int = Field(
        1, ge=0, description="random seed of the search (same seed, same front)"
    )
    dose_degree: int = Field(
        1, ge=1, le=20,
        description="quadrature degree of the search's dose samples per cell (1: lesion D90 "
        "within 0.13 % of degree 8)"
    )
    ranks_per_evaluation: int = Field(
        1, ge=1, description="MPI ranks per plan evaluation; the ranks split into groups that "
        "evaluate different plans"
    )
    v150_max_percent: float = Field(
        60.0, gt=0.0, le=100.0, description="upper limit of the lesion V150 (%), 100: no limit "
        "[representative: permanent prostate seed implants keep V150 below 50-60 %; no limit "
        "is published for vertebral implants]"
    )
    v200_max_percent: float = Field(
        100.0, gt=0.0, le=100.0, description="upper limit of the lesion V200 (%), 100: no limit"
    )
    canal_d01cc_max_Gy: float | None = Field(
        None, gt=0.0, description="upper limit of the canal D0.1cc (Gy); unset: no limit"
    )

    @field_validator("activities_mCi")
    @classmethod
    def _activities(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0.1 <= a <= 2.0 for a in v):
            raise ValueError(f"every activity must lie in 0.1-2 mCi, got {list(v)}")
        return tuple(sorted(set(v)))


class Config(_Section):
    """A complete L4-L5 model: anatomy, pathology, implant, mesh."""

    L4: Vertebra = Field(default_factory=lambda: default_vertebra("L4"))
    L5: Vertebra = Field(default_factory=lambda: default_vertebra("L5"))
    layers: Layers = Field(default_factory=Layers)
    disc: Disc = Field(default_factory=Disc)
    facets: Facets = Field(default_factory=Facets)
    lesion: Lesion = Field(default_factory=Lesion)
    seed_capsule: SeedCapsule = Field(default_factory=SeedCapsule)
    seeds: tuple[Seed, ...] = Field(default_factory=lambda: default_seeds())
    regions: Regions = Field(default_factory=Regions)
    mesh: Mesh = Field(default_factory=Mesh)
    materials: Materials = Field(default_factory=Materials)
    mechanics: Mechanics = Field(default_factory=Mechanics)
    nonlinear: Nonlinear = Field(default_factory=Nonlinear)
    rom: RangeOfMotion = Field(default_factory=RangeOfMotion)
    dosimetry: Dosimetry = Field(default_factory=Dosimetry)
    optimisation: Optimisation = Field(default_factory=Optimisation)


    @model_validator(mode="after")
    def _compressible_where_needed(self):
        limit = self.mechanics.nearly_incompressible_nu
        for name, m in self.materials:
            if m.anisotropy is not None and m.nu >= limit:
                raise ValueError(f"materials.{name}: an anisotropic material has no nearly "
                                 f"incompressible form; its nu ({m.nu}) must stay below "
                                 f"mechanics.nearly_incompressible_nu ({limit})")
            if m.poroelastic is not None and m.nu >= limit:
                raise ValueError(f"materials.{name}: a poroelastic material's nu is its drained "
                                 f"matrix's, whose volume change the fluid flow allows; it "
                                 f"({m.nu}) must stay below mechanics.nearly_incompressible_nu "
                                 f"({limit})")
        return self

    def hash(self, *sections: str) -> str:
        """SHA-256 (16 hex digits) of the canonical JSON of the whole config or some sections."""
        data = self.model_dump(mode="json")
        if sections:
            data = {k: data[k] for k in sections}
        return canonical_hash(data)


#: Defaults per vertebra. Sources (sources.SOURCES): body width, posterior height, canal width
#: and depth, pedicle width (mean of left and right) from Panjabi 1992 [panjabi1992]; anterior
#: height from the pooled review [bonczar2024]. The remaining values (body depth, pedicle height
#: and angle, processes, concavity) are representative values [representative] chosen to give a
#: recognisable segment; override them for a specific patient.
_VERTEBRA_DEFAULTS: dict[str, dict[str, float]] = {
    "L4": dict(
        endplate_width_mm=46.6,
        endplate_depth_mm=35.0,
        anterior_height_mm=26.9,
        posterior_height_mm=24.1,
        posterior_concavity_depth_mm=2.5,
        posterior_concavity_radius_mm=14.0,
        pedicle_width_mm=14.0,
        pedicle_height_mm=15.0,
        pedicle_transverse_angle_deg=12.0,
        canal_width_mm=25.4,
        canal_depth_mm=18.6,
        lamina_thickness_mm=6.0,
        transverse_process_span_mm=76.0,
        transverse_process_height_mm=9.0,
        spinous_process_length_mm=26.0,
        spinous_process_height_mm=16.0,
        spinous_process_width_mm=7.0,
        articular_process_thickness_mm=7.0,
    ),
    "L5": dict(
        endplate_width_mm=47.3,
        endplate_depth_mm=35.0,
        anterior_height_mm=27.4,
        posterior_height_mm=22.9,
        posterior_concavity_depth_mm=2.5,
        posterior_concavity_radius_mm=14.0,
        pedicle_width_mm=18.6,
        pedicle_height_mm=14.0,
        pedicle_transverse_angle_deg=20.0,
        canal_width_mm=27.1,
        canal_depth_mm=19.7,
        lamina_thickness_mm=6.0,
        transverse_process_span_mm=82.0,
        transverse_process_height_mm=10.0,
        spinous_process_length_mm=22.0,
        spinous_process_height_mm=14.0,
        spinous_process_width_mm=7.0,
        articular_process_thickness_mm=7.0,
    ),
}


def default_vertebra(level: str) -> Vertebra:
    return Vertebra(**_VERTEBRA_DEFAULTS[level])


def default_seeds() -> tuple[Seed, ...]:
    """A representative low-activity (0.3-0.6 mCi) bilateral pattern: 16 seeds.

    Two transpedicular needles per side converge 10 degrees medially; each carries four seeds at
    6 mm spacing in and around the default lesion (paper Table 1: 15-25 seeds, bilateral, dense).
    No capsule grazes the lesion surface or the cortical shell's inner surface (it keeps 0.4 mm
    from it or crosses it by 0.4 mm; `layout.grazing_capsules`): with the lines starting at
    y = 8 mm, two capsule ends came within 6 um of the lesion surface and left sliver elements
    (radius ratio 0.004) in the lesion at every element size.
    """
    seeds = []
    angle = np.radians(10.0)
    for side in (+1.0, -1.0):
        direction = np.array([-side * np.sin(angle), -np.cos(angle), 0.0])
        for x_entry, z in ((10.0, 15.0), (5.0, 21.0)):
            start = np.array([side * x_entry, 8.5, z])
            for k in range(4):
                centre = start + (3.0 + 6.0 * k) * direction
                seeds.append(
                    Seed(
                        position_mm=tuple(np.round(centre, 3)),
                        direction=tuple(np.round(direction, 6)),
                    )
                )
    return tuple(seeds)
