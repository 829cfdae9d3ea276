#!/usr/bin/env bash
# Sets up the environment and runs the test suite; arguments go to pytest.
#   scripts/test.sh                      the default run (slow tests skipped)
#   scripts/test.sh -m "slow or not slow"  everything, as CI runs it
# DATABASE_URL=postgres://... runs the same tests on PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
