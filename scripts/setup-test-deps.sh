#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain, idempotently.
# A fresh machine of this kind has python3 and pip but not pywinrm.
# The Samba AD test domain's Debian packages are installed by
# `scripts/samba-ad.sh up`, which scripts/test.sh runs next.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
    if ! python3 -m venv "$venv" 2>/dev/null; then
        # Debian's python3 ships venv separately.
        rm -rf "$venv"
        apt-get update -qq && apt-get install -y -qq python3-venv
        python3 -m venv "$venv"
    fi
fi
if ! "$venv/bin/python" -c 'import winrm' 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'pywinrm>=0.5,<0.6'
fi
"$venv/bin/python" -c 'import winrm, spnego; print("pywinrm ready")'
# OpenLDAP's clients prove the embedded directory speaks LDAP to a client
# that is not revoke's (crates/revoke/tests/it/lab_estate.rs); needed even
# where the Samba domain (which installs them too) is not started.
if ! command -v ldapsearch >/dev/null || ! command -v ldapmodify >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ldap-utils
fi
ldapsearch -VV 2>&1 | head -n 1
