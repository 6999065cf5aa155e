#!/usr/bin/env python3
"""How well the transformer of a weights file predicts a hole's tokens on its first pass.

For each photo of PHOTOS: `fdm inspect` with a hole-free mask gives the ideal tokens of the whole
photo (its own codec's nearest codes); `fdm inspect` with MASK gives the logits of the first
sampling pass. Over the masked patches it reports the cross-entropy of the ideal token, the top-1
agreement and the ideal token's median rank (1 = the most likely), averaged over the photos.

Usage: first_pass_eval.py FDM WEIGHTS PHOTOS MASK WORKDIR   (numpy and PIL needed)
"""
import os
import subprocess
import sys

import numpy as np
from PIL import Image


def inspect(fdm, weights, image, mask, out):
    if not os.path.exists(os.path.join(out, "inspect.json")):
        subprocess.run([fdm, "inspect", "--weights", weights, "--image", image, "--mask", mask, "--out", out, "--force"],
                       check=True, capture_output=True)


def main():
    fdm, weights, photos, mask, work = sys.argv[1:6]
    os.makedirs(work, exist_ok=True)
    no_hole = os.path.join(work, "no_hole.png")
    Image.new("L", (256, 256), 0).save(no_hole)
    ces, top1, ranks = [], [], []
    for name in sorted(os.listdir(photos)):
        base = os.path.splitext(name)[0]
        ideal_dir, hole_dir = os.path.join(work, "ideal-" + base), os.path.join(work, "hole-" + base)
        inspect(fdm, weights, os.path.join(photos, name), no_hole, ideal_dir)
        inspect(fdm, weights, os.path.join(photos, name), mask, hole_dir)
        ideal = np.load(os.path.join(ideal_dir, "tokens.npy")).reshape(-1)
        logits = np.load(os.path.join(hole_dir, "logits.npy"))[0].astype(np.float64)
        masked = np.load(os.path.join(hole_dir, "tokens.npy")).reshape(-1) >= logits.shape[1]  # masked-half ids
        lg, t = logits[masked], ideal[masked]
        top = lg.max(1, keepdims=True)
        lse = np.log(np.exp(lg - top).sum(1)) + top[:, 0]
        target = lg[np.arange(len(t)), t]
        ces.append(np.mean(lse - target))
        top1.append(np.mean(lg.argmax(1) == t))
        ranks.append(np.median((lg > target[:, None]).sum(1) + 1))
    print(f"{weights}: {len(ces)} photos, {int(masked.sum())} masked patches each: cross-entropy {np.mean(ces):.3f}, "
          f"top-1 {100 * np.mean(top1):.1f} %, median rank of the ideal token {np.median(ranks):.1f}")


if __name__ == "__main__":
    main()
