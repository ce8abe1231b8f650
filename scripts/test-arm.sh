#!/usr/bin/env bash
# test-arm.sh — run duet's kernel tests as 64-bit ARM code (the NEON kernels),
# under qemu, on an x86 Linux machine.
#
# The kernels (src/engine/local/kernels/) depend on nothing but `half`, so this
# builds them alone, in a scratch crate outside the repository, for
# aarch64-unknown-linux-gnu, and runs their unit tests through qemu-aarch64.
# qemu's timings say nothing about a real ARM CPU; this checks results only.
#
# Needs (once): rustup target add aarch64-unknown-linux-gnu
#               apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${DUET_ARM_TEST_DIR:-${TMPDIR:-/tmp}/duet-arm-test}
mkdir -p "$WORK/src" "$WORK/.cargo"

cat >"$WORK/Cargo.toml" <<TOML
[package]
name = "duet-kernels-arm"
version = "0.0.0"
edition = "2021"
rust-version = "1.85"

[dependencies]
half = "2"
TOML
cat >"$WORK/src/lib.rs" <<RS
#[path = "$REPO_ROOT/src/engine/local/kernels/mod.rs"]
pub mod kernels;

#[test]
fn the_neon_kernels_are_the_ones_chosen() {
    assert_eq!(kernels::kernels().name, "neon");
}
RS
cat >"$WORK/.cargo/config.toml" <<TOML
[target.aarch64-unknown-linux-gnu]
linker = "aarch64-linux-gnu-gcc"
runner = "qemu-aarch64 -L /usr/aarch64-linux-gnu"
TOML

cd "$WORK"
cargo clippy --release --target aarch64-unknown-linux-gnu -- -D warnings -A clippy::manual_is_multiple_of
cargo test --release --target aarch64-unknown-linux-gnu
