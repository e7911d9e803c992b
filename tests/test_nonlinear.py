"""Nonlinear statics (`spinefe.mechanics.nonlinear`) with springs and contact, against closed forms.

- linear limit: with no neo-Hookean cell and no pair the Newton solve is the linear solve;
- neo-Hookean uniaxial stress at 50 % stretch: the homogeneous large-deformation solution;
- two blocks joined by tension-only springs: force balance and stretch F / (n k); slack in
  compression;
- flat punch pressed into a block: contact force = applied load, penetration = pressure / eps;
- Coulomb friction: a block pressed on a plane sticks while the tangential load is below mu N and
  slides at exactly mu N above it;
- a cantilever under a pure moment (traction with no net force) against beam theory.

Run serially and on 2 ranks; all quantities are reduced over MPI. Units: mm, N, MPa.
"""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

import spinefe  # noqa: F401  (first: spinefe/__init__ loads the PETSc of DOLFINx)
import dolfinx

from boxes import box, boundary, materials, plane, symmetry_rollers, two_blocks
from spinefe.mechanics.contact import (
    ContactGeometry,
    SurfaceContact,
    contact_pairs,
    facet_triangles,
    pair_surfaces,
)
from spinefe.mechanics.elasticity import LoadCase, solve_elasticity
from spinefe.mechanics.laws import CellLaw
from spinefe.mechanics.kinematics import rigid_fit
from spinefe.mechanics.ligaments import Fibre, LigamentSprings
from spinefe.mechanics.nonlinear import NewtonOptions, solve_nonlinear
from spinefe.mechanics.pairs import PointPairs
from spinefe.mechanics.points import locate
from spinefe.mechanics.solvers import SolverOptions

pytestmark = pytest.mark.parallel

COMM = MPI.COMM_WORLD
NONE = np.zeros(0, dtype=np.int32)
TIGHT = SolverOptions(rtol=1e-12, max_iterations=3000)
MUMPS = SolverOptions(solver="mumps")


