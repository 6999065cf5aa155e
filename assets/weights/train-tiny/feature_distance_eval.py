#!/usr/bin/env python3
"""Table-3-style feature distances with the ideal tokens at a hole (docs/TRAINING.md).

For each photo of PHOTOS: `fdm inspect` with a hole-free mask gives the ideal features `feat.npy`
and the codebook rows of the ideal tokens `feat_q.npy`; `fdm inspect` with MASK and `--tokens`
set to those ideal tokens gives FDM's output `fdm.npy` at the hole. Reported: the mean L2 per
masked patch of `feat_q - feat` (quantised) and `feat_q + fdm - feat` (quantised + FDM).

Usage: feature_distance_eval.py FDM WEIGHTS PHOTOS MASK WORKDIR   (numpy and PIL needed)
"""
import os
import subprocess
import sys

import numpy as np
from PIL import Image


def inspect(fdm, args, out):
    subprocess.run([fdm, "inspect", *args, "--out", out, "--force"], check=True, capture_output=True)


def ideal_and_hole(fdm, weights, photos, mask, work):
    """For each photo: (photo path, folder of its hole-free inspect, folder of its inspect with
    MASK and the ideal tokens at the hole)."""
    os.makedirs(work, exist_ok=True)
    no_hole = os.path.join(work, "no_hole.png")
    Image.new("L", (256, 256), 0).save(no_hole)
    for name in sorted(os.listdir(photos)):
        base, image = os.path.splitext(name)[0], os.path.join(photos, name)
        ideal, hole = os.path.join(work, "ideal-" + base), os.path.join(work, "hole-" + base)
        inspect(fdm, ["--weights", weights, "--image", image, "--mask", no_hole], ideal)
        tokens = os.path.join(ideal, "tokens.npy")
        inspect(fdm, ["--weights", weights, "--image", image, "--mask", mask, "--tokens", tokens], hole)
        yield image, ideal, hole


def main():
    fdm, weights, photos, mask, work = sys.argv[1:6]
    quant, with_fdm, patches = [], [], 0
    for _, ideal, hole in ideal_and_hole(fdm, weights, photos, mask, work):
        feat = np.load(os.path.join(ideal, "feat.npy"))[0]       # e_dim x 32 x 32
        feat_q = np.load(os.path.join(ideal, "feat_q.npy"))[0]
        fdm_out = np.load(os.path.join(hole, "fdm.npy"))[0]
        hole_tokens = np.load(os.path.join(hole, "tokens.npy")).reshape(32, 32)
        masked = hole_tokens >= int(np.load(os.path.join(hole, "logits.npy")).shape[-1])
        d_q = np.linalg.norm((feat_q - feat)[:, masked], axis=0)
        d_f = np.linalg.norm((feat_q + fdm_out - feat)[:, masked], axis=0)
        quant.extend(d_q)
        with_fdm.extend(d_f)
        patches += int(masked.sum())
    q, f = float(np.mean(quant)), float(np.mean(with_fdm))
    print(f"{weights} on {photos} with {mask}: {patches} masked patches; ideal vs quantised {q:.4f}, "
          f"vs quantised + FDM {f:.4f}; FDM lowers it by {100 * (q - f) / q:.1f} %")


if __name__ == "__main__":
    main()
