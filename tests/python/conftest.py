"""Shared helpers for the Python tests: the trainer CLI, the reference (candle) forward
pass it prints, and an ONNX Runtime decoder loop written only against the graph's
documented inputs and outputs."""
import json
import os
import pathlib
import subprocess

import numpy as np
import onnxruntime as ort
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
RILL_TRAIN = os.environ.get("RILL_TRAIN", str(ROOT / "target/release/rill-train"))
DEFAULT_MODEL = ROOT / "models/rill-tiny"


def rill_train(*args, check=True):
    """Runs the trainer CLI; returns the CompletedProcess."""
    proc = subprocess.run([RILL_TRAIN, *map(str, args)], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"rill-train {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return proc


def candle_logits(folder, sequences):
    """The trainer's own forward pass: a list of [seq, vocab] arrays."""
    args = ["logits", "--model", folder]
    for seq in sequences:
        args += ["--ids", ",".join(map(str, seq))]
    return [np.array(x, dtype=np.float64) for x in json.loads(rill_train(*args).stdout)]


class Decoder:
    """Drives an exported folder's model.onnx through ONNX Runtime's Python API."""

    def __init__(self, folder):
        self.folder = pathlib.Path(folder)
        self.cfg = json.loads((self.folder / "config.json").read_text())
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        self.session = ort.InferenceSession(str(self.folder / "model.onnx"), opts, providers=["CPUExecutionProvider"])
        self.layers = self.cfg["num_hidden_layers"]
        kv_type = self.session.get_inputs()[3].type
        self.kv_dtype = np.float16 if "float16" in kv_type else np.float32

    def empty_past(self, batch):
        kv = self.cfg["num_key_value_heads"]
        hd = self.cfg.get("head_dim") or self.cfg["hidden_size"] // self.cfg["num_attention_heads"]
        return {f"past_key_values.{i}.{k}": np.zeros((batch, kv, 0, hd), self.kv_dtype)
                for i in range(self.layers) for k in ("key", "value")}

    def run(self, input_ids, attention_mask, position_ids, past):
        feeds = {"input_ids": np.asarray(input_ids, np.int64),
                 "attention_mask": np.asarray(attention_mask, np.int64),
                 "position_ids": np.asarray(position_ids, np.int64), **past}
        names = [o.name for o in self.session.get_outputs()]
        out = dict(zip(names, self.session.run(None, feeds)))
        present = {f"past_key_values.{i}.{k}": out[f"present.{i}.{k}"]
                   for i in range(self.layers) for k in ("key", "value")}
        return out["logits"].astype(np.float64), present

    def whole(self, ids):
        n = len(ids)
        logits, _ = self.run([ids], np.ones((1, n)), [np.arange(n)], self.empty_past(1))
        return logits[0]

    def stepwise(self, ids):
        return self.chunked(ids, 1)

    def chunked(self, ids, size):
        """Logits of `ids` fed `size` tokens at a time after the cache of the earlier ones."""
        past, rows = self.empty_past(1), []
        for start in range(0, len(ids), size):
            chunk = ids[start:start + size]
            end = start + len(chunk)
            logits, past = self.run([chunk], np.ones((1, end)), [np.arange(start, end)], past)
            rows.extend(logits[0])
        return np.stack(rows)


@pytest.fixture(scope="session")
def random_model(tmp_path_factory):
    """A small random-weight model folder (tied head), exported."""
    out = tmp_path_factory.mktemp("models") / "random"
    rill_train("init", "--out", out, "--preset", "test", "--vocab-size", 300, "--seed", 3)
    return out


@pytest.fixture(scope="session")
def untied_model(tmp_path_factory):
    """A random model with its own LM head, as most HF checkpoints have."""
    out = tmp_path_factory.mktemp("models") / "untied"
    rill_train("init", "--out", out, "--preset", "test", "--vocab-size", 300, "--untied", "--seed", 5)
    return out


@pytest.fixture(scope="session")
def default_model():
    if not (DEFAULT_MODEL / "model.onnx").exists():
        pytest.fail(f"{DEFAULT_MODEL} is missing: run `make model`")
    return DEFAULT_MODEL


def variant_folder(out, *flags, preset="test", attention="hf", config=None):
    """A random model of a Llama-family variant (`rill-train init` flags), re-exported with
    the weights that tell the variant apart made to matter clearly: projection biases
    scaled up, query/key norm scales and OLMo 2's post-MLP norm scales (ones at init) drawn
    from [0.2, 3], Gemma's norm scales (offsets from one, zeros at init) from [-0.5, 1].
    `config` entries replace those of config.json before the export."""
    from safetensors.numpy import load_file, save_file
    rill_train("init", "--out", out, "--preset", preset, "--vocab-size", 300, "--seed", 11, *flags)
    cfg = json.loads((out / "config.json").read_text())
    if config:
        cfg.update(config)
        (out / "config.json").write_text(json.dumps(cfg, indent=2))
    gemma = cfg["model_type"] in ("gemma2", "gemma3_text")
    tensors = load_file(out / "model.safetensors")
    rng = np.random.default_rng(11)
    for name in sorted(tensors):
        shape, dtype = tensors[name].shape, tensors[name].dtype
        if name.endswith(".bias"):
            tensors[name] = tensors[name] * 25
        elif gemma and name.endswith("norm.weight"):
            tensors[name] = rng.uniform(-0.5, 1.0, shape).astype(dtype)
        elif name.endswith((".q_norm.weight", ".k_norm.weight", "feedforward_layernorm.weight")):
            tensors[name] = rng.uniform(0.2, 3.0, shape).astype(dtype)
    save_file(tensors, out / "model.safetensors", metadata={"format": "pt"})
    rill_train("export", "--from", out, "--attention", attention)
    return out


def model_type_folder(tmp_path_factory, model_type, *flags, **kwargs):
    """`variant_folder` of `rill-train init --model-type model_type` in a fresh folder."""
    out = tmp_path_factory.mktemp("models") / model_type
    return variant_folder(out, "--model-type", model_type, *flags, **kwargs)


@pytest.fixture(scope="session")
def biased_model(tmp_path_factory):
    """Llama with `attention_bias` and `mlp_bias`: biases on all seven projections."""
    return variant_folder(tmp_path_factory.mktemp("models") / "biased", "--attention-bias", "--mlp-bias")


@pytest.fixture(scope="session")
def qwen3_model(tmp_path_factory):
    """Qwen3: per-head RMSNorm of queries and keys, no biases."""
    return model_type_folder(tmp_path_factory, "qwen3")


@pytest.fixture(scope="session")
def phi3_model(tmp_path_factory):
    """Phi-3: one stored matrix for q, k and v, one for gate and up."""
    return model_type_folder(tmp_path_factory, "phi3")


@pytest.fixture(scope="session")
def gemma2_model(tmp_path_factory):
    """Gemma 2 with a 4-token window on its sliding layer and soft-caps small enough to
    bound these random weights' scores and logits."""
    return model_type_folder(tmp_path_factory, "gemma2", "--sliding-window", "4",
                             config={"attn_logit_softcapping": 0.5, "final_logit_softcapping": 0.3})


@pytest.fixture(scope="session")
def olmo2_model(tmp_path_factory):
    """OLMo 2: query/key norms over the whole projection, normalised sublayer outputs."""
    return model_type_folder(tmp_path_factory, "olmo2")


@pytest.fixture(scope="session")
def granite_model(tmp_path_factory):
    """Granite with its 2B model's multipliers."""
    return model_type_folder(tmp_path_factory, "granite")


@pytest.fixture(scope="session")
def gemma3_model(tmp_path_factory):
    """Gemma 3 with a 4-token window on its sliding layer and a query scalar that is not
    head_dim."""
    return model_type_folder(tmp_path_factory, "gemma3_text", "--sliding-window", "4",
                             config={"query_pre_attn_scalar": 5})
