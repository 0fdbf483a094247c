"""The `rill` command line: generate streams only the text, inspect describes the folder,
bench reports its figures as JSON, and errors are one clear line."""
import json
import subprocess

from test_runtime_folders import RILL


def rill(*args):
    return subprocess.run([RILL, *map(str, args)], capture_output=True, text=True)


def test_generate_prints_only_the_text_and_stats_go_to_stderr(default_model):
    out = rill("generate", "--model", default_model, "--prompt", "In the beginning", "--max-new-tokens", "8", "--stats")
    assert out.returncode == 0, out.stderr
    assert 0 < len(out.stdout) < 200 and "tokens/s" not in out.stdout
    for word in ["open:", "resident memory", "decode:", "ONNX Runtime Run"]:
        assert word in out.stderr, out.stderr


def test_inspect_describes_config_graph_weights_and_tokenizer(default_model):
    out = rill("inspect", default_model)
    assert out.returncode == 0, out.stderr
    for text in ["layers 4", "max positions 1024", "bos 0, eos [1]", "past_key_values.3.value: Float32 [?, 2, ?, 64]",
                 "logits: Float32 [?, ?, 4096]",
                 "tensors F32", "tokenizer: 4096 tokens", "logits_to_keep: Int64 [] (optional",
                 "cache layout: one shared past/present buffer per tensor", "model.gqa.onnx (fused attention"]:
        assert text in out.stdout, out.stdout
    # The folder's own Hugging Face graph on request.
    out = rill("inspect", default_model, "--graph", "plain")
    assert out.returncode == 0, out.stderr
    for text in ["graph: " + str(default_model / "model.onnx"), "cache layout: past and present double-buffered"]:
        assert text in out.stdout, out.stdout


def test_bench_json(default_model):
    out = rill("bench", "--model", default_model, "--reps", "2", "--prompt-tokens", "16", "--new-tokens", "8", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["decode_tokens_per_s"][0] > 0 and report["prefill_tokens_per_s"][0] > 0
    assert 0 < report["ort_run_share"][1] <= 1
    assert report["rss_after_open"] > 0 and report["weights_file_bytes"] > 0
    assert report["assisted_decode_tokens_per_s"] is None
    assert report["graph_file"] == str(default_model / "model.gqa.onnx")
    # With the model as its own assistant: every proposal checked, fewer passes than tokens.
    out = rill("bench", "--model", default_model, "--reps", "2", "--prompt-tokens", "16", "--new-tokens", "8", "--json",
               "--assistant", default_model)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["assisted_decode_tokens_per_s"][0] > 0
    assert 0 < report["assisted_passes_per_token"][1] < 1


def test_errors_are_one_clear_line(tmp_path):
    out = rill("generate", "--model", tmp_path / "missing", "--prompt", "x")
    assert out.returncode == 1
    assert out.stderr.startswith("error: ") and "missing" in out.stderr and "panicked" not in out.stderr


def test_plugin_and_sampler_flags_change_the_output(default_model, tmp_path):
    from conftest import ROOT
    lib = tmp_path / "libban_tokens.so"
    build = subprocess.run(["cc", "-std=c11", "-shared", "-fPIC", "-O2", f"-I{ROOT / 'include'}",
                            str(ROOT / "plugins/examples/ban_tokens.c"), "-o", str(lib)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    args = ["generate", "--model", default_model, "--prompt", "In the beginning", "--max-new-tokens", "8", "--greedy"]
    plain = rill(*args)
    assert plain.returncode == 0, plain.stderr
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(default_model / "tokenizer.json"))
    first = tok.encode("In the beginning" + plain.stdout).ids[len(tok.encode("In the beginning").ids)]
    banned = rill(*args, "--plugin", lib, "--sampler", f'ban_tokens:{{"tokens": [{first}]}}')
    assert banned.returncode == 0, banned.stderr
    assert banned.stdout != plain.stdout
    unknown = rill(*args, "--sampler", "nope")
    assert unknown.returncode == 1 and "no sampler named `nope`" in unknown.stderr
    bad_json = rill(*args, "--sampler", "top_k:{oops")
    assert bad_json.returncode == 1 and "not JSON" in bad_json.stderr


def test_generation_config_flag_takes_any_setting_and_flags_override_it(default_model):
    base = ["generate", "--model", default_model, "--prompt", "In the beginning", "--greedy"]
    five = rill(*base, "--max-new-tokens", "5")
    assert five.returncode == 0, five.stderr
    # The JSON's max_new_tokens gives the same text; a flag given too wins over it.
    same = rill(*base, "--generation-config", '{"max_new_tokens": 5}')
    assert same.stdout == five.stdout, same.stderr
    fewer = rill(*base, "--generation-config", '{"max_new_tokens": 40}', "--max-new-tokens", "5")
    assert fewer.stdout == five.stdout, fewer.stderr
    refused = rill(*base, "--generation-config", '{"forced_eos_token_id": 1}')
    assert refused.returncode == 1 and "forced_eos_token_id" in refused.stderr, refused.stderr
    bad = rill(*base, "--generation-config", '{"epsilon_cutoff": 2}')
    assert bad.returncode == 1 and "epsilon_cutoff" in bad.stderr, bad.stderr
