"""Points coupled to the mesh by P1 weights: linear fields are reproduced exactly, on any ranks."""

import numpy as np
import pytest
from mpi4py import MPI

import spinefe  # noqa: F401  (first: spinefe/__init__ loads the PETSc of DOLFINx)
import dolfinx
from dolfinx import fem

from spinefe.mechanics.points import locate

pytestmark = pytest.mark.parallel


def global_array(u: fem.Function) -> np.ndarray:
    """All owned values in global dof order (the PETSc numbering), on every rank."""
    imap, bs = u.function_space.dofmap.index_map, u.function_space.dofmap.index_map_bs
    return np.concatenate(u.function_space.mesh.comm.allgather(u.x.array[: imap.size_local * bs]))


def test_linear_field_is_reproduced_at_points():
    mesh = dolfinx.mesh.create_box(MPI.COMM_WORLD, [[-10, -8, 0], [12, 8, 20]], [5, 4, 6])
    V = fem.functionspace(mesh, ("Lagrange", 1, (3,)))
    A = np.array([[0.01, -0.02, 0.03], [0.0, 0.015, -0.01], [0.02, 0.01, -0.005]])
    b = np.array([0.1, -0.2, 0.05])
    u = fem.Function(V)
    u.interpolate(lambda x: A @ x + b[:, None])
    points = np.random.default_rng(0).uniform([-10, -8, 0], [12, 8, 20], (200, 3))
    coupling = locate(V, points)
    np.testing.assert_allclose(coupling.weights.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(coupling.displacement(global_array(u)), points @ A.T + b,
                               atol=1e-12)
    with pytest.raises(ValueError, match="outside the mesh"):
        locate(V, np.array([[0.0, 0.0, 25.0]]))
