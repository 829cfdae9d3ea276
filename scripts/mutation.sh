#!/usr/bin/env bash
# Mutation testing of the core modules with mutmut (docs/testing.md).
#
#   scripts/mutation.sh            fresh run over the whole scope, then the report
#   scripts/mutation.sh --report   the report of the last run only
#   scripts/mutation.sh --survivors  reruns only the last run's unexplained survivors (after
#                                    adding tests), then the report
#
# The scope (modules and functions) is SCOPE in scripts/mutation_report.py; the tests mutmut
# may run are pytest_add_cli_args_test_selection in setup.cfg; survivors justified as
# equivalent are listed in tests/mutation_equivalents.txt. Exits non-zero when a module has
# under 90% of its mutants killed or a survivor is neither killed nor justified.
# MUTATION_JOBS (default 1) sets how many mutants run at once.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
if [ ! -x "$PY" ]; then
    scripts/setup.sh
fi
if [ ! -x .venv/bin/mutmut ]; then
    "$PY" -m pip install --quiet -r requirements/mutation.txt
fi
if [ "${1:-}" != "--report" ]; then
    started=$(date +%s)
    # The embedded setup (SQLite, filesystem broker), whatever the shell has: the equivalents
    # file's notes on row locks hold for it, and no mutant's run touches a shared server.
    unset DATABASE_URL CELERY_BROKER_URL CELERY_RESULT_BACKEND
    # One BLAS/OpenMP thread per process: each mutant runs in a forked child.
    export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
    if [ "${1:-}" = "--survivors" ]; then
        mapfile -t globs < <("$PY" scripts/mutation_report.py survivors)
        # New tests: mutmut records again which tests reach which function.
        rm -f mutants/mutmut-stats.json
    else
        rm -rf mutants
        mapfile -t globs < <("$PY" scripts/mutation_report.py globs)
    fi
    if [ "${#globs[@]}" -eq 0 ]; then
        echo "no mutant to run" >&2
        exit 2
    fi
    .venv/bin/mutmut run --max-children "${MUTATION_JOBS:-1}" "${globs[@]}" > mutants.log 2>&1 || {
        tail -n 40 mutants.log
        echo "mutmut failed; its output is in mutants.log" >&2
        exit 2
    }
    elapsed=$(( $(date +%s) - started ))
fi
"$PY" - <<'PY'
import platform
cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
            if line.startswith("model name")), platform.processor() or platform.machine())
print(f"CPU: {cpu}")
PY
if [ -n "${elapsed:-}" ]; then
    echo "Duration: ${elapsed} s with ${MUTATION_JOBS:-1} mutant(s) at a time (mutmut's output: mutants.log)"
fi
exec "$PY" scripts/mutation_report.py report
