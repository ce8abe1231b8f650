#!/usr/bin/env bash
# Screenshots of each screen of the desktop app, taken under Xvfb (Mesa's
# software renderer), written to assets/screenshots/*.png.
#
# Needs: Xvfb, xdotool, xwd and ImageMagick's convert
#   (Debian: apt-get install xvfb xdotool x11-apps imagemagick).
# Everything runs in a throwaway DUET_HOME; the model cache is shared.
# The "cloud" on the Compare screen is `duet serve` on 127.0.0.1, named "lab".
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release
BIN="${CARGO_TARGET_DIR:-target}/release/duet"
# SIZE=800x600 OUT=/tmp/small scripts/screenshots.sh: every screen at that size, without the clicks
# (their coordinates are for the default size).
OUT="${OUT:-assets/screenshots}"
mkdir -p "$OUT"
DEMO_HOME="$(mktemp -d)"
export DUET_HOME="$DEMO_HOME"
PORT=18089
SIZE="${SIZE:-1100x720}"

Xvfb :77 -screen 0 ${SIZE}x24 >/dev/null 2>&1 &
XVFB=$!
"$BIN" serve --port $PORT >/dev/null 2>&1 &
SERVE=$!
cleanup() { kill "$XVFB" "$SERVE" 2>/dev/null || true; rm -rf "$DEMO_HOME"; }
trap cleanup EXIT
export DISPLAY=:77

cat >"$DEMO_HOME/settings.toml" <<EOF
[[cloud]]
name = "lab"
base_url = "http://127.0.0.1:$PORT/v1"
model = "smollm2-135m"
usd_per_m_input = 0.15
usd_per_m_output = 0.60
EOF

# A classification run with known labels, so the Reviews screen has results.
"$BIN" classify assets/data/restaurant-reviews-eval.csv --label-column label >/dev/null

shot() { xwd -root -silent | convert xwd:- -crop ${SIZE}+0+0 "$OUT/$1.png"; echo "wrote $OUT/$1.png"; }
open_app() {
  DUET_SCREEN="$1" "$BIN" >/dev/null 2>&1 &
  APP=$!
  sleep 4
  # No window manager under Xvfb: give the window the keyboard ourselves.
  xdotool windowfocus --sync "$(xdotool search --sync --name '^duet$' | head -1)"
}
close_app() { kill "$APP" 2>/dev/null || true; wait "$APP" 2>/dev/null || true; }
click() { xdotool mousemove "$1" "$2" click 1; sleep 0.3; }

if [ "$SIZE" != 1100x720 ]; then
  for screen in chat compare reviews documents models settings; do
    open_app "$screen"
    shot "$screen"
    close_app
  done
  exit 0
fi

open_app chat
click 490 668
xdotool type --delay 20 "Give me three tips for a good restaurant review."
xdotool key Return
sleep 12
shot chat
close_app

open_app compare
click 400 100
xdotool type --delay 20 "In one sentence: why do people like dumplings?"
click 201 160
click 62 183
sleep 15
shot compare
close_app

open_app documents
click 210 103
sleep 3
click 800 108
xdotool key Return
sleep 15
shot documents
close_app

# Teaching from the example data (Reviews → Teach a classifier).
open_app reviews
click 185 70
click 70 93
click 40 339
sleep 12
shot teach
close_app

for screen in reviews models settings; do
  open_app "$screen"
  shot "$screen"
  close_app
done
