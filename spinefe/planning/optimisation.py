"""Dual optimisation of seed plans: dose coverage against mechanical reinforcement (NSGA-II).

A design is eight numbers in [0, 1], nine with hybrid activities (`decode`):

| gene | meaning | values |
|---|---|---|
| 0 | seed activity | one of `optimisation.activities_mCi` (default 0.3-0.8 mCi in 0.1 steps) |
| 1 | access | unilateral_left, unilateral_right, bilateral |
| 2 | needles per pedicle | 1-4 |
| 3 | seed spacing along a needle | 5-10 mm (centre to centre) |
| 4 | tip depth | 0.2-0.95 of the lesion's anterior-posterior semi-axis in front of its centre |
| 5 | lateral aim | 0.2-0.8 of its transverse semi-axis (planning.patterns.fan_needles) |
| 6 | cranio-caudal spread of the fan | 0-0.8 of its cranio-caudal semi-axis |
| 7 | seeds per needle | 1 to `max_seeds_per_needle`, fewer where the needle holds fewer |
| 8 | (hybrid) activity of every other needle of a side | one of `activities_mCi` |

Objectives (all minimised): -V100 of the lesion, the L4 cortical + endplate von Mises peak
relative to the tumour model, -(lesion apparent modulus relative to the tumour model), and the
number of needles. Constraints (feasible when <= 0): lesion D90 >= prescription; the design is a
valid plan (needles in bone, clear of the canal and of each other; seeds inside L4, not
overlapping); the V150, V200 and canal D0.1cc limits of `optimisation` (dose_limits).

Why the peak and not the p99: over 12 plans the embedded model ranks plans by the cortical
peak's seed effect as the conforming model does (Spearman 0.98), by the p99 only loosely (0.55;
docs/planning.md).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from pymoo.core.duplicate import DuplicateElimination

from dosimetry import write_plan
from dosimetry.dicom import Study, write_rt_plan
from dosimetry.plan import Plan, Seed, strength_from_activity, write_text_atomic
from spinefe.common.errors import ConfigError, MeshingError, PlanningError, SolverError
from spinefe.common.hashing import canonical_hash
from spinefe.common.parallel import write_csv
from spinefe.common.provenance import provenance
from spinefe.config.sections import Config, Dosimetry, Lesion, Optimisation, SeedCapsule
from spinefe.geometry.layout import SegmentLayout, segment_layout
from spinefe.geometry.mesh import build_mesh
from spinefe.geometry.segment import segment_geometry
from spinefe.planning.evaluation import PlanEvaluator, evaluate_conforming
from spinefe.planning.needles import Needle, check_seeds, load_seeds
from spinefe.planning.patterns import ACCESS, capacity, fan_needles
from spinefe.planning.search import SearchSettings, UnitBoxProblem, nsga2

OBJECTIVES = ("-V100_percent", "cortical_max_ratio", "-lesion_modulus_ratio", "needles")


def n_genes(opt: Optimisation) -> int:
    """Genes of a design: 8, or 9 with hybrid activities."""
    return 9 if opt.hybrid else 8


@dataclass(frozen=True)
class Design:
    """One decoded decision vector (module docstring); hybrid_activity_mCi: the activity of
    every other needle of a side (None: all seeds at activity_mCi)."""

    activity_mCi: float
    access: str
    needles_per_side: int
    spacing_mm: float
    tip_depth: float
    aim: float
    spread: float
    seeds_per_needle: int
    hybrid_activity_mCi: float | None = None

    @property
    def needles(self) -> int:
        return self.needles_per_side * (2 if self.access == "bilateral" else 1)

    def needle_activity(self, index: int) -> float:
        """Activity (mCi) of the needle at `index` of fan_needles' list (side by side)."""
        if self.hybrid_activity_mCi is not None and (index % self.needles_per_side) % 2:
            return self.hybrid_activity_mCi
        return self.activity_mCi


def _pick(gene: float, n: int) -> int:
    """Index 0..n-1 of a gene in [0, 1] (equal shares; 1.0 falls in the last)."""
    return min(int(gene * n), n - 1)


