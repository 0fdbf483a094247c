"""The exported folder loads in Hugging Face transformers as LlamaForCausalLM and gives
the same logits as the trainer (and so as ONNX Runtime). transformers and torch are a
large install kept out of CI: this test skips, saying so, where they are absent. Run it
with an environment that has them, e.g.
    pip install 'transformers==4.53.*' torch pytest onnx onnxruntime numpy tokenizers safetensors
    RILL_TRAIN=target/release/rill-train python -m pytest tests/python/test_transformers.py
"""
import numpy as np
import pytest

from conftest import candle_logits

torch = pytest.importorskip("torch", reason="torch is not installed (see the module docstring)")
transformers = pytest.importorskip("transformers", reason="transformers is not installed")

TEXTS = ["In the beginning God created", "The function returns a list of", "And the king said unto him, Go"]


def hf_logits(folder, ids):
    # AutoModel: each folder loads as its architecture (LlamaForCausalLM, Qwen2ForCausalLM, ...).
    model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), torch_dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].double().numpy()


def test_default_model_matches_transformers(default_model):
    tok = transformers.AutoTokenizer.from_pretrained(str(default_model))
    from tokenizers import Tokenizer
    ours = Tokenizer.from_file(str(default_model / "tokenizer.json"))
    for text in TEXTS:
        ids = tok(text)["input_ids"]
        assert ids == ours.encode(text).ids, "transformers tokenizes as we do (BOS first)"
        ref = candle_logits(default_model, [ids])[0]
        got = hf_logits(default_model, ids)
        err = np.abs(got - ref).max()
        print(f"{text!r}: max |transformers - candle| = {err:.2e}")
        assert err < 1e-4


def test_untied_random_model_matches_transformers(untied_model):
    ids = [0, 5, 9, 250, 251, 17, 3]
    ref = candle_logits(untied_model, [ids])[0]
    assert np.abs(hf_logits(untied_model, ids) - ref).max() < 1e-4


def test_biased_llama_matches_transformers(biased_model):
    ids = [0, 5, 9, 250, 251, 17, 3]
    ref = candle_logits(biased_model, [ids])[0]
    assert np.abs(hf_logits(biased_model, ids) - ref).max() < 1e-4


def test_qwen2_folder_matches_transformers_qwen2(tmp_path):
    from conftest import variant_folder
    folder = variant_folder(tmp_path / "qwen2", "--model-type", "qwen2", preset="tiny")
    ids = [0, 5, 9, 250, 251, 17, 3]
    ref = candle_logits(folder, [ids])[0]
    assert np.abs(hf_logits(folder, ids) - ref).max() < 1e-4


def test_qwen3_folder_matches_transformers_qwen3(tmp_path):
    from conftest import variant_folder
    folder = variant_folder(tmp_path / "qwen3", "--model-type", "qwen3", preset="tiny")
    ids = [0, 5, 9, 250, 251, 17, 3]
    ref = candle_logits(folder, [ids])[0]
    assert np.abs(hf_logits(folder, ids) - ref).max() < 1e-4


def test_llama3_rope_scaling_matches_transformers(tmp_path):
    from test_rope_scaling import LLAMA3, PROMPT, scaled_folder
    folder = scaled_folder(tmp_path / "scaled", LLAMA3, "hf")
    ref = candle_logits(folder, [PROMPT])[0]
    assert np.abs(hf_logits(folder, PROMPT) - ref).max() < 1e-4


def test_a_bf16_qwen2_checkpoint_written_by_transformers_imports(tmp_path):
    """The whole path a user takes: a Qwen2 checkpoint as transformers saves it (bf16
    safetensors, its own config.json), converted by `rill-train export --out`, gives
    transformers' logits for the same weights."""
    from conftest import Decoder, rill_train
    cfg = transformers.Qwen2Config(vocab_size=300, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                   tie_word_embeddings=True, rope_theta=1e6)
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.normal_(0.0, 0.5)
    model = model.to(torch.bfloat16)
    model.save_pretrained(str(tmp_path / "hf"))
    rill_train("export", "--from", tmp_path / "hf", "--out", tmp_path / "f32", "--dtype", "f32")
    ids = [0, 5, 9, 250, 251, 17, 3]
    with torch.no_grad():
        ref = model.float()(torch.tensor([ids])).logits[0].double().numpy()
    got = Decoder(tmp_path / "f32").whole(ids)
    assert np.abs(got - ref).max() < 1e-4, np.abs(got - ref).max()


@pytest.mark.parametrize("attention", ["hf", "gqa"])
def test_a_bf16_qwen3_checkpoint_written_by_transformers_imports(tmp_path, attention):
    """A Qwen3 checkpoint as transformers saves it (bf16, its own config.json with
    `layer_types` and a `head_dim` that is not hidden_size / heads, query/key norm scales
    that matter), converted by `rill-train export --out`, gives the logits transformers
    computes from the saved checkpoint in f32."""
    from conftest import Decoder, rill_train
    cfg = transformers.Qwen3Config(vocab_size=300, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, head_dim=48,
                                   max_position_embeddings=256, tie_word_embeddings=True, rope_theta=1e6)
    torch.manual_seed(0)
    model = transformers.Qwen3ForCausalLM(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("q_norm.weight", "k_norm.weight")):
                p.uniform_(0.2, 3.0)
    model.to(torch.bfloat16).save_pretrained(str(tmp_path / "hf"))
    rill_train("export", "--from", tmp_path / "hf", "--out", tmp_path / "f32", "--dtype", "f32",
               "--attention", attention)
    ids = [0, 5, 9, 250, 251, 17, 3]
    ref = hf_logits(tmp_path / "hf", ids)
    got = Decoder(tmp_path / "f32").whole(ids)
    assert np.abs(got - ref).max() < 1e-4, np.abs(got - ref).max()


@pytest.mark.parametrize("attention", ["hf", "gqa"])
def test_a_bf16_gemma3_checkpoint_written_by_transformers_imports(tmp_path, attention):
    """A Gemma 3 text checkpoint as transformers saves it (bf16; a config.json that leaves
    out the tied head; sliding and full layers with their own rotary bases, a 4-token
    window shorter than the prompt, a query scalar that is not head_dim, norm scales that
    matter), converted by `rill-train export --out`, gives the logits transformers computes
    from the saved checkpoint in f32, over the whole prompt and token by token."""
    from conftest import Decoder, rill_train
    cfg = transformers.Gemma3TextConfig(
        vocab_size=300, hidden_size=128, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, head_dim=48, max_position_embeddings=256, query_pre_attn_scalar=40,
        sliding_window=4, layer_types=["sliding_attention", "full_attention", "sliding_attention"],
        rope_theta=1e6, rope_local_base_freq=1e4)
    torch.manual_seed(0)
    model = transformers.Gemma3ForCausalLM(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(-0.5, 1.0)
    model.to(torch.bfloat16).save_pretrained(str(tmp_path / "hf"))
    rill_train("export", "--from", tmp_path / "hf", "--out", tmp_path / "f32", "--dtype", "f32",
               "--attention", attention)
    ids = [0, 5, 9, 250, 251, 17, 3, 8, 8, 100]
    ref = hf_logits(tmp_path / "hf", ids)
    dec = Decoder(tmp_path / "f32")
    assert np.abs(dec.whole(ids) - ref).max() < 1e-4, np.abs(dec.whole(ids) - ref).max()
    assert np.abs(dec.stepwise(ids) - ref).max() < 1e-4
