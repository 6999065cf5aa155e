#!/usr/bin/env python3
"""One UQ-Transformer pass (spec §3) built directly as an ONNX graph and timed with onnxruntime.

The graph is exactly what `Transformer::forward` (src/model/transformer.rs) computes, from the
B x 1024 x e_dim token features to the B x 1024 x vocab logits:
  x = feat @ emb_proj.W^T + b + pos_emb                          (e_dim -> n_embd)
  n_layer pre-LN blocks:  x += proj(Attn(LN1 x));  x += mlp.2(GELU2(mlp.0(LN2 x)))
     LayerNorm eps 1e-5 (ONNX LayerNormalization, opset 17); separate q/k/v Linears with bias;
     heads of n_embd/n_head channels; softmax(q k^T / sqrt(head_dim)) v; no mask;
     GELU2(x) = x * sigmoid(1.702 x)
  logits = to_logits(LN_f x)                                      (n_embd -> vocab)
Presets: paper = 35 layers x 512, 8 heads, MLP x4, e_dim 256, vocab 512 (150.7 GMACs per pass at
batch 1); tiny = 4 layers x 64, 2 heads, MLP x4, e_dim 64, vocab 256 (0.76 GMACs).

Weights: seeded numpy (Linear N(0, 0.02), biases / LayerNorms / pos_emb with small noise), or the
transformer of a model file written by our engine (`--weights X.safetensors`, tensor names of
spec §8.2, `generator.*`). With `--check DIR` (from `cargo run --release --example
transformer_pass_timing -- --preset P --dump DIR`) the script runs DIR/input.npy through the graph
built from DIR/weights.safetensors and compares with our DIR/logits.npy.

Timing: CPUExecutionProvider, intra_op_num_threads (default 2), inter_op 1, sequential execution,
graph optimisations ALL; 2 warm-up runs, then --runs timed runs; prints min and median, the MACs
of one pass and GFLOP/s (2 FLOPs per MAC). `--attention mha` uses onnxruntime's fused
com.microsoft.MultiHeadAttention kernel instead of the plain MatMul/Softmax/MatMul subgraph.

Usage: python3 benches/reference/onnx_transformer.py [--preset tiny|paper] [--runs N]
       [--threads T] [--batch B] [--attention plain|mha] [--weights F] [--check DIR]
Needs: pip install onnxruntime onnx numpy (a venv: python3 -m venv ort-venv && ort-venv/bin/pip install onnxruntime onnx numpy).
"""
import argparse
import json
import struct
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PRESETS = {
    "paper": dict(n_layer=35, n_embd=512, n_head=8, mlp_ratio=4, vocab=512, seq_len=1024, embed_dim=256),
    "tiny": dict(n_layer=4, n_embd=64, n_head=2, mlp_ratio=4, vocab=256, seq_len=1024, embed_dim=64),
}


def pass_macs(c, batch):
    """MACs of one pass, as src/model/cost.rs counts them (linears + the two attention products)."""
    l, d, h = c["seq_len"], c["n_embd"], c["mlp_ratio"] * c["n_embd"]
    block = 4 * l * d * d + 2 * l * l * d + 2 * l * d * h
    return batch * (l * c["embed_dim"] * d + c["n_layer"] * block + l * d * c["vocab"])


def random_weights(c, seed):
    """Transformer parameters under the engine's names (Linear weights [out, in])."""
    rng = np.random.default_rng(seed)
    w = {}

    def linear(name, i, o):
        w[f"{name}.weight"] = rng.normal(0.0, 0.02, (o, i)).astype(np.float32)
        w[f"{name}.bias"] = rng.uniform(-0.05, 0.05, o).astype(np.float32)

    def norm(name, d):
        w[f"{name}.weight"] = (1.0 + rng.uniform(-0.05, 0.05, d)).astype(np.float32)
        w[f"{name}.bias"] = rng.uniform(-0.05, 0.05, d).astype(np.float32)

    d = c["n_embd"]
    linear("generator.emb_proj", c["embed_dim"], d)
    w["generator.pos_emb"] = rng.uniform(-0.05, 0.05, (1, c["seq_len"], d)).astype(np.float32)
    for i in range(c["n_layer"]):
        b = f"generator.blocks.{i}"
        norm(f"{b}.ln1", d)
        for n in ("query", "key", "value", "proj"):
            linear(f"{b}.attn.{n}", d, d)
        norm(f"{b}.ln2", d)
        linear(f"{b}.mlp.0", d, c["mlp_ratio"] * d)
        linear(f"{b}.mlp.2", c["mlp_ratio"] * d, d)
    norm("generator.layer_norm", d)
    linear("generator.to_logits", d, c["vocab"])
    return w


