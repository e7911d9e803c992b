"""Seeds embedded in a fixed mesh: each cell's titanium volume fraction and homogenised moduli.

A conforming model meshes every capsule (spinefe.geometry.occ), so every new plan needs a new mesh.
Here the mesh has no seeds: a plan sets, in each cell, the volume fraction phi of titanium that
the capsules occupy, and the cell takes the moduli of a titanium / host mixture. A new plan then
changes a material field, not the mesh (spinefe.planning.evaluation reuses the assembled operator).

Homogenisation rules, in the bulk (K) and shear (G) moduli of the host m and titanium i:
- `voigt`: K = (1 - phi) K_m + phi K_i (uniform strain; an upper bound);
- `reuss`: 1 / K = (1 - phi) / K_m + phi / K_i (uniform stress; a lower bound);
- `mori_tanaka` (default): spherical inclusions in a continuous host (Mori & Tanaka, Acta Metall
  21:571, 1973, in the explicit form of Benveniste, Mech Mater 6:147, 1987). For inclusions stiffer
  than the host it equals the Hashin-Shtrikman lower bound. It fits the microstructure: isolated
  capsules in a host that stays connected around them, so the host carries the load between
  them. Voigt gives a cell of 10 % titanium 14 000 times the stiffness of the 1 MPa lesion;
  Reuss ignores the titanium altogether (docs/planning.md measures all three against the
  conforming model).
All three are exact at phi = 0 (the host) and phi = 1 (titanium) and ordered reuss <= mori_tanaka
<= voigt in between.

The fraction is measured by sampling each capsule (a cylinder of its diameter and length) with
points of equal volume and summing, per cell, the volume of the points it contains
(`TitaniumFraction`). Written by hand: dolfinx locates the points, no library computes the
intersection volumes of cylinders and tetrahedra.
"""

from __future__ import annotations

import dolfinx.geometry
import numpy as np

RULES = ("voigt", "reuss", "mori_tanaka")


def bulk_shear(E, nu):
    """Bulk and shear moduli (MPa) from Young's modulus (MPa) and Poisson's ratio."""
    return E / (3.0 * (1.0 - 2.0 * nu)), E / (2.0 * (1.0 + nu))


def young_poisson(K, G):
    """Young's modulus (MPa) and Poisson's ratio from bulk and shear moduli (MPa)."""
    return 9.0 * K * G / (3.0 * K + G), (3.0 * K - 2.0 * G) / (2.0 * (3.0 * K + G))


def homogenise(rule: str, phi, E_host, nu_host, E_ti: float, nu_ti: float):
    """Effective (E in MPa, nu) of host cells holding a titanium volume fraction phi (0..1)."""
    if rule not in RULES:
        raise ValueError(f"homogenisation: {rule!r} is not one of {', '.join(RULES)}")
    phi = np.asarray(phi, dtype=float)
    Km, Gm = bulk_shear(np.asarray(E_host, float), np.asarray(nu_host, float))
    Ki, Gi = bulk_shear(E_ti, nu_ti)
    if rule == "voigt":
        K, G = Km + phi * (Ki - Km), Gm + phi * (Gi - Gm)
    elif rule == "reuss":
        K = 1.0 / ((1.0 - phi) / Km + phi / Ki)
        G = 1.0 / ((1.0 - phi) / Gm + phi / Gi)
    else:
        K = Km + phi * (Ki - Km) * (3 * Km + 4 * Gm) / (3 * Km + 4 * Gm + 3 * (1 - phi) * (Ki - Km))
        zeta = Gm * (9 * Km + 8 * Gm) / (6 * (Km + 2 * Gm))
        G = Gm + phi * (Gi - Gm) * (Gm + zeta) / (Gm + zeta + (1 - phi) * (Gi - Gm))
    return young_poisson(K, G)


