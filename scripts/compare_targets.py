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


class Targets:
    """The rows of the table: (target, figure, limit, verdict)."""

    def __init__(self):
        self.rows = []

    def add(self, target, value, limit, at_least, figure):
        """One target; `value` None when not measured. `at_least`: met when value >= limit
        (else when value <= limit)."""
        if value is None:
            self.rows.append({"target": target, "value": None, "limit": limit, "verdict": "not measured",
                              "figure": figure or "—"})
            return
        met = value >= limit if at_least else value <= limit
        self.rows.append({"target": target, "value": value, "limit": limit, "verdict": "met" if met else "not met",
                          "figure": figure})

    def ratio(self, target, report, a, b, limit):
        """Decode tokens/s of engine `a` over engine `b` in `report`, at least `limit`."""
        ea, eb = engine(report, a), engine(report, b)
        if not (ea and eb):
            return self.add(target, None, limit, True, None)
        r = decode(ea) / decode(eb)
        self.add(target, r, limit, True, f"{r:.2f}× ({decode(ea):,.1f} vs {decode(eb):,.1f} tokens/s)")


def read(folder):
    """Issue 6's targets against the reports in `folder`."""
    tiny, tiny_long = load(folder, "rill-tiny"), load(folder, "rill-tiny-long")
    big, big_long = load(folder, "bench100m"), load(folder, "bench100m-long")
    t = Targets()
    t.ratio("default model: decode ≥ 1.25× onnxruntime-genai, same graph", tiny, "rill", "genai", 1.25)
    t.ratio("default model: decode ≥ 3× the Python ORT loop, same graph", tiny, "rill", "ort", 3.0)
    t.ratio("100M f32: decode ≥ 1.0× onnxruntime-genai, same graph", big, "rill", "genai", 1.0)
    frac = ((big or {}).get("bandwidth") or {}).get("fractions", {}).get("rill") if engine(big, "rill") else None
    bw = (big or {}).get("bandwidth") or {}
    t.add("100M f32: decode ≥ 0.85 of the bandwidth limit", frac, 0.85, True,
          frac is not None and f"{frac:.2f} (limit {bw['limits']['rill']:.1f} tokens/s at {bw['gb_per_s']:.1f} GB/s)")
    t.ratio("long context (1,500-token prompt), default model: rill's fused export ≥ 1.5× genai on the plain graph",
            tiny_long, "rill", "genai", 1.5)
    t.ratio("long context, 100M: rill's fused export ≥ 1.5× genai on the plain graph", big_long, "rill", "genai", 1.5)
    rill = engine(big, "rill")
    around = 1 - rill["ort_run_share"][1] if rill else None
    t.add("100M: work around ONNX Runtime ≤ 3 % of a step", around, 0.03, False,
          around is not None and f"{around * 100:.1f} %")
    ort = engine(big, "ort")
    if rill and ort:
        o = rill["open_ms"][1] / ort["open_ms"][1]
        t.add("100M: open ≤ 1.1× a bare ONNX Runtime session creation (the Python loop's InferenceSession)", o, 1.1,
              False, f"{o:.2f}× ({rill['open_ms'][1]:.0f} vs {ort['open_ms'][1]:.0f} ms)")
    else:
        t.add("100M: open ≤ 1.1× a bare ONNX Runtime session creation", None, 1.1, False, None)
    small = engine(tiny, "rill")
    if rill and small and rill.get("weights_file_bytes") and small.get("weights_file_bytes"):
        base = small["rss_after_open"] - small["weights_file_bytes"]
        allowed = 1.15 * (rill["weights_file_bytes"] + base)
        t.add("100M: resident memory after open ≤ 1.15 × (weights + ONNX Runtime's baseline)",
              rill["rss_after_open"] / allowed, 1.0, False,
              f"{rill['rss_after_open'] / MIB:.1f} MiB against {allowed / MIB:.1f} MiB allowed "
              f"(weights {rill['weights_file_bytes'] / MIB:.1f} MiB, baseline {base / MIB:.1f} MiB)")
    else:
        t.add("100M: resident memory after open ≤ 1.15 × (weights + ONNX Runtime's baseline)", None, 1.0, False, None)
    if rill and rill.get("eight_sessions_cache_bytes"):
        e = rill["eight_sessions_rss_bytes"] / rill["eight_sessions_cache_bytes"]
        t.add("100M: 8 sessions cost 8 KV caches and no more weights (resident growth ≤ 1.15 × the caches)", e, 1.15,
              False, f"+{rill['eight_sessions_rss_bytes'] / MIB:.1f} MiB for "
                     f"{rill['eight_sessions_cache_bytes'] / MIB:.1f} MiB of caches")
    else:
        t.add("100M: 8 sessions cost 8 KV caches and no more weights", None, 1.15, False, None)
    for label, report in (("100M", big), ("default model", tiny)):
        e = engine(report, "rill")
        b = e.get("beam4_over_greedy") if e else None
        t.add(f"{label}: 4-beam search ≥ 0.66× the tokens/s of greedy", b and b[1], 0.66, True,
              b and f"{b[1]:.2f} (min {b[0]:.2f}, max {b[2]:.2f} over the repetitions)")
    return t.rows


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
