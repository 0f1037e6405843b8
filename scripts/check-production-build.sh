#!/usr/bin/env bash
# Checks that `--no-default-features` (the production build) leaves the lab
# out of revoke: no lab crate, no LDAP server codec, no certificate generator,
# no HTTP server in its dependency tree, and no `lab`/`demo` command.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "check-production-build: $*" >&2; exit 1; }

tree=$(cargo tree -e normal,features -p revoke --no-default-features)
for unwanted in revoke-lab ldap3_proto rcgen 'hyper feature "server"'; do
    if grep -qF "$unwanted" <<<"$tree"; then
        fail "the production build depends on $unwanted:"$'\n'"$(grep -F "$unwanted" <<<"$tree" | head -5)"
    fi
done
grep -q 'revoke-core' <<<"$tree" || fail "cargo tree shows no revoke-core: is the check still looking at the right package?"

cargo build -p revoke --no-default-features
help=$("${CARGO_TARGET_DIR:-target}/debug/revoke" --help)
grep -qw flush <<<"$help" || fail "revoke --help lists no flush command:"$'\n'"$help"
for command in lab demo; do
    if grep -qE "^\s+$command\b" <<<"$help"; then
        fail "the production build still has 'revoke $command':"$'\n'"$help"
    fi
done
echo "check-production-build: the production build has no lab (tree and --help checked)"
