#!/usr/bin/env python3
"""Writes reference fixtures for rill's samplers and search strategies from Hugging Face
transformers' own definitions (its LogitsProcessor / LogitsWarper classes and its beam and
group-beam search), run on the default model folder, which transformers loads as
LlamaForCausalLM.

transformers is pinned to 4.53.* (group beam search left its core in 4.55). torch and
transformers are a large install kept out of CI: CI only reads the JSON this writes.

    python3 -m venv /tmp/hf && /tmp/hf/bin/pip install 'transformers==4.53.*' torch
    /tmp/hf/bin/python tests/reference/make_sampler_fixtures.py models/rill-tiny tests/reference/fixtures

Outputs:
  processors.json  inputs (input_ids, scores) and, per processor and setting, HF's output
                   scores (float32, -inf kept as the string "-inf").
  beam.json        prompts, settings (num_beams, length_penalty, early_stopping,
                   num_return_sequences, num_beam_groups, diversity_penalty, and the
                   processors sequence_bias, bad_words_ids, min_length, min_new_tokens,
                   suppress_tokens, begin_suppress_tokens with eos_token_id, and
                   stop_strings) and HF's returned sequences and sequence scores.
"""
import json
import pathlib
import sys

import numpy as np
import torch
import transformers
from transformers import (AutoTokenizer, EpsilonLogitsWarper, EtaLogitsWarper,
                          LlamaForCausalLM, MinLengthLogitsProcessor,
                          MinNewTokensLengthLogitsProcessor, MinPLogitsWarper,
                          NoBadWordsLogitsProcessor, NoRepeatNGramLogitsProcessor,
                          RepetitionPenaltyLogitsProcessor, SequenceBiasLogitsProcessor,
                          SuppressTokensAtBeginLogitsProcessor, SuppressTokensLogitsProcessor,
                          TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper,
                          TypicalLogitsWarper)

assert transformers.__version__.startswith("4.53."), transformers.__version__


def encode(t):
    return [x if np.isfinite(x) else ("-inf" if x < 0 else "inf") for x in t.reshape(-1).tolist()]


def processors(vocab):
    gen = torch.Generator().manual_seed(1234)
    batch, seq = 2, 12
    input_ids = torch.randint(0, vocab, (batch, seq), generator=gen)
    input_ids[0, -4:] = input_ids[0, 2:6]  # a repeated n-gram for no_repeat_ngram_size
    scores = torch.randn(batch, vocab, generator=gen) * 3
    cases = []
    settings = [
        ("temperature", {"temperature": 0.7}, TemperatureLogitsWarper(0.7)),
        ("temperature", {"temperature": 1.3}, TemperatureLogitsWarper(1.3)),
        ("top_k", {"top_k": 1}, TopKLogitsWarper(1)),
        ("top_k", {"top_k": 50}, TopKLogitsWarper(50)),
        ("top_p", {"top_p": 0.9}, TopPLogitsWarper(0.9)),
        ("top_p", {"top_p": 0.5, "min_tokens_to_keep": 3}, TopPLogitsWarper(0.5, min_tokens_to_keep=3)),
        ("min_p", {"min_p": 0.05}, MinPLogitsWarper(0.05)),
        ("min_p", {"min_p": 0.2}, MinPLogitsWarper(0.2)),
        ("typical_p", {"typical_p": 0.9}, TypicalLogitsWarper(0.9)),
        ("typical_p", {"typical_p": 0.5}, TypicalLogitsWarper(0.5)),
        ("repetition_penalty", {"repetition_penalty": 1.3}, RepetitionPenaltyLogitsProcessor(1.3)),
        ("repetition_penalty", {"repetition_penalty": 0.8}, RepetitionPenaltyLogitsProcessor(0.8)),
        ("no_repeat_ngram_size", {"no_repeat_ngram_size": 2}, NoRepeatNGramLogitsProcessor(2)),
        ("no_repeat_ngram_size", {"no_repeat_ngram_size": 4}, NoRepeatNGramLogitsProcessor(4)),
        ("bad_words_ids", {"bad_words_ids": [[5], [int(input_ids[0, -1]) + 0, 17], [int(input_ids[1, -2]), int(input_ids[1, -1]), 42]]},
         NoBadWordsLogitsProcessor([[5], [int(input_ids[0, -1]), 17], [int(input_ids[1, -2]), int(input_ids[1, -1]), 42]], eos_token_id=1)),
        ("sequence_bias", {"sequence_bias": [[[7], 5.0], [[11], -3.0]]},
         SequenceBiasLogitsProcessor(sequence_bias=[[[7], 5.0], [[11], -3.0]])),
        # The length-dependent ones, each on both sides of its condition (the rows have 12
        # tokens; end-of-sequence is id 1).
        ("min_length", {"min_length": 13}, MinLengthLogitsProcessor(13, eos_token_id=1)),
        ("min_length", {"min_length": 12}, MinLengthLogitsProcessor(12, eos_token_id=1)),
        ("min_new_tokens", {"min_new_tokens": 5, "prompt_length": 8},
         MinNewTokensLengthLogitsProcessor(8, 5, eos_token_id=1)),
        ("min_new_tokens", {"min_new_tokens": 4, "prompt_length": 8},
         MinNewTokensLengthLogitsProcessor(8, 4, eos_token_id=1)),
        ("suppress_tokens", {"suppress_tokens": [3, 9, 200]},
         SuppressTokensLogitsProcessor([3, 9, 200])),
        ("begin_suppress_tokens", {"begin_suppress_tokens": [1, 5], "begin_index": 12},
         SuppressTokensAtBeginLogitsProcessor([1, 5], begin_index=12)),
        ("begin_suppress_tokens", {"begin_suppress_tokens": [1, 5], "begin_index": 11},
         SuppressTokensAtBeginLogitsProcessor([1, 5], begin_index=11)),
        ("epsilon_cutoff", {"epsilon_cutoff": 3e-3}, EpsilonLogitsWarper(3e-3)),
        ("epsilon_cutoff", {"epsilon_cutoff": 0.2, "min_tokens_to_keep": 3},
         EpsilonLogitsWarper(0.2, min_tokens_to_keep=3)),
        ("eta_cutoff", {"eta_cutoff": 2e-3}, EtaLogitsWarper(2e-3)),
        ("eta_cutoff", {"eta_cutoff": 0.5, "min_tokens_to_keep": 2},
         EtaLogitsWarper(0.5, min_tokens_to_keep=2)),
    ]
    for name, params, proc in settings:
        out = proc(input_ids.clone(), scores.clone())
        cases.append({"processor": name, "params": params, "output": encode(out)})
    return {
        "transformers": transformers.__version__,
        "vocab": vocab,
        "input_ids": input_ids.tolist(),
        "scores": encode(scores),
        "cases": cases,
    }


