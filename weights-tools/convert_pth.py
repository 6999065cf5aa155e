#!/usr/bin/env python3
"""Convert official FDM / PUT PyTorch checkpoints to an fdm safetensors weights file.

Spec §8.1-§8.4. The output holds exactly the inference keys of the paper preset (spec §8.2, read
from ``paper_keys.json`` next to this file, which ``tests/param_spec.rs`` generates from the Rust
parameter spec), in that order, as little-endian f32, with the fdm metadata (``format``,
``preset``, ``config``) that ``fdm::io::safetensors::load_model`` reads. The whole key list and
every shape are checked; every missing, unexpected or mis-shaped key is listed.

Sources (combine as needed; each output key must come from exactly one source):

  --fdm PATH              an FDM checkpoint (``InpaintingModel`` state dict under ``model`` or
                          ``state_dict``): ``lip.*`` renamed ``fdm.*``, training-only ``loss.*``
                          keys (discriminator, VGG, label buffers; spec §8.3) dropped, the rest kept.
  --generator PATH        a checkpoint used for its transformer only: keys starting with
                          ``generator`` (what the official ``generator_path`` loader merges).
  --put-transformer PATH  a PUT transformer checkpoint: its ``content_codec.*`` copy and ``loss.*``
                          dropped, every other key prefixed ``generator.``.
  --put-codec PATH        a PUT P-VQVAE codec: pure weight re-indexing of its pre-activation
                          residual blocks (spec §8.4). Converted PUT codecs do NOT reproduce PUT
                          outputs (the residual maths differs) and need fine-tuning.

Examples:
  convert_pth.py paper.safetensors --fdm fdm_tuning.pth --generator generator.pth
  convert_pth.py paper.safetensors --fdm fdm_tuning.pth --put-transformer put_transformer.pth

Reading a ``.pth``: with torch when it is installed (``torch.load(weights_only=True)``), otherwise
with ``pth_zip.py`` (no torch; needs numpy), which never executes anything from the pickle.
The mapping functions below need neither and are what ``test_convert.py`` checks.
"""

import argparse
import json
import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402

DEFAULT_TABLE = os.path.join(HERE, "paper_keys.json")

PUT_CODEC_WARNING = (
    "WARNING: converted PUT codec weights do NOT reproduce PUT outputs. PUT's residual blocks are "
    "pre-activation (x + f(relu x)), FDM's are post-activation (relu(x + f(x))); the re-indexing of "
    "spec 8.4 only moves weights. Fine-tune the codec before use."
)

CODEC_PARTS = ("encoder.", "decoder.", "quantize.", "quant_conv.", "post_quant_conv.")


class ConversionError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Key table


class Table:
    """The expected (name, shape, role) list and the model config, from paper_keys.json."""

    def __init__(self, preset, config, entries):
        self.preset, self.config, self.entries = preset, config, entries
        self.shapes = {name: shape for name, shape, _ in entries}

    @classmethod
    def load(cls, path=DEFAULT_TABLE):
        with open(path) as f:
            t = json.load(f)
        return cls(t["preset"], t["config"], [(n, tuple(s), r) for n, s, r in t["tensors"]])


def shape_of(value):
    shape = getattr(value, "shape", None)
    return None if shape is None else tuple(int(d) for d in shape)


class Constant:
    """A small f32 tensor made by the converter (the unused ``temp`` parameter)."""

    def __init__(self, shape, value=0.0):
        self.shape, self.value = tuple(shape), float(value)

    def f32_bytes(self):
        n = 1
        for d in self.shape:
            n *= d
        return struct.pack(f"<{n}f", *([self.value] * n))


# ---------------------------------------------------------------------------------------------
# Pure mapping (no torch, no numpy): dicts of name -> tensor-like (anything with .shape)


def state_dict_of(ckpt, label):
    """The state dict inside a loaded checkpoint: ``model``, else ``state_dict``, else itself."""
    if isinstance(ckpt, dict):
        for key in ("model", "state_dict"):
            if key in ckpt and isinstance(ckpt[key], dict):
                return dict(ckpt[key])
        if ckpt and all(shape_of(v) is not None for v in ckpt.values()):
            return dict(ckpt)
    raise ConversionError(f"{label}: no `model` or `state_dict` entry and not a plain state dict")


def is_training_only(key):
    # Spec §8.3: loss.discriminator.*, loss.adversarial_loss.*, loss.perceptual_loss.vgg.*, ...
    return key.startswith("loss.")


def map_fdm(sd):
    """FDM checkpoint: `lip.` -> `fdm.`, drop training-only keys. Returns (dict, notes).

    The official loader renames any key *containing* "lip" to "fdm." + key[4:]; every real key of
    that kind starts with "lip.", and only those are renamed here (no other key is mangled)."""
    out, renamed, dropped = {}, 0, 0
    for k, v in sd.items():
        if is_training_only(k):
            dropped += 1
            continue
        if k.startswith("lip."):
            k, renamed = "fdm." + k[4:], renamed + 1
        out[k] = v
    notes = []
    if renamed:
        notes.append(f"renamed {renamed} `lip.*` keys to `fdm.*`")
    if dropped:
        notes.append(f"dropped {dropped} training-only `loss.*` keys")
    return out, notes


