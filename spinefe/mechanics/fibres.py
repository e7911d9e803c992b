"""Collagen fibre directions of the annulus fibrosus, built from the annulus's own mesh.

The lamellae of the annulus run parallel to its outer surface, and their fibres wind around the
disc at +-angle to the transverse plane, alternating from lamella to lamella (Marchand & Ahmed,
Spine 15:402, 1990). Each annulus cell takes the circumferential direction t = e_z x n of the
nearest facet of the annulus's outer surface (n its outward normal, projected on the transverse
plane) and the two families a = cos(angle) t +- sin(angle) e_z, both in every cell (the crossed
plies homogenised, as in the HGO law, mechanics.laws.hgo). Taking the surface from the mesh
rather than from the parametric geometry keeps the construction valid for image-based discs.
e_z is the segment's cranio-caudal axis; the disc's wedge (a few degrees) is not followed.
"""

from __future__ import annotations

import dolfinx
import numpy as np
from dolfinx import fem
from scipy.spatial import cKDTree

from spinefe.common import regions as R
from spinefe.geometry.mesh import Model

E_Z = np.array([0.0, 0.0, 1.0])


def _outer_facets(model: Model, annulus: np.ndarray):
    """Midpoints and outward unit normals (projected on the transverse plane) of this rank's
    exterior facets of the annulus whose normal is not mostly axial."""
    mesh = model.mesh
    tdim = 3
    mesh.topology.create_connectivity(tdim - 1, tdim)
    mesh.topology.create_connectivity(tdim, tdim - 1)
    exterior = dolfinx.mesh.exterior_facet_indices(mesh.topology)
    in_annulus = np.zeros(mesh.topology.index_map(tdim).size_local
                          + mesh.topology.index_map(tdim).num_ghosts, dtype=bool)
    in_annulus[annulus] = True
    f2c = mesh.topology.connectivity(tdim - 1, tdim)
    facets = np.array([f for f in exterior if in_annulus[f2c.links(f)[0]]], dtype=np.int32)
    if facets.size == 0:
        return np.zeros((0, 3)), np.zeros((0, 3))
    x = mesh.geometry.x
    nodes = dolfinx.mesh.entities_to_geometry(mesh, tdim - 1, facets)
    p = x[nodes]  # (n, 3 vertices, 3)
    normal = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    cells = np.array([f2c.links(f)[0] for f in facets], dtype=np.int32)
    inward = dolfinx.mesh.compute_midpoints(mesh, tdim, cells) - p.mean(axis=1)
    normal *= -np.sign(np.einsum("ij,ij->i", normal, inward))[:, None]
    normal[:, 2] = 0.0
    length = np.linalg.norm(normal, axis=1)
    keep = length > 0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1)
    return p.mean(axis=1)[keep], normal[keep] / length[keep, None]


def fibre_directions(model: Model, angle_deg: float) -> tuple[fem.Function, fem.Function]:
    """The two fibre families (DG0 unit vectors, zero outside the annulus) at +-angle_deg to the
    transverse plane; collective. ValueError when the model has no annulus outer surface."""
    mesh = model.mesh
    comm = mesh.comm
    cells = model.cell_tags.find(model.tag(R.ANNULUS)) if R.ANNULUS in model.names \
        else np.zeros(0, dtype=np.int32)
    points, normals = _outer_facets(model, cells)
    gathered = comm.allgather((points, normals))
    points = np.concatenate([g[0] for g in gathered])
    normals = np.concatenate([g[1] for g in gathered])
    if len(points) == 0:
        raise ValueError("materials.annulus_fibrosus.fibres: the model has no annulus outer "
                         "surface to orient the fibres on")
    mid = dolfinx.mesh.compute_midpoints(mesh, 3, cells)
    _, nearest = cKDTree(points).query(mid)
    t = np.cross(E_Z, normals[nearest])
    t /= np.linalg.norm(t, axis=1)[:, None]
    angle = np.radians(angle_deg)
    V = fem.functionspace(mesh, ("DG", 0, (3,)))
    out = []
    for sign, name in ((1.0, "fibre_plus"), (-1.0, "fibre_minus")):
        a = fem.Function(V, name=name)
        values = a.x.array.reshape(-1, 3)
        values[V.dofmap.list[cells].ravel()] = np.cos(angle) * t + sign * np.sin(angle) * E_Z
        a.x.scatter_forward()
        out.append(a)
    return out[0], out[1]
