"""The report of a study run: results/NAME/report.md and a self-contained report.html.

It reads what the runner wrote (study.json, summary.csv, each case's summary.json and files)
and gives the study's question, the table of cases, plots of the key metrics against the
varied parameter, the job's own analysis (the paper comparison and, where the element size
varies, the convergence criterion; the clinical tests; the range of motion; for a search, its
key scalars and the Pareto front's figure), the cases' figures (von Mises maps, DVHs, isodose
slices) and the provenance. The HTML embeds
every image (data URIs), so it can be mailed or archived as one file.
"""

from __future__ import annotations

import base64
import csv
import json
import re
from itertools import pairwise
from pathlib import Path

from spinefe.common.errors import ConfigError
from spinefe.common.trends import PAPER_TRENDS
from spinefe.config.sections import SCENARIOS
from spinefe.report.records import (
    JOB_SCALARS,
    STRESS_STATS,
    SegmentScalars,
    change_key,
    stress_key,
)

#: Per-case figures, by path inside the case directory, with their captions.
CASE_FIGURES = {
    "von_mises.png": "von Mises stress, healthy / tumour / implanted (MPa)",
    "dose/isodose.png": "isodose lines",
    "optimise/pareto.png": "Pareto front",
    "optimise/uniformity.png": "support uniformity against coverage",
}
MAX_CASE_FIGURES = 8

#: The paper's convergence criterion (reference/paper.toml [model] mesh_convergence).
CONVERGENCE_TOLERANCE = 0.05


def _number(text: str):
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def read_table(path: Path) -> list[dict]:
    """The study table; numbers as floats, but the case id and status stay text (an id of
    hex digits can read as a number)."""
    with open(path, newline="") as f:
        return [{k: v if k in ("case", "status") else _number(v) if v != "" else None
                 for k, v in row.items()} for row in csv.DictReader(f)]


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    def cell(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _label(row: dict, keys: list[str]) -> str:
    return ", ".join(f"{k.removeprefix('job.')} = {row[k]:g}" if isinstance(row[k], float)
                     else f"{k.removeprefix('job.')} = {row[k]}" for k in keys) or row["case"]


def plot_metrics(rows: list[dict], varied: list[str], metrics: list[str], path: Path) -> bool:
    """Each metric against the first numeric varied key (one line per combination of the
    others), or per case where no varied key is numeric; False when fewer than two cases are
    done."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r["status"] == "ok"]
    metrics = [m for m in metrics if any(isinstance(r.get(m), float) for r in done)]
    if len(done) < 2 or not metrics:
        return False
    numeric = [k for k in varied if all(isinstance(r.get(k), float) for r in done)]
    cols = min(3, len(metrics))
    nrows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), dpi=120,
                             squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        if numeric:
            x, others = numeric[0], [k for k in varied if k != numeric[0]]
            series: dict[str, list] = {}
            for r in done:
                name = _label(r, others) if others else ""  # one line when one key varies
                series.setdefault(name, []).append((r[x], r.get(metric)))
            for name, points in series.items():
                points = sorted(p for p in points if isinstance(p[1], float))
                if points:
                    ax.plot(*zip(*points, strict=True), "o-", label=name if others else None)
            ax.set_xlabel(x)
            if others and len(series) > 1:
                ax.legend(fontsize=6)
        else:
            labels = [_label(r, varied) for r in done]
            ax.bar(range(len(done)), [r.get(metric) or 0.0 for r in done])
            ax.set_xticks(range(len(done)), labels, rotation=30, ha="right", fontsize=6)
        ax.set_title(metric, fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def plot_dvhs(results: Path, rows: list[dict], varied: list[str], path: Path) -> bool:
    """The cumulative DVHs of the lesion and the canal of every case with a dose, one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from spinefe.common import regions as R

    curves = []
    for r in rows:
        table = results / r["case"] / "dose" / "dvh.csv"
        if r["status"] == "ok" and table.is_file():
            header = table.read_text().splitlines()[0].split(",")
            data = np.loadtxt(table, delimiter=",", skiprows=1, ndmin=2)
            curves.append((_label(r, varied), dict(zip(header, data.T, strict=True))))
    if not curves:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=120)
    for name, data in curves:
        for ax, region in zip(axes, (R.LESION, R.CANAL), strict=True):
            if f"{region}_percent" in data:
                ax.plot(data["dose_Gy"], data[f"{region}_percent"], label=name)
    for ax, title in zip(axes, ("lesion", "spinal canal"), strict=True):
        ax.set(xlabel="dose (Gy)", ylabel="volume (%)", title=title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def convergence_section(rows: list[dict]) -> str:
    """Change of the paper's two indicators (max, as the paper's peak, and the mesh-robust p99)
    between successive element sizes, and whether the last change is below the paper's 5 %."""
    done = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: -r["mesh.size_mm"])
    if len(done) < 2:
        return ""
    sizes = [r["mesh.size_mm"] for r in done]
    lines = ["## Mesh convergence", "",
             f"Von Mises stress (MPa) against the element size h; the paper's criterion is a "
             f"change below {100 * CONVERGENCE_TOLERANCE:.0f} % between the last two sizes.",
             "", "| indicator | scenario | statistic | "
             + " | ".join(f"h = {h:g} mm" for h in sizes) + " | "
             + " | ".join(f"{a:g} -> {b:g}" for a, b in pairwise(sizes)) + " | below 5 % |",
             "|" + "---|" * (4 + 2 * len(sizes) - 1)]
    for group in SegmentScalars.CONVERGENCE_INDICATORS:
        for scenario in SCENARIOS:
            for stat in STRESS_STATS:
                values = [r.get(stress_key(group, scenario, stat)) for r in done]
                if not all(isinstance(v, float) for v in values):
                    continue
                changes = [(b - a) / a for a, b in pairwise(values)]
                met = "yes" if abs(changes[-1]) < CONVERGENCE_TOLERANCE else "no"
                lines.append(f"| {group} | {scenario} | {stat} | "
                             + " | ".join(f"{v:.3g}" for v in values) + " | "
                             + " | ".join(f"{100 * c:+.1f} %" for c in changes) + f" | {met} |")
    return "\n".join(lines) + "\n"


