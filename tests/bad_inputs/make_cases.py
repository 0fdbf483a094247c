"""Writes the bad model folders of the catalogue: one copy of the default model per case,
each broken in one way, with the status and a word of the message rill must answer with.

Usage: make_cases.py MODEL_DIR OUT_DIR  (writes OUT_DIR/<case>/ and OUT_DIR/cases.tsv:
case, expected status, needle). Standard library only."""
import json
import pathlib
import shutil
import struct
import sys

MODEL, OUT = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
CASES = []


def case(name, status, needle, fused=False):
    """A case on a copy of the folder with its plain graph only, or with `fused` the
    fused-attention graph (model.gqa.onnx, which rill then runs) as well."""
    def register(mutate):
        CASES.append((name, status, needle, fused, mutate))
        return mutate
    return register


def safetensors(d):
    raw = (d / "model.safetensors").read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write_safetensors(d, header, data, pad=True):
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    (d / "model.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + data)


def edit_json(d, file, change):
    cfg = json.loads((d / file).read_text())
    change(cfg)
    (d / file).write_text(json.dumps(cfg))


def first_tensor(header):
    return next(k for k in sorted(header) if k != "__metadata__")


@case("config_missing", "RILL_ERR_NOT_FOUND", "config.json")
def _(d): (d / "config.json").unlink()


@case("config_not_json", "RILL_ERR_CONFIG", "JSON")
def _(d): (d / "config.json").write_text("{\"vocab_size\": 4096,")


@case("config_empty", "RILL_ERR_CONFIG", "config")
def _(d): (d / "config.json").write_text("")


@case("config_zero_vocab", "RILL_ERR_CONFIG", "vocab_size")
def _(d): edit_json(d, "config.json", lambda c: c.update(vocab_size=0))


@case("config_heads_not_multiple", "RILL_ERR_CONFIG", "num_key_value_heads")
def _(d): edit_json(d, "config.json", lambda c: c.update(num_key_value_heads=3))


@case("config_wrong_hidden_size", "RILL_ERR_WEIGHTS", "shape")
def _(d): edit_json(d, "config.json", lambda c: c.update(hidden_size=320))


@case("config_more_layers", "RILL_ERR_WEIGHTS", "model.layers.4")
def _(d): edit_json(d, "config.json", lambda c: c.update(num_hidden_layers=5))


@case("config_other_vocab", "RILL_ERR_WEIGHTS", "embed_tokens")
def _(d): edit_json(d, "config.json", lambda c: c.update(vocab_size=5000))


@case("generation_config_not_json", "RILL_ERR_GENERATION_CONFIG", "generation_config.json")
def _(d): (d / "generation_config.json").write_text("{\"temperature\": ")


@case("generation_config_wrong_type", "RILL_ERR_GENERATION_CONFIG", "max_new_tokens")
def _(d): edit_json(d, "generation_config.json", lambda c: c.update(max_new_tokens="many"))


@case("tokenizer_missing", "RILL_ERR_NOT_FOUND", "tokenizer.json")
def _(d): (d / "tokenizer.json").unlink()


@case("tokenizer_garbage", "RILL_ERR_TOKENIZER", "tokenizer.json")
def _(d): (d / "tokenizer.json").write_text("not a tokenizer")


@case("tokenizer_config_not_json", "RILL_ERR_CONFIG", "tokenizer_config.json")
def _(d): (d / "tokenizer_config.json").write_text("{")


@case("chat_template_does_not_compile", "RILL_ERR_CONFIG", "template")
def _(d): edit_json(d, "tokenizer_config.json", lambda c: c.update(chat_template="{% for %}"))


@case("weights_truncated", "RILL_ERR_WEIGHTS", "model.safetensors")
def _(d):
    raw = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(raw[: len(raw) // 2])


@case("weights_empty", "RILL_ERR_WEIGHTS", "model.safetensors")
def _(d): (d / "model.safetensors").write_bytes(b"")


@case("weights_header_length_past_end", "RILL_ERR_WEIGHTS", "model.safetensors")
def _(d):
    raw = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(struct.pack("<Q", 1 << 40) + raw[8:])


@case("weights_header_not_json", "RILL_ERR_WEIGHTS", "model.safetensors")
def _(d):
    raw = bytearray((d / "model.safetensors").read_bytes())
    raw[8:12] = b"\xff\xfe!!"
    (d / "model.safetensors").write_bytes(bytes(raw))


@case("weights_offsets_out_of_bounds", "RILL_ERR_WEIGHTS", "model.safetensors")
def _(d):
    header, data = safetensors(d)
    name = first_tensor(header)
    start, end = header[name]["data_offsets"]
    header[name]["data_offsets"] = [start + len(data), end + len(data)]
    write_safetensors(d, header, data)


@case("weights_offsets_overlap", "RILL_ERR_WEIGHTS", "model.safetensors")
def _(d):
    header, data = safetensors(d)
    names = [k for k in sorted(header, key=lambda k: header[k]["data_offsets"][0] if k != "__metadata__" else -1)
             if k != "__metadata__"]
    a, b = names[0], names[1]
    header[b]["data_offsets"] = list(header[a]["data_offsets"])
    write_safetensors(d, header, data)


@case("weights_wrong_dtype", "RILL_ERR_WEIGHTS", "dtype")
def _(d):
    header, data = safetensors(d)
    header[first_tensor(header)]["dtype"] = "I32"
    write_safetensors(d, header, data)


@case("weights_tensor_missing", "RILL_ERR_WEIGHTS", "model.norm.weight")
def _(d):
    header, data = safetensors(d)
    header["model.norm.weight_renamed"] = header.pop("model.norm.weight")
    write_safetensors(d, header, data)


@case("weights_nan", "RILL_ERR_WEIGHTS", "NaN")
def _(d):
    header, data = safetensors(d)
    start, _ = header["model.norm.weight"]["data_offsets"]
    data = bytearray(data)
    data[start:start + 4] = struct.pack("<f", float("nan"))
    write_safetensors(d, header, bytes(data))


@case("graph_missing", "RILL_ERR_NOT_FOUND", "model.onnx")
def _(d): (d / "model.onnx").unlink()


@case("graph_garbage", "RILL_ERR_ORT", "ONNX Runtime")
def _(d): (d / "model.onnx").write_bytes(b"\x08\x07garbage that is not a model")


@case("graph_truncated", "RILL_ERR_ORT", "ONNX Runtime")
def _(d):
    raw = (d / "model.onnx").read_bytes()
    (d / "model.onnx").write_bytes(raw[: len(raw) // 3])


@case("graph_disagrees_with_config_heads", "RILL_ERR_GRAPH_MISMATCH", "past_key_values.0.key")
def _(d):
    # Same weights, but config says head_dim 32 with twice the kv heads: shapes agree for
    # the weights, not for the graph's cache tensors.
    edit_json(d, "config.json", lambda c: c.update(num_key_value_heads=4, num_attention_heads=8, head_dim=32))


@case("fused_graph_truncated", "RILL_ERR_ORT", "ONNX Runtime", fused=True)
def _(d):
    raw = (d / "model.gqa.onnx").read_bytes()
    (d / "model.gqa.onnx").write_bytes(raw[: len(raw) // 3])


@case("fused_graph_disagrees_with_config_heads", "RILL_ERR_GRAPH_MISMATCH", "model.gqa.onnx", fused=True)
def _(d):
    edit_json(d, "config.json", lambda c: c.update(num_key_value_heads=4, num_attention_heads=8, head_dim=32))


@case("folder_is_a_file", "RILL_ERR_NOT_FOUND", "config.json")
def _(d):
    shutil.rmtree(d)
    d.write_text("a file, not a folder")


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    rows = []
    for name, status, needle, fused, mutate in CASES:
        d = OUT / name
        skipped = ["*.png", "training_*"] + ([] if fused else ["model.gqa.onnx"])
        shutil.copytree(MODEL, d, ignore=shutil.ignore_patterns(*skipped))
        mutate(d)
        rows.append(f"{name}\t{status}\t{needle}")
    (OUT / "cases.tsv").write_text("\n".join(rows) + "\n")
    # A sound folder that is another model (for saved-state rows): same architecture,
    # another config.
    other = OUT / "other_model"
    shutil.copytree(MODEL, other, ignore=shutil.ignore_patterns("*.png", "training_*"))
    edit_json(other, "config.json", lambda c: c.update(initializer_range=0.03))
    print(f"{len(rows)} bad model folders in {OUT}")


main()
