#!/usr/bin/env python3
"""`make compare`: rill against its peers on one model folder, in one run, one table.

Engines, each in its own subprocess (so each one's resident memory is its own) and each
with the same intra-op thread count set explicitly:

  rill    `rill bench --json` (target/release/rill)
  genai   onnxruntime-genai's Python package, on a temporary copy of the folder (big files
          symlinked) with a genai_config.json written for the folder's graph
  ort     a straightforward Python onnxruntime + numpy greedy loop over the same graph
  llama   llama.cpp through llama-cpp-python, on the folder's weights converted here to
          GGUF (same dtype; cached under build/compare/gguf/); with --llama-quant TYPE[,TYPE]
          (q4_0, q4_1, q8_0, ...) that GGUF quantized by llama.cpp's own quantizer
          (llama_model_quantize, its default choices: e.g. a tied embedding / output matrix
          in Q6_K under Q4_0), one engine `llama-TYPE` per type, cached beside the GGUF

With --rill-model DIR rill runs on DIR (a fused-attention export, an int4 copy from
`rill-train quantize`) and the peers on --model; rill is then also run on --model as the
engine `rill-base` ("rill (peers' folder)"), so one table holds both. Ratios are always
relative to the engine `rill`. The weights' sizes (model.safetensors of both folders, the
GGUFs) are printed with their ratio to the peers' folder.

Every engine gets the prompt `rill bench` uses (BOS, then 3 + (i * 7919) % (vocab - 3)),
decodes the same number of tokens greedily without stopping at EOS, warms up once and is
then timed over --reps repetitions (min / median / max). Prefill is the prompt's forward
pass up to the first token; decode is tokens/s over the remaining new tokens.

Greedy agreement: `rill bench` prints no token ids, so rill's greedy output is taken from
`rill generate --greedy` on a text prompt (--check-prompt); every peer decodes the same
prompt ids (the folder's tokenizer, BOS included) and its tokens, decoded, must give the
same text. The peers' ids on the benchmark prompt are also compared with each other (and
with rill's if a future `rill bench --json` reports them).

Also measured: this machine's memory read bandwidth with --threads threads (a small C /
OpenMP reader compiled into build/compare/, numpy as a fallback), and the decode rate that
bandwidth allows: bandwidth / (weight bytes + KV bytes read per token at the mean context).
The reader runs just before every engine's run and once after them all, and the limit uses
the median reading (one reading moves 20-35 GB/s between neighbours on the shared hosts).

Child mode (`--engine NAME`) is internal: it prints one `COMPARE-RESULT {json}` line.
"""
import argparse
import datetime
import gc
import hashlib
import json
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

from context_view import write_view

ROOT = pathlib.Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "compare"
ENGINES = ["rill", "genai", "ort", "llama"]
TITLES = {"rill": "rill", "rill-base": "rill (peers' folder)", "genai": "onnxruntime-genai",
          "ort": "Python ORT loop", "llama": "llama.cpp"}
MARK = "COMPARE-RESULT "
CHECK_PROMPT = "In the beginning God created"
GGUF_CONVERTER_VERSION = "1"  # bump when write_gguf changes: cached files are rebuilt
MIB = 1048576.0


# ----------------------------------------------------------------------------- helpers

def rss_bytes():
    """This process's resident set (VmRSS), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def engine_title(name):
    """An engine's name in tables: `llama-q4_0` is llama.cpp on the Q4_0 GGUF."""
    if name.startswith("llama-"):
        return f"llama.cpp {name[len('llama-'):].upper()}"
    return TITLES.get(name, name)


def summary(values):
    v = sorted(values)
    return [v[0], v[len(v) // 2], v[-1]]


def load_config(folder):
    cfg = json.loads((pathlib.Path(folder) / "config.json").read_text())
    cfg.setdefault("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])
    return cfg


def special_id(value, default):
    if isinstance(value, list):
        value = value[0] if value else None
    return default if value is None else int(value)


def synthetic_prompt(cfg, n):
    """The prompt `rill bench` evaluates: BOS, then 3 + (i * 7919) % (vocab - 3)."""
    vocab = cfg["vocab_size"]
    bos = special_id(cfg.get("bos_token_id"), 0)
    return [bos] + [3 + (i * 7919 % 2**32) % (vocab - 3) for i in range(n - 1)]


def safetensors_index(folder):
    """{name: (dtype, shape, nbytes)} from model.safetensors' header (no tensor read)."""
    path = pathlib.Path(folder) / "model.safetensors"
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], v["data_offsets"][1] - v["data_offsets"][0]) for k, v in header.items()}


def _proto_fields(buf):
    """(field number, wire type, value) of one protobuf message (varints and bytes only)."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i:i + size], i + size
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"protobuf wire type {wire}")
        yield field, wire, value


def _varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def onnx_input_types(path):
    """{input name: ONNX elem_type} of a model.onnx (weights external), read without the
    onnx package: ModelProto.graph(7).input(11) -> name(1), type(2).tensor_type(1).elem_type(1)."""
    types = {}
    for f, _, graph in _proto_fields(pathlib.Path(path).read_bytes()):
        if f != 7:
            continue
        for g, _, vi in _proto_fields(graph):
            if g != 11:
                continue
            name, elem = None, None
            for h, _, v in _proto_fields(vi):
                if h == 1:
                    name = v.decode()
                elif h == 2:
                    for t, _, tensor in _proto_fields(v):
                        if t == 1:
                            for e, _, val in _proto_fields(tensor):
                                if e == 1:
                                    elem = val
            types[name] = elem
    return types


def onnx_metadata(path):
    """{key: value} of a model.onnx's metadata_props, read without the onnx package:
    ModelProto.metadata_props(14) -> key(1), value(2)."""
    props = {}
    for f, _, entry in _proto_fields(pathlib.Path(path).read_bytes()):
        if f == 14:
            kv = {k: v.decode() for k, _, v in _proto_fields(entry)}
            props[kv.get(1, "")] = kv.get(2, "")
    return props


def shares_kv_buffer(folder):
    """Whether the folder's graph reads and writes its cache in one shared buffer of the
    context's length (`rill-train export --attention gqa`; onnxruntime-genai's
    past_present_share_buffer)."""
    return onnx_metadata(pathlib.Path(folder) / "model.onnx").get("past_present_share_buffer") == "true"


def kv_dtype_bytes(folder):
    """Bytes per KV element, from the graph's past_key_values inputs (float16 = 10: 2)."""
    types = onnx_input_types(pathlib.Path(folder) / "model.onnx")
    elem = next((t for n, t in types.items() if n.startswith("past_key_values.")), 1)
    return {10: 2, 16: 2, 1: 4, 11: 8}.get(elem, 4)


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def l3_bytes():
    """The last-level cache's size (0 if unknown)."""
    best = 0
    for d in pathlib.Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            size = (d / "size").read_text().strip()
            mult = {"K": 1024, "M": 1048576}.get(size[-1], 1)
            best = max(best, int(size.rstrip("KM")) * mult)
        except (OSError, ValueError):
            pass
    return best


def busy_jiffies():
    """(busy, steal) jiffies of the whole machine so far; busy counts steal, the time the
    hypervisor gave this VM's cores to others."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    steal = parts[7] if len(parts) > 7 else 0
    return sum(parts[:8]) - idle, steal


def stolen(r):
    """The words naming the hypervisor's share of a busy measurement, when a tenth of a core or more."""
    steal = r.get("steal_cores", 0.0)
    return f", {steal:.1f} of them stolen by the hypervisor" if steal >= 0.1 else ""


class LoadMeter:
    """CPU time the rest of the machine used while a child ran (in cores): a measurement
    taken while something else was compiling is marked busy. `steal_cores` is the part of
    it the hypervisor took (on a shared host it can be half the cores while nothing else
    of ours runs)."""

    def __enter__(self):
        self.t = time.perf_counter()
        self.j, self.s = busy_jiffies()
        ru = os.times()
        self.c = ru.children_user + ru.children_system
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.t
        ru = os.times()
        child = ru.children_user + ru.children_system - self.c
        busy, steal = busy_jiffies()
        tick = os.sysconf("SC_CLK_TCK")
        seconds = max(wall, 1e-9)
        self.other_cores = max(0.0, ((busy - self.j) / tick - child) / seconds)
        self.steal_cores = min(self.other_cores, (steal - self.s) / tick / seconds)
        self.wall = wall

    def readings(self):
        """The figures a report keeps of this measurement."""
        return {"other_load_cores": self.other_cores, "steal_cores": self.steal_cores}


