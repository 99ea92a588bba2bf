#!/usr/bin/env bash
# Command 2: create the environment (with test tools) and run the test suite.
#   bash scripts/test.sh          the default suite (excludes tests marked slow)
#   bash scripts/test.sh --slow   only the slow tests (CI runs both)
# Other arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/env.sh" dev
# a researcher's own plugin package, outside ddx (tests/test_plugins.py): installed like any plugin
toy="$(sha256sum tests/plugins/ddx_toy/pyproject.toml | cut -d' ' -f1)"
if [ "$(cat .venv/.ddx-toy-installed 2>/dev/null)" != "$toy" ]; then
  python -m pip install -q -e tests/plugins/ddx_toy
  echo "$toy" > .venv/.ddx-toy-installed
fi
marker="not slow"
if [ "${1:-}" = "--slow" ]; then
  marker="slow"
  shift
fi
ruff check .
rc=0
python -m pytest -m "$marker" "$@" || rc=$?
if [ "$rc" -eq 5 ]; then  # pytest: no test matched the selection
  echo "no tests marked '$marker'"
  rc=0
fi
exit "$rc"
