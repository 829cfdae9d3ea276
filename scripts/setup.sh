#!/usr/bin/env bash
# Sets up FrameLab's Python environment in .venv (pinned requirements); quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "FrameLab needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1)." >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    echo "Creating .venv with $("$PYTHON" --version 2>&1)" >&2
    "$PYTHON" -m venv .venv
fi
stamp=".venv/.requirements-$(cat requirements/*.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    echo "Installing requirements into .venv (first run takes a minute)" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/test.txt
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements/no-deps.txt
    rm -f .venv/.requirements-*
    touch "$stamp"
fi
