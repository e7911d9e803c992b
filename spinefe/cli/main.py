"""The `spinefe` command line (also `python -m spinefe`, so `mpiexec -n N python -m spinefe`):
parse (spinefe.cli.parser), run one command (spinefe.cli.commands), map the outcome to an exit
status, here and nowhere else. Under MPI an error on one rank ends all ranks.
"""

from __future__ import annotations

import logging
import sys

from spinefe.cli.parser import build_parser

log = logging.getLogger("spinefe")

#: Exit status: success; any other failure (the traceback is logged); invalid input (a message
#: naming the key, no traceback); a rerun that did not reproduce its case; FAILED_CASES + the
#: number of failed cases of a study (at most MAX_STATUS); interrupted (Ctrl-C, SIGTERM).
OK, FAILED, INVALID_INPUT, RERUN_DIFFERS = 0, 1, 2, 3
FAILED_CASES, MAX_STATUS, INTERRUPTED = 10, 125, 130


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Imported once the arguments parse: mpi4py starts MPI on import, and `spinefe --help` or a
    # bad argument should neither start it nor wait for the library.
    from mpi4py import MPI

    from dosimetry import PlanError, SeedModelError
    from spinefe.cli import commands
    from spinefe.common.errors import ConfigError, PlanningError
    from spinefe.common.parallel import setup_logging, share_cores

    comm = MPI.COMM_WORLD
    setup_logging(comm, logging.DEBUG if args.verbose else logging.INFO, args.log_all_ranks)
    share_cores(comm)
    try:
        commands.COMMANDS[args.command](args, comm)
    except commands.CasesFailed as err:
        return min(FAILED_CASES + err.failed, MAX_STATUS)
    except commands.RerunDiffers:
        return RERUN_DIFFERS
    except KeyboardInterrupt as err:
        kept = f"; {err}" if isinstance(err, commands.Interrupted) else ""
        print(f"spinefe: interrupted (rank {comm.rank}){kept}", file=sys.stderr, flush=True)
        if comm.size > 1:  # the other ranks may wait in a collective: end them all
            comm.Abort(INTERRUPTED)
        return INTERRUPTED
    except (ConfigError, PlanError, PlanningError, SeedModelError) as err:
        # raised on every rank together (each validates): rank 0 tells
        if comm.rank == 0:
            print(f"spinefe: error: {err}", file=sys.stderr)
        return INVALID_INPUT
    except Exception as err:
        log.exception("spinefe: failed on rank %d", comm.rank)
        if comm.rank:  # the log shows rank 0 only: name the error before the abort
            print(f"spinefe: failed on rank {comm.rank}: {type(err).__name__}: {err}",
                  file=sys.stderr, flush=True)
        if comm.size > 1:
            comm.Abort(FAILED)  # never leave the other ranks waiting in a collective
        return FAILED
    return OK


if __name__ == "__main__":
    sys.exit(main())
