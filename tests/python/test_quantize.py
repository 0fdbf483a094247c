"""Quantized folders (`rill-train quantize`, issue 10).

The quantized graph is checked against an independent computation: this file unpacks the
stored blocks with numpy (its own reading of the documented layout), writes the
dequantized weights as an ordinary float folder, and runs the trainer's candle forward
pass on it. ONNX Runtime's `MatMulNBits` over the packed weights must give the same
logits. Then perplexity (`rill perplexity`) against an independent numpy computation over
ONNX Runtime's logits, the accuracy targets on the default model's held-out text, and the
errors for bad input."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file
from tokenizers import Tokenizer

from conftest import ROOT, Decoder, candle_logits, rill_train
from test_runtime_folders import RILL

HELD_OUT = ROOT / "tests/fixtures/heldout.txt"
PROMPTS = [[0, 5, 17, 99, 3, 250, 42, 7], [0, 1, 2, 3]]


def rill(*args, check=True):
    proc = subprocess.run([RILL, *map(str, args)], capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def quantize(src, dst, *args):
    rill_train("quantize", src, dst, *args)
    return dst


def unpack(packed, bits):
    """[..., bytes] u8 -> [..., values]: two 4-bit values per byte, the first in the low
    nibble; bytes as they are for 8 bits."""
    if bits == 8:
        return packed.astype(np.float64)
    low, high = packed & 0x0F, packed >> 4
    return np.stack([low, high], axis=-1).reshape(*packed.shape[:-1], -1).astype(np.float64)


def dequantized_folder(qdir, out):
    """A float folder holding the weights the quantized folder's integers stand for."""
    cfg = json.loads((qdir / "config.json").read_text())
    q = cfg.pop("quantization_config")
    bits, block = q["bits"], q["group_size"]
    tensors = load_file(str(qdir / "model.safetensors"))
    floats = {}
    for name, t in tensors.items():
        if name.endswith(".scales") or name.endswith(".qzeros"):
            continue
        if not name.endswith(".qweight"):
            floats[name] = t.astype(np.float32)
            continue
        stem = name[: -len(".qweight")]
        rows, blocks, _ = t.shape
        values = unpack(t, bits).reshape(rows, blocks, block)
        if q["sym"]:
            zero = np.full((rows, blocks, 1), 2 ** (bits - 1), np.float64)
        else:
            zero = unpack(tensors[stem + ".qzeros"], bits)[:, :blocks, None]
        scale = tensors[stem + ".scales"].astype(np.float64)[:, :, None]
        w = ((values - zero) * scale).reshape(rows, blocks * block)
        cols = cfg["intermediate_size"] if stem.endswith("down_proj") else cfg["hidden_size"]
        if stem.endswith("o_proj"):
            cols = cfg["num_attention_heads"] * cfg["head_dim"]
        floats[stem + ".weight"] = w[:, :cols].astype(np.float32)
    out.mkdir()
    save_file(floats, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(cfg))
    return out


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, random_model, untied_model, biased_model, qwen3_model, gemma3_model, phi3_model,
              gemma2_model, granite_model, olmo2_model):
    """Quantized variants of the random test models, by name."""
    root = tmp_path_factory.mktemp("quantized")
    variants = {
        # accuracy level 0: MatMulNBits computes in f32, so only summation order differs.
        "q4-tied": (random_model, ["--accuracy-level", "0"]),
        "q4-untied": (untied_model, ["--accuracy-level", "0"]),
        "q8-sym": (random_model, ["--bits", "8", "--symmetric", "--accuracy-level", "0"]),
        # Rows of 32 values in blocks of 64: every block padded.
        "q4-block64": (random_model, ["--block-size", "64", "--accuracy-level", "0"]),
        "q4-keep-embeddings": (untied_model, ["--keep-embeddings", "--accuracy-level", "0"]),
        # The default: int8 activations.
        "q4-level4": (random_model, []),
        # Biases on every projection: float, added after MatMulNBits.
        "q4-biased": (biased_model, ["--accuracy-level", "0"]),
        # Qwen3's query/key norm scales: vectors, kept in float.
        "q4-qwen3": (qwen3_model, ["--accuracy-level", "0"]),
        # Gemma 3: the scaled embedding quantized with the tied head, sliding layers.
        "q4-gemma3": (gemma3_model, ["--accuracy-level", "0"]),
        # Phi-3: the fused q/k/v and gate/up matrices quantized as they are stored.
        "q4-phi3": (phi3_model, ["--accuracy-level", "0"]),
        # Gemma 2: soft-capped scores and logits; Granite: its four multipliers.
        "q4-gemma2": (gemma2_model, ["--accuracy-level", "0"]),
        "q4-granite": (granite_model, ["--accuracy-level", "0"]),
        # OLMo 2: its query/key norm scales over the whole projection, kept in float.
        "q4-olmo2": (olmo2_model, ["--accuracy-level", "0"]),
    }
    return {k: quantize(src, root / k, *args) for k, (src, args) in variants.items()}


