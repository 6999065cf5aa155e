# Runs the `lpips` package (0.1.4) itself on the LPIPS example images with the backbone weights of
# our converted files loaded into torchvision's networks (the package would otherwise download
# them), for both backbones, spatial map mean and plain mean. Needs torch, torchvision, scipy,
# Pillow and the `lpips` wheel (pip install --no-deps lpips==0.1.4). Run from the repository root:
#   python weights-tools/lpips_package_check.py
# Its output is the reference of tests/metrics_lpips.rs's `..._matches_lpips_package_cpu` tests.
import sys, json, struct, numpy as np, torch, lpips
from PIL import Image
def read_st(path):
    b = open(path, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n]); out = {}
    dt = {'F32': np.float32, 'F16': np.float16}
    for k, v in h.items():
        if k == '__metadata__': continue
        s, e = v['data_offsets']
        out[k] = torch.from_numpy(np.frombuffer(b[8 + n + s:8 + n + e], dtype=dt[v['dtype']]).astype(np.float32).reshape(v['shape']).copy())
    return out
def img(name):
    a = np.asarray(Image.open(f'tests/fixtures/lpips/{name}.png').convert('RGB')).astype(np.float64)
    return torch.from_numpy(a / 127.5 - 1.0).permute(2, 0, 1)[None].float()
im = {n: img(n) for n in ['ex_ref', 'ex_p0', 'ex_p1']}
crop = lambda t: t[:, :, 5:45, 3:59]
for net, f, tv in [('alex', 'alexnet_lpips', 'alexnet'), ('vgg', 'vgg16_lpips', 'vgg16')]:
    w = read_st(f'assets/weights/{f}.safetensors')
    import torchvision
    feats = getattr(torchvision.models, tv)(weights=None).features
    feats.load_state_dict({k[len('features.'):]: v for k, v in w.items() if k.startswith('features.')})
    for sp in [True, False]:
        m = lpips.LPIPS(net=net, spatial=sp, pnet_rand=True, verbose=False)
        # the package's backbone slices share modules with torchvision's features: copy ours in
        sl = [m.net.slice1, m.net.slice2, m.net.slice3, m.net.slice4, m.net.slice5]
        for s in sl:
            for name, mod in s.named_children():
                mod.load_state_dict(feats[int(name)].state_dict())
        with torch.no_grad():
            r = [m(im['ex_ref'], im[p]) for p in ['ex_p0', 'ex_p1']] + [m(crop(im['ex_p0']), crop(im['ex_p1']))]
        r = [x.mean().item() for x in r]
        print(net, 'spatial' if sp else 'mean', ' '.join('%.10f' % x for x in r))