def owned_values(u, facets) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates and displacements (n, 3) of the owned dofs on `facets` (this rank)."""
    V = u.function_space
    dofs = dolfinx.fem.locate_dofs_topological(V, 2, facets)
    dofs = dofs[dofs < V.dofmap.index_map.size_local]
    return V.tabulate_dof_coordinates()[dofs], u.x.array.reshape(-1, 3)[dofs]


def global_max(values) -> float:
    return COMM.allreduce(float(np.max(values, initial=-np.inf)), op=MPI.MAX)


def test_linear_limit_is_the_linear_solve():
    """No neo-Hookean cell, no pair: one Newton step reproduces solve_elasticity, including the
    averaged-pressure cells (nu = 0.499 in half the bar). Tolerance 1e-9 (both CG to 1e-12)."""
    mesh = box([10.0, 2.0, 2.0], [10, 2, 2])
    mats = materials(mesh, 1000.0, lambda m: np.where(m[:, 0] < 5.0, 0.3, 0.499))
    tip = plane(mesh, 0, 10.0)
    load = LoadCase(plane(mesh, 0, 0.0), loaded_facets=tip, force_N=(0.0, 0.0, -0.5),
                    moments=((tip, (0.0, 20.0, 0.0)),))
    lin = solve_elasticity(mats, load, options=TIGHT)
    nl = solve_nonlinear(mats, load, options=NewtonOptions(steps=1, inexact=False, linear=TIGHT))
    assert nl.steps[0]["newton_iterations"] == 1
    scale = global_max(np.abs(lin.u.x.array))
    assert global_max(np.abs(lin.u.x.array - nl.u.x.array)) < 1e-9 * scale
    assert nl.strain_energy_mJ == pytest.approx(lin.strain_energy_mJ, rel=1e-9)
    np.testing.assert_allclose(nl.reaction_N, [0.0, 0.0, 0.5], atol=1e-9)


@pytest.mark.parametrize("cutbacks", [False, True])
def test_neo_hookean_uniaxial_stress_at_large_stretch(cutbacks):
    """Unit cube, rollers on x = 0, y = 0, z = 0, dead load on x = 1 equal to the first
    Piola-Kirchhoff stress of the stretch a = 1.5 in uniaxial stress. The deformation is
    homogeneous (in the P1 space): the lateral stretch s solves mu (s^2 - 1) + lambda ln(a s^2)
    = 0 and P11 = mu (a - 1 / a) + lambda ln(a s^2) / a. Tolerance 1e-8. Also reached through
    automatic cutbacks of a load step that fails."""
    options = (NewtonOptions(steps=1, max_iterations=3, inexact=False, linear=MUMPS)
               if cutbacks else NewtonOptions(steps=5))
    E, nu, a = 10.0, 0.3, 1.5
    mu, lam = E / (2 * (1 + nu)), E * nu / ((1 + nu) * (1 - 2 * nu))
    s = 1.0
    for _ in range(50):  # Newton on the lateral equilibrium
        s -= (mu * (s * s - 1) + lam * np.log(a * s * s)) / (2 * mu * s + 2 * lam / s)
    P11 = mu * (a - 1 / a) + lam * np.log(a * s * s) / a
    mesh = box([1.0, 1.0, 1.0], [3, 3, 3])
    mats = materials(mesh, E, nu)
    hyper = mats.E.copy()
    hyper.x.array[:] = 1.0
    load = LoadCase(NONE, loaded_facets=plane(mesh, 0, 1.0), force_N=(P11, 0.0, 0.0),
                    rollers=symmetry_rollers(mesh))
    sol = solve_nonlinear(mats.with_law(CellLaw("neo_hookean", hyper, mats.isotropic)), load,
                          options=options)
    if cutbacks:
        # One step, 3 exact Newton iterations at most: the full and the half load fail, a
        # quarter converges, then the increment doubles back (0.75) and the rest follows.
        assert [st["load_factor"] for st in sol.steps] == [0.25, 0.75, 1.0]
        assert [st["cutbacks"] for st in sol.steps] == [2, 0, 0]
    else:
        assert max(st["newton_iterations"] for st in sol.steps) <= 15  # the target
    x, u = owned_values(sol.u, plane(mesh, 0, 1.0))
    assert global_max(np.abs(u[:, 0] - (a - 1.0))) < 1e-8
    x, u = owned_values(sol.u, plane(mesh, 1, 1.0))
    assert global_max(np.abs(u[:, 1] - (s - 1.0))) < 1e-8


def spring_blocks(stiffness, count=4, reference_strain=0.0):
    """Blocks 10 x 10 x 4 (z < 4 and, above a 2 mm gap, 6 < z < 10), joined by `count`
    vertical fibres from z = 1 to z = 7 (landmark distance 6 mm, rest length 6 / (1 +
    reference_strain))."""
    mesh = two_blocks([10.0, 10.0, 10.0], [5, 5, 5], (4.0, 6.0), 2.0)
    xy = [(3.0, 3.0), (7.0, 3.0), (3.0, 7.0), (7.0, 7.0)][:count]
    fibres = [Fibre("ALL", np.array([x, y, 7.0]), np.array([x, y, 1.0]), stiffness, 0.1,
                    reference_strain) for x, y in xy]
    law = LigamentSprings(fibres)
    V = dolfinx.fem.functionspace(mesh, ("Lagrange", 1, (3,)))
    pairs = PointPairs(locate(V, np.array([f.upper_mm for f in fibres])),
                       locate(V, np.array([f.lower_mm for f in fibres])), law)
    return mesh, law, pairs


def test_two_blocks_joined_by_springs():
    """Pull the upper block by F: the spring forces carry F (force balance to round-off), the
    stretch is F / (n k) up to the blocks' own compliance (E = 1e6 MPa: < 1e-5 relative)."""
    k, F = 25.0, 40.0
    mesh, law, pairs = spring_blocks(k)
    mats = materials(mesh, 1e6, 0.3)
    top = plane(mesh, 2, 10.0)
    load = LoadCase(plane(mesh, 2, 0.0), loaded_facets=top, force_N=(0.0, 0.0, F),
                    rollers=((top, 0), (top, 1)))
    sol = solve_nonlinear(mats, load, [pairs], options=NewtonOptions(steps=1, linear=TIGHT))
    np.testing.assert_allclose(sol.support_reactions_N[0], [0.0, 0.0, -F], atol=1e-8 * F)
    report = COMM.bcast(law.report(sol.pair_states[0]) if COMM.rank == 0 else None)
    assert report["ALL"]["force_N"] == pytest.approx(F, rel=1e-9)
    assert report["ALL"]["elongation_mm_max"] == pytest.approx(F / (4 * k), rel=1e-5)
    assert report["ALL"]["state"] == "active"


