"""Ligaments as tension-only springs between attachment landmarks (L4 point, L5 point) per fibre.

A fibre's rest length is L_r = L0 / (1 + e_ref), with L0 the distance of its landmarks in the
neutral geometry and e_ref the ligament's reference strain (its in-situ strain: > 0 pre-tensioned,
< 0 slack); its strain is e = L / L_r - 1. Stiffness k = E A / L_r per ligament (paper Table 4: E
and cross-section area), shared over its fibres in proportion to their count (each fibre carries
A / n). Force laws: `linear` (F = E A e for e > 0, else 0) or `toe` (Blankevoort & Huiskes, J
Biomech Eng 113:263, 1991: quadratic toe region up to the transition strain e_t, then linear with
the same slope; F = E A e^2 / (2 e_t) for 0 < e < e_t, F = E A (e - e_t / 2) beyond), with e_t
from the bilinear data of the Goel / Shirazi-Adl lineage (reference/spine-mechanics.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Paper Table 4 (E in MPa, area in mm^2) and transition strains of the toe region
#: (reference/spine-mechanics.md, bilinear table of the Goel / Shirazi-Adl lineage).
LIGAMENT_DATA = {
    # name: (E_MPa, area_mm2, transition_strain)
    "ALL": (20.0, 65.0, 0.12),
    "PLL": (20.0, 20.0, 0.11),
    "LF": (19.5, 40.0, 0.062),
    "ITL.left": (59.0, 1.8, 0.18),
    "ITL.right": (59.0, 1.8, 0.18),
    "ISL": (12.0, 40.0, 0.14),
    "SSL": (15.0, 30.0, 0.20),
    # Capsular ligaments, one per facet joint: not in the paper's Table 4; the large-strain
    # branch of the bilinear data (E 33 MPa, area 30 mm^2, transition 25 %).
    "CL.left": (33.0, 30.0, 0.25),
    "CL.right": (33.0, 30.0, 0.25),
}
LAWS = ("linear", "toe")


def kind(ligament: str) -> str:
    """The ligament's name without its side ('ITL.left' -> 'ITL'): the key of its data."""
    return ligament.split(".")[0]


@dataclass(frozen=True)
class Fibre:
    """One spring: attachment points (mm) on L4 and L5, stiffness (N/mm of elongation beyond the
    rest length), transition strain, and reference strain (its strain at the landmarks)."""

    ligament: str
    upper_mm: np.ndarray
    lower_mm: np.ndarray
    stiffness_N_mm: float
    transition_strain: float
    reference_strain: float = 0.0

    @property
    def length_mm(self) -> float:
        """Distance of the attachment points in the neutral geometry, L0 (mm)."""
        return float(np.linalg.norm(self.upper_mm - self.lower_mm))

    @property
    def rest_length_mm(self) -> float:
        """Length at which the fibre starts to carry load, L0 / (1 + e_ref) (mm)."""
        return self.length_mm / (1.0 + self.reference_strain)


def fibres(landmarks: dict[str, list], reference_strain: dict[str, float] | None = None
           ) -> list[Fibre]:
    """Springs of every ligament in `landmarks` (name -> [[L4 point, L5 point], ...]), with the
    reference strains of `reference_strain` (per `kind` of ligament; 0 for those it lacks)."""
    out = []
    for name, pairs in landmarks.items():
        E, area, e_t = LIGAMENT_DATA[name]
        e_ref = (reference_strain or {}).get(kind(name), 0.0)
        for upper, lower in pairs:
            a, b = np.asarray(upper, float), np.asarray(lower, float)
            length = float(np.linalg.norm(a - b))
            if length <= 0:
                raise ValueError(f"ligament {name}: a fibre has coincident attachment points")
            rest = length / (1.0 + e_ref)
            out.append(Fibre(name, a, b, E * area / len(pairs) / rest, e_t, e_ref))
    return out


