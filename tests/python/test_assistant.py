"""Assisted generation (`rill generate --assistant DIR`, `Session::set_assistant`): a
model with the same tokenizer proposes tokens, the session's model checks them in one
pass each time. The output must not change, greedy or sampled with a seed, whatever the
assistant guesses; a good assistant saves forward passes of the model."""
import json
import re
import shutil

import pytest

from conftest import DEFAULT_MODEL, rill_train
from test_cli import rill

PROMPT = "And God said, Let there be light: and there was light. And God saw"


@pytest.fixture(scope="module")
def stranger(tmp_path_factory):
    """A random model with the default model's tokenizer: its guesses are mostly wrong."""
    out = tmp_path_factory.mktemp("assistant") / "random"
    rill_train("init", "--out", out, "--preset", "test", "--tokenizer-from", DEFAULT_MODEL, "--seed", 3)
    cfg = json.loads((out / "config.json").read_text())
    cfg["eos_token_id"] = json.loads((DEFAULT_MODEL / "config.json").read_text())["eos_token_id"]
    (out / "config.json").write_text(json.dumps(cfg))
    return out


def generate(*flags):
    out = rill("generate", "--model", DEFAULT_MODEL, "--prompt", PROMPT, "--max-new-tokens", "48",
               "--stats", *flags)
    assert out.returncode == 0, out.stderr
    passes = int(re.search(r"(\d+) forward passes", out.stderr).group(1))
    return out.stdout, passes


@pytest.mark.parametrize("mode", [["--greedy"], ["--temperature", "0.9", "--seed", "5"]])
def test_the_output_is_the_same_with_any_assistant(stranger, mode):
    alone, passes = generate(*mode)
    assert alone.strip()
    for assistant in [DEFAULT_MODEL, stranger]:
        assisted, _ = generate(*mode, "--assistant", assistant)
        assert assisted == alone, assistant


def test_a_right_guessing_assistant_saves_passes_of_the_model():
    # The model as its own assistant guesses every token: 48 tokens in 3 passes of the
    # model (20 proposed and checked at a time, none dropped for low confidence), not 48.
    settings = ["--greedy", "--generation-config", '{"eos_token_id": [], "assistant_confidence_threshold": 0}']
    alone, passes = generate(*settings)
    assisted, assisted_passes = generate(*settings, "--assistant", DEFAULT_MODEL)
    assert assisted == alone
    assert (passes, assisted_passes) == (47, 3)


def test_what_assisted_generation_refuses(stranger, tmp_path):
    other = tmp_path / "other-eos"
    shutil.copytree(DEFAULT_MODEL, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["eos_token_id"] = 7
    (other / "config.json").write_text(json.dumps(cfg))
    out = rill("generate", "--model", DEFAULT_MODEL, "--prompt", PROMPT, "--assistant", other)
    assert out.returncode != 0 and "does not share the model's tokenizer" in out.stderr, out.stderr
    out = rill("generate", "--model", DEFAULT_MODEL, "--prompt", PROMPT, "--assistant", stranger,
               "--num-beams", "2")
    assert out.returncode != 0 and "cannot be combined with beam search" in out.stderr, out.stderr
    out = rill("generate", "--model", DEFAULT_MODEL, "--prompt", PROMPT, "--assistant", stranger,
               "--generation-config", '{"prompt_lookup_num_tokens": 3}')
    assert out.returncode != 0 and "prompt_lookup_num_tokens" in out.stderr, out.stderr
    out = rill("generate", "--model", DEFAULT_MODEL, "--prompt", PROMPT, "--assistant", stranger,
               "--generation-config", '{"num_assistant_tokens_schedule": "fast"}')
    assert out.returncode != 0 and "heuristic" in out.stderr, out.stderr
