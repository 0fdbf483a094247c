"""scripts/compare_targets.py reads issue 6's targets from `make compare`'s reports: ratios of
the medians, limits in the right direction, and "not measured" where a report or an engine
is missing. Runs on reports written here (the figures chosen around each limit), so it needs
neither the compare environment nor a benchmark run."""
import json
import subprocess
import sys

from conftest import ROOT

SCRIPT = ROOT / "scripts/compare_targets.py"
MIB = 1048576


def ok(decode, **more):
    return {"status": "ok", "decode_tokens_per_s": [decode * 0.9, decode, decode * 1.1], **more}


def rill(decode, **more):
    base = {"ort_run_share": [0.9, 0.99, 0.995], "open_ms": [400, 450, 500], "rss_after_open": 340 * MIB,
            "weights_file_bytes": 300 * MIB, "eight_sessions_rss_bytes": 50 * MIB,
            "eight_sessions_cache_bytes": 84 * MIB, "beam4_over_greedy": [0.6, 0.7, 0.8]}
    return ok(decode, **{**base, **more})


def write(folder, name, engines, bandwidth=None):
    report = {"engines": engines}
    if bandwidth:
        report["bandwidth"] = bandwidth
    (folder / f"{name}.json").write_text(json.dumps(report))


def targets(folder):
    """compare_targets.py on `folder`: its rows, and its markdown."""
    out = folder / "targets.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), str(folder), "--json", str(out),
                           "--markdown-out", str(folder / "targets.md")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "| target | this run | verdict |" in proc.stdout
    return json.loads(out.read_text()), (folder / "targets.md").read_text()


def row(rows, prefix):
    """The one row whose target starts with `prefix`."""
    found = [r for r in rows if r["target"].startswith(prefix)]
    assert len(found) == 1, (prefix, [r["target"] for r in rows])
    return found[0]


def test_ratios_and_verdicts_follow_the_reports(tmp_path):
    # Default model: rill 1.3x genai (met), 2.9x the loop (not met); its RSS gives the baseline.
    write(tmp_path, "rill-tiny", {"rill": rill(1300.0, rss_after_open=54 * MIB, weights_file_bytes=15 * MIB,
                                                beam4_over_greedy=[0.4, 0.5, 0.6]),
                                  "genai": ok(1000.0), "ort": ok(1300.0 / 2.9)})
    # 100M: rill 0.99x genai (not met), 0.9 of the bandwidth limit (met), open 1.2x (not met).
    write(tmp_path, "bench100m", {"rill": rill(99.0, open_ms=[500, 600, 700]), "genai": ok(100.0),
                                  "ort": ok(90.0, open_ms=[450, 500, 550])},
          bandwidth={"fractions": {"rill": 0.9}, "limits": {"rill": 110.0}, "gb_per_s": 35.0})
    rows, text = targets(tmp_path)
    genai = row(rows, "default model: decode ≥ 1.25×")
    assert genai["verdict"] == "met" and abs(genai["value"] - 1.3) < 1e-12, genai
    loop = row(rows, "default model: decode ≥ 3×")
    assert loop["verdict"] == "not met" and abs(loop["value"] - 2.9) < 1e-12, loop
    big = row(rows, "100M f32: decode ≥ 1.0×")
    assert big["verdict"] == "not met" and abs(big["value"] - 0.99) < 1e-12, big
    assert row(rows, "100M f32: decode ≥ 0.85 of the bandwidth")["verdict"] == "met"
    # A share of the step: at most 3 % around ONNX Runtime's Run (1 % here).
    around = row(rows, "100M: work around")
    assert around["verdict"] == "met" and abs(around["value"] - 0.01) < 1e-12, around
    opening = row(rows, "100M: open")
    assert opening["verdict"] == "not met" and abs(opening["value"] - 1.2) < 1e-12, opening
    # 340 MiB against 1.15 x (300 MiB + (54 - 15) MiB) = 389.85 MiB.
    memory = row(rows, "100M: resident memory")
    assert memory["verdict"] == "met" and abs(memory["value"] - 340 / (1.15 * 339)) < 1e-12, memory
    assert row(rows, "100M: 8 sessions")["verdict"] == "met"
    assert row(rows, "100M: 4-beam")["verdict"] == "met"
    assert row(rows, "default model: 4-beam")["verdict"] == "not met"
    # The long-context reports are missing.
    long_rows = [r for r in rows if r["target"].startswith("long context")]
    assert len(long_rows) == 2 and all(r["verdict"] == "not measured" for r in long_rows)
    met = sum(r["verdict"] == "met" for r in rows)
    assert met == 6 and "6 of 10 measured targets met in this run." in text, text


def test_an_engine_that_did_not_run_leaves_its_targets_unmeasured(tmp_path):
    write(tmp_path, "rill-tiny", {"rill": rill(1300.0), "genai": {"status": "failed", "reason": "x"},
                                  "ort": ok(400.0)})
    rows, _ = targets(tmp_path)
    genai = row(rows, "default model: decode ≥ 1.25×")
    assert genai["verdict"] == "not measured" and genai["value"] is None
    loop = row(rows, "default model: decode ≥ 3×")
    assert loop["verdict"] == "met" and abs(loop["value"] - 3.25) < 1e-12
    assert all(r["verdict"] == "not measured" for r in rows if r["target"].startswith("100M"))


def test_a_missing_folder_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "nothing")], capture_output=True, text=True)
    assert proc.returncode != 0 and "run `make compare` first" in proc.stderr