@pytest.mark.parametrize("variant", ["q4-tied", "q4-untied", "q8-sym", "q4-block64", "q4-keep-embeddings",
                                     "q4-biased", "q4-qwen3", "q4-gemma3", "q4-phi3", "q4-gemma2",
                                     "q4-granite", "q4-olmo2"])
def test_quantized_logits_match_candle_on_the_dequantized_weights(quantized, variant, tmp_path):
    qdir = quantized[variant]
    ref_dir = dequantized_folder(qdir, tmp_path / "dequantized")
    expected = candle_logits(ref_dir, PROMPTS)
    dec = Decoder(qdir)
    for ids, want in zip(PROMPTS, expected):
        got = dec.whole(ids)
        # f32 accumulation in a different order over at most a few hundred products.
        np.testing.assert_allclose(got, want, atol=2e-4, rtol=1e-4)
        np.testing.assert_allclose(dec.stepwise(ids), want, atol=2e-4, rtol=1e-4)


def test_quantized_gqa_export_matches_its_hf_export(default_model, tmp_path):
    hf = quantize(default_model, tmp_path / "hf", "--accuracy-level", "0")
    gqa = quantize(default_model, tmp_path / "gqa", "--accuracy-level", "0", "--attention", "gqa")
    ids = [0, 100, 2000, 37, 5, 900]
    np.testing.assert_allclose(Decoder(hf).whole(ids)[-1], candle_logits(
        dequantized_folder(hf, tmp_path / "d"), [ids])[0][-1], atol=1e-3)
    a = rill("generate", "--model", hf, "--prompt", "In the beginning", "--max-new-tokens", "24", "--greedy")
    b = rill("generate", "--model", gqa, "--prompt", "In the beginning", "--max-new-tokens", "24", "--greedy")
    assert a.stdout == b.stdout and a.stdout.strip()


def test_int8_activations_stay_close(quantized, tmp_path):
    """Accuracy level 4 quantizes each block of activations to int8 (relative step
    ~1/127 of the block's largest value); on these random weights (logits ~±0.5) that moved
    them by at most 2.7e-3 here: 3e-2 leaves room for other machines' kernels while an error in the
    layout (wrong nibble, scale or zero point) moves them by ~1e-1 and more."""
    exact = candle_logits(dequantized_folder(quantized["q4-level4"], tmp_path / "d"), PROMPTS)
    dec = Decoder(quantized["q4-level4"])
    for ids, want in zip(PROMPTS, exact):
        got = dec.whole(ids)
        assert np.abs(got - want).max() < 3e-2
        assert np.argmax(got[-1]) == np.argmax(want[-1])