def context_view(folder, needed):
    """A view of `folder` whose config allows `needed` positions, for runs longer than
    max_position_embeddings: the exported graph computes RoPE from position_ids, so only
    config.json changes (big files are symlinked; the folder itself is never touched)."""
    folder = pathlib.Path(folder).resolve()
    cfg = load_config(folder)
    have = cfg.get("max_position_embeddings", 0)
    if needed <= have:
        return folder, None
    if shares_kv_buffer(folder):
        sys.exit(f"{folder} allows {have} positions, this run needs {needed}, and its fused-attention graph holds "
                 f"rotary tables of {have} rows: export it from a longer view (scripts/context_view.py, then "
                 "rill-train export --attention gqa)")
    ctx = 1 << (needed - 1).bit_length()
    view = write_view(folder, ctx, BUILD / "views" / f"{folder.name}-ctx{ctx}")
    return view, (f"{folder.name}'s max_position_embeddings is {have} < {needed}: every engine ran on "
                  f"{view.relative_to(ROOT) if view.is_relative_to(ROOT) else view} (same graph and weights, "
                  f"config.json with max_position_embeddings {ctx})")


# ----------------------------------------------------------------------------- engines (child side)

class OrtLoop:
    """The straightforward loop: InferenceSession, numpy feeds, present -> past each step."""

    def __init__(self, args, folder, cfg):
        import numpy as np
        import onnxruntime as ort
        self.np, self.ort, self.args, self.folder, self.cfg = np, ort, args, folder, cfg
        self.version = ort.__version__

    def open(self):
        so = self.ort.SessionOptions()
        so.intra_op_num_threads = self.args.threads
        so.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if self.args.provider == "cuda":
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": self.args.device}))
        session = self.ort.InferenceSession(str(self.folder / "model.onnx"), so, providers=providers)
        if self.args.provider == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
            raise SystemExit(f"onnxruntime {self.version} did not enable CUDAExecutionProvider (available: "
                             f"{self.ort.get_available_providers()}): install onnxruntime-gpu (`make cuda-env`)")
        return session

    def close(self, session):
        pass

    def generate(self, session, ids, n):
        if shares_kv_buffer(self.folder):
            return self.generate_shared(session, ids, n)
        np, cfg = self.np, self.cfg
        names = [o.name for o in session.get_outputs()]
        inputs = {i.name: i for i in session.get_inputs()}
        pairs = [(k, names.index(k.replace("past_key_values.", "present."))) for k in inputs
                 if k.startswith("past_key_values.")]
        dtype = np.float16 if "float16" in inputs[pairs[0][0]].type else np.float32
        past = {k: np.zeros((1, cfg["num_key_value_heads"], 0, cfg["head_dim"]), dtype) for k, _ in pairs}
        logits_at = names.index("logits")
        t0 = time.perf_counter()
        s = len(ids)
        feeds = {"input_ids": np.asarray([ids], np.int64), "attention_mask": np.ones((1, s), np.int64),
                 "position_ids": np.arange(s, dtype=np.int64)[None], **past}
        out = session.run(names, feeds)
        token = int(out[logits_at][0, -1].argmax())
        tokens = [token]
        t1 = time.perf_counter()
        for pos in range(s, s + n - 1):
            feeds = {"input_ids": np.asarray([[token]], np.int64), "attention_mask": np.ones((1, pos + 1), np.int64),
                     "position_ids": np.asarray([[pos]], np.int64)}
            for k, j in pairs:
                feeds[k] = out[j]
            out = session.run(names, feeds)
            token = int(out[logits_at][0, -1].argmax())
            tokens.append(token)
        t2 = time.perf_counter()
        return tokens, t1 - t0, t2 - t1


    def generate_shared(self, session, ids, n):
        """The loop on a shared-buffer graph, as its documentation asks: one zeroed cache
        buffer per tensor, of the run's full length, bound (IOBinding) as both past and
        present; the attention mask's length says how much of it is valid."""
        np, ort, cfg = self.np, self.ort, self.cfg
        device = "cuda" if self.args.provider == "cuda" else "cpu"
        inputs = {i.name: i for i in session.get_inputs()}
        past = [k for k in inputs if k.startswith("past_key_values.")]
        dtype = np.float16 if "float16" in inputs[past[0]].type else np.float32
        shape = (1, cfg["num_key_value_heads"], len(ids) + n, cfg["head_dim"])
        cache = {k: ort.OrtValue.ortvalue_from_numpy(np.zeros(shape, dtype), device, self.args.device) for k in past}
        binding = session.io_binding()
        binding.bind_output("logits", "cpu")  # first: get_outputs()[0]; rebound (fresh shape) each step
        for k, v in cache.items():
            binding.bind_ortvalue_input(k, v)
            binding.bind_ortvalue_output(k.replace("past_key_values.", "present."), v)

        def step(tokens, start):
            end = start + len(tokens)
            binding.bind_cpu_input("input_ids", np.asarray([tokens], np.int64))
            binding.bind_cpu_input("attention_mask", np.ones((1, end), np.int64))
            binding.bind_cpu_input("position_ids", np.arange(start, end, dtype=np.int64)[None])
            binding.bind_output("logits", "cpu")
            session.run_with_iobinding(binding)
            return int(binding.get_outputs()[0].numpy()[0, -1].argmax())

        t0 = time.perf_counter()
        token = step(list(ids), 0)
        tokens = [token]
        t1 = time.perf_counter()
        for pos in range(len(ids), len(ids) + n - 1):
            token = step([token], pos)
            tokens.append(token)
        t2 = time.perf_counter()
        return tokens, t1 - t0, t2 - t1


def genai_config(cfg, folder, threads, provider="cpu", device=0):
    """genai_config.json for an exported folder, as onnxruntime-genai's builder writes it
    (with the CUDA provider on GPU `device` when `provider` is cuda)."""
    ctx = cfg.get("max_position_embeddings", 2048)
    bos = special_id(cfg.get("bos_token_id"), 0)
    pad = special_id(cfg.get("pad_token_id"), 0)
    return {
        "model": {
            "bos_token_id": bos,
            "context_length": ctx,
            "decoder": {
                "session_options": {
                    "log_id": "onnxruntime-genai",
                    "intra_op_num_threads": threads,
                    "inter_op_num_threads": 1,
                    "provider_options": [{"cuda": {"device_id": str(device)}}] if provider == "cuda" else [],
                },
                "filename": "model.onnx",
                "head_size": cfg["head_dim"],
                "hidden_size": cfg["hidden_size"],
                "inputs": {
                    "input_ids": "input_ids",
                    "attention_mask": "attention_mask",
                    "position_ids": "position_ids",
                    "past_key_names": "past_key_values.%d.key",
                    "past_value_names": "past_key_values.%d.value",
                },
                "outputs": {
                    "logits": "logits",
                    "present_key_names": "present.%d.key",
                    "present_value_names": "present.%d.value",
                },
                "num_attention_heads": cfg["num_attention_heads"],
                "num_hidden_layers": cfg["num_hidden_layers"],
                "num_key_value_heads": cfg["num_key_value_heads"],
            },
            # rill bench never stops at EOS: an empty list gives onnxruntime-genai no end
            # token either, so its greedy run is not cut short (ids past vocab are refused).
            "eos_token_id": [],
            "pad_token_id": pad,
            "type": "llama",
            "vocab_size": cfg["vocab_size"],
        },
        "search": {
            "diversity_penalty": 0.0, "do_sample": False, "early_stopping": True, "length_penalty": 1.0,
            "max_length": ctx, "min_length": 0, "no_repeat_ngram_size": 0, "num_beams": 1,
            "num_return_sequences": 1, "past_present_share_buffer": shares_kv_buffer(folder), "repetition_penalty": 1.0,
            "temperature": 1.0, "top_k": 1, "top_p": 1.0,
        },
    }


