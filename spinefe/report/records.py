"""What each study job returns: a typed record of scalars whose `to_dict` is the job's row of
the study table (summary.csv, each case's summary.json "scalars"), and whose `KEY_METRICS` are
the columns the study report plots and tabulates.

The records live here, in report/: the table is what the report reads, and report/ is the
lowest layer that both the jobs (study/, above, which build the records) and the study report
can import; a lower one would own only some of the jobs (the segment and the search are
planning's concepts, the clinical tests are study's). The records import only names (regions,
motions), no DOLFINx, so that the report and the command line stay light. The table stays
flat: keys are dotted names (`L4.cortical.implanted.max_MPa`), as the key functions here spell
them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from spinefe.common.motions import MOTIONS
from spinefe.common.regions import CANCELLOUS, CORTICAL_ENDPLATES
from spinefe.common.trends import PAPER_TRENDS

#: Von Mises statistics of the segment job's table.
STRESS_STATS = ("max", "p99")
#: The segment job's changes between scenarios: name -> (scenario, the one it changes from).
CHANGES = {t.change: (t.new, t.old) for t in PAPER_TRENDS}
#: The lesion's dose metrics of the segment job's table (spinefe.dose plan metrics).
LESION_METRICS = ("D90_Gy", "V100_percent", "V150_percent", "V200_percent")
#: A recommended plan's columns of the optimise job's table (spinefe.planning.optimisation).
PLAN_METRICS = ("seeds", "activity_mCi", "V100_percent", "D90_Gy", "cortical_max_ratio")
#: The two-group tests of the clinical job's table, per time point (spinefe.study.clinical).
CLINICAL_TESTS = ("welch_p", "student_p", "hedges_g")


def stress_key(group: str, scenario: str, stat: str) -> str:
    """The column of a von Mises statistic (MPa) of a stress group in a scenario."""
    return f"{group}.{scenario}.{stat}_MPa"


def change_key(group: str, change: str, stat: str) -> str:
    """The column of a change (%) of a stress group's statistic (`CHANGES`)."""
    return f"{group}.{change}.{stat}_percent"


def lesion_key(metric: str) -> str:
    """The column of a lesion dose metric (`LESION_METRICS`)."""
    return f"lesion.{metric}"


#: The column of the canal's near-maximum dose (Gy to its hottest 0.1 cm3).
CANAL_D01CC_KEY = "canal.D0.1cc_Gy"


@dataclass(frozen=True)
class SegmentScalars:
    """The segment job's scalars: the seeds, the mesh's size, the von Mises statistics (MPa)
    of the paper's indicators per scenario and their changes between scenarios (%), the disc's
    indicators per scenario (where the model gives them), and the seeds' dose."""

    #: The paper's two convergence indicators (L4 cortical shell, L4 superior endplate).
    CONVERGENCE_INDICATORS: ClassVar[tuple[str, ...]] = ("L4.cortical", "L4.endplate_superior")
    #: The paper's two scenario indicators (region groups), with their changes.
    SCENARIO_INDICATORS: ClassVar[tuple[str, ...]] = (CORTICAL_ENDPLATES, CANCELLOUS)
    INDICATORS: ClassVar[tuple[str, ...]] = (*CONVERGENCE_INDICATORS, *SCENARIO_INDICATORS)
    KEY_METRICS: ClassVar[tuple[str, ...]] = (
        "seeds", lesion_key("D90_Gy"), lesion_key("V100_percent"), CANAL_D01CC_KEY,
        change_key(CORTICAL_ENDPLATES, "tumour_vs_healthy", "max"),
        change_key(CORTICAL_ENDPLATES, "implanted_vs_tumour", "max"),
        change_key(CORTICAL_ENDPLATES, "implanted_vs_tumour", "p99"),
        change_key(CANCELLOUS, "implanted_vs_tumour", "max"),
        stress_key("L4.cortical", "implanted", "max"),
        stress_key("L4.endplate_superior", "implanted", "max"))

    seeds: int
    dofs: int
    cells: int
    #: indicator -> scenario -> statistic (`STRESS_STATS`) -> von Mises (MPa)
    von_mises_MPa: Mapping[str, Mapping[str, Mapping[str, float]]]
    #: scenario indicator -> change (`CHANGES`) -> statistic -> change (%)
    changes_percent: Mapping[str, Mapping[str, Mapping[str, float]]]
    #: scenario -> nucleus pressure (MPa), where the model has one
    nucleus_pressure_MPa: Mapping[str, float]
    #: scenario -> disc bulge (mm), where the model has one
    disc_bulge_mm: Mapping[str, float]
    #: `LESION_METRICS` -> value; empty without the dose
    lesion: Mapping[str, float]
    canal_D01cc_Gy: float | None

    def to_dict(self) -> dict:
        """The case's row of the study table (its columns in the table's order)."""
        out = {"seeds": self.seeds, "dofs": self.dofs, "cells": self.cells}
        for group, scenarios in self.von_mises_MPa.items():
            for scenario, stats in scenarios.items():
                out |= {stress_key(group, scenario, s): stats[s] for s in STRESS_STATS}
        for group, changes in self.changes_percent.items():
            for stat in STRESS_STATS:
                out |= {change_key(group, change, stat): c[stat] for change, c in changes.items()}
        for name, values in (("nucleus_pressure_MPa", self.nucleus_pressure_MPa),
                             ("disc_bulge_mm", self.disc_bulge_mm)):
            out |= {f"{scenario}.{name}": v for scenario, v in values.items()}
        out |= {lesion_key(k): v for k, v in self.lesion.items()}
        if self.canal_D01cc_Gy is not None:
            out[CANAL_D01CC_KEY] = self.canal_D01cc_Gy
        return out


