"""Rigid-body motion of a vertebra from its nodal displacements: range of motion (ROM).

The rotation of L4 relative to L5 is the least-squares rigid fit (Kabsch / Umeyama: SVD of the
cross-covariance of the centred point sets) of L4's nodes before and after deformation; L5's own
rigid motion is removed the same way. numpy's SVD does the work; scipy's `Rotation.align_vectors`
would too, but scipy is not a dependency of the package.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mpi4py import MPI


@dataclass(frozen=True)
class RigidMotion:
    """x' = R (x - c) + c + t: rotation R about the centroid c (mm) and translation t (mm)."""

    rotation: np.ndarray
    centroid_mm: np.ndarray
    translation_mm: np.ndarray

    @property
    def rotation_vector_deg(self) -> np.ndarray:
        """Axis times angle (degrees), components about x (left), y (posterior), z (superior)."""
        R = self.rotation
        angle = np.arccos(np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0))
        if angle < 1e-12:
            return np.zeros(3)
        axis = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
        return np.degrees(angle) * axis / (2.0 * np.sin(angle))


def rigid_fit(x_mm: np.ndarray, u_mm: np.ndarray, comm: MPI.Comm = MPI.COMM_SELF,
              weights: np.ndarray | None = None) -> RigidMotion:
    """Least-squares rigid motion taking points x to x + u (owned points of each rank; the sums
    are reduced over `comm`, so every rank gets the same fit)."""
    x = np.asarray(x_mm, float).reshape(-1, 3)
    y = x + np.asarray(u_mm, float).reshape(-1, 3)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, float)
    total = comm.allreduce(float(w.sum()), op=MPI.SUM)
    if total <= 0:
        raise ValueError("rigid_fit: no points")
    cx = comm.allreduce(w @ x, op=MPI.SUM) / total
    cy = comm.allreduce(w @ y, op=MPI.SUM) / total
    H = comm.allreduce((w[:, None] * (x - cx)).T @ (y - cy), op=MPI.SUM)
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(Vt.T @ U.T))
    R = Vt.T @ np.diag([1.0, 1.0, d]) @ U.T
    return RigidMotion(R, cx, cy - cx)


def relative_rotation_deg(upper: RigidMotion, lower: RigidMotion) -> np.ndarray:
    """Rotation vector (degrees) of the upper vertebra relative to the lower one."""
    rel = RigidMotion(lower.rotation.T @ upper.rotation, upper.centroid_mm, np.zeros(3))
    return rel.rotation_vector_deg
