#!/usr/bin/env python3
"""The token-sampling loop of spec §5.2 (paper mode) reimplemented in eager PyTorch, timed, for the
issue target "the whole inpainting loop at least 3x faster than a PyTorch reimplementation of the
same loop, eager, same GPU, same run" (compare with `cargo bench --bench sampling -- cuda_`).

Per pass, for every image that still has unknown positions (images run as one batch):
  logits = to_logits(LN_f(blocks(emb_proj(feat) + pos_emb)))      full 1024-token forward, no cache
  position = argmax over unknown positions of the max raw logit over the vocabulary
  token    = categorical draw from softmax(top-50 logits * 1)       (temperature 1)
  feat[position] = codebook[token]; known[position] = True
The transformer is spec §3 at the preset's shapes (paper: 35 layers x 512, 8 heads of 64, MLP x4,
GELU2, e_dim 256, vocab 512; tiny: 4 x 64, 2 heads, e_dim 64, vocab 256), random weights
(Linear N(0, 0.02)), attention by F.scaled_dot_product_attention (flash / memory-efficient kernels on
CUDA). The initial feature table and the codebook are random: the cost does not depend on them.
The masked positions default to those of the Rust benches' fixed mask (`benches/common/mod.rs`,
`mask_30pct`: 302 of 1024 patches); `--masked N` takes N positions of a seeded permutation instead.
The host knows every pass's active images from the mask, so the loop never waits on the device
until the fill ends (like the engine's device fill).

Timed (after a warm-up pass and a warm-up fill): one full fill (min / median over --runs) and one
pass (min / median over --pass-runs), CUDA-synchronised around each. `--bf16` converts the model
and the feature table to bf16 (`model.to(torch.bfloat16)`, logits compared in f32); `--tf32`
allows TF32 matmuls in f32 mode (off by default, as in PyTorch).

Usage: python3 benches/reference/torch_sampler.py [--device cuda|cpu] [--preset tiny|paper]
       [--samples N] [--masked M] [--bf16] [--tf32] [--runs R] [--pass-runs P] [--threads T]
       [--json FILE]
(`--device cpu --preset tiny` checks the script; the reference numbers are the CUDA ones.)
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {
    "paper": dict(n_layer=35, n_embd=512, n_head=8, mlp_ratio=4, vocab=512, seq_len=1024, embed_dim=256),
    "tiny": dict(n_layer=4, n_embd=64, n_head=2, mlp_ratio=4, vocab=256, seq_len=1024, embed_dim=64),
}
TOP_K = 50


class Block(nn.Module):
    def __init__(self, d, heads, ratio):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d, eps=1e-5), nn.LayerNorm(d, eps=1e-5)
        self.query, self.key, self.value, self.proj = (nn.Linear(d, d) for _ in range(4))
        self.fc, self.out = nn.Linear(d, ratio * d), nn.Linear(ratio * d, d)

    def forward(self, x):
        b, l, d = x.shape
        h = self.ln1(x)
        split = lambda t: t.view(b, l, self.heads, d // self.heads).transpose(1, 2)
        a = F.scaled_dot_product_attention(split(self.query(h)), split(self.key(h)), split(self.value(h)))
        x = x + self.proj(a.transpose(1, 2).reshape(b, l, d))
        m = self.fc(self.ln2(x))
        return x + self.out(m * torch.sigmoid(1.702 * m))  # GELU2


class Transformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["n_embd"]
        self.emb_proj = nn.Linear(c["embed_dim"], d)
        self.pos_emb = nn.Parameter(torch.zeros(1, c["seq_len"], d))
        self.blocks = nn.ModuleList(Block(d, c["n_head"], c["mlp_ratio"]) for _ in range(c["n_layer"]))
        self.ln_f = nn.LayerNorm(d, eps=1e-5)
        self.to_logits = nn.Linear(d, c["vocab"])
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, feat):
        x = self.emb_proj(feat) + self.pos_emb
        for blk in self.blocks:
            x = blk(x)
        return self.to_logits(self.ln_f(x))


def mask_30pct_positions(grid=32, patch=8):
    """Row-major patch indices touched by the two hole boxes of `benches/common/mod.rs`."""
    boxes = [(36, 44, 160, 140), (148, 124, 220, 196)]  # x0, y0, x1, y1 (pixels, end exclusive)
    hit = set()
    for x0, y0, x1, y1 in boxes:
        for py in range(y0 // patch, (y1 + patch - 1) // patch):
            for px in range(x0 // patch, (x1 + patch - 1) // patch):
                hit.add(py * grid + px)
    return sorted(hit)


class Sampler:
    """State of a batch of `n` images sharing one mask, and the §5.2 loop over it."""

    def __init__(self, model, c, n, masked, device, dtype, gen):
        self.model, self.gen, self.dtype = model, gen, dtype
        l, e, v = c["seq_len"], c["embed_dim"], c["vocab"]
        self.initial = torch.rand(n, l, e, device=device, generator=gen).mul_(2).sub_(1).to(dtype)
        self.codebook = torch.randn(v, e, device=device, generator=gen).to(dtype)
        self.known0 = torch.ones(n, l, dtype=torch.bool, device=device)
        self.known0[:, masked] = False
        self.passes_per_image = [len(masked)] * n  # known on the host from the mask
        self.reset()

    def reset(self):
        self.feat, self.known = self.initial.clone(), self.known0.clone()

    def one_pass(self, active):
        """One §5.2 iteration on the images `active` (a list of indices, all of them when None)."""
        idx = None if active is None else torch.tensor(active, device=self.feat.device)
        feat = self.feat if idx is None else self.feat[idx]
        known = self.known if idx is None else self.known[idx]
        logits = self.model(feat).float()  # A x L x V
        conf = logits.amax(dim=-1).masked_fill(known, float("-inf"))
        pos = conf.argmax(dim=-1)  # A
        rows = torch.arange(logits.shape[0], device=logits.device)
        vals, toks = logits[rows, pos].topk(TOP_K, dim=-1)  # temperature 1
        pick = torch.multinomial(torch.softmax(vals, dim=-1), 1, generator=self.gen).squeeze(1)
        token = toks[rows, pick]
        img = rows if idx is None else idx
        self.feat[img, pos] = self.codebook[token]
        self.known[img, pos] = True

    def fill(self):
        """All passes: `max(passes_per_image)` iterations, each on the images still unfinished."""
        n = len(self.passes_per_image)
        for p in range(max(self.passes_per_image)):
            active = [i for i in range(n) if self.passes_per_image[i] > p]
            self.one_pass(None if len(active) == n else active)
        return max(self.passes_per_image)


def timed(device, f):
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = f()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def min_median(xs):
    xs = sorted(xs)
    return xs[0], xs[len(xs) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--preset", default="paper", choices=sorted(PRESETS))
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument("--masked", type=int, help="masked patches (default: the benches' 30 %% mask, 302)")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--tf32", action="store_true")
    ap.add_argument("--runs", type=int, default=3, help="timed full fills")
    ap.add_argument("--pass-runs", type=int, default=10, help="timed single passes")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (CPU)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    c = PRESETS[a.preset]
    dev, dtype = a.device, (torch.bfloat16 if a.bf16 else torch.float32)
    torch.manual_seed(a.seed)
    model = Transformer(c).to(device=dev, dtype=dtype).eval()
    gen = torch.Generator(device=dev).manual_seed(a.seed)
    if a.masked is None:
        masked = mask_30pct_positions()
    else:
        perm = torch.randperm(c["seq_len"], generator=torch.Generator().manual_seed(a.seed))
        masked = sorted(perm[: a.masked].tolist())
    s = Sampler(model, c, a.samples, masked, dev, dtype, gen)
    tag = f"torch {dev} {a.preset} n{a.samples} {'bf16' if a.bf16 else ('tf32' if a.tf32 else 'f32')}"
    with torch.inference_mode():
        s.one_pass(None)  # warm-up (kernel selection, allocator)
        s.reset()
        timed(dev, s.fill)
        fills = []
        for _ in range(a.runs):
            s.reset()
            t, passes = timed(dev, s.fill)
            fills.append(t)
        assert bool(s.known.all()), "every position filled"
        passes_t = []
        for _ in range(a.pass_runs):
            s.reset()
            passes_t.append(timed(dev, lambda: s.one_pass(None))[0])
    fmin, fmed = min_median(fills)
    pmin, pmed = min_median(passes_t)
    name = torch.cuda.get_device_name() if dev == "cuda" else "cpu"
    print(f"{tag} ({name}): fill of {len(masked)} masked patches = {passes} passes: "
          f"min {fmin:.3f} s median {fmed:.3f} s ({fmin / passes * 1e3:.2f} ms/pass at min) | "
          f"one pass: min {pmin * 1e3:.2f} ms median {pmed * 1e3:.2f} ms")
    if a.json:
        rec = dict(tag=tag, device=name, preset=a.preset, samples=a.samples, masked=len(masked), passes=passes,
                   fill_min_s=fmin, fill_median_s=fmed, pass_min_s=pmin, pass_median_s=pmed,
                   dtype="bf16" if a.bf16 else "f32", tf32=a.tf32)
        with open(a.json, "a") as f:
            f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
