"""A seed plan: seeds with position (mm, LPS), unit direction, air-kerma strength (U) and model.

Plans are read and written as TOML (one `[[seeds]]` table per seed) or CSV (one row per seed,
columns `x_mm,y_mm,z_mm,dx,dy,dz,strength_U,model`). A seed may give `activity_mCi` instead of
`strength_U` in TOML; it is converted with 1.270 U/mCi.
"""

from __future__ import annotations

import csv
import io
import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dosimetry.seed_models import DEFAULT_MODEL, U_PER_MCI, SeedModelError, load_seed_model


class PlanError(ValueError):
    """A plan or one of its seeds is invalid; the message names the field."""


def strength_from_activity(activity_mCi: float) -> float:
    """Air-kerma strength (U) of an I-125 seed of apparent activity `activity_mCi`."""
    if not _is_number(activity_mCi) or not activity_mCi > 0:
        raise PlanError(f"activity_mCi: must be a number > 0 (mCi), got {activity_mCi!r}")
    return U_PER_MCI * float(activity_mCi)


@dataclass(frozen=True)
class Seed:
    """One seed: capsule centre (mm, LPS), axis direction (normalised on creation), S_K (U)."""

    position_mm: tuple[float, float, float]
    direction: tuple[float, float, float] = (0.0, 0.0, 1.0)
    strength_U: float = U_PER_MCI * 0.5
    model: str = DEFAULT_MODEL

    def __post_init__(self):
        pos = _vector("position_mm", self.position_mm)
        d = _vector("direction", self.direction)
        if np.linalg.norm(d) < 1e-12:
            raise PlanError(f"direction: must be a non-zero vector, got {self.direction}")
        if not _is_number(self.strength_U) or not self.strength_U > 0:
            raise PlanError(f"strength_U: must be a number > 0 (U), got {self.strength_U!r}")
        if not isinstance(self.model, str):
            raise PlanError(f"model: must be a seed model name or file, got {self.model!r}")
        load_seed_model(self.model)  # raises naming the allowed models
        object.__setattr__(self, "position_mm", tuple(float(v) for v in pos))
        if abs(np.linalg.norm(d) - 1.0) > 1e-12:  # keep unit vectors bit for bit (file round trip)
            d = d / np.linalg.norm(d)
        object.__setattr__(self, "direction", tuple(float(v) for v in d))
        object.__setattr__(self, "strength_U", float(self.strength_U))


@dataclass(frozen=True)
class Plan:
    """An implant: its seeds and an optional name."""

    seeds: tuple[Seed, ...]
    name: str = "plan"

    def __post_init__(self):
        object.__setattr__(self, "seeds", tuple(self.seeds))

    @property
    def positions_mm(self) -> np.ndarray:
        return np.array([s.position_mm for s in self.seeds], float).reshape(-1, 3)

    @property
    def directions(self) -> np.ndarray:
        return np.array([s.direction for s in self.seeds], float).reshape(-1, 3)

    @property
    def strengths_U(self) -> np.ndarray:
        return np.array([s.strength_U for s in self.seeds], float)

    @property
    def total_strength_U(self) -> float:
        return float(self.strengths_U.sum())

    @classmethod
    def uniform(
        cls,
        positions_mm: Iterable,
        directions: Iterable,
        strength_U: float,
        model: str = DEFAULT_MODEL,
        name: str = "plan",
    ) -> Plan:
        """All seeds of one model and strength."""
        return cls(
            tuple(
                _seed(i, position_mm=tuple(p), direction=tuple(d), strength_U=strength_U,
                      model=model)
                for i, (p, d) in enumerate(zip(positions_mm, directions, strict=True))
            ),
            name=name,
        )


def segment_distance(p0, p1, q0, q1) -> float:
    """Shortest distance between segments p0-p1 and q0-q1 (mm)."""
    p0, p1, q0, q1 = (np.asarray(v, float) for v in (p0, p1, q0, q1))
    d1, d2, r = p1 - p0, q1 - q0, p0 - q0
    a, e, f = d1 @ d1, d2 @ d2, d2 @ r
    c, b = d1 @ r, d1 @ d2
    denom = a * e - b * b
    s = np.clip((b * f - c * e) / denom, 0.0, 1.0) if denom > 1e-12 else 0.0
    t = (b * s + f) / e
    if t < 0.0:
        t, s = 0.0, np.clip(-c / a, 0.0, 1.0)
    elif t > 1.0:
        t, s = 1.0, np.clip((b - c) / a, 0.0, 1.0)
    return float(np.linalg.norm((p0 + s * d1) - (q0 + t * d2)))


def overlapping_seeds(plan: Plan) -> tuple[int, int, float] | None:
    """The first pair (i, j, distance of their centres in mm) of seeds whose capsules overlap;
    None when none do. A capsule is the model's: a cylinder with hemispherical ends (tg43's
    inside test), so two overlap where their core segments come closer than the sum of radii."""
    cores = []
    for s in plan.seeds:
        m = load_seed_model(s.model)
        half, r = 5.0 * m.capsule_length_cm - 10.0 * m.capsule_radius_cm, 10.0 * m.capsule_radius_cm
        p, d = np.asarray(s.position_mm), np.asarray(s.direction)
        cores.append((p - half * d, p + half * d, r))
    for i in range(len(cores)):
        for j in range(i + 1, len(cores)):
            (a0, a1, ra), (b0, b1, rb) = cores[i], cores[j]
            if segment_distance(a0, a1, b0, b1) < ra + rb - 1e-6:  # touching is allowed
                centres = np.subtract(plan.seeds[i].position_mm, plan.seeds[j].position_mm)
                return i, j, float(np.linalg.norm(centres))
    return None


