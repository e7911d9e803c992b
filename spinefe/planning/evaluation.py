"""Plan evaluation: a seed plan's dose and mechanical metrics in one record, fast enough to search.

`PlanEvaluator(model, layout, ...)` works on one mesh without seeds (the tumour model) and
prepares once: the tumour solution (reference of the relative metrics and start of every solve), the
constrained tumour operator A_t and its factorisation, the cells that may hold seeds (all
of L4) with their sample points, and the dose sample points of the lesion and the canal.
`evaluate(plan)` then
1. embeds the capsules: titanium fraction per cell and homogenised moduli (mechanics.embedded);
2. assembles the stiffness change dK on the L4 cells only and forms A = A_t + dK (the
   constrained dofs lie on L5's inferior surface, so the constraint rows stay as they are);
3. solves with CG preconditioned by a Cholesky factorisation of the tumour operator (MUMPS,
   made once; dK is local, so CG needs 6-10 iterations) from the tumour displacement;
4. computes the dose (TG-43 at the fixed sample points) and the mechanical metrics.
Every plan starts from the same state, so its result does not depend on the order of evaluation.

`evaluate_conforming(cfg, plan, comm)` gives the same mechanical metrics with the capsules meshed
as titanium volumes: the reference the embedded model is measured against.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import dolfinx.fem.petsc
import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI
from petsc4py import PETSc

from dosimetry import Plan, Samples, oar_metrics, target_metrics
from dosimetry.tg43 import dose_rate
from spinefe.common import regions as R
from spinefe.common.errors import ConfigError, PlanningError, SolverError
from spinefe.common.parallel import share_cores
from spinefe.common.regions import CANCELLOUS, CORTICAL_ENDPLATES
from spinefe.config.plans import plan_config
from spinefe.config.sections import (
    Config,
    Dosimetry,
    Lesion,
    Materials,
    Mechanics,
    SeedCapsule,
)
from spinefe.dose.mesh_dose import ORGAN_AT_RISK, TARGET, quadrature_samples
from spinefe.geometry.layout import SegmentLayout
from spinefe.geometry.mesh import Model, build_mesh, cell_volumes, marker_tags
from spinefe.geometry.segment import segment_geometry
from spinefe.mechanics.elasticity import ElasticSystem, assemble_elasticity
from spinefe.mechanics.embedded import TitaniumFraction, homogenise
from spinefe.mechanics import laws
from spinefe.mechanics.laws import linear_elastic, strain
from spinefe.mechanics.materials import MaterialFields, in_lesion, material_fields
from spinefe.mechanics.segment import load_bearing, region_cells, segment_load_case, solve_segment
from spinefe.mechanics.solvers import FactorisedCG
from spinefe.mechanics.stress import von_mises_array, weighted_stats
from spinefe.planning.needles import check_seeds

log = logging.getLogger(__name__)

#: Regions whose cells may hold seeds in the embedded model: the whole L4 vertebra.
SEED_HOSTS = [R.LESION, *R.vertebra_regions("L4")]
#: Von Mises groups of the metrics (the paper's two indicators).
STRESS_GROUPS = {
    CORTICAL_ENDPLATES: ["L4.cortical", "L4.endplate_superior", "L4.endplate_inferior"],
    CANCELLOUS: ["L4.trabecular", R.LESION],
}
#: A capsule counts as embedded when this share of its volume lies in the L4 cells.
EMBEDDED_SHARE = 0.99
#: Most plans whose systems are solved together (PlanEvaluator.evaluate_many): the factor's
#: solve time per right-hand side levels off from about 16 (0.018 s at 78k dofs), while the
#: memory grows with the count (five vectors per plan).
BLOCK = 32


@dataclass
class PlanEvaluation:
    """Dose and mechanical metrics of one plan (identical on every rank)."""

    plan: str
    seeds: int
    dose: dict
    mechanics: dict
    solver: dict = field(default_factory=dict)

    def record(self) -> dict:
        return asdict(self)


def strain_energy_density(sigma: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """sigma : eps / 2 (mJ/mm3) of stress (MPa) and strain tensors, one (3, 3) per cell."""
    return 0.5 * np.einsum("cij,cij->c", sigma, eps)


class MechanicalProbe:
    """Mechanical metrics of a P1 displacement u on a load-bearing model with materials m:

    - von Mises (MPa) of `STRESS_GROUPS`: max and volume-weighted p95, p99, mean;
    - the lesion's apparent axial modulus int(sigma_zz) / int(eps_zz) (MPa) and strain energy
      (mJ) over the cells whose midpoint lies in the lesion ellipsoid (capsules included);
    - the uniformity of the lesion's support: the volume-weighted coefficient of variation of
      the strain energy density over the lesion's bone, i.e. without the cells that hold
      titanium (the seeds region, or `titanium_cells` of an embedded plan);
    - the segment's axial stiffness: load / mean displacement of L4.superior along it (N/mm).
    `lesion`: the lesion ellipsoid; `mechanics`: the axial load. Collective. P1 stresses are
    constant per cell, so one point per cell is exact; L4 has no nearly incompressible cells,
    so the stress is Hooke's law without the nodal pressure.
    """

    def __init__(self, model: Model, u: fem.Function, materials: MaterialFields, lesion: Lesion,
                 mechanics: Mechanics):
        mesh = model.mesh
        if u.function_space.element.basix_element.degree != 1:
            raise ValueError("mechanics.degree: plan metrics need P1 displacements")
        self.comm = mesh.comm
        n = mesh.topology.index_map(3).size_local

        def owned(cells):
            return np.unique(cells[cells < n])

        self.groups = {g: owned(region_cells(model, regions))
                       for g, regions in STRESS_GROUPS.items()}
        hosts = owned(region_cells(model, [R.LESION, R.SEEDS, "L4.trabecular"]))
        self.lesion = hosts[in_lesion(lesion, dolfinx.mesh.compute_midpoints(mesh, 3, hosts))]
        self.capsules = owned(region_cells(model, [R.SEEDS])) if R.SEEDS in model.names \
            else np.empty(0, np.int32)
        self.cells = np.unique(np.concatenate([*self.groups.values(), self.lesion]))
        self.volume = cell_volumes(mesh)[self.cells]
        eps = strain(u)
        sigma = laws.stress(u, 0.0, materials.isotropic, materials.laws)  # P1: no nodal pressure
        centre = np.full((1, 3), 0.25)
        pairs = [(i, j) for i in range(3) for j in range(3)]
        self.fields = fem.Expression(
            ufl.as_vector([sigma[i, j] for i, j in pairs] + [eps[i, j] for i, j in pairs]), centre)
        self.mesh = mesh
        direction = np.asarray(mechanics.load_direction, float)
        direction /= np.linalg.norm(direction)
        self.load_N = mechanics.load_N
        top = marker_tags(mesh, 2, [(model.facet_tags.find(model.tag(R.L4_SUPERIOR)), 1)])
        ds = ufl.Measure("ds", domain=mesh, subdomain_data=top, subdomain_id=1)
        self.area = self.comm.allreduce(fem.assemble_scalar(fem.form(1.0 * ds)), op=MPI.SUM)
        self.settlement = fem.form(ufl.dot(u, fem.Constant(mesh, direction)) * ds)

    def __call__(self, titanium_cells: np.ndarray | None = None) -> dict:
        """The metrics; titanium_cells: local cells of embedded capsules (besides the seeds
        region), left out of the lesion's uniformity."""
        values = self.fields.eval(self.mesh, self.cells).reshape(len(self.cells), 2, 3, 3)
        sigma, eps = values[:, 0], values[:, 1]
        vm = von_mises_array(sigma)
        out = {}
        for group, cells in self.groups.items():
            idx = np.searchsorted(self.cells, cells)
            out[group] = weighted_stats(vm[idx], self.volume[idx], self.comm)
        idx = np.searchsorted(self.cells, self.lesion)
        vol = self.volume[idx]
        sed = strain_energy_density(sigma[idx], eps[idx])
        sums = self.comm.allreduce(np.array([
            vol @ sigma[idx, 2, 2], vol @ eps[idx, 2, 2], vol @ sed, vol.sum()]), op=MPI.SUM)
        bone_volume, cov = self.bone_sed_cov(sed, titanium_cells)
        out["lesion"] = {"apparent_modulus_MPa": float(sums[0] / sums[1]),
                         "strain_energy_mJ": float(sums[2]), "volume_mm3": float(sums[3]),
                         "bone_volume_mm3": bone_volume, "bone_sed_cov": cov}
        settlement = self.comm.allreduce(fem.assemble_scalar(self.settlement), op=MPI.SUM)
        out["axial_stiffness_N_mm"] = self.load_N * self.area / settlement
        return out

    def lesion_sed(self) -> np.ndarray:
        """Strain energy density (mJ/mm3) of the current displacement in each local lesion
        cell (self.lesion)."""
        values = self.fields.eval(self.mesh, self.lesion).reshape(len(self.lesion), 2, 3, 3)
        return strain_energy_density(values[:, 0], values[:, 1])

    def bone_sed_cov(self, sed: np.ndarray, titanium_cells: np.ndarray | None = None
                     ) -> tuple[float, float]:
        """Volume (mm3) and volume-weighted coefficient of variation of the strain energy
        density `sed` (per lesion cell) over the lesion's bone: the lesion without the seeds
        region and `titanium_cells`; collective."""
        titanium = self.capsules if titanium_cells is None else np.union1d(self.capsules,
                                                                           titanium_cells)
        bone = self.volume[np.searchsorted(self.cells, self.lesion)] * ~np.isin(self.lesion,
                                                                               titanium)
        volume, first, second = self.comm.allreduce(
            np.array([bone.sum(), bone @ sed, bone @ sed**2]), op=MPI.SUM)
        mean = first / volume
        return float(volume), float(np.sqrt(max(second / volume - mean**2, 0.0)) / mean)


