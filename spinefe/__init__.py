"""spinefe: L4-L5 finite-element model for dual (dose and mechanics) I-125 seed implant planning."""

try:
    # DOLFINx from PyPI (the `dolfinx` extra, dolfinx-solver-real) bundles PETSc: this import
    # loads it and must come before dolfinx and petsc4py, so it is made here, before any
    # spinefe module. Where DOLFINx comes from elsewhere (the FEniCS images, conda, spack),
    # the module does not exist and nothing needs loading.
    import dolfinx_solver  # noqa: F401
except ModuleNotFoundError as err:
    if err.name != "dolfinx_solver":  # the wheel is there but broken: say so
        raise

__version__ = "0.1.0"