def trends_section(rows: list[dict], varied: list[str]) -> str:
    """Per case, whether each of the paper's three trends holds, judged on p99 and on max, with
    the change (%) that decides it; and how many cases keep all three."""
    done = [r for r in rows if r["status"] == "ok"]
    if len(done) < 2:
        return ""
    head = [f"{t.claim} ({stat})" for t in PAPER_TRENDS for stat in ("p99", "max")]
    lines = ["## The paper's trends, case by case", "",
             "Each cell: whether the trend holds, and the change that decides it (tumour against "
             "healthy, or implanted against tumour).", "",
             "| case | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    kept = 0
    for r in done:
        cells, all_hold = [], True
        for t in PAPER_TRENDS:
            for stat in ("p99", "max"):
                value = r.get(change_key(t.group, t.change, stat))
                if not isinstance(value, int | float):
                    cells.append("-")
                    all_hold = False
                    continue
                holds = t.holds(value)
                all_hold &= holds
                cells.append(f"{'yes' if holds else 'NO'} ({value:+.2f} %)")
        kept += all_hold
        lines.append(f"| {_label(r, varied)} | " + " | ".join(cells) + " |")
    lines += ["", f"All three trends hold, on p99 and on max, in {kept} of {len(done)} cases."]
    return "\n".join(lines) + "\n"


def _case_text(results: Path, rows: list[dict], varied: list[str], name: str,
               title: str) -> str:
    parts = []
    for r in rows:
        path = results / r["case"] / name
        if r["status"] == "ok" and path.is_file():
            parts.append(f"### {_label(r, varied)}\n\n{path.read_text()}")
    return f"## {title}\n\n" + "\n".join(parts) if parts else ""


def job_sections(job: str, results: Path, rows: list[dict], varied: list[str]) -> list[str]:
    """The job's own analysis, as Markdown sections."""
    out = []
    if job == "segment":
        out.append(_case_text(results, rows, varied, "comparison.md",
                              "Healthy, tumour and implanted against the paper"))
        if "mesh.size_mm" in varied:
            out.append(convergence_section(rows))
        out.append(trends_section(rows, varied))
    elif job == "clinical_vas":
        out.append(_case_text(results, rows, varied, "clinical.md", "Between-group tests"))
    elif job == "rom":
        out.append(_case_text(results, rows, varied, "rom/rom.md", "Range of motion"))
    return [s for s in out if s]


def provenance_section(summaries: list[dict]) -> str:
    records = [s["provenance"] for s in summaries if s.get("provenance")]
    if not records:
        return ""
    first = records[0]
    commits = sorted({str(r.get("git_commit")) for r in records})
    lines = ["## Provenance", "",
             f"{len(records)} case(s) run from spinefe {first.get('spinefe')}, commit(s) "
             f"{', '.join(commits)}; first case on {first.get('host')} at {first.get('utc')} "
             f"on {first.get('mpi_size')} MPI rank(s).", "",
             "| package | version |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in first.items()
              if k not in ("spinefe", "git_commit", "host", "utc", "mpi_size", "config_hash")]
    return "\n".join(lines) + "\n"


def _summary(path: Path) -> dict:
    """A case's summary.json; ConfigError naming it when it is not valid JSON."""
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not a readable case summary ({err}); `spinefe study run` "
                          "runs the case again") from None


