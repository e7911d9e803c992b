"""Studies: study files and their cases, the resumable runner on MPI groups, the jobs a case runs,
Slurm job arrays and reruns."""
