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



def test_a_graph_with_f16_logits_generates_as_its_f32_logits_twin(default_model, tmp_path):
    """Graphs exported in f16 often return f16 logits (optimum's do): rill reads them as
    f16 from its buffers, over a prompt longer than one prefill chunk and then decoding."""
    from conftest import rill_train
    f16 = tmp_path / "f16"
    rill_train("export", "--from", default_model, "--out", f16, "--dtype", "f16")
    twin = tmp_path / "f16-logits"
    shutil.copytree(f16, twin)
    model = onnx.load(str(twin / "model.onnx"), load_external_data=False)
    cast = next(n for n in model.graph.node if list(n.output) == ["logits"])
    assert cast.op_type == "Cast"
    model.graph.node.remove(cast)
    for n in model.graph.node:  # the Cast's input becomes the output `logits`
        n.output[:] = ["logits" if o == cast.input[0] else o for o in n.output]
    model.graph.output[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
    onnx.save(model, str(twin / "model.onnx"))
    long_prompt = " ".join(["In the beginning God created the heaven and the earth."] * 30) + " And God said"
    for prompt in [PROMPT, long_prompt]:
        runs = [subprocess.run([RILL, "generate", "--model", str(folder), "--prompt", prompt,
                                "--max-new-tokens", "16", "--greedy"], capture_output=True, text=True)
                for folder in (f16, twin)]
        assert runs[0].returncode == 0 and runs[1].returncode == 0, runs[1].stderr
        assert runs[0].stdout == runs[1].stdout and runs[0].stdout.strip()
    inspect = subprocess.run([RILL, "inspect", str(twin)], capture_output=True, text=True)
    assert "logits: Float16" in inspect.stdout, inspect.stdout
