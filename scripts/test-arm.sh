#!/usr/bin/env bash
# test-arm.sh — run duet's kernel tests as 64-bit ARM code (the NEON kernels),
# under qemu, on an x86 Linux machine.
#
# The kernels and the forward pass (src/engine/local/{kernels/,gguf.rs,decoder/})
# need only candle's GGUF reader besides small crates, so this builds them
# alone, in a scratch crate outside the repository, for aarch64-unknown-linux-gnu,
# and runs through qemu-aarch64: the kernels' unit tests, then the default
# model's greedy answers to the golden prompts (tests/data/greedy_smollm2.json),
# which must equal the float32 reference token for token, as they do on x86.
# qemu's timings say nothing about a real ARM CPU; this checks results only.
#
# Needs (once): rustup target add aarch64-unknown-linux-gnu
#               apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
# and the default model: $MODEL, or else `target/release/duet models path`.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${DUET_ARM_TEST_DIR:-${TMPDIR:-/tmp}/duet-arm-test}
mkdir -p "$WORK/src" "$WORK/.cargo"
MODEL=${MODEL:-$("$REPO_ROOT/target/release/duet" models path 2>/dev/null || true)}
[[ -f "$MODEL" ]] || { echo "no model file: set MODEL=path/to/SmolLM2-135M-Instruct.Q4_1.gguf" >&2; exit 1; }

cat >"$WORK/Cargo.toml" <<TOML
[package]
name = "duet-kernels-arm"
version = "0.0.0"
edition = "2021"
rust-version = "1.85"

[dependencies]
candle-core = "0.11.1"
half = "2"
libc = "0.2"
memmap2 = "0.9"
serde = { version = "1", features = ["derive"] }
serde_json = "1"
thiserror = "2"
TOML
cat >"$WORK/src/lib.rs" <<RS
// The same module tree as duet's, so the files' \`super::\` paths resolve.
pub mod engine {
    pub mod local {
        #[path = "$REPO_ROOT/src/engine/local/gguf.rs"]
        pub mod gguf;
        #[path = "$REPO_ROOT/src/engine/local/kernels/mod.rs"]
        pub mod kernels;
        #[path = "$REPO_ROOT/src/engine/local/decoder/mod.rs"]
        pub mod decoder;
    }
}

#[cfg(test)]
mod tests {
use crate::engine::local::{decoder::Decoder, gguf::Gguf, kernels};

#[test]
fn the_neon_kernels_are_the_ones_chosen() {
    assert_eq!(kernels::kernels().name, "neon");
}

#[test]
fn greedy_answers_equal_the_f32_reference() {
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("$REPO_ROOT/tests/data/greedy_smollm2.json").unwrap()).unwrap();
    let (g, reader) = Gguf::open(std::path::Path::new("$MODEL")).unwrap();
    let mut model = Decoder::load(&g, reader.get_ref(), 512, 2).unwrap();
    let ids = |v: &serde_json::Value| -> Vec<u32> { v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect() };
    for case in golden["cases"].as_array().unwrap() {
        let (prompt, want) = (ids(&case["prompt_ids"]), ids(&case["generated_ids"]));
        let mut logits = model.forward(&prompt, 0, false);
        let mut got = Vec::new();
        for step in 0..want.len() {
            // Greedy: the highest logit, the lowest id on ties.
            let next = (0..logits.len()).fold(0, |best, i| if logits[i] > logits[best] { i } else { best }) as u32;
            got.push(next);
            if step + 1 < want.len() {
                logits = model.forward(&[next], prompt.len() + step, false);
            }
        }
        assert_eq!(got, want, "greedy answer to {}", case["user"]);
    }
}
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