def beams(folder):
    tok = AutoTokenizer.from_pretrained(folder)
    model = LlamaForCausalLM.from_pretrained(folder, torch_dtype=torch.float32).eval()
    prompts = ["In the beginning God created", "The function returns a"]
    settings = [
        {"num_beams": 4, "length_penalty": 1.0, "early_stopping": False, "num_return_sequences": 2},
        {"num_beams": 4, "length_penalty": 0.5, "early_stopping": True, "num_return_sequences": 1},
        {"num_beams": 3, "length_penalty": 2.0, "early_stopping": "never", "num_return_sequences": 3},
        {"num_beams": 4, "num_beam_groups": 2, "diversity_penalty": 1.0, "length_penalty": 1.0,
         "early_stopping": False, "num_return_sequences": 4},
        {"num_beams": 6, "num_beam_groups": 3, "diversity_penalty": 0.5, "length_penalty": 1.0,
         "early_stopping": True, "num_return_sequences": 2},
    ]
    cases = []
    for prompt in prompts:
        ids = tok(prompt, return_tensors="pt")["input_ids"]
        n = ids.shape[1]
        # The logits processors beam search applies, on tokens this prompt's plain search
        # picks (so that each one changes the result): its first new token, a later pair,
        # and a token it ends a hypothesis early at when made end-of-sequence.
        with torch.no_grad():
            plain = model.generate(ids, do_sample=False, max_new_tokens=16, pad_token_id=2,
                                   num_beams=4, num_return_sequences=1)[0].tolist()
        first, pair, stop = plain[n], plain[n + 2:n + 4], plain[n + 3]
        base = {"num_beams": 4, "length_penalty": 1.0, "early_stopping": False, "num_return_sequences": 2}
        with_processors = [
            {**base, "suppress_tokens": [first]},
            {**base, "begin_suppress_tokens": [first], "bad_words_ids": [pair]},
            {**base, "sequence_bias": [[[first], -2.0], [[pair[0]], 1.5]]},
            {**base, "eos_token_id": [stop], "min_new_tokens": 9},
            {**base, "eos_token_id": [stop], "min_length": n + 7},
            {**base, "eos_token_id": [stop]},
            {"num_beams": 4, "num_beam_groups": 2, "diversity_penalty": 1.0, "length_penalty": 1.0,
             "early_stopping": False, "num_return_sequences": 2, "suppress_tokens": [first]},
        ]
        # Stop strings (StopStringCriteria, which beam search applies to every candidate):
        # one across the boundary of the plain search's third and fourth new tokens, and
        # the word of its sixth with one that never comes.
        third, fourth = tok.decode(plain[n + 2:n + 3]), tok.decode(plain[n + 3:n + 4])
        across = third[-2:] + fourth[:2]
        word = tok.decode(plain[n + 5:n + 6]).strip()
        with_stops = [
            {**base, "stop_strings": [across]},
            {**base, "stop_strings": [word, "zqxj"], "early_stopping": True,
             "num_return_sequences": 3},
        ]
        for s in settings + with_processors + with_stops:
            extra = {"tokenizer": tok} if "stop_strings" in s else {}
            with torch.no_grad():
                out = model.generate(ids, do_sample=False, max_new_tokens=16, output_scores=True,
                                     return_dict_in_generate=True, pad_token_id=2, **s, **extra)
            cases.append({
                "prompt": prompt,
                "prompt_ids": ids[0].tolist(),
                "settings": s,
                "max_new_tokens": 16,
                "sequences": out.sequences.tolist(),
                "sequence_scores": out.sequences_scores.tolist(),
            })
    return {"transformers": transformers.__version__, "cases": cases}


def main():
    folder, out = sys.argv[1], pathlib.Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    vocab = json.loads((pathlib.Path(folder) / "config.json").read_text())["vocab_size"]
    # The processors need no model: a 256-token slice keeps the fixture small.
    (out / "processors.json").write_text(json.dumps(processors(min(vocab, 256))))
    (out / "beam.json").write_text(json.dumps(beams(folder), indent=1))
    print(f"wrote {out}/processors.json and {out}/beam.json")


if __name__ == "__main__":
    main()
