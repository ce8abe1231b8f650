"""Generate tokenizer golden data: tests/data/tokenizer_{smollm2,gemma3}.json.

    python3 scripts/reference/make_tokenizer_golden.py --model /tmp/models/smollm2.gguf \
        --out tests/data/tokenizer_smollm2.json
    python3 scripts/reference/make_tokenizer_golden.py --model /tmp/models/gemma3-270m.gguf \
        --out tests/data/tokenizer_gemma3.json

All ids are WITHOUT added special tokens (no BOS/EOS), but special-token strings that occur inside
the text ARE recognised as special tokens (what Hugging Face tokenizers do with added special
tokens, and what llama.cpp does with parse_special=true).

SmolLM2 (tokenizer.ggml.model = gpt2):
  (a) transformers.AutoTokenizer.from_pretrained(dir, gguf_file=...) - transformers' own GGUF
      conversion (GGUFGPTConverter);
  (b) a tokenizers.Tokenizer built by hand with the layout of SmolLM2's published tokenizer.json
      (see _common.build_smollm2_tokenizer).
  "ids" are (b). Cases where (a) differs are listed under "disagreements".

Gemma 3 (tokenizer.ggml.model = llama, i.e. a SentencePiece BPE vocabulary with scores):
  (a) transformers' GGUF loader (GGUFGemmaConverter). It builds a *Unigram* model from the BPE
      scores, which is not the algorithm Gemma uses; kept only to document the disagreement;
  (b) the `sentencepiece` library running a ModelProto rebuilt from the GGUF (model_type BPE,
      byte_fallback, identity normaliser, no dummy prefix, whitespace escaped to U+2581;
      <unk> gets type UNKNOWN). User-defined pieces (type 4: "\n" runs, "  " runs with literal
      spaces, "\t" runs, HTML tags like "<table>") are matched atomically on the raw text, as
      SentencePiece and llama.cpp both do. Control-token strings in the text are split out first
      (longest match) and mapped to their ids, as HF added tokens / llama.cpp parse_special do;
  (c) transformers' slow->fast GemmaConverter run on that rebuilt model (how HF built Gemma's
      official tokenizer.json: BPE with merges derived from the scores, 6k added tokens).
  "ids" are (b); the script asserts (b) == (c) on every case.
"""

import argparse
import collections
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

LONG_PARAGRAPH = (
    "The lighthouse keeper climbed the spiral stairs every evening at dusk, counting each of the "
    "117 iron steps out of habit rather than necessity. From the lantern room she could see the "
    "harbour, the fishing boats returning with their nets, and the narrow road that wound along the "
    "cliffs toward the village. In 1987 a storm had torn the roof from the keeper's cottage; the "
    "repairs took three months and cost nearly £4,200. Nobody remembered that now. What people "
    "remembered was the light itself: a steady white flash every 5 seconds, visible for 18 nautical "
    "miles on a clear night."
)

PY_CODE = (
    "def fib(n: int) -> int:\n"
    "    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"
    "    a, b = 0, 1\n"
    "    for _ in range(n):\n"
    "        a, b = b, a + b\n"
    "    return a\n"
    "\n"
    "print([fib(i) for i in range(10)])  # [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]\n"
)

RUST_CODE = (
    "fn main() {\n"
    "\tlet v: Vec<u32> = (1..=10).map(|x| x * x).collect();\n"
    "\tif let Some(&last) = v.last() {\n"
    "\t\tprintln!(\"last = {last:>4}\");\n"
    "\t}\n"
    "}\n"
)

