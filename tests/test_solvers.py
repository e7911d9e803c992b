"""The solver layer (spinefe.mechanics.solvers): an options prefix per solver object and nothing
left in PETSc's global options database; user PETSc options reach the KSP and the SNES, after
the built-in ones; converged-reason checks; the factorised solve."""

from __future__ import annotations

import numpy as np
import pytest
from petsc4py import PETSc

from boxes import box, materials, plane, symmetry_rollers
from conftest import coarse
from spinefe.common.errors import SolverError
from spinefe.mechanics.elasticity import LoadCase, assemble_elasticity, solve_elasticity
from spinefe.mechanics.nonlinear import NewtonOptions, NonlinearProblem, solve_nonlinear
from spinefe.mechanics.solvers import (
    FactorisedCG,
    LinearSolver,
    SolverOptions,
    ksp_options,
    pushed_options,
    solve_linear,
)

pytestmark = pytest.mark.parallel

NONE = np.zeros(0, dtype=np.int32)


def bar(length=10.0, E=500.0, nu=0.25, F=20.0):
    """Bar L x 1 x 1 on symmetry rollers, axial force F on x = L (uniaxial stress)."""
    mesh = box([length, 1.0, 1.0], [10, 2, 2])
    load = LoadCase(NONE, loaded_facets=plane(mesh, 0, length), force_N=(F, 0.0, 0.0),
                    rollers=symmetry_rollers(mesh))
    return materials(mesh, E, nu), load


def database() -> dict:
    return PETSc.Options().getAll()


def test_solvers_have_own_prefixes_and_leave_no_options():
    before = database()
    mats, load = bar()
    system = assemble_elasticity(mats, load)
    one = LinearSolver(system.A, ksp_options(SolverOptions()), "elasticity")
    two = LinearSolver(system.A, ksp_options(SolverOptions(solver="mumps")), "elasticity")
    assert one.prefix != two.prefix
    assert one.prefix.startswith("spinefe_elasticity_") and one.prefix.endswith("_")
    assert one.ksp.getOptionsPrefix() == one.prefix
    assert (one.ksp.getType(), two.ksp.getType()) == ("cg", "preonly")
    assert one.ksp.getPC().getType() == "gamg"  # the options were read under each prefix
    assert database() == before
    one.destroy()
    two.destroy()

    # A Newton solver keeps its options while open (GAMG reads its level options whenever a
    # new Jacobian rebuilds the hierarchy), and removes them when closed.
    problem = NonlinearProblem(mats, load)
    with problem.solver(NewtonOptions()) as newton:
        assert newton.snes.getOptionsPrefix() == newton.prefix
        assert newton.snes.getKSP().getType() == "cg"
        opened = {k for k in database() if k.startswith(newton.prefix)}
        assert f"{newton.prefix}snes_type" in opened and f"{newton.prefix}pc_type" in opened
    problem.destroy()
    assert database() == before


def test_pushed_options_are_removed_on_error():
    before = database()
    with pytest.raises(RuntimeError), pushed_options("spinefe_test_", {"ksp_rtol": 1e-3}):
        assert database()["spinefe_test_ksp_rtol"] == "0.001"
        raise RuntimeError
    assert database() == before


def test_user_option_reaches_the_ksp():
    """ksp_max_it = 1 (a user option) overrides the built-in limit: CG fails and says why; the
    MUMPS fallback then solves the bar exactly, and the solution records the user's options."""
    mats, load = bar()
    user = SolverOptions(rtol=1e-12, petsc=(("ksp_max_it", 1),), direct_fallback=False)
    with pytest.raises(SolverError, match="cg_gamg did not converge: DIVERGED_MAX_IT after 1 "
                                          "iterations"):
        solve_elasticity(mats, load, options=user)
    sol = solve_elasticity(mats, load, options=SolverOptions(rtol=1e-12,
                                                             petsc=(("ksp_max_it", 1),)))
    assert sol.converged_reason.endswith("(mumps; cg_gamg DIVERGED_MAX_IT after 1 iterations)")
    assert sol.petsc_options == {"ksp_max_it": 1}
    assert sol.strain_energy_mJ == pytest.approx(20.0**2 * 10.0 / (2.0 * 500.0), rel=1e-10)
    assert solve_elasticity(mats, load).petsc_options == {}
    # The fallback keeps its own method: a user's pc_type applies to the CG solve only.
    user = (("ksp_max_it", 1), ("pc_type", "jacobi"))
    sol = solve_elasticity(mats, load, options=SolverOptions(rtol=1e-12, petsc=user))
    assert sol.converged_reason.endswith("(mumps; cg_gamg DIVERGED_MAX_IT after 1 iterations)")
    assert sol.strain_energy_mJ == pytest.approx(20.0**2 * 10.0 / (2.0 * 500.0), rel=1e-10)


def test_user_option_reaches_the_snes():
    """The nonlinear solve takes the user's options too: one linear iteration per Newton step
    cannot converge (DIVERGED_LINEAR_SOLVE), and the load-step cutbacks end in SolverError."""
    mats, load = bar()
    options = NewtonOptions(steps=1, max_cutbacks=0, inexact=False,
                            linear=SolverOptions(rtol=1e-12, petsc=(("ksp_max_it", 1),)))
    with pytest.raises(SolverError, match="DIVERGED_LINEAR_SOLVE"):
        solve_nonlinear(mats, load, options=options)
    sol = solve_nonlinear(mats, load, options=NewtonOptions(
        steps=1, linear=SolverOptions(petsc=(("snes_linesearch_type", "bt"),))))
    assert sol.petsc_options == {"snes_linesearch_type": "bt"}