def load_safetensors(path, prefix="generator."):
    """The f32 tensors whose names start with `prefix` (the format: u64 header length, JSON
    header of name -> dtype, shape, byte offsets into the data that follows)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__" or not name.startswith(prefix):
            continue
        if meta["dtype"] != "F32":
            sys.exit(f"{name}: dtype {meta['dtype']}, this script reads F32 only")
        lo, hi = meta["data_offsets"]
        out[name] = np.frombuffer(data[lo:hi], dtype="<f4").reshape(meta["shape"]).copy()
    return out


class Graph:
    """A small builder: nodes, initialisers, fresh value names."""

    def __init__(self):
        self.nodes, self.inits, self.count = [], [], 0

    def const(self, name, array):
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, kind, inputs, domain=None, **attrs):
        self.count += 1
        out = f"{kind.lower()}_{self.count}"
        self.nodes.append(helper.make_node(kind, inputs, [out], domain=domain, **attrs))
        return out

    def linear(self, x, w, name):
        wt = self.const(f"{name}.weight_t", w[f"{name}.weight"].T)  # [in, out]
        return self.op("Add", [self.op("MatMul", [x, wt]), self.const(f"{name}.bias", w[f"{name}.bias"])])

    def norm(self, x, w, name):
        s, b = self.const(f"{name}.weight", w[f"{name}.weight"]), self.const(f"{name}.bias", w[f"{name}.bias"])
        return self.op("LayerNormalization", [x, s, b], axis=-1, epsilon=1e-5)


def attention(g, q, k, v, c, fused):
    if fused:
        return g.op("MultiHeadAttention", [q, k, v], domain="com.microsoft", num_heads=c["n_head"])
    h, dh = c["n_head"], c["n_embd"] // c["n_head"]
    split = g.const(f"split_shape_{g.count}", np.array([0, 0, h, dh], dtype=np.int64))
    heads = lambda t, perm: g.op("Transpose", [g.op("Reshape", [t, split])], perm=perm)
    qh, kt, vh = heads(q, [0, 2, 1, 3]), heads(k, [0, 2, 3, 1]), heads(v, [0, 2, 1, 3])
    scale = g.const(f"scale_{g.count}", np.array(1.0 / np.sqrt(dh), dtype=np.float32))
    p = g.op("Softmax", [g.op("Mul", [g.op("MatMul", [qh, kt]), scale])], axis=-1)
    o = g.op("Transpose", [g.op("MatMul", [p, vh])], perm=[0, 2, 1, 3])
    merge = g.const(f"merge_shape_{g.count}", np.array([0, 0, c["n_embd"]], dtype=np.int64))
    return g.op("Reshape", [o, merge])


def build(c, w, fused_attention):
    g = Graph()
    k1702 = g.const("gelu2_k", np.array(1.702, dtype=np.float32))
    x = g.op("Add", [g.linear("feat", w, "generator.emb_proj"), g.const("generator.pos_emb", w["generator.pos_emb"])])
    for i in range(c["n_layer"]):
        b = f"generator.blocks.{i}"
        h = g.norm(x, w, f"{b}.ln1")
        q, k, v = (g.linear(h, w, f"{b}.attn.{n}") for n in ("query", "key", "value"))
        x = g.op("Add", [x, g.linear(attention(g, q, k, v, c, fused_attention), w, f"{b}.attn.proj")])
        m = g.linear(g.norm(x, w, f"{b}.ln2"), w, f"{b}.mlp.0")
        m = g.op("Mul", [m, g.op("Sigmoid", [g.op("Mul", [m, k1702])])])
        x = g.op("Add", [x, g.linear(m, w, f"{b}.mlp.2")])
    logits = g.linear(g.norm(x, w, "generator.layer_norm"), w, "generator.to_logits")
    g.nodes.append(helper.make_node("Identity", [logits], ["logits"]))
    inp = helper.make_tensor_value_info("feat", TensorProto.FLOAT, ["B", c["seq_len"], c["embed_dim"]])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", c["seq_len"], c["vocab"]])
    graph = helper.make_graph(g.nodes, "uq_transformer", [inp], [out], g.inits)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model


def session(model, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--attention", choices=["plain", "mha"], default="plain")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", help="safetensors file written by the engine (its generator.* tensors)")
    ap.add_argument("--check", metavar="DIR", help="compare with DIR/logits.npy on DIR/input.npy (implies --weights DIR/weights.safetensors)")
    ap.add_argument("--save", metavar="FILE.onnx", help="also write the graph (external data beside it)")
    a = ap.parse_args()
    c = PRESETS[a.preset]
    weights_path = a.weights or (f"{a.check}/weights.safetensors" if a.check else None)
    w = load_safetensors(weights_path) if weights_path else random_weights(c, a.seed)
    model = build(c, w, a.attention == "mha")
    if a.save:
        onnx.save(model, a.save, save_as_external_data=True, location=a.save.split("/")[-1] + ".data")
    sess = session(model, a.threads)

    if a.check:
        x = np.load(f"{a.check}/input.npy")
        want = np.load(f"{a.check}/logits.npy")
        got = sess.run(["logits"], {"feat": x})[0]
        err = np.abs(got - want)
        rel = err.max() / max(np.abs(want).max(), 1e-30)
        print(f"check {a.preset} ({a.attention}): logits {got.shape}, max |ort - ours| {err.max():.3e} "
              f"(max |ours| {np.abs(want).max():.3e}, relative {rel:.3e}), mean {err.mean():.3e}")
        if not np.all(np.isfinite(got)) or err.max() > 1e-3 * max(1.0, np.abs(want).max()):
            sys.exit("check FAILED: onnxruntime and the engine disagree")
        batch = x.shape[0]
    else:
        batch = a.batch
        x = np.random.default_rng(a.seed + 1).uniform(-1, 1, (batch, c["seq_len"], c["embed_dim"])).astype(np.float32)

    for _ in range(2):
        sess.run(["logits"], {"feat": x})
    secs = []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        sess.run(["logits"], {"feat": x})
        secs.append(time.perf_counter() - t0)
    secs.sort()
    lo, med = secs[0], secs[len(secs) // 2]  # the upper median, as the Rust example takes it
    macs = pass_macs(c, batch)
    print(f"ort-{a.attention} {a.preset} batch {batch} threads {a.threads} runs {a.runs}: "
          f"min {lo * 1e3:.2f} ms median {med * 1e3:.2f} ms | {macs / 1e9:.2f} GMACs/pass | "
          f"{2 * macs / lo / 1e9:.1f} GFLOP/s at min, {2 * macs / med / 1e9:.1f} at median")


if __name__ == "__main__":
    main()
