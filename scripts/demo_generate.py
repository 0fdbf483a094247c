#!/usr/bin/env python3
"""Generates text from a rill model folder through ONNX Runtime's Python API.

A stand-in demo until the rill runtime generates (it shows that the exported folder is a
working ONNX decoder with a KV cache). Usage: demo_generate.py MODEL_DIR PROMPT...
"""
import json
import pathlib
import sys

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


def generate(session, cfg, ids, max_new, rng, temperature=0.7, top_k=40):
    layers, kv, hd = cfg["num_hidden_layers"], cfg["num_key_value_heads"], cfg["head_dim"]
    past = {f"past_key_values.{i}.{k}": np.zeros((1, kv, 0, hd), np.float32)
            for i in range(layers) for k in ("key", "value")}
    eos = cfg["eos_token_id"]
    eos = set(eos if isinstance(eos, list) else [eos])
    tokens, step = list(ids), list(ids)
    for _ in range(max_new):
        n_past = len(tokens) - len(step)
        feeds = {
            "input_ids": np.array([step], np.int64),
            "attention_mask": np.ones((1, len(tokens)), np.int64),
            "position_ids": np.arange(n_past, len(tokens), dtype=np.int64)[None],
            **past,
        }
        names = [o.name for o in session.get_outputs()]
        outs = dict(zip(names, session.run(None, feeds)))
        past = {f"past_key_values.{i}.{k}": outs[f"present.{i}.{k}"]
                for i in range(layers) for k in ("key", "value")}
        logits = outs["logits"][0, -1].astype(np.float64) / temperature
        top = np.argsort(logits)[-top_k:]
        p = np.exp(logits[top] - logits[top].max())
        nxt = int(rng.choice(top, p=p / p.sum()))
        if nxt in eos:
            break
        tokens.append(nxt)
        step = [nxt]
    return tokens[len(ids):]


def main():
    folder = pathlib.Path(sys.argv[1])
    cfg = json.loads((folder / "config.json").read_text())
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(7)
    for prompt in sys.argv[2:]:
        ids = tok.encode(prompt).ids  # the post-processor prepends <s>
        new = generate(session, cfg, ids, 40, rng)
        print(f"{prompt}{tok.decode(new)}\n")


if __name__ == "__main__":
    main()
