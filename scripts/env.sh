# Shared by the set-up scripts: create (or reuse) .venv and install ddx into it.
# Usage: source scripts/env.sh [EXTRAS]   e.g. "dev"
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 10):
    sys.exit(f"ddx needs Python ≥ 3.10; {sys.executable} is {sys.version.split()[0]} (set PYTHON=…)")
PY
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
extras="${1:-}"
if [ -n "$extras" ]; then
  python -m pip install -q -e ".[$extras]"
else
  python -m pip install -q -e .
fi
