"""Export parity: ONNX Runtime (the pinned wheel) running the exported model.onnx gives
the same logits as the trainer's candle forward pass, within 1e-4 for f32 weights."""
import json

import numpy as np
import onnx
import pytest

from conftest import Decoder, candle_logits

TOL = 1e-4
PROMPTS = [[0, 17, 42, 99, 250, 7, 7, 7, 3], [0, 1], [0] + list(range(30, 90, 3))]


def default_prompts(folder):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    texts = ["In the beginning God created", "The function returns a list of", "And the king said unto him, Go"]
    return [tok.encode(t).ids for t in texts]


@pytest.fixture(scope="session")
def gqa_model(tmp_path_factory):
    """A random model exported with fused GroupQueryAttention (its kernel needs a head_dim
    that is a multiple of 16, which the test preset's is not: a clear error)."""
    from conftest import rill_train
    out = tmp_path_factory.mktemp("models") / "gqa"
    refused = rill_train("init", "--out", out, "--preset", "test", "--vocab-size", 300, "--attention", "gqa",
                         check=False)
    assert refused.returncode != 0 and "multiple of 16" in refused.stderr, refused.stderr
    rill_train("init", "--out", out, "--force", "--preset", "tiny", "--vocab-size", 300, "--untied", "--seed", 7,
               "--attention", "gqa")
    return out


@pytest.fixture(params=["random", "untied", "default", "gqa"])
def folder_and_prompts(request, random_model, untied_model):
    if request.param == "random":
        return random_model, PROMPTS
    if request.param == "untied":
        return untied_model, PROMPTS
    if request.param == "gqa":
        return request.getfixturevalue("gqa_model"), PROMPTS
    folder = request.getfixturevalue("default_model")
    return folder, default_prompts(folder)


def test_graph_passes_onnx_full_check(folder_and_prompts):
    folder, _ = folder_and_prompts
    onnx.checker.check_model(str(folder / "model.onnx"), full_check=True)


def test_whole_prompt_matches_candle(folder_and_prompts):
    folder, prompts = folder_and_prompts
    dec = Decoder(folder)
    for prompt, ref in zip(prompts, candle_logits(folder, prompts)):
        got = dec.whole(prompt)
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() < TOL, np.abs(got - ref).max()


def test_step_by_step_with_past_matches_candle(folder_and_prompts):
    folder, prompts = folder_and_prompts
    dec = Decoder(folder)
    for prompt, ref in zip(prompts, candle_logits(folder, prompts)):
        got = dec.stepwise(prompt)
        err = np.abs(got - ref).max(axis=1)
        assert (err < TOL).all(), f"worst step {err.argmax()}: {err.max()}"


def test_batch_of_two_with_left_padding_matches_candle(folder_and_prompts):
    folder, prompts = folder_and_prompts
    if folder.name == "gqa":
        pytest.skip("GroupQueryAttention derives positions from the mask's row sums: it takes "
                    "unpadded rows only (rill batches equal-length beam rows; README, exported graph)")
    dec = Decoder(folder)
    a, b = prompts[0], prompts[2]
    short, long_ = sorted([a, b], key=len)
    n = len(long_)
    pad = n - len(short)
    ids = np.array([[2] * pad + short, long_])
    mask = np.array([[0] * pad + [1] * len(short), [1] * n])
    pos = np.clip(np.cumsum(mask, axis=1) - 1, 0, None)
    # Prefill all but the last token in one pass, then one decode step with the cache.
    logits, past = dec.run(ids[:, :-1], mask[:, :-1], pos[:, :-1], dec.empty_past(2))
    last, _ = dec.run(ids[:, -1:], mask, pos[:, -1:], past)
    full = np.concatenate([logits, last], axis=1)
    ref_short, ref_long = candle_logits(folder, [short, long_])
    assert np.abs(full[0, pad:] - ref_short).max() < TOL
    assert np.abs(full[1] - ref_long).max() < TOL


def test_weights_are_external_data_into_safetensors(folder_and_prompts):
    folder, _ = folder_and_prompts
    model = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    header_len = int.from_bytes((folder / "model.safetensors").read_bytes()[:8], "little")
    header = json.loads((folder / "model.safetensors").read_bytes()[8:8 + header_len])
    # Every initializer but the optional input's default is a weight in the safetensors.
    weights = [i for i in model.graph.initializer if i.name != "logits_to_keep"]
    assert len(weights) == len([k for k in header if k != "__metadata__"])
    for init in weights:
        assert init.data_location == onnx.TensorProto.EXTERNAL, init.name
        ext = {e.key: e.value for e in init.external_data}
        start, end = header[init.name]["data_offsets"]
        assert ext["location"] == "model.safetensors"
        assert int(ext["offset"]) == 8 + header_len + start
        assert int(ext["length"]) == end - start
        assert list(init.dims) == header[init.name]["shape"]


def test_no_op_reshapes_or_casts_a_weight(folder_and_prompts):
    """Weights are consumed in their stored layout: only Gather (embedding), Gemm with
    transB=1 (projections and the tied head) and Mul (norm scales) read them. The one
    exception, in the fused-attention export: a layer's q, k and v weights concatenated
    along the output axis (a constant ONNX Runtime folds at load) for one Gemm with
    transB=1 whose packed result GroupQueryAttention reads."""
    folder, _ = folder_and_prompts
    model = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    weights = {i.name for i in model.graph.initializer} - {"logits_to_keep"}
    transposed = lambda node: any(a.name == "transB" and a.i == 1 for a in node.attribute)  # noqa: E731
    for node in model.graph.node:
        for pos, name in enumerate(node.input):
            if name not in weights:
                continue
            if node.op_type == "Gemm":
                assert pos == 1 and transposed(node), node.name
            elif node.op_type == "Concat":
                assert [n.split(".")[-2] for n in node.input] == ["q_proj", "k_proj", "v_proj"], node.input
                assert all(a.i == 0 for a in node.attribute if a.name == "axis"), node.name
                users = [n for n in model.graph.node if node.output[0] in n.input]
                assert [(u.op_type, list(u.input).index(node.output[0])) for u in users] == [("Gemm", 1)], users
                assert transposed(users[0]), users[0].name
            else:
                assert (node.op_type, pos) in {("Gather", 0), ("Mul", 1)}, (node.op_type, name)
