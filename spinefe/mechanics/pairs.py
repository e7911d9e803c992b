"""Forces between pairs of mesh points (ligament fibres, facet contact) in the residual and tangent.

A pair joins a point a (upper) and a point b (lower), each coupled to the P1 displacement through
its cell's vertices (mechanics.points), so du = u(a) - u(b). A law gives the pair's internal force
f = dE/d(du) (N) and its tangent K = df/d(du) (N/mm); the residual gets +w_a f on a's vertices and
-w_b f on b's, the tangent s s^T (x) K with s = (+w_a, -w_b). Every block is inserted, zero or
not, so the matrix keeps one nonzero pattern while pairs switch between active and slack.

Written by hand: dolfinx has no point-to-point couplings (dolfinx_mpc ties dofs, it does not add
forces). Pairs are few (tens of ligament fibres, hundreds of contact nodes) against the mesh, so
rank 0 evaluates all of them after one scatter of their dofs and inserts on global indices
(ADD_VALUES; PETSc moves the off-process rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

from spinefe.mechanics.points import PointCoupling


class PairLaw(Protocol):
    def forces(self, du: np.ndarray, first: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Internal force f (n, 3) in N and tangent K (n, 3, 3) in N/mm at du (n, 3) in mm;
        `first` marks the tangent of the first Newton iteration of a load step."""

    def commit(self, du: np.ndarray) -> None:
        """Accept du as the converged state of a load step (history of friction)."""

    def restore(self) -> None:
        """Return to the state of the last commit (before a failed load step is retried)."""

    def update(self, du: np.ndarray) -> bool:
        """Between Newton solves: update the state the law holds fixed within one (contact: the
        augmented-Lagrangian multipliers, the normal force of the friction limit) from du;
        True if it changed."""

    def fixed(self) -> object:
        """The state `update` holds fixed within a Newton solve (None if there is none)."""

    def hold(self, state: object) -> None:
        """Take `state` (of `fixed`, from a neighbouring solve) as the first guess of the state
        held fixed; the updates of the step correct it."""

    def step_limit(self, du: np.ndarray, ddu: np.ndarray) -> float:
        """Largest fraction in (0, 1] of the Newton update ddu (n, 3) in mm the law admits at
        du (1: no limit)."""


@dataclass
class PointPairs:
    """A set of pairs sharing one force law."""

    upper: PointCoupling
    lower: PointCoupling
    law: PairLaw

    def __len__(self) -> int:
        return len(self.upper.weights)

    def blocks(self) -> tuple[np.ndarray, np.ndarray]:
        """Global dofs (n, 8, 3) and signed weights s (n, 8) of every pair."""
        dofs = np.concatenate([self.upper.dofs, self.lower.dofs], axis=1)
        return dofs, np.concatenate([self.upper.weights, -self.lower.weights], axis=1)