def decode(x, opt: Optimisation) -> Design:
    """The design of a decision vector x (n_genes(opt) values in [0, 1]); continuous genes are
    rounded (0.1 mm, 0.01) and a hybrid activity equal to the main one (or on a single needle
    per side) is dropped, so that designs that plan the same seeds compare equal."""
    x = np.clip(np.asarray(x, float), 0.0, 1.0)
    activities = opt.activities_mCi
    design = Design(
        activity_mCi=float(activities[_pick(x[0], len(activities))]),
        access=ACCESS[_pick(x[1], len(ACCESS))],
        needles_per_side=1 + _pick(x[2], 4),
        spacing_mm=round(float(5.0 + 5.0 * x[3]), 1),
        tip_depth=round(float(0.2 + 0.75 * x[4]), 2),
        aim=round(float(0.2 + 0.6 * x[5]), 2),
        spread=round(float(0.8 * x[6]), 2),
        seeds_per_needle=1 + _pick(x[7], opt.max_seeds_per_needle),
    )
    if opt.hybrid and design.needles_per_side > 1:
        second = float(activities[_pick(x[8], len(activities))])
        if second != design.activity_mCi:
            design = Design(**asdict(design) | {"hybrid_activity_mCi": second})
    return design


def design_seeds(layout: SegmentLayout, lesion: Lesion, capsule: SeedCapsule,
                 design: Design) -> tuple[list[Needle], np.ndarray, np.ndarray, np.ndarray]:
    """The design's checked needles into `lesion` and seeds (centres, directions, activities in
    mCi): each needle carries `seeds_per_needle` from its tip, or as many as it holds inside
    the body. PlanningError when the design is not a valid plan."""
    needles = fan_needles(layout, lesion, design.access, design.needles_per_side,
                          design.tip_depth, design.aim, design.spread)
    loaded = []
    for index, needle in enumerate(needles):
        n = min(design.seeds_per_needle,
                capacity(layout, needle, design.spacing_mm, capsule.length_mm))
        if n:
            p, d = load_seeds(needle, n, design.spacing_mm, capsule.length_mm)
            loaded.append((p, d, np.full(n, design.needle_activity(index))))
    if not loaded:
        raise PlanningError("no seed fits on the design's needles inside the L4 body")
    positions, directions, activities = (np.concatenate(c) for c in zip(*loaded, strict=True))
    check_seeds(layout, positions, directions, capsule.diameter_mm, capsule.length_mm)
    return needles, positions, directions, activities


def design_plan(layout: SegmentLayout, lesion: Lesion, capsule: SeedCapsule,
                dosimetry: Dosimetry, design: Design) -> Plan:
    """The design's seed Plan (`design_seeds`; seed model of `dosimetry`); PlanningError when
    the design is not a valid plan."""
    _, positions, directions, activities = design_seeds(layout, lesion, capsule, design)
    model = dosimetry.seed_model
    mix = f"{design.activity_mCi}/{design.hybrid_activity_mCi}" \
        if design.hybrid_activity_mCi else f"{design.activity_mCi}"
    return Plan(tuple(Seed(tuple(p), tuple(d), strength_from_activity(a), model)
                      for p, d, a in zip(positions, directions, activities, strict=True)),
                name=f"{design.access} {design.needles} needles {len(positions)} x {mix} mCi")


def row_design(row: dict) -> Design:
    """The design of an evaluation row (evaluation_rows)."""
    return Design(**{k: row[k] for k in Design.__dataclass_fields__})


def design_record(design: Design) -> dict:
    return asdict(design) | {"needles": design.needles}


def dose_limits(opt: Optimisation) -> list[tuple[str, float]]:
    """The active upper limits of `opt` as (metric, limit): V150 and V200 below 100 %, the
    canal D0.1cc when set."""
    limits = [(k, v) for k, v in (("V150_percent", opt.v150_max_percent),
                                  ("V200_percent", opt.v200_max_percent)) if v < 100.0]
    if opt.canal_d01cc_max_Gy is not None:
        limits.append(("canal_D0.1cc_Gy", opt.canal_d01cc_max_Gy))
    return limits


def constraints(opt: Optimisation) -> int:
    """Constraints of the search: D90, validity and the active dose limits of `opt`."""
    return 2 + len(dose_limits(opt))