def relative_to(metrics: dict, reference: dict) -> dict:
    """`metrics` divided by those of the reference (tumour) model: the von Mises statistics of
    every group, the lesion's apparent modulus, strain energy and bone strain energy density
    CoV, the axial stiffness."""
    out = {g: {k: metrics[g][k] / reference[g][k] for k in ("max", "p95", "p99", "mean")}
           for g in STRESS_GROUPS}
    for key in ("apparent_modulus_MPa", "strain_energy_mJ", "bone_sed_cov"):
        out[f"lesion_{key}"] = metrics["lesion"][key] / reference["lesion"][key]
    out["axial_stiffness_N_mm"] = metrics["axial_stiffness_N_mm"] / reference[
        "axial_stiffness_N_mm"]
    return out


class DoseProbe:
    """Lesion and canal dose metrics of a plan at fixed sample points (quadrature points of the
    regions' owned cells, basix degree `degree`), with the formalism and prescription of
    `dosimetry`; points inside a capsule are left out."""

    def __init__(self, model: Model, dosimetry: Dosimetry, degree: int = 2):
        n = model.mesh.topology.index_map(3).size_local
        self.comm, self.dosimetry = model.comm, dosimetry
        self.samples = {}
        for name in (TARGET, ORGAN_AT_RISK):
            if name in model.names:
                cells = model.cell_tags.find(model.tag(name))
                self.samples[name] = quadrature_samples(model.mesh, cells[cells < n], degree)
        if TARGET not in self.samples:
            raise ValueError(f"lesion.enabled: plan evaluation needs the target {TARGET}")

    def _gathered(self, name: str, plan: Plan) -> Samples:
        x, vol = self.samples[name]
        pd = dose_rate(x, plan, self.dosimetry.formalism)
        keep = ~pd.inside_capsule
        dose = np.concatenate(self.comm.allgather(pd.total_dose_Gy[keep]))
        return Samples.of(dose, np.concatenate(self.comm.allgather(vol[keep])))

    def __call__(self, plan: Plan) -> dict:
        rx = self.dosimetry.prescription_Gy
        out = {"target": target_metrics(self._gathered(TARGET, plan), rx), "prescription_Gy": rx}
        if ORGAN_AT_RISK in self.samples:
            out["organ_at_risk"] = oar_metrics(self._gathered(ORGAN_AT_RISK, plan))
        return out


