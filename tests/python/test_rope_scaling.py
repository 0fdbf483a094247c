"""Folders whose config.json scales the rotary positions (`rope_scaling`: Llama 3.1's
`llama3`, `linear`) export to graphs that give the trainer's reference forward pass, whose
frequencies trainer/tests/rope_scaling.rs checks against transformers'. Positions run
past the scaled model's original context, where the scaling changes the logits."""
import json

import numpy as np
import pytest

from conftest import Decoder, candle_logits, rill_train

LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 16}
PROMPT = [0] + [(i * 37) % 290 + 5 for i in range(47)]


def scaled_folder(out, scaling, attention):
    rill_train("init", "--out", out, "--preset", "tiny", "--vocab-size", 300, "--seed", 13,
               "--attention", attention)
    cfg = json.loads((out / "config.json").read_text())
    cfg["rope_scaling"] = scaling
    (out / "config.json").write_text(json.dumps(cfg))
    rill_train("export", "--from", out, "--attention", attention)
    return out


@pytest.mark.parametrize("attention", ["hf", "gqa"])
@pytest.mark.parametrize("scaling", [LLAMA3, {"type": "linear", "factor": 4.0}], ids=["llama3", "linear"])
def test_scaled_rotary_exports_match_the_reference(tmp_path, scaling, attention):
    folder = scaled_folder(tmp_path / "scaled", scaling, attention)
    ref = candle_logits(folder, [PROMPT])[0]
    dec = Decoder(folder)
    assert np.abs(dec.whole(PROMPT) - ref).max() < 1e-4
    # The scaling matters: the unscaled model gives other logits.
    plain = scaled_folder(tmp_path / "plain", None, attention)
    assert np.abs(candle_logits(plain, [PROMPT])[0] - ref).max() > 1e-3


def test_unsupported_scaling_is_refused_on_export(tmp_path):
    out = tmp_path / "mrope"
    rill_train("init", "--out", out, "--preset", "test", "--vocab-size", 300)
    cfg = json.loads((out / "config.json").read_text())
    cfg["rope_scaling"] = {"rope_type": "mrope", "mrope_section": [2, 1, 1]}
    (out / "config.json").write_text(json.dumps(cfg))
    proc = rill_train("export", "--from", out, check=False)
    assert proc.returncode != 0 and "`mrope` is not supported" in proc.stderr, proc.stderr
