"""`python -m spinefe` runs the command line (so `mpiexec -n N python -m spinefe ...` works)."""

import sys

from spinefe.cli.main import main

sys.exit(main())
