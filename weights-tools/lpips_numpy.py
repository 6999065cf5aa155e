"""LPIPS v0.1 in plain numpy (float64), the reference the Rust LPIPS is tested against.

It mirrors the `lpips` package (richzhang/PerceptualSimilarity, `lpips/lpips.py`,
`pretrained_networks.py`) step by step, reading the weights from the converted
`assets/weights/{vgg16,alexnet}_lpips.safetensors` (see convert_lpips.py):

* input images in [-1, 1], NCHW; ScalingLayer `(x - shift) / scale` with
  shift = [-.030, -.088, -.188], scale = [.458, .448, .450];
* backbone = torchvision `features` (Conv2d zero padding, ReLU, MaxPool2d floor mode); taps
  VGG-16 relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (features indices 3, 8, 15, 22, 29),
  AlexNet relu1..relu5 (indices 1, 4, 7, 9, 11);
* each tap unit-normalised over channels (`x / (sqrt(sum x^2) + 1e-10)`), squared difference,
  1x1 conv `lin{k}` (no bias; dropout is inactive in eval);
* `spatial=False`: mean over H, W per layer, summed over layers (the package default);
  `spatial=True`: each layer's map upsampled bilinearly (align_corners=False) to the input size,
  summed; the metric is then the mean of that map (PUT's `cal_lpips.py`, spec §7.4).

Usage: python3 lpips_numpy.py WEIGHTS.safetensors IMG0.png IMG1.png [--spatial]
Needs numpy (and Pillow for the command line).
"""

import json
import struct
import sys

import numpy as np

SHIFT = np.array([-0.030, -0.088, -0.188])
SCALE = np.array([0.458, 0.448, 0.450])

# torchvision `features` layouts: ("C", out, kernel, stride, pad) | ("R",) | ("M", kernel, stride)
VGG16 = []
for i, v in enumerate([64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]):
    VGG16 += [("M", 2, 2)] if v == "M" else [("C", v, 3, 1, 1), ("R",)]
ALEXNET = [("C", 64, 11, 4, 2), ("R",), ("M", 3, 2), ("C", 192, 5, 1, 2), ("R",), ("M", 3, 2),
           ("C", 384, 3, 1, 1), ("R",), ("C", 256, 3, 1, 1), ("R",), ("C", 256, 3, 1, 1), ("R",)]
NETS = {"vgg16": (VGG16, [3, 8, 15, 22, 29]), "alexnet": (ALEXNET, [1, 4, 7, 9, 11])}


def read_safetensors(path):
    """{name: float64 array} and the metadata of a safetensors file (F32 / F16 only)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    dtypes = {"F32": "<f4", "F16": "<f2"}
    out = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=dtypes[info["dtype"]]).reshape(info["shape"]).astype(np.float64)
    return out, meta


def conv2d(x, w, b, stride, pad):
    """x [N, C, H, W], w [O, C, kh, kw] -> [N, O, OH, OW] (cross-correlation, zero padding)."""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    kh, kw = w.shape[2:]
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    y = np.einsum("nchwij,ocij->nohw", win, w, optimize=True)
    return y + b[None, :, None, None]


def max_pool(x, k, s):
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    return win.max(axis=(4, 5))


def features(weights, net, x):
    """The five tapped activations of the backbone for x [N, 3, H, W] (already scaled)."""
    layout, taps = NETS[net]
    outs = []
    for i, layer in enumerate(layout[: taps[-1] + 1]):
        if layer[0] == "C":
            x = conv2d(x, weights[f"features.{i}.weight"], weights[f"features.{i}.bias"], layer[3], layer[4])
        elif layer[0] == "R":
            x = np.maximum(x, 0)
        else:
            x = max_pool(x, layer[1], layer[2])
        if i in taps:
            outs.append(x)
    return outs


def upsample_bilinear(x, out_hw):
    """PyTorch `F.interpolate(mode='bilinear', align_corners=False)` of x [N, C, h, w]."""

    def taps(n_in, n_out):
        s = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0)
        i0 = np.minimum(np.floor(s).astype(int), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, s - i0

    y0, y1, wy = taps(x.shape[2], out_hw[0])
    x0, x1, wx = taps(x.shape[3], out_hw[1])
    rows = x[:, :, y0, :] * (1 - wy)[None, None, :, None] + x[:, :, y1, :] * wy[None, None, :, None]
    return rows[:, :, :, x0] * (1 - wx) + rows[:, :, :, x1] * wx


def lpips(weights, net, in0, in1, spatial=False):
    """LPIPS v0.1 of in0, in1 [N, 3, H, W] in [-1, 1]: [N] values (spatial: mean of the map)."""
    scale = lambda t: (t - SHIFT[None, :, None, None]) / SCALE[None, :, None, None]
    f0, f1 = features(weights, net, scale(in0)), features(weights, net, scale(in1))
    total = 0.0
    for k, (a, b) in enumerate(zip(f0, f1)):
        na = a / (np.sqrt((a**2).sum(axis=1, keepdims=True)) + 1e-10)
        nb = b / (np.sqrt((b**2).sum(axis=1, keepdims=True)) + 1e-10)
        d = np.einsum("nchw,oc->nohw", (na - nb) ** 2, weights[f"lin{k}.weight"][:, :, 0, 0])
        total = total + (upsample_bilinear(d, in0.shape[2:]) if spatial else d.mean(axis=(2, 3), keepdims=True))
    return total.mean(axis=(1, 2, 3))


def load_image(path):
    """An image file as [1, 3, H, W] in [-1, 1] (`lpips.im2tensor(lpips.load_image(path))`)."""
    from PIL import Image

    a = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    return (a / 127.5 - 1.0).transpose(2, 0, 1)[None]


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    weights, meta = read_safetensors(argv[0])
    print(f"{meta.get('net')}: {lpips(weights, meta['net'], load_image(argv[1]), load_image(argv[2]), '--spatial' in argv)[0]:.10f}")


if __name__ == "__main__":
    main(sys.argv[1:])
