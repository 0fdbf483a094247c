"""Each architecture `rill-train export --from` reads, against transformers itself: the
fixture (tests/reference/make_architecture_fixtures.py) holds, per architecture, the
config.json transformers saved, its tensor names and shapes, and the logits transformers
computed for weights given by a formula. Here the same checkpoint is written without
torch, imported, and both attention exports (and the trainer's reference forward) must
give those logits."""
import importlib.util
import json
import pathlib

import numpy as np
import pytest
from safetensors.numpy import save_file

from conftest import Decoder, candle_logits, rill_train

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURE = json.loads((ROOT / "tests/reference/fixtures/architectures.json").read_text())


def generator():
    spec = importlib.util.spec_from_file_location(
        "make_architecture_fixtures", ROOT / "tests/reference/make_architecture_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def checkpoint(tmp_path, name):
    """The fixture's checkpoint of `name` as transformers would save it (f32)."""
    case = FIXTURE["models"][name]
    folder = tmp_path / f"{name}-hf"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(case["config"]))
    weights = generator().formula_weights(case["tensors"], gemma=name.startswith("gemma"))
    assert [list(w.shape) for w in weights.values()] == [s for _, s in case["tensors"]]
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder, np.array(case["logits"], dtype=np.float64)


def incremental(name, how, whole):
    """transformers' logits for IDS fed token by token or in chunks of 5 through its cache:
    recorded where they differ from one pass (LongRoPE), else the whole pass's."""
    key = {"stepwise": "stepwise_logits", "chunks of 5": "chunked_logits"}[how]
    rows = FIXTURE["models"][name].get(key)
    return whole if rows is None else np.array(rows, dtype=np.float64)


def dead_nodes(folder):
    """Nodes of the folder's graph none of whose outputs is read (by a node or as a graph
    output)."""
    import onnx
    graph = onnx.load(str(folder / "model.onnx"), load_external_data=False).graph

    def reads(g):
        """Names the nodes of `g` and of its subgraphs (If branches) read, and its outputs."""
        names = {o.name for o in g.output}
        for node in g.node:
            names |= set(node.input)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    names |= reads(attr.g)
        return names
    read = reads(graph)
    return [node.name for node in graph.node if not any(o in read for o in node.output)]


@pytest.mark.parametrize("name", sorted(FIXTURE["models"]))
def test_imported_checkpoints_give_transformers_logits(tmp_path, name):
    hf, expected = checkpoint(tmp_path, name)
    ids = FIXTURE["ids"]
    assert np.abs(candle_logits(hf, [ids])[0] - expected).max() < 1e-4, "the trainer's reference forward"
    for attention in ["hf", "gqa"]:
        out = tmp_path / attention
        rill_train("export", "--from", hf, "--out", out, "--dtype", "f32", "--attention", attention)
        assert not dead_nodes(out), f"{name}, {attention} export computes what nothing reads"
        dec = Decoder(out)
        # Whole, token by token, and in chunks of 5 after a cache (a chunk that spans a
        # sliding window's edge).
        for how, got in [("whole", dec.whole(ids)), ("stepwise", dec.stepwise(ids)),
                         ("chunks of 5", dec.chunked(ids, 5))]:
            want = expected if how == "whole" else incremental(name, how, expected)
            err = np.abs(got - want).max()
            assert err < 1e-4, f"{name}, {attention} export, {how}: {err:.2e}"



@pytest.mark.parametrize("model_type", ["phi3", "smollm3", "gemma2", "granite", "olmo2"])
def test_rill_generates_the_same_text_on_both_exports(tmp_path, model_type):
    """The runtime opens these folders (Phi-3's fused weights pass its tensor check) and
    decodes them alike through the plain and the fused graph."""
    import subprocess
    from conftest import DEFAULT_MODEL
    from test_runtime_folders import RILL
    runs = []
    for attention in ["hf", "gqa"]:
        folder = tmp_path / attention
        rill_train("init", "--out", folder, "--preset", "tiny", "--model-type", model_type, "--tokenizer-from",
                   DEFAULT_MODEL, "--attention", attention, "--seed", 5)
        runs.append(subprocess.run([RILL, "generate", "--model", folder, "--prompt", "In the beginning God",
                                    "--max-new-tokens", "16", "--greedy"], capture_output=True, text=True))
    assert runs[0].returncode == 0, runs[0].stderr
    assert runs[1].returncode == 0, runs[1].stderr
    assert runs[0].stdout == runs[1].stdout and runs[0].stdout.strip()


