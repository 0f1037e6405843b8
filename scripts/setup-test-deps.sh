#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain, idempotently.
# A fresh machine of this kind has python3 and pip but not pywinrm.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import winrm' 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'pywinrm>=0.5,<0.6'
fi
"$venv/bin/python" -c 'import winrm, spnego; print("pywinrm", winrm.__version__ if hasattr(winrm, "__version__") else "installed")'
