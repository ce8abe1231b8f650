#!/usr/bin/env bash
# compare-llamacpp.sh — measure duet's speed against llama.cpp on the same model.
#
# What it does:
#   1. Builds llama.cpp's `llama-bench` and `llama-simple` (greedy text) from the
#      llama.cpp copy that the llama-cpp-python sdist on PyPI vendors under
#      vendor/llama.cpp. Everything (sdist, sources, build, a cmake from pip if
#      the machine has none) lives in a cache folder OUTSIDE this repository:
#          ${DUET_LLAMACPP_CACHE:-$HOME/.cache/duet-llamacpp}
#      Nothing from llama.cpp is ever copied into or committed to this repo.
#      The build is skipped when the binaries are already in the cache.
#   2. Finds the model: $MODEL, or else `duet models path` (the default model).
#   3. Runs ROUNDS rounds, alternating the two engines, of
#          llama-bench -m $MODEL -t $THREADS -p $P -n $N -r $REPS -o json
#          duet bench  --model $MODEL --threads $THREADS -p $P -n $N -r $REPS --json
#      llama-bench also runs a TTFT_P-token prompt (default 40), the size of
#      duet bench's time-to-first-token chat prompt, so the two first-token
#      times can be set side by side; each engine's peak RSS is recorded.
#   4. Prints a markdown table: per test (ppP, tgN), the mean ± sd over rounds
#      of each engine's mean tokens/s, and the ratio duet / llama.cpp; then
#      time to first token (llama.cpp: the TTFT_P-token prompt's evaluation
#      alone; duet: end to end, template and tokenizer included) and peak RSS.
#
# Usage (from anywhere; it cds to the repo root):
#   scripts/compare-llamacpp.sh               # build if needed, then compare
#   scripts/compare-llamacpp.sh --build-only  # only build llama.cpp
#
# Settings (environment):
#   DUET_LLAMACPP_CACHE  cache folder            (default ~/.cache/duet-llamacpp)
#   LLAMA_CPP_PYTHON     sdist version to use    (default 0.3.36; if PyPI lacks
#                        it, the newest 0.3.x sdist is used)
#   DUET                 duet binary             (default target/release/duet)
#   MODEL                .gguf path              (default: `duet models path`)
#   THREADS P N REPS     bench settings          (default 2 512 128 5)
#   TTFT_P               first-token prompt size (default 40; duet's chat prompt)
#   ROUNDS               alternating rounds      (default 3)
#   JOBS                 parallel compile jobs   (default 2)
# Raw JSON of every run is kept under $DUET_LLAMACPP_CACHE/results/<timestamp>/.
#
# Run it on an idle machine: with other jobs competing for the cores (a cargo
# build, say) both engines slow down unevenly (llama.cpp's OpenMP threads spin
# at barriers), so the ratio means little. The header prints the load average
# at the start and end of the run so a reader can tell.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"

CACHE=${DUET_LLAMACPP_CACHE:-$HOME/.cache/duet-llamacpp}
LLAMA_CPP_PYTHON=${LLAMA_CPP_PYTHON:-0.3.36}
DUET=${DUET:-target/release/duet}
THREADS=${THREADS:-2}
P=${P:-512}
N=${N:-128}
REPS=${REPS:-5}
ROUNDS=${ROUNDS:-3}
TTFT_P=${TTFT_P:-40}
JOBS=${JOBS:-2}

BUILD_ONLY=0
case "${1:-}" in
    --build-only) BUILD_ONLY=1 ;;
    "") ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
esac

log() { echo "[compare-llamacpp] $*" >&2; }

mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)