@pytest.mark.parametrize("delta", [0.1, -0.1])
def test_springs_are_tension_only(delta):
    """Prescribed displacement of the upper block: in tension the springs carry n k delta, in
    compression (blocks still apart) they are slack and the supports carry nothing."""
    k = 25.0
    mesh, law, pairs = spring_blocks(k)
    mats = materials(mesh, 1e6, 0.3)
    top = plane(mesh, 2, 10.0)
    load = LoadCase(plane(mesh, 2, 0.0), displacements=((top, 0, 0.0), (top, 1, 0.0),
                                                         (top, 2, delta)))
    sol = solve_nonlinear(mats, load, [pairs], options=NewtonOptions(steps=2, linear=TIGHT))
    expected = 4 * k * max(delta, 0.0)
    assert sol.support_reactions_N[3][2] == pytest.approx(expected, rel=1e-5, abs=1e-9)
    report = COMM.bcast(law.report(sol.pair_states[0]) if COMM.rank == 0 else None)
    assert report["ALL"]["state"] == ("active" if delta > 0 else "slack")
    assert report["ALL"]["taut"] == (4 if delta > 0 else 0)


@pytest.mark.parametrize(("e_ref", "delta"), [(0.05, 0.0), (0.05, -0.2), (0.05, -0.4),
                                            (-0.05, 0.2), (-0.05, 0.5)])
def test_reference_strain_sets_the_rest_length(e_ref, delta):
    """Fibres pre-tensioned (e_ref > 0) or slack (< 0) at their landmarks' distance L0 = 6 mm:
    with the upper block moved by delta (two load steps, the pre-tension whole from the first),
    the supports carry n k max(delta + L0 - L0 / (1 + e_ref), 0); at delta = 0 that is the
    pre-tension n k L0 e_ref / (1 + e_ref), held by the supports and not by a load."""
    k, L0 = 25.0, 6.0
    mesh, law, pairs = spring_blocks(k, reference_strain=e_ref)
    mats = materials(mesh, 1e6, 0.3)
    top = plane(mesh, 2, 10.0)
    load = LoadCase(plane(mesh, 2, 0.0), displacements=((top, 0, 0.0), (top, 1, 0.0),
                                                         (top, 2, delta)))
    sol = solve_nonlinear(mats, load, [pairs], options=NewtonOptions(steps=2, linear=TIGHT))
    stretch = delta + L0 - L0 / (1.0 + e_ref)
    expected = 4 * k * max(stretch, 0.0)
    assert sol.support_reactions_N[3][2] == pytest.approx(expected, rel=1e-5, abs=1e-9)
    report = COMM.bcast(law.report(sol.pair_states[0]) if COMM.rank == 0 else None)
    assert report["ALL"]["taut"] == (4 if stretch > 0 else 0)
    assert report["ALL"]["elongation_mm_max"] == pytest.approx(stretch, rel=1e-4)


def block_contact(mesh, gap, eps, friction, V, penetration_tol_mm=np.inf):
    """Contact pairs: the upper block's bottom (z = 4 + gap, slave) on the lower one's top."""
    lower_top = boundary(mesh, lambda x: np.isclose(x[2], 4.0))
    upper_bottom = boundary(mesh, lambda x: np.isclose(x[2], 4.0 + gap))
    geometry = pair_surfaces(facet_triangles(mesh, upper_bottom), facet_triangles(mesh, lower_top))
    return contact_pairs(V, geometry, eps, friction, penetration_tol_mm)


