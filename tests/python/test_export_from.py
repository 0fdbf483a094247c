"""`rill-train export --from`: existing Hugging Face Llama folders (sharded, untied, f16)
get a model.onnx that matches the reference forward; bad folders get clear errors."""
import json
import shutil

import numpy as np
import onnx
import pytest
from safetensors.numpy import load_file, save_file

from conftest import Decoder, candle_logits, rill_train

PROMPT = [0, 5, 9, 250, 251, 17, 3, 3, 120]


def copy_folder(src, dst, with_onnx=False):
    shutil.copytree(src, dst)
    if not with_onnx:
        (dst / "model.onnx").unlink()
    return dst


def shard(folder, n=2):
    """Rewrites model.safetensors as n shards with a model.safetensors.index.json."""
    tensors = load_file(folder / "model.safetensors")
    names = sorted(tensors)
    weight_map = {}
    for i in range(n):
        part = names[i::n]
        fname = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
        save_file({k: tensors[k] for k in part}, folder / fname, metadata={"format": "pt"})
        weight_map.update({k: fname for k in part})
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def test_sharded_untied_checkpoint_exports_and_matches(untied_model, tmp_path):
    folder = copy_folder(untied_model, tmp_path / "hf")
    (folder / "generation_config.json").unlink()
    shard(folder, 2)
    rill_train("export", "--from", folder)
    assert (folder / "generation_config.json").exists()
    model = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    files = {next(e.value for e in i.external_data if e.key == "location") for i in model.graph.initializer if i.external_data}
    assert files == {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}
    assert "lm_head.weight" in {i.name for i in model.graph.initializer}
    onnx.checker.check_model(str(folder / "model.onnx"), full_check=True)
    ref = candle_logits(untied_model, [PROMPT])[0]
    dec = Decoder(folder)
    assert np.abs(dec.whole(PROMPT) - ref).max() < 1e-4
    assert np.abs(dec.stepwise(PROMPT) - ref).max() < 1e-4


def test_existing_generation_config_is_kept(random_model, tmp_path):
    folder = copy_folder(random_model, tmp_path / "hf")
    (folder / "generation_config.json").write_text('{"do_sample": false}')
    rill_train("export", "--from", folder)
    assert json.loads((folder / "generation_config.json").read_text()) == {"do_sample": False}


def test_f16_folder_runs_in_onnx_runtime(default_model, tmp_path):
    out = tmp_path / "f16"
    rill_train("export", "--from", default_model, "--out", out, "--dtype", "f16")
    size32 = (default_model / "model.safetensors").stat().st_size
    assert (out / "model.safetensors").stat().st_size < size32 * 0.51
    assert json.loads((out / "config.json").read_text())["torch_dtype"] == "float16"
    dec = Decoder(out)
    assert dec.kv_dtype == np.float16
    from tokenizers import Tokenizer
    ids = Tokenizer.from_file(str(out / "tokenizer.json")).encode("And God said, Let there be").ids
    ref = candle_logits(out, [ids])[0]  # candle: f16 weights, f32 arithmetic
    got = dec.stepwise(ids)
    assert np.abs(got - ref).max() < 5e-2 * max(1.0, np.abs(ref).max() / 10)
    assert (got.argmax(-1) == ref.argmax(-1)).mean() >= 0.9


def test_out_folder_that_exists_is_refused(random_model, tmp_path):
    (tmp_path / "exists").mkdir()
    proc = rill_train("export", "--from", random_model, "--out", tmp_path / "exists", check=False)
    assert proc.returncode != 0
    assert "already exists" in proc.stderr and "--force" in proc.stderr