class TitaniumFraction:
    """Titanium volume fraction of the owned cells of one mesh that may hold seeds.

    Each capsule is sampled by a lattice of points of equal volume (`capsule_points`); a cell's
    fraction is the volume of the points it contains over its own volume. The capsule volume is
    thus conserved exactly (the points of a capsule that leaves the cells are counted missing).
    """

    def __init__(self, mesh, cells: np.ndarray):
        self.mesh, self.cells = mesh, np.unique(np.asarray(cells, dtype=np.int32))  # sorted
        self.tree = dolfinx.geometry.bb_tree(mesh, 3, entities=self.cells)
        x = mesh.geometry.x[mesh.geometry.dofmaps[0][self.cells]]  # (n, 4, 3) vertices
        J = np.transpose(x[:, 1:] - x[:, :1], (0, 2, 1))  # columns: edge vectors
        self.volume = np.abs(np.linalg.det(J)) / 6.0
        self.origin, self.inverse = x[:, 0], np.linalg.inv(J)

    def __call__(self, positions_mm, directions, diameter_mm: float,
                 length_mm: float) -> tuple[np.ndarray, np.ndarray]:
        """Fraction phi per cell of `cells`, and per seed the capsule volume (mm^3) found in
        them (rank-local: sum over ranks)."""
        points, weight = capsule_points(positions_mm, directions, diameter_mm, length_mm)
        n_seeds = len(positions_mm)
        point, cell = self._containing_cell(points)
        hit = np.zeros(len(points), dtype=bool)
        hit[point] = True
        titanium = np.zeros(len(self.cells))
        np.add.at(titanium, cell, weight)
        seed = np.repeat(np.arange(n_seeds), len(points) // max(n_seeds, 1))
        found = np.bincount(seed[hit], minlength=n_seeds) * weight
        return np.minimum(titanium / self.volume, 1.0), found

    def _containing_cell(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the points that lie in a cell and that cell's index in `cells` (the first
        one for a point on a shared face). Bounding-box candidates from dolfinx, then one
        vectorised barycentric test (dolfinx's exact test runs pair by pair)."""
        candidates = dolfinx.geometry.compute_collisions_points(self.tree, points)
        counts = np.diff(candidates.offsets)
        point = np.repeat(np.arange(len(points)), counts)
        cell = np.searchsorted(self.cells, candidates.array)
        lam = np.einsum("nij,nj->ni", self.inverse[cell], points[point] - self.origin[cell])
        inside = (lam.min(axis=1) >= -1e-12) & (lam.sum(axis=1) <= 1.0 + 1e-12)
        point, cell = point[inside], cell[inside]
        first = np.unique(point, return_index=True)[1]
        return point[first], cell[first]


def capsule_points(positions_mm, directions, diameter_mm: float, length_mm: float,
                   spacing_mm: float = 0.2, rings: int = 3, around: int = 8):
    """Points filling each capsule (cylinder) with equal volumes: slices `spacing_mm` thick,
    `rings` rings of equal area with `around` points each; returns (n_seeds * k, 3) points, seed
    by seed, and the volume (mm^3) of one point."""
    r = 0.5 * diameter_mm
    n_axial = max(1, int(np.ceil(length_mm / spacing_mm)))
    t = (np.arange(n_axial) + 0.5) / n_axial * length_mm - 0.5 * length_mm
    radius = r * np.sqrt((np.arange(rings) + 0.5) / rings)  # centres of equal-area rings
    angle = (np.arange(around) + 0.5) / around * 2.0 * np.pi
    ring = np.stack([np.outer(radius, np.cos(angle)), np.outer(radius, np.sin(angle))], -1)
    ring = ring.reshape(-1, 2)
    out = []
    for p, d in zip(np.asarray(positions_mm, float), np.asarray(directions, float), strict=True):
        d = d / np.linalg.norm(d)
        e1 = np.cross(d, [1.0, 0.0, 0.0] if abs(d[0]) < 0.9 else [0.0, 1.0, 0.0])
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(d, e1)
        section = ring[:, :1] * e1 + ring[:, 1:] * e2
        out.append((p + t[:, None, None] * d + section[None, :, :]).reshape(-1, 3))
    points = np.concatenate(out) if out else np.zeros((0, 3))
    return points, np.pi * r**2 * length_mm / (n_axial * len(ring))
