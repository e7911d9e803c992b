#!/usr/bin/env bash
# Smoke test of an installed spinefe (the container images run it; tests/test_containers.py
# runs it in the project's environment): the default segment without seeds at a coarse 3 mm
# (containers/smoke.toml), meshed and solved (the default scenario) on two MPI ranks, its von
# Mises map rendered off screen, and its provenance printed. Exit status 0 when the solve
# converged and the support balances the load.
set -euo pipefail
out=$(mktemp -d)
here=$(dirname "$(readlink -f "$0")")
timeout -k 10 600 mpiexec -n 2 spinefe solve "$here/smoke.toml" --out "$out" --no-cache
test -s "$out/von_mises.png"
spinefe provenance "$out"
python3 - "$out/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
balance = abs(s["reaction_N"] - s["applied_N"]) / abs(s["applied_N"])
assert balance < 1e-6, f"the support does not balance the load: {s}"
print(f"smoke test passed: {s['dofs']} dofs, {s['iterations']} CG iterations, "
      f"reaction {s['reaction_N']:.3f} N of {s['applied_N']:.3f} N")
PY
