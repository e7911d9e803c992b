"""Progress of a long collective loop, shown by rank 0 only: a tqdm bar on a terminal, plain
log lines (count, failures, ETA) otherwise, e.g. in a batch job's output file."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger(__name__)


class Progress:
    """Context manager: `update(n, failed=...)` after each step of `total`."""

    def __init__(self, total: int, label: str, comm):
        self.total, self.label, self.done = total, label, 0
        self.show = comm.rank == 0
        self.bar = None
        self.t0 = time.perf_counter()

    def __enter__(self) -> Progress:
        if self.show and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc=self.label, unit="case")
        elif self.show:
            log.info("%s: %d cases", self.label, self.total)
        return self

    def update(self, n: int, failed: int = 0) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.set_postfix(failed=failed)
            self.bar.update(n)
        elif self.show and n:
            elapsed = time.perf_counter() - self.t0
            eta = elapsed / self.done * (self.total - self.done)
            log.info("%s: %d/%d cases done (%d failed), %.0f s elapsed, ETA %.0f s",
                     self.label, self.done, self.total, failed, elapsed, eta)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
