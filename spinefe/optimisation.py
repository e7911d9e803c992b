"""Dual optimisation of seed plans: dose coverage against mechanical reinforcement (NSGA-II).

A design is eight numbers in [0, 1] (`decode`):

| gene | meaning | values |
|---|---|---|
| 0 | seed activity | one of `activities_mCi` (default 0.3-0.8 mCi in 0.1 steps) |
| 1 | access | unilateral_left, unilateral_right, bilateral |
| 2 | needles per pedicle | 1-4 |
| 3 | seed spacing along a needle | 5-10 mm (centre to centre) |
| 4 | tip depth | 0.2-0.95 of the lesion's anterior-posterior semi-axis in front of its centre |
| 5 | lateral aim | 0.2-0.8 of its transverse semi-axis (spinefe.patterns.fan_needles) |
| 6 | cranio-caudal spread of the fan | 0-0.8 of its cranio-caudal semi-axis |
| 7 | seeds per needle | 1 to `max_seeds_per_needle`, fewer where the needle holds fewer |

Objectives (all minimised): -V100 of the lesion, the L4 cortical + endplate von Mises peak
relative to the tumour model, -(lesion apparent modulus relative to the tumour model), and the
number of needles. Constraints (feasible when <= 0): lesion D90 >= prescription; the design is a
valid plan (needles in bone, clear of the canal and of each other; seeds inside L4, not
overlapping); optionally V150 and canal D0.1cc limits.

Why the peak and not the p99: over 12 plans the embedded model ranks plans by the cortical
peak's seed effect as the conforming model does (Spearman 0.98), by the p99 only loosely (0.55;
docs/planning.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from spinefe.config import Config
from spinefe.layout import SegmentLayout
from spinefe.needles import Needle, PlanningError, check_seeds, load_seeds
from spinefe.patterns import ACCESS, capacity, fan_needles

ACTIVITIES_MCI = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
N_GENES = 8
OBJECTIVES = ("-V100_percent", "cortical_max_ratio", "-lesion_modulus_ratio", "needles")


@dataclass(frozen=True)
class Design:
    """One decoded decision vector (module docstring)."""

    activity_mCi: float
    access: str
    needles_per_side: int
    spacing_mm: float
    tip_depth: float
    aim: float
    spread: float
    seeds_per_needle: int

    @property
    def needles(self) -> int:
        return self.needles_per_side * (2 if self.access == "bilateral" else 1)


def _pick(gene: float, n: int) -> int:
    """Index 0..n-1 of a gene in [0, 1] (equal shares; 1.0 falls in the last)."""
    return min(int(gene * n), n - 1)


def decode(x, activities_mCi=ACTIVITIES_MCI, max_seeds_per_needle: int = 6) -> Design:
    """The design of a decision vector x (N_GENES values in [0, 1]); continuous genes are
    rounded (0.1 mm, 0.01) so that designs that plan the same seeds compare equal."""
    x = np.clip(np.asarray(x, float), 0.0, 1.0)
    return Design(
        activity_mCi=float(activities_mCi[_pick(x[0], len(activities_mCi))]),
        access=ACCESS[_pick(x[1], len(ACCESS))],
        needles_per_side=1 + _pick(x[2], 4),
        spacing_mm=round(5.0 + 5.0 * x[3], 1),
        tip_depth=round(0.2 + 0.75 * x[4], 2),
        aim=round(0.2 + 0.6 * x[5], 2),
        spread=round(0.8 * x[6], 2),
        seeds_per_needle=1 + _pick(x[7], max_seeds_per_needle),
    )


def design_seeds(layout: SegmentLayout, cfg: Config,
                 design: Design) -> tuple[list[Needle], np.ndarray, np.ndarray]:
    """The design's checked needles and seeds (centres, directions): each needle carries
    `seeds_per_needle` from its tip, or as many as it holds inside the body. PlanningError when
    the design is not a valid plan."""
    needles = fan_needles(layout, cfg, design.access, design.needles_per_side,
                          design.tip_depth, design.aim, design.spread)
    capsule = cfg.seed_capsule
    loaded = []
    for needle in needles:
        n = min(design.seeds_per_needle,
                capacity(layout, needle, design.spacing_mm, capsule.length_mm))
        if n:
            loaded.append(load_seeds(needle, n, design.spacing_mm, capsule.length_mm))
    if not loaded:
        raise PlanningError("no seed fits on the design's needles inside the L4 body")
    positions = np.concatenate([p for p, _ in loaded])
    directions = np.concatenate([d for _, d in loaded])
    check_seeds(layout, positions, directions, capsule.diameter_mm, capsule.length_mm)
    return needles, positions, directions


def design_record(design: Design) -> dict:
    return asdict(design) | {"needles": design.needles}


@dataclass(frozen=True)
class Goals:
    """Dose goals of the search: lesion D90 >= prescription_Gy; optional upper limits of the
    lesion V150 (% of its volume) and the canal D0.1cc (Gy)."""

    prescription_Gy: float
    v150_max_percent: float | None = None
    canal_d01cc_max_Gy: float | None = None

    @property
    def constraints(self) -> int:
        return 2 + (self.v150_max_percent is not None) + (self.canal_d01cc_max_Gy is not None)


def design_values(design: Design, record: dict | None, goals: Goals) -> tuple[list, list]:
    """Objectives F and constraints G (feasible <= 0) of a design from its evaluation record
    (None: not a valid plan, which violates the validity constraint)."""
    if record is None:
        return [0.0, 2.0, 0.0, float(design.needles)], [1.0] * goals.constraints
    target = record["dose"]["target"]
    relative = record["mechanics"]["relative_to_tumour"]
    F = [-target["V100_percent"], relative["L4.cortical_endplates"]["max"],
         -relative["lesion_apparent_modulus_MPa"], float(design.needles)]
    rx = goals.prescription_Gy
    G = [(rx - target["D90_Gy"]) / rx, -1.0]
    if goals.v150_max_percent is not None:
        G.append((target["V150_percent"] - goals.v150_max_percent) / goals.v150_max_percent)
    if goals.canal_d01cc_max_Gy is not None:
        d = record["dose"]["organ_at_risk"]["D0.1cc_Gy"]
        G.append((d - goals.canal_d01cc_max_Gy) / goals.canal_d01cc_max_Gy)
    return F, G


class PlanSearch:
    """Collective evaluation of populations of designs on sub-communicators of
    `ranks_per_evaluation` ranks, each with its own PlanEvaluator on the seedless mesh.

    Every design is evaluated once: the archive (design -> record, identical on every rank)
    answers repeats, and a generation's new designs are dealt round robin to the groups.
    """

    def __init__(self, cfg: Config, comm, goals: Goals, ranks_per_evaluation: int = 1,
                 activities_mCi=ACTIVITIES_MCI, max_seeds_per_needle: int = 6,
                 cache_dir=None):
        from spinefe.evaluation import PlanEvaluator
        from spinefe.layout import segment_layout
        from spinefe.mesh import build_mesh

        k = ranks_per_evaluation
        if k < 1 or comm.size % k:
            raise ValueError(f"ranks_per_evaluation: {k} must divide the {comm.size} ranks")
        self.comm, self.cfg, self.goals = comm, cfg, goals
        self.activities, self.max_seeds = tuple(activities_mCi), max_seeds_per_needle
        self.groups, self.group_id = comm.size // k, comm.rank // k
        self.group = comm.Split(self.group_id, comm.rank)
        self.seedless = cfg.model_copy(update={"seeds": ()})
        self.layout = segment_layout(cfg)
        if cache_dir is not None:
            build_mesh(self.seedless, comm, cache_dir)  # mesh once; the groups read the cache
        model = build_mesh(self.seedless, self.group, cache_dir)
        self.evaluator = PlanEvaluator(model, self.seedless)
        #: Checkpointed with the search: the archive (design -> record or None) and history.
        self.state: dict = {"archive": {}, "history": []}

    @property
    def archive(self) -> dict:
        return self.state["archive"]

    def plan(self, design: Design):
        """The design's Plan (dosimetry) and needles; PlanningError when invalid."""
        from dosimetry.plan import Plan, strength_from_activity

        needles, positions, directions = design_seeds(self.layout, self.cfg, design)
        plan = Plan.uniform(positions, directions, strength_from_activity(design.activity_mCi),
                            self.cfg.dosimetry.seed_model,
                            name=f"{design.access} {design.needles} needles "
                                 f"{len(positions)} x {design.activity_mCi} mCi")
        return plan, needles

    def _evaluate(self, design: Design) -> dict | None:
        try:
            plan, _ = self.plan(design)
            return self.evaluator.evaluate(plan).record()
        except PlanningError:
            return None

    def __call__(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Objectives and constraints of the population X (same on every rank); collective."""
        designs = [decode(x, self.activities, self.max_seeds) for x in X]
        new = list(dict.fromkeys(d for d in designs if d not in self.archive))
        mine = new[self.group_id::self.groups]
        results = [(d, self._evaluate(d)) for d in mine]
        parts = self.comm.allgather(results if self.group.rank == 0 else [])
        for part in parts:
            self.archive.update(part)
        values = [design_values(d, self.archive[d], self.goals) for d in designs]
        return (np.array([f for f, _ in values]), np.array([g for _, g in values]))


#: Fixed bounds of the objectives for the hypervolume (so that generations compare): -V100 (%),
#: cortical peak ratio, -lesion modulus ratio, needles.
HV_BOUNDS = np.array([[-100.0, 0.0], [0.99, 1.0], [-1.05, -1.0], [1.0, 8.0]])


def hypervolume(F: np.ndarray) -> float:
    """Hypervolume of objectives F (n, 4) scaled to [0, 1] by HV_BOUNDS, reference point 1.1 in
    every objective (pymoo's HV); 0 for an empty front."""
    from pymoo.indicators.hv import HV

    if len(F) == 0:
        return 0.0
    lo, hi = HV_BOUNDS[:, 0], HV_BOUNDS[:, 1]
    return float(HV(ref_point=np.full(4, 1.1))((np.asarray(F) - lo) / (hi - lo)))


def run_search(cfg: Config, settings, goals: Goals, comm, checkpoint=None,
               ranks_per_evaluation: int = 1, cache_dir=None):
    """NSGA-II over the design space (spinefe.search); returns (algorithm on rank 0, search).
    The search's state records per generation the evaluations, front size, hypervolume and
    elapsed seconds; collective."""
    import time

    from spinefe.search import UnitBoxProblem, nsga2, pareto_front

    t0 = time.perf_counter()
    search = PlanSearch(cfg, comm, goals, ranks_per_evaluation, cache_dir=cache_dir)
    setup = time.perf_counter() - t0

    def on_generation(algorithm):
        _, F = pareto_front(algorithm)
        search.state["history"].append({
            "generation": int(algorithm.n_gen) - 1, "evaluations": len(search.archive),
            "front": len(F), "hypervolume": hypervolume(F),
            "seconds": round(time.perf_counter() - t0 - setup, 2)})

    problem = UnitBoxProblem(N_GENES, len(OBJECTIVES), goals.constraints)
    algorithm = nsga2(problem, search, settings, comm, checkpoint, on_generation, search.state)
    search.state["setup_seconds"] = setup
    return algorithm, search


def evaluation_rows(archive: dict) -> list[dict]:
    """One flat row per archived design: its genes decoded, validity and metrics."""
    rows = []
    for design, record in archive.items():
        row = design_record(design) | {"valid": record is not None}
        if record is not None:
            target, relative = record["dose"]["target"], record["mechanics"]["relative_to_tumour"]
            row |= {
                "seeds": record["seeds"],
                "D90_Gy": target["D90_Gy"], "V100_percent": target["V100_percent"],
                "V150_percent": target["V150_percent"], "V200_percent": target["V200_percent"],
                "canal_D0.1cc_Gy": record["dose"].get("organ_at_risk", {}).get("D0.1cc_Gy"),
                "cortical_max_ratio": relative["L4.cortical_endplates"]["max"],
                "cortical_p99_ratio": relative["L4.cortical_endplates"]["p99"],
                "lesion_modulus_ratio": relative["lesion_apparent_modulus_MPa"],
                "axial_stiffness_ratio": relative["axial_stiffness_N_mm"],
            }
        rows.append(row)
    return rows


def write_csv(rows: list[dict], path) -> None:
    """Rows as CSV (columns: the union of the rows' keys, in first-seen order), atomically."""
    import csv
    import io

    from dosimetry.plan import write_text_atomic

    columns = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def plot_front(rows: list[dict], front: list[dict], path) -> None:
    """Lesion V100 against the cortical + endplate peak reduction (both %): every valid design
    in grey, the Pareto front coloured by activity, marker by access."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = {"bilateral": "o", "unilateral_left": "<", "unilateral_right": ">"}
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=150)
    valid = [r for r in rows if r["valid"]]
    ax.scatter([r["V100_percent"] for r in valid],
               [100 * (1 - r["cortical_max_ratio"]) for r in valid],
               s=8, c="0.8", label="valid designs")
    activities = sorted({r["activity_mCi"] for r in rows})
    norm = matplotlib.colors.Normalize(min(activities), max(activities))
    for access, marker in markers.items():
        pts = [r for r in front if r["access"] == access]
        if pts:
            ax.scatter([r["V100_percent"] for r in pts],
                            [100 * (1 - r["cortical_max_ratio"]) for r in pts],
                            c=[r["activity_mCi"] for r in pts], cmap="viridis", norm=norm,
                            marker=marker, s=40, edgecolors="k", linewidths=0.5,
                            label=f"front, {access.replace('_', ' ')}")
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=ax,
                 label="seed activity (mCi)")
    ax.set_xlabel("lesion V100 (%)")
    ax.set_ylabel("L4 cortical + endplate peak von Mises reduction (%)")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def recommended(front: list[dict]) -> dict[str, dict]:
    """The paper's two clinical readings of the front (every front design meets D90):
    `mechanical` (pain predominance): the largest cortical + endplate peak reduction;
    `dosimetric`: the largest lesion V100, then the fewest needles."""
    if not front:
        return {}
    return {"mechanical": min(front, key=lambda r: (r["cortical_max_ratio"], -r["V100_percent"])),
            "dosimetric": max(front, key=lambda r: (r["V100_percent"], -r["needles"]))}


def optimise(cfg: Config, out, settings, goals: Goals, comm, ranks_per_evaluation: int = 1,
             cache_dir=None, verify: bool = True) -> dict | None:
    """Pareto search (run_search, checkpoint DIR/checkpoint.pkl: a rerun resumes), then on rank
    0 DIR/evaluations.csv, pareto.csv, pareto.png, plans/<n>.toml + .dcm of the front and
    summary.json; the two recommended plans re-evaluated with conforming seeds (`verify`).
    Returns the summary (rank 0); collective."""
    import json
    import time
    from pathlib import Path

    from dosimetry import write_plan
    from dosimetry.dicom import write_rt_plan
    from dosimetry.plan import write_text_atomic
    from spinefe.evaluation import evaluate_conforming
    from spinefe.search import pareto_front

    out = Path(out)
    if comm.rank == 0:
        (out / "plans").mkdir(parents=True, exist_ok=True)
    comm.barrier()
    t0 = time.perf_counter()
    algorithm, search = run_search(cfg, settings, goals, comm, out / "checkpoint.pkl",
                                   ranks_per_evaluation, cache_dir)
    seconds = time.perf_counter() - t0
    front = None
    if comm.rank == 0:
        X, _ = pareto_front(algorithm)
        designs = list(dict.fromkeys(decode(x, search.activities, search.max_seeds) for x in X))
        front = evaluation_rows({d: search.archive[d] for d in designs})
    front = comm.bcast(front, root=0)
    picks = recommended(front)
    verification = {}
    for role, row in picks.items():
        design = Design(**{k: row[k] for k in Design.__dataclass_fields__})
        plan, _ = search.plan(design)
        if verify:
            conf = evaluate_conforming(cfg.model_copy(update={"seeds": ()}), plan, comm,
                                       cache_dir).mechanics
            rel = conf["relative_to_tumour"]
            verification[role] = {
                "cortical_max_ratio": {"embedded": row["cortical_max_ratio"],
                                       "conforming": rel["L4.cortical_endplates"]["max"]},
                "lesion_modulus_ratio": {"embedded": row["lesion_modulus_ratio"],
                                         "conforming": rel["lesion_apparent_modulus_MPa"]},
            }
        if comm.rank == 0:
            write_plan(plan, out / "plans" / f"recommended_{role}.toml")
    if comm.rank != 0:
        return None
    rows = evaluation_rows(search.archive)
    write_csv(rows, out / "evaluations.csv")
    write_csv(front, out / "pareto.csv")
    plot_front(rows, front, out / "pareto.png")
    for i, row in enumerate(front):
        design = Design(**{k: row[k] for k in Design.__dataclass_fields__})
        plan, _ = search.plan(design)
        write_plan(plan, out / "plans" / f"front_{i:02d}.toml")
        write_rt_plan(plan, out / "plans" / f"front_{i:02d}.dcm",
                      prescription_Gy=goals.prescription_Gy)
    history = search.state["history"]
    n = len(search.archive)
    summary = {
        "settings": asdict(settings), "goals": asdict(goals), "objectives": list(OBJECTIVES),
        "ranks": comm.size, "ranks_per_evaluation": ranks_per_evaluation,
        "dofs": search.evaluator.dofs, "evaluations": n,
        "valid_designs": sum(r["valid"] for r in rows),
        "seconds": round(seconds, 1), "setup_seconds": round(search.state["setup_seconds"], 1),
        "evaluations_per_second": round(n / max(history[-1]["seconds"], 1e-9), 3)
        if history else None,
        "history": history, "front": front, "recommended": picks, "verification": verification,
        "config_hash": cfg.hash(),
    }
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=1, default=float))
    return summary
