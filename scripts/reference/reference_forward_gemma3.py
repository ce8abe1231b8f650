"""Exact float32 numpy forward pass of gemma-3-270m (Q4_K_M GGUF), teacher-forced and greedy.

    python3 scripts/reference/reference_forward_gemma3.py --model /path/gemma-3-270m-q4_k_m.gguf \
        --out tests/data/reference_gemma3.json

Writes {"model_sha256", "sequences": [{"name", "text", "ids", "positions": [{"argmax", "margin",
"top": [[id, logit] x16]}]}], "greedy": [{"user", "prompt_ids", "generated_ids", "steps"}]}, in the
same layout as reference_smollm2.json / greedy_smollm2.json, and "long": 640 tokens, past the 512-key
sliding window, with the logits of only its last 48 positions ("positions_from").

Weights: every tensor dequantized by gguf.quants.dequantize into float32 (Q5_0, Q8_0, Q4_K, Q6_K
here). Architecture as llama.cpp's gemma3 graph and Hugging Face's Gemma3ForCausalLM (the GGUF
converter already added 1 to every norm weight, so norms multiply by the stored weight):

  x = embd[ids] * sqrt(640)
  per layer (18): h = rms(x)*attn_norm; q,k,v = h@Wq,Wk,Wv (4 query heads, 1 KV head, dim 256);
    q = rms(q_head)*q_norm, k = rms(k_head)*k_norm (per head); RoPE NEOX (halves) with base
    10000 on sliding layers and 1e6 on every 6th layer (5, 11, 17); scores * 1/sqrt(256);
    sliding layers see the last 512 keys (query pos - key pos < 512), causal;
    x += rms(attn@Wo)*post_attention_norm;
    h = rms(x)*ffn_norm; x += rms(down(gelu_tanh(gate(h)) * up(h)))*post_ffw_norm
  logits = rms(x)*output_norm @ embd.T (tied), no soft-capping.

RMSNorm eps 1e-6. Token ids from sentencepiece running the GGUF vocabulary (as
make_tokenizer_golden.py does, the ids of tokenizer_gemma3.json), control tokens split out first.
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
from reference_forward import summarize  # noqa: E402  (the same [id, logit] summary as SmolLM2's)

SEQ2_TEXT = (
    "The lighthouse keeper climbed the spiral stairs every evening at dusk. For forty years he had "
    "trimmed the wick, polished the great lens and written the weather in a leather book: wind from "
    "the north-east, rain after midnight, a schooner passing at 9:40. When the light was finally "
    "automated in 1987, he kept writing anyway, because the sea had not stopped being worth watching."
)

# Longer than the 512-key sliding window: the logits of its last LONG_TAIL positions depend on
# which keys the local layers may see.
LONG_TEXT = "<bos>" + " ".join(
    f"Entry {i}: wind from the {['north', 'east', 'south', 'west'][i % 4]}, {i * 7 % 13} ships passed the light."
    for i in range(1, 80))
LONG_LEN = 640
LONG_TAIL = 48

GREEDY_PROMPTS = ["What is the capital of France?", "Write a haiku about the sea.", "List three primary colors."]


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


class Gemma3:
    def __init__(self, path):
        import gguf

        md = C.read_metadata(path, None)
        a = "gemma3"
        self.n_layer = int(md[f"{a}.block_count"])
        self.n_embd = int(md[f"{a}.embedding_length"])
        self.n_head = int(md[f"{a}.attention.head_count"])
        self.n_kv = int(md[f"{a}.attention.head_count_kv"])
        self.head_dim = int(md[f"{a}.attention.key_length"])
        self.base = float(md[f"{a}.rope.freq_base"])
        self.base_local = 10000.0
        self.window = int(md[f"{a}.attention.sliding_window"])
        self.eps = float(md[f"{a}.attention.layer_norm_rms_epsilon"])
        reader = gguf.GGUFReader(path)
        self.w = {}
        for t in reader.tensors:
            arr = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
            self.w[t.name] = arr.reshape(tuple(int(d) for d in reversed(t.shape)))
        assert "output.weight" not in self.w  # tied embeddings

    def rms(self, x, w):
        eps = x.dtype.type(self.eps)
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w

    def rope(self, x, pos, base):
        """x: [T, H, D]; NEOX pairing: dims i and i + D/2 rotate together."""
        d = self.head_dim
        half = d // 2
        inv = base ** (-np.arange(0, d, 2, dtype=np.float64) / d)
        ang = pos[:, None].astype(np.float64) * inv[None, :]
        cos = np.cos(ang).astype(x.dtype)[:, None, :]
        sin = np.sin(ang).astype(x.dtype)[:, None, :]
        x0, x1 = x[..., :half], x[..., half:]
        return np.concatenate([x0 * cos - x1 * sin, x0 * sin + x1 * cos], axis=-1)

    def forward(self, ids, logits_for="all", logits_from=0):
        W = self.w
        ids = np.asarray(ids, dtype=np.int64)
        T = len(ids)
        H, KV, D = self.n_head, self.n_kv, self.head_dim
        pos = np.arange(T)
        x = W["token_embd.weight"][ids] * np.float32(np.sqrt(self.n_embd))
        causal = np.triu(np.full((T, T), -np.inf, dtype=np.float32), k=1)
        qi, ki = np.arange(T)[:, None], np.arange(T)[None, :]
        sliding = causal + np.where(qi - ki >= self.window, -np.inf, 0).astype(np.float32)
        scale = np.float32(1.0 / np.sqrt(D))
        for layer in range(self.n_layer):
            p = f"blk.{layer}."
            is_sliding = (layer + 1) % 6 != 0
            h = self.rms(x, W[p + "attn_norm.weight"])
            q = (h @ W[p + "attn_q.weight"].T).reshape(T, H, D)
            k = (h @ W[p + "attn_k.weight"].T).reshape(T, KV, D)
            v = (h @ W[p + "attn_v.weight"].T).reshape(T, KV, D)
            q = self.rms(q, W[p + "attn_q_norm.weight"])
            k = self.rms(k, W[p + "attn_k_norm.weight"])
            base = self.base_local if is_sliding else self.base
            q, k = self.rope(q, pos, base), self.rope(k, pos, base)
            rep = H // KV
            k = np.repeat(k, rep, axis=1)
            v = np.repeat(v, rep, axis=1)
            att = np.einsum("thd,shd->hts", q, k) * scale + (sliding if is_sliding else causal)
            att = att - att.max(axis=-1, keepdims=True)
            att = np.exp(att)
            att /= att.sum(axis=-1, keepdims=True)
            o = np.einsum("hts,shd->thd", att, v).reshape(T, H * D)
            x = x + self.rms(o @ W[p + "attn_output.weight"].T, W[p + "post_attention_norm.weight"])
            h = self.rms(x, W[p + "ffn_norm.weight"])
            g = h @ W[p + "ffn_gate.weight"].T
            u = h @ W[p + "ffn_up.weight"].T
            f = (gelu_tanh(g) * u) @ W[p + "ffn_down.weight"].T
            x = x + self.rms(f, W[p + "post_ffw_norm.weight"])
        if logits_for == "last":
            x = x[-1:]
        x = self.rms(x[logits_from:], W["output_norm.weight"])
        return x @ W["token_embd.weight"].T


def tokenizer(path):
    """sentencepiece on the GGUF vocabulary, control tokens split out first (tokenizer_gemma3.json's ids)."""
    from make_tokenizer_golden import gemma_sentencepiece_encoder

    md = C.read_metadata(path, None)
    return gemma_sentencepiece_encoder(md, os.path.join(tempfile.mkdtemp(), "tokenizer.model"))


def chat(user):
    # Google's published Gemma 3 template (tests/data/template_gemma3.json renders the same).
    return f"<bos><start_of_turn>user\n{user}<end_of_turn>\n<start_of_turn>model\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--greedy-steps", type=int, default=24)
    args = ap.parse_args()

    encode, sp = tokenizer(args.model)
    t0 = time.time()
    model = Gemma3(args.model)
    print(f"loaded + dequantized in {time.time() - t0:.1f}s")
    end_of_turn = encode("<end_of_turn>")[0]

    seqs = [
        ("chat_france", chat("What is the capital of France?") + "The capital of France is Paris.<end_of_turn>"),
        ("lighthouse", "<bos>" + SEQ2_TEXT),
    ]
    out_seqs = []
    for name, text in seqs:
        ids = encode(text)
        t0 = time.time()
        logits = model.forward(ids)
        print(name, len(ids), "tokens", f"{time.time() - t0:.1f}s")
        out_seqs.append({"name": name, "text": text, "ids": ids, "positions": [summarize(r) for r in logits]})
    ids = encode(LONG_TEXT)[:LONG_LEN]
    assert len(ids) == LONG_LEN, len(ids)
    t0 = time.time()
    logits = model.forward(ids, logits_from=LONG_LEN - LONG_TAIL)
    print("long", len(ids), "tokens", f"{time.time() - t0:.1f}s")
    long_seq = {"name": "past_the_window", "ids": ids, "positions_from": LONG_LEN - LONG_TAIL,
                "positions": [summarize(r) for r in logits]}

    greedy = []
    for user in GREEDY_PROMPTS:
        ids = encode(chat(user))
        gen, steps = [], []
        for _ in range(args.greedy_steps):
            s = summarize(model.forward(ids + gen, logits_for="last")[0])
            steps.append({"id": s["argmax"], "margin": s["margin"]})
            gen.append(s["argmax"])
            if s["argmax"] == end_of_turn:
                break
        text = sp.decode(gen)
        print(f"greedy {user!r}: {text!r}")
        greedy.append({"user": user, "prompt_ids": ids, "generated_ids": gen, "generated_text": text,
                       "steps": steps})

    C.dump_json({
        "model_file": os.path.basename(args.model),
        "model_sha256": C.sha256_file(args.model),
        "description": ("Teacher-forced float32 numpy forward of the dequantized gemma-3-270m GGUF (see "
                        "scripts/reference/reference_forward_gemma3.py). positions[i] = logits after reading "
                        "ids[0..=i]; top = 16 highest [id, logit]; margin = top1 - top2. greedy: argmax "
                        f"continuations of up to {args.greedy_steps} tokens from Gemma 3's chat template, "
                        f"stopping after <end_of_turn> ({end_of_turn})."),
        "sequences": out_seqs,
        "long": long_seq,
        "greedy": greedy,
    }, args.out)


if __name__ == "__main__":
    main()