COMMON_CASES = [
    # plain English
    "Hello world",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure they'll say it's fine; we've done it before, haven't we?",
    "HELLO World hello WORLD",
    "a",
    " ",
    # leading / trailing spaces and whitespace runs
    " Hello",
    "Hello ",
    "  Hello  world  ",
    "Hello     world",
    "tab\tseparated\tvalues",
    "\t\tindented with tabs",
    "line one\nline two",
    "\n",
    "\n\n\n",
    "  \n ",
    "paragraph one.\n\nparagraph two.",
    "trailing newline\n",
    " \t \n \t ",
    "\r\n windows line ending",
    # digits
    "12345",
    "3.14159",
    "year 2024",
    " 7",
    "  7",
    "x =   42",
    "\n\n2024",
    "Hello world  12345",
    "Call 555-0199 or +44 20 7946 0958.",
    "x = 1_000_000; y = 0xFF; z = 1e-9",
    "v1.2.3-rc4",
    # code
    PY_CODE,
    RUST_CODE,
    "    return self.value  # four-space indent",
    "if (a && b) { return c || d; } // done",
    "<html><body><table><tr><td>cell</td></tr></table></body></html>",
    "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;",
    # emoji
    "🙂",
    "I love pizza 🍕!",
    "family: 👩\u200d👩\u200d👧",
    "flags 🇫🇷🇯🇵",
    "thumbs 👍🏽 and ❤️",
    # accented Latin, other scripts
    "café",
    "naïve résumé",
    "Ærøskøbing",
    "Straße, Œuvre, ÇA, ñandú",
    "日本語のテキスト",
    "中文",
    "한국어 텍스트",
    "Привет, мир!",
    "Γειά σου Κόσμε",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "math: ∑ x² ≤ ∞, α→β",
    # special-token strings inside text (SmolLM2 and Gemma 3 ones)
    "<|im_end|>",
    "<|im_start|>",
    "hello<|im_start|>user",
    "a<|endoftext|>b",
    "foo<|im_start|>bar",
    "<|im_start|>assistant\nHi there<|im_end|>\n",
    "<|im_end",
    "<bos>",
    "<start_of_turn>user\nhello<end_of_turn>\n",
    "x<start_of_turn>y",
    "<eos><pad><unk>",
    # misc
    "",
    "!!!???...",
    "https://example.com/path?query=1&b=two#frag",
    "user@example.org",
    "\"quoted\" 'single' `back`",
    LONG_PARAGRAPH,
]

# Text containing bytes that have no token in SmolLM2's vocabulary (no byte fallback there).
UNTOKENIZABLE = [
    ("end\x04of\x06transmission", "contains U+0004 and U+0006 (bytes 0x04, 0x06: no SmolLM2 token)"),
    ("plane-5 char \U00050000 here", "contains U+50000 = F1 90 80 80 (lead byte 0xF1: no SmolLM2 token)"),
]


def chat_prompt(model_path):
    """The single-user chat prompt as the model's template renders it."""
    import make_template_golden as T

    md = C.read_metadata(model_path, {"tokenizer.chat_template", "tokenizer.ggml.tokens",
                                      "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"})
    toks = md["tokenizer.ggml.tokens"]
    tpl = md.get("tokenizer.chat_template") or T.GEMMA3_CHAT_TEMPLATE
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    return C.render_chat(tpl, msgs, True, toks[md["tokenizer.ggml.bos_token_id"]],
                         toks[md["tokenizer.ggml.eos_token_id"]])


def metadata_summary(md):
    keys = ["tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.add_bos_token",
            "tokenizer.ggml.add_eos_token", "tokenizer.ggml.add_space_prefix", "tokenizer.ggml.add_sep_token",
            "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
            "tokenizer.ggml.padding_token_id"]
    toks = md["tokenizer.ggml.tokens"]
    out = {k: md.get(k) for k in keys}
    for k in ["bos", "eos", "unknown", "padding"]:
        i = md.get(f"tokenizer.ggml.{k}_token_id")
        if i is not None:
            out[f"{k}_token"] = toks[i]
    out["n_tokens"] = len(toks)
    out["n_merges"] = len(md.get("tokenizer.ggml.merges") or [])
    out["has_scores"] = "tokenizer.ggml.scores" in md
    counts = collections.Counter(md["tokenizer.ggml.token_type"])
    out["token_type_counts"] = {f"{t} ({C.TOKEN_TYPE_NAMES.get(t, '?')})": n for t, n in sorted(counts.items())}
    out["has_chat_template"] = "tokenizer.chat_template" in md
    return out


def try_encode(fn, text):
    try:
        return {"ids": fn(text)}
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"}


# ---------------------------------------------------------------------------
# SmolLM2
# ---------------------------------------------------------------------------


