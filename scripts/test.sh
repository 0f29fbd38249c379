#!/usr/bin/env bash
# The test command: installs what the suite needs (Debian packages, npm
# packages, cargo-nextest), then checks formatting and lints and runs the
# whole suite. `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-test-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo nextest run --workspace --locked --profile ci
