"""Biot poroelasticity (a biphasic disc) at small strain, in displacement-pressure (u-p) form.

A fluid-saturated solid matrix (drained Lame parameters mu, lambda) with pore pressure p (MPa,
compression positive). The total stress carries the pressure through the Biot coefficient alpha,
and the fluid's mass balance couples the matrix's volume change to Darcy flow of permeability k:

    sigma = 2 mu eps(u) + lambda tr(eps) I - alpha p I,                  div sigma = 0,
    alpha d(div u)/dt + (1/M) dp/dt - div(k grad p) = 0,

with 1/M (the storage, 1/MPa) = 0 and alpha = 1 for incompressible constituents (the biphasic
mixture of cartilage and disc models). Small strain throughout: k and the moduli do not depend on
the deformation (the verified law; a finite-strain, strain-dependent k is not built).

Time is discretised by backward Euler over a step dt (s); dt = 0 gives the instantaneous,
undrained response (no flow: alpha div u + p/M = 0). The mass balance, integrated over the
step, enters the weak form with a minus sign, so that the coupled operator is symmetric
(indefinite). Units: mm, N, MPa, s; k in mm^4/(N s) (1 m^4/(N s) = 1e12 mm^4/(N s)).

Closed forms of the confined (1D, Terzaghi) problem, which tests/test_poroelastic.py verifies:
the confined (oedometric) modulus M_c = lambda + 2 mu, the consolidation coefficient
c_v = k / (1/M + alpha^2 / M_c) (mm^2/s) and the undrained pressure under a load q,
p0 = alpha q / (alpha^2 + M_c / M).
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real

import ufl

from spinefe.mechanics.laws.base import Isotropic, strain

__all__ = ["Parameters", "residual", "stress"]


@dataclass(frozen=True)
class Parameters:
    """The drained matrix (`Isotropic`, MPa), permeability k (mm^4/(N s)), Biot coefficient alpha
    (-) and storage 1/M (1/MPa); numbers or cell-wise UFL values. Numbers out of range raise
    ValueError naming the parameter."""

    drained: Isotropic
    permeability_mm4_per_Ns: object
    alpha: object = 1.0
    storage_1_per_MPa: object = 0.0

    def __post_init__(self):
        checks = (("permeability_mm4_per_Ns", lambda v: v > 0.0, "> 0"),
                  ("alpha", lambda v: 0.0 < v <= 1.0, "in (0, 1]"),
                  ("storage_1_per_MPa", lambda v: v >= 0.0, ">= 0"))
        for name, ok, allowed in checks:
            value = getattr(self, name)
            if isinstance(value, Real) and not ok(value):
                raise ValueError(f"poroelastic {name} must be {allowed}, got {value}")

    @classmethod
    def of(cls, E, nu, permeability_mm4_per_Ns, alpha=1.0, storage_1_per_MPa=0.0) -> Parameters:
        """From the drained Young's modulus E (MPa) and Poisson's ratio nu."""
        return cls(Isotropic.of(E, nu), permeability_mm4_per_Ns, alpha, storage_1_per_MPa)

    @property
    def confined_modulus_MPa(self):
        """M_c = lambda + 2 mu, the drained modulus under confined (uniaxial) strain."""
        return self.drained.lam + 2.0 * self.drained.mu

    @property
    def consolidation_mm2_per_s(self):
        """c_v = k / (1/M + alpha^2 / M_c): the diffusivity of the pressure in 1D consolidation."""
        return self.permeability_mm4_per_Ns / (
            self.storage_1_per_MPa + self.alpha ** 2 / self.confined_modulus_MPa)

    def undrained_pressure(self, load_MPa):
        """The pore pressure p0 (MPa) right after a confined load of load_MPa (compression
        positive): alpha q / (alpha^2 + M_c / M)."""
        return self.alpha * load_MPa / (
            self.alpha ** 2 + self.confined_modulus_MPa * self.storage_1_per_MPa)


def stress(u, p, params: Parameters):
    """Total Cauchy stress (MPa): the drained matrix's effective stress minus alpha p I."""
    eps = strain(u)
    m = params.drained
    return (2.0 * m.mu * eps + m.lam * ufl.tr(eps) * ufl.Identity(3)
            - params.alpha * p * ufl.Identity(3))


def residual(u, p, v, q, u_n, p_n, dt, params: Parameters):
    """The backward-Euler step from (u_n, p_n) to (u, p) over dt (s) as one integrand (N mm per
    unit volume, tested by displacement v and pressure q): the internal virtual work of the
    total stress and minus the mass balance integrated over the step,
    -(alpha div(u - u_n) + (p - p_n)/M) q - dt k grad p . grad q. Loads, prescribed fluxes and
    the measure are the caller's."""
    flow = params.alpha * ufl.div(u - u_n) + params.storage_1_per_MPa * (p - p_n)
    return (ufl.inner(stress(u, p, params), strain(v))
            - flow * q - dt * params.permeability_mm4_per_Ns * ufl.inner(ufl.grad(p),
                                                                          ufl.grad(q)))
