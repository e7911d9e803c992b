"""MPI helpers: run serial work on rank 0 with errors reaching every rank, rank-0 logging."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from mpi4py import MPI


def on_root[T](comm: MPI.Comm, fn: Callable[[], T]) -> T | None:
    """Call `fn` on rank 0; if it raises, raise the same exception on every rank.

    The result is returned on rank 0 only (None elsewhere). Use it around serial work (gmsh,
    file writing) that precedes a collective call, so that a failure on rank 0 cannot leave the
    other ranks waiting in the collective forever.
    """
    result, error = None, None
    if comm.rank == 0:
        try:
            result = fn()
        except Exception as exc:  # re-raised below, on all ranks
            error = exc
    error = comm.bcast(error, root=0)
    if error is not None:
        raise error
    return result


def write_json(comm: MPI.Comm, data: dict, filename: Path) -> None:
    """Rank 0 writes `data` as JSON atomically (temporary file, then rename)."""
    if comm.rank == 0:
        filename.parent.mkdir(parents=True, exist_ok=True)
        tmp = filename.with_suffix(filename.suffix + ".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, filename)


def write_csv(rows: list[dict], filename: Path) -> None:
    """`rows` as CSV (columns: the union of the rows' keys, in first-seen order), written
    atomically by the calling rank (call it on one)."""
    import csv
    import io

    from dosimetry.plan import write_text_atomic

    columns = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(filename, buffer.getvalue())


def share_cores(comm: MPI.Comm) -> None:
    """Give this rank's thread pools its share of the node's cores, so that several ranks on
    one machine do not oversubscribe it: the compiled dose kernel (numba) and the BLAS / OpenMP
    libraries loaded in the process (numpy's OpenBLAS starts one thread per core; threadpoolctl
    finds and limits them)."""
    import numba
    from threadpoolctl import threadpool_limits

    from dosimetry.tg43 import set_threads

    local = comm.Split_type(MPI.COMM_TYPE_SHARED)
    cores = len(os.sched_getaffinity(0))  # the cores this process may use (containers, Slurm)
    share = max(1, cores // local.size)
    local.Free()
    set_threads(min(numba.config.NUMBA_NUM_THREADS, share))
    threadpool_limits(limits=share)


class _RankFilter(logging.Filter):
    def __init__(self, rank: int, all_ranks: bool) -> None:
        super().__init__()
        self.rank, self.all_ranks = rank, all_ranks

    def filter(self, record: logging.LogRecord) -> bool:
        record.rank = self.rank
        return self.all_ranks or self.rank == 0


def setup_logging(comm: MPI.Comm, level: int = logging.INFO, all_ranks: bool = False) -> None:
    """One stderr handler for the `spinefe` loggers; only rank 0 logs unless `all_ranks`."""
    handler = logging.StreamHandler()
    handler.addFilter(_RankFilter(comm.rank, all_ranks))
    fmt = "[%(rank)d] %(levelname)s %(message)s" if all_ranks else "%(levelname)s %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    for name in ("spinefe", "dosimetry"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
