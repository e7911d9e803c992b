"""`--toy`: each benchmark at the test suite's size, so that `make test` runs every script.

The toy segment is the suite's coarse segment (tests/conftest.py `coarse`: h = 2.5 mm, capsules
at 0.5 mm), whose meshes `make test` has already built into $SPINEFE_TEST_CACHE; the harness
(tests/test_benchmarks.py) points $SPINEFE_CACHE there, so toy runs mesh only what they measure
(mesh_sizes.py meshes, and the conforming checks mesh a plan's capsules).
A toy run checks that the script still runs against the library, not its figures.
"""

from __future__ import annotations

#: Element size of the toy segment (mm): tests/conftest.py TEST_H.
SIZE_MM = 2.5
#: Element size on the seed capsules of the toy segment (mm): tests/conftest.py `coarse`.
SEED_SIZE_MM = 0.5


def segment_data(size_mm: float, toy: bool, seedless: bool = False) -> dict:
    """The default configuration as data with element size `size_mm` (or the toy sizes when
    `toy`), without seeds when `seedless`."""
    from spinefe.config.sections import Config

    data = Config().model_dump(mode="json")
    data["mesh"]["size_mm"] = SIZE_MM if toy else size_mm
    if toy:
        data["mesh"]["seed_size_mm"] = SEED_SIZE_MM
    if seedless:
        data["seeds"] = []
    return data
