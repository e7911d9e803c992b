"""Multi-objective search with pymoo's NSGA-II: reproducible, resumable, evaluated under MPI.

pymoo runs on rank 0 in its ask-and-tell form: each generation it asks for a population of
decision vectors, which every rank receives; the caller's collective `evaluate(X) -> (F, G)`
computes objectives F (minimised) and inequality constraints G (feasible where G <= 0) however
it distributes the work (planning.optimisation splits the ranks into sub-communicators); rank 0
tells pymoo the result and writes a checkpoint. The random stream is pymoo's own, seeded once,
so a run is determined by its seed; the checkpoint holds the whole algorithm (population,
random state, generation), so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from mpi4py import MPI
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.evaluator import Evaluator
from pymoo.core.problem import Problem
from pymoo.problems.static import StaticProblem
from pymoo.termination import get_termination

from dosimetry.plan import write_bytes_atomic
from spinefe.common.errors import ConfigError
from spinefe.common.parallel import on_root


@dataclass(frozen=True)
class SearchSettings:
    """NSGA-II population size, generations and random seed."""

    population: int = 40
    generations: int = 50
    seed: int = 1


class UnitBoxProblem(Problem):
    """n_var decision variables in [0, 1] (callers decode them), n_obj objectives, n_constr
    inequality constraints; evaluated outside pymoo (ask and tell)."""

    def __init__(self, n_var: int, n_obj: int, n_constr: int = 0):
        super().__init__(n_var=n_var, n_obj=n_obj, n_ieq_constr=n_constr, xl=0.0, xu=1.0)


def nsga2(problem: Problem, evaluate: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
          settings: SearchSettings, comm: MPI.Comm, checkpoint: Path | None = None,
          on_generation: Callable[[NSGA2], None] | None = None, state: dict | None = None,
          duplicates=True, key: str | None = None, stop: Callable[[], bool] | None = None):
    """Run NSGA-II to `settings.generations`, or until `stop()` (rank 0, before each
    generation) is True, resuming from `checkpoint` when it exists; returns the algorithm on
    rank 0 (None elsewhere). Collective: every rank calls `evaluate`.

    The checkpoint (the algorithm, the caller's `state` dict, e.g. an archive of evaluations,
    and `key`, naming what was searched) is rewritten atomically after every generation; on
    resume `state` is updated from it on every rank, and a checkpoint of another `key` raises
    ConfigError on every rank. `on_generation(algorithm)` (rank 0) is called after each
    generation, before the checkpoint. `duplicates`: pymoo's duplicate elimination (True: equal
    decision vectors; a picklable DuplicateElimination to compare decoded designs).
    """

    def start():
        if checkpoint is None or not checkpoint.exists():
            algorithm = NSGA2(pop_size=settings.population, eliminate_duplicates=duplicates)
            algorithm.setup(problem, termination=("n_gen", settings.generations),
                            seed=settings.seed)
            return algorithm, None
        with open(checkpoint, "rb") as f:
            saved_key, algorithm, saved = pickle.load(f)
        if saved_key != key:
            raise ConfigError(f"{checkpoint}: the checkpoint belongs to another search "
                              "(only the number of generations may change on a resume); "
                              "choose another output directory or delete it")
        algorithm.termination = get_termination("n_gen", settings.generations)
        # pymoo updates the progress before it counts the generation: n_gen - 1 are done.
        algorithm.termination.perc = (algorithm.n_gen - 1) / settings.generations
        return algorithm, saved

    algorithm, saved = on_root(comm, start) or (None, None)
    saved = comm.bcast(saved, root=0)
    if saved is not None and state is not None:
        state.update(saved)

    def tell(pop, F, G):
        values = {"F": np.asarray(F, float)}
        if problem.n_ieq_constr:
            values["G"] = np.asarray(G, float)
        Evaluator().eval(StaticProblem(problem, **values), pop)
        algorithm.tell(infills=pop)
        if on_generation is not None:
            on_generation(algorithm)
        if checkpoint is not None:
            write_bytes_atomic(checkpoint, pickle.dumps((key, algorithm, state)))

    while True:
        go = comm.rank == 0 and algorithm.has_next() and not (stop is not None and stop())
        pop = algorithm.ask() if go else None
        X = comm.bcast(None if pop is None else pop.get("X"), root=0)
        if X is None:
            return algorithm
        F, G = evaluate(X)
        on_root(comm, partial(tell, pop, F, G))  # a failure there ends every rank