def require_axial_load(mechanics: Mechanics) -> None:
    """Refuse a load case other than the axial one: the evaluator's metrics (the axial
    stiffness among them) are the axial load's."""
    if mechanics.load_case != "axial":
        raise ConfigError(f"mechanics.load_case: plan evaluation uses the axial load, got "
                          f"{mechanics.load_case!r}")


class PlanEvaluator:
    """Evaluates seed plans on one fixed mesh without seeds (module docstring); collective.

    model: the segment meshed without seeds (seeds = []), dose-only regions included;
    layout: its layout (the seeds' safety checks); materials, lesion, mechanics (the axial load
    and its solver), capsule and dosimetry: the config's sections;
    rule: the homogenisation rule (mechanics.embedded.RULES); rtol: CG tolerance relative to the
    load vector (1e-5 keeps the metrics to 6e-6 of a 1e-11 solve, docs/planning.md);
    dose_degree: quadrature degree of the dose samples per cell (2: D90 within 0.02 % of 8);
    factorise_each_plan: precondition with each plan's own factorisation instead of the
    tumour's (a direct solve, about 5 s at 100k dofs), for rules that stiffen cells far beyond
    the tumour (voigt: CG on the tumour factorisation needs thousands of iterations).
    The solver is CG preconditioned by the tumour operator's Cholesky factorisation
    (mechanics.solvers.FactorisedCG: 6-10 iterations at rtol 1e-5 where the tumour operator's
    GAMG needs 62; docs/planning.md); `mechanics.petsc` options override its built-in ones.
    """

    def __init__(self, model: Model, layout: SegmentLayout, *, materials: Materials,
                 lesion: Lesion, mechanics: Mechanics, capsule: SeedCapsule, dosimetry: Dosimetry,
                 rule: str = "mori_tanaka", rtol: float = 1e-5, max_iterations: int = 200,
                 dose_degree: int = 2, factorise_each_plan: bool = False):
        t0 = time.perf_counter()
        if R.SEEDS in model.names:
            raise ValueError("seeds: the evaluator embeds the plan's seeds in a mesh without "
                             "seeds; mesh the segment with seeds = []")
        homogenise(rule, 0.0, 1.0, 0.3, 1.0, 0.3)  # refuse an unknown rule before the set-up
        require_axial_load(mechanics)
        share_cores(model.comm)
        self.rule, self.comm = rule, model.comm
        self.layout, self.capsule, self.titanium = layout, capsule, materials.Ti6Al4V
        mech = load_bearing(model)
        mesh = mech.mesh
        self.rtol, self.block = rtol, BLOCK
        self.host = material_fields(mech, materials, lesion, "tumour")
        self.materials = replace(self.host, E=self.host.E.copy(), nu=self.host.nu.copy())
        self.system: ElasticSystem = assemble_elasticity(
            self.host, segment_load_case(mech, mechanics), 1, mechanics.nearly_incompressible_nu)
        self.A = self.system.A.copy()  # A_t + dK of the current plan
        self.petsc_options = dict(mechanics.petsc)
        self.solver = FactorisedCG(self.A, self.system.A, rtol, max_iterations,
                                   self.petsc_options)
        self.tumour_u = self.system.uh.copy()
        self._solve(self.tumour_u)  # A = P: converges at once
        if factorise_each_plan:
            self.solver.factorise_each_solve(self.A)
        self.u = self.tumour_u.copy()
        self.u.name = "displacement_mm"

        n = mesh.topology.index_map(3).size_local
        hosts = np.unique(region_cells(mech, SEED_HOSTS))
        hosts = hosts[hosts < n]
        self.cell_dofs = self.host.space.dofmap.list[hosts].ravel()
        self.fraction = TitaniumFraction(mesh, hosts)
        # Checked on every rank together: a rank that raised alone would leave the others
        # waiting in the next collective.
        V = self.system.V
        if self.comm.allreduce(bool(np.any(self.system.chi.x.array[self.cell_dofs] > 0.5)),
                               op=MPI.LOR):
            raise ValueError("materials: an L4 material is nearly incompressible; the embedded "
                             "seeds need the plain elastic form there")
        for cell_law in self.host.laws:  # the homogenisation mixes isotropic phases only
            if self.comm.allreduce(bool(np.any(cell_law.indicator.x.array[self.cell_dofs] > 0)),
                                   op=MPI.LOR):
                raise ConfigError(f"{cell_law.key}: the embedded seeds need isotropic host "
                                  f"cells; the {cell_law.name} law takes some of them")
        constrained = fem.Function(V)
        constrained.x.array[self.system.local_rows] = 1.0
        constrained.x.scatter_forward()  # ghosts learn the constraints of their owners
        host_dofs = np.unique(V.dofmap.list[hosts].ravel())
        touches = np.any(constrained.x.array.reshape(-1, 3)[host_dofs] > 0.0)
        if self.comm.allreduce(bool(touches), op=MPI.LOR):
            raise ValueError("the L4 cells touch a constrained dof; dK would break the supports")
        # dK is compiled once and integrated, per plan, over the cells that hold titanium.
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        self.delta_form = fem.compile_form(
            self.comm, linear_elastic.bilinear(u, v, self.materials.isotropic - self.host.isotropic)
            * ufl.dx(domain=mesh, subdomain_id=1))
        self.hosts = hosts

        self.mechanics = MechanicalProbe(mech, self.u, self.materials, lesion, mechanics)
        self.dose = DoseProbe(model, dosimetry, dose_degree)
        self.u.x.array[:] = self.tumour_u.x.array
        self.tumour = self.mechanics()
        self.tumour_sed = self.mechanics.lesion_sed()
        self.setup_seconds = time.perf_counter() - t0
        self.dofs = 3 * V.dofmap.index_map.size_global

    def _solve(self, u: fem.Function) -> bool:
        """Solve the current plan's system (self.A) into u from its value; True when CG on the
        tumour's factorisation did not converge and the plan's own factorisation solved it
        (`_solve_own`). SolverError for the tumour's own solve, or where neither converges."""
        what = f"plan evaluation ({self.rule}): CG"
        try:
            self.solver.solve(self.system.b, u.x.petsc_vec, what)
            return False
        except SolverError as err:
            if self.solver.fixed_factor is None:
                raise SolverError(f"{err}; for a rule that stiffens cells far beyond the tumour "
                                  "use factorise_each_plan") from None
            self._solve_own(u, str(err))
            return True
        finally:
            u.x.scatter_forward()

    def _solve_own(self, u: fem.Function, why: str) -> None:
        """Solve self.A u = b with self.A's own factorisation (a direct solve, then CG to the
        tolerance; a plan whose titanium changes the operator too much for the tumour's
        factorisation to precondition it, e.g. many capsules on a fine mesh), from the tumour's
        displacement; collective."""
        if self.comm.rank == 0:
            log.warning("%s: solving this plan with its own factorisation", why)
        u.x.array[:] = self.tumour_u.x.array
        own = FactorisedCG(self.A, self.A, self.rtol, 10, self.petsc_options, "own_factor")
        try:
            own.solve(self.system.b, u.x.petsc_vec,
                      f"plan evaluation ({self.rule}), own factorisation: CG")
        finally:
            own.destroy()
            u.x.scatter_forward()

    def moduli(self, plan: Plan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The titanium fraction and homogenised moduli E (MPa) and nu of each seed-host cell
        under `plan`'s capsules. PlanningError names a seed that overlaps another or leaves L4;
        collective."""
        capsule = self.capsule
        check_seeds(self.layout, plan.positions_mm, plan.directions, capsule.diameter_mm,
                    capsule.length_mm)
        phi, found = self.fraction(plan.positions_mm, plan.directions, capsule.diameter_mm,
                                   capsule.length_mm)
        found = self.comm.allreduce(found, op=MPI.SUM)
        full = np.pi * (0.5 * capsule.diameter_mm) ** 2 * capsule.length_mm
        for i, v in enumerate(found):
            if v < EMBEDDED_SHARE * full:
                raise PlanningError(
                    f"seed {i} at {np.round(plan.positions_mm[i], 2).tolist()}: only "
                    f"{100 * v / full:.0f} % of its capsule lies in the L4 vertebra")
        ti = self.titanium
        E, nu = homogenise(self.rule, phi, self.host.E.x.array[self.cell_dofs],
                           self.host.nu.x.array[self.cell_dofs], ti.E_MPa, ti.nu)
        return phi, E, nu

    def _set_moduli(self, E: np.ndarray, nu: np.ndarray) -> None:
        """The seed-host cells' moduli of self.materials (the rest stays the tumour's)."""
        self.materials.E.x.array[self.cell_dofs] = E
        self.materials.nu.x.array[self.cell_dofs] = nu
        self.materials.E.x.scatter_forward()
        self.materials.nu.x.scatter_forward()

    def embed(self, plan: Plan) -> np.ndarray:
        """Set the homogenised moduli of `plan`'s capsules (`moduli`); returns the titanium
        fraction per seed-host cell."""
        phi, E, nu = self.moduli(plan)
        self._set_moduli(E, nu)
        return phi

    def _change(self, phi: np.ndarray) -> fem.Form:
        """The stiffness change dK of the current materials over the cells that hold titanium
        (phi > 0)."""
        coefficients = {f: f for f in (self.materials.E, self.materials.nu, self.host.E,
                                       self.host.nu)}
        return fem.create_form(self.delta_form, [self.system.V] * 2, self.system.V.mesh,
                               {fem.IntegralType.cell: [(1, self.hosts[phi > 0.0])]},
                               coefficients, {})

    def _metrics(self, phi: np.ndarray) -> dict:
        """The mechanical metrics of self.u (with self.materials), relative to the tumour's."""
        titanium = self.hosts[phi > 0.0]
        mech = self.mechanics(titanium)
        # The tumour's support uniformity over the same bone: without the plan's titanium cells.
        reference = self.tumour | {"lesion": self.tumour["lesion"] | {
            "bone_sed_cov": self.mechanics.bone_sed_cov(self.tumour_sed, titanium)[1]}}
        mech["relative_to_tumour"] = relative_to(mech, reference)
        return mech

    def _record(self, iterations: int, seconds: dict, own_factor: bool = False) -> dict:
        """The solver's record of one plan; own_factor: CG on the tumour's factorisation did
        not converge and the plan's own factorisation solved it (`_solve_own`)."""
        return {"model": f"embedded ({self.rule})", "dofs": self.dofs, "iterations": iterations,
                "own_factorisation": own_factor, "petsc_options": self.petsc_options,
                "seconds": seconds}

    def _assemble(self, phi: np.ndarray) -> None:
        """self.A = the tumour operator + the stiffness change of the current materials."""
        self.system.A.copy(self.A, structure=PETSc.Mat.Structure.SAME_NONZERO_PATTERN)
        dolfinx.fem.petsc.assemble_matrix(self.A, self._change(phi))  # adds dK to A_t
        self.A.assemble()

    def solve(self, plan: Plan) -> dict:
        """Embed `plan`, solve, and return the mechanical metrics (self.u holds the
        displacement) with the solver's record under "solver"; collective."""
        t0 = time.perf_counter()
        phi = self.embed(plan)
        t1 = time.perf_counter()
        self._assemble(phi)
        t2 = time.perf_counter()
        self.u.x.array[:] = self.tumour_u.x.array
        own = self._solve(self.u)
        t3 = time.perf_counter()
        mech = self._metrics(phi)
        mech["solver"] = self._record(self.solver.iterations, {
            "embed": t1 - t0, "assemble": t2 - t1, "solve": t3 - t2,
            "metrics": time.perf_counter() - t3}, own)
        return mech

    def evaluate(self, plan: Plan) -> PlanEvaluation:
        """Dose and mechanical metrics of `plan` (module docstring); collective."""
        t0 = time.perf_counter()
        mech = self.solve(plan)
        solver = mech.pop("solver")
        t1 = time.perf_counter()
        dose = self.dose(plan)
        solver["seconds"]["dose"] = time.perf_counter() - t1
        solver["seconds"]["total"] = time.perf_counter() - t0
        return PlanEvaluation(plan.name, len(plan.seeds), dose, mech, solver)

    def evaluate_many(self, plans: list[Plan]) -> list[PlanEvaluation | PlanningError]:
        """`evaluate` for each plan, or the PlanningError that refused it. With the tumour
        operator's factorisation as the preconditioner (not factorise_each_plan), the plans'
        systems are solved together (FactorisedCG.solve_many: the same metrics as `evaluate`
        to round-off in the CG iterates, several times faster per plan); the record's solve
        seconds are each plan's share of that solve; at most `block` (BLOCK) plans at a time.
        Collective."""
        if len(plans) > self.block:
            return [result for i in range(0, len(plans), self.block)
                    for result in self.evaluate_many(plans[i:i + self.block])]
        if self.solver.fixed_factor is None:
            out = []
            for plan in plans:
                try:
                    out.append(self.evaluate(plan))
                except PlanningError as err:
                    out.append(err)
            return out
        out: list = [None] * len(plans)
        embedded = []  # (index, phi, E, nu, dK, seconds)
        for i, plan in enumerate(plans):
            t0 = time.perf_counter()
            try:
                phi, E, nu = self.moduli(plan)
            except PlanningError as err:
                out[i] = err
                continue
            self._set_moduli(E, nu)
            t1 = time.perf_counter()
            change = dolfinx.fem.petsc.assemble_matrix(self._change(phi))
            change.assemble()
            embedded.append((i, phi, E, nu, change,
                             {"embed": t1 - t0, "assemble": time.perf_counter() - t1}))
        t0 = time.perf_counter()
        what = f"plan evaluation ({self.rule}): CG"
        X, iterations, failed = self.solver.solve_many(
            [e[4] for e in embedded], self.system.b, self.tumour_u.x.petsc_vec, what)
        share = (time.perf_counter() - t0) / max(len(embedded), 1)
        u = self.u.x.petsc_vec
        for column, (i, phi, E, nu, change, seconds) in enumerate(embedded):
            change.destroy()
            t0 = time.perf_counter()
            self._set_moduli(E, nu)
            own = column in failed  # never lose a plan to the shared preconditioner
            if own:
                self._assemble(phi)
                self._solve_own(self.u, f"{what} (plan {plans[i].name!r}) did not converge in "
                                        f"{iterations[column]} iterations")
                seconds["solve"] = time.perf_counter() - t0
                t0 = time.perf_counter()
            else:
                u.array[:] = X[:, column]
                self.u.x.scatter_forward()
            mech = self._metrics(phi)
            t1 = time.perf_counter()
            dose = self.dose(plans[i])
            seconds |= {"solve": seconds.get("solve", 0.0) + share, "metrics": t1 - t0,
                        "dose": time.perf_counter() - t1}
            seconds["total"] = sum(seconds.values())
            out[i] = PlanEvaluation(plans[i].name, len(plans[i].seeds), dose, mech,
                                    self._record(iterations[column], seconds, own))
        return out


