#!/usr/bin/env bash
# The whole test suite, from a bare machine of this kind: installs what the
# tests need (scripts/setup-test-deps.sh), then lint and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-test-deps.sh
export REVOKE_TEST_PYTHON="$PWD/.venv/bin/python"

cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