def test_folder_layout_and_rill_opens_it(quantized, random_model, default_quantized):
    q = quantized["q4-tied"]
    cfg = json.loads((q / "config.json").read_text())
    assert cfg["quantization_config"] == {
        "quant_method": "matmul_nbits", "bits": 4, "group_size": 32, "sym": False,
        "accuracy_level": 0, "quantize_embeddings": True}
    t = load_file(str(q / "model.safetensors"))
    w = load_file(str(random_model / "model.safetensors"))
    assert t["model.layers.0.self_attn.q_proj.qweight"].dtype == np.uint8
    assert "model.layers.0.self_attn.q_proj.weight" not in t
    assert t["model.norm.weight"].dtype == np.float32
    n, k = w["model.layers.0.mlp.down_proj.weight"].shape
    assert t["model.layers.0.mlp.down_proj.qweight"].shape == (n, k // 32, 16)
    assert t["model.layers.0.mlp.down_proj.scales"].shape == (n, k // 32)
    assert t["model.layers.0.mlp.down_proj.qzeros"].shape == (n, (k // 32 + 1) // 2)
    q = default_quantized["int4"]
    info = rill("inspect", q).stdout
    assert "quantization: 4-bit, block 32, asymmetric, embeddings quantized (matmul_nbits)" in info
    assert "U8" in info
    out = rill("generate", "--model", q, "--prompt", "", "--max-new-tokens", "4", "--greedy", check=False)
    assert out.returncode != 0  # an empty prompt is still an error, not a crash
    ids = rill("generate", "--model", q, "--prompt", "ab", "--max-new-tokens", "8", "--greedy")
    assert ids.returncode == 0


def held_out_docs(n):
    return [line for line in HELD_OUT.read_text().splitlines() if line.strip()][:n]


def test_perplexity_matches_numpy_over_onnx_runtime_logits(default_model, tmp_path):
    docs = held_out_docs(5)
    text = tmp_path / "text.txt"
    text.write_text("\n".join(docs) + "\n")
    report = json.loads(rill("perplexity", "--model", default_model, "--text", text, "--json",
                             "--threads", "2", "--window", "40").stdout)
    tok = Tokenizer.from_file(str(default_model / "tokenizer.json"))
    dec = Decoder(default_model)
    nll, count = 0.0, 0
    for doc in docs:
        ids = tok.encode(doc).ids
        for start in range(0, len(ids), 40):
            w = ids[start:start + 40]
            if len(w) < 2:
                continue
            logits = dec.whole(w)
            logp = logits - logits.max(-1, keepdims=True)
            logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
            nll -= sum(logp[i, w[i + 1]] for i in range(len(w) - 1))
            count += len(w) - 1
    assert report["score"]["tokens"] == count
    assert report["score"]["mean_nll"] == pytest.approx(nll / count, rel=1e-4)


@pytest.fixture(scope="module")
def default_quantized(tmp_path_factory, default_model):
    root = tmp_path_factory.mktemp("default-quantized")
    return {
        "int8": quantize(default_model, root / "int8", "--bits", "8"),
        "int4": quantize(default_model, root / "int4", "--bits", "4", "--block-size", "32"),
    }


@pytest.mark.parametrize("variant,limit", [("int8", 0.01), ("int4", 0.10)])
def test_perplexity_increase_on_the_held_out_text(default_model, default_quantized, variant, limit):
    report = json.loads(rill("perplexity", "--model", default_quantized[variant], "--reference",
                             default_model, "--text", HELD_OUT, "--threads", "2", "--json").stdout)
    print(variant, json.dumps(report))
    assert report["score"]["tokens"] > 5000
    assert report["increase"] <= limit
    assert report["greedy"]["prompts"] == 16
    assert report["greedy"]["token_agreement"] > 0.3


def test_int4_default_model_still_writes_words(default_quantized):
    """Its greedy text is made of words from the corpus's own vocabulary, not fragments."""
    known = set(HELD_OUT.read_text().replace(",", " ").replace(".", " ").replace(";", " ").replace(":", " ").split())
    out = rill("generate", "--model", default_quantized["int4"], "--prompt", "And the king said unto",
               "--max-new-tokens", "40", "--greedy", "--threads", "2").stdout
    words = [w.strip(",.;:!?'\"()") for w in out.split()]
    words = [w for w in words if w]
    assert len(words) >= 15, out
    share = sum(w in known or w.lower() in known for w in words) / len(words)
    assert share >= 0.8, out
    assert len(set(words)) >= len(words) / 3, out  # not one word repeated


def test_folder_size(default_model, default_quantized):
    f32 = (default_model / "model.safetensors").stat().st_size
    int4 = (default_quantized["int4"] / "model.safetensors").stat().st_size
    assert int4 <= 0.2 * f32


# --- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("args,message", [
    (["--bits", "3"], "--bits 3: ONNX Runtime's MatMulNBits runs 4- and 8-bit weights"),
    (["--bits", "2"], "4- and 8-bit"),
    (["--block-size", "48"], "--block-size 48"),
    (["--block-size", "8"], "power of two from 16 to 256"),
])
def test_unsupported_schemes_are_refused(random_model, tmp_path, args, message):
    proc = rill_train("quantize", random_model, tmp_path / "out", *args, check=False)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert not (tmp_path / "out").exists()


def test_an_already_quantized_folder_is_refused(quantized, tmp_path):
    proc = rill_train("quantize", quantized["q4-tied"], tmp_path / "again", check=False)
    assert proc.returncode == 1
    assert "already quantized (4-bit, block 32, asymmetric)" in proc.stderr
    proc = rill_train("export", "--from", quantized["q4-tied"], "--out", tmp_path / "f", check=False)
    assert proc.returncode == 1 and "already quantized" in proc.stderr


def test_existing_output_and_same_folder_are_refused(random_model, tmp_path):
    (tmp_path / "exists").mkdir()
    proc = rill_train("quantize", random_model, tmp_path / "exists", check=False)
    assert proc.returncode == 1 and "already exists" in proc.stderr
    proc = rill_train("quantize", random_model, random_model, "--force", check=False)
    assert proc.returncode == 1 and "not the source" in proc.stderr


def broken_copy(src, dst, edit_config=None, edit_tensors=None):
    shutil.copytree(src, dst)
    if edit_config:
        cfg = json.loads((dst / "config.json").read_text())
        edit_config(cfg)
        (dst / "config.json").write_text(json.dumps(cfg))
    if edit_tensors:
        t = load_file(str(dst / "model.safetensors"))
        edit_tensors(t)
        save_file(t, str(dst / "model.safetensors"), metadata={"format": "pt"})
    return dst


def test_runtime_refuses_inconsistent_quantized_folders(default_quantized, tmp_path):
    q = default_quantized["int4"]
    name = "model.layers.0.self_attn.q_proj"

    def cut(t):
        t[name + ".qweight"] = t[name + ".qweight"][:, :-1].copy()

    def drop_zeros(t):
        del t[name + ".qzeros"]

    def floats(t):
        t[name + ".qweight"] = t[name + ".qweight"].astype(np.float32)

    cases = {
        "cut": (broken_copy(q, tmp_path / "cut", edit_tensors=cut),
                f"tensor `{name}.qweight`: expected shape"),
        "zeros": (broken_copy(q, tmp_path / "zeros", edit_tensors=drop_zeros),
                  f"tensor `{name}.qzeros` is missing"),
        "float": (broken_copy(q, tmp_path / "float", edit_tensors=floats),
                  f"tensor `{name}.qweight` is F32"),
        "no-config": (broken_copy(q, tmp_path / "nocfg", edit_config=lambda c: c.pop("quantization_config")),
                      "is U8"),
        "bits": (broken_copy(q, tmp_path / "bits", edit_config=lambda c: c["quantization_config"].update(bits=3)),
                 "3-bit blocks of 32 are not a MatMulNBits layout"),
    }
    for case, (folder, message) in cases.items():
        proc = rill("generate", "--model", folder, "--prompt", "ab", "--max-new-tokens", "2", check=False)
        assert proc.returncode == 1, case
        assert message in proc.stderr, (case, proc.stderr)


def test_a_sharded_hf_folder_without_graph_quantizes(untied_model, tmp_path):
    """Any folder `export --from` accepts: shards with an index, no model.onnx, f16."""
    from test_export_from import copy_folder, shard
    folder = copy_folder(untied_model, tmp_path / "hf")
    shard(folder, 2)
    f16 = tmp_path / "f16"
    rill_train("export", "--from", folder, "--out", f16, "--dtype", "f16")
    for src in (folder, f16):
        out = quantize(src, tmp_path / f"q-{src.name}", "--accuracy-level", "0")
        t = load_file(str(out / "model.safetensors"))
        scales = t["lm_head.scales"]
        assert scales.dtype == (np.float16 if src == f16 else np.float32)
        ref = candle_logits(dequantized_folder(out, tmp_path / f"d-{src.name}"), PROMPTS[:1])[0]
        # f16 activations and scales in MatMulNBits: f16 rounding (~1e-3 relative).
        tol = 5e-3 if src == f16 else 2e-4
        np.testing.assert_allclose(Decoder(out).whole(PROMPTS[0]), ref, atol=tol)
