"""The exported graph's optional `logits_to_keep` input (transformers' name): when
positive, only the last that many positions of each row get logits (rill feeds 1 for a
prompt chunk, skipping the LM head of the others); left out, the graph is the usual
decoder-with-past that other runtimes drive."""
import numpy as np
import onnxruntime as ort
import pytest

from conftest import Decoder, rill_train

PROMPT = [[3, 9, 27, 81, 11, 33, 99], [5, 6, 7, 8, 9, 10, 11]]


@pytest.mark.parametrize("attention", ["hf", "gqa"])
def test_the_last_positions_logits_equal_the_full_ones(tmp_path, attention):
    folder = tmp_path / attention
    rill_train("init", "--out", folder, "--preset", "tiny", "--vocab-size", 300, "--attention", attention)
    dec = Decoder(folder)
    meta = dec.session.get_modelmeta().custom_metadata_map
    assert meta["rill_logits_to_keep"] == "true"
    assert [i.name for i in dec.session.get_overridable_initializers()] == ["logits_to_keep"]
    assert "logits_to_keep" not in [i.name for i in dec.session.get_inputs()], "an optional input"
    # A batch of two whole prompts, and (batch 1: ONNX Runtime's GroupQueryAttention takes
    # chunks after a cache one row at a time) a chunk of 4 after a cache of 3.
    _, past = dec.run([PROMPT[0][:3]], np.ones((1, 3)), [np.arange(3)], dec.empty_past(1))
    cases = [
        {"input_ids": np.array(PROMPT, np.int64), "attention_mask": np.ones((2, 7), np.int64),
         "position_ids": np.array([np.arange(7)] * 2, np.int64), **dec.empty_past(2)},
        {"input_ids": np.array([PROMPT[0][3:]], np.int64), "attention_mask": np.ones((1, 7), np.int64),
         "position_ids": np.array([np.arange(3, 7)], np.int64), **past},
    ]
    for feeds in cases:
        full = dec.session.run(["logits"], feeds)[0]
        batch, n = full.shape[:2]
        for keep, rows in [(0, n), (1, 1), (3, 3), (n, n), (n + 5, n)]:
            got = dec.session.run(["logits"], {**feeds, "logits_to_keep": np.array(keep, np.int64)})[0]
            assert got.shape == (batch, rows, 300), keep
            assert np.abs(got - full[:, n - rows:]).max() < 1e-5, keep