@pytest.mark.parametrize("state", ["open", "stick", "slip"])
def test_contact_tangent_is_the_derivative_of_the_force(state):
    """The pair tangent K equals the central-difference derivative of the pair force (h = 1e-6
    mm; the force is piecewise smooth, so agreement to 1e-6 relative away from the kinks) at
    random open, sticking and sliding states, with the normal force of the Coulomb limit held
    fixed as within a Newton solve."""
    rng = np.random.default_rng(1)
    n, mu, eps = 40, 0.1, 100.0
    normals = rng.normal(size=(n, 3))
    normals /= np.linalg.norm(normals, axis=1)[:, None]
    geometry = ContactGeometry(np.zeros((n, 3)), np.zeros((n, 3)), normals, np.full(n, 0.1),
                               np.ones(n), 0)
    law = SurfaceContact(geometry, eps, mu)
    law.limit_normal_N[:] = 2.0  # N: mu N / k_t = 0.002 mm of elastic slip

    def in_plane(a):  # unit vectors in the tangent planes
        a = a - np.einsum("nc,nc->n", a, normals)[:, None] * normals
        return a / np.linalg.norm(a, axis=1)[:, None]

    law.slip = 0.001 * in_plane(rng.normal(size=(n, 3)))
    tangential = {"open": 0.0, "stick": 0.0005, "slip": 0.01}[state]
    du = (0.05 if state == "open" else -0.3) * normals
    du += tangential * in_plane(rng.normal(size=(n, 3)))
    _, closed, _, _, _, sliding, _ = law._state(du)
    assert closed.all() == (state != "open") and not closed.any() == (state == "open")
    assert sliding.all() == (state == "slip") and not sliding.any() == (state != "slip")
    _, K = law.forces(du)
    h = 1e-6
    for j in range(3):
        step = np.zeros(3)
        step[j] = h
        derivative = (law.forces(du + step)[0] - law.forces(du - step)[0]) / (2 * h)
        assert np.allclose(derivative, K[:, :, j], rtol=1e-6, atol=1e-6 * np.abs(K).max())


@pytest.mark.parametrize(("eps", "penetration_tol_mm"), [(1e6, np.inf), (1e4, 1e-4)])
def test_flat_punch_contact_force_and_penetration(eps, penetration_tol_mm):
    """A 4 x 4 punch (whole cells), 0.1 mm above a 12 x 12 block, pushed 0.15 mm down: the
    contact force equals the load applied at the punch's top and the base's reaction, and the
    penetration is below 1 % of the gap closure (0.05 mm): the pressure over the penalty (pure
    penalty, 1e6 N/mm^3) or below the augmented-Lagrangian tolerance (1e4 N/mm^3, whose pure
    penalty would penetrate about 1e-3 mm)."""
    gap, push = 0.1, 0.15
    mesh = two_blocks([12.0, 12.0, 8.0], [6, 6, 4], (4.0, 6.0), gap,
                      upper=lambda m: (np.abs(m[:, 0] - 6) < 2) & (np.abs(m[:, 1] - 6) < 2))
    mats = materials(mesh, 1000.0, 0.3)
    V = dolfinx.fem.functionspace(mesh, ("Lagrange", 1, (3,)))
    pairs = block_contact(mesh, gap, eps, 0.0, V, penetration_tol_mm)
    top = plane(mesh, 2, 8.0 - 2.0 + gap)
    load = LoadCase(plane(mesh, 2, 0.0), displacements=((top, 0, 0.0), (top, 1, 0.0),
                                                         (top, 2, -push)))
    sol = solve_nonlinear(mats, load, [pairs], options=NewtonOptions(steps=3, linear=MUMPS))
    applied = sol.support_reactions_N[3][2]  # force the punch's support exerts, downwards < 0
    state = COMM.bcast(pairs.law.report(sol.pair_states[0]) if COMM.rank == 0 else None)
    assert applied < -10.0
    assert state["contact_force_N"] == pytest.approx(-applied, rel=1e-8)
    assert sol.support_reactions_N[0][2] == pytest.approx(-applied, rel=1e-8)
    assert state["nodes_in_contact"] == state["nodes"]
    if np.isinf(penetration_tol_mm):
        assert state["penetration_mm_max"] == pytest.approx(state["peak_pressure_MPa"] / eps,
                                                            rel=1e-6)
    else:
        assert state["penetration_mm_max"] <= penetration_tol_mm
        assert max(s["pair_updates"] for s in sol.steps) > 0
    assert state["penetration_mm_max"] < 0.01 * (push - gap)