class Genai:
    def __init__(self, args, folder, cfg):
        import numpy as np
        import onnxruntime_genai as og
        self.np, self.og, self.args = np, og, args
        self.version = getattr(og, "__version__", "?")
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="rill-compare-genai-"))
        for item in folder.iterdir():
            if item.name != "genai_config.json":
                (self.dir / item.name).symlink_to(item.resolve())
        (self.dir / "genai_config.json").write_text(json.dumps(genai_config(cfg, folder, args.threads, args.provider, args.device), indent=2))

    def open(self):
        return self.og.Model(str(self.dir))

    def close(self, model):
        pass

    def generate(self, model, ids, n):
        params = self.og.GeneratorParams(model)
        params.set_search_options(max_length=len(ids) + n, do_sample=False, num_beams=1)
        gen = self.og.Generator(model, params)
        t0 = time.perf_counter()
        gen.append_tokens(self.np.asarray(ids, dtype=self.np.int32))
        gen.generate_next_token()
        t1 = time.perf_counter()
        for _ in range(n - 1):
            gen.generate_next_token()
        t2 = time.perf_counter()
        tokens = [int(t) for t in gen.get_sequence(0)[len(ids):]]
        if len(tokens) != n:
            raise RuntimeError(f"onnxruntime-genai produced {len(tokens)} tokens, not {n}")
        return tokens, t1 - t0, t2 - t1

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def permute_rope(w, n_head):
    """HF's rotate-half q/k rows to llama.cpp's interleaved RoPE rows (LlamaModel.permute
    in llama.cpp's convert_hf_to_gguf.py)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_path(folder):
    folder = pathlib.Path(folder).resolve()
    h = hashlib.sha1(GGUF_CONVERTER_VERSION.encode())
    h.update((folder / "config.json").read_bytes())
    st = (folder / "model.safetensors").stat()
    h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    h.update((folder / "tokenizer.json").read_bytes())
    return BUILD / "gguf" / f"{folder.name}-{h.hexdigest()[:12]}.gguf"


def write_gguf(folder, out):
    """Converts an HF Llama folder to GGUF as llama.cpp's convert_hf_to_gguf.py does for
    LlamaForCausalLM with a GPT-2 style byte-level BPE tokenizer, without torch: same
    metadata keys, tensor names, q/k permutation, dtype kept (1-D tensors in f32)."""
    import gguf
    import numpy as np
    from safetensors import safe_open

    folder = pathlib.Path(folder)
    cfg = load_config(folder)
    n_head, n_kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    index = safetensors_index(folder)
    f16 = index["model.embed_tokens.weight"][0] == "F16"
    tmp = out.with_suffix(".tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(tmp), "llama")
    w.add_name(folder.name)
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_freq_base(float(cfg.get("rope_theta", 10000.0)))
    w.add_layer_norm_rms_eps(float(cfg["rms_norm_eps"]))
    if "head_dim" in json.loads((folder / "config.json").read_text()):
        w.add_key_length(cfg["head_dim"])
        w.add_value_length(cfg["head_dim"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if f16 else gguf.LlamaFileType.ALL_F32)
    w.add_vocab_size(cfg["vocab_size"])
    w.add_rope_dimension_count(cfg["head_dim"])

    tok = json.loads((folder / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    reverse = {i: s for s, i in vocab.items()}
    added = {t["id"]: t for t in tok.get("added_tokens", [])}
    tokens, types = [], []
    for i in range(cfg["vocab_size"]):
        if i in added:
            tokens.append(added[i]["content"])
            types.append(gguf.TokenType.CONTROL if added[i].get("special") else gguf.TokenType.USER_DEFINED)
        elif i in reverse:
            tokens.append(reverse[i])
            types.append(gguf.TokenType.NORMAL)
        else:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"].get("merges", [])]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(special_id(cfg.get("bos_token_id"), 0))
    w.add_eos_token_id(special_id(cfg.get("eos_token_id"), 1))
    if cfg.get("pad_token_id") is not None:
        w.add_pad_token_id(special_id(cfg["pad_token_id"], 0))
    tcfg_path = folder / "tokenizer_config.json"
    tcfg = json.loads(tcfg_path.read_text()) if tcfg_path.exists() else {}
    w.add_add_bos_token(bool(tcfg.get("add_bos_token", True)))
    w.add_add_eos_token(bool(tcfg.get("add_eos_token", False)))

    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    per_layer = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                 "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                 "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down"}
    for i in range(cfg["num_hidden_layers"]):
        for hf, gg in per_layer.items():
            names[f"model.layers.{i}.{hf}.weight"] = f"blk.{i}.{gg}.weight"
    tied = cfg.get("tie_word_embeddings", False)
    with safe_open(str(folder / "model.safetensors"), framework="numpy") as st:
        for name in st.keys():
            if name == "lm_head.weight" and tied:
                continue
            if name not in names:
                raise ValueError(f"no GGUF name for tensor {name}")
            data = st.get_tensor(name)
            if name.endswith("q_proj.weight"):
                data = permute_rope(data, n_head)
            elif name.endswith("k_proj.weight"):
                data = permute_rope(data, n_kv)
            if data.ndim <= 1:
                data = data.astype(np.float32)
            w.add_tensor(names[name], np.ascontiguousarray(data))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.rename(out)
    for old in out.parent.glob(f"{folder.name}-*.gguf"):  # earlier conversions of this folder
        if old != out and old.stem.rsplit("-", 1)[0] == folder.name:
            old.unlink()


def quantized_gguf_path(path, qtype):
    """Where the `qtype` quantization of a converted GGUF is cached: beside it, its name
    with the type (so write_gguf's clean-up of older conversions removes it too)."""
    return path.with_name(f"{path.stem}.{qtype}.gguf")


def quantize_gguf(llama_cpp, src, out, qtype, threads):
    """Quantizes a GGUF with llama.cpp's own quantizer (llama-quantize's defaults) to the
    ftype LLAMA_FTYPE_MOSTLY_<QTYPE>; written under a temporary name, then renamed."""
    import ctypes
    ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{qtype.upper()}", None)
    if ftype is None:
        known = sorted(n[len("LLAMA_FTYPE_MOSTLY_"):].lower() for n in dir(llama_cpp)
                       if n.startswith("LLAMA_FTYPE_MOSTLY_"))
        raise Skip(f"llama.cpp has no quantization type {qtype!r} (known: {', '.join(known)})")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads
    tmp = out.with_suffix(".tmp")
    status = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
    if status != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"llama_model_quantize to {qtype} returned {status}")
    tmp.rename(out)


def gguf_summary(path, cfg):
    """A GGUF's tensors: their bytes, the bytes a decode step reads (the token embedding
    only as one row when an output matrix of its own exists) and {type: tensor count}."""
    import gguf
    reader = gguf.GGUFReader(str(path))
    types, total, embd = {}, 0, 0
    names = set()
    for t in reader.tensors:
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
        total += int(t.n_bytes)
        names.add(t.name)
        if t.name == "token_embd.weight":
            embd = int(t.n_bytes)
    read = total - embd + embd // cfg["vocab_size"] if "output.weight" in names else total
    return {"tensor_bytes": total, "read_bytes_per_token": read, "tensor_types": types}


class LlamaCpp:
    def __init__(self, args, folder, cfg):
        import numpy as np
        try:
            import llama_cpp
        except Exception as e:  # noqa: BLE001  (an import error of any kind means: skipped)
            raise Skip(f"llama-cpp-python is not importable ({type(e).__name__}: {e})")
        self.np, self.llama_cpp, self.args, self.cfg = np, llama_cpp, args, cfg
        self.version = getattr(llama_cpp, "__version__", "?")
        self.path = gguf_path(folder)
        if not self.path.exists():
            t = time.perf_counter()
            write_gguf(folder, self.path)
            self.convert_s = time.perf_counter() - t
        self.source_bytes = self.path.stat().st_size
        if args.llama_quant:
            out = quantized_gguf_path(self.path, args.llama_quant)
            if not out.exists():
                t = time.perf_counter()
                quantize_gguf(llama_cpp, self.path, out, args.llama_quant, args.threads)
                self.quantize_s = time.perf_counter() - t
            self.path = out
        n_max = max(args.prompt_tokens, len(args.check_ids or []))
        self.n_ctx = n_max + max(args.new_tokens, args.check_tokens) + 8
        self.n_batch = max(512, n_max)

    def open(self):
        return self.llama_cpp.Llama(
            model_path=str(self.path), n_ctx=self.n_ctx, n_batch=self.n_batch,
            n_threads=self.args.threads, n_threads_batch=self.args.threads,
            logits_all=False, flash_attn=True, verbose=False)

    def close(self, llm):
        if hasattr(llm, "close"):
            llm.close()

    def next_token(self, llm):
        ptr = self.llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
        return int(self.np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).argmax())

    def generate(self, llm, ids, n):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(list(ids))
        token = self.next_token(llm)
        tokens = [token]
        t1 = time.perf_counter()
        for _ in range(n - 1):
            llm.eval([token])
            token = self.next_token(llm)
            tokens.append(token)
        t2 = time.perf_counter()
        return tokens, t1 - t0, t2 - t1


class Skip(Exception):
    pass


PEERS = {"ort": OrtLoop, "genai": Genai, "llama": LlamaCpp}


