#!/usr/bin/env python3
"""Writes the seeds of the engine's fuzz targets into fuzz/seeds/ (deterministic; run from
anywhere: `python3 fuzz/make_seeds.py`).

  gguf_header/   tiny GGUF files that `Engine::load` accepts (llama with llama.cpp's Q/K
                 permutation, qwen2 with q/k/v biases and an untied head, gpt2), and lone
                 tensors of every other ggml type the engine dequantises (Q4_1, Q4_K, Q6_K).
  hf_config/     a little-endian u32 length, config.json, then model.safetensors: tiny llama
                 (F32), qwen2 (BF16, untied head) and gpt2 (F16, Conv1D layout) directories.
  chat_template/ a template, a NUL byte, then the messages as JSON: the ChatML fallback,
                 SmolLM2's template (the default model's), a Llama-2-style one, and hostile
                 templates that the engine must refuse quickly (huge ranges, runaway recursion,
                 oversized string repeats, deep nesting).

Inputs that crash, hang or exhaust memory today are not seeds (every `make fuzz` run would
stop on them at once): they go to fuzz/findings/<target>/, described in fuzz/findings/README.md;
fixed ones are seeds.
"""

import json
import random
import struct
from pathlib import Path

SEEDS = Path(__file__).resolve().parent / "seeds"
FINDINGS = Path(__file__).resolve().parent / "findings"

# ------------------------------------------------------------------ tensors


def f16(x):
    return struct.pack("<e", x)


def bf16(x):
    return struct.pack("<f", x)[2:]


def encode(ty, values):
    """Bytes of `values` in ggml type `ty` (F32, F16, BF16, Q8_0, Q4_0)."""
    if ty == "F32":
        return b"".join(struct.pack("<f", v) for v in values)
    if ty == "F16":
        return b"".join(f16(v) for v in values)
    if ty == "BF16":
        return b"".join(bf16(v) for v in values)
    out = b""
    for i in range(0, len(values), 32):
        block = values[i : i + 32]
        amax = max(abs(v) for v in block)
        if ty == "Q8_0":
            d = amax / 127 or 1.0
            out += f16(d) + bytes(int(round(v / d)) & 0xFF for v in block)
        elif ty == "Q4_0":
            d = amax / 8 or 1.0
            q = [min(15, max(0, int(v / d + 8.5))) for v in block]
            out += f16(d) + bytes(q[j] | (q[j + 16] << 4) for j in range(16))
        else:
            raise ValueError(ty)
    return out


TYPE_IDS = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 8, "Q4_K": 12, "Q6_K": 14, "BF16": 30}


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


class Weights:
    """Random weights, deterministic per seed; norms around 1."""

    def __init__(self, seed):
        self.rng = random.Random(seed)

    def __call__(self, name, shape):
        scale = 0.3
        base = 1.0 if "norm" in name or "ln_" in name else 0.0
        return [base + self.rng.uniform(-scale, scale) for _ in range(numel(shape))]


# ------------------------------------------------------------------ GGUF


def gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


class U64(int):
    """A metadata integer written as u64 (plain ints are u32)."""


def gguf_value(v):
    """(type id, bytes) of a metadata value: str, bool, int (u32), U64, float (f32), or a
    list of str / of int (i32)."""
    if isinstance(v, U64):
        return 10, struct.pack("<Q", v)
    if isinstance(v, bool):
        return 7, struct.pack("<B", v)
    if isinstance(v, str):
        return 8, gguf_str(v)
    if isinstance(v, int):
        return 4, struct.pack("<I", v)
    if isinstance(v, float):
        return 6, struct.pack("<f", v)
    if isinstance(v, list):
        if all(isinstance(x, str) for x in v):
            return 9, struct.pack("<IQ", 8, len(v)) + b"".join(gguf_str(x) for x in v)
        return 9, struct.pack("<IQ", 5, len(v)) + b"".join(struct.pack("<i", x) for x in v)
    raise TypeError(v)


