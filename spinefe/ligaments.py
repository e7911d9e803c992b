"""Ligaments as tension-only springs between attachment landmarks (L4 point, L5 point) per fibre.

Stiffness k = E A / L0 per ligament (paper Table 4: E and cross-section area; L0 from the
geometry), shared over its fibres in proportion to their count (each fibre carries A / n). Force
laws: `linear` (F = k dL for dL > 0, else 0) or `toe` (Blankevoort & Huiskes, J Biomech Eng
113:263, 1991: quadratic toe region up to the transition strain e_t, then linear with the same
slope k; F = k L0 e^2 / (2 e_t) for 0 < e < e_t, F = k L0 (e - e_t / 2) beyond), with e_t from the
bilinear data of the Goel / Shirazi-Adl lineage (reference/spine-mechanics.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Paper Table 4 (E in MPa, area in mm^2) and transition strains of the toe region.
LIGAMENT_DATA = {
    # name: (E_MPa, area_mm2, transition_strain)
    "ALL": (20.0, 65.0, 0.12),
    "PLL": (20.0, 20.0, 0.11),
    "LF": (19.5, 40.0, 0.062),
    "ITL.left": (59.0, 1.8, 0.18),
    "ITL.right": (59.0, 1.8, 0.18),
    "ISL": (12.0, 40.0, 0.14),
    "SSL": (15.0, 30.0, 0.20),
}
LAWS = ("linear", "toe")


@dataclass(frozen=True)
class Fibre:
    """One spring: attachment points (mm) on L4 and L5, stiffness (N/mm), transition strain."""

    ligament: str
    upper_mm: np.ndarray
    lower_mm: np.ndarray
    stiffness_N_mm: float
    transition_strain: float

    @property
    def rest_length_mm(self) -> float:
        return float(np.linalg.norm(self.upper_mm - self.lower_mm))


def fibres(landmarks: dict[str, list]) -> list[Fibre]:
    """Springs of every ligament in `landmarks` (name -> [[L4 point, L5 point], ...])."""
    out = []
    for name, pairs in landmarks.items():
        E, area, e_t = LIGAMENT_DATA[name]
        for upper, lower in pairs:
            a, b = np.asarray(upper, float), np.asarray(lower, float)
            length = float(np.linalg.norm(a - b))
            if length <= 0:
                raise ValueError(f"ligament {name}: a fibre has coincident attachment points")
            out.append(Fibre(name, a, b, E * area / len(pairs) / length, e_t))
    return out


def fibre_force(fibre: Fibre, elongation_mm, law: str = "linear"):
    """Tensile force (N) of a fibre at elongation dL (mm); zero when slack (dL <= 0)."""
    dl = np.asarray(elongation_mm, float)
    k = fibre.stiffness_N_mm
    if law == "linear":
        return k * np.maximum(dl, 0.0)
    if law != "toe":
        raise ValueError(f"ligaments.law: {law!r} is not one of {', '.join(LAWS)}")
    L0, e_t = fibre.rest_length_mm, fibre.transition_strain
    e = np.maximum(dl, 0.0) / L0
    return np.where(e < e_t, k * L0 * e * e / (2 * e_t), k * L0 * (e - e_t / 2))
