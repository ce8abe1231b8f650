#!/usr/bin/env python3
"""Check bench/retrieval/questions.jsonl against the fetched corpus.

    scripts/fetch-retrieval-corpus.sh                   # once: fetch the documents
    python3 scripts/check-retrieval-questions.py        # default corpus and questions
    python3 scripts/check-retrieval-questions.py --corpus DIR --questions FILE [--stats]

DIR is the folder the fetch script filled (its docs/ subfolder is used when
there is one); default ~/.cache/duet-retrieval-corpus.

For every question it checks:
  * the fields: id (unique), file, question, answer, split ("tune" or "holdout");
  * file is one of the corpus files;
  * answer is 10-80 characters, has no blank line (paragraph break) inside;
  * answer occurs verbatim in its file exactly once (case-sensitive);
  * the way `duet bench` matches (whitespace squashed, lowercased, and for
    .html files on the text with the tags removed, as duet reads it) the
    answer occurs exactly once in its own file and in no other corpus file,
    so that no other passage can be credited with it;
  * some passage holds the whole answer when the file is cut into passages
    the way duet cuts it (src/tasks/docs/chunk.rs, ported below: paragraphs
    at blank lines, ~1200 characters a passage, long paragraphs cut at
    sentence ends), so the answer can be found at all.
Failures are listed and the exit status is 1. Warnings (a file without
questions, a spot where duet's chunker would misbehave) do not fail.
The ports of duet's HTML reader and chunker follow the Rust code as of
this script's commit; if those change, change them here too.
--stats also prints each file's size in pages (characters / 3000) and the
questions per file and split.
"""

import argparse
import json
import os
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SPLITS = ("tune", "holdout")


def html_text(html: str) -> str:
    """duet's HTML reader (src/tasks/docs/read.rs, html_text), ported."""
    out = []
    rest = html
    block = ("<p", "</p", "<br", "<div", "</div", "<h", "</h", "<li", "<tr", "</tr", "<section", "<article")
    while True:
        open_ = rest.find("<")
        if open_ < 0:
            break
        out.append(rest[:open_])
        after = rest[open_:]
        lower = after[:8].lower()
        if lower.startswith("<script"):
            i = after.lower().find("</script>")
            end = None if i < 0 else i + len("</script>")
        elif lower.startswith("<style"):
            i = after.lower().find("</style>")
            end = None if i < 0 else i + len("</style>")
        else:
            i = after.find(">")
            end = None if i < 0 else i + 1
        if end is None:  # an unclosed tag: duet stops there (rest unchanged)
            break
        tag = after[:end].lower()
        out.append("\n\n" if tag.startswith(block) else " ")
        rest = after[end:]
    if not rest.startswith("<"):
        out.append(rest)
    text = "".join(out)
    for entity, ch in (("&nbsp;", " "), ("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&#39;", "'"), ("&amp;", "&")):
        text = text.replace(entity, ch)
    return text