def write_report(results: Path) -> tuple[Path, Path]:
    """results/report.md and results/report.html (figures in results/report_files/)."""
    import markdown

    results = Path(results)
    try:
        study = json.loads((results / "study.json").read_text())
        rows = read_table(results / "summary.csv")
    except FileNotFoundError as err:
        raise ConfigError(f"{results}: not a study's results ({err.filename} missing; run "
                          "`spinefe study run` first)") from None
    varied, job = study["varied"], study["job"]
    summaries = [_summary(p) for r in rows
                 if (p := results / r["case"] / "summary.json").is_file()]
    files = results / "report_files"
    files.mkdir(exist_ok=True)
    done = sum(r["status"] == "ok" for r in rows)
    failed = [r for r in rows if r["status"] == "failed"]
    md = [f"# Study `{study['name']}`", "", study["question"].replace("\n", " "), "",
          f"Job `{job}`, {len(rows)} cases ({done} done, {len(failed)} failed, "
          f"{len(rows) - done - len(failed)} pending); varied: "
          f"{', '.join(varied) or 'nothing'}"
          + (f"; overrides: {json.dumps(study['overrides'])}" if study["overrides"] else "")
          + ". The full table is `summary.csv`.", "", "## Cases", ""]
    key_metrics = list(JOB_SCALARS[job].KEY_METRICS)
    columns = ["case", "status", *varied, *[k for k in key_metrics if any(k in r for r in rows)]]
    md.append(markdown_table(rows, columns))
    for r in failed:
        summary = _summary(results / r["case"] / "summary.json")
        md.append(f"- case {r['case']} failed: {summary['error']}")
    if plot_metrics(rows, varied, key_metrics, files / "metrics.png"):
        md += ["", "## Key metrics", "", "![key metrics](report_files/metrics.png)", ""]
    md += ["", *job_sections(job, results, rows, varied)]
    if plot_dvhs(results, rows, varied, files / "dvh.png"):
        md += ["## Dose-volume histograms", "", "![DVHs](report_files/dvh.png)", ""]
    figures = []
    for r in rows[:MAX_CASE_FIGURES]:
        for name, caption in CASE_FIGURES.items():
            if r["status"] == "ok" and (results / r["case"] / name).is_file():
                figures.append(f"![{caption}, {_label(r, varied)}]({r['case']}/{name})\n\n"
                               f"*{caption}; {_label(r, varied)}*\n")
    if figures:
        md += ["## Figures", "", *figures]
        if len(rows) > MAX_CASE_FIGURES:
            md.append(f"(The first {MAX_CASE_FIGURES} cases; every case's figures are in its "
                      "directory.)\n")
    md.append(provenance_section(summaries))
    text = "\n".join(md)
    md_path = results / "report.md"
    md_path.write_text(text)
    body = markdown.markdown(text, extensions=["tables"])
    html = (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{study['name']}</title>"
            f"<style>{_CSS}</style></head><body>\n{_embed_images(body, results)}\n</body></html>\n")
    html_path = results / "report.html"
    html_path.write_text(html)
    return md_path, html_path


def _embed_images(html: str, root: Path) -> str:
    """Replace each <img src="relative path"> by a data URI of the file."""

    def inline(match: re.Match) -> str:
        path = root / match.group(1)
        if not path.is_file():
            return match.group(0)
        data = base64.b64encode(path.read_bytes()).decode()
        return f'src="data:image/png;base64,{data}"'

    return re.sub(r'src="([^":]+\.png)"', inline, html)


_CSS = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}"
        "table{border-collapse:collapse;font-size:0.85em}td,th{border:1px solid #ccc;"
        "padding:0.2em 0.5em}img{max-width:100%}")
