"""A pure moment as a distributed traction: zero net force, the requested moment, on any surface."""

import numpy as np
import pytest
import ufl
from mpi4py import MPI

import spinefe  # noqa: F401  (first: spinefe/__init__ loads the PETSc of DOLFINx)
import dolfinx
from dolfinx import fem

from spinefe.mechanics.loads import pure_moment

pytestmark = pytest.mark.parallel


@pytest.mark.parametrize("moment", [(7500.0, 0, 0), (0, -7500.0, 0), (1000.0, 2000.0, 7500.0)])
def test_resultant_is_the_moment_and_no_force(moment):
    mesh = dolfinx.mesh.create_box(MPI.COMM_WORLD, [[-20, -15, 0], [25, 15, 30]], [6, 5, 4])
    top = dolfinx.mesh.locate_entities_boundary(mesh, 2, lambda x: np.isclose(x[2], 30))
    tags = dolfinx.mesh.meshtags(mesh, 2, top, np.full(len(top), 7, dtype=np.int32))
    ds = ufl.Measure("ds", domain=mesh, subdomain_data=tags)
    load = pure_moment(mesh, ds, 7, moment)
    x = ufl.SpatialCoordinate(mesh)
    r = x - ufl.as_vector(load.centroid_mm)

    def total(expr):
        return mesh.comm.allreduce(fem.assemble_scalar(fem.form(expr * ds(7))), op=MPI.SUM)

    force = [total(load.traction[i]) for i in range(3)]
    torque = [total(ufl.cross(r, load.traction)[i]) for i in range(3)]
    np.testing.assert_allclose(force, 0.0, atol=1e-9 * np.linalg.norm(moment))
    np.testing.assert_allclose(torque, moment, rtol=1e-12, atol=1e-9 * np.linalg.norm(moment))
    np.testing.assert_allclose(load.centroid_mm, [2.5, 0.0, 30.0], atol=1e-12)
