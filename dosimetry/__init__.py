"""TG-43U1 dosimetry of I-125 seed implants: seed models, point doses, DVHs and plan metrics.

The core is numpy (with a numba-compiled evaluation kernel) and never imports dolfinx; the mesh
adapter lives in `spinefe.dose`. Units: positions in mm (DICOM LPS), air-kerma strength S_K in U,
apparent activity in mCi, dose rates in cGy/h, doses in Gy.
"""

from dosimetry.dvh import Samples, conformity_metrics, oar_metrics, target_metrics
from dosimetry.plan import Plan, PlanError, Seed, read_plan, strength_from_activity, write_plan
from dosimetry.seed_models import (
    HALF_LIFE_H,
    MEAN_LIFE_H,
    U_PER_MCI,
    SeedModel,
    SeedModelError,
    builtin_models,
    load_seed_model,
)
from dosimetry.tg43 import PointDose, dose_by_time_Gy, dose_rate, total_dose_Gy

__all__ = [
    "HALF_LIFE_H",
    "MEAN_LIFE_H",
    "U_PER_MCI",
    "Plan",
    "PlanError",
    "PointDose",
    "Samples",
    "Seed",
    "SeedModel",
    "SeedModelError",
    "builtin_models",
    "conformity_metrics",
    "dose_by_time_Gy",
    "dose_rate",
    "load_seed_model",
    "oar_metrics",
    "read_plan",
    "strength_from_activity",
    "target_metrics",
    "total_dose_Gy",
    "write_plan",
]