def conforming_metrics(model: Model, materials: Materials, lesion: Lesion,
                       mechanics: Mechanics) -> dict:
    """Mechanical metrics of the implanted scenario on a load-bearing model whose capsules are
    meshed, relative to the tumour scenario on the same mesh; collective."""
    metrics = {}
    for scenario in ("tumour", "implanted"):
        sol = solve_segment(model, material_fields(model, materials, lesion, scenario), mechanics)
        metrics[scenario] = MechanicalProbe(model, sol.u, sol.materials, lesion, mechanics)()
    mech = metrics["implanted"]
    mech["relative_to_tumour"] = relative_to(mech, metrics["tumour"])
    mech["solver"] = {"model": "conforming", "dofs": sol.dofs, "iterations": sol.iterations}
    return mech


def evaluate_conforming(cfg: Config, plan: Plan, comm: MPI.Comm,
                        cache_dir: Path | None = None) -> PlanEvaluation:
    """Mechanical metrics of `plan` with its capsules meshed as titanium volumes
    (`conforming_metrics`); remeshes (cached by geometry) and solves twice; collective."""
    t0 = time.perf_counter()
    pcfg = plan_config(cfg, plan)
    model = load_bearing(build_mesh(segment_geometry(pcfg), comm, cache_dir))
    t1 = time.perf_counter()
    mech = conforming_metrics(model, pcfg.materials, pcfg.lesion, pcfg.mechanics)
    solver = mech.pop("solver")
    t2 = time.perf_counter()
    solver["seconds"] = {"mesh": t1 - t0, "solve": t2 - t1, "total": t2 - t0}
    return PlanEvaluation(plan.name, len(plan.seeds), {}, mech, solver)