def design_values(design: Design, record: dict | None, opt: Optimisation,
                  prescription_Gy: float) -> tuple[list, list]:
    """Objectives F and constraints G (feasible <= 0, relative to the limit: D90 against
    `prescription_Gy`, the dose limits of `opt`) of a design from its evaluation record (None:
    not a valid plan, which violates the validity constraint)."""
    if record is None:
        return [0.0, 2.0, 0.0, float(design.needles)], [1.0] * constraints(opt)
    target = record["dose"]["target"]
    relative = record["mechanics"]["relative_to_tumour"]
    F = [-target["V100_percent"], relative["L4.cortical_endplates"]["max"],
         -relative["lesion_apparent_modulus_MPa"], float(design.needles)]
    rx = prescription_Gy
    values = target | {"canal_D0.1cc_Gy": record["dose"].get("organ_at_risk", {}).get(
        "D0.1cc_Gy")}
    G = [(rx - target["D90_Gy"]) / rx, -1.0]
    G += [(values[key] - limit) / limit for key, limit in dose_limits(opt)]
    return F, G


class PlanSearch:
    """Collective evaluation of populations of designs on sub-communicators of
    `optimisation.ranks_per_evaluation` ranks, each with its own PlanEvaluator on the segment
    meshed without seeds at `optimisation.mesh_size_mm`.

    Every design is evaluated once: the archive (design -> record, identical on every rank)
    answers repeats, and a generation's new designs are dealt round robin to the groups.
    """

    def __init__(self, cfg: Config, comm, cache_dir=None):
        opt = cfg.optimisation
        k = opt.ranks_per_evaluation
        if comm.size % k:
            raise ConfigError(f"optimisation.ranks_per_evaluation: {k} must divide the "
                             f"{comm.size} MPI ranks")
        self.comm, self.cfg, self.opt = comm, cfg, opt
        self.groups, self.group_id = comm.size // k, comm.rank // k
        self.group = comm.Split(self.group_id, comm.rank)
        self.seedless = segment_geometry(cfg.model_copy(update={
            "seeds": (), "mesh": cfg.mesh.model_copy(update={"size_mm": opt.mesh_size_mm})}))
        self.layout = segment_layout(self.seedless)
        # Mesh once; the groups read the cache. Without a cache (--no-cache) every group meshes
        # the segment itself, all at the same time (the same mesh: gmsh runs single-threaded).
        if cache_dir is not None:
            build_mesh(self.seedless, comm, cache_dir)
        model = build_mesh(self.seedless, self.group, cache_dir)
        self.evaluator = PlanEvaluator(
            model, self.layout, materials=cfg.materials, lesion=cfg.lesion,
            mechanics=cfg.mechanics, capsule=cfg.seed_capsule, dosimetry=cfg.dosimetry,
            dose_degree=opt.dose_degree)
        #: Checkpointed with the search: the archive (design -> record or None) and history.
        self.state: dict = {"archive": {}, "history": []}
        self._values: dict = {}

    @property
    def archive(self) -> dict:
        return self.state["archive"]

    def plan(self, design: Design):
        """The design's Plan (dosimetry); PlanningError when invalid."""
        c = self.cfg
        return design_plan(self.layout, c.lesion, c.seed_capsule, c.dosimetry, design)

    def _evaluate(self, designs: list[Design]) -> list[dict | None]:
        """The records of `designs` (None: not a valid plan), evaluated together
        (PlanEvaluator.evaluate_many); collective over the group."""
        records: list = [None] * len(designs)
        plans = {}
        for i, design in enumerate(designs):
            try:
                plans[i] = self.plan(design)
            except PlanningError:
                pass
        evaluated = self.evaluator.evaluate_many(list(plans.values()))
        for i, result in zip(plans, evaluated, strict=True):
            records[i] = None if isinstance(result, PlanningError) else result.record()
        return records

    def __call__(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Objectives and constraints of the population X (same on every rank); collective."""
        designs = [decode(x, self.opt) for x in X]
        new = list(dict.fromkeys(d for d in designs if d not in self.archive))
        mine = new[self.group_id::self.groups]
        results = list(zip(mine, self._evaluate(mine), strict=True))
        parts = self.comm.allgather(results if self.group.rank == 0 else [])
        for part in parts:
            self.archive.update(part)
        values = self.values()
        return (np.array([values[d][0] for d in designs]),
                np.array([values[d][1] for d in designs]))

    def values(self) -> dict:
        """(objectives, constraints) of every archived design (design_values), each computed
        once, in the archive's order."""
        for design, record in self.archive.items():
            if design not in self._values:
                self._values[design] = design_values(design, record, self.opt,
                                                     self.cfg.dosimetry.prescription_Gy)
        return self._values


class SameDesign(DuplicateElimination):
    """pymoo duplicate elimination by decoded design: offspring that plan the same seeds as
    another individual are replaced, so a generation's evaluations are distinct plans. Each
    individual is decoded once; as in pymoo's pairwise eliminations, an individual is the
    duplicate where a later one in the population (or any in `other`) is equal."""

    def __init__(self, opt: Optimisation):
        super().__init__()
        self.opt = opt

    def _do(self, pop, other, is_duplicate):
        designs = [decode(x, self.opt) for x in pop.get("X")]
        if other is None:
            seen = set()
            for i in reversed(range(len(designs))):
                is_duplicate[i] = designs[i] in seen
                seen.add(designs[i])
        else:
            seen = {decode(x, self.opt) for x in other.get("X")}
            is_duplicate[:] = [d in seen for d in designs]
        return is_duplicate


def archive_front(values: dict) -> list:
    """The designs whose (objectives, constraints) in `values` (design -> (F, G), e.g.
    PlanSearch.values()) meet every constraint and that no other such design dominates in the
    objectives (the Pareto front of all evaluations), by V100."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    feasible = [(design, f) for design, (f, g) in values.items() if max(g) <= 0.0]
    if not feasible:
        return []
    designs, F = [d for d, _ in feasible], np.array([f for _, f in feasible])
    front = NonDominatedSorting().do(F, only_non_dominated_front=True)
    return [designs[i] for i in sorted(front, key=lambda i: tuple(F[i]))]


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


def converged(history: list[dict], percent: float, window: int) -> bool:
    """The stopping rule: the front's hypervolume (positive) grew by less than `percent` % of
    its value over the last `window` generations of `history` (run_search); never for
    percent 0."""
    if percent <= 0.0 or len(history) <= window:
        return False
    before, now = history[-1 - window]["hypervolume"], history[-1]["hypervolume"]
    return before > 0.0 and now - before < percent / 100.0 * before


def stopped(history: list[dict], opt: Optimisation) -> dict:
    """How the search of `history` ended: its last generation and evaluations, and why:
    "rule" (`converged` before the budget) or "budget" (optimisation.generations)."""
    last = history[-1] if history else {"generation": 0, "evaluations": 0}
    rule = last["generation"] < opt.generations and converged(
        history, opt.stop_hypervolume_percent, opt.stop_window)
    return {"generation": last["generation"], "evaluations": last["evaluations"],
            "by": "rule" if rule else "budget"}


def run_search(cfg: Config, comm, checkpoint=None, cache_dir=None):
    """NSGA-II over the design space (planning.search) until the generation budget or the
    stopping rule (`converged`, optimisation.stop_*); returns (algorithm on rank 0, search).
    The search's state records per generation the distinct plans evaluated, the size and
    hypervolume of the archive's front and the seconds since the set-up. The checkpoint is
    keyed by the whole configuration but the budget and the stopping rule (a resume may extend
    the search; any other change is refused with ConfigError); collective."""
    t0 = time.perf_counter()
    search = PlanSearch(cfg, comm, cache_dir)
    setup = time.perf_counter() - t0

    before = {}  # search seconds of the run this one resumes

    def on_generation(algorithm):
        history = search.state["history"]
        before.setdefault("seconds", history[-1]["seconds"] if history else 0.0)
        values = search.values()
        F = [values[d][0] for d in archive_front(values)]
        history.append({
            "generation": int(algorithm.n_gen) - 1, "evaluations": len(search.archive),
            "front": len(F), "hypervolume": hypervolume(F),
            "seconds": round(before["seconds"] + time.perf_counter() - t0 - setup, 2)})

    data = cfg.model_dump(mode="json")
    for name in ("generations", "stop_hypervolume_percent", "stop_window"):
        data["optimisation"].pop(name)
    key = canonical_hash(data)
    o = cfg.optimisation
    problem = UnitBoxProblem(n_genes(o), len(OBJECTIVES), constraints(o))
    settings = SearchSettings(o.population, o.generations, o.random_seed)
    algorithm = nsga2(problem, search, settings, comm, checkpoint, on_generation, search.state,
                      SameDesign(o), key, stop=lambda: converged(
                          search.state["history"], o.stop_hypervolume_percent, o.stop_window))
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
                "lesion_bone_sed_cov": record["mechanics"]["lesion"]["bone_sed_cov"],
                "lesion_bone_sed_cov_ratio": relative["lesion_bone_sed_cov"],
                "axial_stiffness_ratio": relative["axial_stiffness_N_mm"],
            }
        rows.append(row)
    return rows


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


#: Activities (mCi) of the paper's two pattern families for the open question: dense
#: low-activity (<= LOW) against sparse high-activity (>= HIGH) seeds.
LOW_MCI, HIGH_MCI = 0.4, 0.7


def support_uniformity(rows: list[dict], prescription_Gy: float, bin_percent: float = 2.0) -> dict:
    """The paper's open question on the archive: at equal coverage, do dense low-activity
    plans support the lesion more uniformly than sparse high-activity ones?

    Valid plans with D90 >= prescription are binned by lesion V100 (`bin_percent` wide); in
    every bin holding both families, the median bone strain energy density CoV ratio (lower:
    more uniform support), lesion modulus ratio and seed count of each family are compared.
    """
    covered = [r for r in rows if r["valid"] and r["D90_Gy"] >= prescription_Gy
               and not r.get("hybrid_activity_mCi")]
    bins = []
    for lo in np.arange(0.0, 100.0, bin_percent):
        inside = [r for r in covered if lo <= r["V100_percent"] < lo + bin_percent
                  or (lo + bin_percent >= 100.0 and r["V100_percent"] == 100.0)]
        dense = [r for r in inside if r["activity_mCi"] <= LOW_MCI]
        sparse = [r for r in inside if r["activity_mCi"] >= HIGH_MCI]
        if dense and sparse:
            bins.append({"V100_percent": [float(lo), float(lo + bin_percent)]} | {
                f"{name}_{key}": float(np.median([r[key] for r in family]))
                for name, family in (("dense", dense), ("sparse", sparse))
                for key in ("lesion_bone_sed_cov_ratio", "lesion_modulus_ratio", "seeds")
            } | {"dense_plans": len(dense), "sparse_plans": len(sparse)})
    more_uniform = sum(b["dense_lesion_bone_sed_cov_ratio"] < b["sparse_lesion_bone_sed_cov_ratio"]
                       for b in bins)
    return {"low_mCi": LOW_MCI, "high_mCi": HIGH_MCI, "bins": bins,
            "bins_dense_more_uniform": int(more_uniform), "bins_compared": len(bins)}


def plot_uniformity(rows: list[dict], path) -> None:
    """Bone strain energy density CoV of the lesion relative to the tumour model against V100,
    valid plans coloured by activity (the open question's figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    valid = [r for r in rows if r["valid"]]
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=150)
    points = ax.scatter([r["V100_percent"] for r in valid],
                        [r["lesion_bone_sed_cov_ratio"] for r in valid],
                        c=[r["activity_mCi"] for r in valid], s=10, cmap="viridis")
    fig.colorbar(points, ax=ax, label="seed activity (mCi)")
    ax.axhline(1.0, color="0.5", lw=0.8)
    ax.set_xlabel("lesion V100 (%)")
    ax.set_ylabel("lesion bone strain energy density CoV / tumour model")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def optimise(cfg: Config, out, comm, cache_dir=None, verify: bool = True) -> dict | None:
    """Pareto search (run_search, checkpoint DIR/checkpoint.pkl: a rerun resumes), then on rank
    0 DIR/evaluations.csv (every plan), pareto.csv, pareto.png and plans/front_NN.toml + .dcm
    (the archive's front), uniformity.png and summary.json (with the open question's analysis);
    the two recommended plans (plans/recommended_*.toml) re-evaluated with conforming seeds at
    the model's resolution (`verify`). Returns the summary (rank 0); collective."""
    out = Path(out)
    if comm.rank == 0:
        (out / "plans").mkdir(parents=True, exist_ok=True)
    t0, cpu0 = time.perf_counter(), time.process_time()
    _, search = run_search(cfg, comm, out / "checkpoint.pkl", cache_dir)
    seconds = time.perf_counter() - t0
    # CPU seconds of each rank: on a shared machine they show the work the wall clock hides.
    cpu = comm.allgather(round(time.process_time() - cpu0, 1))
    front_designs = archive_front(search.values())
    front = evaluation_rows({d: search.archive[d] for d in front_designs})
    plans = [search.plan(d) for d in front_designs]  # every rank: the verification needs them
    picks = recommended(front)
    pick_plans = {role: plans[front.index(row)] for role, row in picks.items()}
    summary, record = None, provenance(comm, cfg.hash())
    if comm.rank == 0:  # the search's results first: a failed verification loses none
        rows = evaluation_rows(search.archive)
        write_csv(rows, out / "evaluations.csv")
        write_csv(front, out / "pareto.csv")
        plot_front(rows, front, out / "pareto.png")
        plot_uniformity(rows, out / "uniformity.png")
        for i, plan in enumerate(plans):
            write_plan(plan, out / "plans" / f"front_{i:02d}.toml")
            write_rt_plan(plan, out / "plans" / f"front_{i:02d}.dcm",
                          prescription_Gy=cfg.dosimetry.prescription_Gy,
                          study=Study(provenance=record))
        for role, plan in pick_plans.items():
            write_plan(plan, out / "plans" / f"recommended_{role}.toml")
        history = search.state["history"]
        summary = {
            "optimisation": cfg.optimisation.model_dump(mode="json"),
            "prescription_Gy": cfg.dosimetry.prescription_Gy, "objectives": list(OBJECTIVES),
            "ranks": comm.size, "dofs": search.evaluator.dofs,
            "evaluations": len(search.archive), "valid_designs": sum(r["valid"] for r in rows),
            "seconds": round(seconds, 1), "cpu_seconds": cpu,
            "setup_seconds": round(search.state["setup_seconds"], 1),
            "evaluations_per_second": round(len(search.archive) / history[-1]["seconds"], 3)
            if history and history[-1]["seconds"] > 0 else None,
            "stopped": stopped(history, cfg.optimisation),
            "history": history, "front": front, "recommended": picks, "verification": {},
            "support_uniformity": support_uniformity(rows, cfg.dosimetry.prescription_Gy),
            "provenance": record,
        }
        write_text_atomic(out / "summary.json", json.dumps(summary, indent=1, default=float))
    for role, row in picks.items() if verify else ():
        # The segment model at its own resolution (mesh.size_mm), the capsules meshed.
        try:
            conf = evaluate_conforming(cfg.model_copy(update={"seeds": ()}), pick_plans[role],
                                       comm, cache_dir)
        except (MeshingError, SolverError) as err:  # raised on every rank
            check = {"error": str(err)}
        else:
            rel = conf.mechanics["relative_to_tumour"]
            check = {
                "cortical_max_ratio": {"embedded": row["cortical_max_ratio"],
                                       "conforming": rel["L4.cortical_endplates"]["max"]},
                "lesion_modulus_ratio": {"embedded": row["lesion_modulus_ratio"],
                                         "conforming": rel["lesion_apparent_modulus_MPa"]},
                "lesion_bone_sed_cov_ratio": {"embedded": row["lesion_bone_sed_cov_ratio"],
                                              "conforming": rel["lesion_bone_sed_cov"]},
                "mesh_size_mm": {"embedded": cfg.optimisation.mesh_size_mm,
                                 "conforming": cfg.mesh.size_mm},
            }
        if comm.rank == 0:
            summary["verification"][role] = check
            write_text_atomic(out / "summary.json", json.dumps(summary, indent=1, default=float))
    return summary
