"""Gemma 3 text checkpoints (`model_type` `gemma3_text`): embeddings scaled by
sqrt(hidden_size), RMSNorm scales stored as offsets from one, norms after attention and
around the MLP, a tanh-approximated GELU, per-head query/key norms, scores scaled by
`query_pre_attn_scalar`, and sliding-window layers (the last `sliding_window` positions)
with their own rotary base. Both attention exports must give the trainer's reference
forward pass, in which each of these visibly matters (transformers itself is compared in
test_transformers.py)."""
import json
import shutil
import subprocess

import numpy as np
import pytest

from conftest import DEFAULT_MODEL, Decoder, candle_logits, variant_folder
from test_runtime_folders import RILL

# Longer than the 4-token window.
PROMPT = [0, 5, 9, 250, 251, 17, 3, 3, 120, 44, 45, 46]


def gemma3_folder(out, attention="hf", preset="tiny", *flags):
    return variant_folder(out, "--model-type", "gemma3_text", "--sliding-window", "4", *flags, preset=preset,
                          attention=attention, config={"query_pre_attn_scalar": 40})


@pytest.mark.parametrize("attention", ["hf", "gqa"])
def test_both_attention_exports_give_the_reference(tmp_path, attention):
    folder = gemma3_folder(tmp_path / "gemma3", attention)
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["architectures"] == ["Gemma3ForCausalLM"]
    assert cfg["layer_types"] == ["sliding_attention"] * 3 + ["full_attention"]
    ref = candle_logits(folder, [PROMPT])[0]
    dec = Decoder(folder)
    assert np.abs(dec.whole(PROMPT) - ref).max() < 1e-4
    assert np.abs(dec.stepwise(PROMPT) - ref).max() < 1e-4


@pytest.mark.parametrize("edit", [
    {"layer_types": ["full_attention"] * 2},  # no sliding window
    {"rope_local_base_freq": 1e6},            # the sliding layers' rotary base
    {"query_pre_attn_scalar": 8},             # the score scale (head_dim 8)
    {"sliding_window": 5},
])
def test_each_gemma_feature_matters(gemma3_model, tmp_path, edit):
    ref = candle_logits(gemma3_model, [PROMPT])[0]
    changed = tmp_path / "changed"
    shutil.copytree(gemma3_model, changed)
    cfg = json.loads((changed / "config.json").read_text())
    cfg.update(edit)
    (changed / "config.json").write_text(json.dumps(cfg))
    assert np.abs(candle_logits(changed, [PROMPT])[0] - ref).max() > 1e-3, edit


def test_the_small_test_model_matches_too(gemma3_model):
    ref = candle_logits(gemma3_model, [PROMPT])[0]
    dec = Decoder(gemma3_model)
    assert np.abs(dec.whole(PROMPT) - ref).max() < 1e-4
    assert np.abs(dec.stepwise(PROMPT) - ref).max() < 1e-4


def test_rill_generates_the_same_text_on_both_exports(tmp_path):
    runs = []
    for attention in ["hf", "gqa"]:
        folder = gemma3_folder(tmp_path / attention, attention, "tiny", "--tokenizer-from", DEFAULT_MODEL)
        runs.append(subprocess.run([RILL, "generate", "--model", folder, "--prompt", "In the beginning God",
                                    "--max-new-tokens", "16", "--greedy"], capture_output=True, text=True))
    assert runs[0].returncode == 0, runs[0].stderr
    assert runs[1].returncode == 0, runs[1].stderr
    assert runs[0].stdout == runs[1].stdout and runs[0].stdout.strip()
