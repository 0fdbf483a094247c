"""The rill runtime opens folders as optimum and onnx-community ship them: a model.onnx
with its weights embedded, or as ordinary ONNX external data (model.onnx.data). Both,
re-saved here from the default model with the `onnx` package, generate the same greedy
tokens as the default folder itself (whose weights rill maps from model.safetensors)."""
import os
import shutil
import subprocess

import onnx
import pytest

from conftest import ROOT

RILL = os.environ.get("RILL", str(ROOT / "target/release/rill"))
PROMPT = "In the beginning God created"


def generate(folder, *extra):
    proc = subprocess.run([RILL, "generate", "--model", str(folder), "--prompt", PROMPT,
                           "--max-new-tokens", "32", "--greedy", *extra], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def resave(src, dst, external):
    dst.mkdir()
    for name in ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"]:
        shutil.copy(src / name, dst / name)
    model = onnx.load(str(src / "model.onnx"), load_external_data=True)
    if external:
        onnx.save(model, str(dst / "model.onnx"), save_as_external_data=True,
                  all_tensors_to_one_file=True, location="model.onnx.data", size_threshold=0)
        assert (dst / "model.onnx.data").exists()
    else:
        onnx.save(model, str(dst / "model.onnx"))
    assert not (dst / "model.safetensors").exists()
    return dst


@pytest.fixture(scope="module")
def reference(default_model):
    return generate(default_model)


@pytest.mark.parametrize("external", [False, True], ids=["embedded", "onnx-external-data"])
def test_resaved_folder_generates_the_same_tokens(default_model, reference, tmp_path, external):
    folder = resave(default_model, tmp_path / "m", external)
    assert generate(folder) == reference
    assert len(reference.strip()) > 0


def test_ort_loading_the_weights_itself_generates_the_same_tokens(default_model, reference):
    assert generate(default_model, "--ort-loads-weights") == reference
    assert generate(default_model, "--no-prepack") == reference