class PairAssembler:
    """Evaluates pair sets at a PETSc displacement vector and adds them to residual and tangent.

    All methods are collective; the pair values live on rank 0 (None elsewhere).
    """

    def __init__(self, pair_sets: list[PointPairs], x: PETSc.Vec) -> None:
        self.pair_sets = pair_sets
        comm = x.getComm()
        self._root = comm.getRank() == 0
        blocks = [ps.blocks() for ps in pair_sets]
        dofs = np.unique(np.concatenate([d.ravel() for d, _ in blocks])) if blocks else []
        self._dofs = np.asarray(dofs, dtype=np.int64)
        self._blocks = blocks
        mine = self._dofs if self._root else np.zeros(0, dtype=np.int64)
        index = PETSc.IS().createGeneral(mine.astype(PETSc.IntType), comm=comm)
        self._values = PETSc.Vec().createSeq(len(mine), comm=MPI.COMM_SELF)
        self._scatter = PETSc.Scatter().create(x, index, self._values, None)

    def extend_pattern(self, A: PETSc.Mat) -> None:
        """Add every pair block to the nonzero pattern of the assembled matrix A (zeros), so
        that later insertions find their entries: inserting new nonzeros one by one into an
        assembled AIJ matrix reallocates its rows and costs minutes on a segment mesh."""
        comm = A.getComm()
        pre = PETSc.Mat().create(comm)
        pre.setType(PETSc.Mat.Type.PREALLOCATOR)
        pre.setSizes(A.getSizes(), bsize=A.getBlockSize())
        pre.setUp()
        if self._root:
            for dofs, _ in self._blocks:
                for block in dofs:
                    idx = block.ravel().astype(PETSc.IntType)
                    pre.setValues(idx, idx, np.zeros((len(idx), len(idx))))
        pre.assemble()
        pattern = PETSc.Mat().create(comm)
        pattern.setType(A.getType())
        pattern.setSizes(A.getSizes(), bsize=A.getBlockSize())
        pre.preallocatorPreallocate(pattern, fill=True)
        pattern.assemble()
        A.axpy(1.0, pattern, structure=PETSc.Mat.Structure.DIFFERENT_NONZERO_PATTERN)
        pattern.destroy()
        pre.destroy()

    def relative_displacements(self, x: PETSc.Vec) -> list[np.ndarray] | None:
        """du (n, 3) of every pair set (rank 0; None elsewhere); collective."""
        self._scatter.scatter(x, self._values, addv=PETSc.InsertMode.INSERT,
                              mode=PETSc.ScatterMode.FORWARD)
        if not self._root:
            return None
        u = self._values.getArray(readonly=True)

        def at(c: PointCoupling) -> np.ndarray:  # u(p) from the gathered values
            return np.einsum("nv,nvc->nc", c.weights, u[np.searchsorted(self._dofs, c.dofs)])

        return [at(ps.upper) - at(ps.lower) for ps in self.pair_sets]

    def add(self, x: PETSc.Vec, F: PETSc.Vec | None = None, A: PETSc.Mat | None = None,
            first: bool = False) -> None:
        """Add the pairs' forces to F and/or their tangents to A (then assembles them); `first`
        is passed to the laws (the first Newton iteration of a load step)."""
        dus = self.relative_displacements(x)
        if A is not None:
            A.setOption(PETSc.Mat.Option.NEW_NONZERO_ALLOCATION_ERR, False)
        if self._root:
            for ps, (dofs, s), du in zip(self.pair_sets, self._blocks, dus, strict=True):
                f, K = ps.law.forces(du, first)
                for i in range(len(ps)):
                    idx = dofs[i].ravel().astype(PETSc.IntType)
                    if F is not None:
                        F.setValues(idx, np.outer(s[i], f[i]).ravel(),
                                    addv=PETSc.InsertMode.ADD_VALUES)
                    if A is not None:
                        A.setValues(idx, idx, np.kron(np.outer(s[i], s[i]), K[i]),
                                    addv=PETSc.InsertMode.ADD_VALUES)
        if F is not None:
            F.assemble()
        if A is not None:
            A.assemble()

    def update(self, x: PETSc.Vec) -> bool:
        """Refresh every law's fixed state at x; True (on every rank) if one changed; collective."""
        dus = self.relative_displacements(x)
        changed = False
        if self._root:
            for ps, du in zip(self.pair_sets, dus, strict=True):
                changed |= ps.law.update(du)
        return x.getComm().tompi4py().bcast(changed, root=0)

    def step_limit(self, x: PETSc.Vec, y: PETSc.Vec) -> float:
        """Fraction of the Newton update x -> x - y admitted by all laws (on every rank);
        collective."""
        dus = self.relative_displacements(x)
        steps = self.relative_displacements(y)
        alpha = 1.0
        if self._root:
            for ps, du, step in zip(self.pair_sets, dus, steps, strict=True):
                alpha = min(alpha, ps.law.step_limit(du, -step))
        return x.getComm().tompi4py().bcast(alpha, root=0)

    def fixed(self) -> list | None:
        """Every law's state held fixed within a Newton solve (rank 0; None elsewhere)."""
        return [ps.law.fixed() for ps in self.pair_sets] if self._root else None

    def hold(self, states: list | None) -> None:
        """Every law takes its state of `states` (of `fixed`; rank 0) as its first guess."""
        if self._root:
            for ps, state in zip(self.pair_sets, states, strict=True):
                ps.law.hold(state)

    def restore(self) -> None:
        """Every law back to its last committed state (not collective)."""
        for ps in self.pair_sets:
            ps.law.restore()

    def commit(self, x: PETSc.Vec) -> None:
        """Tell every law that x is a converged state; collective."""
        dus = self.relative_displacements(x)
        if self._root:
            for ps, du in zip(self.pair_sets, dus, strict=True):
                ps.law.commit(du)