def rill_abi_ids(args):
    """rill's greedy ids for the check prompt through its C ABI (librill.so beside the rill
    binary, with ctypes): generate with no end token, then read the session's tokens back.
    Prints {"status": "ok", "check_tokens": [...]} or why not (an older librill.so)."""
    import ctypes as C

    class ModelOptions(C.Structure):
        """rill_model_options through `graph` (later versions append fields and still accept
        this size). Filled here, not from rill_model_options_default(): a struct returned
        by value is returned differently once it grows past 16 bytes."""
        _fields_ = [("struct_size", C.c_size_t), ("intra_threads", C.c_uint32),
                    ("ort_loads_weights", C.c_uint8), ("prepack", C.c_uint8),
                    ("provider", C.c_uint32), ("device_id", C.c_int32), ("graph", C.c_uint32)]

    out = {"engine": "rill-abi"}
    lib_path = pathlib.Path(args.rill).resolve().parent / "librill.so"
    try:
        lib = C.CDLL(str(lib_path))
        for name in ("rill_model_open", "rill_session_new", "rill_session_generate", "rill_session_tokens",
                     "rill_session_set_generation_config"):
            getattr(lib, name)
    except (OSError, AttributeError) as e:
        out.update(status="skipped", reason=f"{lib_path}: {e}")
        print(MARK + json.dumps(out), flush=True)
        return
    lib.rill_last_error.restype = C.c_char_p
    lib.rill_session_tokens.argtypes = [C.c_void_p, C.c_void_p, C.c_size_t, C.POINTER(C.c_size_t)]

    def check(status, what):
        if status != 0:
            raise RuntimeError(f"{what}: status {status}: {lib.rill_last_error().decode(errors='replace')}")

    opts = ModelOptions(struct_size=C.sizeof(ModelOptions), intra_threads=args.threads, ort_loads_weights=0,
                        prepack=1, provider=0, device_id=0,  # rill_model_options_default()'s values
                        graph=RILL_GRAPHS.index(args.rill_graph))
    model, session = C.c_void_p(), C.c_void_p()
    check(lib.rill_model_open(str(args.model).encode(), C.byref(opts), C.byref(model)), "rill_model_open")
    check(lib.rill_session_new(model, None, C.byref(session)), "rill_session_new")
    settings = {"max_new_tokens": args.check_tokens, "eos_token_id": [], "do_sample": False,
                "repetition_penalty": 1.0, "no_repeat_ngram_size": 0}
    check(lib.rill_session_set_generation_config(session, json.dumps(settings).encode()),
          "rill_session_set_generation_config")
    n = C.c_size_t()
    check(lib.rill_session_generate(session, args.check_prompt.encode(), None, None, C.byref(n)),
          "rill_session_generate")
    count = C.c_size_t()
    lib.rill_session_tokens(session, None, 0, C.byref(count))
    buf = (C.c_uint32 * count.value)()
    check(lib.rill_session_tokens(session, buf, count.value, C.byref(count)), "rill_session_tokens")
    ids = list(buf)
    out.update(status="ok", prompt_tokens=ids[: count.value - n.value], check_tokens=ids[count.value - n.value:])
    lib.rill_session_free(session)
    lib.rill_model_free(model)
    print(MARK + json.dumps(out), flush=True)


def child(args):
    """Runs one peer engine in this process and prints its figures as one JSON line."""
    folder = pathlib.Path(args.model)
    cfg = load_config(folder)
    result = {"engine": args.engine}
    try:
        engine = PEERS[args.engine](args, folder, cfg)
    except Skip as e:
        result.update(status="skipped", reason=str(e))
        print(MARK + json.dumps(result), flush=True)
        return
    except ImportError as e:
        result.update(status="skipped", reason=f"{type(e).__name__}: {e}")
        print(MARK + json.dumps(result), flush=True)
        return
    result["version"] = engine.version
    if getattr(engine, "convert_s", None):
        result["gguf_convert_s"] = engine.convert_s
    if getattr(engine, "quantize_s", None):
        result["gguf_quantize_s"] = engine.quantize_s
    if isinstance(engine, LlamaCpp):
        result["gguf"] = str(engine.path)
        result["gguf_bytes"] = engine.path.stat().st_size
        result["gguf_quant"] = args.llama_quant
        result["gguf_source_bytes"] = engine.source_bytes
    prompt = synthetic_prompt(cfg, args.prompt_tokens)
    try:
        gc.collect()
        rss0 = rss_bytes()
        t = time.perf_counter()
        handle = engine.open()
        open_ms = [(time.perf_counter() - t) * 1e3]
        rss_open = rss_bytes()
        for _ in range(1, args.reps):
            t = time.perf_counter()
            other = engine.open()
            open_ms.append((time.perf_counter() - t) * 1e3)
            engine.close(other)
            del other
            gc.collect()
        engine.generate(handle, prompt, args.new_tokens)  # warm-up
        prefill, decode, tokens = [], [], None
        for _ in range(args.reps):
            toks, pf, dc = engine.generate(handle, prompt, args.new_tokens)
            prefill.append(len(prompt) / pf)
            decode.append((args.new_tokens - 1) / dc if args.new_tokens > 1 else 0.0)
            if tokens is not None and toks != tokens:
                result.setdefault("notes", []).append("greedy tokens changed between repetitions")
            tokens = toks
        rss_gen = rss_bytes()
        check = engine.generate(handle, args.check_ids, args.check_tokens)[0] if args.check_ids else None
        result.update(status="ok", open_ms=summary(open_ms), prefill_tokens_per_s=summary(prefill),
                      decode_tokens_per_s=summary(decode), rss_before_open=rss0, rss_after_open=rss_open,
                      rss_after_generation=rss_gen, tokens=tokens, check_tokens=check)
        if isinstance(engine, LlamaCpp):  # after the measurements: the reader's imports count in RSS
            try:
                result.update(gguf_summary(engine.path, cfg))
            except Exception as e:  # noqa: BLE001  (the gguf package's reader is optional here)
                result.setdefault("notes", []).append(f"GGUF tensors not read: {type(e).__name__}: {e}")
    finally:
        if hasattr(engine, "cleanup"):
            engine.cleanup()
    print(MARK + json.dumps(result), flush=True)


# ----------------------------------------------------------------------------- parent side

def expand_engines(args):
    """The engines of this run, in order: `llama` becomes one `llama-TYPE` per
    --llama-quant type (`none`: the unquantized GGUF, `llama`), and `rill-base` follows
    `rill` when rill runs on a folder of its own."""
    own = bool(args.rill_model) and pathlib.Path(args.rill_model).resolve() != pathlib.Path(args.model).resolve()
    out = []
    for name in args.engines:
        if name == "llama" and args.llama_quants:
            out += ["llama" if q == "none" else f"llama-{q}" for q in args.llama_quants]
        else:
            out.append(name)
        if name == "rill" and own and not args.no_rill_base:
            out.append("rill-base")
    return out


def run_engine(args, name, folder, rill_folder, check_ids):
    """One engine's figures: rill's CLI on its folder (`rill-base`: on the peers'), a peer
    in a child process (`llama-TYPE`: llama.cpp with --llama-quant TYPE)."""
    if name == "rill":
        return run_rill(args, rill_folder)
    if name == "rill-base":
        return run_rill(args, folder, engine=name)
    engine, _, quant = name.partition("-")
    return run_child(args, engine, folder, check_ids, quant or None)


def run_child(args, engine, folder, check_ids, quant=None):
    cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), "--engine", engine, "--model", str(folder),
           "--threads", str(args.threads), "--prompt-tokens", str(args.prompt_tokens),
           "--new-tokens", str(args.new_tokens), "--reps", str(args.reps),
           "--check-tokens", str(args.check_tokens), "--provider", args.provider, "--device", str(args.device)]
    if check_ids:
        cmd += ["--check-ids", ",".join(map(str, check_ids))]
    if quant:
        cmd += ["--llama-quant", quant]
    return run_json(cmd, engine, args.timeout, marked=True)


def run_json(cmd, engine, timeout, marked):
    with LoadMeter() as load:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        except subprocess.TimeoutExpired:
            proc = None
    if proc is None:
        return {"engine": engine, "status": "failed", "reason": f"timed out after {timeout} s"}
    out = None
    lines = proc.stdout.splitlines()
    for line in reversed(lines):
        if marked and line.startswith(MARK):
            out = json.loads(line[len(MARK):])
            break
        if not marked and line.startswith("{"):
            out = json.loads(line)
            break
    if out is None or proc.returncode != 0:
        err = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"engine": engine, "status": "failed", "reason": f"exit {proc.returncode}: {err[:300]}"}
    out.setdefault("engine", engine)
    out.setdefault("status", "ok")
    out["wall_s"] = load.wall
    out.update(load.readings())
    return out


# rill's `--graph` values, in the order of rill_model_options' `graph` field.
RILL_GRAPHS = ("auto", "plain", "fused")


