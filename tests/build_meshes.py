"""Mesh the test segments ahead of the suite: `python tests/build_meshes.py CACHE NAME [NAME ...]`.

`make test` runs two of these side by side (one per core) before pytest, so that no test pays
for a gmsh build and the serial and 2-rank passes read the same cached meshes.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import spinefe  # noqa: E402, F401  (first: spinefe/__init__ loads the PETSc of DOLFINx)
from mpi4py import MPI  # noqa: E402

from spinefe.geometry.mesh import build_mesh  # noqa: E402
from spinefe.geometry.segment import segment_geometry  # noqa: E402
from conftest import SEGMENTS  # noqa: E402

if __name__ == "__main__":
    cache, names = Path(sys.argv[1]), sys.argv[2:]
    unknown = sorted(set(names) - set(SEGMENTS))
    if unknown or not names:
        sys.exit(f"build_meshes: unknown segment(s) {unknown}; allowed: {sorted(SEGMENTS)}")
    for name in names:
        t0 = time.perf_counter()
        model = build_mesh(segment_geometry(SEGMENTS[name]()), MPI.COMM_SELF, cache)
        print(f"test mesh {name}: {model.meta['cache']}, {time.perf_counter() - t0:.0f} s",
              flush=True)
