"""Seed models: the TG-43U1 data of one I-125 seed design, read from a TOML data file.

Built-in models live in `dosimetry/data/seeds/<name>.toml`; a user's own model is any file in the
same format (docs/dosimetry.md, "Seed model files"), given by path. Loading validates every table
and names what is wrong.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

#: Half-life of I-125 (h): 59.40 d [TG-43U1].
HALF_LIFE_H = 59.40 * 24.0
#: Mean life tau = T1/2 / ln 2 (h), exact ratio (1.44 T1/2 is 0.19 % low).
MEAN_LIFE_H = HALF_LIFE_H / np.log(2.0)
#: Air-kerma strength per apparent activity of I-125 (U/mCi) [TG-43U1].
U_PER_MCI = 1.270
#: Reference point of the formalism: r0 = 1 cm, theta0 = 90 deg.
R0_CM = 1.0

DEFAULT_MODEL = "6711"


class SeedModelError(ValueError):
    """A seed model file is missing, malformed or has invalid tables."""


@dataclass(frozen=True)
class SeedModel:
    """TG-43U1 parameters of one seed model (lengths in cm, angles in degrees).

    `F` has one row per angle in `F_theta_deg` and one column per radius in `F_r_cm`.
    `phi_an` is None when the model has no 1D anisotropy factor.
    """

    name: str
    description: str
    provenance: str
    certainty: str
    dose_rate_constant: float  # Lambda (cGy h^-1 U^-1)
    line_length_cm: float  # L of the line-source geometry function
    capsule_radius_cm: float
    capsule_length_cm: float
    g_r_cm: np.ndarray
    g_L: np.ndarray
    F_r_cm: np.ndarray
    F_theta_deg: np.ndarray
    F: np.ndarray
    phi_r_cm: np.ndarray | None = None
    phi_an: np.ndarray | None = None

    @property
    def F_is_symmetric(self) -> bool:
        """True when F is tabulated on 0-90 deg only, F(r, 180 - theta) = F(r, theta)."""
        return bool(self.F_theta_deg[-1] == 90.0)


def builtin_models() -> list[str]:
    """Names of the seed models shipped with the package."""
    folder = resources.files("dosimetry") / "data" / "seeds"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


@cache
def load_seed_model(name_or_path: str) -> SeedModel:
    """A built-in model by name (e.g. "6711") or a user's model file by path."""
    if name_or_path in builtin_models():
        ref = resources.files("dosimetry") / "data" / "seeds" / f"{name_or_path}.toml"
        return parse_seed_model(tomllib.loads(ref.read_text()), source=name_or_path)
    path = Path(name_or_path)
    if not path.suffix == ".toml" or not path.exists():
        raise SeedModelError(
            f"seed model {name_or_path!r}: unknown; use one of {', '.join(builtin_models())} "
            "or the path of a seed model file (.toml)"
        )
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise SeedModelError(f"{path}: not valid TOML: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SeedModelError(f"{path}: cannot read the seed model file: {err}") from None
    return parse_seed_model(data, source=str(path))


def parse_seed_model(data: dict, source: str = "<data>") -> SeedModel:
    """Validate the tables of a seed model read from TOML; raises SeedModelError naming the key."""

    def fail(key: str, msg: str):
        raise SeedModelError(f"{source}: {key}: {msg}")

    def get(key: str, kind=None):
        node = data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                fail(key, "missing")
            node = node[part]
        if kind is str and not isinstance(node, str):
            fail(key, "must be a string")
        return node

    def positive(key: str) -> float:
        value = get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            fail(key, f"must be a positive number, got {value!r}")
        return float(value)

    def array(key: str, ndim: int = 1) -> np.ndarray:
        try:
            a = np.asarray(get(key), dtype=float)
        except (TypeError, ValueError):
            fail(key, "must be a list of numbers" + (" per row, rows of equal length" * (ndim - 1)))
        if a.ndim != ndim or a.size == 0:
            fail(key, f"must be a non-empty {'table' if ndim == 2 else 'list'} of numbers")
        if not np.all(np.isfinite(a)) or np.any(a <= 0):
            fail(key, "all values must be positive and finite")
        return a

    def radii(key: str) -> np.ndarray:
        r = array(key)
        if r.size < 2:
            fail(key, "needs at least two radii")
        if np.any(np.diff(r) <= 0):
            fail(key, "radii must increase strictly")
        return r

    known = {"name", "description", "provenance", "certainty", "dose_rate_constant_cGy_h_U",
             "line_length_cm", "capsule", "radial_dose", "anisotropy", "anisotropy_factor"}
    for key in data:
        if key not in known:
            fail(key, f"unknown key; allowed: {', '.join(sorted(known))}")

    g_r, g_L = radii("radial_dose.r_cm"), array("radial_dose.g_L")
    if g_r.size != g_L.size:
        fail("radial_dose.g_L", f"has {g_L.size} values for {g_r.size} radii")

    F_r = radii("anisotropy.r_cm")
    try:
        theta = np.asarray(get("anisotropy.theta_deg"), dtype=float)
    except (TypeError, ValueError):
        fail("anisotropy.theta_deg", "must be a list of numbers (degrees)")
    if theta.ndim != 1 or theta.size < 2 or np.any(np.diff(theta) <= 0):
        fail("anisotropy.theta_deg", "angles must increase strictly")
    if theta[0] != 0.0 or theta[-1] not in (90.0, 180.0):
        fail("anisotropy.theta_deg", "angles must span 0-90 (symmetric seed) or 0-180 degrees")
    try:
        F = np.asarray(get("anisotropy.F"), dtype=float)
    except (TypeError, ValueError):
        fail("anisotropy.F", "must be a table (list of rows) of numbers, rows of equal length")
    if F.shape != (theta.size, F_r.size):
        fail("anisotropy.F", f"shape {F.shape}: needs one row per angle and one column per "
             f"radius, ({theta.size}, {F_r.size})")
    if not np.all(np.isfinite(F)) or np.any(F <= 0):
        fail("anisotropy.F", "all values must be positive and finite")

    phi_r = phi = None
    if "anisotropy_factor" in data:
        phi_r, phi = radii("anisotropy_factor.r_cm"), array("anisotropy_factor.phi_an")
        if phi_r.size != phi.size:
            fail("anisotropy_factor.phi_an", f"has {phi.size} values for {phi_r.size} radii")

    L = positive("line_length_cm")
    radius, length = positive("capsule.outer_radius_cm"), positive("capsule.length_cm")
    if length <= L or length < 2 * radius:
        fail("capsule.length_cm", f"{length} cm must cover the line source ({L} cm) and both "
             "hemispherical ends (2 x outer radius)")
    return SeedModel(
        name=get("name", str),
        description=get("description", str),
        provenance=get("provenance", str),
        certainty=get("certainty", str),
        dose_rate_constant=positive("dose_rate_constant_cGy_h_U"),
        line_length_cm=L,
        capsule_radius_cm=radius,
        capsule_length_cm=length,
        g_r_cm=g_r,
        g_L=g_L,
        F_r_cm=F_r,
        F_theta_deg=theta,
        F=F,
        phi_r_cm=phi_r,
        phi_an=phi,
    )
