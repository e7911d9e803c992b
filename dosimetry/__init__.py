"""TG-43 seed dosimetry (numpy core); built in issue 4."""
