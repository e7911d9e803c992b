#!/usr/bin/env bash
# Print the absolute path of a Python >= 3.12 (the dolfinx-solver-real wheel needs it), or explain
# how to get one and exit 1. Looks at $PYTHON, python3.13/3.12 on PATH, then pyenv's versions.
set -u
ok() { "$1" -c 'import sys, venv; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; }
candidates=()
[ -n "${PYTHON:-}" ] && candidates+=("$PYTHON")
for v in python3.12 python3.13 python3; do
  p=$(command -v "$v" 2>/dev/null) && candidates+=("$p")
done
root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
for d in $(ls -d "$root"/versions/3.1[2-9]* 2>/dev/null | sort -V); do
  candidates+=("$d/bin/python3")
done
for p in "${candidates[@]}"; do
  if ok "$p"; then
    # resolve pyenv shims to the real interpreter (shims can fail in non-interactive subshells)
    "$p" -c 'import sys; print(sys.executable)'
    exit 0
  fi
done
cat >&2 <<MSG
spinefe needs Python >= 3.12 (DOLFINx 0.11 wheels), and none was found.
Looked at: \$PYTHON, python3.13, python3.12, python3 on PATH, and $root/versions/3.12*/3.13*.
Get one with e.g. 'pyenv install 3.12' or your package manager (apt install python3.12-venv),
or point to it: make PYTHON=/path/to/python3.12 test
MSG
exit 1
