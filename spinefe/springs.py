"""Axial springs between points of the mesh (ligament fibres), added to the assembled stiffness.

A spring of stiffness k (N/mm) along the unit vector n between points a and b resists the
elongation dL = n . (u(a) - u(b)) with the force k dL (small displacements). With the P1 couplings
u(p) = sum_i w_i u_i (spinefe.points), its stiffness is k s s^T (x) n n^T, where s holds +w_a on
a's vertices and -w_b on b's. Rank 0 inserts every spring on global indices (ADD_VALUES; PETSc moves
off-process rows), after the finite-element assembly and before the constrained rows are zeroed.
"""

from __future__ import annotations

import numpy as np
from petsc4py import PETSc

from spinefe.points import PointCoupling


def spring_blocks(upper: PointCoupling, lower: PointCoupling, directions: np.ndarray,
                  stiffness_N_mm: np.ndarray):
    """Per spring: global dof indices (24,) and the dense stiffness block (24, 24)."""
    for i, (n, k) in enumerate(zip(directions, stiffness_N_mm, strict=True)):
        dofs = np.concatenate([upper.dofs[i].ravel(), lower.dofs[i].ravel()])
        s = np.concatenate([upper.weights[i], -lower.weights[i]])  # (8,) vertex signs x weights
        g = (s[:, None] * np.asarray(n, float)[None, :]).ravel()  # d(dL)/d(u dofs), (24,)
        yield dofs.astype(PETSc.IntType), k * np.outer(g, g)


def add_springs(A: PETSc.Mat, upper: PointCoupling, lower: PointCoupling,
                directions: np.ndarray, stiffness_N_mm: np.ndarray, active=None) -> None:
    """Add the active springs' stiffness to the assembled matrix A; collective (A.assemble)."""
    A.setOption(PETSc.Mat.Option.NEW_NONZERO_ALLOCATION_ERR, False)
    if A.getComm().getRank() == 0:
        for i, (dofs, block) in enumerate(spring_blocks(upper, lower, directions, stiffness_N_mm)):
            if active is None or active[i]:
                A.setValues(dofs, dofs, block, addv=PETSc.InsertMode.ADD_VALUES)
    A.assemble()


def elongations(upper: PointCoupling, lower: PointCoupling, directions: np.ndarray,
                u_global: np.ndarray) -> np.ndarray:
    """dL (mm) of every spring for the global displacement vector."""
    du = upper.displacement(u_global) - lower.displacement(u_global)
    return np.einsum("nc,nc->n", du, np.asarray(directions, float))