def evaluation_markdown(record: dict) -> str:
    """The evaluation record of `spinefe evaluate` as Markdown tables (embedded, and conforming
    beside it when present)."""
    models = [k for k in ("embedded", "conforming") if k in record]
    first = record["embedded"]
    dose = first["dose"]
    rx = dose["prescription_Gy"]
    t = dose["target"]
    lines = [f"# {first['plan']}: {first['seeds']} seeds", "",
             f"Lesion D90 {t['D90_Gy']:.1f} Gy (prescription {rx:g} Gy), V100 "
             f"{t['V100_percent']:.1f} %, V150 {t['V150_percent']:.1f} %, V200 "
             f"{t['V200_percent']:.1f} %."]
    if "organ_at_risk" in dose:
        oar = dose["organ_at_risk"]
        lines[-1] += f" Canal D0.1cc {oar['D0.1cc_Gy']:.1f} Gy, Dmax {oar['Dmax_Gy']:.1f} Gy."
    lines += ["", "| metric | " + " | ".join(record[m]["solver"]["model"] for m in models) + " |",
              "|---|" + "---|" * len(models)]
    rows = [("L4 cortical + endplates von Mises max (MPa)",
             lambda m: m[CORTICAL_ENDPLATES]["max"]),
            ("  p99 (MPa)", lambda m: m[CORTICAL_ENDPLATES]["p99"]),
            ("  p95 (MPa)", lambda m: m[CORTICAL_ENDPLATES]["p95"]),
            ("  max / tumour", lambda m: m["relative_to_tumour"][CORTICAL_ENDPLATES]["max"]),
            ("  p99 / tumour", lambda m: m["relative_to_tumour"][CORTICAL_ENDPLATES]["p99"]),
            ("L4 cancellous p99 / tumour", lambda m: m["relative_to_tumour"][CANCELLOUS]["p99"]),
            ("lesion apparent modulus (MPa)", lambda m: m["lesion"]["apparent_modulus_MPa"]),
            ("lesion strain energy (mJ)", lambda m: m["lesion"]["strain_energy_mJ"]),
            ("segment axial stiffness (N/mm)", lambda m: m["axial_stiffness_N_mm"])]
    for label, value in rows:
        lines.append(f"| {label} | " + " | ".join(f"{value(record[m]['mechanics']):.5g}"
                                                  for m in models) + " |")
    lines.append("| dofs / seconds | " + " | ".join(
        f"{record[m]['solver']['dofs']} / {record[m]['solver']['seconds']['total']:.1f}"
        for m in models) + " |")
    return "\n".join(lines) + "\n"
