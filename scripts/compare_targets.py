#!/usr/bin/env python3
"""Issue 6's targets read from one `make compare` run: each target's figure, its limit, and
whether this run meets it.

    scripts/compare_targets.py build/compare [--markdown-out FILE] [--json FILE]

Reads the JSON reports that `make compare` writes into the folder (`rill-tiny.json`: every
engine on the default model's model.onnx; `rill-tiny-long.json`: the 1,500-token prompt on
the default model, rill on its fused export; `bench100m.json`, `bench100m-long.json`: the
same on the 100M folder) and prints one table. A report that is missing, or an engine in it
that did not run, makes its targets "not measured". Ratios are of the medians the tables
show (the median pass where the row took passes); one run settles nothing on a noisy host,
so the table is a reading of this run, not a verdict on the runtime.

ONNX Runtime's own baseline, for the memory target, is rill's resident memory after opening
the default model less its weights file: the process, the loaded library and one session,
an upper bound of the baseline.
"""
import argparse
import json
import pathlib
import sys

MIB = 1048576


def load(folder, name):
    """The report `name`.json in `folder`, or None."""
    path = pathlib.Path(folder) / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def engine(report, name):
    """An engine's figures from a report, or None when it is missing or did not run."""
    e = (report or {}).get("engines", {}).get(name)
    return e if e and e.get("status") == "ok" else None


def decode(e):
    return e["decode_tokens_per_s"][1]


def target(text, limit, at_least, measured):
    """One row: `measured` is (value, figure), or None when not measured; met when value >=
    limit (`at_least`), else when value <= limit."""
    if measured is None:
        return {"target": text, "value": None, "limit": limit, "verdict": "not measured", "figure": "—"}
    value, figure = measured
    met = value >= limit if at_least else value <= limit
    return {"target": text, "value": value, "limit": limit, "verdict": "met" if met else "not met", "figure": figure}


def decode_ratio(report, a, b):
    """Decode tokens/s of engine `a` over engine `b` in `report`."""
    ea, eb = engine(report, a), engine(report, b)
    if not (ea and eb):
        return None
    r = decode(ea) / decode(eb)
    return r, f"{r:.2f}× ({decode(ea):,.1f} vs {decode(eb):,.1f} tokens/s)"


def bandwidth_fraction(report):
    """rill's decode rate over its bandwidth limit."""
    bw = (report or {}).get("bandwidth") or {}
    frac = bw.get("fractions", {}).get("rill")
    if frac is None or not engine(report, "rill"):
        return None
    return frac, f"{frac:.2f} (limit {bw['limits']['rill']:.1f} tokens/s at {bw['gb_per_s']:.1f} GB/s)"


def around_run(report):
    """The share of rill's step outside ONNX Runtime's Run."""
    rill = engine(report, "rill")
    if not rill:
        return None
    share = 1 - rill["ort_run_share"][1]
    return share, f"{share * 100:.1f} %"


def open_ratio(report):
    """rill's open time over the Python loop's InferenceSession creation."""
    rill, ort = engine(report, "rill"), engine(report, "ort")
    if not (rill and ort):
        return None
    r = rill["open_ms"][1] / ort["open_ms"][1]
    return r, f"{r:.2f}× ({rill['open_ms'][1]:.0f} vs {ort['open_ms'][1]:.0f} ms)"


def memory(report, small_report):
    """rill's resident memory after open over what the target allows, the baseline from
    the default model's report."""
    rill, small = engine(report, "rill"), engine(small_report, "rill")
    if not (rill and small and rill.get("weights_file_bytes") and small.get("weights_file_bytes")):
        return None
    base = small["rss_after_open"] - small["weights_file_bytes"]
    allowed = 1.15 * (rill["weights_file_bytes"] + base)
    return rill["rss_after_open"] / allowed, (
        f"{rill['rss_after_open'] / MIB:.1f} MiB against {allowed / MIB:.1f} MiB allowed "
        f"(weights {rill['weights_file_bytes'] / MIB:.1f} MiB, baseline {base / MIB:.1f} MiB)")


