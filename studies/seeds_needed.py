"""Seeds needed for D90 >= prescription against seed activity (docs/dosimetry.md, "Seeds needed").

Uniform loading (k-means centres, one axis) of the default lesion ellipsoid, model 6711:
    python studies/seeds_needed.py [--radii 12 9 8] [--step 0.5]
prints a markdown table of seed counts for prescriptions 140, 150, 160 Gy and activities
0.3, 0.45, 0.6, 0.8 mCi (about 1 minute on 2 cores).
"""

import argparse

from dosimetry.coverage import ellipsoid_samples, seeds_needed, uniform_pattern


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--radii", type=float, nargs=3, default=(12.0, 9.0, 8.0), metavar="MM")
    p.add_argument("--step", type=float, default=0.5, help="sample grid step (mm)")
    p.add_argument("--model", default="6711")
    args = p.parse_args()
    points, volumes = ellipsoid_samples((0.0, 0.0, 0.0), args.radii, args.step)
    pattern = uniform_pattern(points)
    prescriptions = (140.0, 150.0, 160.0)
    print(f"lesion: ellipsoid {args.radii} mm, {volumes.sum() / 1000:.2f} cm^3; model {args.model}")
    print("| activity (mCi) | " + " | ".join(f"seeds for {rx:g} Gy" for rx in prescriptions) + " |")
    print("|---" * (len(prescriptions) + 1) + "|")
    for activity in (0.3, 0.45, 0.6, 0.8):
        counts = [seeds_needed(points, volumes, pattern, activity, rx, args.model).seeds_needed
                  for rx in prescriptions]
        print(f"| {activity:.2f} | " + " | ".join(str(c) for c in counts) + " |")


if __name__ == "__main__":
    main()