@pytest.mark.parametrize(("slide_mm", "sliding"), [(0.0004, False), (0.003, True)])
def test_coulomb_friction_stick_and_slip(slide_mm, sliding):
    """A 10 x 10 block 0.01 mm above a plane: pushed down by 0.02 mm and sideways by 2 x
    slide_mm, in two steps (the gap closes at the end of the first). While in contact it moves
    slide_mm sideways against 0.01 mm of closure: the trial friction is about slide_mm / 0.01
    of the normal force (penalty k_t = k_n; stiff blocks), 0.04 (stick: T < 0.1 N, no node
    slides) or 0.3 (slip: T = 0.1 N)."""
    mu, gap = 0.1, 0.01
    mesh = two_blocks([10.0, 10.0, 8.0], [4, 4, 4], (4.0, 6.0), gap)
    mats = materials(mesh, 1e6, 0.3)
    V = dolfinx.fem.functionspace(mesh, ("Lagrange", 1, (3,)))
    pairs = block_contact(mesh, gap, 1e4, mu, V)
    top = plane(mesh, 2, 8.0 - 2.0 + gap)
    load = LoadCase(plane(mesh, 2, 0.0), displacements=((top, 0, 2 * slide_mm), (top, 1, 0.0),
                                                         (top, 2, -2 * gap)))
    sol = solve_nonlinear(mats, load, [pairs], options=NewtonOptions(steps=2, linear=TIGHT))
    T = abs(sol.support_reactions_N[1][0])  # sideways force of the top support on the block
    N = abs(sol.support_reactions_N[3][2])  # its downward push
    state = COMM.bcast(pairs.law.report(sol.pair_states[0]) if COMM.rank == 0 else None)
    assert N > 0
    if sliding:
        # The interface slides (T = mu N) up to the blocks' own small shear and Poisson
        # deformation, which leaves some nodes just inside the cone: 1e-4 measured.
        assert T <= mu * N * (1 + 1e-9)
        assert T == pytest.approx(mu * N, rel=1e-3)
        assert state["nodes_sliding"] > 0
    else:
        assert T < 0.5 * mu * N
        assert state["nodes_sliding"] == 0
    # Equilibrium of the upper block, up to the Newton tolerance (residual ~1e-5 N).
    assert abs(state["friction_force_vector_N"][0]) == pytest.approx(T, rel=1e-6)


def test_a_guided_solve_reaches_the_same_equilibrium_in_fewer_iterations():
    """The sliding block of the friction test, stiffness E = 1000 MPa, then 1200 MPa from
    scratch and along the first one's path (load_steps' guide: each step starts from its state
    and contact multipliers): the same support reactions and slip state (1e-6 relative: both
    converge to the Newton tolerance, the friction limit to FRICTION_LIMIT_RTOL = 1e-3 of the
    largest nodal force, whose effect on the totals is far smaller), in fewer Newton
    iterations."""
    mu, gap, slide_mm = 0.1, 0.01, 0.003
    mesh = two_blocks([10.0, 10.0, 8.0], [4, 4, 4], (4.0, 6.0), gap)
    V = dolfinx.fem.functionspace(mesh, ("Lagrange", 1, (3,)))
    top = plane(mesh, 2, 8.0 - 2.0 + gap)
    load = LoadCase(plane(mesh, 2, 0.0), displacements=((top, 0, 2 * slide_mm), (top, 1, 0.0),
                                                         (top, 2, -2 * gap)))

    def solve(E, guide=()):
        pairs = block_contact(mesh, gap, 10.0, mu, V)
        sol = solve_nonlinear(materials(mesh, E, 0.3), load, [pairs],
                              options=NewtonOptions(steps=2, linear=TIGHT), guide=guide)
        state = COMM.bcast(pairs.law.report(sol.pair_states[0]) if COMM.rank == 0 else None)
        return sol, state

    first, _ = solve(1000.0)
    fresh, fresh_state = solve(1200.0)
    guided, guided_state = solve(1200.0, first.path)
    assert [p.factor for p in guided.path] == [p.factor for p in first.path] == [0.5, 1.0]
    assert all(s["guided"] for s in guided.steps)
    assert not any(s["guided"] for s in fresh.steps)
    assert guided.support_reactions_N == pytest.approx(fresh.support_reactions_N, rel=1e-6,
                                                       abs=1e-9)
    # (Nodes on the cone's edge may count as sticking in one and sliding in the other.)
    assert fresh_state["nodes_sliding"] > 0 and guided_state["nodes_sliding"] > 0
    assert guided_state["friction_force_N"] == pytest.approx(fresh_state["friction_force_N"],
                                                             rel=1e-6)
    assert guided.iterations < fresh.iterations


