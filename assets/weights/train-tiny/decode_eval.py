#!/usr/bin/env python3
"""How well the decoder renders a hole from the ideal tokens (docs/TRAINING.md).

For each photo of PHOTOS: `fdm inspect` with a hole-free mask gives the photo's ideal tokens;
`fdm inspect` with MASK and `--tokens` set to them decodes the photo with those tokens at the hole
(quantised features + FDM, the decoder with the visible pixels as reference). Reported, inside
the hole and on the 0-255 scale: the mean absolute error of the decoded pixels, and its chroma
part (each pixel's RGB minus its own mean, so a decoder that gets brightness right but colour
wrong scores badly). The transformer plays no part: this isolates the codec + FDM.

Usage: decode_eval.py FDM WEIGHTS PHOTOS MASK WORKDIR   (numpy and PIL needed)
"""
import os
import subprocess
import sys

import numpy as np
from PIL import Image


def inspect(fdm, args, out):
    subprocess.run([fdm, "inspect", *args, "--out", out, "--force"], check=True, capture_output=True)


def main():
    fdm, weights, photos, mask, work = sys.argv[1:6]
    os.makedirs(work, exist_ok=True)
    no_hole = os.path.join(work, "no_hole.png")
    Image.new("L", (256, 256), 0).save(no_hole)
    hole = np.array(Image.open(mask).convert("L")) >= 128
    l1, chroma = [], []
    for name in sorted(os.listdir(photos)):
        base, image = os.path.splitext(name)[0], os.path.join(photos, name)
        ideal, decoded = os.path.join(work, base + "-ideal"), os.path.join(work, base + "-hole")
        inspect(fdm, ["--weights", weights, "--image", image, "--mask", no_hole], ideal)
        tokens = os.path.join(ideal, "tokens.npy")
        inspect(fdm, ["--weights", weights, "--image", image, "--mask", mask, "--tokens", tokens], decoded)
        photo = np.asarray(Image.open(image).convert("RGB").resize((256, 256)), dtype=np.float64)
        out = np.load(os.path.join(decoded, "decoded.npy"))[0].transpose(1, 2, 0).clip(0, 255)
        l1.append(np.abs(out - photo)[hole].mean())
        centre = lambda x: x - x.mean(axis=-1, keepdims=True)
        chroma.append(np.abs(centre(out) - centre(photo))[hole].mean())
    print(f"{len(l1)} photos, {int(hole.sum())} hole pixels each: hole L1 {np.mean(l1):.2f}, "
          f"hole chroma L1 {np.mean(chroma):.2f} (0-255)")


if __name__ == "__main__":
    main()
