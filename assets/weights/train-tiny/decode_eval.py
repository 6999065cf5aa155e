#!/usr/bin/env python3
"""How well the decoder renders a hole from the ideal tokens (docs/TRAINING.md).

For each photo of PHOTOS: `fdm inspect` with a hole-free mask gives the photo's ideal tokens;
`fdm inspect` with MASK and `--tokens` set to them decodes the photo with those tokens at the hole
(quantised features + FDM, the decoder with the visible pixels as reference). Reported, inside
the hole and on the 0-255 scale: the mean absolute error of the decoded pixels, and its chroma
part (each pixel's RGB minus its own mean, so a decoder that gets brightness right but colour
wrong scores badly). The transformer plays no part: this isolates the codec + FDM.

Usage: decode_eval.py FDM WEIGHTS PHOTOS MASK WORKDIR   (numpy and PIL needed; next to feature_distance_eval.py)
"""
import os
import sys

import numpy as np
from PIL import Image

from feature_distance_eval import ideal_and_hole


def main():
    fdm, weights, photos, mask, work = sys.argv[1:6]
    hole = np.array(Image.open(mask).convert("L")) >= 128
    l1, chroma = [], []
    for image, _, decoded in ideal_and_hole(fdm, weights, photos, mask, work):
        photo = np.asarray(Image.open(image).convert("RGB").resize((256, 256)), dtype=np.float64)
        out = np.load(os.path.join(decoded, "decoded.npy"))[0].transpose(1, 2, 0).clip(0, 255)
        l1.append(np.abs(out - photo)[hole].mean())
        centre = lambda x: x - x.mean(axis=-1, keepdims=True)
        chroma.append(np.abs(centre(out) - centre(photo))[hole].mean())
    print(f"{len(l1)} photos, {int(hole.sum())} hole pixels each: hole L1 {np.mean(l1):.2f}, "
          f"hole chroma L1 {np.mean(chroma):.2f} (0-255)")


if __name__ == "__main__":
    main()
