#!/usr/bin/env bash
# fetch-retrieval-corpus.sh — gather the retrieval evaluation corpus for
# `duet bench --docs DIR --questions bench/retrieval/questions.jsonl`.
#
# The documents are public-domain texts that ship inside ordinary packages
# (Debian .debs and one PyPI sdist). Nothing of them is committed to this
# repository: this script is the record of where each one comes from.
# bench/retrieval/README.md lists the documents, their licenses and sizes.
#
# Usage:
#   scripts/fetch-retrieval-corpus.sh [DIR]     # DIR default: ~/.cache/duet-retrieval-corpus
#
# Result:
#   DIR/pkgs/   the downloaded packages (kept, so a second run downloads nothing)
#   DIR/docs/   the 13 document files, each checked against its sha256 below
#
# Idempotent: a document already in DIR/docs/ with the right hash is left as
# it is; a package already in DIR/pkgs/ is not downloaded again. With no
# route to the registries (and nothing cached) it stops with a message and
# exit status 2; a hash mismatch stops it with exit status 3.
#
# Needs: bash, apt-get and dpkg-deb (Debian/Ubuntu), pip, tar, gzip, sha256sum.
# apt-get must know the packages: when it does not and we are root, the script
# runs `apt-get update` once and tries again.
set -euo pipefail

DIR="${1:-${DUET_RETRIEVAL_CORPUS:-$HOME/.cache/duet-retrieval-corpus}}"
PKGS="$DIR/pkgs"
DOCS="$DIR/docs"
mkdir -p "$PKGS" "$DOCS"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Debian packages (bookworm). The version is asked for first; if the archive
# no longer has it, the current version is taken and the hashes decide.
DEBS=(
  "jargon-text=4.4.7-4.1"
  "dict-devil=1.0-13.1"
  "docutils-doc=0.19+dfsg-6"
  "sqlite3-doc=3.40.1-2+deb12u2"
)
# PyPI sdist: Brotli's test data holds two texts of the Canterbury corpus.
BROTLI_VERSION=1.2.1

# target file in docs/ | package | path inside the package | how to extract | sha256
MANIFEST=(
  "jargon-file-4.4.7.txt|jargon-text|usr/share/doc/jargon-text/jargon.txt.gz|gunzip|40dfb4b98191a670a09a183d5798d50f243d23fdbd1495dcc0aca2ce5895ba97"
  "devils-dictionary.txt|dict-devil|usr/share/dictd/devil.dict.dz|gunzip|703d1225d2fb927653bfd8b00e4e96938e0b630c6023edd26702ac6ed50383f8"
  "rst-specification.txt|docutils-doc|usr/share/doc/docutils-doc/docs/ref/rst/restructuredtext.txt|copy|d6323a50fe6d6a74292708951317c08534d3c23d608bf46a179aac56cd40ddea"
  "pep-0257-docstring-conventions.txt|docutils-doc|usr/share/doc/docutils-doc/docs/peps/pep-0257.txt|copy|225fe094ff6530898fd65999b6cf696159f9dc951c128184b1f14124a5780383"
  "docutils-faq.txt|docutils-doc|usr/share/doc/docutils-doc/FAQ.txt|copy|1f97b3d64670e877ddbe51a3790c98e76452725063282186a0122c8de038c552"
  "sqlite-faq.html|sqlite3-doc|usr/share/doc/sqlite3/faq.html|copy|f521c7145ea05014a91fb8b548c6b8f94168621b72d5158b3ca14667d248a5a7"
  "sqlite-datatypes.html|sqlite3-doc|usr/share/doc/sqlite3/datatype3.html|copy|dee8d75f5f6a1b762f317f31db2345b653d8ed918f6a4b8b17e3c9a404eb7436"
  "sqlite-wal.html|sqlite3-doc|usr/share/doc/sqlite3/wal.html|copy|6de416a73b7754fd7a752ec04913eb6423d15b387fe6995f6a78bd148657f36f"
  "sqlite-locking.html|sqlite3-doc|usr/share/doc/sqlite3/lockingv3.html|copy|a1a6bafd6f4298b763d6e6ea75a548670a17996fabf31388aade366bea916b22"
  "sqlite-quirks.html|sqlite3-doc|usr/share/doc/sqlite3/quirks.html|copy|e8a8a6e4045a812b96ecfe45f41d42d412e9e1bfd667fb3ab11d589d02ee136f"
  "sqlite-limits.html|sqlite3-doc|usr/share/doc/sqlite3/limits.html|copy|c8ce36be3280ea10a22db68a99643f5b7eaa0f7064685f301e04b734f4b20cac"
  "loc-workshop-electronic-texts.txt|brotli|brotli-$BROTLI_VERSION/tests/testdata/lcet10.txt|copy|5314ba1dbb03f471df88bec6cd120a938ef60d0fd3511c5c1dce61bf7463245f"
  "alice-in-wonderland.txt|brotli|brotli-$BROTLI_VERSION/tests/testdata/alice29.txt|copy|7467306ee0feed4971260f3c87421154a05be571d944e9cb021a5713700c38f0"
)