def eight_sessions(report):
    """The resident growth of eight more sessions over their caches' bytes."""
    rill = engine(report, "rill")
    if not (rill and rill.get("eight_sessions_cache_bytes")):
        return None
    grown, caches = rill["eight_sessions_rss_bytes"], rill["eight_sessions_cache_bytes"]
    return grown / caches, f"+{grown / MIB:.1f} MiB for {caches / MIB:.1f} MiB of caches"


def beam_ratio(report):
    """4-beam steps/s over greedy tokens/s (rill bench's paired repetitions)."""
    b = (engine(report, "rill") or {}).get("beam4_over_greedy")
    if not b:
        return None
    return b[1], f"{b[1]:.2f} (min {b[0]:.2f}, max {b[2]:.2f} over the repetitions)"


def read(folder):
    """Issue 6's targets against the reports in `folder`."""
    tiny, tiny_long = load(folder, "rill-tiny"), load(folder, "rill-tiny-long")
    big, big_long = load(folder, "bench100m"), load(folder, "bench100m-long")
    return [
        target("default model: decode ≥ 1.25× onnxruntime-genai, same graph", 1.25, True,
               decode_ratio(tiny, "rill", "genai")),
        target("default model: decode ≥ 3× the Python ORT loop, same graph", 3.0, True,
               decode_ratio(tiny, "rill", "ort")),
        target("100M f32: decode ≥ 1.0× onnxruntime-genai, same graph", 1.0, True, decode_ratio(big, "rill", "genai")),
        target("100M f32: decode ≥ 0.85 of the bandwidth limit", 0.85, True, bandwidth_fraction(big)),
        target("long context (1,500-token prompt), default model: rill's fused export ≥ 1.5× genai on the plain "
               "graph", 1.5, True, decode_ratio(tiny_long, "rill", "genai")),
        target("long context, 100M: rill's fused export ≥ 1.5× genai on the plain graph", 1.5, True,
               decode_ratio(big_long, "rill", "genai")),
        target("100M: work around ONNX Runtime ≤ 3 % of a step", 0.03, False, around_run(big)),
        target("100M: open ≤ 1.1× a bare ONNX Runtime session creation (the Python loop's InferenceSession)", 1.1,
               False, open_ratio(big)),
        target("100M: resident memory after open ≤ 1.15 × (weights + ONNX Runtime's baseline)", 1.0, False,
               memory(big, tiny)),
        target("100M: 8 sessions cost 8 KV caches and no more weights (resident growth ≤ 1.15 × the caches)", 1.15,
               False, eight_sessions(big)),
        target("100M: 4-beam search ≥ 0.66× the tokens/s of greedy", 0.66, True, beam_ratio(big)),
        target("default model: 4-beam search ≥ 0.66× the tokens/s of greedy", 0.66, True, beam_ratio(tiny)),
    ]


def markdown(rows, folder):
    out = [f"**Issue 6's targets in this run** ({folder}; `scripts/compare_targets.py`)", "",
           "| target | this run | verdict |", "|---|---|---|"]
    out += [f"| {r['target']} | {r['figure']} | {r['verdict']} |" for r in rows]
    met = sum(r["verdict"] == "met" for r in rows)
    measured = sum(r["verdict"] != "not measured" for r in rows)
    out += ["", f"{met} of {measured} measured targets met in this run."]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="make compare's output folder (build/compare)")
    ap.add_argument("--markdown-out", help="also write the table here")
    ap.add_argument("--json", help="write the rows as JSON here")
    args = ap.parse_args()
    if not pathlib.Path(args.folder).is_dir():
        sys.exit(f"{args.folder} is not a folder: run `make compare` first")
    rows = read(args.folder)
    text = markdown(rows, args.folder)
    print(text)
    if args.markdown_out:
        pathlib.Path(args.markdown_out).write_text(text + "\n")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