# Rust's char::is_whitespace (Unicode White_Space), which duet's chunker uses.
WS = set("\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | {chr(c) for c in range(0x2000, 0x200B)}
TARGET_CHARS = 1200  # src/tasks/docs/chunk.rs
OVERLAP_CHARS = 300


def _blocks(chars, notes):
    """duet's chunk.rs `blocks` + `split_long`: paragraphs, long ones cut at sentence ends."""
    out = []  # (text, heading)
    n, i = len(chars), 0

    def trim_end(start, end):
        while end > start and chars[end - 1] in WS:
            end -= 1
        return end

    def push_piece(start, end):
        end = trim_end(start, end)
        if end > start:
            out.append(("".join(chars[start:end]), False))

    while i < n:
        while i < n and chars[i] in WS:
            i += 1
        start = i
        while i < n:
            if chars[i] == "\n":
                j = i + 1
                while j < n and chars[j] != "\n" and chars[j] in WS:
                    j += 1
                if j >= n or chars[j] == "\n":
                    break
            i += 1
        end = trim_end(start, i)
        if end <= start:
            continue
        text = "".join(chars[start:end])
        heading = text.startswith("#") and "\n" not in text
        if end - start <= TARGET_CHARS:
            out.append((text, heading))
            continue
        piece_start, last_cut = start, None
        for k in range(start, end):
            if chars[k] in ".!?" and k + 1 < n and chars[k + 1] in WS:
                last_cut = k + 1
            if k + 1 - piece_start < 0:
                # In Rust this is usize arithmetic: it panics in a debug build
                # (and wraps, so cuts an empty piece, in a release build).
                notes.append(k)
                cut = k + 1
                push_piece(piece_start, cut)
                piece_start = cut
                while piece_start < end and chars[piece_start] in WS:
                    piece_start += 1
                last_cut = None
                continue
            if k + 1 - piece_start >= TARGET_CHARS:
                cut = last_cut if last_cut is not None and last_cut > piece_start else k + 1
                push_piece(piece_start, cut)
                piece_start = cut
                while piece_start < end and chars[piece_start] in WS:
                    piece_start += 1
                last_cut = None
        if piece_start < end:
            push_piece(piece_start, end)
    return out


def passages(text: str, notes: list) -> list:
    """The passages duet indexes for a file's text (pages split at form feeds, then chunk_page)."""
    result = []
    for page in text.split("\x0c"):
        heading, current = "", []
        for block, is_heading in _blocks(list(page), notes):
            if is_heading:
                if current:
                    result.append(heading + "\n" + "\n\n".join(current))
                heading, current = block.lstrip("#").strip(), []
                continue
            size = sum(len(b) + 2 for b in current)
            if current and size + len(block) > TARGET_CHARS:
                carry = current[-1] if len(current[-1]) <= OVERLAP_CHARS else None
                result.append(heading + "\n" + "\n\n".join(current))
                current = [carry] if carry is not None else []
            current.append(block)
        if current:
            result.append(heading + "\n" + "\n\n".join(current))
    return result


def squash(s: str) -> str:
    """duet bench's comparison form: whitespace runs to one space, lowercase."""
    return " ".join(s.split()).lower()


def read(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_corpus = os.environ.get("DUET_RETRIEVAL_CORPUS", str(Path.home() / ".cache/duet-retrieval-corpus"))
    ap.add_argument("--corpus", default=default_corpus, help="corpus folder (or its docs/ subfolder)")
    ap.add_argument("--questions", default=str(REPO / "bench/retrieval/questions.jsonl"))
    ap.add_argument("--stats", action="store_true", help="print pages per file and questions per file and split")
    a = ap.parse_args()

    corpus = Path(a.corpus).expanduser()
    if (corpus / "docs").is_dir():
        corpus = corpus / "docs"
    if not corpus.is_dir():
        print(f"no corpus at {corpus}: run scripts/fetch-retrieval-corpus.sh first", file=sys.stderr)
        return 2
    files = sorted(p for p in corpus.iterdir() if p.is_file())
    if not files:
        print(f"{corpus} is empty: run scripts/fetch-retrieval-corpus.sh first", file=sys.stderr)
        return 2
    raw = {p.name: read(p) for p in files}
    seen = {n: (html_text(t) if n.lower().endswith((".html", ".htm")) else t) for n, t in raw.items()}
    squashed = {n: squash(t) for n, t in seen.items()}
    underflows = {}
    cut = {}
    for name, text in seen.items():
        notes = []
        cut[name] = [squash(p) for p in passages(text, notes)]
        if notes:
            underflows[name] = notes

    failures, warnings = [], []
    ids = Counter()
    per = defaultdict(Counter)
    n = 0
    for lineno, line in enumerate(Path(a.questions).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        n += 1
        where = f"line {lineno}"
        try:
            q = json.loads(line)
        except json.JSONDecodeError as e:
            failures.append(f"{where}: not JSON ({e})")
            continue
        missing = [k for k in ("id", "file", "question", "answer", "split") if not isinstance(q.get(k), str) or not q[k]]
        if missing:
            failures.append(f"{where}: missing or empty {', '.join(missing)}")
            continue
        qid, name, ans = q["id"], q["file"], q["answer"]
        where = f"{qid} ({name})"
        ids[qid] += 1
        if q["split"] not in SPLITS:
            failures.append(f"{where}: split {q['split']!r} is not tune or holdout")
        per[name][q["split"]] += 1
        if name not in raw:
            failures.append(f"{where}: no file {name} in {corpus}")
            continue
        if not 10 <= len(ans) <= 80:
            failures.append(f"{where}: answer is {len(ans)} characters (want 10-80)")
        if re.search(r"\n[ \t\r]*\n", ans):
            failures.append(f"{where}: answer spans a paragraph break")
        exact = raw[name].count(ans)
        if exact == 0:
            failures.append(f"{where}: answer not found verbatim: {ans!r}")
            continue
        if exact > 1:
            failures.append(f"{where}: answer occurs {exact} times verbatim; pick a longer one: {ans!r}")
        s = squash(ans)
        own = squashed[name].count(s)
        if own == 0:
            failures.append(f"{where}: answer is in the raw file but not in the text duet reads from it: {ans!r}")
        elif own > 1:
            failures.append(f"{where}: answer occurs {own} times when compared as duet does (case and spacing ignored): {ans!r}")
        others = [o for o in squashed if o != name and s in squashed[o]]
        if others:
            failures.append(f"{where}: answer also occurs in {', '.join(others)}: {ans!r}")
        if own and not any(s in p for p in cut[name]):
            failures.append(f"{where}: no single passage holds the answer when the file is cut as duet cuts it: {ans!r}")
    for qid, c in ids.items():
        if c > 1:
            failures.append(f"id {qid} is used {c} times")
    unasked = [name for name in raw if name not in per]
    for name in unasked:
        warnings.append(f"{name}: no question")
    for name, at in underflows.items():
        warnings.append(
            f"{name}: duet's split_long (chunk.rs) computes `i + 1 - piece_start` below zero at {len(at)} "
            f"character(s), first at {at[0]}: a usize underflow, a panic in a debug build (release wraps and goes on)"
        )

    asked = len(per)
    if a.stats:
        total = 0.0
        print(f"{'file':40} {'chars':>9} {'pages':>7} {'tune':>5} {'holdout':>8}")
        for name in raw:
            chars = len(seen[name])
            total += chars / 3000
            print(f"{name:40} {chars:9d} {chars / 3000:7.1f} {per[name]['tune']:5d} {per[name]['holdout']:8d}")
        tune = sum(c["tune"] for c in per.values())
        hold = sum(c["holdout"] for c in per.values())
        print(f"{'total':40} {'':9} {total:7.1f} {tune:5d} {hold:8d}")
        print("(chars: the text duet reads, i.e. HTML without its tags)")

    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    print(f"{n} questions over {asked} of {len(raw)} files; {len(failures)} failures, {len(warnings)} warnings")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
