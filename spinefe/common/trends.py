"""The paper's three trends (its Results): which stress group moves, between which scenarios, and
which way. The segment comparison (mechanics.scenarios) and the study report judge them from
this one list."""

from __future__ import annotations

from dataclasses import dataclass

from spinefe.common.regions import CANCELLOUS, CORTICAL_ENDPLATES


@dataclass(frozen=True)
class Trend:
    """`group`'s von Mises statistic in scenario `new` lies above (sign +1) or below (-1) its
    value in scenario `old`."""

    claim: str
    group: str
    new: str
    old: str
    sign: int

    @property
    def change(self) -> str:
        """The change's name (report.records.CHANGES is made from these)."""
        return f"{self.new}_vs_{self.old}"

    def __post_init__(self) -> None:
        if self.sign not in (1, -1):
            raise ValueError(f"Trend.sign: +1 or -1, got {self.sign}")

    def holds(self, change: float) -> bool:
        """Whether a change of the statistic from `old` to `new` (MPa, or %) goes the claimed
        way."""
        return self.sign * change > 0.0


PAPER_TRENDS = (
    Trend("the tumour raises the cortical/endplate stress", CORTICAL_ENDPLATES, "tumour",
          "healthy", 1),
    Trend("the seeds lower the cortical/endplate stress", CORTICAL_ENDPLATES, "implanted",
          "tumour", -1),
    Trend("the seeds raise the cancellous stress", CANCELLOUS, "implanted", "tumour", 1),
)
