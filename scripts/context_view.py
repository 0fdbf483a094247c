#!/usr/bin/env python3
"""A view of a model folder with room for more positions: every file symlinked except
config.json, whose max_position_embeddings is raised. The plain exported graph computes
RoPE from position_ids, so it runs such a view unchanged; `rill-train export --from VIEW`
then writes graphs (the fused-attention one bakes its rotary tables) for the longer
context. Positions past the trained length are untrained: for speed measurements only.

    python3 scripts/context_view.py FOLDER POSITIONS OUT
"""
import json
import pathlib
import shutil
import sys


def write_view(folder, positions, out):
    """Writes the view of `folder` with `positions` positions at `out` (replaced)."""
    folder, out = pathlib.Path(folder).resolve(), pathlib.Path(out)
    if out.exists() or out.is_symlink():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for item in folder.iterdir():
        # model.gqa.onnx holds rotary tables of the folder's own positions: left out, so
        # the view runs model.onnx (export a fused graph of the view itself if wanted).
        if item.name not in ("config.json", "model.gqa.onnx"):
            (out / item.name).symlink_to(item)
    raw = json.loads((folder / "config.json").read_text())
    raw["max_position_embeddings"] = positions
    (out / "config.json").write_text(json.dumps(raw, indent=2))
    return out


if __name__ == "__main__":
    if len(sys.argv) != 4 or not sys.argv[2].isdigit():
        sys.exit("usage: scripts/context_view.py FOLDER POSITIONS OUT")
    write_view(sys.argv[1], int(sys.argv[2]), sys.argv[3])
