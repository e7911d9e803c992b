"""Mesh the segment on rank 0, distribute it over MPI, cache it on disk, and describe it.

`build_mesh(geometry, comm)` returns a `Model`: the dolfinx mesh with cell and facet tags, the
name -> tag map of the shared vocabulary, and the ligament landmarks and facet contact pairs.
Meshes are cached as XDMF (with tags) under a key hashed from the geometric sections of the
config, so a second run with the same geometry reads the mesh instead of remeshing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import resource
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import dolfinx
import numpy as np
from dolfinx.io import XDMFFile
from mpi4py import MPI

from spinefe.common import regions as R
from spinefe.common.errors import MeshingError
from spinefe.common.parallel import on_root
from spinefe.geometry.layout import segment_layout
from spinefe.geometry.segment import SegmentGeometry

log = logging.getLogger(__name__)

#: Bump when the geometry code changes what a given config produces (invalidates caches). The
#: cache stores the ligament landmarks with the mesh, so new landmarks bump it too (5: the
#: capsular ligaments; 6: the L4 articular tips and the L5 lamina surface beneath them).
GEOMETRY_VERSION = 6
#: gmsh options of the 3D meshing beyond the size field (`occ.set_mesh_size`): the optimisation
#: passes after the mesher. Part of the cache key, with the gmsh version.
GMSH_MESH_OPTIONS = {"Mesh.Optimize": 1}


@dataclass
class Model:
    """A meshed segment: mesh, tags, names and exported anatomy (all ranks)."""

    mesh: dolfinx.mesh.Mesh
    cell_tags: dolfinx.mesh.MeshTags
    facet_tags: dolfinx.mesh.MeshTags
    names: dict[str, tuple[int, int]]
    landmarks: dict[str, list]
    contact_pairs: dict[str, tuple[str, str]]
    meta: dict = field(default_factory=dict)

    @property
    def comm(self) -> MPI.Comm:
        return self.mesh.comm

    def tag(self, name: str) -> int:
        """Physical tag of a region or surface name; KeyError lists the known names."""
        try:
            return self.names[name][1]
        except KeyError:
            raise KeyError(
                f"unknown region or surface {name!r}; known: {sorted(self.names)}"
            ) from None

    def regions(self) -> list[str]:
        return sorted(n for n, (d, _) in self.names.items() if d == 3)


def geometry_key(geometry: SegmentGeometry) -> str:
    """The mesh cache key: the geometry code's version, a hash of the meshing (gmsh version and
    `GMSH_MESH_OPTIONS`) and the hash of the configured sections."""
    meshing = json.dumps([version("gmsh"), GMSH_MESH_OPTIONS], sort_keys=True)
    return (f"v{GEOMETRY_VERSION}-{hashlib.sha256(meshing.encode()).hexdigest()[:8]}-"
            f"{geometry.sections_hash}")


def default_cache_dir() -> Path:
    """$SPINEFE_CACHE, else $XDG_CACHE_HOME/spinefe/meshes (default ~/.cache/spinefe/meshes)."""
    if os.environ.get("SPINEFE_CACHE"):
        return Path(os.environ["SPINEFE_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(xdg) / "spinefe" / "meshes"


def _mesh_volumes(algorithm: str) -> None:
    """Mesh the current gmsh model in 3D with `algorithm` ('hxt' or 'delaunay'); MeshingError
    when gmsh fails or leaves a volume without tetrahedra."""
    import gmsh

    gmsh.option.setNumber("Mesh.Algorithm3D", 10 if algorithm == "hxt" else 1)
    for name, value in GMSH_MESH_OPTIONS.items():
        gmsh.option.setNumber(name, value)
    try:
        gmsh.model.mesh.generate(3)
    except Exception as err:  # gmsh raises a bare Exception
        raise MeshingError(f"mesh.algorithm = {algorithm}: {err}") from None
    empty = [tag for _, tag in gmsh.model.getEntities(3)
             if not any(len(t) for t in gmsh.model.mesh.getElements(3, tag)[1])]
    if empty:
        raise MeshingError(f"mesh.algorithm = {algorithm}: no tetrahedra in volumes {empty}")


def _generate(geometry: SegmentGeometry, comm: MPI.Comm) -> tuple[dolfinx.io.gmsh.MeshData, dict]:
    """Build and mesh the gmsh model on rank 0 and distribute it (collective). Where HXT fails
    (it can on closely packed capsules), the model is built again and meshed with Delaunay
    (meshing the failed model again can leave volumes empty); meta['algorithm'] says which
    mesher meshed."""
    import gmsh

    from spinefe.geometry.occ import build_model, set_mesh_size

    gmsh.initialize(interruptible=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)

        def build_and_mesh(algorithm: str) -> dict:
            t0 = time.perf_counter()
            gmsh.clear()
            gmsh.model.add("L4-L5")
            cad_volumes = build_model(geometry)
            t1 = time.perf_counter()
            set_mesh_size(geometry.mesh, geometry.layers)
            threads = geometry.mesh.threads or max(1, (os.cpu_count() or 1) // comm.size)
            gmsh.option.setNumber("General.NumThreads", threads)
            _mesh_volumes(algorithm)
            return {"algorithm": algorithm, "cad_seconds": round(t1 - t0, 2),
                    "mesh_seconds": round(time.perf_counter() - t1, 2), "gmsh_threads": threads,
                    "cad_volumes_mm3": cad_volumes}

        def mesh_on_root() -> dict:
            try:
                return build_and_mesh(geometry.mesh.algorithm)
            except MeshingError as hxt:
                if geometry.mesh.algorithm != "hxt":
                    raise
                log.warning("gmsh HXT failed (%s); building and meshing again with Delaunay",
                            hxt)
                try:
                    meta = build_and_mesh("delaunay")
                except MeshingError as err:
                    raise MeshingError(f"{hxt}; then {err}") from None
                meta["algorithm"] = f"delaunay (HXT failed: {hxt})"
                return meta

        meta = on_root(comm, mesh_on_root)
        t0 = time.perf_counter()
        data = dolfinx.io.gmsh.model_to_mesh(gmsh.model, comm, 0, gdim=3)
        dist = time.perf_counter() - t0
    finally:
        gmsh.finalize()
    meta = comm.bcast(meta, root=0)
    meta["distribute_seconds"] = round(dist, 2)
    return data, meta


def _write_cache(model: Model, path: Path) -> None:
    """Write the mesh, tags and metadata atomically (temporary directory, then rename)."""
    comm = model.comm

    def make_tmp() -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        return tempfile.mkdtemp(prefix=path.name + ".tmp", dir=path.parent)

    tmp = Path(comm.bcast(on_root(comm, make_tmp), root=0))
    write_mesh_xdmf(model, tmp / "mesh.xdmf")

    def publish() -> None:
        stored = {
            "names": model.names,
            "landmarks": model.landmarks,
            "contact_pairs": model.contact_pairs,
            "meta": model.meta,
        }
        (tmp / "model.json").write_text(json.dumps(stored, indent=1))
        if path.exists() and not (path / "model.json").exists():
            shutil.rmtree(path)  # an incomplete entry (written by hand or an old version)
        try:
            tmp.rename(path)
        except OSError:  # another process (a study's other group) published this mesh first
            if not (path / "model.json").exists():
                raise
            shutil.rmtree(tmp)

    on_root(comm, publish)


def write_mesh_xdmf(model: Model, filename: Path) -> None:
    """Mesh with cell tags ('cell_tags') and facet tags ('facet_tags'); collective."""
    with XDMFFile(model.comm, str(filename), "w") as xdmf:
        xdmf.write_mesh(model.mesh)
        xdmf.write_meshtags(model.cell_tags, model.mesh.geometry)
        xdmf.write_meshtags(model.facet_tags, model.mesh.geometry)


def _read_cache(comm: MPI.Comm, path: Path) -> Model:
    stored = json.loads((path / "model.json").read_text())
    with XDMFFile(comm, str(path / "mesh.xdmf"), "r") as xdmf:
        mesh = xdmf.read_mesh(ghost_mode=dolfinx.mesh.GhostMode.none)
        mesh.topology.create_connectivity(2, 3)
        ct = xdmf.read_meshtags(mesh, name="cell_tags")
        ft = xdmf.read_meshtags(mesh, name="facet_tags")
    names = {k: tuple(v) for k, v in stored["names"].items()}
    pairs = {k: tuple(v) for k, v in stored["contact_pairs"].items()}
    return Model(mesh, ct, ft, names, stored["landmarks"], pairs, stored["meta"])


def build_mesh(
    geometry: SegmentGeometry, comm: MPI.Comm, cache_dir: Path | None = None
) -> Model:
    """Mesh the segment's `geometry` (or read it from the cache) and distribute it over `comm`.

    With a cache, a new mesh is written to it and read back, so that a run gets the same mesh
    (the same numbering of cells and dofs, hence the same numbers to the last bit) whether the
    cache held it or not; a mesh made in memory (no cache) numbers its dofs otherwise, and its
    results agree with the cached mesh's to the solver tolerance only.

    Args:
        geometry: the segment's geometry (`segment_geometry` of a validated configuration).
        comm: communicator to distribute the mesh over.
        cache_dir: cache root; None disables the cache.
    """
    t0 = time.perf_counter()
    key = geometry_key(geometry)
    path = cache_dir / key if cache_dir is not None else None
    hit = path is not None and comm.bcast(
        (path / "model.json").exists() if comm.rank == 0 else None, root=0
    )
    if hit:
        model = _read_cache(comm, path)
        model.meta["cache"] = "hit"
        log.info("mesh: read from cache %s", path)
    else:
        data, meta = _generate(geometry, comm)
        layout = segment_layout(geometry)  # numpy only and deterministic: computed on every rank
        pairs = {
            side: (R.contact_surface(side, "L4"), R.contact_surface(side, "L5")) for side in R.SIDES
        } | {R.tip_pair(side): (R.articular_tip(side), R.L5_LAMINA_SUPERIOR) for side in R.SIDES}
        data.cell_tags.name, data.facet_tags.name = "cell_tags", "facet_tags"
        names = {n: (int(d), int(t)) for n, (d, t) in data.physical_groups.items()}
        model = Model(
            data.mesh, data.cell_tags, data.facet_tags, names, layout.landmarks, pairs, meta
        )
        if path is not None:
            _write_cache(model, path)
            model = _read_cache(comm, path)  # the numbering a later cache hit will have
            model.meta["cache"] = "miss"
        else:
            model.meta["cache"] = "off"
    model.meta["geometry_key"] = key
    model.meta["build_seconds"] = round(time.perf_counter() - t0, 2)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB -> MB on Linux
    model.meta["peak_memory_mb_per_rank"] = comm.allgather(round(peak, 1))
    return model


def submodel(model: Model, regions: list[str]) -> Model:
    """The part of `model` made of `regions`: a dolfinx submesh with cell and facet tags carried
    over (surface names are kept, other region names dropped); collective."""
    mesh = model.mesh
    n_owned = mesh.topology.index_map(3).size_local
    cells = np.unique(np.concatenate([model.cell_tags.find(model.tag(r)) for r in regions]))
    cells = cells[cells < n_owned].astype(np.int32)
    for dim in (0, 2):
        mesh.topology.create_connectivity(dim, 3)
        mesh.topology.create_connectivity(3, dim)
    mesh.topology.create_connectivity(2, 0)
    sub, cell_map, vertex_map, _ = dolfinx.mesh.create_submesh(mesh, 3, cells)
    sub.topology.create_connectivity(2, 3)
    ct = dolfinx.mesh.transfer_meshtags_to_submesh(model.cell_tags, sub, vertex_map, cell_map)
    ft = dolfinx.mesh.transfer_meshtags_to_submesh(model.facet_tags, sub, vertex_map, cell_map)
    ct.name, ft.name = "cell_tags", "facet_tags"
    names = {n: dt for n, dt in model.names.items() if dt[0] == 2 or n in regions}
    return Model(sub, ct, ft, names, model.landmarks, model.contact_pairs, dict(model.meta))


def marker_tags(
    mesh: dolfinx.mesh.Mesh, dim: int, marked: list[tuple[np.ndarray, int]]
) -> dolfinx.mesh.MeshTags:
    """Mesh tags from (entities, value) pairs, for restricted integration measures; an entity
    listed twice keeps the last value."""
    entities = np.concatenate([e for e, _ in marked]).astype(np.int32)
    values = np.concatenate([np.full(len(e), v, dtype=np.int32) for e, v in marked])
    entities, last = np.unique(entities[::-1], return_index=True)
    return dolfinx.mesh.meshtags(mesh, dim, entities, values[::-1][last])


def cell_volumes(mesh: dolfinx.mesh.Mesh) -> np.ndarray:
    """Volumes (mm^3) of the owned tetrahedra."""
    n = mesh.topology.index_map(3).size_local
    x = mesh.geometry.x[mesh.geometry.dofmaps[0][:n]]
    e = x[:, 1:, :] - x[:, :1, :]
    return np.abs(np.linalg.det(e)) / 6.0


def cell_quality(mesh: dolfinx.mesh.Mesh) -> np.ndarray:
    """Radius ratio 3 r_in / r_circ of the owned tetrahedra (1 = regular, 0 = degenerate)."""
    n = mesh.topology.index_map(3).size_local
    x = mesh.geometry.x[mesh.geometry.dofmaps[0][:n]]
    vol = cell_volumes(mesh)
    faces = [(1, 2, 3), (0, 2, 3), (0, 1, 3), (0, 1, 2)]
    area = sum(
        0.5 * np.linalg.norm(np.cross(x[:, j] - x[:, i], x[:, k] - x[:, i]), axis=1)
        for i, j, k in faces
    )
    r_in = 3.0 * vol / area
    # Circumradius: |a^2 (b x c) + b^2 (c x a) + c^2 (a x b)| / (12 V), edges from vertex 0.
    a, b, c = (x[:, i] - x[:, 0] for i in (1, 2, 3))
    num = (
        np.sum(a * a, 1)[:, None] * np.cross(b, c)
        + np.sum(b * b, 1)[:, None] * np.cross(c, a)
        + np.sum(c * c, 1)[:, None] * np.cross(a, b)
    )
    r_circ = np.linalg.norm(num, axis=1) / (12.0 * vol)
    return 3.0 * r_in / r_circ


def mesh_summary(model: Model) -> dict:
    """Region cells and volumes, nucleus fraction, quality, sizes; reduced over MPI."""
    comm, mesh = model.comm, model.mesh
    n_owned = mesh.topology.index_map(3).size_local
    tags = model.cell_tags
    owned = tags.indices < n_owned
    idx, val = tags.indices[owned], tags.values[owned]
    vols = cell_volumes(mesh)
    regions = {}
    for name in model.regions():
        sel = idx[val == model.tag(name)]
        regions[name] = {
            "cells": int(comm.allreduce(sel.size)),
            "volume_mm3": float(comm.allreduce(vols[sel].sum())),
            "cad_volume_mm3": model.meta["cad_volumes_mm3"][name],
        }
    surfaces = {}
    fdim_tags = model.facet_tags
    n_facets = mesh.topology.index_map(2).size_local
    for name, (dim, tag) in sorted(model.names.items()):
        if dim == 2:
            f = fdim_tags.indices[(fdim_tags.values == tag) & (fdim_tags.indices < n_facets)]
            surfaces[name] = {"facets": int(comm.allreduce(f.size))}
    q = cell_quality(mesh)
    nucleus = regions.get(R.NUCLEUS, {}).get("volume_mm3", 0.0)
    disc = nucleus + regions.get(R.ANNULUS, {}).get("volume_mm3", 0.0)
    n_vertices = mesh.topology.index_map(0).size_global
    return {
        "geometry_key": model.meta.get("geometry_key"),
        "cells": int(mesh.topology.index_map(3).size_global),
        "vertices": int(n_vertices),
        "dofs_p1_vector": 3 * int(n_vertices),
        "cells_per_rank": comm.allgather(int(n_owned)),
        "mpi_size": comm.size,
        "regions": regions,
        "surfaces": surfaces,
        "nucleus_fraction": nucleus / disc if disc > 0 else None,
        "min_quality": float(comm.allreduce(q.min() if q.size else 1.0, op=MPI.MIN)),
        "quality_measure": "radius ratio 3 r_in / r_circ (1 = regular tetrahedron)",
        "landmarks": model.landmarks,
        "contact_pairs": {k: list(v) for k, v in model.contact_pairs.items()},
        "mesher": model.meta.get("algorithm"),  # None in meshes cached before it was recorded
        "timing": {k: v for k, v in model.meta.items() if k.endswith("seconds")},
        "cache": model.meta.get("cache"),
        "peak_memory_mb_per_rank": model.meta.get("peak_memory_mb_per_rank"),
    }
