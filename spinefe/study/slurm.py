"""A Slurm job array for a study: one array task per chunk of cases, each an MPI job of
`ranks_per_case` ranks running the same study runner on its chunk (`--task`). The script is
the template containers/slurm/study-array.sbatch with the study's values filled in."""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence
from pathlib import Path

from spinefe.common.errors import ConfigError

#: The template (str.format fields; the shell's own braces doubled), in the source tree
#: (spinefe/study/slurm.py -> the repository root): spinefe is installed editable (`make`, the
#: container images).
TEMPLATE = Path(__file__).resolve().parents[2] / "containers" / "slurm" / "study-array.sbatch"


def slurm_script(study_path: Path, name: str, cases: int, out: Path, script: Path,
                 ranks_per_case: int = 1, cases_per_task: int = 1, time: str = "04:00:00",
                 partition: str | None = None, sets: str = "") -> str:
    """The sbatch script's text; the array has ceil(cases / cases_per_task) tasks; `sets`:
    the override options of the study's command line (--set, --petsc), repeated in every
    task's."""
    try:
        template = TEMPLATE.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{TEMPLATE}: the Slurm template is missing; install spinefe from "
                          "its repository (pip install -e .)") from None
    tasks = math.ceil(cases / cases_per_task)
    return template.format(
        name=name, cases=cases, tasks=tasks, per_task=cases_per_task, ranks=ranks_per_case,
        last=tasks - 1, time=time, out=out, study=study_path, script=script,
        sets=sets + " " if sets else "",
        partition=f"#SBATCH --partition={partition}" if partition else
        "# #SBATCH --partition=...   (site-specific)")


def write_slurm_script(study_path: Path, name: str, cases: int, out: Path,
                       ranks_per_case: int = 1, cases_per_task: int = 1,
                       time: str = "04:00:00", partition: str | None = None,
                       options: Sequence[str] = ()) -> Path:
    """out/NAME.sbatch (`slurm_script`); `options`: the command line's override options as
    tokens (e.g. ["--set", "mesh.size_mm=2.0"]), quoted for the shell. Returns its path."""
    script = out / f"{name}.sbatch"
    out.mkdir(parents=True, exist_ok=True)
    script.write_text(slurm_script(study_path, name, cases, out, script, ranks_per_case,
                                   cases_per_task, time, partition,
                                   " ".join(shlex.quote(t) for t in options)))
    return script


def task_cases(task: int, cases_per_task: int, cases: int) -> range:
    """The indices of the cases that array task `task` runs (chunks of `cases_per_task` of
    `cases`); ConfigError naming --task when there is no such chunk."""
    start = task * cases_per_task
    if not 0 <= start < cases:
        raise ConfigError(f"--task: {task}, allowed 0 to {(cases - 1) // cases_per_task} for "
                          f"{cases} cases in chunks of {cases_per_task}")
    return range(start, min(start + cases_per_task, cases))
