"""The NSGA-II wrapper on analytic problems: known front, constraints, seeds, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from spinefe.common.errors import ConfigError
from spinefe.planning.search import SearchSettings, UnitBoxProblem, nsga2

pytestmark = pytest.mark.parallel


def zdt1(X: np.ndarray, constrained: bool = False):
    """ZDT1 with two variables: the front is f2 = 1 - sqrt(f1), f1 in [0, 1], at x1 = 0.
    Constrained: f1 >= 0.25 (G = 0.25 - f1 <= 0)."""
    f1 = X[:, 0]
    g = 1.0 + 9.0 * X[:, 1]
    F = np.column_stack([f1, g * (1.0 - np.sqrt(f1 / g))])
    return F, (0.25 - f1)[:, None] if constrained else np.zeros((len(X), 0))


def pareto_front(algorithm) -> tuple[np.ndarray, np.ndarray]:
    """Decision vectors and objectives of the algorithm's feasible non-dominated solutions,
    sorted by the first objective."""
    opt = algorithm.opt
    feasible = opt[np.flatnonzero(opt.get("FEAS"))] if opt is not None else []
    if len(feasible) == 0:
        return np.zeros((0, algorithm.problem.n_var)), np.zeros((0, algorithm.problem.n_obj))
    X, F = feasible.get("X"), feasible.get("F")
    order = np.lexsort(F.T[::-1])
    return X[order], F[order]


def run(settings, constrained=False, checkpoint=None, key=None, stop=None):
    comm = MPI.COMM_WORLD
    problem = UnitBoxProblem(2, 2, 1 if constrained else 0)
    algorithm = nsga2(problem, lambda X: zdt1(X, constrained), settings, comm, checkpoint,
                      key=key, stop=stop)
    front = pareto_front(algorithm) if comm.rank == 0 else None
    return comm.bcast(front, root=0)


def test_recovers_the_known_front():
    """40 x 60 = 2400 evaluations: every front point within 0.02 of f2 = 1 - sqrt(f1), the
    front spanning f1 from below 0.05 to above 0.95."""
    _, F = run(SearchSettings(population=40, generations=60, seed=3))
    assert len(F) >= 30
    assert np.max(np.abs(F[:, 1] - (1.0 - np.sqrt(F[:, 0])))) < 0.02
    assert F[:, 0].min() < 0.05 and F[:, 0].max() > 0.95


def test_constraints_reject_infeasible_points():
    X, F = run(SearchSettings(population=40, generations=40, seed=3), constrained=True)
    assert len(F) > 10 and F[:, 0].min() >= 0.25
    assert F[:, 0].min() < 0.3  # the front reaches the constraint


def test_same_seed_same_front_and_another_seed_another():
    a = run(SearchSettings(population=20, generations=10, seed=7))
    b = run(SearchSettings(population=20, generations=10, seed=7))
    c = run(SearchSettings(population=20, generations=10, seed=8))
    np.testing.assert_array_equal(a[1], b[1])
    assert a[1].shape != c[1].shape or not np.array_equal(a[1], c[1])


def test_checkpoint_resumes_to_the_same_result(tmp_path_factory):
    """10 generations straight, or 4 then a resume from the checkpoint to 10: the same front;
    a checkpoint of another search (key) is refused on every rank."""
    comm = MPI.COMM_WORLD
    path = comm.bcast(str(tmp_path_factory.mktemp("ckpt") / "search.pkl")
                      if comm.rank == 0 else None, root=0)
    from pathlib import Path

    path = Path(path)
    straight = run(SearchSettings(population=20, generations=10, seed=5))
    run(SearchSettings(population=20, generations=4, seed=5), checkpoint=path)
    resumed = run(SearchSettings(population=20, generations=10, seed=5), checkpoint=path)
    np.testing.assert_array_equal(straight[0], resumed[0])
    np.testing.assert_array_equal(straight[1], resumed[1])
    with pytest.raises(ConfigError, match="belongs to another search"):
        run(SearchSettings(population=20, generations=12, seed=5), checkpoint=path, key="other")



def test_a_stopping_rule_ends_the_search_before_its_budget(tmp_path_factory):
    """`stop` (asked on rank 0 before every generation, here on the checkpointed state) ends
    the search at the first generation where it holds, before the budget; a resume of the
    stopped search evaluates nothing."""
    from pathlib import Path

    comm = MPI.COMM_WORLD
    path = Path(comm.bcast(str(tmp_path_factory.mktemp("stop") / "search.pkl")
                           if comm.rank == 0 else None, root=0))
    problem = UnitBoxProblem(2, 2)
    settings = SearchSettings(population=10, generations=20, seed=2)
    evaluated = []

    def evaluate(X):
        evaluated.append(len(X))
        return zdt1(X)

    for _ in range(2):  # the second call resumes from the checkpoint
        state = {"generations": 0}
        algorithm = nsga2(problem, evaluate, settings, comm, path,
                          lambda a, s=state: s.update(generations=a.n_gen - 1), state,
                          stop=lambda s=state: s["generations"] >= 4)
        assert len(evaluated) == 4 and comm.bcast(state["generations"], root=0) == 4
        if comm.rank == 0:
            assert algorithm.n_gen - 1 == 4 and algorithm.has_next()  # not the budget
