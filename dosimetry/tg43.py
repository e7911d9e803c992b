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

Two implementations: `dose_rate_reference` (vectorised numpy, chunked) evaluates the formulas and
is the readable oracle; `dose_rate` runs a compiled kernel (numba: one pass over points x seeds, no
temporaries) that interpolates a per-model table of the same formulas from 1 mm to 10 cm and
evaluates them elsewhere; the tests hold it to the reference within TABLE_RTOL.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
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


def unit_rate(model: SeedModel, r, z, rho, formalism: Formalism = "2d"):
    """Dose rate per unit S_K (cGy h^-1 U^-1) at seed-frame coordinates (cm), capsule ignored."""
    L = model.line_length_cm
    scale = model.dose_rate_constant / reference_geometry(L)
    with np.errstate(divide="ignore", invalid="ignore"):
        if formalism == "2d":
            theta = np.degrees(np.arctan2(rho, z))
            return (scale * geometry_function(r, z, rho, L) * radial_dose(model, r)
                    * anisotropy(model, r, theta))
        G = 2.0 * np.arctan(0.5 * L / r) / (L * r)
        return scale * G * radial_dose(model, r) * anisotropy_factor(model, r)


def single_seed_rate(model: SeedModel, strength_U: float, r, z, rho, formalism: Formalism = "2d"):
    """Dose rate (cGy/h) of one seed at seed-frame coordinates (cm); inside the capsule is NaN."""
    rate = strength_U * unit_rate(model, r, z, rho, formalism)
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
# cached; no library offers TG-43 evaluation.
#
# Between TABLE_R_CM[0] and TABLE_R_CM[1] the kernel reads the dose rate from a per-model table in
# the seed frame instead of evaluating atan2 and three table searches per point and seed: r^2 times
# the unit dose rate (smooth, bounded) on nodes in r and in u = tan(theta / 2) = rho / (r + |z|)
# (one division, no transcendental; theta = 2 atan(u) is 0-90 deg for z >= 0 and 180 deg minus
# that for z < 0), interpolated bilinearly. Every node of the model's g_L, F and phi_an tables is
# a node of the grid, so their kinks fall on cell edges; between them the nodes are at most
# TABLE_R_STEP (relative) apart in r and TABLE_THETA_STEP_DEG apart in theta. Outside that range
# of r (closer than 1 mm, beside a capsule; 10 cm and beyond) the kernel evaluates the formulas.
# Each grid has a uniform "finder" (index of the cell that holds each bin's left edge) so that a
# lookup is O(1).


#: Radii (cm) between which the kernel interpolates in its per-model table (1 mm .. 10 cm).
TABLE_R_CM = (0.1, 10.0)
#: Largest relative node spacing in r, and node spacing in theta (deg), of the table.
TABLE_R_STEP = 0.01
TABLE_THETA_STEP_DEG = 0.5
#: u is at most 1 (theta = 90 deg); kept below it so that u lies inside the last cell.
_U_MAX = float(np.nextafter(1.0, 0.0))
# Table indices are unsigned: numba then skips its negative-index wraparound on every array access
# (numba PR #929), about a fifth of the kernel's time. Constants typed to match (an unsigned
# plus a signed integer would be a float in numba).
_0, _1 = np.uint64(0), np.uint64(1)
#: Bound on the relative difference of the tabulated kernel to `dose_rate_reference` at 1 mm -
#: 10 cm (measured at most 1.6e-4 for the shipped models; tests/test_tg43_kernel.py checks it).
TABLE_RTOL = 1e-3


def _nodes(breaks, step, relative: bool) -> np.ndarray:
    """Sorted unique `breaks`, each interval split evenly into cells at most `step` wide
    (relative to the interval's start when `relative`)."""
    breaks = np.unique(breaks)
    parts = [breaks[:1]]
    for a, b in zip(breaks[:-1], breaks[1:], strict=True):
        n = int(np.ceil((b - a) / (step * a if relative else step) - 1e-9))
        parts.append(np.linspace(a, b, n + 1)[1:])
    return np.concatenate(parts)


