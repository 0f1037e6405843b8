#!/usr/bin/env bash
# The whole test suite, from a bare machine of this kind (as root): installs
# what the tests need (scripts/setup-test-deps.sh), starts the Samba AD test
# domain (scripts/samba-ad.sh, docs/samba-ad.md), then lint and every test.
#
# The domain stays up afterwards, so reruns (and plain `cargo test`) find it
# running. Stop it with
#   bash scripts/samba-ad.sh down "${REVOKE_TEST_SAMBA_DIR:-target/samba-ad}"
# (before `cargo clean`, which would delete its files under target/).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-test-deps.sh
export REVOKE_TEST_PYTHON="$PWD/.venv/bin/python"

# The directory rule of crates/revoke/tests/it/samba.rs: $REVOKE_TEST_SAMBA_DIR, else
# <target dir>/samba-ad. Exported, so the tests use this domain.
target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target=$PWD/$target ;; esac
export REVOKE_TEST_SAMBA_DIR=${REVOKE_TEST_SAMBA_DIR:-$target/samba-ad}

# The domain comes up (about a minute from scratch, seconds if it is already
# running) while fmt and clippy run; the tests wait for it.
samba_log=$(mktemp)
trap 'rm -f "$samba_log"' EXIT
bash scripts/samba-ad.sh up "$REVOKE_TEST_SAMBA_DIR" >"$samba_log" 2>&1 </dev/null &
samba_pid=$!

cargo fmt --check
cargo clippy --all-targets -- -D warnings
# The production build, without the lab (docs/design.md), lints clean too.
cargo clippy -p revoke --no-default-features --all-targets -- -D warnings

if ! wait "$samba_pid"; then
    cat "$samba_log" >&2
    echo "test.sh: the Samba AD test domain did not come up (see above)" >&2
    exit 1
fi
cat "$samba_log" >&2
cargo test --all-targets

# The production build leaves the lab out: none of the lab's server stack in
# its dependency tree, no `lab`/`demo` command. Last, since building it
# replaces target/debug/revoke (the tests' binary) with the lab-less one.
bash scripts/check-production-build.sh
