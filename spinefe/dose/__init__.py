"""TG-43 seed dose on the segment mesh: samples per region, dose fields, DVHs and metrics (the
numpy core is the separate `dosimetry` package)."""