def rom_key(motion: str) -> str:
    """The column of a motion's range (degrees)."""
    return f"{motion}_deg"


@dataclass(frozen=True)
class RomScalars:
    """The rom job's scalars: the range of motion (degrees) per motion and the follower path's
    offset (mm posterior of the endplate's centroid; the one searched with
    rom.follower_path = "least_rotation")."""

    KEY_METRICS: ClassVar[tuple[str, ...]] = tuple(rom_key(m) for m in MOTIONS)

    rom_deg: Mapping[str, float]
    follower_offset_mm: float = 0.0

    def to_dict(self) -> dict:
        """The case's row of the study table (its columns in the table's order)."""
        return {**{rom_key(motion): deg for motion, deg in self.rom_deg.items()},
                "follower_offset_mm": self.follower_offset_mm}


def plan_key(role: str, metric: str) -> str:
    """The column of a recommended plan's metric (`PLAN_METRICS`; role: 'mechanical' or
    'dosimetric', spinefe.planning.optimisation.recommended)."""
    return f"{role}.{metric}"


@dataclass(frozen=True)
class OptimiseScalars:
    """The optimise job's scalars: evaluations, the front's size, the last hypervolume (None
    before the first generation) and the recommended plans' metrics."""

    KEY_METRICS: ClassVar[tuple[str, ...]] = (
        "evaluations", "front", "hypervolume", plan_key("mechanical", "cortical_max_ratio"),
        plan_key("dosimetric", "V100_percent"))

    evaluations: int
    front: int
    hypervolume: float | None
    #: role -> `PLAN_METRICS` -> value
    recommended: Mapping[str, Mapping[str, float]]

    def to_dict(self) -> dict:
        """The case's row of the study table (its columns in the table's order)."""
        out = {"evaluations": self.evaluations, "front": self.front,
               "hypervolume": self.hypervolume}
        for role, row in self.recommended.items():
            out |= {plan_key(role, k): row[k] for k in PLAN_METRICS}
        return out


def clinical_key(time: str, test: str) -> str:
    """The column of a between-group test at a time point (`CLINICAL_TESTS`)."""
    return f"{time}.{test}"


@dataclass(frozen=True)
class ClinicalScalars:
    """The clinical_vas job's scalars: the between-group p-values and Hedges' g per time point
    (the key metrics name the paper's time points, those of the job's defaults)."""

    KEY_METRICS: ClassVar[tuple[str, ...]] = (
        clinical_key("pre", "welch_p"), clinical_key("post_9h", "welch_p"),
        clinical_key("post_16h", "welch_p"), clinical_key("post_9h", "hedges_g"))

    #: time -> `CLINICAL_TESTS` -> value
    tests: Mapping[str, Mapping[str, float]]

    def to_dict(self) -> dict:
        """The case's row of the study table (its columns in the table's order)."""
        return {clinical_key(time, k): row[k] for time, row in self.tests.items()
                for k in CLINICAL_TESTS}


#: Each job's record, by job name (spinefe.study.jobs.JOBS).
JOB_SCALARS = {"segment": SegmentScalars, "rom": RomScalars, "optimise": OptimiseScalars,
               "clinical_vas": ClinicalScalars}
