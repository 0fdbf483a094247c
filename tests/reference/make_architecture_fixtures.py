"""Regenerates tests/reference/fixtures/architectures.json: logits that Hugging Face
transformers computes for small models of each architecture `rill-train export --from`
reads (Llama, Mistral, Qwen2, Qwen3, Gemma 2, Gemma 3 text and multimodal, SmolLM3, Phi-3 with LongRoPE
and partial rotary, Granite, OLMo 2), with weights given by a formula
(`formula_weights`) that tests/python/test_architecture_fixtures.py recomputes without
torch. That test writes the same checkpoint (transformers' own config.json and tensor
names), imports it and checks both attention exports against these logits, so CI checks
each architecture against transformers itself, not only against the trainer's forward.

    python tests/reference/make_architecture_fixtures.py   # needs torch and transformers

The fixture records the transformers version that produced it.
"""
import json
import pathlib
import tempfile

import numpy as np

IDS = [2, 5, 9, 90, 91, 17, 3, 3, 60, 44, 45, 46]


def uniform(seed, n):
    """n reproducible values in [-1, 1): a SplitMix64 hash of (seed, index), integer
    arithmetic only, so any numpy on any machine gives the same bits."""
    with np.errstate(over="ignore"):
        x = np.arange(n, dtype=np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) / 2.0**52 - 1.0


def formula_weights(tensors, gemma):
    """f32 arrays for `tensors` ([name, shape] pairs, in order): norm scales around one
    (around zero for Gemma's offsets from one), biases and matrices scaled to keep
    activations in range."""
    out = {}
    for seed, (name, shape) in enumerate(tensors):
        u = uniform(seed + 1, int(np.prod(shape))).reshape(shape)
        if name.endswith("norm.weight"):
            w = 0.5 * u if gemma else 1.0 + 0.5 * u
        elif name.endswith(".bias") or len(shape) == 1:
            w = 0.3 * u
        elif name.endswith("embed_tokens.weight"):
            w = 0.5 * u
        else:
            w = 1.5 * u / np.sqrt(shape[1])
        out[name] = w.astype(np.float32)
    return out


def configs(transformers):
    small = dict(vocab_size=96, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    return {
        "llama": transformers.LlamaConfig(**small, tie_word_embeddings=False, rope_theta=5e5),
        "mistral": transformers.MistralConfig(**small, sliding_window=5, rope_theta=1e6),
        "qwen2": transformers.Qwen2Config(**small, tie_word_embeddings=True, rope_theta=1e6),
        "qwen3": transformers.Qwen3Config(**small, head_dim=32, tie_word_embeddings=True, rope_theta=1e6),
        # YaRN on a Qwen3 (cos and sin scaled by its attention factor).
        "qwen3_yarn": transformers.Qwen3Config(**small, head_dim=32, tie_word_embeddings=True, rope_theta=1e4,
                                               rope_scaling={"rope_type": "yarn", "factor": 4.0,
                                                             "original_max_position_embeddings": 32}),
        # Phi-3: fused qkv and gate/up matrices, a sliding window.
        "phi3": transformers.Phi3Config(**small, sliding_window=5, pad_token_id=0, rope_theta=1e4),
        # LongRoPE (Phi-3.5): short factors within an 8-position pretraining context, long
        # ones past it, cos and sin scaled by the attention factor; every layer slides.
        "phi3_longrope": transformers.Phi3Config(
            **small, sliding_window=6, pad_token_id=0, rope_theta=1e4, original_max_position_embeddings=8,
            rope_scaling={"type": "longrope", "short_factor": list(np.linspace(1.0, 1.4, 8)),
                          "long_factor": list(np.linspace(1.0, 12.0, 8))}),
        # Phi-4-mini: LongRoPE on the first half of each head only (partial_rotary_factor),
        # a tied head.
        "phi4_mini": transformers.Phi3Config(
            **{**small, "num_attention_heads": 2, "num_key_value_heads": 1}, partial_rotary_factor=0.5,
            pad_token_id=0, tie_word_embeddings=True, rope_theta=1e4, original_max_position_embeddings=8,
            rope_scaling={"type": "longrope", "short_factor": list(np.linspace(1.0, 1.2, 8)),
                          "long_factor": list(np.linspace(1.5, 9.0, 8))}),
        # Granite: embeddings, residual branches, attention scores and logits scaled.
        "granite": transformers.GraniteConfig(
            **small, tie_word_embeddings=True, rope_theta=1e4, embedding_multiplier=3.0, residual_multiplier=0.5,
            attention_multiplier=0.1, logits_scaling=2.0),
        # OLMo 2: no input norm; queries and keys normalised over the whole projection,
        # attention and MLP outputs normalised before they join the residual stream.
        "olmo2": transformers.Olmo2Config(**small, tie_word_embeddings=False, rope_theta=5e5, pad_token_id=0),
        "smollm3": transformers.SmolLM3Config(**{**small, "num_hidden_layers": 3}, no_rope_layer_interval=2, pad_token_id=0,
                                              tie_word_embeddings=True, rope_theta=2e6),
        # Gemma 2: Gemma 3's layer without query/key norms, layers alternately sliding and
        # full on one rotary base, attention scores and final logits soft-capped.
        "gemma2": transformers.Gemma2Config(
            **{**small, "num_hidden_layers": 3}, head_dim=32, query_pre_attn_scalar=24, sliding_window=4,
            rope_theta=1e4, attn_logit_softcapping=3.0, final_logit_softcapping=10.0),
        # A multimodal Gemma 3 (Gemma 3 4B and larger): the same language model under a
        # vision tower; rill-train imports the language model alone.
        "gemma3": transformers.Gemma3Config(
            text_config=transformers.Gemma3TextConfig(
                **{**small, "num_hidden_layers": 3}, head_dim=32, query_pre_attn_scalar=24, sliding_window=4,
                layer_types=["sliding_attention", "full_attention", "sliding_attention"], rope_theta=1e6,
                rope_local_base_freq=1e4),
            vision_config=transformers.SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                                          num_attention_heads=2, image_size=28, patch_size=14),
            mm_tokens_per_image=4, boi_token_index=93, eoi_token_index=94, image_token_index=95),
        "gemma3_text": transformers.Gemma3TextConfig(
            **{**small, "num_hidden_layers": 3}, head_dim=32, query_pre_attn_scalar=24, sliding_window=4,
            layer_types=["sliding_attention", "full_attention", "sliding_attention"], rope_theta=1e6,
            rope_local_base_freq=1e4),
    }