say() { printf 'fetch-retrieval-corpus: %s\n' "$*" >&2; }
offline() {
  say "could not download $1 — no route to the package registry (offline?), and it is not cached in $PKGS."
  say "Run this again with network access to Debian's archive and PyPI."
  exit 2
}
sha() { sha256sum "$1" | cut -d' ' -f1; }
# duet bench indexes every file in docs/: say so when something else is there.
extras() {
  local f known
  for f in "$DOCS"/* "$DOCS"/.[!.]*; do
    [[ -e "$f" ]] || continue
    known=0
    for row in "${MANIFEST[@]}"; do [[ "${row%%|*}" == "$(basename "$f")" ]] && known=1; done
    [[ $known == 1 ]] || say "warning: $f is not part of the corpus; duet bench would index it too"
  done
  return 0
}

# All documents present and right already? Then there is nothing to do.
all_ok=1
for row in "${MANIFEST[@]}"; do
  IFS='|' read -r name _ _ _ want <<<"$row"
  if [[ ! -f "$DOCS/$name" || "$(sha "$DOCS/$name")" != "$want" ]]; then all_ok=0; fi
done
if [[ $all_ok == 1 ]]; then
  say "all ${#MANIFEST[@]} documents present and verified in $DOCS"
  extras
  exit 0
fi

# --- downloads (skipped for packages already cached) ---
apt_updated=0
deb_file() { ls "$PKGS"/"$1"_*.deb 2>/dev/null | head -n1; }
fetch_deb() {
  local spec="$1" name="${1%%=*}"
  [[ -n "$(deb_file "$name")" ]] && return 0
  command -v apt-get >/dev/null || { say "apt-get not found: this script needs a Debian-like system"; exit 2; }
  for attempt in pinned any; do
    local ask="$spec"
    [[ $attempt == any ]] && ask="$name"
    if (cd "$PKGS" && timeout 300 apt-get download -q "$ask" >/dev/null 2>"$tmp/apt.err"); then
      [[ $attempt == any ]] && say "note: $spec is gone from the archive; took the current $name (hashes will tell)"
      return 0
    fi
    # Package unknown to apt (no lists yet)? Refresh them once, as root.
    if [[ $apt_updated == 0 && $(id -u) == 0 ]] && grep -q "Unable to locate\|has no installation candidate" "$tmp/apt.err"; then
      say "apt-get does not know $name; running apt-get update once"
      apt_updated=1
      timeout 300 apt-get update -qq >/dev/null 2>&1 || offline "the Debian package lists"
      (cd "$PKGS" && timeout 300 apt-get download -q "$ask" >/dev/null 2>"$tmp/apt.err") && return 0
    fi
  done
  sed 's/^/  apt-get: /' "$tmp/apt.err" >&2
  offline "$name (Debian package)"
}
for spec in "${DEBS[@]}"; do fetch_deb "$spec"; done

brotli_sdist="$PKGS/brotli-$BROTLI_VERSION.tar.gz"
if [[ ! -f "$brotli_sdist" ]]; then
  pip=(pip)
  command -v pip >/dev/null || pip=(python3 -m pip)
  "${pip[@]}" --version >/dev/null 2>&1 || { say "pip not found (neither pip nor python3 -m pip)"; exit 2; }
  timeout 300 "${pip[@]}" download --quiet --no-deps --no-binary :all: -d "$PKGS" "brotli==$BROTLI_VERSION" 2>"$tmp/pip.err" \
    || { sed 's/^/  pip: /' "$tmp/pip.err" >&2; offline "brotli==$BROTLI_VERSION (PyPI sdist)"; }
  [[ -f "$brotli_sdist" ]] || { say "pip saved no $brotli_sdist"; ls "$PKGS" >&2; exit 2; }
fi

# --- extraction: only the document files, renamed, into docs/ ---
bad=0
for row in "${MANIFEST[@]}"; do
  IFS='|' read -r name pkg inner how want <<<"$row"
  out="$DOCS/$name"
  if [[ -f "$out" && "$(sha "$out")" == "$want" ]]; then continue; fi
  if [[ ! -d "$tmp/$pkg" ]]; then
    mkdir -p "$tmp/$pkg"
    if [[ $pkg == brotli ]]; then
      tar -xzf "$brotli_sdist" -C "$tmp/$pkg"
    else
      dpkg-deb -x "$(deb_file "$pkg")" "$tmp/$pkg"
    fi
  fi
  src="$tmp/$pkg/$inner"
  [[ -f "$src" ]] || { say "$inner is missing from $pkg"; bad=1; continue; }
  case "$how" in
    gunzip) gzip -dc "$src" >"$out.part" ;;  # dictzip (.dz) is gzip too
    copy) cp "$src" "$out.part" ;;
  esac
  got="$(sha "$out.part")"
  if [[ "$got" != "$want" ]]; then
    say "sha256 mismatch for $name (from $pkg:$inner): got $got, want $want"
    rm -f "$out.part"
    bad=1
    continue
  fi
  mv "$out.part" "$out"
  say "ok  $name  ($(wc -c <"$out") bytes, from $pkg)"
done
if [[ $bad != 0 ]]; then
  say "some documents failed verification; the packages in $PKGS may be another version than the one recorded"
  exit 3
fi
say "all ${#MANIFEST[@]} documents verified in $DOCS"
extras