def map_generator(sd):
    """Transformer source: only keys starting with `generator` (official generator_path rule)."""
    out = {k: v for k, v in sd.items() if k.startswith("generator")}
    skipped = len(sd) - len(out)
    return out, ([f"ignored {skipped} non-generator keys"] if skipped else [])


def map_put_transformer(sd):
    """PUT transformer: drop `content_codec.*` and `loss.*`, prefix the rest with `generator.`."""
    out, dropped_codec, dropped_loss = {}, 0, 0
    for k, v in sd.items():
        if k.startswith("content_codec."):
            dropped_codec += 1
        elif is_training_only(k):
            dropped_loss += 1
        else:
            out[k if k.startswith("generator.") else "generator." + k] = v
    notes = [f"dropped {dropped_codec} `content_codec.*` keys (PUT's codec copy)"] if dropped_codec else []
    if dropped_loss:
        notes.append(f"dropped {dropped_loss} training-only `loss.*` keys")
    return out, notes


_PUT_CODEC_RULES = [
    # PUT layer index -> FDM layer index (ReLUs have no weights, so PUT's Linear/Conv sit at odd
    # indices of its Sequential, FDM's at even ones).
    (re.compile(r"^(content_codec\.encoder\.res_layers\.\d+\.layers\.)1\."), r"\g<1>0."),
    (re.compile(r"^(content_codec\.encoder\.res_layers\.\d+\.layers\.)3\."), r"\g<1>2."),
    (re.compile(r"^(content_codec\.encoder\.post_layers\.)1\."), r"\g<1>0."),
    (re.compile(r"^(content_codec\.decoder\.res_layers\.\d+\.conv\.)1\."), r"\g<1>0."),
    (re.compile(r"^(content_codec\.decoder\.res_layers\.\d+\.conv\.)3\."), r"\g<1>2."),
    (re.compile(r"^(content_codec\.decoder\.post_layers\.)1\."), r"\g<1>0."),
]
_FDM_LAYOUT = re.compile(
    r"^content_codec\.(encoder\.res_layers\.\d+\.layers\.[02]\.|decoder\.res_layers\.\d+\.conv\.[02]\.|"
    r"encoder\.post_layers\.0\.|decoder\.post_layers\.0\.)"
)


def map_put_codec(sd):
    """PUT codec -> FDM codec names (spec §8.4). Keys without `content_codec.` are prefixed;
    non-codec keys are dropped. Refuses a codec that is already in FDM layout."""
    prefixed = {}
    for k, v in sd.items():
        if k.startswith(CODEC_PARTS):
            k = "content_codec." + k
        prefixed[k] = v
    already = sorted(k for k in prefixed if _FDM_LAYOUT.match(k))
    if already:
        raise ConversionError(
            f"--put-codec: {len(already)} keys are already in FDM layout (e.g. {already[0]}); pass this file with --fdm"
        )
    out, dropped = {}, 0
    for k, v in prefixed.items():
        if not k.startswith("content_codec."):
            dropped += 1
            continue
        for pattern, repl in _PUT_CODEC_RULES:
            k = pattern.sub(repl, k)
        out[k] = v
    notes = [PUT_CODEC_WARNING]
    if dropped:
        notes.append(f"dropped {dropped} non-codec keys")
    return out, notes


MAPPERS = {"fdm": map_fdm, "generator": map_generator, "put-transformer": map_put_transformer, "put-codec": map_put_codec}


def merge(mapped):
    """Merge [(label, dict)]; a key produced by two sources is an error naming both."""
    out, origin, clashes = {}, {}, []
    for label, sd in mapped:
        for k, v in sd.items():
            if k in out:
                clashes.append(f"{k} (from {origin[k]} and {label})")
            out[k], origin[k] = v, label
    if clashes:
        raise ConversionError(f"{len(clashes)} keys come from two sources:\n  " + "\n  ".join(clashes))
    return out


def check(sd, table):
    """(missing [(name, shape)], unexpected [(name, shape)], misshaped [(name, want, got)])."""
    missing = [(n, s) for n, s, _ in table.entries if n not in sd]
    unexpected = [(k, shape_of(v)) for k, v in sd.items() if k not in table.shapes]
    misshaped = [(n, s, shape_of(sd[n])) for n, s, _ in table.entries if n in sd and shape_of(sd[n]) != s]
    return missing, unexpected, misshaped


def format_problems(missing, unexpected, misshaped):
    lines = [
        f"{len(missing)} missing, {len(unexpected)} unexpected, {len(misshaped)} with the wrong shape "
        "(against the paper key table)"
    ]
    lines += [f"  missing:     {n} {list(s)}" for n, s in missing]
    lines += [f"  unexpected:  {n} {list(s) if s is not None else 'not a tensor'}" for n, s in unexpected]
    lines += [f"  wrong shape: {n}: expected {list(w)}, found {list(g) if g is not None else None}" for n, w, g in misshaped]
    return "\n".join(lines)


