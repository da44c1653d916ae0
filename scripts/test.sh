#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, then every crate's unit, property,
# integration and fault tests. Needs only the Rust toolchain: protoc comes from crates.io.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked --no-fail-fast
