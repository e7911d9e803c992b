"""The errors spinefe raises for bad input or a failed computation; the CLI maps them to exit codes
(spinefe/cli/main.py): input errors exit 2, the others 1."""


class ConfigError(ValueError):
    """An invalid configuration; the message names the key and the allowed values."""


class PlanningError(ValueError):
    """A needle or seed the planner refuses; the message names it and the reason."""


class MeshingError(RuntimeError):
    """gmsh could not mesh the volumes (raised on every rank)."""


class SolverError(RuntimeError):
    """A linear solve that did not converge; the message gives the reason and iterations."""