def gguf(metadata, tensors, alignment=32):
    """A GGUF v3 file: `metadata` a dict, `tensors` (name, shape in PyTorch order, type, bytes)."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    for k, v in metadata.items():
        ty, b = gguf_value(v)
        out += gguf_str(k) + struct.pack("<I", ty) + b
    data = b""
    for name, shape, ty, b in tensors:
        data += b"\0" * (-len(data) % alignment)
        out += gguf_str(name) + struct.pack("<I", len(shape))
        out += b"".join(struct.pack("<Q", d) for d in reversed(shape))
        out += struct.pack("<IQ", TYPE_IDS[ty], len(data))
        data += b
    out += b"\0" * (-len(out) % alignment)
    return out + data


# A byte-level BPE vocabulary small enough to read in a hex dump ("Ġ" is the space byte).
TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "ab", "\u0120", "\u0120a"]
TOKEN_TYPES = [3, 3, 3, 1, 1, 1, 1, 1]
MERGES = ["a b", "\u0120 a"]

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant"
    "\\n' }}{% endif %}"
)
SMOLLM2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|im_start|>assistant\\n' }}{% endif %}"
)

HIDDEN, HEADS, HEAD_DIM, INTER, CTX = 8, 2, 4, 16, 16


def tokenizer_metadata(pre, template):
    return {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": pre,
        "tokenizer.ggml.tokens": TOKENS,
        "tokenizer.ggml.token_type": TOKEN_TYPES,
        "tokenizer.ggml.merges": MERGES,
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.padding_token_id": 2,
        "tokenizer.chat_template": template,
    }


def llama_gguf(arch, quant, seed, **overrides):
    """`llama` (1 KV head, tied head) or `qwen2` (biases, untied head), 1 layer; `overrides`
    replace metadata (`head_count` for `{arch}.attention.head_count`, and so on)."""
    w = Weights(seed)
    kv = 1 if arch == "llama" else 2
    a = arch
    meta = {
        "general.architecture": a,
        "general.name": f"mini-{a}",
        f"{a}.block_count": 1,
        f"{a}.context_length": CTX,
        f"{a}.embedding_length": HIDDEN,
        f"{a}.feed_forward_length": INTER,
        f"{a}.attention.head_count": HEADS,
        f"{a}.attention.head_count_kv": kv,
        f"{a}.rope.freq_base": 10000.0,
        f"{a}.attention.layer_norm_rms_epsilon": 1e-5,
    }
    meta.update(tokenizer_metadata("smollm" if a == "llama" else "qwen2", SMOLLM2))
    meta.update({f"{a}.attention.{k}": v for k, v in overrides.items()})
    shapes = [("token_embd.weight", [len(TOKENS), HIDDEN]), ("blk.0.attn_norm.weight", [HIDDEN])]
    for part, rows in [("attn_q", HEADS * HEAD_DIM), ("attn_k", kv * HEAD_DIM), ("attn_v", kv * HEAD_DIM)]:
        shapes.append((f"blk.0.{part}.weight", [rows, HIDDEN]))
        if a == "qwen2":
            shapes.append((f"blk.0.{part}.bias", [rows]))
    shapes += [
        ("blk.0.attn_output.weight", [HIDDEN, HEADS * HEAD_DIM]),
        ("blk.0.ffn_norm.weight", [HIDDEN]),
        ("blk.0.ffn_gate.weight", [INTER, HIDDEN]),
        ("blk.0.ffn_up.weight", [INTER, HIDDEN]),
        ("blk.0.ffn_down.weight", [HIDDEN, INTER]),
        ("output_norm.weight", [HIDDEN]),
    ]
    if a == "qwen2":
        shapes.append(("output.weight", [len(TOKENS), HIDDEN]))
    tensors = []
    for name, shape in shapes:
        ty = quant if len(shape) == 2 else "F32"
        tensors.append((name, shape, ty, encode(ty, w(name, shape))))
    return gguf(meta, tensors)


def gpt2_gguf(seed):
    w = Weights(seed)
    meta = {
        "general.architecture": "gpt2",
        "general.name": "mini-gpt2",
        "gpt2.block_count": 1,
        "gpt2.context_length": CTX,
        "gpt2.embedding_length": HIDDEN,
        "gpt2.feed_forward_length": INTER,
        "gpt2.attention.head_count": HEADS,
        "gpt2.attention.layer_norm_epsilon": 1e-5,
    }
    meta.update(tokenizer_metadata("gpt2", CHATML))
    shapes = [
        ("token_embd.weight", [len(TOKENS), HIDDEN]),
        ("position_embd.weight", [CTX, HIDDEN]),
    ]
    for part, out_, in_ in [
        ("attn_qkv", 3 * HIDDEN, HIDDEN),
        ("attn_output", HIDDEN, HIDDEN),
        ("ffn_up", INTER, HIDDEN),
        ("ffn_down", HIDDEN, INTER),
    ]:
        shapes += [(f"blk.0.{part}.weight", [out_, in_]), (f"blk.0.{part}.bias", [out_])]
    for norm in ["blk.0.attn_norm", "blk.0.ffn_norm", "output_norm"]:
        shapes += [(f"{norm}.weight", [HIDDEN]), (f"{norm}.bias", [HIDDEN])]
    tensors = []
    for name, shape in shapes:
        ty = "F16" if len(shape) == 2 else "BF16"
        tensors.append((name, shape, ty, encode(ty, w(name, shape))))
    return gguf(meta, tensors)


def lone_tensor_gguf(ty, seed):
    """One tensor of a block type the writer above does not quantise (random blocks with
    small scales), and an alignment other than the default."""
    rng = random.Random(seed)
    elems, size = {"Q4_1": (32, 20), "Q4_K": (256, 144), "Q6_K": (256, 210)}[ty]
    block = bytearray(rng.randrange(256) for _ in range(size))
    if ty == "Q6_K":
        block[-2:] = f16(0.01)  # d is last
    else:
        block[0:4] = f16(0.01) + f16(0.001)  # d, then m / dmin
    meta = {"general.architecture": "llama", "general.alignment": 64}
    return gguf(meta, [(f"t.{ty}", [2, elems], ty, bytes(block) * 2)], alignment=64)


# ------------------------------------------------------------------ Hugging Face


def safetensors(tensors):
    """`tensors`: (name, shape, dtype, bytes), laid out in that order."""
    header, data = {"__metadata__": {"format": "pt"}}, b""
    for name, shape, dtype, b in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(b)]}
        data += b
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


HF_VOCAB = 4  # the fixed tokenizer.json in fuzz_targets/hf_config.rs


def hf_input(config, tensors):
    c = json.dumps(config, separators=(",", ":")).encode()
    return struct.pack("<I", len(c)) + c + safetensors(tensors)


def hf_llama(model_type, dtype, seed, **overrides):
    """`overrides` replace keys of config.json."""
    w = Weights(seed)
    qwen = model_type == "qwen2"
    kv = 2 if qwen else 1
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": model_type,
        "vocab_size": HF_VOCAB,
        "hidden_size": HIDDEN,
        "intermediate_size": INTER,
        "num_hidden_layers": 1,
        "num_attention_heads": HEADS,
        "num_key_value_heads": kv,
        "head_dim": HEAD_DIM,
        "rope_theta": 10000.0,
        "rms_norm_eps": 1e-5,
        "max_position_embeddings": CTX,
        "tie_word_embeddings": not qwen,
        "bos_token_id": 0,
        "eos_token_id": [0, 3],
    }
    config.update(overrides)
    p = "model.layers.0"
    shapes = [("model.embed_tokens.weight", [HF_VOCAB, HIDDEN]), (f"{p}.input_layernorm.weight", [HIDDEN])]
    for proj, rows in [("q_proj", HEADS * HEAD_DIM), ("k_proj", kv * HEAD_DIM), ("v_proj", kv * HEAD_DIM)]:
        shapes.append((f"{p}.self_attn.{proj}.weight", [rows, HIDDEN]))
        if qwen:
            shapes.append((f"{p}.self_attn.{proj}.bias", [rows]))
    shapes += [
        (f"{p}.self_attn.o_proj.weight", [HIDDEN, HEADS * HEAD_DIM]),
        (f"{p}.post_attention_layernorm.weight", [HIDDEN]),
        (f"{p}.mlp.gate_proj.weight", [INTER, HIDDEN]),
        (f"{p}.mlp.up_proj.weight", [INTER, HIDDEN]),
        (f"{p}.mlp.down_proj.weight", [HIDDEN, INTER]),
        ("model.norm.weight", [HIDDEN]),
    ]
    if qwen:
        shapes.append(("lm_head.weight", [HF_VOCAB, HIDDEN]))
    return hf_input(config, [(n, s, dtype, encode(dtype, w(n, s))) for n, s in shapes])


def hf_gpt2(seed):
    w = Weights(seed)
    config = {
        "model_type": "gpt2",
        "vocab_size": HF_VOCAB,
        "n_embd": HIDDEN,
        "n_layer": 1,
        "n_head": HEADS,
        "n_positions": CTX,
        "n_inner": INTER,
        "layer_norm_epsilon": 1e-5,
        "bos_token_id": 0,
        "eos_token_id": 0,
    }
    t = "transformer"
    shapes = [(f"{t}.wte.weight", [HF_VOCAB, HIDDEN]), (f"{t}.wpe.weight", [CTX, HIDDEN])]
    # Conv1D weights are [in, out].
    for part, in_, out_ in [
        ("attn.c_attn", HIDDEN, 3 * HIDDEN),
        ("attn.c_proj", HIDDEN, HIDDEN),
        ("mlp.c_fc", HIDDEN, INTER),
        ("mlp.c_proj", INTER, HIDDEN),
    ]:
        shapes += [(f"{t}.h.0.{part}.weight", [in_, out_]), (f"{t}.h.0.{part}.bias", [out_])]
    for norm in ["h.0.ln_1", "h.0.ln_2", "ln_f"]:
        shapes += [(f"{t}.{norm}.weight", [HIDDEN]), (f"{t}.{norm}.bias", [HIDDEN])]
    return hf_input(config, [(n, s, "F16", encode("F16", w(n, s))) for n, s in shapes])


# ------------------------------------------------------------------ chat templates

LLAMA2 = (
    "{{ bos_token }}\n{% for m in messages %}\n  {% if m['role'] == 'user' %}\n[INST] "
    "{{ m['content'].strip() }} [/INST]\n  {% elif m['role'] == 'assistant' %}\n"
    "{{ m['content'] | trim }}{{ eos_token }}\n  {% else %}\n"
    "{{ raise_exception('bad role ' + m['role']) }}\n  {% endif %}\n{% endfor %}"
)

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "  Hi there  "},
    {"role": "assistant", "content": "Hello! "},
    {"role": "user", "content": "What is 2+2?"},
]

# Templates that must fail quickly: each hits one of minijinja's limits.
HOSTILE = {
    # range() refuses more than 100,000 items.
    "range_huge": "{% for i in range(999999999) %}x{% endfor %}",
    # Runaway recursion stops at minijinja's recursion limit (500).
    "macro_recursion": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "loop_recursion": "{% for x in [[1]] recursive %}{{ loop([x]) }}{% endfor %}",
    # String repeats over 100 MB are refused.
    "repeat_huge": "{{ 'ab' * 999999999 }}",
    # The parser refuses nesting deeper than 150.
    "deep_nesting": "{{ " + "(" * 400 + "1" + ")" * 400 + " }}",
    "deep_blocks": "{% if true %}" * 300 + "x" + "{% endif %}" * 300,
    # Errors raised by the template itself, and by the loop over messages.
    "raise": "{% for m in messages %}{{ raise_exception('no ' + m.role) }}{% endfor %}",
    # Python methods (pycompat) and filters over the messages.
    "pycompat": (
        "{% for m in messages %}{{ m.content.strip().upper().replace('A', 'b').split(' ')|join('-') }}"
        "{{ m.role.startswith('u') }}{{ m.content.title().count('H') }}{{ '{}-{}'.format(m.role, loop.index) }}"
        "{% endfor %}"
        "{{ messages|map(attribute='content')|list|tojson }}"
    ),
    "namespace_loop": (
        "{% set ns = namespace(n=0) %}{% for m in messages if m.role != 'system' %}"
        "{% if loop.index > 2 %}{% break %}{% endif %}{% set ns.n = ns.n + m.content|length %}"
        "{{ loop.previtem.role if loop.previtem }}{% endfor %}{{ ns.n }}"
    ),
}


def chat(template, messages):
    return template.encode() + b"\0" + json.dumps(messages, separators=(",", ":")).encode()


# ------------------------------------------------------------------ findings

HELLO = [{"role": "user", "content": "Hello!"}]


# What still crashes, hangs or exhausts memory (see findings/README.md); the rest of
# findings() is fixed and goes into seeds/.
OPEN_FINDINGS = {
    ("chat_template", f"{name}.txt")
    for name in [
        "concat_doubling",
        "join_filter_blowup",
        "pycompat_join_blowup",
        "pycompat_replace_blowup",
        "list_repeat_alloc",
        "list_repeat_len_overflow",
    ]
}


def findings():
    """Inputs that crashed, hung or exhausted memory when found."""
    yield "gguf_header", "heads_x_head_dim_overflow.gguf", llama_gguf(
        "llama", "F32", 1, head_count=U64(2**62), head_count_kv=1, key_length=4
    )
    yield "gguf_header", "unpermute_2n_overflow.gguf", llama_gguf(
        "llama", "F32", 1, head_count=U64(2**62), head_count_kv=1, key_length=2
    )
    yield "gguf_header", "unpermute_rem_zero.gguf", llama_gguf(
        "llama", "F32", 1, head_count=U64(2**63), head_count_kv=1, key_length=2
    )
    gpt2 = {"model_type": "gpt2", "vocab_size": HF_VOCAB, "n_embd": 2**62, "n_layer": 1, "n_head": 1}
    yield "hf_config", "gpt2_n_inner_default_overflow.bin", hf_input(gpt2, [])
    yield "hf_config", "llama_heads_x_head_dim_overflow.bin", hf_llama(
        "llama", "F32", 5, num_attention_heads=2**62, num_key_value_heads=1, head_dim=4
    )
    templates = {
        # CPU: 10^10 iterations (each range() is within its 100,000 limit).
        "nested_loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        # Output: 100,000 x 100 MB.
        "output_blowup": "{% for i in range(100000) %}{{ 'a' * 100000000 }}{% endfor %}",
        # Memory within a few instructions: no fuel limit would stop these.
        "concat_doubling": (
            "{% set ns = namespace(s='a') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
            "{% endfor %}{{ ns.s|length }}"
        ),
        "join_filter_blowup": "{{ (['a' * 100000000] * 100)|join }}",
        "pycompat_join_blowup": "{{ ''.join(['a' * 100000000] * 100) }}",
        "pycompat_replace_blowup": "{{ ('a' * 100000000).replace('a', 'aaaaaaaaaa').replace('a', 'aaaaaaaaaa') }}",
        # `|list` preallocates the 2*10^12 items a repeated list claims: a 48 TB allocation.
        "list_repeat_alloc": "{{ ([1, 2] * 1000000000000)|list|length }}",
        # `len * n` in minijinja's repeat_iterable overflows (a panic with overflow checks).
        "list_repeat_len_overflow": "{{ ([1, 2, 3] * 9223372036854775807)|length }}",
    }
    for name, template in templates.items():
        yield "chat_template", f"{name}.txt", chat(template, HELLO)


# ------------------------------------------------------------------ write


def write(target, name, data, root=SEEDS):
    d = root / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)
    assert len(data) < 200_000, (target, name, len(data))


def main():
    write("gguf_header", "mini_llama_f32.gguf", llama_gguf("llama", "F32", 1))
    write("gguf_header", "mini_llama_q4_0.gguf", llama_gguf("llama", "Q4_0", 2))
    write("gguf_header", "mini_qwen2_q8_0.gguf", llama_gguf("qwen2", "Q8_0", 3))
    write("gguf_header", "mini_gpt2_f16.gguf", gpt2_gguf(4))
    for i, ty in enumerate(["Q4_1", "Q4_K", "Q6_K"]):
        write("gguf_header", f"lone_{ty.lower()}.gguf", lone_tensor_gguf(ty, 10 + i))

    write("hf_config", "mini_llama_f32.bin", hf_llama("llama", "F32", 5))
    write("hf_config", "mini_qwen2_bf16.bin", hf_llama("qwen2", "BF16", 6))
    write("hf_config", "mini_gpt2_f16.bin", hf_gpt2(7))

    write("chat_template", "chatml.txt", chat(CHATML, CONVERSATION))
    write("chat_template", "smollm2.txt", chat(SMOLLM2, CONVERSATION[1:]))
    write("chat_template", "llama2.txt", chat(LLAMA2, CONVERSATION[1:3]))
    for name, template in HOSTILE.items():
        write("chat_template", f"hostile_{name}.txt", chat(template, CONVERSATION))

    for target, name, data in findings():
        # Fixed findings stay as regression seeds (and engine/tests/hostile_files.rs).
        root = FINDINGS if (target, name) in OPEN_FINDINGS else SEEDS
        write(target, name, data, root=root)


if __name__ == "__main__":
    main()
