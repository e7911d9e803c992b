"""AAPM TG-43U1 dose rate of I-125 seeds at arbitrary points (Rivard et al. 2004).

2D (line source):  Ddot(r, theta) = S_K Lambda [G_L(r, theta) / G_L(r0, theta0)] g_L(r) F(r, theta)
1D (point source): Ddot(r)        = S_K Lambda [G_L(r, theta0) / G_L(r0, theta0)] g_L(r) phi_an(r)
with r0 = 1 cm, theta0 = 90 deg. Points are in mm (LPS); TG-43 lengths are cm internally; dose rates
are cGy/h (per U of S_K times cGy cm^2 h^-1 U^-1 ... = cGy/h) at this boundary, total doses in Gy.

Interpolation, as in clinical practice (tg43-i125.md):
- g_L: linear between nodes, nearest neighbour below the first radius, log-linear extrapolation
  from the last two nodes beyond the last radius;
- F: bilinear in (r, theta) inside the table, nearest neighbour in r outside it (never F = 1),
  folded to 0-90 deg when tabulated on 0-90 deg only;
- phi_an: linear between nodes, nearest neighbour outside;
- G_L: beta / (L r sin theta) off the axis, 1 / (r^2 - L^2 / 4) on it (sin theta below 1e-12).
A point inside a seed's capsule (a cylinder with hemispherical ends) has no dose: it is flagged.

Two implementations of the same formulas: `dose_rate_reference` (vectorised numpy, chunked) is the
readable oracle; `dose_rate` runs a compiled kernel (numba: one pass over points x seeds, no
temporaries) that the tests hold to the reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numba
import numpy as np

from dosimetry.plan import Plan, PlanError
from dosimetry.seed_models import MEAN_LIFE_H, R0_CM, SeedModel, load_seed_model

Formalism = Literal["2d", "1d"]
FORMALISMS = ("2d", "1d")
_AXIS_SIN = 1e-12


@dataclass(frozen=True)
class PointDose:
    """Initial dose rate at points; NaN (and flagged) inside a capsule."""

    dose_rate_cGy_h: np.ndarray
    inside_capsule: np.ndarray

    @property
    def total_dose_Gy(self) -> np.ndarray:
        """Dose of a permanent implant, delivered to full decay (Gy)."""
        return total_dose_Gy(self.dose_rate_cGy_h)

    @property
    def n_inside(self) -> int:
        return int(np.count_nonzero(self.inside_capsule))


def total_dose_Gy(dose_rate_cGy_h):
    """Permanent implant: D(inf) = Ddot0 tau, with the exact mean life tau = T1/2 / ln 2 (Gy)."""
    return np.asarray(dose_rate_cGy_h) * MEAN_LIFE_H / 100.0


def dose_by_time_Gy(dose_rate_cGy_h, t_h):
    """Dose delivered by time t (h) after implantation: Ddot0 tau (1 - exp(-t / tau)) (Gy)."""
    return total_dose_Gy(dose_rate_cGy_h) * -np.expm1(-np.asarray(t_h, float) / MEAN_LIFE_H)


def _check_formalism(formalism: str, models: list[SeedModel]) -> None:
    if formalism not in FORMALISMS:
        raise ValueError(f"formalism: {formalism!r} is not one of {', '.join(FORMALISMS)}")
    if formalism == "1d":
        for m in models:
            if m.phi_an is None:
                raise ValueError(f"formalism: seed model {m.name} has no phi_an table; use '2d'")


# --- the formulas, vectorised -------------------------------------------------------------------


def geometry_function(r_cm, z_cm, rho_cm, L_cm: float):
    """Line-source G_L (cm^-2) at distance r, axial coordinate z and radial distance rho (cm)."""
    r_cm, z_cm, rho_cm = np.broadcast_arrays(r_cm, z_cm, rho_cm)
    beta = np.arctan2(L_cm * rho_cm, r_cm**2 - 0.25 * L_cm**2)
    on_axis = rho_cm <= _AXIS_SIN * r_cm
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(on_axis, 1.0 / (r_cm**2 - 0.25 * L_cm**2), beta / (L_cm * rho_cm))


def reference_geometry(L_cm: float) -> float:
    """G_L(r0 = 1 cm, theta0 = 90 deg) (cm^-2)."""
    return 2.0 * np.arctan(0.5 * L_cm / R0_CM) / (L_cm * R0_CM)


def radial_dose(model: SeedModel, r_cm):
    """g_L(r): linear inside, nearest neighbour below, log-linear beyond the table."""
    r = np.asarray(r_cm, float)
    rt, g = model.g_r_cm, model.g_L
    slope = np.log(g[-1] / g[-2]) / (rt[-1] - rt[-2])
    beyond = g[-1] * np.exp(slope * (r - rt[-1]))
    return np.where(r > rt[-1], beyond, np.interp(r, rt, g))


def anisotropy(model: SeedModel, r_cm, theta_deg):
    """F(r, theta): bilinear inside the table, nearest neighbour in r and theta outside it."""
    r = np.clip(np.asarray(r_cm, float), model.F_r_cm[0], model.F_r_cm[-1])
    t = np.asarray(theta_deg, float)
    if model.F_is_symmetric:
        t = np.minimum(t, 180.0 - t)
    rt, tt = model.F_r_cm, model.F_theta_deg
    i = np.clip(np.searchsorted(rt, r, side="right") - 1, 0, rt.size - 2)
    j = np.clip(np.searchsorted(tt, t, side="right") - 1, 0, tt.size - 2)
    a = (r - rt[i]) / (rt[i + 1] - rt[i])
    b = np.clip((t - tt[j]) / (tt[j + 1] - tt[j]), 0.0, 1.0)
    F = model.F
    return ((1 - a) * (1 - b) * F[j, i] + a * (1 - b) * F[j, i + 1]
            + (1 - a) * b * F[j + 1, i] + a * b * F[j + 1, i + 1])


def anisotropy_factor(model: SeedModel, r_cm):
    """phi_an(r): linear inside, nearest neighbour outside the table."""
    return np.interp(np.asarray(r_cm, float), model.phi_r_cm, model.phi_an)


def seed_frame(points_mm: np.ndarray, position_mm, direction):
    """(r, z, rho) in cm of points in the frame of a seed (z along its unit direction)."""
    d = (np.asarray(points_mm, float) - np.asarray(position_mm, float)) / 10.0
    u = np.asarray(direction, float)
    z = d @ u
    r = np.sqrt(np.einsum("ij,ij->i", d, d))
    # rho = |d x u|, not sqrt(r^2 - z^2): exact zero on the seed axis, no cancellation near it.
    rho = np.linalg.norm(np.cross(d, u), axis=1)
    return r, z, rho


def inside_capsule(model: SeedModel, z_cm, rho_cm):
    """True where a point lies inside the capsule (cylinder with hemispherical ends)."""
    half = 0.5 * model.capsule_length_cm - model.capsule_radius_cm
    dz = np.maximum(np.abs(z_cm) - half, 0.0)
    return dz * dz + rho_cm * rho_cm < model.capsule_radius_cm**2


def single_seed_rate(model: SeedModel, strength_U: float, r, z, rho, formalism: Formalism = "2d"):
    """Dose rate (cGy/h) of one seed at seed-frame coordinates (cm); inside the capsule is NaN."""
    L = model.line_length_cm
    scale = strength_U * model.dose_rate_constant / reference_geometry(L)
    with np.errstate(divide="ignore", invalid="ignore"):
        if formalism == "2d":
            theta = np.degrees(np.arctan2(rho, z))
            rate = (scale * geometry_function(r, z, rho, L) * radial_dose(model, r)
                    * anisotropy(model, r, theta))
        else:
            G = 2.0 * np.arctan(0.5 * L / r) / (L * r)
            rate = scale * G * radial_dose(model, r) * anisotropy_factor(model, r)
    return np.where(inside_capsule(model, z, rho), np.nan, rate)


def dose_rate_reference(
    points_mm, plan: Plan, formalism: Formalism = "2d", chunk: int = 1 << 16
) -> PointDose:
    """Straightforward vectorised numpy evaluation (chunks of `chunk` points bound the memory)."""
    points = _points(points_mm)
    _check_plan(plan)
    models = [load_seed_model(s.model) for s in plan.seeds]
    _check_formalism(formalism, models)
    rate = np.zeros(len(points))
    inside = np.zeros(len(points), dtype=bool)
    for lo in range(0, len(points), chunk):
        p = points[lo : lo + chunk]
        for seed, model in zip(plan.seeds, models, strict=True):
            r, z, rho = seed_frame(p, seed.position_mm, seed.direction)
            rate[lo : lo + chunk] += single_seed_rate(model, seed.strength_U, r, z, rho, formalism)
            inside[lo : lo + chunk] |= inside_capsule(model, z, rho)
    return PointDose(rate, inside)


def _points(points_mm) -> np.ndarray:
    points = np.ascontiguousarray(points_mm, dtype=float)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points: need an (N, 3) array of x, y, z in mm, got shape {points.shape}")
    bad = np.flatnonzero(~np.isfinite(points).all(axis=1))
    if bad.size:
        raise ValueError(f"points: row {bad[0]} is not finite: {points[bad[0]].tolist()}")
    return points


def _check_plan(plan: Plan) -> None:
    if not plan.seeds:
        raise PlanError("seeds: the plan has no seeds")


# --- compiled kernel ------------------------------------------------------------------------------
# numba rather than a C extension: the same formulas in Python syntax, compiled at first use and
# cached; no library offers TG-43 evaluation. Models are packed into flat arrays per seed.


@dataclass(frozen=True)
class _Packed:
    seeds: np.ndarray  # (n, 8): position (mm), direction, S_K Lambda / G0 (cGy/h cm^2), model index
    params: np.ndarray  # (m, 4): L, capsule half-length of the cylinder, capsule radius, symmetric
    g_r: np.ndarray  # (m, kg) radii, padded with +inf
    g: np.ndarray  # (m, kg)
    g_n: np.ndarray  # (m,) number of nodes
    F_r: np.ndarray  # (m, kr)
    F_t: np.ndarray  # (m, kt)
    F: np.ndarray  # (m, kt, kr)
    F_shape: np.ndarray  # (m, 2)
    phi_r: np.ndarray  # (m, kp)
    phi: np.ndarray
    phi_n: np.ndarray


def _pack(plan: Plan) -> _Packed:
    names = sorted({s.model for s in plan.seeds})
    models = [load_seed_model(n) for n in names]

    def pad(arrays, fill=np.inf):
        k = max(len(a) for a in arrays)
        return np.array([np.concatenate([a, np.full(k - len(a), fill)]) for a in arrays])

    phis = [m.phi_r_cm if m.phi_an is not None else np.array([1.0]) for m in models]
    phiv = [m.phi_an if m.phi_an is not None else np.array([np.nan]) for m in models]
    kt = max(m.F.shape[0] for m in models)
    kr = max(m.F.shape[1] for m in models)
    F = np.full((len(models), kt, kr), np.nan)
    for i, m in enumerate(models):
        F[i, : m.F.shape[0], : m.F.shape[1]] = m.F
    index = {name: i for i, name in enumerate(names)}
    scale = [m.dose_rate_constant / reference_geometry(m.line_length_cm) for m in models]
    seeds = np.array(
        [
            [*s.position_mm, *s.direction, s.strength_U * scale[index[s.model]], index[s.model]]
            for s in plan.seeds
        ],
        float,
    ).reshape(-1, 8)
    return _Packed(
        seeds=seeds,
        params=np.array([[m.line_length_cm, 0.5 * m.capsule_length_cm - m.capsule_radius_cm,
                          m.capsule_radius_cm, float(m.F_is_symmetric)] for m in models]),
        g_r=pad([m.g_r_cm for m in models]),
        g=pad([m.g_L for m in models], 1.0),
        g_n=np.array([len(m.g_L) for m in models], np.int64),
        F_r=pad([m.F_r_cm for m in models]),
        F_t=pad([m.F_theta_deg for m in models]),
        F=F,
        F_shape=np.array([m.F.shape for m in models], np.int64),
        phi_r=pad(phis),
        phi=pad(phiv, 1.0),
        phi_n=np.array([len(p) for p in phis], np.int64),
    )


@numba.njit(cache=True, inline="always")
def _interval(x, table, n):
    """Index i of the interval table[i] <= x < table[i+1], clipped to 0..n-2."""
    i = 0
    while i < n - 2 and x >= table[i + 1]:
        i += 1
    return i


@numba.njit(cache=True, inline="always")
def _lin(x, xt, yt, n, log_beyond):
    if x <= xt[0]:
        return yt[0]
    if x >= xt[n - 1]:
        if log_beyond:
            return yt[n - 1] * np.exp(np.log(yt[n - 1] / yt[n - 2])
                                      * (x - xt[n - 1]) / (xt[n - 1] - xt[n - 2]))
        return yt[n - 1]
    i = _interval(x, xt, n)
    a = (x - xt[i]) / (xt[i + 1] - xt[i])
    return (1.0 - a) * yt[i] + a * yt[i + 1]


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _kernel(points, seeds, params, g_r, g, g_n, F_r, F_t, F, F_shape, phi_r, phi, phi_n,
            two_d, out, inside):
    rad2deg = 180.0 / np.pi
    for p in numba.prange(points.shape[0]):
        total = 0.0
        for s in range(seeds.shape[0]):
            m = int(seeds[s, 7])
            dx = (points[p, 0] - seeds[s, 0]) * 0.1
            dy = (points[p, 1] - seeds[s, 1]) * 0.1
            dz = (points[p, 2] - seeds[s, 2]) * 0.1
            ux, uy, uz = seeds[s, 3], seeds[s, 4], seeds[s, 5]
            z = dx * ux + dy * uy + dz * uz
            r2 = dx * dx + dy * dy + dz * dz
            cx, cy, cz = dy * uz - dz * uy, dz * ux - dx * uz, dx * uy - dy * ux
            rho = np.sqrt(cx * cx + cy * cy + cz * cz)
            r = np.sqrt(r2)
            L = params[m, 0]
            az = max(abs(z) - params[m, 1], 0.0)
            if az * az + rho * rho < params[m, 2] * params[m, 2]:
                total = np.nan
                inside[p] = True
                break
            grad = _lin(r, g_r[m], g[m], g_n[m], True)
            if two_d:
                if rho <= 1e-12 * r:
                    G = 1.0 / (r2 - 0.25 * L * L)
                else:
                    G = np.arctan2(L * rho, r2 - 0.25 * L * L) / (L * rho)
                t = np.arctan2(rho, z) * rad2deg
                if params[m, 3] > 0.0 and t > 90.0:
                    t = 180.0 - t
                nt, nr = F_shape[m, 0], F_shape[m, 1]
                rc = min(max(r, F_r[m, 0]), F_r[m, nr - 1])
                i = _interval(rc, F_r[m], nr)
                j = _interval(t, F_t[m], nt)
                a = (rc - F_r[m, i]) / (F_r[m, i + 1] - F_r[m, i])
                b = min(max((t - F_t[m, j]) / (F_t[m, j + 1] - F_t[m, j]), 0.0), 1.0)
                ani = ((1 - a) * (1 - b) * F[m, j, i] + a * (1 - b) * F[m, j, i + 1]
                       + (1 - a) * b * F[m, j + 1, i] + a * b * F[m, j + 1, i + 1])
            else:
                G = 2.0 * np.arctan(0.5 * L / r) / (L * r)
                ani = _lin(r, phi_r[m], phi[m], phi_n[m], False)
            total += seeds[s, 6] * G * grad * ani
        out[p] = total


def set_threads(n: int) -> int:
    """Threads of the compiled kernel in the calling thread (e.g. 1 per MPI rank on a 2-core
    machine); returns the previous count. At most NUMBA_NUM_THREADS."""
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    return previous


def dose_rate(points_mm, plan: Plan, formalism: Formalism = "2d") -> PointDose:
    """Initial dose rate (cGy/h) of the plan at points (N, 3) in mm; NaN inside a capsule."""
    points = _points(points_mm)
    _check_plan(plan)
    _check_formalism(formalism, [load_seed_model(s.model) for s in plan.seeds])
    k = _pack(plan)
    out = np.empty(len(points))
    inside = np.zeros(len(points), dtype=bool)
    _kernel(points, k.seeds, k.params, k.g_r, k.g, k.g_n, k.F_r, k.F_t, k.F, k.F_shape,
            k.phi_r, k.phi, k.phi_n, formalism == "2d", out, inside)
    return PointDose(out, inside)
