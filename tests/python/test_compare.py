"""`make compare` in its quick mode on the default model: every engine that ran reports
positive figures, and rill, the Python ONNX Runtime loop and onnxruntime-genai (one graph,
one ONNX Runtime) produce the same greedy tokens. No speed thresholds: those live in
BENCHMARKS.md. Runs with the .venv-compare interpreter (`make compare-env`), or the one
named by RILL_COMPARE_PY; skipped when neither has onnxruntime-genai.

The quantized row too (`make compare-quant`'s options on the default model): rill on an
int4 copy from `rill-train quantize`, rill again on the float folder (`rill-base`), llama.cpp
on its own Q4_0 quantization of that folder; the sizes of both folders and of the GGUF.

And every engine on the fused-attention export (`rill-train export --attention gqa`):
onnxruntime-genai with `past_present_share_buffer`, the Python loop binding one shared buffer
as past and present, both giving rill's greedy tokens."""
import json
import os
import subprocess

import pytest

from conftest import ROOT, rill_train

COMPARE_PY = os.environ.get("RILL_COMPARE_PY", str(ROOT / ".venv-compare/bin/python"))
RILL = os.environ.get("RILL", str(ROOT / "target/release/rill"))
NEW_TOKENS = 8


def run_compare(folder, tmp, *extra):
    """compare.py --quick on `folder` with `extra` options: (its report, its stdout); skips
    without the compare environment."""
    if not os.path.exists(COMPARE_PY):
        pytest.skip(f"{COMPARE_PY} is missing: run `make compare-env`")
    probe = subprocess.run([COMPARE_PY, "-c", "import onnxruntime_genai, onnxruntime, numpy, tokenizers"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(f"the compare environment ({COMPARE_PY}) lacks a package: {reason}; run `make compare-env`")
    out = tmp / "report.json"
    proc = subprocess.run([COMPARE_PY, str(ROOT / "scripts/compare.py"), "--model", str(folder), "--quick",
                           "--new-tokens", str(NEW_TOKENS), "--rill", RILL, "--json", str(out), *map(str, extra)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert "rill× decode" in proc.stdout, proc.stdout
    return json.loads(out.read_text()), proc.stdout


@pytest.fixture(scope="module")
def report(default_model, tmp_path_factory):
    return run_compare(default_model, tmp_path_factory.mktemp("compare"))[0]


@pytest.fixture(scope="module")
def quant_run(default_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare-quant")
    rill_train("quantize", "--bits", 4, "--block-size", 32, default_model, tmp / "q4")
    return run_compare(default_model, tmp, "--rill-model", tmp / "q4", "--llama-quant", "q4_0", "--no-bandwidth")


@pytest.fixture(scope="module")
def fused_run(default_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare-gqa")
    rill_train("export", "--from", default_model, "--out", tmp / "gqa", "--attention", "gqa")
    return run_compare(tmp / "gqa", tmp, "--engines", "rill,genai,ort", "--no-bandwidth")[0]


def test_every_engine_that_ran_reports_positive_figures(report):
    engines = report["engines"]
    for name in ["rill", "ort", "genai"]:
        assert engines[name]["status"] == "ok", engines[name]
    # llama.cpp may be absent (llama-cpp-python did not build) but must not fail once importable.
    assert engines["llama"]["status"] in ("ok", "skipped"), engines["llama"]
    for name, r in engines.items():
        if r["status"] != "ok":
            continue
        for key in ["open_ms", "prefill_tokens_per_s", "decode_tokens_per_s"]:
            assert len(r[key]) == 3 and 0 < r[key][0] <= r[key][1] <= r[key][2], (name, key, r[key])
        assert r["rss_after_open"] > 0 and r["rss_after_generation"] > 0, (name, r)
        # The hypervisor's steal is a part of the other load, never more.
        assert 0 <= r["steal_cores"] <= r["other_load_cores"], (name, r)
    bw = report["bandwidth"]
    assert bw["gb_per_s"] > 0 and bw["limit_tokens_per_s"] > 0
    # One reading just before each engine's run and one after them all; the limit uses their
    # median.
    readings = bw["readings_gb_per_s"]
    ran = [r for r in engines.values() if r["status"] == "ok"]
    assert len(readings) == len(ran) + 1 and readings == sorted(readings)
    assert bw["gb_per_s"] == readings[len(readings) // 2]
    for name, r in engines.items():
        if r["status"] == "ok":
            assert r["bandwidth_gbs"] in readings, (name, r)
            limit = bw["gb_per_s"] * 1e9 / bw["bytes_per_token"][name]
            assert abs(bw["fractions"][name] - r["decode_tokens_per_s"][1] / limit) < 1e-9, (name, bw)


def test_rill_ort_loop_and_genai_decode_the_same_greedy_tokens(report):
    engines, agreement = report["engines"], report["agreement"]
    ort, genai = engines["ort"], engines["genai"]
    # The benchmark prompt: ids of the two Python engines, and rill's if it reports them.
    assert len(ort["tokens"]) == NEW_TOKENS
    assert genai["tokens"] == ort["tokens"]
    if engines["rill"].get("tokens") is not None:
        assert engines["rill"]["tokens"] == ort["tokens"]
    # The check prompt: rill's ids (through its C ABI) or, from an older librill.so, its
    # `generate --greedy` text, against both peers'.
    assert genai["check_tokens"] == ort["check_tokens"]
    rill = agreement["rill"]
    assert rill["check_tokens"] or rill["text"], rill
    for name in ["ort", "genai"]:
        if rill["check_tokens"]:
            assert engines[name]["check_tokens"] == rill["check_tokens"], (name, agreement[name])
        else:
            assert agreement[name]["text_agrees"] and agreement[name]["text"] == rill["text"], (name, agreement[name])


def test_quantized_row_runs_rill_on_both_folders_and_reports_sizes(quant_run):
    report, stdout = quant_run
    engines = report["engines"]
    assert report["engine_order"] == ["rill", "rill-base", "genai", "ort", "llama-q4_0"]
    for name in ["rill", "rill-base", "ort", "genai"]:
        assert engines[name]["status"] == "ok", engines[name]
        assert engines[name]["decode_tokens_per_s"][1] > 0
    assert "rill (peers' folder)" in stdout
    sizes = report["sizes"]
    assert sizes["rill_folder"] != sizes["peers_folder"]
    assert 0 < sizes["rill_weights_bytes"] <= 0.2 * sizes["peers_weights_bytes"], sizes
    llama = engines["llama-q4_0"]
    assert llama["status"] in ("ok", "skipped"), llama
    if llama["status"] == "ok":
        assert llama["gguf"].endswith(".q4_0.gguf") and llama["tensor_types"].get("Q4_0", 0) > 0, llama
        assert sizes["gguf"]["llama-q4_0"]["bytes"] == llama["gguf_bytes"] < 0.3 * sizes["peers_weights_bytes"]
    # The peers ran the float folder: their greedy ids are rill's on that folder.
    base = report["agreement"]["rill-base"]
    if base.get("check_tokens"):
        for name in ["ort", "genai"]:
            assert engines[name]["check_tokens"] == base["check_tokens"], (name, report["agreement"][name])


def test_every_engine_drives_the_shared_buffer_of_the_fused_export(fused_run):
    engines, agreement = fused_run["engines"], fused_run["agreement"]
    for name in ["rill", "ort", "genai"]:
        assert engines[name]["status"] == "ok", engines[name]
        assert engines[name]["decode_tokens_per_s"][1] > 0
    assert len(engines["ort"]["tokens"]) == NEW_TOKENS
    assert engines["genai"]["tokens"] == engines["ort"]["tokens"]
    rill = agreement["rill"]["check_tokens"]
    assert rill, agreement["rill"]
    for name in ["ort", "genai"]:
        assert engines[name]["check_tokens"] == rill, (name, agreement[name])


def test_rill_runs_the_peers_graph_unless_told_to_choose_its_own(report, default_model, tmp_path):
    # By default rill runs model.onnx like the peers, though the folder has model.gqa.onnx.
    assert report["engines"]["rill"]["graph_file"] == str(default_model / "model.onnx")
    assert not any("--rill-graph" in n for n in report["notes"])
    own, _ = run_compare(default_model, tmp_path, "--engines", "rill,ort", "--no-bandwidth", "--rill-graph", "auto")
    rill, ort = own["engines"]["rill"], own["engines"]["ort"]
    assert rill["graph_file"] == str(default_model / "model.gqa.onnx")
    assert any("model.gqa.onnx (`--rill-graph auto`); the peers model.onnx" in n for n in own["notes"]), own["notes"]
    # The same greedy tokens from the fused graph, on the benchmark and the check prompt.
    if rill.get("tokens") is not None:
        assert rill["tokens"] == ort["tokens"]
    assert own["agreement"]["rill"]["check_tokens"] == ort["check_tokens"]