def rounded(logits):
    return [[float(f"{x:.7g}") for x in row] for row in logits]


def incremental_logits(model, chunk):
    """Logits of IDS fed `chunk` tokens at a time through transformers' cache."""
    import torch
    from transformers import DynamicCache
    cache, rows = DynamicCache(), []
    with torch.no_grad():
        for start in range(0, len(IDS), chunk):
            out = model(torch.tensor([IDS[start:start + chunk]]), past_key_values=cache, use_cache=True)
            rows.extend(out.logits[0].numpy())
    return np.array(rows)


def saved_name_of(model):
    """Maps a state-dict name to the name save_pretrained writes (transformers' checkpoint
    conversion mapping, reversed)."""
    import re
    mapping = getattr(model, "_checkpoint_conversion_mapping", {}) or {}

    def name(key):
        for saved, loaded in mapping.items():
            if key.startswith(loaded):
                return re.sub("^" + re.escape(loaded), saved.lstrip("^"), key)
        return key
    return name


def main():
    import torch
    import transformers

    cases = {}
    for name, cfg in configs(transformers).items():
        # Gemma 2's soft-capping exists in transformers' eager attention only (as its model
        # card says to run it).
        extra = {"attn_implementation": "eager"} if name == "gemma2" else {}
        if name == "gemma3":
            model = transformers.Gemma3ForConditionalGeneration(cfg).float()
        else:
            model = transformers.AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32, **extra)
        # The tensors by the names save_pretrained writes (a multimodal Gemma 3's as
        # published: `language_model.model.*`, not the module names transformers 4.52+
        # loads them into).
        on_disk = saved_name_of(model)
        state = {k: v for k, v in model.state_dict().items()
                 if not (cfg.tie_word_embeddings and k == "lm_head.weight")}
        tensors = [[on_disk(k), list(v.shape)] for k, v in state.items()]
        weights = formula_weights(tensors, gemma=name.startswith("gemma"))
        model.load_state_dict({k: torch.from_numpy(weights[on_disk(k)]) for k in state}, strict=False)
        if cfg.tie_word_embeddings:
            model.tie_weights()
        model.eval()
        with tempfile.TemporaryDirectory() as d:
            model.save_pretrained(d)
            saved = json.loads((pathlib.Path(d) / "config.json").read_text())
            from safetensors import safe_open
            with safe_open(f"{d}/model.safetensors", "np") as f:
                assert sorted(f.keys()) == sorted(weights), f"{name}: tensor names as saved"
        if name == "gemma3":
            # Published Gemma 3 configs leave out what equals Gemma3TextConfig's defaults.
            defaults = transformers.Gemma3TextConfig().to_dict()
            saved["text_config"] = {k: v for k, v in saved["text_config"].items()
                                    if k == "model_type" or defaults.get(k, object()) != v}
        with torch.no_grad():
            logits = model(torch.tensor([IDS])).logits[0].numpy()
        cases[name] = {"config": saved, "tensors": tensors, "logits": rounded(logits)}
        if (getattr(cfg, "rope_scaling", None) or {}).get("type") == "longrope":
            # LongRoPE's factors depend on the sequence's length when a chunk runs, so a
            # cached decode differs from one pass over the whole sequence (the cache keeps
            # keys rotated with the short factors): record transformers' own.
            cases[name]["stepwise_logits"] = rounded(incremental_logits(model, 1))
            cases[name]["chunked_logits"] = rounded(incremental_logits(model, 5))
    out = {"generator": "tests/reference/make_architecture_fixtures.py",
           "transformers": transformers.__version__, "ids": IDS, "models": cases}
    path = pathlib.Path(__file__).parent / "fixtures" / "architectures.json"
    path.write_text(json.dumps(out) + "\n")
    print(f"wrote {path}: {', '.join(cases)}")


if __name__ == "__main__":
    main()
