"""The `dosimetry` command line (also `python -m dosimetry`): point-dose checks.

Exit status: 0 success, 2 invalid input (the message names the field), 1 any other failure.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

import numpy as np

from dosimetry.plan import (
    Plan,
    PlanError,
    Seed,
    read_plan,
    strength_from_activity,
    write_text_atomic,
)
from dosimetry.seed_models import DEFAULT_MODEL, SeedModelError, builtin_models, load_seed_model
from dosimetry.tg43 import FORMALISMS, dose_rate

_EPILOG = f"""\
examples:
  python -m dosimetry points --model 6711 --strength-U 1 --points P.csv
  python -m dosimetry points --model 6711 --activity-mCi 0.5 --points P.csv --formalism 1d
  python -m dosimetry points --plan PLAN.toml --points P.csv --out doses.csv
  python -m dosimetry models

P.csv holds x_mm,y_mm,z_mm (a header line is optional). A single seed sits at the origin along +z.
Output columns: x_mm,y_mm,z_mm,dose_rate_cGy_h,total_dose_Gy (TG-43U1 dose to water; total dose
of a permanent implant to full decay). Points inside a seed capsule have no dose: empty cells,
counted on stderr. Built-in seed models: {", ".join(builtin_models())}.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dosimetry",
        description="TG-43U1 dose of I-125 seeds at points.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    pts = sub.add_parser("points", help="dose of a plan or of one seed at points from a CSV file")
    source = pts.add_mutually_exclusive_group(required=True)
    source.add_argument("--plan", type=Path, help="plan file (.toml or .csv)")
    source.add_argument("--model", help=f"one seed of this model (built-in or a .toml file; "
                        f"default model of plans: {DEFAULT_MODEL})")
    strength = pts.add_mutually_exclusive_group()
    strength.add_argument("--strength-U", type=float, help="air-kerma strength of the seed (U)")
    strength.add_argument("--activity-mCi", type=float, help="apparent activity of the seed (mCi)")
    pts.add_argument("--points", type=Path, required=True, help="CSV of x_mm,y_mm,z_mm")
    pts.add_argument("--formalism", choices=FORMALISMS, default="2d",
                     help="2d line source (default) or 1d point source")
    pts.add_argument("--out", type=Path, help="output CSV (default: standard output)")
    sub.add_parser("models", help="list the built-in seed models with their provenance")
    return p


def _read_points(path: Path) -> np.ndarray:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"--points: cannot read {path}: {err}") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    try:
        float(rows[0][0])
    except (ValueError, IndexError):
        rows = rows[1:]  # header line
    points = []
    for line, row in enumerate(rows, start=1):
        try:
            values = [float(c) for c in row]
        except ValueError:
            values = []
        if len(values) != 3:
            raise ValueError(f"--points: {path}: row {line} {row}: need three numbers "
                             "x_mm,y_mm,z_mm")
        points.append(values)
    if not points:
        raise ValueError(f"--points: {path}: no points")
    return np.array(points, float)


def _plan(args) -> Plan:
    if args.plan is not None:
        if args.strength_U is not None or args.activity_mCi is not None:
            raise ValueError("--strength-U/--activity-mCi: only with --model (a plan file holds "
                             "the strength of each seed)")
        return read_plan(args.plan)
    if args.strength_U is None and args.activity_mCi is None:
        raise ValueError("--strength-U or --activity-mCi: one is required with --model")
    s_k = args.strength_U if args.strength_U is not None else strength_from_activity(
        args.activity_mCi)
    return Plan((Seed((0.0, 0.0, 0.0), (0.0, 0.0, 1.0), s_k, args.model),), name="single seed")


def _points_command(args) -> None:
    if args.out is not None and args.out.is_dir():
        raise ValueError(f"--out: {args.out} is a directory; give a file name")
    plan = _plan(args)
    points = _read_points(args.points)
    dose = dose_rate(points, plan, args.formalism)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["x_mm", "y_mm", "z_mm", "dose_rate_cGy_h", "total_dose_Gy"])
    for p, rate, total in zip(points, dose.dose_rate_cGy_h, dose.total_dose_Gy, strict=True):
        w.writerow([f"{p[0]:.6g}", f"{p[1]:.6g}", f"{p[2]:.6g}",
                    "" if np.isnan(rate) else f"{rate:.8g}",
                    "" if np.isnan(total) else f"{total:.8g}"])
    if args.out is None:
        sys.stdout.write(buf.getvalue())
    else:
        write_text_atomic(args.out, buf.getvalue())
    if dose.n_inside:
        print(f"{dose.n_inside} of {len(points)} points lie inside a seed capsule: no dose "
              "(empty cells)", file=sys.stderr)


def _models_command() -> None:
    for name in builtin_models():
        m = load_seed_model(name)
        print(f"{m.name}: {m.description}\n  Lambda {m.dose_rate_constant} cGy/(h U), "
              f"L {m.line_length_cm} cm; 1D: {'yes' if m.phi_an is not None else 'no'}\n"
              f"  source: {m.provenance}\n  certainty: {m.certainty}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "points":
            _points_command(args)
        else:
            _models_command()
    except (PlanError, SeedModelError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
