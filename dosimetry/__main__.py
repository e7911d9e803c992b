"""`python -m dosimetry`: the dosimetry command line."""

from dosimetry.cli import main

raise SystemExit(main())
