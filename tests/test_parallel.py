"""MPI helpers: an error raised on rank 0 inside `on_root` reaches every rank (no hang)."""

from __future__ import annotations

import pytest
from mpi4py import MPI

from spinefe.common.parallel import on_root

pytestmark = pytest.mark.parallel


def test_on_root_returns_on_rank_0_only():
    comm = MPI.COMM_WORLD
    result = on_root(comm, lambda: comm.rank + 41)
    assert result == (41 if comm.rank == 0 else None)


def test_on_root_error_reaches_every_rank():
    comm = MPI.COMM_WORLD

    def fail():
        raise ValueError("disc.nucleus_fraction: found on rank 0")

    with pytest.raises(ValueError, match="found on rank 0"):
        on_root(comm, fail)
    comm.barrier()  # every rank got here: nobody is left waiting in a collective
