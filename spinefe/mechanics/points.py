"""Points inside a distributed mesh coupled to the displacement through P1 interpolation weights.

Springs (ligament fibres) and node-to-surface contact act at points that are not mesh vertices. A
point's displacement is u(p) = sum_i w_i u_i over the four vertices of the owned cell that contains
it (w = barycentric coordinates). `locate` finds, for every point, its cell on exactly one rank
and returns the global (unrolled, per component) dof indices and weights on every rank, so any
rank can insert a coupling into the assembled matrix (PETSc moves off-process rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import dolfinx
import numpy as np
from dolfinx import fem
from mpi4py import MPI


@dataclass(frozen=True)
class PointCoupling:
    """Per point: global dof indices (n, 4, 3) (vertex, component) and weights (n, 4)."""

    dofs: np.ndarray
    weights: np.ndarray

    def displacement(self, u_global: np.ndarray) -> np.ndarray:
        """u(p) (n, 3) from the global displacement vector (unrolled, as PETSc numbers it)."""
        return np.einsum("nv,nvc->nc", self.weights, u_global[self.dofs])


def locate(V: fem.FunctionSpace, points_mm: np.ndarray) -> PointCoupling:
    """Cells, dofs and P1 weights of `points_mm` (same array on every rank); collective.

    Raises ValueError naming the first point that lies in no cell of the mesh.
    """
    mesh = V.mesh
    comm: MPI.Comm = mesh.comm
    points = np.ascontiguousarray(points_mm, dtype=np.float64).reshape(-1, 3)
    n_owned = mesh.topology.index_map(3).size_local
    tree = dolfinx.geometry.bb_tree(mesh, 3, entities=np.arange(n_owned, dtype=np.int32))
    candidates = dolfinx.geometry.compute_collisions_points(tree, points)
    colliding = dolfinx.geometry.compute_colliding_cells(mesh, candidates, points)
    bs = V.dofmap.index_map_bs
    found = np.full(len(points), -1, dtype=np.int64)
    dofs = np.zeros((len(points), 4, bs), dtype=np.int64)
    weights = np.zeros((len(points), 4))
    for i in range(len(points)):
        cells = colliding.links(i)
        if len(cells) == 0:
            continue
        cell = cells[0]
        x = mesh.geometry.x[mesh.geometry.dofmaps[0][cell]]
        lam = np.linalg.solve((x[1:] - x[0]).T, points[i] - x[0])
        weights[i] = np.concatenate([[1.0 - lam.sum()], lam])
        blocks = V.dofmap.cell_dofs(cell)
        global_blocks = V.dofmap.index_map.local_to_global(blocks.astype(np.int32))
        dofs[i] = global_blocks[:, None] * bs + np.arange(bs)[None, :]
        found[i] = comm.rank
    # One owner per point: the lowest rank that found it.
    owner = np.empty_like(found)
    comm.Allreduce(np.where(found >= 0, found, comm.size), owner, op=MPI.MIN)
    missing = np.flatnonzero(owner == comm.size)
    if missing.size:
        raise ValueError(f"point {points[missing[0]].tolist()} (mm) lies outside the mesh")
    mine = owner == comm.rank
    all_dofs, all_weights = np.empty_like(dofs), np.empty_like(weights)
    comm.Allreduce(np.where(mine[:, None, None], dofs, 0), all_dofs, op=MPI.SUM)
    comm.Allreduce(np.where(mine[:, None], weights, 0.0), all_weights, op=MPI.SUM)
    return PointCoupling(all_dofs, all_weights)


def nearest_node(mesh, points_mm: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mesh node of `cells` (local indices) closest to each point (same array on every
    rank): coordinates (n, 3) and distances (n,) in mm; collective. Attachment landmarks on
    a curved bone surface lie slightly outside the faceted mesh; their nearest node is inside."""
    points = np.asarray(points_mm, dtype=np.float64).reshape(-1, 3)
    nodes = np.unique(mesh.geometry.dofmaps[0][np.asarray(cells, dtype=np.int32)].ravel())
    x = mesh.geometry.x[nodes]
    best = np.full(len(points), np.inf)
    where = np.zeros((len(points), 3))
    if len(x):
        for i, p in enumerate(points):
            d = np.linalg.norm(x - p, axis=1)
            best[i], where[i] = d.min(), x[d.argmin()]
    comm = mesh.comm
    gathered = comm.allgather((best, where))
    dist = np.array([g[0] for g in gathered])  # (ranks, n)
    pick = dist.argmin(axis=0)
    coords = np.array([gathered[r][1][i] for i, r in enumerate(pick)])
    if not np.all(np.isfinite(dist.min(axis=0))):
        raise ValueError("nearest_node: no node in the given cells")
    return coords, dist.min(axis=0)
