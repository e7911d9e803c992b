"""Material laws (spinefe.mechanics.laws): the registry, the linear law's closed-form bilinear
form against the derivative of its energy, and the small-strain limit of the neo-Hookean law."""

from __future__ import annotations

import dolfinx.fem.petsc
import numpy as np
import pytest
import ufl
from dolfinx import fem
from mpi4py import MPI

from boxes import box, materials
from spinefe.mechanics.laws import LAWS, DEFAULT_LAW, lame, law, linear_elastic, mixture

pytestmark = pytest.mark.parallel


def test_registry():
    assert DEFAULT_LAW == "linear_elastic" and set(LAWS) >= {"linear_elastic", "neo_hookean"}
    for module in LAWS.values():
        assert callable(module.energy) and callable(module.volume_change)
    with pytest.raises(KeyError, match="unknown material law 'mooney'; known: linear_elastic"):
        law("mooney")


def _setup():
    """A box with two materials, the right half nearly incompressible (chi = 1)."""
    mesh = box([2.0, 1.0, 1.0], [4, 2, 2])
    mats = materials(mesh, lambda m: np.where(m[:, 1] < 0.5, 100.0, 30.0), 0.3)
    V = fem.functionspace(mesh, ("Lagrange", 1, (3,)))
    chi = mats.E.copy()
    Q0 = chi.function_space
    n = mesh.topology.index_map(3).size_local + mesh.topology.index_map(3).num_ghosts
    mid = dolfinx.mesh.compute_midpoints(mesh, 3, np.arange(n, dtype=np.int32))
    chi.x.array[Q0.dofmap.list[np.arange(n)].ravel()] = mid[:, 0] > 1.0
    return mesh, mats, V, chi


def _matrix(form) -> np.ndarray:
    A = dolfinx.fem.petsc.assemble_matrix(fem.form(form))
    A.assemble()
    return A


def _relative_difference(A, B) -> float:
    C = A.copy()
    C.axpy(-1.0, B)
    return C.norm() / A.norm()


def test_linear_bilinear_form_is_the_second_variation_of_its_energy():
    """The closed form the linear solve assembles equals the UFL derivative of the energy,
    deviatoric cells included (chi = 1: lambda -> -2 mu / 3)."""
    mesh, mats, V, chi = _setup()
    mu, lam = lame(mats.E, mats.nu)
    u, v, du = fem.Function(V), ufl.TestFunction(V), ufl.TrialFunction(V)
    energy = linear_elastic.energy(u, mu, lam, chi) * ufl.dx
    hessian = ufl.derivative(ufl.derivative(energy, u, v), u, du)
    closed = linear_elastic.bilinear(du, v, mu, linear_elastic.deviatoric_lambda(mu, lam, chi))
    assert _relative_difference(_matrix(hessian), _matrix(closed * ufl.dx)) < 1e-13


@pytest.mark.parametrize("incompressible", [False, True])
def test_neo_hookean_small_strain_limit_is_linear(incompressible):
    """At u = 0 the neo-Hookean tangent is the linear elastic one (also its deviatoric part
    where chi = 1), and its volume change J - 1 has the derivative div u."""
    mesh, mats, V, chi = _setup()
    if not incompressible:
        chi.x.array[:] = 0.0
    mu, lam = lame(mats.E, mats.nu)
    u, v, du = fem.Function(V), ufl.TestFunction(V), ufl.TrialFunction(V)
    tangents = [
        _matrix(ufl.derivative(ufl.derivative(LAWS[name].energy(u, mu, lam, chi) * ufl.dx, u, v),
                               u, du))
        for name in ("linear_elastic", "neo_hookean")
    ]
    assert _relative_difference(*tangents) < 1e-13
    q = ufl.TestFunction(fem.functionspace(mesh, ("DG", 0)))
    B = [_matrix(q * ufl.derivative(LAWS[name].volume_change(u), u, du) * ufl.dx)
         for name in ("linear_elastic", "neo_hookean")]
    assert _relative_difference(*B) < 1e-13


def test_mixture_takes_each_law_in_its_cells():
    """The mixture's energy is the linear law's where no other law claims the cell and the
    neo-Hookean law's where its indicator is 1 (a finite homogeneous stretch)."""
    mesh, mats, V, chi = _setup()
    chi.x.array[:] = 0.0
    mu, lam = lame(mats.E, mats.nu)
    u = fem.Function(V)
    u.interpolate(lambda x: np.stack([0.3 * x[0], -0.05 * x[1], 0.1 * x[2]]))
    hyper = chi.copy()
    hyper.x.array[:] = 1.0

    def total(expr):
        return mesh.comm.allreduce(fem.assemble_scalar(fem.form(expr * ufl.dx)), op=MPI.SUM)

    for indicator, name in ((chi, "linear_elastic"), (hyper, "neo_hookean")):
        w, e_v = mixture(u, mu, lam, chi, {"neo_hookean": indicator})
        assert total(w) == pytest.approx(total(LAWS[name].energy(u, mu, lam, chi)), rel=1e-14)
        assert total(e_v) == pytest.approx(total(LAWS[name].volume_change(u)), rel=1e-14)
    w, _ = mixture(u, mu, lam, chi, {})
    assert total(w) == pytest.approx(total(linear_elastic.energy(u, mu, lam, chi)), rel=1e-14)
