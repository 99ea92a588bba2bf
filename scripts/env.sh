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
extras="${1:-}"
# ddx is installed editable: code changes need no reinstall, a changed pyproject.toml does
stamp="$(cat pyproject.toml; echo "extras=$extras"; python -VV)"
stamp="$(printf '%s' "$stamp" | python -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
if [ "$(cat .venv/.ddx-installed 2>/dev/null)" != "$stamp" ]; then
  python -m pip install -q --upgrade pip
  if [ -n "$extras" ]; then
    python -m pip install -q -e ".[$extras]"
  else
    python -m pip install -q -e .
  fi
  echo "$stamp" > .venv/.ddx-installed
fi