def smollm2(model_path, md):
    hf = C.load_hf_gguf_tokenizer(model_path)
    tok_b = C.build_smollm2_tokenizer(model_path)

    def enc_a(t):
        return hf.encode(t, add_special_tokens=False)

    def enc_b(t):
        return tok_b.encode(t, add_special_tokens=False).ids

    texts = COMMON_CASES + [chat_prompt(model_path)]
    cases, disagreements = [], []
    for text in texts:
        a, b = enc_a(text), enc_b(text)
        cases.append({"text": text, "ids": b})
        if a != b:
            disagreements.append({"text": text, "ids_a_transformers_gguf": a, "ids_b_published_layout": b})
        # decoding must round-trip for everything in the case list
        assert tok_b.decode(b, skip_special_tokens=False) == text, text

    untok = []
    for text, note in UNTOKENIZABLE:
        ra, rb = try_encode(enc_a, text), try_encode(enc_b, text)
        entry = {"text": text, "note": note, "reference_b": rb, "transformers_gguf_a": ra}
        if "ids" in rb:
            entry["reference_b"]["decoded"] = tok_b.decode(rb["ids"], skip_special_tokens=False)
        if "ids" in ra:
            entry["transformers_gguf_a"]["decoded"] = hf.decode(ra["ids"], skip_special_tokens=False)
        untok.append(entry)

    source = (
        "ids from (b): a tokenizers %s Tokenizer built from the GGUF's vocab and merges with the layout of "
        "HuggingFaceTB/SmolLM2-135M-Instruct tokenizer.json: BPE (no unk, no byte fallback), pre_tokenizer "
        "Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False, trim_offsets=True, "
        "use_regex=True)], ByteLevel decoder, ids 0-16 as special added tokens. encode(text, "
        "add_special_tokens=False); special-token strings inside the text ARE matched as special tokens. "
        "Cross-checked against (a) transformers %s AutoTokenizer.from_pretrained(dir, gguf_file=...): its "
        "GGUFGPTConverter omits the Digits pre-tokenizer (so runs of 2+ whitespace before a digit differ, "
        "see 'disagreements'), sets byte_fallback=True with unk <|endoftext|>, and with add_special_tokens=True "
        "prepends <|im_start|> (id 1) although the GGUF says add_bos_token=false. Every case decodes back to "
        "its text." % (__import__("tokenizers").__version__, __import__("transformers").__version__)
    )
    hf_special = {"bos_token": hf.bos_token, "eos_token": hf.eos_token, "unk_token": hf.unk_token,
                  "pad_token": hf.pad_token,
                  "encode_Hello_add_special_tokens_true": hf.encode("Hello", add_special_tokens=True)}
    return source, cases, disagreements, untok, {"transformers_gguf_loader": hf_special}


# ---------------------------------------------------------------------------
# Gemma 3
# ---------------------------------------------------------------------------


