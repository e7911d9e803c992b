"""Springs added to an assembled matrix: energy 1/2 k dL^2, no resistance to rigid translation."""

import numpy as np
import pytest
import ufl
from mpi4py import MPI

import dolfinx_solver  # noqa: F401  (before dolfinx: the bundled PETSc)
import dolfinx
import dolfinx.fem.petsc
from dolfinx import fem

from spinefe.points import locate
from spinefe.springs import add_springs, elongations

pytestmark = pytest.mark.parallel


def test_spring_energy_and_rigid_translation():
    mesh = dolfinx.mesh.create_box(MPI.COMM_WORLD, [[-10, -8, 0], [12, 8, 20]], [5, 4, 6])
    V = fem.functionspace(mesh, ("Lagrange", 1, (3,)))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    A = dolfinx.fem.petsc.assemble_matrix(fem.form(fem.Constant(mesh, 0.0)
                                                   * ufl.inner(u, v) * ufl.dx))
    A.assemble()
    upper_pts = np.array([[0.0, -5.0, 18.0], [3.0, 4.0, 17.0], [-7.0, 1.0, 15.5]])
    lower_pts = np.array([[0.0, -5.0, 2.0], [3.5, 4.0, 1.0], [-7.0, 2.0, 3.0]])
    d = upper_pts - lower_pts
    n = d / np.linalg.norm(d, axis=1)[:, None]
    k = np.array([40.0, 25.0, 10.0])
    upper, lower = locate(V, upper_pts), locate(V, lower_pts)
    add_springs(A, upper, lower, n, k, active=[True, True, False])
    w = fem.Function(V)
    w.interpolate(lambda x: np.vstack([0.01 * x[0], -0.02 * x[2], 0.03 * x[2] + 0.1]))
    Aw = A.createVecLeft()
    A.mult(w.x.petsc_vec, Aw)
    energy = 0.5 * w.x.petsc_vec.dot(Aw)
    imap = V.dofmap.index_map
    u_global = np.concatenate(mesh.comm.allgather(w.x.array[: imap.size_local * 3]))
    dl = elongations(upper, lower, n, u_global)
    assert energy == pytest.approx(0.5 * (k[:2] * dl[:2] ** 2).sum(), rel=1e-12)
    w.interpolate(lambda x: np.vstack([np.full(x.shape[1], 0.3), np.full(x.shape[1], -0.1),
                                       np.full(x.shape[1], 0.2)]))
    A.mult(w.x.petsc_vec, Aw)
    assert Aw.norm() < 1e-12
