#!/usr/bin/env python3
"""Tests of convert_pth.py and pth_zip.py (run: python3 weights-tools/test_convert.py).

The key mapping, the table check and the safetensors writer need only the standard library and
always run, at the real paper shapes (tensors stood in by shape-only objects). With numpy the
torch-free .pth reader runs on a checkpoint laid out like torch.save's zip format; with the
`safetensors` package the written file is read back by the reference reader; with torch a real
torch.save file is converted with both readers. Each missing package prints a SKIP line; the
exit code is 0 when every test that ran passed.

`weights-tools/fixtures/mini.safetensors` is written by this converter and read by the Rust
loader in `tests/safetensors_io.rs`; regenerate it with FDM_BLESS=1.
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import convert_pth as cp  # noqa: E402

FIXTURE = os.path.join(HERE, "fixtures", "mini.safetensors")
TESTS, SKIPS = [], []


def test(fn):
    TESTS.append(fn)
    return fn


def skip(why):
    SKIPS.append(why)
    print(f"SKIP: {why}")


def have(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


class Shaped:
    """A tensor stand-in with only a shape (enough for mapping and checking)."""

    def __init__(self, shape):
        self.shape = tuple(shape)


class Values:
    """A tensor stand-in with f32 values (enough for writing)."""

    def __init__(self, shape, values):
        self.shape, self.values = tuple(shape), list(values)

    def f32_bytes(self):
        return struct.pack(f"<{len(self.values)}f", *self.values)


TABLE = cp.Table.load()


def paper_state(prefixes, rename=None):
    """Shape-only state dict of the paper table entries whose name starts with one of prefixes."""
    out = {}
    for name, shape, _ in TABLE.entries:
        if name.startswith(prefixes):
            out[rename(name) if rename else name] = Shaped(shape)
    return out


def training_only_keys():
    """Spec §8.3 keys of a Phase-3 checkpoint (a sample of the VGG ones)."""
    keys = {}
    chans = [(3, 64), (64, 128), (128, 256), (256, 512), (512, 1)]
    for k, (cin, cout) in enumerate(chans, 1):
        keys[f"loss.discriminator.conv{k}.0.weight_orig"] = Shaped((cout, cin, 4, 4))
        keys[f"loss.discriminator.conv{k}.0.weight_u"] = Shaped((cout,))
        keys[f"loss.discriminator.conv{k}.0.weight_v"] = Shaped((cin * 16,))
    keys["loss.discriminator.features.0.weight_orig"] = Shaped((64, 3, 4, 4))
    keys["loss.adversarial_loss.real_label"] = Shaped(())
    keys["loss.adversarial_loss.fake_label"] = Shaped(())
    keys["loss.perceptual_loss.vgg.relu1_1.0.weight"] = Shaped((64, 3, 3, 3))
    keys["loss.style_loss.vgg.relu5_2.30.bias"] = Shaped((512,))
    return keys


def official_fdm_checkpoint():
    """Like the released fdm_tuning.pth: codec + FDM (old `lip.` names) + temp + loss.*."""
    sd = paper_state(("temp", "content_codec."))
    sd.update(paper_state(("fdm.",), rename=lambda n: "lip." + n[4:]))
    sd.update(training_only_keys())
    return {"last_epoch": 10, "last_iter": 1000, "model": sd, "optimizer_and_scheduler": {}}


def official_generator_checkpoint():
    """Like generator.pth (Phase 1b): frozen codec copy + transformer + temp."""
    return {"model": paper_state(("temp", "content_codec.", "generator."))}


def put_codec_checkpoint():
    """A PUT codec in PUT layout (spec §8.4), top-level names, plus a loss key."""
    undo = [
        (".layers.0.", ".layers.1."), (".layers.2.", ".layers.3."), ("encoder.post_layers.0.", "encoder.post_layers.1."),
        (".conv.0.", ".conv.1."), (".conv.2.", ".conv.3."), ("decoder.post_layers.0.", "decoder.post_layers.1."),
    ]

    def to_put(name):
        name = name[len("content_codec."):]
        for fdm_part, put_part in undo:
            if "res_layers" in name or "post_layers" in name:
                name = name.replace(fdm_part, put_part)
        return name

    sd = paper_state(("content_codec.",), rename=to_put)
    sd["loss.discriminator.conv1.0.weight_orig"] = Shaped((64, 3, 4, 4))
    return {"state_dict": sd}


def names(items):
    return [n for n, _ in items]


def table_names(prefixes=None):
    return [n for n, _, _ in TABLE.entries if prefixes is None or n.startswith(prefixes)]


# ---------------------------------------------------------------------------------------------


@test
def table_is_the_paper_spec():
    numel = lambda s: eval("*".join(map(str, s)) or "1")  # noqa: E731
    total = sum(numel(s) for _, s, _ in TABLE.entries)
    learnable = sum(numel(s) for _, s, r in TABLE.entries if r == "Learnable")
    codebook = sum(numel(s) for _, s, r in TABLE.entries if r == "Codebook")
    assert TABLE.preset == "paper"
    assert learnable + codebook == 122_723_331, learnable + codebook  # spec §8.2 grand total
    assert total == 122_723_331 + 1 + 262_144 + 1_024, total  # + temp + EMA buffers
    assert TABLE.entries[0][:2] == ("temp", (1,))
    assert TABLE.shapes["fdm.mix.0.weight"] == (256, 257, 3, 3)
    assert TABLE.shapes["content_codec.decoder.up_layers.2.deconv.weight"] == (128, 64, 4, 4)
    assert TABLE.config["transformer"]["n_layer"] == 35


@test
def fdm_release_pair_converts_to_the_full_table():
    sources = [
        ("fdm", "fdm=fdm_tuning.pth", cp.state_dict_of(official_fdm_checkpoint(), "fdm")),
        ("generator", "generator=generator.pth", cp.state_dict_of(official_generator_checkpoint(), "gen")),
    ]
    items, notes, partial = cp.convert(sources, TABLE)
    assert not partial
    assert names(items) == table_names(), "output is the full table, in table order"
    text = "\n".join(notes)
    assert "renamed 36 `lip.*` keys" in text, text  # mix.0 (2) + 8 blocks x 2 convs x 2 + mix.10 (2)
    assert "dropped 20 training-only" in text, text  # 5 convs x 3 + features.0 + 2 labels + 2 VGG
    # 94 = the 93 codec keys (encoder 36, quant_conv 2, quantizer 3, post_quant_conv 2,
    # decoder 50) + temp, all taken from fdm_tuning.pth instead.
    assert "ignored 94 non-generator keys" in text, text


@test
def every_problem_is_listed():
    sd = cp.state_dict_of(official_fdm_checkpoint(), "fdm")
    del sd["content_codec.quantize.cluster_size"]
    sd["content_codec.quant_conv.weight"] = Shaped((256, 256))
    sd["fdm.extra.weight"] = Shaped((3,))
    sd["lip.mix.99.bias"] = Shaped((1,))
    try:
        cp.convert([("fdm", "fdm", sd)], TABLE)
    except cp.ConversionError as e:
        msg = str(e)
    else:
        raise AssertionError("incomplete conversion accepted")
    for needle in [
        "missing:     content_codec.quantize.cluster_size [1024]",
        "missing:     generator.to_logits.bias [512]",
        "unexpected:  fdm.extra.weight [3]",
        "unexpected:  fdm.mix.99.bias [1]",
        "wrong shape: content_codec.quant_conv.weight: expected [256, 256, 1, 1], found [256, 256]",
    ]:
        assert needle in msg, f"{needle!r} not in:\n{msg[:2000]}"
    # 567 transformer keys (emb_proj 2, pos_emb 1, 35 blocks x 16, layer_norm 2, to_logits 2) + 1.
    assert msg.splitlines()[0].startswith("568 missing, 2 unexpected, 1 with the wrong shape"), msg.splitlines()[0]


@test
def put_transformer_is_prefixed_and_its_codec_dropped():
    put = paper_state(("generator.",), rename=lambda n: n[len("generator."):])
    put.update(paper_state(("content_codec.",)))
    fdm_sd = cp.state_dict_of(official_fdm_checkpoint(), "fdm")
    items, notes, _ = cp.convert([("fdm", "fdm", fdm_sd), ("put-transformer", "put", put)], TABLE)
    assert names(items) == table_names()
    assert any("dropped 93 `content_codec.*` keys" in n for n in notes), notes
    mapped, _ = cp.map_put_transformer({"pos_emb": Shaped((1, 1024, 512)), "blocks.0.ln1.weight": Shaped((512,))})
    assert sorted(mapped) == ["generator.blocks.0.ln1.weight", "generator.pos_emb"]


@test
def put_codec_is_reindexed_with_a_warning():
    sd = cp.state_dict_of(put_codec_checkpoint(), "put")
    assert "encoder.res_layers.0.layers.1.weight" in sd and "decoder.res_layers.7.conv.3.bias" in sd
    out, notes = cp.map_put_codec(sd)
    assert sorted(out) == sorted(table_names(("content_codec.",)))
    assert cp.PUT_CODEC_WARNING in notes
    # Literal examples of spec §8.4.
    one, _ = cp.map_put_codec({
        "encoder.res_layers.3.layers.3.weight": Shaped((256, 128)),
        "content_codec.decoder.res_layers.5.conv.1.bias": Shaped((128,)),
        "decoder.post_layers.1.weight": Shaped((3, 64, 3, 3)),
        "decoder.up_layers.2.deconv.weight": Shaped((128, 64, 4, 4)),
        "decoder.encoder.layers.1.weight": Shaped((128, 64, 4, 4)),
        "quantize.embedding": Shaped((1024, 256)),
        "emb_proj.weight": Shaped((512, 256)),
    })
    assert sorted(one) == sorted([
        "content_codec.encoder.res_layers.3.layers.2.weight",
        "content_codec.decoder.res_layers.5.conv.0.bias",
        "content_codec.decoder.post_layers.0.weight",
        "content_codec.decoder.up_layers.2.deconv.weight",
        "content_codec.decoder.encoder.layers.1.weight",
        "content_codec.quantize.embedding",
    ]), sorted(one)
    # With FDM + transformer sources it completes the table; the metadata carries the warning.
    fdm_only = paper_state(("fdm.",))
    gen = paper_state(("generator.",))
    items, notes, partial = cp.convert([("put-codec", "codec", sd), ("fdm", "f", fdm_only), ("generator", "g", gen)], TABLE)
    assert names(items) == table_names() and not partial
    assert cp.metadata_for(TABLE, "x", notes, partial)["warning"] == cp.PUT_CODEC_WARNING
    # A codec already in FDM layout is refused (its keys would pass through unchanged).
    try:
        cp.map_put_codec(paper_state(("content_codec.",)))
    except cp.ConversionError as e:
        assert "already in FDM layout" in str(e)
    else:
        raise AssertionError("FDM-layout codec accepted as a PUT codec")


@test
def a_key_from_two_sources_is_an_error():
    fdm_sd = cp.state_dict_of(official_fdm_checkpoint(), "fdm")
    codec = cp.state_dict_of(put_codec_checkpoint(), "put")
    try:
        cp.convert([("fdm", "fdm=a.pth", fdm_sd), ("put-codec", "put-codec=b.pth", codec)], TABLE)
    except cp.ConversionError as e:
        assert "content_codec.quant_conv.weight (from fdm=a.pth and put-codec=b.pth)" in str(e), str(e)[:500]
    else:
        raise AssertionError("clash accepted")


@test
def temp_is_added_and_partial_is_explicit():
    sd = paper_state(("content_codec.", "fdm.", "generator."))
    items, notes, partial = cp.convert([("fdm", "f", sd)], TABLE)
    assert items[0][0] == "temp" and isinstance(items[0][1], cp.Constant) and not partial
    assert any("added `temp`" in n for n in notes)
    items, notes, partial = cp.convert([("fdm", "f", paper_state(("fdm.",)))], TABLE, allow_partial=True)
    assert partial and names(items) == ["temp"] + table_names(("fdm.",))
    assert cp.metadata_for(TABLE, "f", notes, partial)["partial"] == "true"


def mini_table():
    entries = [("temp", (1,), "Dummy"), ("fdm.mix.0.weight", (2, 3, 1, 1), "Learnable"), ("fdm.mix.0.bias", (2,), "Learnable")]
    return cp.Table("mini", {"preset": "mini"}, entries)


def mini_values():
    return {
        "lip.mix.0.weight": Values((2, 3, 1, 1), [0.5 * i - 1.0 for i in range(6)]),
        "lip.mix.0.bias": Values((2,), [3.25, -0.125]),
    }


def parse_safetensors(data):
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        assert info["dtype"] == "F32"
        tensors[name] = (tuple(info["shape"]), list(struct.unpack(f"<{(b - a) // 4}f", body[a:b])))
    return meta, tensors, n


@test
def writer_output_and_fixture():
    items, notes, partial = cp.convert([("fdm", "fdm=mini.pth", mini_values())], mini_table())
    meta = cp.metadata_for(mini_table(), "fdm=mini.pth", notes, partial)
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "mini.safetensors")
        cp.write_safetensors(out, items, meta)
        assert os.listdir(d) == ["mini.safetensors"], os.listdir(d)
        data = open(out, "rb").read()
    got_meta, tensors, n = parse_safetensors(data)
    assert n % 8 == 0
    assert got_meta["format"] == "fdm-weights" and got_meta["preset"] == "mini"
    assert json.loads(got_meta["config"]) == {"preset": "mini"}
    assert tensors == {
        "temp": ((1,), [0.0]),
        "fdm.mix.0.weight": ((2, 3, 1, 1), [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5]),
        "fdm.mix.0.bias": ((2,), [3.25, -0.125]),
    }
    if os.environ.get("FDM_BLESS") == "1":
        os.makedirs(os.path.dirname(FIXTURE), exist_ok=True)
        open(FIXTURE, "wb").write(data)
    assert open(FIXTURE, "rb").read() == data, "fixtures/mini.safetensors is stale: rerun with FDM_BLESS=1"


@test
def reference_reader_reads_the_writer_output():
    if not (have("numpy") and have("safetensors")):
        return skip("numpy or safetensors not installed: the written file is not read back by the reference reader")
    from safetensors import safe_open

    with safe_open(FIXTURE, framework="numpy") as f:
        assert f.metadata()["preset"] == "mini"
        assert sorted(f.keys()) == ["fdm.mix.0.bias", "fdm.mix.0.weight", "temp"]
        assert f.get_tensor("fdm.mix.0.weight").reshape(-1).tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5]
        assert f.get_tensor("fdm.mix.0.weight").shape == (2, 3, 1, 1)


# --- .pth files -------------------------------------------------------------------------------


def write_zip_checkpoint(path, tensors, extra):
    """Write `{'model': OrderedDict(tensors), **extra}` in torch.save's zip layout without torch.

    tensors: name -> (storage_key, storage_class_name, storage_values, offset, shape, stride).
    Layout (torch/serialization.py `_save`, protocol 2): archive/data.pkl with tensors reduced to
    torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks) and
    storages as persistent ids ("storage", torch.<Class>, key, "cpu", numel); archive/data/<key>
    raw little-endian bytes; archive/byteorder; archive/version."""
    import numpy as np

    fake_torch, fake_utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    fake_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    fake_torch._utils = fake_utils
    classes = {}
    for cls_name in ("FloatStorage", "BFloat16Storage", "LongStorage"):
        classes[cls_name] = type(cls_name, (), {"__module__": "torch"})
        setattr(fake_torch, cls_name, classes[cls_name])

    class Storage:
        def __init__(self, key, cls_name, values):
            self.key, self.cls, self.values = key, classes[cls_name], values

    class Tensor:
        def __init__(self, storage, offset, shape, stride):
            self.args = (storage, offset, tuple(shape), tuple(stride), False, collections.OrderedDict())

        def __reduce__(self):
            return (_rebuild_tensor_v2, self.args)

    storages, model = {}, collections.OrderedDict()
    for name, (key, cls_name, values, offset, shape, stride) in tensors.items():
        if key not in storages:
            storages[key] = Storage(key, cls_name, values)
        model[name] = Tensor(storages[key], offset, shape, stride)

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return ("storage", obj.cls, obj.key, "cpu", len(obj.values))
            return None

    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = fake_torch, fake_utils
    try:
        buf = io.BytesIO()
        Pickler(buf, protocol=2).dump({"model": model, **extra})
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/byteorder", "little")
        for key, s in storages.items():
            if s.cls.__name__ == "BFloat16Storage":
                raw = (np.asarray(s.values, dtype="<f4").view("<u4") >> 16).astype("<u2").tobytes()
            elif s.cls.__name__ == "LongStorage":
                raw = np.asarray(s.values, dtype="<i8").tobytes()
            else:
                raw = np.asarray(s.values, dtype="<f4").tobytes()
            z.writestr(f"archive/data/{key}", raw)
        z.writestr("archive/version", "3\n")


class Scheduler:
    """An optimizer/scheduler-like object of an unknown module inside the checkpoint."""

    def __reduce__(self):
        return (Scheduler, (), {"lr": 0.1, "fn": "cosine"})


Scheduler.__module__ = "image_synthesis.engine.lr_scheduler"


@test
def builtin_reader_reads_the_torch_zip_layout():
    if not have("numpy"):
        return skip("numpy not installed: the torch-free .pth reader (pth_zip.py) was not run")
    import pth_zip

    for mod in ("image_synthesis", "image_synthesis.engine", "image_synthesis.engine.lr_scheduler"):
        sys.modules.setdefault(mod, types.ModuleType(mod))
    sys.modules["image_synthesis.engine.lr_scheduler"].Scheduler = Scheduler
    w = [float(i) for i in range(6)]  # storage 0, viewed as [2,3] and as its transpose
    tensors = {
        "lip.mix.0.weight": ("0", "FloatStorage", w, 0, (2, 3, 1, 1), (3, 1, 1, 1)),
        "lip.mix.0.bias": ("1", "BFloat16Storage", [1.5, -2.0, 7.0], 1, (2,), (1,)),
        "transposed": ("0", "FloatStorage", w, 0, (3, 2), (1, 3)),
        "step": ("2", "LongStorage", [12], 0, (), ()),
    }
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ckpt.pth")
        write_zip_checkpoint(path, tensors, {"last_iter": 5, "optimizer_and_scheduler": {"s": Scheduler()}})
        ck = pth_zip.load(path)
        assert ck["last_iter"] == 5
        opaque = ck["optimizer_and_scheduler"]["s"]
        assert isinstance(opaque, pth_zip.Opaque) and opaque.state == {"lr": 0.1, "fn": "cosine"}
        m = ck["model"]
        assert m["lip.mix.0.weight"].numpy().reshape(-1).tolist() == w
        assert m["transposed"].numpy().tolist() == [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]
        assert m["lip.mix.0.bias"].numpy().tolist() == [-2.0, 7.0]  # offset 1 into the bf16 storage
        assert m["step"].numpy().tolist() == 12
        # End to end through the command line (the built-in reader; mini table).
        table_path = os.path.join(d, "mini.json")
        t = mini_table()
        json.dump({"preset": t.preset, "config": t.config, "tensors": [[n, list(s), r] for n, s, r in t.entries]}, open(table_path, "w"))
        tensors.pop("transposed"), tensors.pop("step")
        write_zip_checkpoint(path, tensors, {})
        out = os.path.join(d, "out.safetensors")
        assert cp.main([out, "--fdm", path, "--table", table_path, "--reader", "builtin"]) == 0
        meta, got, _ = parse_safetensors(open(out, "rb").read())
        assert got["fdm.mix.0.weight"] == ((2, 3, 1, 1), w) and got["fdm.mix.0.bias"] == ((2,), [-2.0, 7.0])
        assert meta["source"] == "fdm=ckpt.pth"
        # Not a zip: a clear error.
        bad = os.path.join(d, "legacy.pth")
        open(bad, "wb").write(b"\x80\x02legacy")
        try:
            cp.read_checkpoint(bad, "builtin")
        except cp.ConversionError as e:
            assert "not a zip-format torch checkpoint" in str(e)
        else:
            raise AssertionError("legacy file accepted")


@test
def torch_checkpoint_converts_with_both_readers():
    if not have("torch"):
        return skip("torch not installed: a real torch.save file was not converted (the mapping, the writer and the built-in reader were tested)")
    import torch

    t = mini_table()
    with tempfile.TemporaryDirectory() as d:
        sd = collections.OrderedDict(
            [("lip.mix.0.weight", torch.arange(6, dtype=torch.float32).reshape(2, 3, 1, 1) * 0.5 - 1.0),
             ("lip.mix.0.bias", torch.tensor([3.25, -0.125]))]
        )
        path = os.path.join(d, "real.pth")
        torch.save({"model": sd, "last_epoch": 1}, path)
        table_path = os.path.join(d, "mini.json")
        json.dump({"preset": t.preset, "config": t.config, "tensors": [[n, list(s), r] for n, s, r in t.entries]}, open(table_path, "w"))
        outs = []
        for reader in (["torch", "builtin"] if have("numpy") else ["torch"]):
            out = os.path.join(d, f"{reader}.safetensors")
            assert cp.main([out, "--fdm", path, "--table", table_path, "--reader", reader]) == 0
            outs.append(parse_safetensors(open(out, "rb").read())[1])
        assert outs[0]["fdm.mix.0.weight"] == ((2, 3, 1, 1), [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5])
        assert all(o == outs[0] for o in outs)


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
    print(f"test_convert: {passed} passed, {failed} failed, {len(SKIPS)} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
