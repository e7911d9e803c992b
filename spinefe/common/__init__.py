"""The vocabulary and plumbing every layer shares: region and surface names, motions, errors,
the configuration hash, MPI helpers (rank-0 writes, atomic files, logging), provenance and progress.
Imports nothing from spinefe."""
