"""The planning pipelines of the command line, each composed once: the plan of one pattern corner
and its files (`spinefe plan`), and a plan's dose and mechanical evaluation (`spinefe evaluate`).
Both are collective over `comm`; rank 0 writes the plain files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dosimetry import Plan, write_plan
from dosimetry.coverage import Coverage
from dosimetry.dicom import Study, write_rt_plan
from spinefe.common.parallel import on_root, write_json
from spinefe.common.provenance import provenance
from spinefe.config.overrides import override
from spinefe.config.sections import Config
from spinefe.geometry.layout import segment_layout
from spinefe.geometry.mesh import build_mesh
from spinefe.geometry.segment import segment_geometry
from spinefe.planning.evaluation import PlanEvaluator, evaluate_conforming, evaluation_markdown
from spinefe.planning.needles import Needle
from spinefe.planning.patterns import plan_pattern


@dataclass(frozen=True)
class PatternPlan:
    """The plan of one corner, its needles, its dose coverage and its summary.json."""

    plan: Plan
    needles: list[Needle]
    coverage: Coverage
    summary: dict

    def text(self) -> str:
        """One line: seeds, needles, the lesion D90 reached and the prescription."""
        n, rx = self.coverage.seeds_needed, self.summary["prescription_Gy"]
        return (f"{self.plan.name}: {n} seeds on {len(self.needles)} needles, lesion D90 "
                f"{self.coverage.d90_Gy[n]:.1f} Gy (prescription {rx} Gy)")


def write_pattern_plan(cfg: Config, access: str, density: str, out: Path, comm) -> PatternPlan:
    """The plan of the corner access x density at cfg.dosimetry's activity, with the fewest
    seeds whose lesion D90 reaches the prescription (`plan_pattern`; no mesh): out/plan.toml,
    plan.csv, rtplan.dcm and summary.json (needles, D90 per seed count, provenance)."""
    d = cfg.dosimetry
    activity, rx = d.activity_mCi, d.prescription_Gy
    layout = segment_layout(segment_geometry(cfg))
    plan, needles, coverage = plan_pattern(layout, cfg.lesion, cfg.seed_capsule, d, access,
                                           density, activity, rx)
    summary = {
        "access": access, "density": density, "activity_mCi": activity,
        "prescription_Gy": rx, "seeds": coverage.seeds_needed,
        "d90_Gy_by_seed_count": coverage.d90_Gy,
        "needles": [{"name": n.name, "side": n.side, "entry_mm": n.entry_mm, "tip_mm": n.tip_mm,
                     "length_mm": n.length_mm} for n in needles],
        "provenance": provenance(comm, cfg.hash()),
    }
    if comm.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        write_plan(plan, out / "plan.toml")
        write_plan(plan, out / "plan.csv")
        write_rt_plan(plan, out / "rtplan.dcm", prescription_Gy=rx,
                      study=Study(provenance=summary["provenance"]))
    write_json(comm, summary, out / "summary.json")
    return PatternPlan(plan, needles, coverage, summary)


def evaluate_plan(cfg: Config, plan: Plan, out: Path, comm, cache_dir: Path | None = None,
                  rule: str = "mori_tanaka", conforming: bool = False) -> dict:
    """Dose and mechanical metrics of `plan` on the segment of `cfg` meshed without seeds, each
    capsule's titanium raising its cells' moduli (`rule`: spinefe.mechanics.embedded.RULES);
    with `conforming`, also with the capsules meshed. Writes out/evaluation.json and
    evaluation.md (`evaluation_markdown`); returns the record."""
    cfg = override(cfg, {"seeds": []})
    if comm.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    geometry = segment_geometry(cfg)
    model = build_mesh(geometry, comm, cache_dir)
    evaluator = PlanEvaluator(model, segment_layout(geometry), materials=cfg.materials,
                              lesion=cfg.lesion, mechanics=cfg.mechanics,
                              capsule=cfg.seed_capsule, dosimetry=cfg.dosimetry, rule=rule)
    record = {"embedded": evaluator.evaluate(plan).record(),
              "mpi_size": comm.size, "provenance": provenance(comm, cfg.hash())}
    if conforming:
        record["conforming"] = evaluate_conforming(cfg, plan, comm, cache_dir).record()
    write_json(comm, record, out / "evaluation.json")
    text = evaluation_markdown(record)
    on_root(comm, lambda: (out / "evaluation.md").write_text(text))
    return record
