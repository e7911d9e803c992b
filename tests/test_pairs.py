"""Point pairs in the assembled residual and tangent: spring energy 1/2 k dL^2, force = tangent
times displacement for linear springs, no resistance to a rigid translation; 1 and 2 ranks."""

import numpy as np
import pytest
import ufl
from mpi4py import MPI

import spinefe  # noqa: F401  (first: spinefe/__init__ loads the PETSc of DOLFINx)
import dolfinx
import dolfinx.fem.petsc
from dolfinx import fem

from spinefe.mechanics.ligaments import Fibre, LigamentSprings
from spinefe.mechanics.pairs import PairAssembler, PointPairs
from spinefe.mechanics.points import locate

pytestmark = pytest.mark.parallel


def test_springs_in_residual_and_tangent():
    mesh = dolfinx.mesh.create_box(MPI.COMM_WORLD, [[-10, -8, 0], [12, 8, 20]], [5, 4, 6])
    V = fem.functionspace(mesh, ("Lagrange", 1, (3,)))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    A = dolfinx.fem.petsc.assemble_matrix(fem.form(fem.Constant(mesh, 0.0)
                                                   * ufl.inner(u, v) * ufl.dx))
    A.assemble()
    upper_pts = np.array([[0.0, -5.0, 18.0], [3.0, 4.0, 17.0], [-7.0, 1.0, 15.5]])
    lower_pts = np.array([[0.0, -5.0, 2.0], [3.5, 4.0, 1.0], [-7.0, 2.0, 3.0]])
    k = np.array([40.0, 25.0, 10.0])
    law = LigamentSprings([Fibre("ALL", a, b, kk, 0.1)
                           for a, b, kk in zip(upper_pts, lower_pts, k, strict=True)])
    w = fem.Function(V)
    # Springs 0 and 1 stretch, spring 2 shortens (slack): x-shear and z-stretch fields.
    w.interpolate(lambda x: np.vstack([0.01 * x[0], -0.02 * x[2], 0.003 * (x[0] + 2) * x[2] + 0.1]))
    pairs = PairAssembler([PointPairs(locate(V, upper_pts), locate(V, lower_pts), law)],
                          w.x.petsc_vec)
    pairs.extend_pattern(A)
    A.zeroEntries()
    F = A.createVecLeft()
    pairs.add(w.x.petsc_vec, F=F, A=A)
    du = pairs.relative_displacements(w.x.petsc_vec)  # collective; the values live on rank 0
    dl = MPI.COMM_WORLD.bcast(law.elongations(du[0]) if du is not None else None)
    taut = dl > 0
    assert taut.tolist() == [True, True, False]
    Aw = A.createVecLeft()
    A.mult(w.x.petsc_vec, Aw)
    energy = 0.5 * w.x.petsc_vec.dot(Aw)
    assert energy == pytest.approx(0.5 * (k[taut] * dl[taut] ** 2).sum(), rel=1e-12)
    Aw.axpy(-1.0, F)  # linear springs: internal force = tangent x displacement
    assert Aw.norm() < 1e-12 * F.norm()
    w.interpolate(lambda x: np.vstack([np.full(x.shape[1], 0.3), np.full(x.shape[1], -0.1),
                                       np.full(x.shape[1], 0.2)]))
    A.mult(w.x.petsc_vec, Aw)
    assert Aw.norm() < 1e-12