def test_cantilever_pure_moment_against_beam_theory():
    """Beam 10 x 2 x 2, nu = 0, end moment M about y (traction without net force): the exact
    solution is pure bending, tip rotation M L / (E I). P1 tetrahedra lock in bending, so the
    test checks convergence: error below 10 % at 6 cells through the depth and falling at
    least 3x from 3 to 6 cells (second order: 4x). Measured 9.1 % at 6 cells."""
    L, b, E, M = 10.0, 2.0, 1000.0, 10.0
    exact = np.degrees(M * L / (E * b**4 / 12))
    errors = []
    for n in (3, 6):
        mesh = box([L, b, b], [5 * n, n, n])
        tip, root = plane(mesh, 0, L), plane(mesh, 0, 0.0)
        load = LoadCase(NONE, rollers=((root, 0), (root, 2), (plane(mesh, 1, 0.0), 1)),
                        moments=((tip, (0.0, M, 0.0)),))
        sol = solve_nonlinear(materials(mesh, E, 0.0), load,
                              options=NewtonOptions(steps=1, linear=TIGHT))
        x, u = owned_values(sol.u, tip)
        rotation = rigid_fit(x, u, COMM).rotation_vector_deg
        errors.append(abs(rotation[1] - exact) / exact)
    assert errors[1] < 0.10
    assert errors[0] / errors[1] > 3.0


def test_a_follower_pressure_turns_with_the_loaded_face():
    """Neo-Hookean column 10 x 10 x 20 (E 10 MPa), base clamped; on its top a moment of 60 N mm
    about x and a 5 N compression. As a follower pressure the compression turns with the top
    (6.2 deg): its resultant's angle to -z is the top's rigid rotation within 2 % (the face
    also deforms) and its size 5 N within 1 % (Nanson: the face's area changes). As a dead
    load it stays along -z, and its growing lever arm turns the top further."""
    mesh = box([10.0, 10.0, 20.0], [4, 4, 8])
    mats = materials(mesh, 10.0, 0.3)
    hyper = mats.E.copy()
    hyper.x.array[:] = 1.0
    mats = mats.with_law(CellLaw("neo_hookean", hyper, mats.isotropic))
    top = plane(mesh, 2, 20.0)
    rotation, applied = {}, {}
    for kind, dead, follower in (("dead", 5.0, 0.0), ("follower", 0.0, 5.0)):
        load = LoadCase(plane(mesh, 2, 0.0), loaded_facets=top, force_N=(0.0, 0.0, -dead),
                        follower_N=follower, moments=((top, (60.0, 0.0, 0.0)),))
        sol = solve_nonlinear(mats, load, options=NewtonOptions(steps=4))
        assert max(s["newton_iterations"] for s in sol.steps) <= 8
        rotation[kind] = rigid_fit(*owned_values(sol.u, top), COMM).rotation_vector_deg[0]
        applied[kind] = sol.applied_N
    np.testing.assert_allclose(applied["dead"], [0.0, 0.0, -5.0], atol=1e-12)
    force = applied["follower"]
    angle = np.degrees(np.arctan2(force[1], -force[2]))
    assert angle == pytest.approx(rotation["follower"], rel=0.02)
    assert np.linalg.norm(force) == pytest.approx(5.0, rel=0.01)
    assert rotation["dead"] > rotation["follower"] > 5.0
