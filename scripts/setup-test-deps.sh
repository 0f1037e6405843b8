#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain, idempotently.
# A fresh machine of this kind has python3 and pip but not pywinrm.
# The Samba AD test domain's Debian packages are installed by
# `scripts/samba-ad.sh up`, which scripts/test.sh runs next.
#
# Debian packages, in one apt-get run when any is missing:
# - ldap-utils: OpenLDAP's clients prove the embedded directory speaks LDAP
#   to a client that is not revoke's (crates/revoke/tests/it/lab_estate.rs);
#   needed even where the Samba domain (which installs them too) is not started.
# - krb5-user (kinit, kvno, klist), libkrb5-dev (to build Python's gssapi and
#   krb5), faketime (clock-skew tests): the Kerberos tests.
# - python3-venv, python3-dev, gcc: only when the Python lacks them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
realm=LAB.EXAMPLE.TEST

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

debs=()
for p in krb5-user libkrb5-dev faketime; do installed "$p" || debs+=("$p"); done
{ command -v ldapsearch && command -v ldapmodify; } >/dev/null || debs+=(ldap-utils)
command -v cc >/dev/null || debs+=(gcc)
if [ ! -x "$venv/bin/python" ] && ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    debs+=(python3-venv) # Debian's python3 ships venv separately.
fi
if ! python3 -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
    debs+=(python3-dev) # gssapi and krb5 build C extensions.
fi
if [ ${#debs[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    # krb5-config asks for a default realm: the test domain's (as samba-ad.sh).
    debconf-set-selections <<EOF
krb5-config krb5-config/default_realm string $realm
krb5-config krb5-config/add_servers boolean false
krb5-config krb5-config/read_conf boolean true
EOF
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${debs[@]}" >/dev/null
fi

if [ ! -x "$venv/bin/python" ]; then
    # A venv left half-made by a failed run is made again.
    rm -rf "$venv"
    python3 -m venv "$venv"
fi
pip=("$venv/bin/pip" install --quiet --disable-pip-version-check)
if ! "$venv/bin/python" -c 'import winrm' 2>/dev/null; then
    "${pip[@]}" 'pywinrm>=0.5,<0.6'
fi
# pywinrm's transport='kerberos' (tests/it/kerberos_peer.py) goes through
# its vendored requests_kerberos, which needs pykerberos (`import kerberos`,
# the pywinrm[kerberos] extra); pyspnego[kerberos] adds python-gssapi and
# krb5 for Kerberos probes of our own. None has a Linux wheel: they build
# against libkrb5 (a few minutes the first time, then from pip's cache).
if ! "$venv/bin/python" -c 'import kerberos' 2>/dev/null; then
    "${pip[@]}" 'pywinrm[kerberos]>=0.5,<0.6'
fi
if ! "$venv/bin/python" -c 'import gssapi, krb5' 2>/dev/null; then
    "${pip[@]}" 'pyspnego[kerberos]'
fi
"$venv/bin/python" -c 'import winrm, spnego, gssapi, kerberos; from winrm.transport import HAVE_KERBEROS; assert HAVE_KERBEROS; print("pywinrm ready (ntlm, kerberos)")'
ldapsearch -VV 2>&1 | head -n 1
printf 'kerberos tools ready: %s, faketime %s\n' "$(klist -V 2>&1 | head -n 1)" \
    "$(dpkg-query -W -f='${Version}' faketime)"
