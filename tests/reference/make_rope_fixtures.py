#!/usr/bin/env python3
"""Writes rope_scaling.json: Hugging Face transformers' own inverse rotary frequencies
(`modeling_rope_utils.ROPE_INIT_FUNCTIONS`), YaRN's and LongRoPE's attention factor and
LongRoPE's long frequencies for each
`rope_scaling` rill-train supports, with the config that asks for them. CI only reads the JSON (trainer/tests/rope_scaling.rs).

    python3 -m venv /tmp/hf && /tmp/hf/bin/pip install 'transformers==4.53.*' torch
    /tmp/hf/bin/python tests/reference/make_rope_fixtures.py tests/reference/fixtures
"""
import json
import pathlib
import sys

import transformers
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

BASE = dict(vocab_size=300, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024)

CASES = {
    "plain": dict(head_dim=64, rope_theta=10000.0, rope_scaling=None),
    "linear": dict(head_dim=64, rope_theta=10000.0, rope_scaling={"rope_type": "linear", "factor": 4.0}),
    # Llama 3.2 1B's numbers.
    "llama3_3.2": dict(head_dim=64, rope_theta=500000.0, rope_scaling={
        "rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192}),
    # A short original context: low, medium and high frequencies all present.
    "llama3_small": dict(head_dim=64, rope_theta=10000.0, rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64}),
    # YaRN as Qwen3's model card asks for it (the factor then comes from the two lengths).
    "yarn_qwen3": dict(head_dim=128, rope_theta=1000000.0, max_position_embeddings=131072, rope_scaling={
        "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}),
    "yarn_factor_only": dict(head_dim=64, rope_theta=10000.0, rope_scaling={"rope_type": "yarn", "factor": 2.0}),
    "yarn_mscale": dict(head_dim=64, rope_theta=10000.0, rope_scaling={
        "type": "yarn", "factor": 8.0, "mscale": 1.0, "mscale_all_dim": 0.5, "beta_fast": 16, "beta_slow": 2}),
    "yarn_attention_factor": dict(head_dim=32, rope_theta=500000.0, rope_scaling={
        "rope_type": "yarn", "factor": 3.0, "attention_factor": 1.3}),
    # Dynamic NTK: the plain frequencies within max_position_embeddings.
    "dynamic": dict(head_dim=64, rope_theta=10000.0, rope_scaling={"rope_type": "dynamic", "factor": 4.0}),
    # LongRoPE (Phi-3 configs): short factors, and long ones past the pretraining context.
    # Phi-3.5-mini's shape (head 96, 4,096 of 131,072 positions pretrained).
    "longrope_phi35": dict(model_type="phi3", hidden_size=384, rope_theta=10000.0, max_position_embeddings=131072,
                           original_max_position_embeddings=4096, rope_scaling={
                               "type": "longrope", "short_factor": [1.0 + 0.01 * i for i in range(48)],
                               "long_factor": [1.0 + 1.5 * i for i in range(48)]}),
    # Phi-4-mini's: three quarters of a 128-wide head rotate.
    "longrope_phi4_mini": dict(model_type="phi3", hidden_size=512, rope_theta=10000.0, max_position_embeddings=131072,
                               original_max_position_embeddings=4096, partial_rotary_factor=0.75, rope_scaling={
                                   "type": "longrope", "short_factor": [1.0 + 0.02 * i for i in range(48)],
                                   "long_factor": [1.5 + 1.1 * i for i in range(48)]}),
    # A Llama config with `factor` and no original context of its own.
    "longrope_factor": dict(head_dim=64, rope_theta=10000.0, rope_scaling={
        "rope_type": "longrope", "factor": 8.0, "short_factor": [1.0] * 32,
        "long_factor": [1.0 + 0.5 * i for i in range(32)]}),
}


def main(out_dir):
    cases = []
    for name, extra in CASES.items():
        config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], **BASE, **extra}
        config = {**BASE, **extra, "model_type": config["model_type"], "architectures": config["architectures"]}
        cls = transformers.Phi3Config if config["model_type"] == "phi3" else transformers.LlamaConfig
        hf = cls(**{k: v for k, v in config.items() if k != "model_type"})
        scaling = extra["rope_scaling"] or {}
        kind = scaling.get("rope_type", scaling.get("type", "default"))
        inv_freq, attention_factor = ROPE_INIT_FUNCTIONS[kind](hf, "cpu")
        case = {"name": name, "config": config, "inv_freq": [float(x) for x in inv_freq.float()],
                "attention_factor": float(attention_factor)}
        if kind == "longrope":
            # What transformers switches to once a sequence passes the pretraining context.
            original = getattr(hf, "original_max_position_embeddings", hf.max_position_embeddings)
            long_freq, _ = ROPE_INIT_FUNCTIONS[kind](hf, "cpu", seq_len=original + 1)
            case["long_inv_freq"] = [float(x) for x in long_freq.float()]
            case["original_max_position_embeddings"] = original
        cases.append(case)
    path = pathlib.Path(out_dir) / "rope_scaling.json"
    path.write_text(json.dumps({"transformers": transformers.__version__, "cases": cases}, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1])
