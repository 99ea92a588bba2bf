#!/usr/bin/env bash
# Command 1: create the environment and run the quickstart sweep (embedded local Ray,
# scikit-learn's digits, CPU only). Extra arguments go to `ddx sweep`.
set -euo pipefail
source "$(dirname "$0")/env.sh" ""  # no extras (an explicit argument: `source` would pass ours)
ddx sweep sweeps/quickstart.yaml "$@"
