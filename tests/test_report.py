"""The report layer: figures rendered off screen without an X server, the von Mises cut through
the seeds, and the study report's Markdown/HTML (on made-up records: no mesh, no solve)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent

#: Two converging needles in a 32 mm box (mm): (entry point, point towards the tip); three
#: capsules of 6 mm each, 4 mm apart, radius 2 mm. The left needle comes nearer the mid-line.
NEEDLES = {"left": ((-12.0, 12.0, 0.0), (-4.0, -12.0, 0.0)),
           "right": ((13.0, 12.0, 2.0), (6.0, -12.0, 2.0))}


def _needle(name: str):
    start, towards = (np.array(p) for p in NEEDLES[name])
    direction = (towards - start) / np.linalg.norm(towards - start)
    return start, direction


def seeded_box_model(comm=None):
    """A tetrahedral box [-16, 16]^3 mm (h = 2 mm) with regions `L4.trabecular` and `seeds`
    (the capsules of NEEDLES), as a Model (on `comm`, default serial), and the owned cells'
    region tags."""
    from mpi4py import MPI

    import spinefe  # noqa: F401
    import dolfinx.mesh

    from spinefe.common import regions as R
    from spinefe.geometry.mesh import Model

    mesh = dolfinx.mesh.create_box(comm or MPI.COMM_SELF, [[-16.0] * 3, [16.0] * 3], [16] * 3,
                                   dolfinx.mesh.CellType.tetrahedron)
    n = mesh.topology.index_map(3).size_local
    cells = np.arange(n, dtype=np.int32)
    mid = dolfinx.mesh.compute_midpoints(mesh, 3, cells)
    values = np.ones(n, dtype=np.int32)
    for name in NEEDLES:
        start, d = _needle(name)
        t = (mid - start) @ d
        radial = np.linalg.norm(mid - start - t[:, None] * d, axis=1)
        values[(radial < 2.0) & (t >= 0) & (t < 30) & (t % 10 < 6)] = 2
    empty = np.zeros(0, dtype=np.int32)
    mesh.topology.create_entities(2)
    model = Model(mesh, dolfinx.mesh.meshtags(mesh, 3, cells, values),
                  dolfinx.mesh.meshtags(mesh, 2, empty, empty),
                  {"L4.trabecular": (3, 1), R.SEEDS: (3, 2)}, {}, {})
    return model, values


@pytest.mark.parallel
def test_the_von_mises_cut_runs_along_the_needle_nearest_the_midline():
    """Also on 2 ranks, where capsules are split between the ranks' parts of the gathered grid."""
    from mpi4py import MPI

    from spinefe.report.figures import gather_grid, seed_cut

    model, _ = seeded_box_model(MPI.COMM_WORLD)
    grid, names = gather_grid(model)
    if MPI.COMM_WORLD.rank != 0:
        return
    origin, normal, label = seed_cut(grid, names)
    start, direction = _needle("left")
    assert abs(normal @ direction) < 0.05  # the plane holds the needle ...
    assert abs(normal @ (start - origin)) < 0.5  # ... through its axis
    assert abs(normal[2]) < 1e-12 and normal[0] > 0  # vertical, seen from the left
    assert "needle" in label
    no_seeds = grid.copy()
    no_seeds.cell_data["region"][:] = names.index("L4.trabecular")
    assert seed_cut(no_seeds, names)[2] == "mid-sagittal cut"


RENDER = """
import sys
import numpy as np
sys.path.insert(0, {here!r})
from test_report import seeded_box_model
from spinefe.report.figures import render_von_mises
model, values = seeded_box_model()
soft = np.where(values == 2, 0.5, 1.0)
render_von_mises(model, {{"tumour": soft, "implanted": np.where(values == 2, 20.0, 1.0)}},
                 {out!r})
"""


def test_figures_render_off_screen_without_x_server_warnings(tmp_path):
    """Without a display, rendering a figure says nothing about X (VTK would try an X window
    first and warn "bad X server connection" before falling back to EGL)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "VTK_DEFAULT_OPENGL_WINDOW")
           and not k.startswith(("PMI_", "HYDRA_", "OMPI_"))}
    out = tmp_path / "von_mises.png"
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", RENDER.format(here=str(HERE), out=str(out))],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert not re.search(r"X server|bad X|DISPLAY", run.stderr, re.IGNORECASE), run.stderr
    assert out.stat().st_size > 10_000
    print(f"rendered in {time.perf_counter() - t0:.1f} s")


def test_the_trends_of_the_paper_are_a_list_in_the_report(tmp_path):
    """comparison.md puts a blank line before the trends, so the report's HTML has one <li>
    per trend and statistic instead of one run-on paragraph."""
    from spinefe.mechanics.scenarios import PAPER_PEAK_MPA, SCENARIOS, comparison, \
        comparison_markdown
    from spinefe.report.study_report import write_report

    von_mises = {s: {g: {"max": 10.0 + i, "p99": 1.0 + i} for g in PAPER_PEAK_MPA}
                 for i, s in enumerate(SCENARIOS)}
    comp = comparison(von_mises)
    text = comparison_markdown(comp)
    assert "Trends of the paper:\n\n- " in text
    case = tmp_path / "c1"
    case.mkdir()
    (case / "comparison.md").write_text(text)
    (tmp_path / "study.json").write_text(json.dumps(
        {"name": "trends", "question": "Trends?", "varied": [], "job": "segment",
         "overrides": {}}))
    (tmp_path / "summary.csv").write_text("case,status\nc1,ok\n")
    _, html_path = write_report(tmp_path)
    html = html_path.read_text()
    trends = [claim for checks in comp["trends_hold"].values() for claim in checks]
    assert len(trends) == 6
    lists = re.findall(r"<ul>(.*?)</ul>", html, re.DOTALL)
    assert len(lists) == 1
    items = re.findall(r"<li>(.*?)</li>", lists[0], re.DOTALL)
    assert len(items) == len(trends)
    assert all(claim in item for claim, item in zip(
        [c for checks in comp["trends_hold"].values() for c in checks], items, strict=True))


def test_the_trends_section_judges_every_case_on_p99_and_max():
    """The limitations study's table: per case, whether each of the paper's three trends holds
    (the sign of its change) on p99 and on max, and the count of cases keeping all three."""
    from spinefe.report.records import change_key
    from spinefe.report.study_report import trends_section

    def row(case, load, drop):
        r = {"case": case, "status": "ok", "mechanics.load_case": load}
        for stat in ("p99", "max"):
            r[change_key("L4.cortical_endplates", "tumour_vs_healthy", stat)] = 12.0
            r[change_key("L4.cortical_endplates", "implanted_vs_tumour", stat)] = drop
            r[change_key("L4.cancellous", "implanted_vs_tumour", stat)] = 40.0
        return r

    text = trends_section([row("a", "axial", -0.15), row("b", "flexion", 0.3),
                           {"case": "c", "status": "failed"}], ["mechanics.load_case"])
    assert "= axial | yes (+12.00 %) | yes (+12.00 %) | yes (-0.15 %)" in text
    assert "= flexion | yes (+12.00 %) | yes (+12.00 %) | NO (+0.30 %)" in text
    assert "All three trends hold, on p99 and on max, in 1 of 2 cases." in text