def tension(k, rest_mm, e_t, elongation_mm, law: str = "linear"):
    """Force F (N) and stiffness dF/dL (N/mm) of springs (k N/mm, rest length L_r mm, transition
    strain e_t) at elongation dL (mm) beyond the rest length; zero when slack (dL <= 0). Arrays
    broadcast."""
    dl = np.asarray(elongation_mm, float)
    taut = dl > 0.0
    if law == "linear":
        # At dL = 0 the stiffness is k (one of the generalised derivatives of the kink): a spring
        # that starts at its rest length then resists the first Newton step.
        return np.where(taut, k * dl, 0.0), np.where(dl >= 0.0, k, 0.0) * np.ones_like(dl)
    if law != "toe":
        raise ValueError(f"ligaments.law: {law!r} is not one of {', '.join(LAWS)}")
    e = np.maximum(dl, 0.0) / rest_mm
    toe = e < e_t
    force = np.where(toe, k * rest_mm * e * e / (2 * e_t), k * rest_mm * (e - e_t / 2))
    stiffness = np.where(toe, k * e / e_t, k)
    return np.where(taut, force, 0.0), np.where(taut, stiffness, 0.0)


def fibre_force(fibre: Fibre, elongation_mm, law: str = "linear"):
    """Tensile force (N) of a fibre at elongation dL (mm) beyond its rest length; zero when slack
    (dL <= 0)."""
    return tension(fibre.stiffness_N_mm, fibre.rest_length_mm, fibre.transition_strain,
                   elongation_mm, law)[0]


class LigamentSprings:
    """Pair law (mechanics.pairs) of tension-only fibres along their initial direction (small
    rotations: the direction is not updated), F n on the L4 point and -F n on the L5 point.

    A fibre's elongation beyond its rest length at relative displacement du is du . n + L0 - L_r:
    a pre-tensioned fibre (L_r < L0) pulls at du = 0. Its force is internal, not a load, so it is
    not scaled by the load factor: the first load step sees it whole, and under zero load the
    segment settles into the equilibrium of the pre-tension (docs/nonlinear.md).
    """

    def __init__(self, fibres: list[Fibre], law: str = "linear") -> None:
        tension(1.0, 1.0, 0.1, 0.0, law)  # validates the law name
        self.fibres, self.law = fibres, law
        d = np.array([f.upper_mm - f.lower_mm for f in fibres]).reshape(-1, 3)
        length = np.linalg.norm(d, axis=1)
        self.directions = d / length[:, None]
        self.rest_length_mm = np.array([f.rest_length_mm for f in fibres])
        self.pre_elongation_mm = length - self.rest_length_mm  # elongation at du = 0
        self.stiffness_N_mm = np.array([f.stiffness_N_mm for f in fibres])
        self.transition_strain = np.array([f.transition_strain for f in fibres])
        self.snap_mm = 0.0  # largest distance from a landmark to the node it is attached to

    def elongations(self, du: np.ndarray) -> np.ndarray:
        """Elongation (mm) of every fibre beyond its rest length at relative displacement du."""
        return np.einsum("nc,nc->n", du, self.directions) + self.pre_elongation_mm

    def forces(self, du: np.ndarray, first: bool = False) -> tuple[np.ndarray, np.ndarray]:
        F, dF = tension(self.stiffness_N_mm, self.rest_length_mm, self.transition_strain,
                        self.elongations(du), self.law)
        n = self.directions
        return F[:, None] * n, dF[:, None, None] * n[:, :, None] * n[:, None, :]

    def commit(self, du: np.ndarray) -> None:
        """Elastic: no history."""

    def update(self, du: np.ndarray) -> bool:
        """Nothing held fixed within a Newton solve."""
        return False

    def restore(self) -> None:
        """Elastic: no history."""

    def fixed(self) -> None:
        """Nothing held fixed within a Newton solve."""

    def hold(self, state: None) -> None:
        """Nothing held fixed within a Newton solve."""

    def step_limit(self, du: np.ndarray, ddu: np.ndarray) -> float:
        """No limit: a fibre's force is at most linear in its elongation."""
        return 1.0

    def report(self, du: np.ndarray) -> dict:
        """Per ligament: fibres, taut fibres, max elongation beyond the rest length (mm), total
        force (N)."""
        dl = self.elongations(du)
        F, _ = tension(self.stiffness_N_mm, self.rest_length_mm, self.transition_strain, dl,
                       self.law)
        out = {}
        for name in dict.fromkeys(f.ligament for f in self.fibres):
            sel = np.array([f.ligament == name for f in self.fibres])
            out[name] = {
                "fibres": int(sel.sum()),
                "taut": int((dl[sel] > 0).sum()),
                "elongation_mm_max": float(dl[sel].max()),
                "force_N": float(F[sel].sum()),
                "state": "active" if (dl[sel] > 0).any() else "slack",
            }
        return out