def _finder(nodes: np.ndarray) -> tuple[np.ndarray, float]:
    """For bins of width w (just below the smallest cell, so at most one node inside a bin), the
    index of the cell holding each bin's left edge; returns (indices, 1 / w)."""
    inv_w = 1.01 / np.diff(nodes).min()
    n_bins = int(np.ceil((nodes[-1] - nodes[0]) * inv_w)) + 1
    edges = nodes[0] + np.arange(n_bins) / inv_w
    return np.clip(np.searchsorted(nodes, edges, side="right") - 1, 0, nodes.size - 2), inv_w


@dataclass(frozen=True)
class _Table:
    """One model's dose-rate table (module comment above); `rate` is r^2 Ddot / S_K
    (cGy cm^2 h^-1 U^-1) with shape (half, r node, u node), half 1 (z < 0) for 0-180 deg F tables
    only; `rate_1d` is r^2 Ddot / S_K of the 1D formalism (NaN without phi_an)."""

    r: np.ndarray
    r_find: np.ndarray
    r_inv_w: float
    u: np.ndarray
    u_find: np.ndarray
    u_inv_w: float
    rate: np.ndarray
    rate_1d: np.ndarray


@cache
def _table(name: str) -> _Table:
    """The table of a seed model, built once per process from the numpy formulas (572 x 181
    nodes, 0.9 MB and about 50 ms for the shipped models)."""
    m = load_seed_model(name)
    lo, hi = TABLE_R_CM
    inner = [x for x in (*m.g_r_cm, *m.F_r_cm, *(m.phi_r_cm if m.phi_an is not None else ()))
             if lo < x < hi]
    r = _nodes([lo, hi, *inner], TABLE_R_STEP, relative=True)
    folded = np.minimum(m.F_theta_deg, 180.0 - m.F_theta_deg)
    theta = _nodes([0.0, 90.0, *folded], TABLE_THETA_STEP_DEG, relative=False)
    u = np.tan(np.radians(theta) / 2.0)
    u[-1] = 1.0
    rate = np.empty((1 if m.F_is_symmetric else 2, r.size, u.size))
    R, T = np.meshgrid(r, np.radians(theta), indexing="ij")
    for half, sign in zip(range(rate.shape[0]), (1.0, -1.0), strict=False):
        rate[half] = R**2 * unit_rate(m, R, sign * R * np.cos(T), R * np.sin(T), "2d")
    rate_1d = (r**2 * unit_rate(m, r, 0.0, r, "1d") if m.phi_an is not None
               else np.full(r.size, np.nan))
    return _Table(r, *_finder(r), u, *_finder(u), rate, rate_1d)


def _inverse_widths(nodes: np.ndarray) -> np.ndarray:
    return 1.0 / np.diff(nodes)


@dataclass(frozen=True)
class _Models:
    """The seed models of a plan packed into flat arrays for the kernel, model index = position
    in `names`; tables padded to the largest model."""

    names: tuple[str, ...]
    params: np.ndarray  # (m, 6): L, cylinder half-length, capsule radius, symmetric, Lambda / G0,
    # squared reach of the capsule from its centre (half its length), widened by 1e-9
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
    tab_r: np.ndarray  # (m, nr) table nodes in r (cm), padded with +inf
    tab_r_ih: np.ndarray  # (m, nr - 1) 1 / cell width
    tab_r_find: np.ndarray  # (m, nbr) finder
    tab_u: np.ndarray  # (m, nu) table nodes in u = tan(theta / 2)
    tab_u_ih: np.ndarray
    tab_u_find: np.ndarray
    tab_inv_w: np.ndarray  # (m, 2): 1 / finder bin width in r and u
    tab_rate: np.ndarray  # (m, 2, nr, nu)
    tab_rate_1d: np.ndarray  # (m, nr)


def _pad(arrays, fill=np.inf, dtype=float) -> np.ndarray:
    k = max(len(a) for a in arrays)
    return np.array([np.concatenate([a, np.full(k - len(a), fill)]) for a in arrays], dtype)


