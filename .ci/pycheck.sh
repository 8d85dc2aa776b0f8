#!/usr/bin/env bash
# Check the test vectors with off-the-shelf Python libraries (pycose, pynacl, cbor2):
# every valid vector verifies and every message id recomputes, with no Rapport code.
# Creates .venv in the repository root if it is missing, installs
# spec/requirements.txt into it, and runs spec/check_vectors.py.
# Usage: .ci/pycheck.sh [VECTORS_DIR]
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo_root/.venv"
python="${PYTHON:-python3}"

if ! command -v "$python" >/dev/null 2>&1; then
    echo "pycheck: $python not found; install Python 3 (e.g. apt-get install python3 python3-venv)" >&2
    exit 1
fi

# A usable venv has a working python with pip; anything else (missing, or left
# broken by an interrupted run or a changed interpreter) is created afresh.
if ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        echo "pycheck: the Python venv module (with ensurepip) is missing;" \
            "install it with: apt-get install python3-venv" >&2
        exit 1
    fi
    echo "pycheck: creating $venv"
    "$python" -m venv --clear "$venv"
fi

"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --requirement "$repo_root/spec/requirements.txt"

exec "$venv/bin/python" "$repo_root/spec/check_vectors.py" "$@"
