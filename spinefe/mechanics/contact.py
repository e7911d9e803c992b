"""Contact between the segment's surfaces (the facet joints; the L4 articular tips on the L5
lamina): node-to-surface augmented Lagrangian with the initial gap, and Coulomb friction.

Every vertex of the L4 (slave) surface of a pair (a joint's cartilage, a tip's lower face) is
paired, in the initial geometry, with its normal projection on the facing L5 (master) surface
(small sliding: the partner point and the normal n, pointing from the master towards the slave,
are fixed). With du = u(slave) -
u(master) the gap is g = g0 + n . du. Normal law: p = <lambda - k_n g> with k_n = eps A, A the
vertex's share of the slave area, eps (N/mm^3) the penalty and lambda the augmented-Lagrangian
multiplier (0 at the start: a pure penalty, penetration = pressure / eps).
Friction: a tangential penalty k_t = eps A with a return mapping onto the Coulomb cone
|t| <= mu N (Simo & Laursen, Comput Struct 42:97, 1992):
t_trial = k_t (P du - s), P = I - n n^T, s the converged slip; stick when |t_trial| <= mu N,
else slip with t = mu N t_trial / |t_trial|. Within one Newton solve the normal force N of the
limit is held fixed; between solves it is set to the current p (see `update`) until no node's
changes by more than FRICTION_LIMIT_RTOL of the largest. With N fixed the law has a potential
and its tangent, in slip mu N k_t / |t_trial| (P - e e^T) with e the slip direction, is
symmetric (CG applies) and exact.
(Coupling N = p within the solve adds the non-symmetric term -mu k_n e n^T; without it, Newton
chattered between sticking and sliding states on axial rotation.)
Augmented Lagrangian (Simo & Laursen 1992): between Newton solves lambda <- p (Uzawa) until no
node's force would change by more than k_n times a tolerance (for a closed node, its penetration;
for an open node, the gap its old multiplier held), so the penalty can stay moderate (stiffer
penalties made Newton chatter between open and closed states) while the penetration meets the
tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

import dolfinx
import numpy as np
from dolfinx import fem

from spinefe.geometry.mesh import Model
from spinefe.mechanics.pairs import PointPairs
from spinefe.mechanics.points import locate

#: Distance (mm) by which a contact point is moved into its own body so that it is found in a
#: cell of that body and not of the facing one.
_INSIDE_MM = 1e-6


def facet_triangles(mesh, facets: np.ndarray) -> np.ndarray:
    """Vertex coordinates (n, 3, 3) of the owned ones of `facets`, gathered on all ranks."""
    facets = np.asarray(facets, dtype=np.int32)
    facets = facets[facets < mesh.topology.index_map(2).size_local]
    mesh.topology.create_connectivity(2, 3)
    nodes = dolfinx.mesh.entities_to_geometry(mesh, 2, facets)
    tri = mesh.geometry.x[nodes].reshape(-1, 3, 3)
    return np.concatenate(mesh.comm.allgather(tri))


def surface_triangles(model: Model, name: str) -> np.ndarray:
    """Triangles (n, 3, 3) of the tagged surface `name`, gathered on all ranks."""
    return facet_triangles(model.mesh, model.facet_tags.find(model.tag(name)))


@dataclass(frozen=True)
class ContactGeometry:
    """Slave points and their master projections (mm), normals, initial gaps (mm), areas (mm2)."""

    slave_mm: np.ndarray
    master_mm: np.ndarray
    normals: np.ndarray
    gap_mm: np.ndarray
    area_mm2: np.ndarray
    unpaired: int  # slave vertices whose normal projection misses the master surface


def pair_surfaces(slave: np.ndarray, master: np.ndarray) -> ContactGeometry:
    """Pair the vertices of slave triangles (n, 3, 3) with their normal projections on the master
    triangles; normals are oriented from the master surface towards the slave surface."""
    points, inverse = np.unique(slave.reshape(-1, 3).round(9), axis=0, return_inverse=True)
    tri_area = 0.5 * np.linalg.norm(np.cross(slave[:, 1] - slave[:, 0], slave[:, 2] - slave[:, 0]),
                                    axis=1)
    area = np.bincount(inverse.ravel(), weights=np.repeat(tri_area / 3.0, 3), minlength=len(points))
    a, b, c = master[:, 0], master[:, 1], master[:, 2]
    n = np.cross(b - a, c - a)
    n /= np.linalg.norm(n, axis=1)[:, None]
    towards_slave = points.mean(axis=0) - master.reshape(-1, 3).mean(axis=0)
    n *= np.where(n @ towards_slave < 0, -1.0, 1.0)[:, None]
    # Signed distances (points x triangles) and barycentric coordinates of the projections.
    d = np.einsum("tc,ptc->pt", n, points[:, None, :] - a[None])
    q = points[:, None, :] - d[..., None] * n[None]
    e0, e1, e2 = b - a, c - a, q - a[None]
    d00, d01, d11 = (e0 * e0).sum(1), (e0 * e1).sum(1), (e1 * e1).sum(1)
    d20, d21 = (e2 * e0).sum(2), (e2 * e1).sum(2)
    den = d00 * d11 - d01 * d01
    v = (d11 * d20 - d01 * d21) / den
    w = (d00 * d21 - d01 * d20) / den
    inside = (v >= -1e-9) & (w >= -1e-9) & (v + w <= 1 + 1e-9)
    dist = np.where(inside, np.abs(d), np.inf)
    best = dist.argmin(axis=1)
    ok = np.isfinite(dist[np.arange(len(points)), best])
    idx = np.flatnonzero(ok)
    t = best[ok]
    return ContactGeometry(
        slave_mm=points[idx],
        master_mm=q[idx, t],
        normals=n[t],
        gap_mm=d[idx, t],
        area_mm2=area[idx],
        unpaired=int((~ok).sum()),
    )


#: The normal force N of a node's Coulomb limit mu N is refreshed between Newton solves until no
#: node's would change by more than this fraction of the joint's largest nodal force: the
#: friction force then meets mu N to about 1e-3 (the block test, tests/test_nonlinear.py).
#: Refreshing on any change (as before) re-solved each load step 6-9 times, the last ones
#: without effect on the results (1e-7 relative on the flexion rotation, docs/nonlinear.md).
FRICTION_LIMIT_RTOL = 1e-3


class SurfaceContact:
    """Pair law (mechanics.pairs) of one contact pair of surfaces (a facet joint, an articular
    tip over the lamina): augmented-Lagrangian contact, Coulomb friction."""

    def __init__(self, geometry: ContactGeometry, penalty_N_mm3: float, friction: float,
                 penetration_tol_mm: float = np.inf, step_pressure_MPa: float = 10.0) -> None:
        self.geometry = geometry
        self.multiplier = np.zeros(len(geometry.gap_mm))  # augmented-Lagrangian normal force (N)
        self.penetration_tol_mm = penetration_tol_mm
        # Penetration a Newton update may reach from an open state (see step_limit): that of a
        # pressure of the order of facet joint pressures (a few MPa, spine-mechanics.md).
        self.step_penetration_mm = step_pressure_MPa / penalty_N_mm3
        self.n = geometry.normals
        self.g0 = geometry.gap_mm
        self.kn = penalty_N_mm3 * geometry.area_mm2
        self.kt = self.kn.copy()
        self.mu = friction
        self.slip = np.zeros_like(self.n)  # converged slip s (mm)
        self.limit_normal_N = np.zeros(len(self.g0))  # N of the Coulomb limit mu N
        self._committed = (self.multiplier, self.limit_normal_N, self.slip)

    def _state(self, du: np.ndarray):
        n = self.n
        g = self.g0 + np.einsum("nc,nc->n", du, n)
        trial = self.multiplier - self.kn * g
        closed = trial > 0.0
        p = np.maximum(trial, 0.0)  # normal force (N)
        du_t = du - np.einsum("nc,nc->n", du, n)[:, None] * n
        t_trial = self.kt[:, None] * (du_t - self.slip)
        norm = np.linalg.norm(t_trial, axis=1)
        limit = self.mu * self.limit_normal_N * closed
        sliding = closed & (norm > limit)
        scale = np.where(sliding, limit / np.where(norm > 0, norm, 1.0), 1.0) * closed
        return g, closed, p, t_trial * scale[:, None], norm, sliding, scale

    def forces(self, du: np.ndarray, first: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """first: the tangent of the first Newton iteration of a load step, which treats every pair
        as closed in the normal direction. From an open state the plain tangent lets the
        first step overshoot the gap by up to the whole increment, deep into the penalty,
        and Newton stalls (measured on axial rotation); an open pair is released at the next
        iteration."""
        g, closed, p, t, norm, sliding, scale = self._state(du)
        n = self.n
        nn = n[:, :, None] * n[:, None, :]
        P = np.eye(3)[None] - nn
        t_norm = np.linalg.norm(t, axis=1)
        e = t / np.where(t_norm > 0, t_norm, 1.0)[:, None]  # slip direction
        ee = e[:, :, None] * e[:, None, :]
        K = (self.kn * (closed | first))[:, None, None] * nn
        K += (self.kt * scale)[:, None, None] * (P - sliding[:, None, None] * ee)
        return -p[:, None] * n + t, K

    def update(self, du: np.ndarray) -> bool:
        """Between Newton solves: the augmented-Lagrangian (Uzawa) update lambda <- p if that
        changes a node's force by more than k_n times the tolerance, and N of the Coulomb limit
        set to p if that changes a node's by more than FRICTION_LIMIT_RTOL of the largest; True
        if either changed."""
        _, _, p, *_ = self._state(du)
        change_mm = np.abs(p - self.multiplier) / self.kn
        augment = change_mm.max(initial=0.0) > self.penetration_tol_mm
        if augment:
            self.multiplier = p
        refresh = self.mu > 0.0 and (np.abs(p - self.limit_normal_N).max(initial=0.0)
                                     > FRICTION_LIMIT_RTOL * p.max(initial=0.0))
        if refresh:
            self.limit_normal_N = p
        return bool(augment or refresh)

    def fixed(self) -> tuple[np.ndarray, np.ndarray]:
        """The multipliers and the normal forces of the Coulomb limits (N)."""
        return self.multiplier.copy(), self.limit_normal_N.copy()

    def hold(self, state: tuple[np.ndarray, np.ndarray]) -> None:
        self.multiplier, self.limit_normal_N = (a.copy() for a in state)

    def step_limit(self, du: np.ndarray, ddu: np.ndarray) -> float:
        """Shorten a Newton update that would carry an open pair deeper than
        `step_penetration_mm` into the facing surface. An open pair has no normal stiffness in
        the tangent, so the update sees a free joint and overshoots the gap by up to the whole
        rotation (measured: several mm in axial rotation, the residual rising 1000-fold and
        Newton stalling); stopped at the surface, the pair is closed, with stiffness, in the
        next iteration."""
        g = self.g0 + np.einsum("nc,nc->n", du, self.n)
        dg = np.einsum("nc,nc->n", ddu, self.n)
        closing = self.multiplier / self.kn  # the gap below which a pair is closed
        allowed = closing - self.step_penetration_mm
        crossing = (g >= closing) & (g + dg < allowed)
        if not crossing.any():
            return 1.0
        return float(np.min((g[crossing] - allowed[crossing]) / -dg[crossing]))

    def commit(self, du: np.ndarray) -> None:
        _, closed, _, t, *_ = self._state(du)
        du_t = du - np.einsum("nc,nc->n", du, self.n)[:, None] * self.n
        self.slip = np.where(closed[:, None], du_t - t / self.kt[:, None], du_t)
        self._committed = (self.multiplier, self.limit_normal_N, self.slip)

    def restore(self) -> None:
        """Multipliers, friction limits and slip of the last commit (a failed step's retry)."""
        self.multiplier, self.limit_normal_N, self.slip = self._committed

    def report(self, du: np.ndarray) -> dict:
        """Joint force (N), peak pressure (MPa), penetration (mm), friction force (N), nodes."""
        g, closed, p, t, _, sliding, _ = self._state(du)
        normal = (p[:, None] * self.n).sum(axis=0)
        return {
            "contact_force_N": float(np.linalg.norm(normal)),
            "contact_force_vector_N": normal.tolist(),
            "friction_force_N": float(np.linalg.norm(t.sum(axis=0))),
            "friction_force_vector_N": t.sum(axis=0).tolist(),
            "peak_pressure_MPa": float((p / self.geometry.area_mm2).max(initial=0.0)),
            "penetration_mm_max": float(np.maximum(-g, 0.0).max(initial=0.0)),
            "initial_gap_mm_min": float(self.g0.min(initial=np.inf)),
            "nodes": int(len(g)),
            "nodes_in_contact": int(closed.sum()),
            "nodes_sliding": int(sliding.sum()),
        }


def contact_pairs(V: fem.FunctionSpace, geometry: ContactGeometry, penalty_N_mm3: float,
                  friction: float, penetration_tol_mm: float = np.inf) -> PointPairs:
    """Point pairs of one contact pair of surfaces on the displacement space V; collective."""
    upper = locate(V, geometry.slave_mm + _INSIDE_MM * geometry.normals)
    lower = locate(V, geometry.master_mm - _INSIDE_MM * geometry.normals)
    return PointPairs(upper, lower, SurfaceContact(geometry, penalty_N_mm3, friction,
                                                   penetration_tol_mm))
