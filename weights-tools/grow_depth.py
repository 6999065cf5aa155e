#!/usr/bin/env python3
"""Deepen the transformer of a weights file without changing what it computes.

    python3 weights-tools/grow_depth.py IN.safetensors OUT.safetensors --after 1,3

Each index in `--after` (a block of IN, 0-based) gets a new block right after it: a copy of that
block whose two output projections (`attn.proj` and `mlp.2`, weight and bias) are zero. The
transformer's blocks are pre-LayerNorm residual blocks (x + attn(ln1(x)), then x + mlp(ln2(x))),
so a block whose output projections are zero adds nothing: the grown model gives the same logits
as IN until training moves the new projections away from zero. Copying the neighbour (rather than
drawing fresh weights) starts the new block's attention and MLP on features the model already
uses. Every other tensor is copied byte for byte; the `config` metadata gets the new `n_layer`.

Only the standard library is needed. The output is written to a temporary file and renamed, so a
failed run never leaves a half-written OUT.
"""
import argparse
import json
import os
import re
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

BLOCK_KEY = re.compile(r"^generator\.blocks\.(\d+)\.(.+)$")
ZEROED_SUFFIXES = ("attn.proj.weight", "attn.proj.bias", "mlp.2.weight", "mlp.2.bias")


def read_safetensors(path):
    """(metadata dict, {name: (dtype, shape, raw bytes)}) in file order."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        sys.exit(f"{path}: too short to be a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        sys.exit(f"{path}: header length {n} runs past the end of the file")
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n :]
    tensors = {}
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        lo, hi = info["data_offsets"]
        tensors[name] = (info["dtype"], info["shape"], data[lo:hi])
    return meta, tensors


def write_safetensors(path, meta, tensors):
    """Write {name: (dtype, shape, raw bytes)} in order, atomically (``safetensors_io.write``):
    the bytes pass through unchanged, whatever the dtype."""
    safetensors_io.write(path, [(name, dtype, shape, blob) for name, (dtype, shape, blob) in tensors.items()], meta)


def grow(meta, tensors, after):
    """New tensor dict and metadata with a zero-output copy inserted after each block in `after`."""
    config = json.loads(meta["config"])
    n_layer = config["transformer"]["n_layer"]
    bad = [i for i in after if not 0 <= i < n_layer]
    if bad:
        sys.exit(f"--after {bad}: the input has blocks 0..{n_layer - 1}")
    blocks = [dict() for _ in range(n_layer)]
    for name, value in tensors.items():
        m = BLOCK_KEY.match(name)
        if m:
            blocks[int(m.group(1))][m.group(2)] = value
    order = []  # (source block, zero outputs?)
    for i in range(n_layer):
        order.append((i, False))
        if i in after:
            order.append((i, True))
    out, placed = {}, False
    for name, value in tensors.items():
        if not BLOCK_KEY.match(name):
            out[name] = value
            continue
        if placed:
            continue
        placed = True  # all blocks go where the first block key stood
        for new_index, (src, zero) in enumerate(order):
            for suffix, (dtype, shape, blob) in blocks[src].items():
                if zero and suffix in ZEROED_SUFFIXES:
                    blob = bytes(len(blob))
                out[f"generator.blocks.{new_index}.{suffix}"] = (dtype, shape, blob)
    config["transformer"]["n_layer"] = len(order)
    meta = dict(meta, config=json.dumps(config, indent=2))
    return meta, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--after", required=True, help="comma-separated block indices of the input")
    args = ap.parse_args()
    try:
        after = sorted({int(s) for s in args.after.split(",") if s.strip()})
    except ValueError:
        sys.exit(f"--after {args.after!r}: expected comma-separated integers")
    if os.path.abspath(args.input) == os.path.abspath(args.output):
        sys.exit("the output must be a new file (the input is kept as it is)")
    meta, tensors = read_safetensors(args.input)
    if "config" not in meta:
        sys.exit(f"{args.input}: no model config in the metadata (not a model file of fdm)")
    meta, tensors = grow(meta, tensors, after)
    write_safetensors(args.output, meta, tensors)
    n = json.loads(meta["config"])["transformer"]["n_layer"]
    print(f"{args.output}: {n} transformer blocks ({len(after)} new, outputs zero)")


if __name__ == "__main__":
    main()
