"""Qwen3 checkpoints: each layer normalises its queries and keys per head (an RMSNorm over
`head_dim` with the scales `self_attn.q_norm` / `self_attn.k_norm`) before the rotary
positions. Both attention exports must give the trainer's reference forward pass, in which
the norm scales visibly matter (transformers itself is compared in test_transformers.py)."""
import json
import subprocess

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from conftest import DEFAULT_MODEL, Decoder, candle_logits, variant_folder
from test_runtime_folders import RILL

PROMPT = [0, 5, 9, 250, 251, 17, 3, 3, 120]


@pytest.mark.parametrize("attention", ["hf", "gqa"])
def test_query_key_norms_in_both_attention_exports(tmp_path, attention):
    folder = variant_folder(tmp_path / "qwen3", "--model-type", "qwen3", preset="tiny", attention=attention)
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["model_type"] == "qwen3" and cfg["architectures"] == ["Qwen3ForCausalLM"]
    tensors = load_file(folder / "model.safetensors")
    norms = sorted(n for n in tensors if n.endswith((".q_norm.weight", ".k_norm.weight")))
    assert len(norms) == 2 * cfg["num_hidden_layers"]
    assert all(tensors[n].shape == (cfg["head_dim"],) for n in norms)
    assert not any(n.endswith(".bias") for n in tensors)
    ref = candle_logits(folder, [PROMPT])[0]
    dec = Decoder(folder)
    assert np.abs(dec.whole(PROMPT) - ref).max() < 1e-4
    assert np.abs(dec.stepwise(PROMPT) - ref).max() < 1e-4


def test_the_norm_scales_matter(qwen3_model, tmp_path):
    ref = candle_logits(qwen3_model, [PROMPT])[0]
    ones = tmp_path / "ones"
    ones.mkdir()
    for f in qwen3_model.iterdir():
        (ones / f.name).write_bytes(f.read_bytes())
    tensors = load_file(ones / "model.safetensors")
    save_file({k: np.ones_like(v) if k.endswith("_norm.weight") and ".self_attn." in k else v
               for k, v in tensors.items()}, ones / "model.safetensors", metadata={"format": "pt"})
    assert np.abs(candle_logits(ones, [PROMPT])[0] - ref).max() > 1e-2


def test_f16_export_stays_close(tmp_path):
    folder = variant_folder(tmp_path / "qwen3", "--model-type", "qwen3", "--dtype", "f16")
    ref = candle_logits(folder, [PROMPT])[0]
    # f16 weights and activations: the reference runs on the same (rounded) weights in f32.
    assert np.abs(Decoder(folder).whole(PROMPT) - ref).max() < 2e-2


def test_rill_generates_the_same_text_on_both_exports(tmp_path):
    runs = []
    for attention in ["hf", "gqa"]:
        folder = variant_folder(tmp_path / attention, "--model-type", "qwen3", "--tokenizer-from", DEFAULT_MODEL,
                                preset="tiny", attention=attention)
        runs.append(subprocess.run([RILL, "generate", "--model", folder, "--prompt", "In the beginning",
                                    "--max-new-tokens", "12", "--greedy"], capture_output=True, text=True))
    assert runs[0].returncode == 0, runs[0].stderr
    assert runs[1].returncode == 0, runs[1].stderr
    assert runs[0].stdout == runs[1].stdout and runs[0].stdout.strip()
