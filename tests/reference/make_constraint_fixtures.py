#!/usr/bin/env python3
"""Writes the reference fixture of rill's token text and of its `regex` sampler, from
sources independent of rill: the default model's tokenizer.json read through GPT-2's
byte-to-unicode table (transformers' `bytes_to_unicode`), and Python's third-party
`regex` module (a transformers dependency), whose `fullmatch(..., partial=True)` says
whether a text can still be extended to a full match.

    /tmp/hf/bin/python tests/reference/make_constraint_fixtures.py models/rill-tiny tests/reference/fixtures

Output, constraints.json:
  token_bytes  every id's bytes as hex (what the token adds to the text; special tokens
               add nothing)
  cases        pattern, the text generated so far (`prefix`), the ids whose text keeps a
               full match reachable (`allowed`; only tokens whose bytes are UTF-8 on
               their own are judged, Python's matcher works on str: the top-level
               `judged` lists them),
               and whether the prefix is itself a full match (`complete`: an end of
               sequence may come).
"""
import json
import pathlib
import sys

import regex
from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

CASES = [
    (r"[0-9]{3}-[0-9]{4}", ["", "55", "555-12", "555-1234"]),
    (r"(yes|no|maybe)", ["", "ma", "no"]),
    (r" (the|a) [a-z]+ (of|in) (the|a) [a-z]+[.,]", ["", " the kin", " the king of the"]),
    (r"[A-Z][a-z]*( [a-z]+)*\.", ["", "And", "And the"]),
    (r"caf(é|e)s? [a-z]+", ["caf", "café"]),
]


def token_bytes(folder):
    tok = json.loads((folder / "tokenizer.json").read_text())
    assert tok["decoder"]["type"] == "ByteLevel", tok["decoder"]
    inverse = {c: b for b, c in bytes_to_unicode().items()}
    out = {i: bytes(inverse[c] for c in s) for s, i in tok["model"]["vocab"].items()}
    for t in tok.get("added_tokens", []):
        out[t["id"]] = b"" if t["special"] else t["content"].encode()
    return out


def main():
    folder, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    vocab = json.loads((folder / "config.json").read_text())["vocab_size"]
    tb = token_bytes(folder)
    texts = {}
    for i, b in tb.items():
        try:
            texts[i] = b.decode("utf-8")
        except UnicodeDecodeError:
            pass
    judged = sorted(i for i, t in texts.items() if t)
    cases = []
    for pattern, prefixes in CASES:
        for prefix in prefixes:
            allowed = [i for i in judged if regex.fullmatch(pattern, prefix + texts[i], partial=True)]
            cases.append({
                "pattern": pattern,
                "prefix": prefix,
                "allowed": allowed,
                "complete": regex.fullmatch(pattern, prefix) is not None,
            })
    out = {
        "regex": regex.__version__,
        "vocab_size": vocab,
        "token_bytes": [tb.get(i, b"").hex() for i in range(vocab)],
        "judged": judged,
        "cases": cases,
    }
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "constraints.json").write_text(json.dumps(out))
    print(f"wrote {dest}/constraints.json: {len(cases)} cases")


if __name__ == "__main__":
    main()