def run_rill(args, folder, engine="rill"):
    cmd = [args.rill, "bench", "--model", str(folder), "--threads", str(args.threads), "--reps", str(args.reps),
           "--prompt-tokens", str(args.prompt_tokens), "--new-tokens", str(args.new_tokens), "--json",
           "--provider", args.provider, "--device", str(args.device), "--graph", args.rill_graph]
    if not os.access(args.rill, os.X_OK):
        return {"engine": engine, "status": "failed", "reason": f"{args.rill} is missing: run `make build`"}
    out = run_json(cmd, engine, args.timeout, marked=False)
    if out.get("status") == "ok":
        out["version"] = subprocess.run([args.rill, "--version"], capture_output=True, text=True).stdout.strip()
        ids = rill_bench_ids(out, args.new_tokens)
        if ids is not None:
            out["tokens"] = ids
    return out


def rill_bench_ids(report, n):
    """Greedy ids from `rill bench --json`, if this version reports them."""
    for key in ("greedy_tokens", "tokens", "token_ids", "generated_ids", "generated_tokens", "output_ids"):
        v = report.get(key)
        if isinstance(v, list) and v and all(isinstance(x, int) for x in v):
            return v[:n]
    return None


def rill_check_text(args, folder):
    cmd = [args.rill, "generate", "--model", str(folder), "--prompt", args.check_prompt, "--max-new-tokens",
           str(args.check_tokens), "--greedy", "--repetition-penalty", "1.0", "--no-repeat-ngram-size", "0",
           "--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, cwd=ROOT)
    if proc.returncode != 0:
        return None, proc.stderr.strip()[-300:]
    return proc.stdout, None


def first_divergence(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def text_divergence(tokenizer, ids, text, eos):
    """Compares a peer's ids (cut at its first EOS, as `rill generate` stops there) with
    rill's text: (agree, tokens compared, first token position whose text departs)."""
    if eos in ids:
        ids = ids[: ids.index(eos)]
    for k in range(1, len(ids) + 1):
        piece = tokenizer.decode(ids[:k], skip_special_tokens=True)
        if piece.endswith("\ufffd"):  # a character still incomplete: look at the next token
            continue
        if not text.startswith(piece):
            return False, len(ids), k - 1
    whole = tokenizer.decode(ids, skip_special_tokens=True)
    if whole != text:
        return False, len(ids), len(ids)
    return True, len(ids), None


BW_SOURCE = r"""
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
/* Read bandwidth: every thread sums its share of one big array, best of N passes. */
int main(int argc, char **argv) {
    size_t bytes = (size_t)atoll(argv[1]), n = bytes / sizeof(uint32_t);
    int passes = atoi(argv[2]);
    uint32_t *a = aligned_alloc(64, n * sizeof(uint32_t));
    if (!a) return 1;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) a[i] = (uint32_t)i;
    double best = 1e30; uint32_t sink = 0;
    for (int p = 0; p < passes; p++) {
        double t = omp_get_wtime(); uint32_t s = 0;
        #pragma omp parallel for schedule(static) reduction(+:s)
        for (size_t i = 0; i < n; i++) s += a[i];
        t = omp_get_wtime() - t; sink += s;
        if (t < best) best = t;
    }
    printf("%.3f %d\n", (double)n * sizeof(uint32_t) / best / 1e9, omp_get_max_threads());
    fprintf(stderr, "%u\n", sink);
    return 0;
}
"""


def measure_bandwidth(threads, size_mib=1024, passes=8):
    """Read bandwidth in GB/s (1e9 B/s) with `threads` threads: method, value."""
    src = BUILD / "bw.c"
    exe = BUILD / "bw"
    BUILD.mkdir(parents=True, exist_ok=True)
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc:
        if not src.exists() or src.read_text() != BW_SOURCE or not exe.exists():
            src.write_text(BW_SOURCE)
            subprocess.run([cc, "-O3", "-march=native", "-fopenmp", str(src), "-o", str(exe)],
                           capture_output=True, text=True)
        if exe.exists():
            env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_PROC_BIND="spread")
            proc = subprocess.run([str(exe), str(size_mib * 1048576), str(passes)], capture_output=True,
                                  text=True, env=env)
            if proc.returncode == 0:
                gbs, n = proc.stdout.split()
                return {"method": f"C/OpenMP sum over {size_mib} MiB, {n} threads, best of {passes}",
                        "gb_per_s": float(gbs)}
    import numpy as np
    from concurrent.futures import ThreadPoolExecutor
    a = np.arange(size_mib * 1048576 // 4, dtype=np.uint32)
    parts = np.array_split(a, threads)
    best = 1e30
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(passes):
            t = time.perf_counter()
            list(pool.map(lambda p: p.sum(dtype=np.uint32), parts))
            best = min(best, time.perf_counter() - t)
    return {"method": f"numpy sum over {size_mib} MiB, {threads} threads, best of {passes}", "gb_per_s": a.nbytes / best / 1e9}


def bytes_per_token(folder, cfg, prompt_tokens, new_tokens):
    """Weight bytes read per decode step (the embedding table only as one row unless the
    head is tied to it; a quantized table's blocks, scales and zero points alike) plus KV
    bytes read at the mean context of the decode steps."""
    index = safetensors_index(folder)
    weights = sum(n for _, _, n in index.values())
    if not cfg.get("tie_word_embeddings", False):
        for name, (_, shape, n) in index.items():
            if name.startswith("model.embed_tokens."):
                weights -= n - n // shape[0]
    kv_per_pos = 2 * cfg["num_hidden_layers"] * cfg["num_key_value_heads"] * cfg["head_dim"] * kv_dtype_bytes(folder)
    mean_ctx = prompt_tokens + new_tokens / 2
    return {"weight_bytes": weights, "kv_bytes_per_position": kv_per_pos, "mean_context": mean_ctx,
            "bytes_per_token": weights + kv_per_pos * mean_ctx}


def fmt(x, digits=0):
    if x is None:
        return "—"
    return f"{x:,.{digits}f}"


def ratio(a, b):
    return a / b if a and b else None


def build_rows(report):
    res, rill = report["engines"], report["engines"].get("rill", {})
    rows = []
    for name in report["engine_order"]:
        r = res[name]
        title = engine_title(name)
        if r.get("status") != "ok":
            rows.append([title] + ["—"] * 9 + [f"{r.get('status')}: {r.get('reason', '')}"])
            continue
        med = lambda k: r[k][1]  # noqa: E731
        rmed = lambda k: rill[k][1] if rill.get("status") == "ok" else None  # noqa: E731
        if name == "rill":
            rel = ["1.00", "1.00", "1.00"]
        else:
            rel = [fmt(ratio(rmed("decode_tokens_per_s"), med("decode_tokens_per_s")), 2),
                   fmt(ratio(rmed("prefill_tokens_per_s"), med("prefill_tokens_per_s")), 2),
                   fmt(ratio(med("open_ms"), rmed("open_ms")), 2)]
        agree = report["agreement"].get(name, {}).get("summary", "")
        load = r.get("other_load_cores", 0.0)
        busy = f"busy ({load:.1f} cores{stolen(r)})" if load > report["busy_threshold"] else f"quiet ({load:.1f})"
        rows.append([title, fmt(med("prefill_tokens_per_s")), fmt(med("decode_tokens_per_s"), 1),
                     fmt(med("open_ms"), 1), fmt(r["rss_after_open"] / MIB, 1), fmt(r["rss_after_generation"] / MIB, 1),
                     *rel, busy, agree])
    return rows


KNOWN_RILL_KEYS = {"open_ms", "prefill_tokens_per_s", "decode_tokens_per_s", "ort_run_share", "passes_decode_tokens_per_s"}
HEADER = ["engine", "prefill tok/s", "decode tok/s", "open ms", "RSS open MiB", "RSS gen MiB",
          "rill× decode", "rill× prefill", "rill× open", "other load", "greedy tokens vs rill"]


def own_limits(report):
    """The bandwidth limits of engines that read other bytes per step than the peers'
    folder (rill on its own folder, llama.cpp on a quantized GGUF), as phrases."""
    bw, out = report["bandwidth"], []
    base = bw["bytes"]["bytes_per_token"]
    for name in report["engine_order"]:
        per = bw.get("bytes_per_token", {}).get(name)
        if per is None or abs(per - base) <= 0.01 * base:
            continue
        what = ("rill's folder" if name == "rill" else f"{engine_title(name)}'s GGUF" if name.startswith("llama")
                else engine_title(name))
        out.append(f"{what} {per / 1e6:.1f} MB/token, limit {bw['limits'][name]:.1f} tokens/s")
    return out


def sizes_line(sizes):
    """The weights' sizes: rill's folder over the peers' (model.safetensors), the GGUFs."""
    mb = lambda n: f"{n / 1e6:.1f} MB"  # noqa: E731
    if sizes["rill_folder"] != sizes["peers_folder"]:
        line = (f"weights (model.safetensors): rill's folder {sizes['rill_folder']} {mb(sizes['rill_weights_bytes'])}"
                f" = {sizes['rill_over_peers']:.3f}× the peers' {sizes['peers_folder']} "
                f"{mb(sizes['peers_weights_bytes'])} (whole folders {mb(sizes['rill_folder_bytes'])} / "
                f"{mb(sizes['peers_folder_bytes'])} = {sizes['rill_folder_over_peers']:.3f}×)")
    else:
        line = f"weights (model.safetensors): {mb(sizes['peers_weights_bytes'])}"
    ggufs = []
    for name, g in sizes["gguf"].items():
        types = ", ".join(f"{n} {t}" for t, n in sorted((g.get("tensor_types") or {}).items(), key=lambda x: -x[1]))
        ggufs.append(f"{engine_title(name)} {mb(g['bytes'])} ({g['over_peers']:.3f}×"
                     + (f"; tensors {types})" if types else ")"))
    if ggufs:
        line += "; GGUF files: " + ", ".join(ggufs)
    return line + "."


def render(report, markdown):
    rows = build_rows(report)
    lines = []
    a = report["args"]
    title = (f"{report['model']}: {a['prompt_tokens']}-token prompt, {a['new_tokens']} new tokens, "
             f"{a['threads']} threads, {a['reps']} reps (medians)")
    if a.get("passes", 1) > 1:
        title += f", median of {a['passes']} passes"
    if a.get("provider", "cpu") != "cpu":
        title += f", provider {a['provider']}:{a.get('device', 0)} (llama.cpp on the CPU)"
    if markdown:
        lines += [f"**{title}**", ""]
        lines.append("| " + " | ".join(HEADER) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * 8 + ["---", "---"]) + "|")
        for row in rows:
            lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
    else:
        lines.append(title)
        table = [HEADER] + rows
        widths = [max(len(str(r[i])) for r in table) for i in range(len(HEADER) - 1)]
        for r in table:
            cells = [str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
            lines.append("  ".join(cells) + "  " + str(r[-1]))
    lines.append("")
    lines.append("rill× columns: rill's decode and prefill tokens/s over the peer's, and the peer's open time "
                 "over rill's (above 1: rill is better).")
    rill = report["engines"].get("rill", {})
    if rill.get("status") == "ok":
        extra = [f"{k} {v[1]:.3g}" for k, v in rill.items() if k not in KNOWN_RILL_KEYS and isinstance(v, list)
                 and len(v) == 3 and all(isinstance(x, (int, float)) for x in v)]
        share = rill.get("ort_run_share")
        if share:
            extra.insert(0, f"{share[1] * 100:.1f}% of prefill + decode time inside ONNX Runtime's Run "
                            f"({(1 - share[1]) * 100:.1f}% around it)")
        if extra:
            lines.append("rill bench (median): " + "; ".join(extra))
    for note in report["notes"]:
        lines.append(f"note: {note}")
    if report.get("sizes"):
        lines.append(sizes_line(report["sizes"]))
    bw = report.get("bandwidth")
    if bw:
        b = bw["bytes"]
        load = bw.get("other_load_cores", 0.0)
        busy = f"; busy: other work used {load:.1f} cores{stolen(bw)}" if load > report["busy_threshold"] else ""
        line = (f"memory bandwidth: {bw['gb_per_s']:.1f} GB/s ({bw['method']}{busy}); a decode step reads "
                f"{b['weight_bytes'] / 1e6:.1f} MB of weights + {b['kv_bytes_per_position'] * b['mean_context'] / 1e6:.1f} MB of KV "
                f"(mean context {b['mean_context']:.0f}) = {b['bytes_per_token'] / 1e6:.1f} MB/token, so the bandwidth limit "
                f"is {bw['limit_tokens_per_s']:.1f} tokens/s")
        own = own_limits(report)
        if own:
            line += "; " + ", ".join(own)
        if bw.get("rill_fraction") is not None:
            line += f"; rill decodes at {bw['rill_fraction']:.2f} of {'its limit' if own else 'it'}"
        for name in report["engine_order"]:
            if name != "rill" and bw.get("fractions", {}).get(name) is not None:
                line += f", {engine_title(name)} {bw['fractions'][name]:.2f}"
        lines.append(line + ".")
    lines.append("")
    lines.append("greedy tokens (benchmark prompt: first 12 ids | check prompt: first 12 ids, text):")
    width = max([18] + [len(engine_title(n)) for n in report["engine_order"]])
    for name in report["engine_order"]:
        r = report["engines"][name]
        ag = report["agreement"].get(name, {})
        ids = r.get("tokens")
        check = ag.get("check_tokens") if name in ("rill", "rill-base") else r.get("check_tokens")
        ids_s = " ".join(map(str, ids[:12])) if ids else "(not reported)"
        check_s = " ".join(map(str, check[:12])) if check else "—"
        text = ag.get("text")
        text_s = repr(text[:60]) if text is not None else "—"
        if markdown:
            lines.append(f"- {engine_title(name)}: `{ids_s}` | `{check_s}` {text_s}")
        else:
            lines.append(f"  {engine_title(name):<{width}} {ids_s} | {check_s} {text_s}")
    return "\n".join(lines)


def rill_check(report, args, folder, check_ids, decode):
    """rill's greedy output for the check prompt on `folder`: (ids, text, "ids") through its
    C ABI, or (None, text, "text") from `rill generate --greedy` with an older librill.so,
    or (None, None, None)."""
    abi = run_json([sys.executable, str(pathlib.Path(__file__).resolve()), "--engine", "rill-abi", "--model",
                    str(folder), "--threads", str(args.threads), "--check-tokens", str(args.check_tokens),
                    "--check-prompt", args.check_prompt, "--rill", args.rill, "--rill-graph", args.rill_graph],
                   "rill-abi", args.timeout, marked=True)
    if abi.get("status") == "ok":
        if abi["prompt_tokens"] != check_ids:
            report["notes"].append(f"rill tokenizes the check prompt as {abi['prompt_tokens']}, the tokenizers "
                                   f"package as {check_ids}")
        return abi["check_tokens"], decode(abi["check_tokens"]), "ids"
    note = (f"rill's ids through the C ABI unavailable ({abi.get('reason')}): compared as text from "
            "`rill generate --greedy`")
    if note not in report["notes"]:
        report["notes"].append(note)
    text, err = rill_check_text(args, folder)
    if text is None:
        report["notes"].append(f"rill generate failed: {err}")
        return None, None, None
    return None, text, "text"


def agreement(report, args, folder, rill_folder, check_ids):
    """Greedy agreement with rill. The check prompt: rill's ids from its C ABI (no end
    token, like the peers), compared id by id; with an older librill.so, rill's
    `generate --greedy` text instead. The benchmark prompt: rill's ids if `rill bench`
    reports them, else each peer's against the Python ORT loop's. With `rill-base` (rill
    on the peers' folder) each peer is also compared with it: the same weights."""
    res = report["engines"]
    out, rill_ok = {}, res.get("rill", {}).get("status") == "ok"
    tokenizer = None
    try:
        from tokenizers import Tokenizer
        tokenizer = Tokenizer.from_file(str(pathlib.Path(folder) / "tokenizer.json"))
    except Exception as e:  # noqa: BLE001
        report["notes"].append(f"tokenizers unavailable ({e}): no text shown")
    decode = (lambda ids: tokenizer.decode(ids, skip_special_tokens=True)) if tokenizer else (lambda ids: None)
    rill_ids, rill_text, how = None, None, None
    if rill_ok and check_ids:
        rill_ids, rill_text, how = rill_check(report, args, rill_folder, check_ids, decode)
    base_ids, base_text, base_how = None, None, None
    if res.get("rill-base", {}).get("status") == "ok" and check_ids:
        base_ids, base_text, base_how = rill_check(report, args, folder, check_ids, decode)
    cfg = load_config(folder)
    eos = special_id(cfg.get("eos_token_id"), 1)
    out["rill"] = {"check_tokens": rill_ids, "text": rill_text, "summary": "reference"}
    ref_ids = res.get("rill", {}).get("tokens")
    ort_ids = res.get("ort", {}).get("tokens") if res.get("ort", {}).get("status") == "ok" else None
    for name in report["engine_order"]:
        if name == "rill" or res[name].get("status") != "ok":
            continue
        r, a, parts = res[name], {}, []
        peer = base_ids if name == "rill-base" else r.get("check_tokens")
        if name == "rill-base":
            a.update(check_tokens=base_ids, text=base_text)
        if how == "ids" and peer is not None:
            d = first_divergence(rill_ids, peer)
            a.update(check_ids_agree=d is None, check_divergence=d, text=decode(peer))
            parts.append(f"same {len(peer)} ids" if d is None else f"ids differ from token {d}")
        elif how == "text" and name == "rill-base" and base_text is not None:
            a["text_agrees"] = base_text == rill_text
            parts.append("same text" if a["text_agrees"] else "text differs")
        elif how == "text" and tokenizer is not None and peer is not None:
            ok, n, at = text_divergence(tokenizer, peer, rill_text, eos)
            cut = peer[: peer.index(eos)] if eos in peer else peer
            a.update(text=decode(cut), text_agrees=ok, text_tokens=n, text_divergence=at)
            parts.append(f"same text ({n} tokens)" if ok else f"text departs at token {at}")
        if base_how == "ids" and name != "rill-base" and peer is not None:
            d = first_divergence(base_ids, peer)
            a["check_divergence_vs_rill_base"] = d
            parts.append("= rill (peers' folder)" if d is None else f"≠ rill (peers' folder) from token {d}")
        tokens = r.get("tokens")  # rill-base: only if `rill bench --json` reports them
        if tokens is not None and ref_ids is not None:
            d = first_divergence(ref_ids, tokens)
            a["bench_divergence_vs_rill"] = d
            parts.append("bench ids same" if d is None else f"bench ids differ from {d}")
        elif tokens is not None and ort_ids is not None and name != "ort":
            d = first_divergence(ort_ids, tokens)
            a["bench_divergence_vs_ort"] = d
            parts.append("bench ids = ORT loop's" if d is None else f"bench ids ≠ ORT loop's from {d}")
        a["summary"] = "; ".join(parts)
        out[name] = a
    what = ({"ids": "id by id (rill's through its C ABI)", "text": "as text (`rill generate --greedy`)"}
            .get(how, "not at all"))
    report["notes"].append(f"greedy agreement: {args.check_tokens} tokens after {args.check_prompt!r}, compared "
                           f"{what}" + ("" if ref_ids is not None else "; `rill bench --json` reports no ids, so "
                                        "the benchmark prompt's ids are compared with the Python ORT loop's"))
    return out


def run_quietly(args, name, folder, rill_folder, check_ids):
    """One engine's figures, measured again (at most --retry-busy times) while other work
    used the CPU, keeping the quietest run."""
    r = None
    for attempt in range(1, args.retry_busy + 2):
        # The read bandwidth just before the engine runs (kept in its figures): this host's
        # moves 20-35 GB/s within minutes, so the limit uses the median of many readings.
        reading = None if args.no_bandwidth or args.bandwidth_gbs else measure_bandwidth(args.threads)
        got = run_engine(args, name, folder, rill_folder, check_ids)
        if reading:
            got["bandwidth_gbs"] = reading["gb_per_s"]
        if r is None or (got.get("status") == "ok" and got["other_load_cores"] < r.get("other_load_cores", 1e9)):
            r = got
        r["attempts"] = attempt
        if got.get("status") != "ok" or got["other_load_cores"] <= args.busy_threshold or attempt > args.retry_busy:
            break
        log(f"[compare]   other work used {got['other_load_cores']:.2f} cores meanwhile{stolen(got)}: measuring again")
    return r


def median_pass(runs):
    """Of one engine's passes, the one with the median decode rate (the upper one of an
    even count), carrying every pass's decode rate; the last run if none succeeded."""
    ok = [r for r in runs if r.get("status") == "ok"]
    if not ok:
        return runs[-1]
    r = sorted(ok, key=lambda x: x["decode_tokens_per_s"][1])[len(ok) // 2]
    if len(runs) > 1:
        r["passes_decode_tokens_per_s"] = [x["decode_tokens_per_s"][1] for x in ok]
    return r


def parent(args):
    args.model = str(pathlib.Path(args.model))
    src = pathlib.Path(args.model).resolve()
    if not (src / "model.onnx").exists():
        sys.exit(f"{args.model} has no model.onnx")
    check_ids = None
    try:
        from tokenizers import Tokenizer
        check_ids = Tokenizer.from_file(str(src / "tokenizer.json")).encode(args.check_prompt).ids
    except Exception as e:  # noqa: BLE001
        check_note = f"no check prompt: {e}"
    needed = max(args.prompt_tokens + args.new_tokens, len(check_ids or []) + args.check_tokens) + 1
    folder, view_note = context_view(src, needed)
    rill_folder, rill_view_note = (context_view(pathlib.Path(args.rill_model).resolve(), needed)
                                   if args.rill_model else (folder, None))
    cfg = load_config(folder)
    report = {"model": args.model, "folder": str(folder), "rill_folder": str(rill_folder),
              "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "machine": {"nproc": os.cpu_count(), "cpu": cpu_model(), "l3_bytes": l3_bytes(),
                          "python": platform.python_version()},
              "args": {k: getattr(args, k) for k in ("threads", "prompt_tokens", "new_tokens", "reps", "passes",
                                                      "check_tokens", "check_prompt", "provider", "device",
                                                      "rill_graph")},
              "engine_order": expand_engines(args), "engines": {}, "notes": [], "busy_threshold": args.busy_threshold}
    report["args"]["llama_quant"] = args.llama_quants
    if args.rill_model:
        report["rill_model"] = args.rill_model
    for note in (view_note, rill_view_note):
        if note:
            report["notes"].append(note)
    if args.rill_model:
        report["notes"].append(f"rill ran on {args.rill_model}; the peers on {args.model}")
    if check_ids is None:
        report["notes"].append(check_note)
    order = report["engine_order"]
    runs = {name: [] for name in order}
    for n in range(args.passes):
        for name in order if n % 2 == 0 else order[::-1]:
            which = f" (pass {n + 1} of {args.passes})" if args.passes > 1 else ""
            log(f"[compare] {args.model}: {engine_title(name)}{which} ...")
            r = run_quietly(args, name, folder, rill_folder, check_ids)
            runs[name].append(r)
            if r.get("status") == "ok" and r.get("bandwidth_gbs"):
                report.setdefault("bandwidth_readings", []).append(r["bandwidth_gbs"])
            if r.get("status") == "ok":
                log(f"[compare]   decode {r['decode_tokens_per_s'][1]:.1f} tok/s, prefill {r['prefill_tokens_per_s'][1]:.0f} tok/s, "
                    f"open {r['open_ms'][1]:.0f} ms ({r['wall_s']:.0f} s, other load {r['other_load_cores']:.2f} cores)")
            else:
                log(f"[compare]   {r.get('status')}: {r.get('reason')}")
    for name in order:
        report["engines"][name] = median_pass(runs[name])
    ran = sorted({r["graph_file"] for n, r in report["engines"].items() if n.startswith("rill") and r.get("graph_file")})
    if any(pathlib.Path(g).name != "model.onnx" for g in ran):
        report["notes"].append(f"rill ran {', '.join(ran)} (`--rill-graph {args.rill_graph}`); the peers model.onnx")
    if args.passes > 1:
        per = "; ".join(f"{engine_title(name)} " + " / ".join(fmt(x, 1) for x in r["passes_decode_tokens_per_s"])
                        for name, r in report["engines"].items() if r.get("passes_decode_tokens_per_s"))
        report["notes"].append(f"each engine ran {args.passes} times, the order reversed every other pass; each row "
                               f"is the engine's pass with the median decode rate (decode tokens/s per pass: {per})")
    report["agreement"] = agreement(report, args, folder, rill_folder, check_ids)
    report["sizes"] = weight_sizes(report, folder, rill_folder)
    if args.bandwidth_gbs or not args.no_bandwidth:
        report["bandwidth"] = bw = bandwidth(args, report, folder, rill_folder, cfg)
        b = bw["bytes"]
        l3 = report["machine"]["l3_bytes"]
        if l3 and b["weight_bytes"] <= l3:
            report["notes"].append(f"the weights ({b['weight_bytes'] / MIB:.0f} MiB) fit in this CPU's last-level cache "
                                   f"({l3 / MIB:.0f} MiB, shared): the DRAM bandwidth limit need not bind, and a "
                                   "fraction above 1 is possible")
    busy = [engine_title(n) for n, r in report["engines"].items() if r.get("other_load_cores", 0) > args.busy_threshold]
    if busy:
        report["notes"].append("measured while other work used the CPU (column 'other load'): " + ", ".join(busy)
                               + "; rerun on a quiet machine for figures to quote")
    text = render(report, args.markdown)
    print(text, flush=True)
    report["table"] = text
    if args.markdown_out:
        pathlib.Path(args.markdown_out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.markdown_out).write_text(render(report, True) + "\n\n")
    if args.json:
        pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.json).write_text(json.dumps(report, indent=2))
    failed = [n for n in ("rill", "rill-base", "ort", "genai")
              if report["engines"].get(n, {}).get("status") == "failed"]
    return 1 if failed and args.strict else 0


def weight_sizes(report, folder, rill_folder):
    """model.safetensors' bytes in rill's folder and in the peers', and each llama.cpp
    engine's GGUF file, with their ratios to the peers' folder."""
    peers = (pathlib.Path(folder) / "model.safetensors").stat().st_size
    own = (pathlib.Path(rill_folder) / "model.safetensors").stat().st_size
    whole = lambda d: sum(f.stat().st_size for f in pathlib.Path(d).iterdir() if f.is_file())  # noqa: E731
    out = {"peers_folder": report["model"], "peers_weights_bytes": peers, "peers_folder_bytes": whole(folder),
           "rill_folder": report.get("rill_model") or report["model"], "rill_weights_bytes": own,
           "rill_folder_bytes": whole(rill_folder), "rill_over_peers": own / peers, "gguf": {}}
    out["rill_folder_over_peers"] = out["rill_folder_bytes"] / out["peers_folder_bytes"]
    for name in report["engine_order"]:
        r = report["engines"].get(name, {})
        if r.get("gguf_bytes"):
            out["gguf"][name] = {"path": r["gguf"], "bytes": r["gguf_bytes"], "over_peers": r["gguf_bytes"] / peers,
                                 "quant": r.get("gguf_quant"), "tensor_types": r.get("tensor_types")}
    return out


def bandwidth(args, report, folder, rill_folder, cfg):
    """This machine's read bandwidth and the decode rate it allows: bandwidth / the bytes a
    decode step reads, for the peers' folder (`limit_tokens_per_s`) and for each engine
    (`limits`: rill on its own folder, llama.cpp on its GGUF's tensors)."""
    if args.bandwidth_gbs:
        bw = {"method": "given with --bandwidth-gbs", "gb_per_s": args.bandwidth_gbs}
    else:
        with LoadMeter() as load:
            bw = measure_bandwidth(args.threads)
        bw.update(load.readings())
        # One more reading after the engines, then every reading taken just before an engine
        # ran: the limit is their median. (Each engine's fraction against the reading just
        # before it was tried: one best-of-8 reading moved 22-34 GB/s between neighbours, more
        # than the engines differ, so it ranked engines by their reader's luck.)
        readings = sorted(report.get("bandwidth_readings", []) + [bw["gb_per_s"]])
        bw["readings_gb_per_s"] = readings
        bw["gb_per_s"] = readings[len(readings) // 2]
        if len(readings) > 1:
            bw["method"] += (f"; median of {len(readings)} readings, one before each engine's run and one after, "
                             f"{readings[0]:.1f}-{readings[-1]:.1f} GB/s")
    b = bytes_per_token(folder, cfg, args.prompt_tokens, args.new_tokens)
    bw["bytes"] = b
    bw["limit_tokens_per_s"] = bw["gb_per_s"] * 1e9 / b["bytes_per_token"]
    kv = b["kv_bytes_per_position"] * b["mean_context"]
    per = {}
    for name, r in report["engines"].items():
        if r.get("status") != "ok":
            continue
        if name == "rill" and str(rill_folder) != str(folder):
            bw["rill_bytes"] = bytes_per_token(rill_folder, load_config(rill_folder), args.prompt_tokens,
                                               args.new_tokens)
            per[name] = bw["rill_bytes"]["bytes_per_token"]
        elif r.get("read_bytes_per_token"):
            per[name] = r["read_bytes_per_token"] + kv
        else:
            per[name] = b["bytes_per_token"]
    bw["bytes_per_token"] = per
    bw["limits"] = {n: bw["gb_per_s"] * 1e9 / v for n, v in per.items()}
    bw["fractions"] = {n: report["engines"][n]["decode_tokens_per_s"][1] / bw["limits"][n] for n in per}
    bw["rill_fraction"] = bw["fractions"].get("rill")
    return bw


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model folder (HF Llama layout with model.onnx)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="intra-op threads for every engine (default: cores)")
    ap.add_argument("--prompt-tokens", type=int, default=None, help="prompt length (default 128; quick: 16)")
    ap.add_argument("--new-tokens", type=int, default=None, help="greedy tokens decoded (default 64; quick: 8)")
    ap.add_argument("--reps", type=int, default=None, help="timed repetitions after one warm-up (default 3; quick: 2)")
    ap.add_argument("--quick", action="store_true", help="small sizes and reps (the test's mode)")
    ap.add_argument("--json", help="write the whole report here")
    ap.add_argument("--markdown", action="store_true", help="print the table as markdown")
    ap.add_argument("--markdown-out", help="also write the table as markdown to this file")
    ap.add_argument("--engines", default=",".join(ENGINES), help="comma-separated subset of " + ",".join(ENGINES))
    ap.add_argument("--rill", default=os.environ.get("RILL", str(ROOT / "target/release/rill")), help="rill binary")
    ap.add_argument("--rill-model", help="run rill on this folder instead (e.g. a fused-attention export of --model, "
                    "an int4 copy from `rill-train quantize`); rill also runs on --model as `rill-base`")
    ap.add_argument("--rill-graph", choices=RILL_GRAPHS, default="plain",
                    help="which of the folder's graphs rill runs (`rill bench --graph`): plain, the default, is "
                    "model.onnx, the graph the peers run; auto is rill's own choice, the fused-attention "
                    "model.gqa.onnx when the folder has one")
    ap.add_argument("--no-rill-base", action="store_true", help="with --rill-model: do not also run rill on --model")
    ap.add_argument("--llama-quant", help="run llama.cpp on its GGUF quantized to this type (q4_0, q4_1, q8_0, ...: "
                    "llama.cpp's LLAMA_FTYPE_MOSTLY_*; comma-separated for several, `none` the unquantized GGUF)")
    ap.add_argument("--check-prompt", default=CHECK_PROMPT, help="text prompt of the greedy agreement check")
    ap.add_argument("--check-tokens", type=int, default=None, help="tokens of the agreement check (default: min(new, 32))")
    ap.add_argument("--no-bandwidth", action="store_true", help="skip the bandwidth measurement")
    ap.add_argument("--bandwidth-gbs", type=float, help="use this read bandwidth (GB/s) instead of measuring")
    ap.add_argument("--busy-threshold", type=float, default=0.25, help="other load (cores) above which a row is marked busy")
    ap.add_argument("--retry-busy", type=int, default=1, help="runs again an engine measured while busy, this many "
                    "times at most, keeping the quietest run")
    ap.add_argument("--passes", type=int, default=1, help="run every engine this many times, in alternating "
                    "order, and keep each engine's pass with the median decode rate (rows of a fast model move "
                    "between processes more than within one)")
    ap.add_argument("--provider", choices=["cpu", "cuda"], default="cpu",
                    help="execution provider of rill, onnxruntime-genai and the ORT loop (cuda: rill built with "
                         "--features cuda, onnxruntime-gpu and onnxruntime-genai-cuda; llama.cpp stays on the CPU)")
    ap.add_argument("--device", type=int, default=0, help="GPU ordinal with --provider cuda")
    ap.add_argument("--timeout", type=int, default=1200, help="seconds per engine")
    ap.add_argument("--strict", action="store_true", help="exit 1 if rill, the ORT loop or genai failed")
    ap.add_argument("--engine", choices=[*PEERS, "rill-abi"], help=argparse.SUPPRESS)
    ap.add_argument("--check-ids", help=argparse.SUPPRESS)
    args = ap.parse_args()
    quick = args.quick
    args.prompt_tokens = args.prompt_tokens or (16 if quick else 128)
    args.new_tokens = args.new_tokens or (8 if quick else 64)
    args.reps = args.reps or (2 if quick else 3)
    args.check_tokens = args.check_tokens or min(args.new_tokens, 32)
    if args.threads < 1:
        args.threads = os.cpu_count()
    if args.passes < 1:
        ap.error("--passes must be at least 1")
    if args.engine == "rill-abi":
        rill_abi_ids(args)
        return 0
    if args.engine:
        args.check_ids = [int(x) for x in args.check_ids.split(",")] if args.check_ids else None
        child(args)
        return 0
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in args.engines if e not in ENGINES]
    if unknown:
        ap.error(f"unknown engines {unknown}; choose from {ENGINES}")
    args.llama_quants = [q.strip().lower() for q in (args.llama_quant or "").split(",") if q.strip()]
    bad = [q for q in args.llama_quants if not re.fullmatch(r"[a-z0-9_]+", q)]
    if bad or len(set(args.llama_quants)) != len(args.llama_quants):
        ap.error(f"--llama-quant: types like q4_0,q4_1,q8_0 (or none), each once; got {args.llama_quant!r}")
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