@cache
def _models(names: tuple[str, ...]) -> _Models:
    """Packed models (cached per set of model names: a plan evaluation re-packs only seeds)."""
    models = [load_seed_model(n) for n in names]
    tables = [_table(n) for n in names]
    phis = [m.phi_r_cm if m.phi_an is not None else np.array([1.0]) for m in models]
    phiv = [m.phi_an if m.phi_an is not None else np.array([np.nan]) for m in models]
    F = np.full((len(models), max(m.F.shape[0] for m in models),
                 max(m.F.shape[1] for m in models)), np.nan)
    rate = np.zeros((len(models), 2, max(t.r.size for t in tables), max(t.u.size for t in tables)))
    for i, (m, t) in enumerate(zip(models, tables, strict=True)):
        F[i, : m.F.shape[0], : m.F.shape[1]] = m.F
        rate[i, : t.rate.shape[0], : t.r.size, : t.u.size] = t.rate
    return _Models(
        names=names,
        params=np.array([[m.line_length_cm, 0.5 * m.capsule_length_cm - m.capsule_radius_cm,
                          m.capsule_radius_cm, float(m.F_is_symmetric),
                          m.dose_rate_constant / reference_geometry(m.line_length_cm),
                          (0.5 * m.capsule_length_cm) ** 2 * (1.0 + 1e-9)]
                         for m in models]),
        g_r=_pad([m.g_r_cm for m in models]),
        g=_pad([m.g_L for m in models], 1.0),
        g_n=np.array([len(m.g_L) for m in models], np.int64),
        F_r=_pad([m.F_r_cm for m in models]),
        F_t=_pad([m.F_theta_deg for m in models]),
        F=F,
        F_shape=np.array([m.F.shape for m in models], np.int64),
        phi_r=_pad(phis),
        phi=_pad(phiv, 1.0),
        phi_n=np.array([len(p) for p in phis], np.int64),
        tab_r=_pad([t.r for t in tables]),
        tab_r_ih=_pad([_inverse_widths(t.r) for t in tables], 0.0),
        tab_r_find=_pad([t.r_find for t in tables], 0, np.int32),
        tab_u=_pad([t.u for t in tables]),
        tab_u_ih=_pad([_inverse_widths(t.u) for t in tables], 0.0),
        tab_u_find=_pad([t.u_find for t in tables], 0, np.int32),
        tab_inv_w=np.array([[t.r_inv_w, t.u_inv_w] for t in tables]),
        tab_rate=rate,
        tab_rate_1d=_pad([t.rate_1d for t in tables], np.nan),
    )


def _seeds(plan: Plan, names: tuple[str, ...]) -> np.ndarray:
    """(n, 8): position (mm), direction, S_K (U), model index."""
    index = {name: i for i, name in enumerate(names)}
    return np.array([[*s.position_mm, *s.direction, s.strength_U, index[s.model]]
                     for s in plan.seeds], float).reshape(-1, 8)


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


@numba.njit(cache=True, inline="always")
def _cell(x, nodes, find, inv_w):
    """Index i of the table cell nodes[i] <= x < nodes[i+1] for nodes[0] <= x < nodes[-1]: the
    finder's cell for x's bin, then at most one step (one node per bin), without a branch."""
    i = np.uint64(find[np.uint64((x - nodes[_0]) * inv_w)])
    return i + np.uint64(x >= nodes[i + _1])


@numba.njit(cache=True, inline="always")
def _rho(dx, dy, dz, ux, uy, uz):
    """Distance (cm) from the seed axis: |d x u|, exact zero on the axis (as the reference)."""
    cx, cy, cz = dy * uz - dz * uy, dz * ux - dx * uz, dx * uy - dy * ux
    return np.sqrt(cx * cx + cy * cy + cz * cz)


