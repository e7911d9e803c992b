"""Density-dependent bone modulus E = a rho^b (Morgan, Bayraktar & Keaveny, J Biomech 36:897,
2003, vertebral trabecular bone: a = 4730 MPa, b = 1.56, rho the wet apparent density in
g/cm^3), per cell, from a uniform density or a density grid.

A density grid is a NumPy .npz file with the arrays `rho_g_cm3` (nx, ny, nz), `origin_mm` (3, the
centre of voxel 0) and `spacing_mm` (3), in the segment's frame (mm). (Not HDF5: h5py fails to
load beside the HDF5 library of the DOLFINx wheel.) It is sampled at the cell
midpoints by trilinear interpolation (scipy.interpolate.RegularGridInterpolator); a midpoint
outside the grid is an error, not an extrapolation. This is the format a calibrated CT gives
after the HU-to-density conversion.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.interpolate import RegularGridInterpolator

from spinefe.common.errors import ConfigError


def modulus(rho_g_cm3, a_MPa: float, b: float):
    """E = a rho^b (MPa)."""
    return a_MPa * np.power(rho_g_cm3, b)


@dataclass(frozen=True)
class DensityGrid:
    """A regular grid of apparent density (g/cm^3) with its origin and spacing (mm)."""

    rho_g_cm3: np.ndarray
    origin_mm: np.ndarray
    spacing_mm: np.ndarray

    def axes(self) -> tuple[np.ndarray, ...]:
        return tuple(o + h * np.arange(n) for o, h, n in
                     zip(self.origin_mm, self.spacing_mm, self.rho_g_cm3.shape, strict=True))

    def sample(self, points_mm: np.ndarray, comm, key: str, owned: np.ndarray) -> np.ndarray:
        """Trilinear density at points (n, 3) of this rank (`owned`: which are this rank's own
        cells, counted in messages); collective: ConfigError on every rank, naming `key`, when a
        point of any rank lies outside the grid or gets rho <= 0."""
        axes = self.axes()
        outside = np.zeros(len(points_mm), dtype=bool)
        for k, ax in enumerate(axes):
            outside |= (points_mm[:, k] < ax[0]) | (points_mm[:, k] > ax[-1])
        rho = np.full(len(points_mm), np.nan)
        rho[~outside] = RegularGridInterpolator(axes, self.rho_g_cm3)(points_mm[~outside])
        bad = outside | ~(rho > 0.0)
        examples = comm.allgather(points_mm[bad][:1])
        counts = comm.allgather((int((outside & owned).sum()),
                                 int((bad & ~outside & owned).sum())))
        n_out, n_low = (sum(c[i] for c in counts) for i in (0, 1))
        if n_out or n_low:
            p = np.concatenate(examples)[0]
            raise ConfigError(
                f"{key}: {n_out} cell midpoints lie outside the density grid and {n_low} get "
                f"rho <= 0, e.g. {np.round(p, 2).tolist()} mm; the grid spans "
                f"{[[float(a[0]), float(a[-1])] for a in axes]} mm")
        return rho


def read_grid(path: str | Path) -> DensityGrid:
    """The density grid of a .npz file (module docstring); ConfigError naming the file and what
    is wrong with it (every rank reads it, so every rank raises)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            grid = DensityGrid(*(np.asarray(f[k], dtype=float)
                                 for k in ("rho_g_cm3", "origin_mm", "spacing_mm")))
    except (OSError, KeyError, ValueError) as e:
        raise ConfigError(f"{path}: not a density grid (a .npz file with rho_g_cm3, origin_mm, "
                         f"spacing_mm): {e}") from None
    if grid.rho_g_cm3.ndim != 3 or min(grid.rho_g_cm3.shape) < 2:
        raise ConfigError(f"{path}: rho_g_cm3 must be a 3-D array of at least 2 x 2 x 2 values, "
                         f"got shape {grid.rho_g_cm3.shape}")
    if grid.origin_mm.shape != (3,) or grid.spacing_mm.shape != (3,):
        raise ConfigError(f"{path}: origin_mm and spacing_mm must hold 3 values each")
    if not np.all(grid.spacing_mm > 0) or not np.all(np.isfinite(grid.origin_mm)):
        raise ConfigError(f"{path}: spacing_mm must be positive and origin_mm finite")
    if not np.all(np.isfinite(grid.rho_g_cm3)):
        raise ConfigError(f"{path}: rho_g_cm3 must be finite everywhere")
    return grid
