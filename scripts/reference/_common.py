"""Shared helpers for the reference (golden-data) scripts in this directory.

Nothing here is run directly. The scripts import it:

    make_tokenizer_golden.py   -> tests/data/tokenizer_{smollm2,gemma3}.json
    make_template_golden.py    -> tests/data/template_{smollm2,gemma3}.json
    reference_forward.py       -> tests/data/reference_smollm2.json, greedy_smollm2.json

Environment used to produce the checked-in files (no torch, no network):

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install numpy gguf tokenizers jinja2 "transformers<5" sentencepiece protobuf
    export HF_HUB_OFFLINE=1

(transformers 4.57.6, tokenizers 0.22.2, gguf 0.19.0, jinja2 3.1.6, sentencepiece 0.2.3, numpy 2.4.6.)
transformers 5.x imports torch inside its GGUF reader, so 4.x is used; see `load_hf_gguf_tokenizer`.
"""

import hashlib
import json
import os
from datetime import datetime

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

import gguf  # noqa: E402

# ---------------------------------------------------------------------------
# GGUF metadata
# ---------------------------------------------------------------------------


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_metadata(path, keys=None):
    """Return {key: python value} for the GGUF metadata (all keys, or just `keys`)."""
    reader = gguf.GGUFReader(path)
    out = {}
    for k, field in reader.fields.items():
        if keys is not None and k not in keys:
            continue
        out[k] = field.contents()
    return out


# token_type values used by llama.cpp / GGUF (same numbering as SentencePiece's Piece.Type)
TOKEN_TYPE_NAMES = {1: "normal", 2: "unknown", 3: "control", 4: "user_defined", 5: "unused", 6: "byte"}


# ---------------------------------------------------------------------------
# Hugging Face transformers' own GGUF -> tokenizer conversion
# ---------------------------------------------------------------------------


def load_hf_gguf_tokenizer(gguf_path):
    """`transformers.AutoTokenizer.from_pretrained(dir, gguf_file=name)`.

    transformers 4.x refuses to read *any* GGUF unless torch is importable, although with
    return_tensors=False (the tokenizer path) it never touches torch. We flip that one availability
    check; the conversion code itself (transformers/integrations/ggml.py) runs unmodified.
    """
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    gguf_utils.is_torch_available = lambda: True
    from transformers import AutoTokenizer

    d, name = os.path.split(os.path.abspath(gguf_path))
    return AutoTokenizer.from_pretrained(d, gguf_file=name)


# ---------------------------------------------------------------------------
# SmolLM2: hand-built `tokenizers.Tokenizer` matching the published tokenizer.json layout
# ---------------------------------------------------------------------------


def build_smollm2_tokenizer(gguf_path):
    """BPE(vocab, merges from the GGUF), no unk / byte fallback; pre-tokenizer
    Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False, trim_offsets=True,
    use_regex=True)]; ByteLevel decoder; ids 0..16 (token_type CONTROL) as special added tokens.
    This is the layout of HuggingFaceTB/SmolLM2-135M-Instruct's tokenizer.json."""
    from tokenizers import Tokenizer

    md = read_metadata(
        gguf_path, {"tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type"}
    )
    tokens = md["tokenizer.ggml.tokens"]
    merges = md["tokenizer.ggml.merges"]
    ttype = md["tokenizer.ggml.token_type"]
    added = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for i, t in enumerate(tokens) if ttype[i] == 3
    ]
    spec = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Digits", "individual_digits": True},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            ],
        },
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                           "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": [m.split(" ") for m in merges],
        },
    }
    return Tokenizer.from_str(json.dumps(spec))


# ---------------------------------------------------------------------------
# Chat templates, rendered the way transformers does it
# ---------------------------------------------------------------------------


def hf_jinja_env():
    """Copy of transformers.utils.chat_template_utils._compile_jinja_template's environment
    (minus the {% generation %} tracker extension, unused by our templates)."""
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render_chat(template, messages, add_generation_prompt, bos_token, eos_token):
    return hf_jinja_env().from_string(template).render(
        messages=messages, add_generation_prompt=add_generation_prompt,
        bos_token=bos_token, eos_token=eos_token)


def dump_json(obj, path):
    """Pretty but compact JSON: structure is indented, while objects and lists that hold only
    scalars (or lists of scalars) are written on one line each."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(_dumps(obj, 0))
        f.write("\n")


def _dumps(obj, level):
    ind = "  " * level
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        if all(_is_flat(v) for v in obj.values()):
            return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))
        items = [f'{ind}  {json.dumps(k, ensure_ascii=False)}: {_dumps(v, level + 1)}' for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + ind + "}"
    if isinstance(obj, list):
        if all(_is_flat(v) for v in obj):
            return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))
        items = [f"{ind}  {_dumps(v, level + 1)}" for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + ind + "]"
    return json.dumps(obj, ensure_ascii=False)


def _is_scalar(x):
    return isinstance(x, (int, float, str, bool)) or x is None


def _is_flat(v):
    """Scalars, lists of scalars and lists of lists of scalars go on one line."""
    if isinstance(v, (list, tuple)):
        return all(_is_scalar(x) or (isinstance(x, (list, tuple)) and all(map(_is_scalar, x))) for x in v)
    return _is_scalar(v)