def convert(sources, table, allow_partial=False):
    """sources: [(kind, label, state_dict)]. Returns (ordered [(name, value)], notes, partial).

    Raises ConversionError listing every problem unless allow_partial (then only the present,
    correctly shaped table keys are kept)."""
    notes, mapped = [], []
    for kind, label, sd in sources:
        out, n = MAPPERS[kind](sd)
        notes += [f"{label}: {x}" for x in n]
        mapped.append((label, out))
    merged = merge(mapped)
    if "temp" in table.shapes and "temp" not in merged:
        merged["temp"] = Constant(table.shapes["temp"])
        notes.append("added `temp` [1] = 0 (an unused dummy of the official model)")
    missing, unexpected, misshaped = check(merged, table)
    partial = bool(missing or unexpected or misshaped)
    if partial and not allow_partial:
        raise ConversionError(format_problems(missing, unexpected, misshaped))
    if partial:
        notes.append("PARTIAL: " + format_problems(missing, unexpected, misshaped))
    bad = {n for n, _, _ in misshaped}
    ordered = [(n, merged[n]) for n, _, _ in table.entries if n in merged and n not in bad]
    return ordered, notes, partial


# ---------------------------------------------------------------------------------------------
# Writing (stdlib only)


def f32_bytes(value):
    """Little-endian f32 bytes of a torch tensor, numpy array, LazyTensor or Constant."""
    if hasattr(value, "f32_bytes"):
        return value.f32_bytes()
    if hasattr(value, "detach"):  # torch.Tensor
        value = value.detach().to("cpu").float().contiguous().numpy()
    import numpy as np

    return np.ascontiguousarray(value, dtype="<f4").tobytes()


def metadata_for(table, source_desc, notes, partial):
    meta = {
        "format": "fdm-weights",
        "preset": table.preset,
        "config": json.dumps(table.config, separators=(",", ":")),
        "source": source_desc,
        "converter": "weights-tools/convert_pth.py",
    }
    if any(PUT_CODEC_WARNING in n for n in notes):
        meta["warning"] = PUT_CODEC_WARNING
    if partial:
        meta["partial"] = "true"
    return meta


def write_safetensors(path, items, metadata):
    """Write [(name, value)] as F32 safetensors, atomically (``safetensors_io.write``); each
    value's bytes are made only when it is written."""
    tensors = [(name, "F32", list(shape_of(value)), lambda v=value: f32_bytes(v)) for name, value in items]
    try:
        safetensors_io.write(path, tensors, metadata)
    except safetensors_io.SizeError as e:
        raise ConversionError(str(e)) from e


# ---------------------------------------------------------------------------------------------
# Reading .pth files


def read_checkpoint(path, reader="auto"):
    """Load a .pth: with torch (weights_only) when available or asked, else with pth_zip."""
    if reader in ("auto", "torch"):
        try:
            import torch
        except ImportError:
            if reader == "torch":
                raise ConversionError("--reader torch: torch is not installed")
        else:
            try:
                return torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:  # weights_only refuses unknown globals in optimizer state etc.
                if reader == "torch":
                    raise ConversionError(f"{path}: torch.load(weights_only=True) failed: {e}")
                print(f"note: torch.load(weights_only=True) failed ({e}); using the built-in reader", file=sys.stderr)
    sys.path.insert(0, HERE)
    import pth_zip

    try:
        return pth_zip.load(path)
    except pth_zip.PthFormatError as e:
        raise ConversionError(str(e))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("output", help="the .safetensors file to write")
    for kind in MAPPERS:
        ap.add_argument(f"--{kind}", action="append", default=[], metavar="PATH")
    ap.add_argument("--table", default=DEFAULT_TABLE, help="key table JSON (default: paper_keys.json)")
    ap.add_argument("--allow-partial", action="store_true", help="write what matches even if keys are missing")
    ap.add_argument("--reader", choices=["auto", "torch", "builtin"], default="auto")
    args = ap.parse_args(argv)
    table = Table.load(args.table)
    sources = []
    for kind in MAPPERS:
        for path in getattr(args, kind.replace("-", "_")):
            label = f"{kind}={os.path.basename(path)}"
            sources.append((kind, label, state_dict_of(read_checkpoint(path, args.reader), label)))
    if not sources:
        ap.error("give at least one source (--fdm, --generator, --put-transformer, --put-codec)")
    try:
        items, notes, partial = convert(sources, table, args.allow_partial)
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for n in notes:
        print(("\n" + "!" * 100 + "\n" + n + "\n" + "!" * 100) if n.endswith(PUT_CODEC_WARNING) else f"note: {n}", file=sys.stderr)
    write_safetensors(args.output, items, metadata_for(table, "; ".join(l for _, l, _ in sources), notes, partial))
    print(f"wrote {args.output}: {len(items)} tensors" + (" (PARTIAL: will not load strictly)" if partial else ""))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
