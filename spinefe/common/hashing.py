"""One hash for configurations, study case ids and search checkpoint keys."""

import hashlib
import json
from typing import Any


def canonical_hash(data: Any, digits: int = 16) -> str:
    """The first `digits` hex digits of the SHA-256 of `data` as canonical JSON (sorted keys,
    no spaces): equal data, equal hash, across runs and machines."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:digits]
