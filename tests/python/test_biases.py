"""Checkpoints with projection biases: Llama's `attention_bias` / `mlp_bias` and Qwen2's
q, k, v biases. The exported graph (plain and fused attention) must give the trainer's
reference forward pass, in which the biases visibly matter."""
import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from conftest import Decoder, variant_folder, candle_logits, rill_train
from test_runtime_folders import RILL

PROMPT = [0, 5, 9, 250, 251, 17, 3, 3, 120]


def bias_names(folder):
    return sorted(k for k in load_file(folder / "model.safetensors") if k.endswith(".bias"))


def test_llama_attention_and_mlp_biases(biased_model, tmp_path):
    layers = json.loads((biased_model / "config.json").read_text())["num_hidden_layers"]
    assert len(bias_names(biased_model)) == 7 * layers
    ref = candle_logits(biased_model, [PROMPT])[0]
    dec = Decoder(biased_model)
    assert np.abs(dec.whole(PROMPT) - ref).max() < 1e-4
    assert np.abs(dec.stepwise(PROMPT) - ref).max() < 1e-4
    # The biases matter: without them the reference moves far more than the tolerance.
    zeroed = tmp_path / "zeroed"
    zeroed.mkdir()
    for f in biased_model.iterdir():
        (zeroed / f.name).write_bytes(f.read_bytes())
    tensors = load_file(zeroed / "model.safetensors")
    save_file({k: v * 0 if k.endswith(".bias") else v for k, v in tensors.items()},
              zeroed / "model.safetensors", metadata={"format": "pt"})
    assert np.abs(candle_logits(zeroed, [PROMPT])[0] - ref).max() > 1e-2


@pytest.mark.parametrize("attention", ["hf", "gqa"])
def test_qwen2_qkv_biases_in_both_attention_exports(tmp_path, attention):
    folder = variant_folder(tmp_path / "qwen2", "--model-type", "qwen2", preset="tiny", attention=attention)
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["model_type"] == "qwen2" and cfg["architectures"] == ["Qwen2ForCausalLM"]
    names = bias_names(folder)
    assert len(names) == 3 * cfg["num_hidden_layers"]
    assert all(".self_attn." in n and ".o_proj." not in n for n in names)
    ref = candle_logits(folder, [PROMPT])[0]
    got = Decoder(folder).whole(PROMPT)
    assert np.abs(got - ref).max() < 1e-4, np.abs(got - ref).max()


def test_rill_generates_the_same_text_on_both_exports_of_a_biased_model(tmp_path):
    import subprocess
    from conftest import DEFAULT_MODEL
    runs = []
    for attention in ["hf", "gqa"]:
        folder = variant_folder(tmp_path / attention, "--model-type", "qwen2", "--attention-bias",
                               "--tokenizer-from", DEFAULT_MODEL, preset="tiny", attention=attention)
        runs.append(subprocess.run([RILL, "generate", "--model", folder, "--prompt", "In the beginning",
                                    "--max-new-tokens", "12", "--greedy"], capture_output=True, text=True))
    assert runs[0].returncode == 0, runs[0].stderr
    assert runs[1].returncode == 0, runs[1].stderr
    assert runs[0].stdout == runs[1].stdout and runs[0].stdout.strip()
