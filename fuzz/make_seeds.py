"""Writes the seed corpora of rill's fuzz targets under fuzz/seeds/<target>/ from the test
fixtures: the default model's config files, small valid safetensors files (float and
quantized) for the configs the safetensors target checks against, a saved session state,
sampler parameters, token ids and call programs. Run by `make fuzz-seeds` (checked in)."""
import json
import pathlib
import struct
import subprocess
import sys

import numpy as np
from safetensors.numpy import save

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODEL = ROOT / "models/rill-tiny"
OUT = ROOT / "fuzz/seeds"
RILL = ROOT / "target/release/rill"


def write(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def tiny_tensors(quantized):
    rng = np.random.default_rng(0)
    h, ff, v, d, nh, kv = 8, 16, 16, 4, 2, 1
    shapes = {"model.embed_tokens.weight": (v, h), "model.norm.weight": (h,),
              "model.layers.0.input_layernorm.weight": (h,), "model.layers.0.post_attention_layernorm.weight": (h,),
              "model.layers.0.self_attn.q_proj.weight": (nh * d, h), "model.layers.0.self_attn.k_proj.weight": (kv * d, h),
              "model.layers.0.self_attn.v_proj.weight": (kv * d, h), "model.layers.0.self_attn.o_proj.weight": (h, nh * d),
              "model.layers.0.mlp.gate_proj.weight": (ff, h), "model.layers.0.mlp.up_proj.weight": (ff, h),
              "model.layers.0.mlp.down_proj.weight": (h, ff)}
    out = {}
    for name, shape in shapes.items():
        if quantized and len(shape) == 2:
            stem = name[: -len(".weight")]
            rows, cols = shape
            blocks = -(-cols // 16)
            out[stem + ".qweight"] = rng.integers(0, 255, (rows, blocks, 8), dtype=np.uint8)
            out[stem + ".scales"] = rng.random((rows, blocks), dtype=np.float32)
            out[stem + ".qzeros"] = rng.integers(0, 255, (rows, -(-blocks // 2)), dtype=np.uint8)
        else:
            out[name] = rng.standard_normal(shape).astype(np.float32)
    return out


def main():
    for f in ["config.json", "generation_config.json"]:
        write("config", f, (MODEL / f).read_text())
    cfg = json.loads((MODEL / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "matmul_nbits", "bits": 4, "group_size": 32, "sym": False,
                                  "accuracy_level": 4, "quantize_embeddings": True}
    write("config", "quantized.json", json.dumps(cfg))
    write("config", "generation_full.json", json.dumps({
        "max_new_tokens": 8, "do_sample": True, "temperature": 0.7, "top_k": 5, "top_p": 0.9, "min_p": 0.1,
        "repetition_penalty": 1.2, "no_repeat_ngram_size": 2, "stop_strings": ["\n", "END"], "num_beams": 2,
        "eos_token_id": [1, 2], "seed": 3, "samplers": [{"name": "top_k", "params": {"top_k": 3}}]}))

    write("safetensors", "float.safetensors", b"\x00" + save(tiny_tensors(False), {"format": "pt"}))
    write("safetensors", "quantized.safetensors", b"\x01" + save(tiny_tensors(True), {"format": "pt"}))

    state = OUT / "state" / "after_six_tokens.bin"
    state.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(RILL), "generate", "--model", str(MODEL), "--prompt", "In the", "--max-new-tokens", "3",
                    "--greedy", "--context", "64", "--save-state", str(state)], check=True, capture_output=True)

    params = {"temperature": '{"temperature": 0.5}', "top_k": '{"top_k": 3, "min_tokens_to_keep": 1}',
              "top_p": '{"top_p": 0.9}', "min_p": '{"min_p": 0.2}', "typical_p": '{"typical_p": 0.5}',
              "repetition_penalty": '{"penalty": 1.3}', "no_repeat_ngram": '{"n": 2}',
              "sequence_bias": '{"sequence_bias": [[[3], 2.0], [[4, 5], -1.0]]}',
              "bad_words": '{"bad_words_ids": [[7], [1, 2]]}',
              "penalties": '{"presence_penalty": 0.5, "frequency_penalty": 0.5}', "greedy": "{}", "dist": "{}"}
    logits = bytes(range(100, 140))
    tokens = bytes([1, 2, 3, 2, 1, 7, 7])
    for i, (name, p) in enumerate(params.items()):
        write("sampler_params", name, bytes([i, len(logits)]) + logits + bytes([len(tokens)]) + tokens + p.encode())
    write("sampler_params", "beam", bytes([12, 0, 0]) + b'{"num_beams": 3, "length_penalty": 1.0}')

    ids = subprocess.run([str(ROOT / ".venv/bin/python"), "-c",
                          "import sys; from tokenizers import Tokenizer; "
                          f"t = Tokenizer.from_file('{MODEL / 'tokenizer.json'}'); "
                          "sys.stdout.write(','.join(map(str, t.encode('In the beginning, café — 日本 🎉').ids)))"],
                         capture_output=True, text=True, check=True).stdout
    packed = b"".join(struct.pack("<H", int(i)) for i in ids.split(","))
    write("text_stream", "mixed", bytes([1, 3]) + b"the" + packed)
    write("text_stream", "emoji_split", bytes([0]) + bytes([0xF0, 0x00, 0x9F, 0x00, 0x8E, 0x00, 0x89, 0x00]))

    # c_calls programs: [op, pick, budget, args...]
    prog = bytes([0, 40, 0]) + bytes([3, 0, 2, 6]) + b"In the" + bytes([7, 0, 0]) + bytes([5, 0, 0, 3]) \
        + bytes([8, 0, 0, 1, 10, 0, 1, 0]) + bytes([6, 0, 0, 20]) + bytes([13, 0, 0])
    write("c_calls", "generate_save_load", prog)
    prog = bytes([0, 17, 0]) + bytes([12, 0, 0, 32]) + b'[{"role":"user","content":"Hi"}]' \
        + bytes([11, 0, 0]) + bytes([4, 0, 1, 4]) + b" and" + bytes([9, 0, 0, 8, 5]) + b"hello" \
        + bytes([10, 0, 0, 4, 5, 0, 6, 0, 3]) + bytes([14, 0, 0, 5]) + b"top_k" + bytes([12]) + b'{"top_k": 2}'
    write("c_calls", "chat_append_tokenize", prog)
    print(f"seeds written under {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