def _is_number(v) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool) \
        and bool(np.isfinite(v))


def _vector(name: str, v) -> np.ndarray:
    if not isinstance(v, list | tuple | np.ndarray) or len(v) != 3 \
            or not all(_is_number(x) for x in v):
        raise PlanError(f"{name}: must be three finite numbers, got {v!r}")
    return np.asarray(v, float)


def _seed(i: int, **kwargs) -> Seed:
    try:
        return Seed(**kwargs)
    except PlanError as err:
        raise PlanError(f"seeds[{i}].{err}") from None
    except SeedModelError as err:
        raise PlanError(f"seeds[{i}].model: {err}") from None


_SEED_KEYS = {"position_mm", "direction", "strength_U", "activity_mCi", "model"}


def read_plan(path: str | Path) -> Plan:
    """Read a plan from .toml or .csv."""
    path = Path(path)
    if not path.exists():
        raise PlanError(f"plan file not found: {path}")
    if path.suffix == ".csv":
        return _physical(_plan_from_csv(path.read_text(), path.stem), path)
    if path.suffix != ".toml":
        raise PlanError(f"{path}: plan files are .toml or .csv")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise PlanError(f"{path}: not valid TOML: {err}") from None
    unknown = set(data) - {"name", "seeds"}
    if unknown:
        raise PlanError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: name, seeds")
    rows = data.get("seeds")
    if not isinstance(rows, list) or not rows:
        raise PlanError(f"{path}: seeds: needs at least one [[seeds]] table")
    seeds = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise PlanError(f"seeds[{i}]: must be a [[seeds]] table, got {row!r}")
        extra = set(row) - _SEED_KEYS
        if extra:
            raise PlanError(f"seeds[{i}]: unknown key(s) {sorted(extra)}; allowed: "
                            f"{', '.join(sorted(_SEED_KEYS))}")
        if ("strength_U" in row) == ("activity_mCi" in row):
            raise PlanError(f"seeds[{i}]: give exactly one of strength_U, activity_mCi")
        for key in ("position_mm", "direction"):  # no default axis: the dose is anisotropic
            if key not in row:
                raise PlanError(f"seeds[{i}].{key}: missing (three numbers)")
        kwargs = {k: row[k] for k in ("position_mm", "direction", "model") if k in row}
        if "activity_mCi" in row:
            try:
                kwargs["strength_U"] = strength_from_activity(row["activity_mCi"])
            except PlanError:
                raise PlanError(f"seeds[{i}].activity_mCi: must be > 0 (mCi), "
                                f"got {row['activity_mCi']!r}") from None
        else:
            kwargs["strength_U"] = row["strength_U"]
        seeds.append(_seed(i, **kwargs))
    return _physical(Plan(tuple(seeds), name=str(data.get("name", path.stem))), path)


def _physical(plan: Plan, path: Path) -> Plan:
    """`plan`, or PlanError naming the file and two seeds whose capsules overlap."""
    overlap = overlapping_seeds(plan)
    if overlap is not None:
        i, j, d = overlap
        raise PlanError(f"{path}: seeds[{i}] and seeds[{j}]: their capsules overlap (centres "
                        f"{d:.2f} mm apart); a plan's seeds are physical capsules")
    return plan


_CSV_COLUMNS = ["x_mm", "y_mm", "z_mm", "dx", "dy", "dz", "strength_U", "model"]


def _plan_from_csv(text: str, name: str) -> Plan:
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or set(_CSV_COLUMNS[:7]) - set(reader.fieldnames):
        raise PlanError(f"plan CSV: header must be {','.join(_CSV_COLUMNS)} (model optional), "
                        f"got {reader.fieldnames}")
    seeds = []
    for i, row in enumerate(reader):
        try:
            values = [float(row[c]) for c in _CSV_COLUMNS[:7]]
        except (TypeError, ValueError):
            raise PlanError(f"seeds[{i}] (CSV line {i + 2}): non-numeric value in {row}") from None
        seeds.append(_seed(i, position_mm=tuple(values[:3]), direction=tuple(values[3:6]),
                           strength_U=values[6], model=row.get("model") or DEFAULT_MODEL))
    if not seeds:
        raise PlanError("plan CSV: no seeds")
    return Plan(tuple(seeds), name=name)


def write_plan(plan: Plan, path: str | Path) -> Path:
    """Write a plan as .toml or .csv (atomic: temporary file, then rename)."""
    path = Path(path)
    if path.suffix == ".csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(_CSV_COLUMNS)
        for s in plan.seeds:
            w.writerow([*map(repr, s.position_mm), *map(repr, s.direction), repr(s.strength_U),
                        s.model])
        text = buf.getvalue()
    elif path.suffix == ".toml":
        # Written by hand: the standard library reads TOML but does not write it.
        lines = [f"name = {_toml_str(plan.name)}", ""]
        for s in plan.seeds:
            lines += [
                "[[seeds]]",
                f"position_mm = [{', '.join(map(repr, s.position_mm))}]",
                f"direction = [{', '.join(map(repr, s.direction))}]",
                f"strength_U = {s.strength_U!r}",
                f"model = {_toml_str(s.model)}",
                "",
            ]
        text = "\n".join(lines)
    else:
        raise PlanError(f"{path}: plan files are .toml or .csv")
    return write_text_atomic(path, text)


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write `data` to a temporary file beside `path`, then rename it: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # no temporary file left behind
        raise
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    """`text` (UTF-8) written atomically (write_bytes_atomic)."""
    return write_bytes_atomic(path, text.encode())


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