@pytest.mark.parametrize("damage, message", [
    ("no_config", "config.json"),
    ("no_weights", "model.safetensors"),
    ("truncated", "corrupt or truncated"),
    ("bad_json", "not a valid Llama config.json"),
    ("wrong_shape", "model.embed_tokens.weight"),
    ("bf16_rope_scaling", "rope_scaling"),
])
def test_bad_folders_give_clear_errors(random_model, tmp_path, damage, message):
    folder = copy_folder(random_model, tmp_path / "bad")
    cfg_path, st = folder / "config.json", folder / "model.safetensors"
    cfg = json.loads(cfg_path.read_text())
    if damage == "no_config":
        cfg_path.unlink()
    elif damage == "no_weights":
        st.unlink()
    elif damage == "truncated":
        st.write_bytes(st.read_bytes()[:-100])
    elif damage == "bad_json":
        cfg_path.write_text("{ not json")
    elif damage == "wrong_shape":
        cfg["vocab_size"] += 1
        cfg_path.write_text(json.dumps(cfg))
    elif damage == "bf16_rope_scaling":
        cfg["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0}
        cfg_path.write_text(json.dumps(cfg))
    proc = rill_train("export", "--from", folder, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
    assert not (folder / "model.onnx").exists()


def to_bf16_bits(values):
    """float32 -> bfloat16 bit patterns, rounding to nearest even (as torch converts)."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def write_bf16_safetensors(path, tensors):
    """A safetensors file of BF16 tensors (numpy has no bf16 dtype: written by hand)."""
    header, chunks, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        raw = to_bf16_bits(tensors[name]).tobytes()
        header[name] = {"dtype": "BF16", "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + b"".join(chunks))


def test_bf16_checkpoint_converts_exactly_with_out(untied_model, tmp_path):
    """Most Hugging Face checkpoints are bf16: `--out` converts them (exactly: bf16 is the
    top half of an f32); in place, and in rill itself, they get an error naming the fix."""
    folder = copy_folder(untied_model, tmp_path / "bf16")
    f32 = load_file(untied_model / "model.safetensors")
    write_bf16_safetensors(folder / "model.safetensors", f32)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["torch_dtype"] = "bfloat16"
    (folder / "config.json").write_text(json.dumps(cfg))

    proc = rill_train("export", "--from", folder, check=False)
    assert proc.returncode != 0
    assert "bf16" in proc.stderr and "--out" in proc.stderr, proc.stderr
    assert not (folder / "model.onnx").exists()

    out = tmp_path / "f32"
    rill_train("export", "--from", folder, "--out", out, "--dtype", "f32")
    converted = load_file(out / "model.safetensors")
    assert set(converted) == set(f32)
    for name, values in f32.items():
        expected = (to_bf16_bits(values).astype(np.uint32) << 16).view(np.float32)
        assert converted[name].dtype == np.float32
        assert np.array_equal(converted[name], expected), name
    assert json.loads((out / "config.json").read_text())["torch_dtype"] == "float32"
    ref = candle_logits(out, [PROMPT])[0]
    assert np.abs(Decoder(out).stepwise(PROMPT) - ref).max() < 1e-4



def test_rill_refuses_bf16_weights_naming_the_conversion(default_model, tmp_path):
    """A bf16 folder with a graph is an error naming `rill-train export`, not misread bytes."""
    import subprocess
    from test_runtime_folders import RILL
    folder = copy_folder(default_model, tmp_path / "bf16", with_onnx=True)
    write_bf16_safetensors(folder / "model.safetensors", load_file(default_model / "model.safetensors"))
    run = subprocess.run([RILL, "generate", "--model", str(folder), "--prompt", "Hi"],
                         capture_output=True, text=True)
    assert run.returncode != 0
    assert "BF16" in run.stderr and "rill-train export" in run.stderr, run.stderr


def test_a_weight_beyond_f16_range_is_refused_not_made_infinite(untied_model, tmp_path):
    folder = copy_folder(untied_model, tmp_path / "bf16")
    tensors = load_file(untied_model / "model.safetensors")
    tensors["model.norm.weight"][3] = 1.0e5
    write_bf16_safetensors(folder / "model.safetensors", tensors)
    proc = rill_train("export", "--from", folder, "--out", tmp_path / "f16", "--dtype", "f16", check=False)
    assert proc.returncode != 0
    assert "model.norm.weight" in proc.stderr and "65504" in proc.stderr, proc.stderr
    assert not (tmp_path / "f16").exists(), "the folder the failed export created is removed"
    rill_train("export", "--from", folder, "--out", tmp_path / "f32", "--dtype", "f32")
    # Over an existing folder (--force) a failed conversion leaves its weights as they were.
    before = (tmp_path / "f32" / "model.safetensors").read_bytes()
    proc = rill_train("export", "--from", folder, "--out", tmp_path / "f32", "--dtype", "f16",
                      "--force", check=False)
    assert proc.returncode != 0 and "65504" in proc.stderr, proc.stderr
    assert (tmp_path / "f32" / "model.safetensors").read_bytes() == before
    assert not [p for p in (tmp_path / "f32").iterdir() if "partial" in p.name]