def rebuild_sentencepiece_model(md, path, escape_user_defined_spaces):
    """Write a SentencePiece ModelProto equivalent to the GGUF vocabulary.

    The GGUF stores the user-defined whitespace pieces with literal spaces ("  ", ids 138-167).
    The sentencepiece library only matches user-defined pieces *after* escaping spaces to U+2581,
    so for it (escape_user_defined_spaces=True) we write them as U+2581 runs; transformers'
    converter turns user-defined pieces into added tokens matched on the raw text, so for it we
    keep the literal spaces. Either way a run of spaces is one atomic token, as in llama.cpp,
    whose tokenizer splits user-defined tokens out of the raw text before the SPM merge loop."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    toks, scores, types = md["tokenizer.ggml.tokens"], md["tokenizer.ggml.scores"], md["tokenizer.ggml.token_type"]
    unk = md["tokenizer.ggml.unknown_token_id"]
    mp = pb.ModelProto()
    ts = mp.trainer_spec
    ts.model_type = pb.TrainerSpec.BPE
    ts.vocab_size = len(toks)
    ts.byte_fallback = True
    ts.unk_id, ts.bos_id = unk, md["tokenizer.ggml.bos_token_id"]
    ts.eos_id, ts.pad_id = md["tokenizer.ggml.eos_token_id"], md["tokenizer.ggml.padding_token_id"]
    ns = mp.normalizer_spec
    ns.name = "identity"
    ns.add_dummy_prefix = bool(md.get("tokenizer.ggml.add_space_prefix", False))
    ns.remove_extra_whitespaces = False
    ns.escape_whitespaces = True
    for i, (t, s, ty) in enumerate(zip(toks, scores, types)):
        p = mp.pieces.add()
        p.piece = t.replace(" ", "\u2581") if (ty == 4 and escape_user_defined_spaces) else t
        p.score = float(s)
        p.type = 2 if i == unk else int(ty)  # 2 = UNKNOWN; GGUF marks <unk> as CONTROL
    with open(path, "wb") as f:
        f.write(mp.SerializeToString())


def gemma_sentencepiece_encoder(md, spm_path):
    """(b): sentencepiece on the GGUF vocabulary rebuilt at `spm_path`, control-token strings split out
    first. Returns (encode(text) -> ids, the SentencePieceProcessor)."""
    import sentencepiece as spm

    toks, types = md["tokenizer.ggml.tokens"], md["tokenizer.ggml.token_type"]
    rebuild_sentencepiece_model(md, spm_path, escape_user_defined_spaces=True)
    sp = spm.SentencePieceProcessor(model_file=spm_path)
    control = {t: i for i, t in enumerate(toks) if types[i] == 3}
    control_re = re.compile("|".join(re.escape(t) for t in sorted(control, key=len, reverse=True)))

    def encode(text):
        ids, pos = [], 0
        for mt in control_re.finditer(text):
            if mt.start() > pos:
                ids += sp.encode(text[pos:mt.start()])
            ids.append(control[mt.group()])
            pos = mt.end()
        if pos < len(text):
            ids += sp.encode(text[pos:])
        return ids

    return encode, sp


def gemma3(model_path, md):
    import tempfile

    from transformers import GemmaTokenizerFast

    tmp = tempfile.mkdtemp()
    enc_b, _ = gemma_sentencepiece_encoder(md, os.path.join(tmp, "tokenizer.model"))
    hf_spm_path = os.path.join(tmp, "hf", "tokenizer.model")
    os.makedirs(os.path.dirname(hf_spm_path))
    rebuild_sentencepiece_model(md, hf_spm_path, escape_user_defined_spaces=False)

    fast_c = GemmaTokenizerFast(vocab_file=hf_spm_path, from_slow=True)

    def enc_c(t):
        return fast_c.encode(t, add_special_tokens=False)

    hf_a = C.load_hf_gguf_tokenizer(model_path)

    def enc_a(t):
        return hf_a.encode(t, add_special_tokens=False)

    texts = COMMON_CASES + [chat_prompt(model_path)]
    cases, disagreements = [], []
    for text in texts:
        a, b, c = enc_a(text), enc_b(text), enc_c(text)
        if b != c:
            raise SystemExit(f"(b) sentencepiece and (c) converted fast tokenizer disagree on {text!r}: {b} vs {c}")
        cases.append({"text": text, "ids": b})
        if a != b:
            disagreements.append({"text": text, "ids_a_transformers_gguf": a, "ids_b_sentencepiece": b})
        assert fast_c.decode(b, skip_special_tokens=False) == text, (text, fast_c.decode(b))

    untok = []
    for text, note in UNTOKENIZABLE:
        b = enc_b(text)
        untok.append({"text": text, "note": note.replace("no SmolLM2 token", "no SmolLM2 token; Gemma 3 "
                                                         "has byte fallback <0x00>..<0xFF>"),
                      "reference_b": {"ids": b, "decoded": fast_c.decode(b, skip_special_tokens=False)},
                      "transformers_gguf_a": try_encode(enc_a, text)})

    n_agree = len(cases) - len(disagreements)
    source = (
        "ids from (b): sentencepiece %s running a ModelProto rebuilt from the GGUF (BPE, byte_fallback, identity "
        "normaliser, add_dummy_prefix=false, spaces escaped to U+2581, <unk> typed UNKNOWN; user-defined pieces "
        "such as '  ' (literal spaces), '\\n\\n', '\\t', '<table>' match atomically), after splitting out control-token "
        "strings (token_type 3, longest match) as their ids. No BOS/EOS added. Identical on every case to (c) "
        "transformers' slow->fast GemmaConverter on the same vocabulary (BPE with score-derived merges, 6414 "
        "added tokens = control + user-defined: the recipe behind Gemma's official tokenizer.json), and to what "
        "llama.cpp's SPM tokenizer does by construction (user-defined/control tokens split out of the raw text "
        "first, then score-ordered merges, byte fallback). (a) transformers %s "
        "AutoTokenizer.from_pretrained(dir, gguf_file=...) builds a Unigram model from the BPE scores "
        "(GGUFGemmaConverter), which is not Gemma's algorithm: it agrees on only %d of %d cases (e.g. ' world' "
        "becomes 3 pieces) and only registers <pad>/<eos>/<bos>/<unk> as added tokens; see 'disagreements'. "
        "(a) with add_special_tokens=True prepends <bos> (id 2), matching the GGUF's add_bos_token=true; "
        "add_eos_token=false. Every case decodes back to its text with (c)."
        % (spm.__version__, __import__("transformers").__version__, n_agree, len(cases))
    )
    hf_special = {"bos_token": hf_a.bos_token, "eos_token": hf_a.eos_token, "unk_token": hf_a.unk_token,
                  "pad_token": hf_a.pad_token,
                  "encode_Hello_add_special_tokens_true": hf_a.encode("Hello", add_special_tokens=True)}
    return source, cases, disagreements, untok, {"transformers_gguf_loader": hf_special}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    md = C.read_metadata(args.model)
    kind = md["tokenizer.ggml.model"]
    if kind == "gpt2":
        source, cases, dis, untok, extra = smollm2(args.model, md)
    elif kind == "llama":
        source, cases, dis, untok, extra = gemma3(args.model, md)
    else:
        raise SystemExit(f"unsupported tokenizer.ggml.model {kind!r}")

    out = {
        "source": source,
        "model_file": os.path.basename(args.model),
        "model_sha256": C.sha256_file(args.model),
        "metadata": metadata_summary(md),
        **extra,
        "cases": cases,
        "untokenizable": untok,
        "disagreements": dis,
    }
    C.dump_json(out, args.out)
    print(f"wrote {args.out}: {len(cases)} cases, {len(dis)} (a)/(b) disagreements")


if __name__ == "__main__":
    main()