def test_factorised_cg():
    """CG preconditioned by the factorisation of its own operator converges at once; with that
    of another operator it iterates; a user option overrides a built-in one."""
    mats, load = bar()
    system = assemble_elasticity(mats, load)
    before = database()
    x = system.uh.x.petsc_vec.copy()
    solver = FactorisedCG(system.A, system.A, 1e-10, 50)
    assert solver.solve(system.b, x) <= 1
    # Half the bar ten times stiffer: the factorisation of the uniform bar is no longer exact.
    mesh = mats.E.function_space.mesh
    stiffer = assemble_elasticity(materials(mesh, lambda m: np.where(m[:, 0] < 5.0, 5000.0,
                                                                      500.0), 0.25), load).A
    other = FactorisedCG(stiffer, system.A, 1e-10, 50, {"ksp_max_it": 2})
    y = system.uh.x.petsc_vec.copy()
    with pytest.raises(SolverError, match="CG did not converge: DIVERGED_MAX_IT after 2"):
        other.solve(system.b, y)
    other.factorise_each_solve(stiffer)
    y.set(0.0)
    assert other.solve(system.b, y) <= 1
    assert database() == before
    for obj in (solver, other):
        obj.destroy()


def test_factorised_cg_solves_many_systems_together():
    """solve_many: each system P + D_j solved in lockstep (one factorisation applied to every
    residual at once) has the solution and the iteration count of FactorisedCG.solve on it;
    the systems that need more iterations than allowed are returned as not converged."""
    mats, load = bar()
    system = assemble_elasticity(mats, load)
    mesh = mats.E.function_space.mesh
    systems, changes = [], []
    for where, E in ((lambda x: x < 5.0, 5000.0), (lambda x: x > 7.0, 2000.0),
                     (lambda x: np.abs(x - 3.0) < 1.5, 50.0)):
        A = assemble_elasticity(materials(mesh, lambda m, where=where, E=E: np.where(
            where(m[:, 0]), E, 500.0), 0.25), load).A
        change = A.copy()
        change.axpy(-1.0, system.A)
        systems.append(A)
        changes.append(change)
    x0 = system.uh.x.petsc_vec.copy()
    solver = FactorisedCG(systems[0], system.A, 1e-10, 50)  # the operator plays no part
    X, iterations, failed = solver.solve_many(changes, system.b, x0)
    assert failed == []
    for j, A in enumerate(systems):
        one = FactorisedCG(A, system.A, 1e-10, 50)
        x = x0.copy()
        assert one.solve(system.b, x) == iterations[j] > 1
        np.testing.assert_allclose(X[:, j], x.getArray(), rtol=1e-12, atol=1e-12 * abs(X).max())
        one.destroy()
    limited = FactorisedCG(system.A, system.A, 1e-10, 2)
    _, iterations, failed = limited.solve_many(changes, system.b, x0)
    assert failed == [0, 1, 2] and iterations == [2, 2, 2]
    for obj in (solver, limited):
        obj.destroy()


def test_config_options_reach_the_solver_options():
    from spinefe.mechanics.segment import solver_options

    cfg = coarse(mechanics={"petsc": {"ksp_rtol": 1e-10, "pc_gamg_threshold": 0.02}})
    options = solver_options(cfg.mechanics)
    assert options.user_options == {"ksp_rtol": 1e-10, "pc_gamg_threshold": 0.02}
    assert {**ksp_options(options), **options.user_options}["pc_gamg_threshold"] == 0.02
    assert solver_options(coarse().mechanics).petsc == ()


#: The built-in CG + GAMG options before issue 21 (GAMG's coarse limit, SOR, V-cycle).
OLD_GAMG = (("pc_gamg_coarse_eq_limit", 50), ("pc_mg_cycle_type", "v"),
            ("mg_levels_pc_type", "sor"))


def test_default_solver_keeps_the_answer(default_segment):
    """The implanted segment at test resolution: the default CG + GAMG, the options before
    issue 21 and MUMPS give the same displacement to 1e-6 relative (rtol 1e-8); the default
    needs fewer iterations than the old options."""
    from spinefe.mechanics.materials import material_fields
    from spinefe.mechanics.segment import segment_load_case

    cfg = coarse()
    system = assemble_elasticity(
        material_fields(default_segment, cfg.materials, cfg.lesion, "implanted"),
        segment_load_case(default_segment, cfg.mechanics), 1,
        cfg.mechanics.nearly_incompressible_nu)
    solutions, iterations = [], []
    for options in (SolverOptions(direct_fallback=False),
                    SolverOptions(direct_fallback=False, petsc=OLD_GAMG),
                    SolverOptions(solver="mumps")):
        x = system.uh.x.petsc_vec.copy()
        iterations.append(solve_linear(system.A, system.b, x, options).iterations)
        solutions.append(x)
    new, old, mumps = solutions
    for other in (old, mumps):
        diff = new.copy()
        diff.axpy(-1.0, other)
        assert diff.norm() <= 1e-6 * other.norm()
    assert iterations[0] < iterations[1]
