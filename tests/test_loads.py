"""A pure moment as a distributed traction: zero net force, the requested moment, on any surface."""

import numpy as np
import pytest
import ufl
from mpi4py import MPI

import spinefe  # noqa: F401  (first: spinefe/__init__ loads the PETSc of DOLFINx)
import dolfinx
from dolfinx import fem

from spinefe.mechanics.loads import follower_pressure, pure_moment

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


@pytest.mark.parametrize("angle_deg", [0.0, 20.0])
def test_follower_pressure_turns_with_a_rigid_rotation(angle_deg):
    """Under a rigid rotation R of the body the follower pressure's resultant on the top face
    (normal +z, area 30 x 45 mm) is -p A R e_z: the rotation is linear in x, so P1 holds it
    exactly (1e-12)."""
    mesh = dolfinx.mesh.create_box(MPI.COMM_WORLD, [[-20, -15, 0], [25, 15, 30]], [6, 5, 4])
    top = dolfinx.mesh.locate_entities_boundary(mesh, 2, lambda x: np.isclose(x[2], 30))
    tags = dolfinx.mesh.meshtags(mesh, 2, top, np.full(len(top), 7, dtype=np.int32))
    ds = ufl.Measure("ds", domain=mesh, subdomain_data=tags)
    a = np.radians(angle_deg)
    axis = np.array([1.0, 2.0, 0.5]) / np.linalg.norm([1.0, 2.0, 0.5])
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    R = np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * K @ K
    V = fem.functionspace(mesh, ("Lagrange", 1, (3,)))
    u = fem.Function(V)
    u.interpolate(lambda x: (R - np.eye(3)) @ x)
    p = 0.4
    traction = follower_pressure(mesh, p, u)
    force = [mesh.comm.allreduce(fem.assemble_scalar(fem.form(traction[i] * ds(7))), op=MPI.SUM)
             for i in range(3)]
    np.testing.assert_allclose(force, -p * 45.0 * 30.0 * R[:, 2], atol=1e-12 * p * 1350.0)
