"""Box meshes, cell-wise materials, boundary planes and MPI reductions for the solver tests."""

from __future__ import annotations

import numpy as np
from mpi4py import MPI

import spinefe  # noqa: F401  (first: spinefe/__init__ loads the PETSc of DOLFINx)
import dolfinx.mesh

from spinefe.mechanics.materials import MaterialFields, piecewise_fields

COMM = MPI.COMM_WORLD


def box(p1, cells) -> dolfinx.mesh.Mesh:
    """Tetrahedral box [0, p1] with `cells` subdivisions per axis."""
    return dolfinx.mesh.create_box(
        COMM, [np.zeros(3), np.asarray(p1, dtype=float)], cells, dolfinx.mesh.CellType.tetrahedron
    )


def num_cells(mesh) -> int:
    imap = mesh.topology.index_map(3)
    return imap.size_local + imap.num_ghosts


def midpoints(mesh) -> np.ndarray:
    return dolfinx.mesh.compute_midpoints(mesh, 3, np.arange(num_cells(mesh), dtype=np.int32))


def materials(mesh, E, nu) -> MaterialFields:
    """Cell-wise E and nu; E and nu are numbers or functions of the cell midpoints (n, 3)."""
    mid = midpoints(mesh)
    E_nu = np.empty((len(mid), 2))
    E_nu[:, 0] = E(mid) if callable(E) else E
    E_nu[:, 1] = nu(mid) if callable(nu) else nu
    return piecewise_fields(mesh, E_nu)


def plane(mesh, axis: int, value: float) -> np.ndarray:
    """Boundary facets on the plane x[axis] = value."""
    return dolfinx.mesh.locate_entities_boundary(
        mesh, 2, lambda x: np.isclose(x[axis], value, rtol=0.0, atol=1e-9)
    )


def symmetry_rollers(mesh, axes=(0, 1, 2)) -> tuple:
    """Rollers on the coordinate planes x[axis] = 0."""
    return tuple((plane(mesh, axis, 0.0), axis) for axis in axes)


def total(x, op=MPI.SUM):
    """Element-wise reduction over all ranks of a number or array (float)."""
    x = np.array(x, dtype=float)  # a copy, contiguous, 0-d for a number
    out = np.empty_like(x)
    COMM.Allreduce(x, out, op=op)
    return out if out.ndim else float(out)




def two_blocks(p1, cells, layer: tuple[float, float], gap: float, upper=None):
    """Two disjoint blocks from the box [0, p1]: the cells below z = layer[0] and (those of)
    the cells above z = layer[1] selected by `upper(midpoints)`; the upper block is moved down so
    that the blocks face each other across `gap` (mm). Returns the mesh; collective."""
    mesh = box(p1, cells)
    mid = midpoints(mesh)[: mesh.topology.index_map(3).size_local]
    top = mid[:, 2] > layer[1]
    if upper is not None:
        top &= upper(mid)
    keep = np.flatnonzero((mid[:, 2] < layer[0]) | top).astype(np.int32)
    sub = dolfinx.mesh.create_submesh(mesh, 3, keep)[0]
    x = sub.geometry.x
    x[x[:, 2] > 0.5 * (layer[0] + layer[1]), 2] -= layer[1] - layer[0] - gap
    return sub


def boundary(mesh, where) -> np.ndarray:
    """Boundary facets whose midpoints satisfy where(x) (x of shape (3, n))."""
    return dolfinx.mesh.locate_entities_boundary(mesh, 2, where)
