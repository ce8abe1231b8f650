"""Generate chat-template golden data: tests/data/template_{smollm2,gemma3}.json.

    python3 scripts/reference/make_template_golden.py --model /tmp/models/smollm2.gguf \
        --out tests/data/template_smollm2.json
    python3 scripts/reference/make_template_golden.py --model /tmp/models/gemma3-270m.gguf \
        --out tests/data/template_gemma3.json

The template is the GGUF's `tokenizer.chat_template`. The gemma-3-270m GGUF we ship has none, so for
it we use Google's published Gemma 3 chat template (GEMMA3_CHAT_TEMPLATE below, as found in
google/gemma-3-*-it tokenizer_config.json and in transformers' Gemma 3 tests) and say so in the
output's "template_source".

Rendering copies transformers' `apply_chat_template`: jinja2 ImmutableSandboxedEnvironment(
trim_blocks=True, lstrip_blocks=True), globals raise_exception / strftime_now, HF's `tojson`
filter, and variables messages, add_generation_prompt, bos_token, eos_token (token strings of the
GGUF's bos/eos ids). Every case is also rendered with transformers' own
`transformers.utils.chat_template_utils.render_jinja_template` and must agree exactly.
A case whose template raises records {"error": message} instead of "rendered".
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

# Google's Gemma 3 chat template (tokenizer_config.json of google/gemma-3-*-it). Jinja string
# literals use the escape '\n', exactly like the JSON-decoded official template string.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}\n"
    "    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}\n"
    "    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    "    {%- set first_user_prefix = \"\" -%}\n"
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    "        {%- set role = \"model\" -%}\n"
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n"
    "        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n"
    "                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n"
    "                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "    {%- else -%}\n"
    "        {{ raise_exception(\"Invalid content type\") }}\n"
    "    {%- endif -%}\n"
    "    {{ '<end_of_turn>\\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\\n'}}\n"
    "{%- endif -%}\n"
)

U = "user"
A = "assistant"
S = "system"


def m(role, content):
    return {"role": role, "content": content}


CASES = [
    ("single user, generation prompt", [m(U, "What is the capital of France?")], True),
    ("single user, no generation prompt", [m(U, "What is the capital of France?")], False),
    ("system + user", [m(S, "You are a terse assistant. Answer in one word."), m(U, "Capital of Italy?")], True),
    ("multi-turn user/assistant/user",
     [m(U, "Hi!"), m(A, "Hello! How can I help you today?"), m(U, "Tell me a joke about cats.")], True),
    ("multi-turn ending with assistant, no generation prompt",
     [m(U, "2+2?"), m(A, "4")], False),
    ("system + multi-turn",
     [m(S, "Be brief."), m(U, "Name a fruit."), m(A, "Apple."), m(U, "Another one.")], True),
    ("jinja syntax inside content is literal",
     [m(U, "Render {{ 7*7 }} and {% if true %}yes{% endif %} literally, plus {# comment #} and {%- raw %}.")], True),
    ("special-token strings inside content",
     [m(U, "Stop at <|im_end|> or <end_of_turn>; start with <|im_start|>assistant or <start_of_turn>model.")], True),
    ("unicode content",
     [m(U, "Café, naïve, Ærøskøbing — 日本語のテキスト, 中文, العربية, emoji 👩‍👩‍👧 🇫🇷 🙂")], True),
    ("empty content", [m(U, "")], True),
    ("surrounding whitespace and newlines in content",
     [m(U, "  \n  line one\n\tline two  \n\n")], True),
    ("system message only", [m(S, "You are a helpful assistant.")], True),
    ("two user messages in a row", [m(U, "first"), m(U, "second")], True),
    ("assistant first", [m(A, "I speak first."), m(U, "ok")], True),
]


def render_both(template, messages, gen, bos, eos):
    """Our copy of HF's environment, and transformers' own renderer; must agree."""
    from transformers.utils.chat_template_utils import render_jinja_template

    def ours():
        return C.render_chat(template, messages, gen, bos, eos)

    def theirs():
        rendered, _ = render_jinja_template(
            conversations=[messages], chat_template=template, add_generation_prompt=gen,
            bos_token=bos, eos_token=eos)
        return rendered[0]

    results = []
    for fn in (ours, theirs):
        try:
            results.append(("rendered", fn()))
        except Exception as e:  # jinja2.exceptions.TemplateError from raise_exception
            results.append(("error", str(e)))
    if results[0] != results[1]:
        raise SystemExit(f"renderers disagree on {messages!r}: {results}")
    return results[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    md = C.read_metadata(args.model, {"general.architecture", "tokenizer.chat_template", "tokenizer.ggml.tokens",
                                      "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"})
    tokens = md["tokenizer.ggml.tokens"]
    bos = tokens[md["tokenizer.ggml.bos_token_id"]]
    eos = tokens[md["tokenizer.ggml.eos_token_id"]]
    template = md.get("tokenizer.chat_template")
    if template is not None:
        source = "GGUF metadata tokenizer.chat_template"
    elif md["general.architecture"] == "gemma3":
        template = GEMMA3_CHAT_TEMPLATE
        source = ("NOT in the GGUF (this gemma-3-270m GGUF has no tokenizer.chat_template key). This is Google's "
                  "published Gemma 3 chat template (tokenizer_config.json of google/gemma-3-*-it; identical text in "
                  "transformers' Gemma 3 tests). Note: llama.cpp falls back to chatml when a GGUF has no template.")
    else:
        raise SystemExit("GGUF has no tokenizer.chat_template")

    cases = []
    for name, messages, gen in CASES:
        kind, value = render_both(template, messages, gen, bos, eos)
        cases.append({"name": name, "messages": messages, "add_generation_prompt": gen, kind: value})

    out = {
        "template_source": source,
        "rendering": ("jinja2 %s ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True), "
                      "raise_exception/strftime_now globals, HF tojson filter; variables: messages, "
                      "add_generation_prompt, bos_token, eos_token. Cross-checked against transformers' "
                      "render_jinja_template." % __import__("jinja2").__version__),
        "template": template,
        "bos_token": bos,
        "eos_token": eos,
        "cases": cases,
    }
    C.dump_json(out, args.out)
    print(f"wrote {args.out}: {len(cases)} cases, {sum('error' in c for c in cases)} errors")


if __name__ == "__main__":
    main()
