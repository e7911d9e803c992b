"""A Slurm job array for a study: one array task per chunk of cases, each an MPI job of
`ranks_per_case` ranks running the same study runner on its chunk (`--task`)."""

from __future__ import annotations

import math
from pathlib import Path

TEMPLATE = """\
#!/bin/bash
# spinefe study {name}: {cases} cases in {tasks} array tasks of {per_task} case(s), each on
# {ranks} MPI rank(s). Submit: sbatch {script}
# When every task has ended, the table {out}/summary.csv (runs nothing):
#   spinefe study table {study} --out {out} {sets}
# Failed cases: resubmit their tasks (sbatch --array=<task ids> {script}); a task skips what
# it completed.
#SBATCH --job-name=spinefe-{name}
#SBATCH --array=0-{last}
#SBATCH --ntasks={ranks}
#SBATCH --cpus-per-task=1
#SBATCH --time={time}
#SBATCH --output={out}/slurm-%A_%a.out
{partition}
# --- site-specific: make spinefe and its MPI available, e.g. one of
# module load openmpi
# source /path/to/spinefe/.venv/bin/activate
# (or run spinefe in a container image that provides it)
set -euo pipefail
export OMP_NUM_THREADS=1
# --- site-specific: srun's MPI plugin must match the MPI library (pmi2 for MPICH, pmix for
# Open MPI builds with PMIx); `mpiexec -n $SLURM_NTASKS` works inside the allocation too.
srun --mpi=pmi2 spinefe study run {study} --out {out} --ranks-per-case {ranks} {sets}\\
    --cases-per-task {per_task} --task "$SLURM_ARRAY_TASK_ID"
"""


def slurm_script(study_path: Path, name: str, cases: int, out: Path, script: Path,
                 ranks_per_case: int = 1, cases_per_task: int = 1, time: str = "04:00:00",
                 partition: str | None = None, sets: str = "") -> str:
    """The sbatch script's text; the array has ceil(cases / cases_per_task) tasks; `sets`:
    the --set options of the study's command line, repeated in every task's."""
    tasks = math.ceil(cases / cases_per_task)
    return TEMPLATE.format(
        name=name, cases=cases, tasks=tasks, per_task=cases_per_task, ranks=ranks_per_case,
        last=tasks - 1, time=time, out=out, study=study_path, script=script,
        sets=sets + " " if sets else "",
        partition=f"#SBATCH --partition={partition}" if partition else
        "# #SBATCH --partition=...   (site-specific)")
