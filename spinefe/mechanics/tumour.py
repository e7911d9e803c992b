"""Heterogeneous tumour tissue: a modulus that varies over the lesion, reproducible from a seed.

- `random`: log-normal E = E_mean exp(s g - s^2 / 2), s^2 = ln(1 + cov^2), so that E has the
  mean E_mean and the coefficient of variation cov, with g a Gaussian random field of unit
  variance and Gaussian covariance of integral scale l, rho(r) = exp(-pi r^2 / (4 l^2)).
- `mixed`: lytic tissue (E_mean) with blastic patches where the same kind of field exceeds its
  (1 - fraction) quantile, so that the patches fill `fraction` of the lesion on average.
- `radial`: E rising linearly in the ellipsoidal radius from the core's modulus at the centre
  (necrotic core) to E_mean on the lesion surface.

The field is evaluated point by point from its seed by the randomisation method (a sum of
random Fourier modes, Heße, Prykhodko, Schlüter & Attinger, Environ Model Softw 55:32, 2014), so
every cell gets the same value on any number of MPI ranks. It is written here rather than taken
from gstools, which implements the same method: gstools imports h5py (through emcee), and h5py
fails to load beside the HDF5 library of the DOLFINx wheel ("Not a datatype").
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.stats import norm

from spinefe.config.sections import Lesion, MixedLesion, RadialGradient, RandomField

log = logging.getLogger(__name__)

#: Fourier modes of the randomisation method (gstools' default is also 1000).
MODES = 1000
#: Points per block of the evaluation (about 0.2 GB of phases at a time).
CHUNK = 10_000


def gaussian_field(correlation_length_mm: float, seed: int, x: np.ndarray) -> np.ndarray:
    """A Gaussian random field of unit variance and Gaussian covariance of integral scale
    `correlation_length_mm` at points x (n, 3), mm:
    g(x) = N^-1/2 sum_j (z_j cos(k_j . x) + w_j sin(k_j . x)), with z, w standard normal and the
    wave vectors k_j drawn from the covariance's spectral density, normal with variance
    pi / (2 l^2) per component."""
    rng = np.random.default_rng(seed)
    k = rng.normal(0.0, np.sqrt(np.pi / 2.0) / correlation_length_mm, size=(MODES, 3))
    z, w = rng.standard_normal((2, MODES))
    x = np.asarray(x, float)
    out = np.empty(len(x))
    for start in range(0, len(x), CHUNK):  # (CHUNK x MODES) phases at a time: bounded memory
        phase = x[start:start + CHUNK] @ k.T
        out[start:start + CHUNK] = (np.cos(phase) @ z + np.sin(phase) @ w) / np.sqrt(MODES)
    return out


def ellipsoidal_radius(lesion: Lesion, x: np.ndarray) -> np.ndarray:
    """0 at the lesion centre, 1 on its surface."""
    d = (x - np.asarray(lesion.centre_mm)) / np.asarray(lesion.radii_mm)
    return np.sqrt(np.einsum("ij,ij->i", d, d))


def tumour_modulus(variation: RandomField | RadialGradient | MixedLesion, E_MPa: float,
                   lesion: Lesion, x: np.ndarray) -> np.ndarray:
    """The modulus (MPa) of tumour tissue of mean (or rim) modulus E_MPa at points x (n, 3)."""
    if isinstance(variation, RandomField):
        s2 = np.log1p(variation.cov ** 2)
        g = gaussian_field(variation.correlation_length_mm, variation.seed, x)
        return E_MPa * np.exp(np.sqrt(s2) * g - 0.5 * s2)
    if isinstance(variation, MixedLesion):
        g = gaussian_field(variation.correlation_length_mm, variation.seed, x)
        blastic = g > norm.ppf(1.0 - variation.blastic_fraction)
        return np.where(blastic, variation.blastic_E_MPa, E_MPa)
    r = np.clip(ellipsoidal_radius(lesion, x), 0.0, 1.0)
    return variation.core_E_MPa + (E_MPa - variation.core_E_MPa) * r


def statistics(E: np.ndarray, volume: np.ndarray, comm) -> dict:
    """Volume-weighted mean, coefficient of variation, min, p5, p95, max (MPa) of cell values
    over all ranks, and the volume (mm^3); on every rank."""
    parts = comm.allgather((E, volume))
    E = np.concatenate([p[0] for p in parts])
    w = np.concatenate([p[1] for p in parts])
    if E.size == 0:
        return {}
    mean = float(np.average(E, weights=w))
    std = float(np.sqrt(np.average((E - mean) ** 2, weights=w)))
    order = np.argsort(E)
    cdf = np.cumsum(w[order]) / w.sum()
    p5, p95 = (float(E[order][np.searchsorted(cdf, q)]) for q in (0.05, 0.95))
    return {"mean_MPa": mean, "cov": std / mean, "min_MPa": float(E.min()), "p5_MPa": p5,
            "p95_MPa": p95, "max_MPa": float(E.max()), "volume_mm3": float(w.sum())}


def warn_if_unresolved(variation, cell_volume_mm3: np.ndarray, comm) -> None:
    """Log a warning when the field's correlation length is below the lesion's median element
    size (a regular tetrahedron's edge of the median cell volume)."""
    length = getattr(variation, "correlation_length_mm", None)
    volumes = np.concatenate(comm.allgather(cell_volume_mm3))
    if length is None or volumes.size == 0:
        return
    h = float((6.0 * np.sqrt(2.0) * np.median(volumes)) ** (1.0 / 3.0))
    if length < h and comm.rank == 0:
        log.warning("materials.metastatic_tumor.variation.correlation_length_mm = %g mm is below "
                    "the lesion's element size (%.2f mm): the mesh cannot resolve the field",
                    length, h)
