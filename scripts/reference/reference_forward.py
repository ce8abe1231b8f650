"""Exact float32 numpy forward pass of SmolLM2-135M-Instruct (Q4_1 GGUF), teacher-forced and greedy.

    python3 scripts/reference/reference_forward.py --model /tmp/models/smollm2.gguf \
        --out tests/data/reference_smollm2.json --greedy-out tests/data/greedy_smollm2.json

Writes
  reference_smollm2.json  {"model_sha256", "sequences": [{"name", "text", "ids",
                           "positions": [{"argmax", "margin", "top": [[id, logit] x16]}]}]}
                           positions[i] holds the logits predicting token i+1 from ids[0..=i].
  greedy_smollm2.json     for 3 chat prompts: 32 greedy tokens (stop after id 2 <|im_end|>), the
                           decoded text and the top-2 margin at every generated step.

Every tensor is dequantized with gguf.quants.dequantize into float32 and used as is; activations
are float32 (float64 for the --check prefix). Reshapes: GGUF dims are fastest-first, so the
dequantized arrays come out row-major as token_embd [49152, 576] and projections [out, in].

Architecture (llama): 30 layers, hidden 576, 9 query heads, 3 KV heads (GQA: query head h uses KV
head h // 3), head dim 64, RMSNorm eps 1e-5 (x * 1/sqrt(mean(x^2) + eps) * w), RoPE base 100000
with the llama.cpp "normal" pairing: dims (2i, 2i+1) rotate together by angle pos * base^(-2i/64)
(the GGUF converter permuted Q/K rows for this), causal softmax attention with scale 1/sqrt(64),
SwiGLU FFN down(silu(gate(x)) * up(x)), final RMSNorm, tied output logits = h @ token_embd.T.

The script also reruns each sequence (or its first --check-len positions) in float64 and reports
(and stores) the largest |logit_f32 - logit_f64|, and checks that a float32 run on a prefix gives
the same logits as the full run (causality). Using the NEOX (rotate_half) RoPE pairing instead
raises the mean NLL of the two sequences from 3.18 / 1.90 to 4.41 / 4.95 nats.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

TOP_K = 16

SEQ2_TEXT = (
    "Binary search finds an item in a sorted list of n elements in O(log n) steps. For example, "
    "searching 1,048,576 sorted numbers takes at most 20 comparisons.\n\n"
    "```python\n"
    "def binary_search(items, target):\n"
    "    lo, hi = 0, len(items) - 1\n"
    "    while lo <= hi:\n"
    "        mid = (lo + hi) // 2\n"
    "        if items[mid] == target:\n"
    "            return mid\n"
    "        if items[mid] < target:\n"
    "            lo = mid + 1\n"
    "        else:\n"
    "            hi = mid - 1\n"
    "    return -1\n"
    "```\n\n"
    "In 1946 John Mauchly first described the idea, but the first version that worked correctly for "
    "every n was not published until 1962. Even in 2006 a bug was found in the Java library: computing "
    "(lo + hi) / 2 can overflow when lo and hi are larger than 2^30, so mid = lo + (hi - lo) / 2 is "
    "the safer choice. Today the algorithm is taught in the first year of almost every computer "
    "science course, and it remains one of the 10 most useful ideas a programmer can learn."
)

GREEDY_PROMPTS = ["What is the capital of France?", "Write a haiku about the sea.", "List three primary colors."]


class SmolLM2:
    def __init__(self, path):
        import gguf

        md = C.read_metadata(path)
        self.n_layer = int(md["llama.block_count"])
        self.n_embd = int(md["llama.embedding_length"])
        self.n_head = int(md["llama.attention.head_count"])
        self.n_kv = int(md["llama.attention.head_count_kv"])
        self.head_dim = self.n_embd // self.n_head
        self.rope_base = float(md["llama.rope.freq_base"])
        self.eps = float(md["llama.attention.layer_norm_rms_epsilon"])  # stored as f32 1e-5
        assert int(md["llama.rope.dimension_count"]) == self.head_dim
        reader = gguf.GGUFReader(path)
        self.w = {}
        for t in reader.tensors:
            a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
            # GGUF shape is fastest-first; numpy wants the reverse.
            self.w[t.name] = a.reshape(tuple(int(d) for d in reversed(t.shape)))
        assert "output.weight" not in self.w  # tied embeddings
        assert self.w["token_embd.weight"].shape == (49152, 576)
        assert self.w["blk.0.attn_k.weight"].shape == (self.n_kv * self.head_dim, self.n_embd)

    def weights(self, dtype):
        if dtype == np.float32:
            return self.w
        return {k: v.astype(dtype) for k, v in self.w.items()}

    def rms_norm(self, x, w):
        eps = x.dtype.type(self.eps)
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w

    def rope(self, x, pos):
        """x: [T, H, D]; normal (non-NEOX) pairing of adjacent dims (2i, 2i+1)."""
        d = self.head_dim
        dt = x.dtype
        inv = self.rope_base ** (-np.arange(0, d, 2, dtype=np.float64) / d)  # [D/2]
        ang = pos[:, None].astype(np.float64) * inv[None, :]  # [T, D/2]
        cos = np.cos(ang).astype(dt)[:, None, :]
        sin = np.sin(ang).astype(dt)[:, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = x0 * cos - x1 * sin
        out[..., 1::2] = x0 * sin + x1 * cos
        return out

    def forward(self, ids, dtype=np.float32, logits_for="all"):
        """Full causal forward over `ids`. Returns logits [T, V] (or [1, V] for logits_for="last")."""
        W = self.weights(dtype)
        ids = np.asarray(ids, dtype=np.int64)
        T = len(ids)
        H, KV, D = self.n_head, self.n_kv, self.head_dim
        pos = np.arange(T)
        x = W["token_embd.weight"][ids]  # [T, 576]
        mask = np.triu(np.full((T, T), -np.inf, dtype=dtype), k=1)
        scale = dtype(1.0 / np.sqrt(D))
        for layer in range(self.n_layer):
            p = f"blk.{layer}."
            h = self.rms_norm(x, W[p + "attn_norm.weight"])
            q = (h @ W[p + "attn_q.weight"].T).reshape(T, H, D)
            k = (h @ W[p + "attn_k.weight"].T).reshape(T, KV, D)
            v = (h @ W[p + "attn_v.weight"].T).reshape(T, KV, D)
            q, k = self.rope(q, pos), self.rope(k, pos)
            rep = H // KV
            k = np.repeat(k, rep, axis=1)  # query head h -> kv head h // rep
            v = np.repeat(v, rep, axis=1)
            att = np.einsum("thd,shd->hts", q, k) * scale + mask  # [H, T, T]
            att = att - att.max(axis=-1, keepdims=True)
            att = np.exp(att)
            att /= att.sum(axis=-1, keepdims=True)
            o = np.einsum("hts,shd->thd", att, v).reshape(T, H * D)
            x = x + o @ W[p + "attn_output.weight"].T
            h = self.rms_norm(x, W[p + "ffn_norm.weight"])
            g = h @ W[p + "ffn_gate.weight"].T
            u = h @ W[p + "ffn_up.weight"].T
            x = x + ((g / (1 + np.exp(-g))) * u) @ W[p + "ffn_down.weight"].T
        if logits_for == "last":
            x = x[-1:]
        x = self.rms_norm(x, W["output_norm.weight"])
        return x @ W["token_embd.weight"].T


def summarize(logits_row):
    top = np.argsort(-logits_row, kind="stable")[:TOP_K]
    return {
        "argmax": int(top[0]),
        "margin": round(float(logits_row[top[0]] - logits_row[top[1]]), 5),
        "top": [[int(i), round(float(logits_row[i]), 5)] for i in top],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--greedy-out", required=True)
    ap.add_argument("--check-len", type=int, default=0,
                    help="prefix length for the float64 check (0 = whole sequence)")
    ap.add_argument("--greedy-steps", type=int, default=32)
    args = ap.parse_args()

    sha = C.sha256_file(args.model)
    md = C.read_metadata(args.model, {"tokenizer.chat_template", "tokenizer.ggml.tokens"})
    toks = md["tokenizer.ggml.tokens"]
    template = md["tokenizer.chat_template"]
    tok = C.build_smollm2_tokenizer(args.model)  # the reference tokenizer of tokenizer_smollm2.json

    def chat(user):
        return C.render_chat(template, [{"role": "user", "content": user}], True, toks[1], toks[2])

    t0 = time.time()
    model = SmolLM2(args.model)
    print(f"loaded + dequantized in {time.time() - t0:.1f}s")

    seq1_text = (chat("What is the capital of France?")
                 + "The capital of France is Paris. It is known for the Eiffel Tower, the Louvre museum, "
                   "and its cafés.<|im_end|>")
    seqs = [("chat_france", seq1_text), ("code_paragraph", SEQ2_TEXT)]

    out_seqs, timings, checks = [], [], []
    for name, text in seqs:
        ids = tok.encode(text, add_special_tokens=False).ids
        t0 = time.time()
        logits = model.forward(ids, np.float32)
        dt = time.time() - t0
        timings.append({"name": name, "n_tokens": len(ids), "seconds_f32": round(dt, 2)})
        n = min(args.check_len, len(ids)) if args.check_len > 0 else len(ids)
        t0 = time.time()
        l64 = model.forward(ids[:n], np.float64)
        diff = float(np.max(np.abs(logits[:n].astype(np.float64) - l64)))
        same_argmax = int(np.sum(np.argmax(logits[:n], -1) == np.argmax(l64, -1)))
        # a float32 run on half the sequence must reproduce the full run's first rows (causality)
        half = len(ids) // 2
        causal = float(np.max(np.abs(model.forward(ids[:half], np.float32) - logits[:half])))
        checks.append({"name": name, "prefix_len": n, "max_abs_diff_f32_vs_f64": diff,
                       "argmax_equal": f"{same_argmax}/{n}",
                       "max_abs_diff_full_vs_half_prefix_f32": causal, "seconds_f64": round(time.time() - t0, 2)})
        print(name, len(ids), "tokens", f"f32 {dt:.2f}s", checks[-1])
        out_seqs.append({"name": name, "text": text, "ids": ids,
                         "positions": [summarize(row) for row in logits]})

    C.dump_json({
        "model_file": os.path.basename(args.model),
        "model_sha256": sha,
        "description": ("Teacher-forced float32 numpy forward of the dequantized GGUF (see "
                        "scripts/reference/reference_forward.py). positions[i] = logits after reading "
                        "ids[0..=i] (predicting ids[i+1]); top = 16 highest [id, logit], logit rounded to 5 "
                        "decimals; margin = top1 - top2 logit. Token ids from the tokenizer_smollm2.json "
                        "reference tokenizer, special-token strings parsed, no BOS added."),
        "float64_check": checks,
        "timing": timings,
        "sequences": out_seqs,
    }, args.out)

    # ---- greedy continuations ------------------------------------------------
    greedy = []
    for user in GREEDY_PROMPTS:
        prompt = chat(user)
        ids = tok.encode(prompt, add_special_tokens=False).ids
        gen, steps = [], []
        t0 = time.time()
        for _ in range(args.greedy_steps):
            row = model.forward(ids + gen, np.float32, logits_for="last")[0]
            s = summarize(row)
            steps.append({"id": s["argmax"], "margin": s["margin"], "top2": s["top"][:2]})
            gen.append(s["argmax"])
            if s["argmax"] == 2:  # <|im_end|>
                break
        dt = time.time() - t0
        text = tok.decode(gen, skip_special_tokens=False)
        print(f"greedy {user!r}: {len(gen)} tokens in {dt:.1f}s -> {text!r}")
        greedy.append({"user": user, "prompt": prompt, "prompt_ids": ids, "generated_ids": gen,
                       "generated_text": text, "stopped_on_im_end": gen[-1] == 2, "steps": steps})
    C.dump_json({
        "model_file": os.path.basename(args.model),
        "model_sha256": sha,
        "description": (f"Greedy (argmax, temperature 0) continuation of up to {args.greedy_steps} tokens from "
                        "the float32 numpy reference, stopping after id 2 <|im_end|> (included). Prompts are "
                        "the SmolLM2 chat template with add_generation_prompt=true. steps[i].margin = top1 - "
                        "top2 logit at that step (small margins = near-ties where quantized engines may "
                        "legitimately differ); generated_text = decode(generated_ids) with special tokens kept."),
        "cases": greedy,
    }, args.greedy_out)


if __name__ == "__main__":
    main()