@numba.njit(cache=True, inline="always")
def _formula(m, r, r2, z, rho, two_d, params, g_r, g, g_n, F_r, F_t, F, F_shape, phi_r, phi,
             phi_n):
    """Unit dose rate (cGy h^-1 U^-1) of model m from the TG-43 formulas (outside the table)."""
    L = params[m, 0]
    grad = _lin(r, g_r[m], g[m], g_n[m], True)
    if two_d:
        if rho <= 1e-12 * r:
            G = 1.0 / (r2 - 0.25 * L * L)
        else:
            G = np.arctan2(L * rho, r2 - 0.25 * L * L) / (L * rho)
        t = np.arctan2(rho, z) * (180.0 / np.pi)
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
    return params[m, 4] * G * grad * ani


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _kernel(points, seeds, two_d, params, g_r, g, g_n, F_r, F_t, F, F_shape, phi_r, phi, phi_n,
            tab_r, tab_r_ih, tab_r_find, tab_u, tab_u_ih, tab_u_find, tab_inv_w, tab_rate,
            tab_rate_1d, r_lo, r_hi, out, inside):
    # Points outer, seeds inner: one point's coordinates stay in registers; no temporaries.
    for p in numba.prange(points.shape[0]):
        total = 0.0
        for s in range(seeds.shape[0]):
            m = np.uint64(seeds[s, 7])
            dx = (points[p, 0] - seeds[s, 0]) * 0.1
            dy = (points[p, 1] - seeds[s, 1]) * 0.1
            dz = (points[p, 2] - seeds[s, 2]) * 0.1
            ux, uy, uz = seeds[s, 3], seeds[s, 4], seeds[s, 5]
            z = dx * ux + dy * uy + dz * uz
            r2 = dx * dx + dy * dy + dz * dz
            # Only a point within the capsule's reach can be inside: the test itself is the
            # reference's arithmetic (identical flags), skipped for the others.
            if r2 < params[m, 5]:
                rho = _rho(dx, dy, dz, ux, uy, uz)
                az = max(abs(z) - params[m, 1], 0.0)
                if az * az + rho * rho < params[m, 2] * params[m, 2]:
                    total = np.nan
                    inside[p] = True
                    break
            r = np.sqrt(r2)
            if r < r_lo or r >= r_hi:
                total += seeds[s, 6] * _formula(m, r, r2, z, _rho(dx, dy, dz, ux, uy, uz), two_d,
                                                params, g_r, g, g_n, F_r, F_t, F, F_shape, phi_r,
                                                phi, phi_n)
                continue
            i = _cell(r, tab_r[m], tab_r_find[m], tab_inv_w[m, _0])
            a = (r - tab_r[m, i]) * tab_r_ih[m, i]
            if two_d:
                # rho from r^2 - z^2, not |d x u|: cheaper; near the axis it is off by about
                # 1e-8 r, which moves u by as little (the table is smooth there).
                u = min(np.sqrt(max(r2 - z * z, 0.0)) / (r + abs(z)), _U_MAX)
                j = _cell(u, tab_u[m], tab_u_find[m], tab_inv_w[m, _1])
                b = (u - tab_u[m, j]) * tab_u_ih[m, j]
                h = _1 if params[m, 3] == 0.0 and z < 0.0 else _0
                value = ((1.0 - a) * ((1.0 - b) * tab_rate[m, h, i, j]
                                      + b * tab_rate[m, h, i, j + _1])
                         + a * ((1.0 - b) * tab_rate[m, h, i + _1, j]
                                + b * tab_rate[m, h, i + _1, j + _1]))
            else:
                value = (1.0 - a) * tab_rate_1d[m, i] + a * tab_rate_1d[m, i + _1]
            total += seeds[s, 6] * value / r2
        out[p] = total


def set_threads(n: int) -> int:
    """Threads of the compiled kernel in the calling thread (e.g. 1 per MPI rank on a 2-core
    machine); returns the previous count. At most NUMBA_NUM_THREADS."""
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    return previous


def dose_rate(points_mm, plan: Plan, formalism: Formalism = "2d") -> PointDose:
    """Initial dose rate (cGy/h) of the plan at points (N, 3) in mm; NaN inside a capsule.
    Within TABLE_RTOL of `dose_rate_reference` (per-model tables, module comment above)."""
    points = _points(points_mm)
    _check_plan(plan)
    _check_formalism(formalism, [load_seed_model(s.model) for s in plan.seeds])
    k = _models(tuple(sorted({s.model for s in plan.seeds})))
    out = np.empty(len(points))
    inside = np.zeros(len(points), dtype=bool)
    _kernel(points, _seeds(plan, k.names), formalism == "2d", k.params, k.g_r, k.g, k.g_n, k.F_r,
            k.F_t, k.F, k.F_shape, k.phi_r, k.phi, k.phi_n, k.tab_r, k.tab_r_ih, k.tab_r_find,
            k.tab_u, k.tab_u_ih, k.tab_u_find, k.tab_inv_w, k.tab_rate, k.tab_rate_1d,
            TABLE_R_CM[0], TABLE_R_CM[1], out, inside)
    return PointDose(out, inside)