# ---------------------------------------------------------------- build ----
# Fetch the sdist. `--no-binary llama-cpp-python` (not `:all:`) so that pip may
# still use wheels for the sdist's own build backend (scikit-build-core, cmake)
# while it reads the package's metadata; with `:all:` it compiles cmake itself.
fetch_sdist() {
    local tarball
    tarball=$(ls "$CACHE"/llama_cpp_python-"$LLAMA_CPP_PYTHON".tar.gz 2>/dev/null || true)
    if [[ -z "$tarball" ]]; then
        log "downloading llama-cpp-python==$LLAMA_CPP_PYTHON sdist from PyPI"
        if ! python3 -m pip download -q --no-deps --no-binary llama-cpp-python \
                "llama-cpp-python==$LLAMA_CPP_PYTHON" -d "$CACHE" >&2; then
            log "version $LLAMA_CPP_PYTHON not found; taking the newest 0.3.x sdist"
            python3 -m pip download -q --no-deps --no-binary llama-cpp-python \
                "llama-cpp-python>=0.3,<0.4" -d "$CACHE" >&2
            tarball=$(ls -t "$CACHE"/llama_cpp_python-0.3.*.tar.gz | head -n1)
            LLAMA_CPP_PYTHON=$(basename "$tarball" .tar.gz)
            LLAMA_CPP_PYTHON=${LLAMA_CPP_PYTHON#llama_cpp_python-}
        fi
    fi
}

SRC="$CACHE/llama_cpp_python-$LLAMA_CPP_PYTHON"
BUILD="$CACHE/build-$LLAMA_CPP_PYTHON"
BIN="$BUILD/bin"

build_llamacpp() {
    if [[ -x "$BIN/llama-bench" && -x "$BIN/llama-simple" ]]; then
        log "llama.cpp binaries already in $BIN; skipping the build"
        return
    fi
    fetch_sdist
    SRC="$CACHE/llama_cpp_python-$LLAMA_CPP_PYTHON"
    BUILD="$CACHE/build-$LLAMA_CPP_PYTHON"
    BIN="$BUILD/bin"
    if [[ ! -d "$SRC/vendor/llama.cpp" ]]; then
        log "unpacking $SRC.tar.gz"
        tar -xzf "$SRC.tar.gz" -C "$CACHE"
    fi

    local cmake=cmake
    if ! command -v cmake >/dev/null 2>&1; then
        cmake="$CACHE/tools-venv/bin/cmake"
        if [[ ! -x "$cmake" ]]; then
            log "no cmake on PATH; installing one from PyPI into $CACHE/tools-venv"
            python3 -m venv "$CACHE/tools-venv"
            "$CACHE/tools-venv/bin/pip" install -q cmake >&2
        fi
    fi

    log "configuring llama.cpp ($SRC/vendor/llama.cpp -> $BUILD)"
    # Static, native (AVX2 etc. as this CPU has), no network features, no
    # server/web UI (that would try to download a prebuilt UI), no tests.
    nice -n 10 "$cmake" -S "$SRC/vendor/llama.cpp" -B "$BUILD" \
        -DCMAKE_BUILD_TYPE=Release \
        -DBUILD_SHARED_LIBS=OFF \
        -DGGML_NATIVE=ON \
        -DLLAMA_OPENSSL=OFF \
        -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_SERVER=OFF \
        -DLLAMA_BUILD_APP=OFF \
        -DLLAMA_USE_PREBUILT_UI=OFF >"$CACHE/cmake-configure.log" 2>&1 \
        || { tail -n 40 "$CACHE/cmake-configure.log" >&2; exit 1; }

    log "building llama-bench, llama-simple, llama-tokenize with -j$JOBS (log: $CACHE/cmake-build.log)"
    local t0=$SECONDS
    nice -n 10 "$cmake" --build "$BUILD" --config Release -j"$JOBS" \
        --target llama-bench llama-simple llama-tokenize >"$CACHE/cmake-build.log" 2>&1 \
        || { tail -n 40 "$CACHE/cmake-build.log" >&2; exit 1; }
    log "built in $((SECONDS - t0)) s"
}

build_llamacpp
if [[ $BUILD_ONLY == 1 ]]; then
    echo "$BIN"
    exit 0
fi

# ------------------------------------------------------------ benchmark ----
if [[ ! -x "$DUET" ]]; then
    echo "duet binary not found at $DUET (cargo build --release, or set DUET=)" >&2
    exit 1
fi
MODEL=${MODEL:-$("$DUET" models path)}
[[ -f "$MODEL" ]] || { echo "model not found: $MODEL" >&2; exit 1; }

# llama.cpp version: the sdist's changelog names the llama.cpp commit it vendors.
LLAMA_COMMIT=$(awk -v v="[$LLAMA_CPP_PYTHON]" '
    index($0, "## " v) == 1 { on = 1; next }
    on && /^## / { exit }
    on && match($0, /llama\.cpp@[0-9a-f]+/) { print substr($0, RSTART + 10, RLENGTH - 10); exit }
' "$SRC/CHANGELOG.md" 2>/dev/null || true)
CPU=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')

OUTDIR="$CACHE/results/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUTDIR"
LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
log "model $MODEL; $ROUNDS rounds of p=$P n=$N r=$REPS t=$THREADS; raw output in $OUTDIR"

# Run a command; write its peak RSS in bytes (the kernel's ru_maxrss) to $1.
with_peak_rss() {
    local rss_file=$1
    shift
    python3 -c '
import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
open(sys.argv[1], "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024))
sys.exit(code)' "$rss_file" "$@"
}

for round in $(seq 1 "$ROUNDS"); do
    log "round $round/$ROUNDS: llama-bench"
    with_peak_rss "$OUTDIR/llamacpp-$round.rss" \
        "$BIN/llama-bench" -m "$MODEL" -t "$THREADS" -p "$P,$TTFT_P" -n "$N" -r "$REPS" -o json \
        >"$OUTDIR/llamacpp-$round.json" 2>"$OUTDIR/llamacpp-$round.log" \
        || { tail -n 20 "$OUTDIR/llamacpp-$round.log" >&2; exit 1; }
    log "round $round/$ROUNDS: duet bench"
    "$DUET" bench --model "$MODEL" --threads "$THREADS" -p "$P" -n "$N" -r "$REPS" --no-classify --json \
        >"$OUTDIR/duet-$round.json" 2>"$OUTDIR/duet-$round.log" \
        || { tail -n 20 "$OUTDIR/duet-$round.log" >&2; exit 1; }
done

python3 - "$OUTDIR" "$ROUNDS" "$TTFT_P" <<'PY' >"$OUTDIR/table.md"
import json, statistics, sys
outdir, rounds, ttft_p = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def load(path):
    # Tolerate log lines around the JSON: take the outermost [...] or {...}.
    text = open(path).read()
    starts = [i for i in (text.find("["), text.find("{")) if i >= 0]
    start = min(starts)
    end = max(text.rfind("]"), text.rfind("}")) + 1
    return json.loads(text[start:end])

llama, duet, order = {}, {}, []
ttft = {"llama": [], "duet": []}
rss = {"llama": [], "duet": []}
duet_budget, duet_ttft_tokens = None, None
for r in range(1, rounds + 1):
    rss["llama"].append(int(open(f"{outdir}/llamacpp-{r}.rss").read()))
    report = load(f"{outdir}/duet-{r}.json")
    ttft["duet"].append(report["ttft_ms"])
    duet_ttft_tokens = report["ttft_prompt_tokens"]
    rss["duet"].append(report["peak_rss_bytes"])
    duet_budget = report["model_size_bytes"] + report.get("kv_cache_bytes", 0) + 150e6
    for t in load(f"{outdir}/llamacpp-{r}.json"):
        if t.get("n_prompt", 0) > 0 and t.get("n_gen", 0) == 0:
            name = f"pp{t['n_prompt']}"
        elif t.get("n_gen", 0) > 0 and t.get("n_prompt", 0) == 0:
            name = f"tg{t['n_gen']}"
        else:
            name = f"pp{t['n_prompt']}+tg{t['n_gen']}"
        if name == f"pp{ttft_p}":
            ttft["llama"].append(1000.0 * ttft_p / float(t["avg_ts"]))
            continue
        llama.setdefault(name, []).append(float(t["avg_ts"]))
        if name not in order:
            order.append(name)
    for t in load(f"{outdir}/duet-{r}.json")["tests"]:
        duet.setdefault(t["name"], []).append(float(t["tokens_per_s_mean"]))
        if t["name"] not in order:
            order.append(t["name"])

def fmt(xs):
    if not xs:
        return "—"
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.2f} ± {sd:.2f}"

print("| test | llama.cpp tok/s | duet tok/s | duet / llama.cpp |")
print("| --- | ---: | ---: | ---: |")
for name in order:
    l, d = llama.get(name, []), duet.get(name, [])
    ratio = f"{statistics.mean(d) / statistics.mean(l):.2f}" if l and d else "—"
    print(f"| {name} | {fmt(l)} | {fmt(d)} | {ratio} |")

def row(label, l, d, scale=1.0):
    ratio = f"{statistics.mean(d) / statistics.mean(l):.2f}" if l and d else "—"
    print(f"| {label} | {fmt([x * scale for x in l])} | {fmt([x * scale for x in d])} | {ratio} |")

print()
print("| lower is better | llama.cpp | duet | duet / llama.cpp |")
print("| --- | ---: | ---: | ---: |")
row(f"time to first token, ms (llama.cpp: {ttft_p}-token prompt eval; duet: {duet_ttft_tokens}-token chat, end to end)",
    ttft["llama"], ttft["duet"])
row("peak RSS, MB", rss["llama"], rss["duet"], 1e-6)
print()
print(f"duet's RSS budget (model file + KV cache + 150 MB): {duet_budget / 1e6:.1f} MB")
PY
LOAD_END=$(cut -d' ' -f1 /proc/loadavg)

# Fall back to the commit llama-bench itself reports.
if [[ -z "$LLAMA_COMMIT" ]]; then
    LLAMA_COMMIT=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0].get("build_commit", ""))' \
        "$OUTDIR/llamacpp-1.json" 2>/dev/null || true)
fi
LLAMA_VERSION="llama-cpp-python $LLAMA_CPP_PYTHON, llama.cpp ${LLAMA_COMMIT:-commit unknown}"

{
    echo "**$(date '+%Y-%m-%d %H:%M %Z')** — CPU: $CPU ($(nproc) cores) — threads: $THREADS — $LLAMA_VERSION"
    echo "model: \`$(basename "$MODEL")\`; p=$P n=$N, $REPS reps per run, mean ± sd over $ROUNDS alternating rounds; load average $LOAD_START at start, $LOAD_END at end"
    echo
    cat "$OUTDIR/table.md"
} | tee "$OUTDIR/report.md"
