//! The model's parts, one forward each, at batch 1 on the fixed photo (`assets/photos/dev_005.jpg`,
//! 256 x 256) with the 30 % mask of `common::mask_30pct`, on both presets with freshly initialised
//! weights (`InpaintingModel::new(cfg, 7)`: the cost does not depend on the values):
//! * `{cpu,cuda}_transformer_pass_{tiny,paper}`: `Transformer::forward` on 1 x 1024 x e_dim
//!   features (emb_proj, position embedding, the blocks, final LayerNorm, to_logits): 0.76 GMACs
//!   (tiny) and 150.7 GMACs (paper) per pass; `cuda_transformer_pass_paper_bf16` with the
//!   transformer's Linear weights in bf16 (`Precision::Bf16`, tensor cores);
//! * `{cpu,cuda}_fdm_{tiny,paper}`: `Fdm::apply` on the image's features and masked-patch map
//!   (0.12 / 3.9 GMACs);
//! * `{cpu,cuda}_codec_encode_{tiny,paper}`: `Codec::get_features` of the masked image (encoder,
//!   quant_conv, nearest code of every patch in its half of the codebook): what an inpainting
//!   does before sampling;
//! * `{cpu,cuda}_codec_decode_{tiny,paper}`: `Codec::decode` of those features with the masked
//!   image as reference (post_quant_conv + decoder, 0.81 / 14.25 GMACs).
//!
//! CUDA benches synchronise the device after every iteration and print
//! `SKIP (no CUDA device)` without a GPU. Paper-preset benches use criterion's minimum sample
//! size (10) with a 1 s warm-up: the CPU transformer pass alone takes seconds.
//! Run: `cargo bench --bench models` (all; a few minutes on two cores), or a subset by name,
//! e.g. `cargo bench --bench models -- _tiny` or `-- cuda_`. Numbers: BENCHMARKS.md.

mod common;

use common::{cuda, long, mask_30pct, model, photo, short};
use criterion::{criterion_group, criterion_main, Criterion};
use fdm::autograd::Tape;
use fdm::cuda::CudaDevice;
use fdm::model::inpainting::{InpaintingModel, Precision};
use fdm::model::masks::masked_patch_indicator;
use fdm::nn::Bound;
use fdm::testing::random_vec;
use fdm::{Device, Tensor};
use std::hint::black_box;

/// One model with its inputs on one device, and how to wait for that device.
struct Setup {
    name: String,
    model: InpaintingModel,
    tape: Tape,
    params: Bound,
    image: Tensor,
    mask: Tensor,
    dev: Option<CudaDevice>,
}

impl Setup {
    /// `backend` "cpu" or "cuda" (None: no GPU, SKIP printed), `preset` "tiny" or "paper".
    fn new(backend: &str, preset: &str, precision: Precision) -> Option<Setup> {
        let dev = match backend {
            "cuda" => Some(cuda(&format!("cuda benches of the {preset} preset"))?),
            _ => None,
        };
        let device = dev
            .as_ref()
            .map_or(Device::Cpu, |d| Device::Cuda(d.clone()));
        let model = model(preset, &device, precision);
        let tape = Tape::no_grad();
        let params = model.store.bind(&tape, |_| false);
        let image = photo()
            .reshape(&[1, 3, 256, 256])
            .unwrap()
            .to_device(&device)
            .unwrap();
        let mask = mask_30pct()
            .reshape(&[1, 1, 256, 256])
            .unwrap()
            .to_device(&device)
            .unwrap();
        Some(Setup {
            name: format!("{backend}_{{}}_{preset}"),
            model,
            tape,
            params,
            image,
            mask,
            dev,
        })
    }

    fn id(&self, what: &str) -> String {
        self.name.replace("{}", what)
    }

    fn sync(&self) {
        if let Some(d) = &self.dev {
            d.synchronize().expect("synchronize");
        }
    }

    /// Bench `f`, waiting for the device after each call.
    fn bench<T>(&self, c: &mut Criterion, id: &str, mut f: impl FnMut() -> T) {
        c.bench_function(id, |b| {
            b.iter(|| {
                let out = f();
                self.sync();
                black_box(out)
            })
        });
    }

    fn transformer_pass(&self, c: &mut Criterion, id: &str) {
        let cfg = &self.model.cfg.transformer;
        let n = cfg.seq_len * cfg.embed_dim;
        let x = Tensor::from_vec(
            random_vec(1, n, -1.0, 1.0),
            &[1, cfg.seq_len, cfg.embed_dim],
        )
        .unwrap();
        let x = self
            .tape
            .constant(x.to_device(&self.model.device()).unwrap());
        self.bench(c, id, || {
            self.model
                .transformer
                .forward(&self.tape, &self.params, &x)
                .expect("pass")
        });
    }

    fn fdm(&self, c: &mut Criterion) {
        let (m, t, p) = (&self.model, &self.tape, &self.params);
        let feats = m
            .codec
            .get_features(t, p, &m.store, &self.image, Some(&self.mask))
            .expect("features");
        let indicator =
            t.constant(masked_patch_indicator(&self.mask, m.cfg.codec.patch).expect("patch mask"));
        // FDM's cost does not depend on the values: the encoder features stand in for the
        // sampled codebook rows.
        let quantized = t.constant(feats.feature.value().clone());
        self.bench(c, &self.id("fdm"), || {
            m.fdm
                .apply(t, p, &quantized, &feats.feature, &indicator)
                .expect("fdm")
                .v
        });
    }

    fn codec(&self, c: &mut Criterion) {
        let (m, t, p) = (&self.model, &self.tape, &self.params);
        self.bench(c, &self.id("codec_encode"), || {
            m.codec
                .get_features(t, p, &m.store, &self.image, Some(&self.mask))
                .expect("encode")
                .tokens
        });
        let feats = m
            .codec
            .get_features(t, p, &m.store, &self.image, Some(&self.mask))
            .expect("features");
        self.bench(c, &self.id("codec_decode"), || {
            m.codec
                .decode(t, p, &feats.feature, &self.image, &self.mask)
                .expect("decode")
        });
    }
}

/// Every part of `preset` on `backend`.
fn parts(c: &mut Criterion, backend: &str, preset: &str) {
    let Some(s) = Setup::new(backend, preset, Precision::F32) else {
        return;
    };
    s.transformer_pass(c, &s.id("transformer_pass"));
    s.fdm(c);
    s.codec(c);
    drop(s);
    if backend == "cuda" && preset == "paper" {
        if let Some(s) = Setup::new(backend, preset, Precision::Bf16) {
            s.transformer_pass(c, "cuda_transformer_pass_paper_bf16");
        }
    }
}

fn cpu_tiny(c: &mut Criterion) {
    parts(c, "cpu", "tiny");
}
fn cpu_paper(c: &mut Criterion) {
    parts(c, "cpu", "paper");
}
fn cuda_tiny(c: &mut Criterion) {
    parts(c, "cuda", "tiny");
}
fn cuda_paper(c: &mut Criterion) {
    parts(c, "cuda", "paper");
}

criterion_group! { name = tiny; config = short(); targets = cpu_tiny, cuda_tiny }
criterion_group! { name = paper; config = long(); targets = cpu_paper, cuda_paper }
criterion_main!(tiny, paper);