def test_rill_decodes_longrope_alike_on_both_exports(tmp_path):
    """A Phi-4-mini-like folder (LongRoPE on half of each head) whose generation crosses
    its pretraining context: rill's prompt chunk and steps switch to the long factors at
    the same position through both graphs."""
    import subprocess
    from conftest import DEFAULT_MODEL
    from test_runtime_folders import RILL
    base = tmp_path / "base"
    rill_train("init", "--out", base, "--preset", "tiny", "--model-type", "phi3", "--tokenizer-from",
               DEFAULT_MODEL, "--seed", 5)
    cfg = json.loads((base / "config.json").read_text())
    half = cfg["head_dim"] // 4
    cfg.update(partial_rotary_factor=0.5, original_max_position_embeddings=16,
               rope_scaling={"type": "longrope", "short_factor": [1.0 + 0.02 * i for i in range(half)],
                             "long_factor": [1.0 + 0.8 * i for i in range(half)]})
    (base / "config.json").write_text(json.dumps(cfg))
    runs = []
    for attention in ["hf", "gqa"]:
        out = tmp_path / attention
        rill_train("export", "--from", base, "--out", out, "--attention", attention, "--dtype", "f32")
        for f in base.glob("tokenizer*"):
            (out / f.name).write_bytes(f.read_bytes())
        runs.append(subprocess.run([RILL, "generate", "--model", out, "--prompt", "In the beginning God",
                                    "--max-new-tokens", "30", "--greedy"], capture_output=True, text=True))
        assert runs[-1].returncode == 0, runs[-1].stderr
    assert runs[0].stdout == runs[1].stdout and runs[0].stdout.strip()
    # The long factors take over past 16 positions: the first 16 positions' logits
    # differ between a pass over those 16 tokens and one over 20.
    ids = list(range(5, 25))
    for attention in ["hf", "gqa"]:
        dec = Decoder(tmp_path / attention)
        short, whole = dec.whole(ids[:16]), dec.whole(ids)
        assert np.abs(short - whole[:16]).max() > 1e-3, f"{attention}: the long factors were not used"
    # GroupQueryAttention rotates part of a head in multiples of 16 dimensions only.
    cfg.update(partial_rotary_factor=0.125, rope_scaling={**cfg["rope_scaling"], "short_factor": [1.0] * 4,
                                                          "long_factor": [2.0] * 4})
    (base / "config.json").write_text(json.dumps(cfg))
    refused = rill_train("export", "--from", base, "--out", tmp_path / "narrow", "--attention", "gqa", check=False)
    assert refused.returncode != 0 and "multiples of 16 dimensions" in refused.stderr, refused.stderr
    assert not (tmp_path / "narrow").exists(), "a refused export leaves no folder behind"
    rill_train("export", "--from", base, "--out", tmp_path / "narrow", "--attention", "hf")


def test_a_multimodal_gemma3_imports_as_its_language_model(tmp_path):
    """A multimodal Gemma 3 folder (`gemma3`: a sparse `text_config`, tensors under
    `language_model.` beside a vision tower) converts into a text-only `gemma3_text`
    folder; exporting it in place is refused with the command that works."""
    from safetensors import safe_open
    hf, _ = checkpoint(tmp_path, "gemma3")
    refused = rill_train("export", "--from", hf, check=False)
    assert refused.returncode != 0 and "--out" in refused.stderr and "multimodal" in refused.stderr, refused.stderr
    assert not (hf / "model.onnx").exists()
    out = tmp_path / "text"
    rill_train("export", "--from", hf, "--out", out, "--dtype", "f32")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "gemma3_text" and cfg["architectures"] == ["Gemma3ForCausalLM"]
    # Gemma3TextConfig's defaults filled in where the published config leaves them out.
    assert (cfg["rope_theta"], cfg["rope_local_base_freq"], cfg["hidden_activation"]) == \
        (1e6, 1e4, "gelu_pytorch_tanh")
    with safe_open(str(out / "model.safetensors"), "np") as f:
        names = set(f.keys())
    text = {n.replace("language_model.model.", "model.") for n, _ in FIXTURE["models"]["gemma3"]["tensors"]
            if n.startswith("language_model.")}
    assert names == text and len(text) == 3 * 13 + 2, sorted(names ^ text)  # 13 a layer, embedding, norm
