"""Dose-volume histograms and plan metrics from volume-weighted dose samples.

A structure is described by samples: dose (Gy) and the volume (mm^3) each sample stands for (cell
volumes, quadrature weights, voxel volumes). Statistics are exact for that sample set: the samples
are sorted by dose (ties broken by volume, so the result does not depend on the sample order, e.g.
on the MPI partition) and the volumes accumulated from the hottest down.

Definitions (percent of the structure's volume, doses in Gy):
- D_x: the minimum dose received by the hottest x % of the volume (D90, D100 = minimum dose);
  D_v cc: the same for the hottest v cm^3 (organ at risk: D0.1cc, D1cc, D2cc); Dmax: largest sample.
- V_x: the percentage of the volume receiving at least x % of the prescription.
- Coverage index CI = V_T,Rx / V_T (= V100 / 100); external volume index EI = V_N,Rx / V_T;
  homogeneity index HI = (V_T,Rx - V_T,1.5Rx) / V_T,Rx; conformation number
  COIN = CI * V_T,Rx / V_Rx, where T is the target, N the normal tissue outside it and V_Rx the
  total volume receiving the prescription (Saw and Suntharalingam, Int. J. Radiat. Oncol. Biol.
  Phys. 20:135, 1991; Saw et al., ibid. 26:519, 1993; Baltas et al., ibid. 40:515, 1998).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TARGET_DOSE_LEVELS = (90, 100, 150, 200)  # V_x, percent of the prescription
OAR_VOLUMES_CC = (0.1, 1.0, 2.0)


class DVHError(ValueError):
    """Invalid input to a DVH statistic."""


@dataclass(frozen=True)
class Samples:
    """Dose samples of one structure, sorted from the hottest down, with cumulative volume."""

    dose_Gy: np.ndarray
    volume_mm3: np.ndarray
    cumulative_mm3: np.ndarray

    @classmethod
    def of(cls, dose_Gy, volume_mm3) -> Samples:
        dose = np.asarray(dose_Gy, float).ravel()
        vol = np.asarray(volume_mm3, float).ravel()
        if dose.shape != vol.shape:
            raise DVHError(f"dose ({dose.size}) and volume ({vol.size}) sample counts differ")
        if dose.size == 0:
            raise DVHError("the structure has no dose samples (empty region?)")
        if not np.all(np.isfinite(dose)):
            raise DVHError("dose samples must be finite (exclude points inside seed capsules)")
        if np.any(vol <= 0):
            raise DVHError("sample volumes must be positive")
        order = np.lexsort((-vol, -dose))
        dose, vol = dose[order], vol[order]
        return cls(dose, vol, np.cumsum(vol))

    @property
    def volume_mm3_total(self) -> float:
        return float(self.cumulative_mm3[-1])

    def dose_covering(self, volume_mm3: float) -> float:
        """Minimum dose of the hottest `volume_mm3` (Gy); the whole volume gives the minimum."""
        k = np.searchsorted(self.cumulative_mm3, volume_mm3 * (1 - 1e-12), side="left")
        return float(self.dose_Gy[min(k, self.dose_Gy.size - 1)])

    def D(self, percent: float) -> float:
        """D_x: minimum dose of the hottest `percent` % of the volume (Gy)."""
        return self.dose_covering(self.volume_mm3_total * percent / 100.0)

    def V(self, dose_Gy: float) -> float:
        """Percentage of the volume receiving at least `dose_Gy`."""
        k = np.searchsorted(-self.dose_Gy, -dose_Gy, side="right")
        return 100.0 * (float(self.cumulative_mm3[k - 1]) if k else 0.0) / self.volume_mm3_total

    def volume_at_least(self, dose_Gy: float) -> float:
        """Volume (mm^3) receiving at least `dose_Gy`."""
        return self.V(dose_Gy) * self.volume_mm3_total / 100.0

    def cumulative(self, dose_axis_Gy) -> np.ndarray:
        """Cumulative DVH: percent of the volume receiving at least each dose of the axis."""
        k = np.searchsorted(-self.dose_Gy, -np.asarray(dose_axis_Gy, float), side="right")
        cum = np.concatenate([[0.0], self.cumulative_mm3])
        return 100.0 * cum[k] / self.volume_mm3_total


def _check_prescription(prescription_Gy: float) -> None:
    if not (np.isfinite(prescription_Gy) and prescription_Gy > 0):
        raise DVHError(f"prescription_Gy: must be > 0 (Gy), got {prescription_Gy}")


def target_metrics(target: Samples, prescription_Gy: float) -> dict[str, float]:
    """D90, D100 (Gy) and V90, V100, V150, V200 (% of the target volume)."""
    _check_prescription(prescription_Gy)
    out = {"volume_cc": target.volume_mm3_total / 1000.0, "D90_Gy": target.D(90.0),
           "D100_Gy": target.D(100.0)}
    for level in TARGET_DOSE_LEVELS:
        out[f"V{level}_percent"] = target.V(prescription_Gy * level / 100.0)
    return out


def oar_metrics(oar: Samples) -> dict[str, float]:
    """Dmax and D0.1cc, D1cc, D2cc (Gy; NaN where the organ is smaller than the volume)."""
    out = {"volume_cc": oar.volume_mm3_total / 1000.0, "Dmax_Gy": float(oar.dose_Gy[0])}
    for cc in OAR_VOLUMES_CC:
        out[f"D{cc:g}cc_Gy"] = (oar.dose_covering(cc * 1000.0)
                                if cc * 1000.0 <= oar.volume_mm3_total else float("nan"))
    return out


def conformity_metrics(target: Samples, normal_rx_mm3: float, prescription_Gy: float) -> dict:
    """CI, EI, HI and COIN (module docstring); `normal_rx_mm3` is the volume of normal tissue
    (outside the target) receiving at least the prescription."""
    _check_prescription(prescription_Gy)
    vt = target.volume_mm3_total
    vt_rx = target.volume_at_least(prescription_Gy)
    vt_150 = target.volume_at_least(1.5 * prescription_Gy)
    return {
        "CI": vt_rx / vt,
        "EI": normal_rx_mm3 / vt,
        "HI": (vt_rx - vt_150) / vt_rx if vt_rx > 0 else float("nan"),
        "COIN": (vt_rx / vt) * (vt_rx / (vt_rx + normal_rx_mm3)) if vt_rx > 0 else 0.0,
    }
