//! The whole inpainting (encoder, transformer passes with position choice and top-K draws, FDM,
//! decoder with the reference image, compositing) through the CUDA backend, against the same run
//! on the CPU: the bundled tiny model, a real photo, a small hole. The model code is the same on
//! both (it never matches on the device); the sampled tokens must be identical (the uniforms come
//! from the host's seeded generator and both backends draw the same way) and the pixels equal
//! within a float tolerance. `emu::*` runs on the emulated CUDA device, `cuda::*` on a GPU (SKIP
//! without one, a failure with FDM_REQUIRE_CUDA=1).

mod common;

use fdm::cuda::CudaDevice;
use fdm::io::image::load_image;
use fdm::model::inpainting::InpaintingModel;
use fdm::ops;
use fdm::pipeline::inpaint::{inpaint, InpaintOptions};
use fdm::pipeline::sampler::SamplerOptions;
use fdm::testing::assert_close;
use fdm::{Device, Tensor};

device_tests!(inpainting_matches_the_cpu);

fn asset(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// A 24 x 40 pixel hole (3 x 5 = 15 masked patches of 8 x 8), visible elsewhere.
fn mask() -> Tensor {
    let mut m = vec![1.0f32; 256 * 256];
    for y in 100..124 {
        m[y * 256 + 60..y * 256 + 100].iter_mut().for_each(|v| *v = 0.0);
    }
    Tensor::from_vec(m, &[1, 256, 256]).unwrap()
}

fn inpainting_matches_the_cpu(dev: CudaDevice) {
    let loaded = load_image(asset("assets/photos/dev_005.jpg")).unwrap();
    let image = ops::resize::resize_bilinear(&loaded.tensor, (256, 256)).unwrap();
    let mask = mask();
    // Four tokens per pass: 4 transformer passes for the 15 masked patches, 2 samples in a batch.
    let opts = InpaintOptions {
        sampler: SamplerOptions { tokens_per_pass: 4, ..Default::default() },
        samples: 2,
        use_fdm: true,
        seed: 5,
    };
    let mut model = InpaintingModel::load(asset("assets/weights/fdm-tiny.safetensors"), None).unwrap();
    let cpu = inpaint(&model, &image, &mask, &opts, None, &mut |_, _| {}).unwrap();
    model.to_device(&Device::Cuda(dev)).unwrap();
    assert!(!model.device().is_cpu());
    let mut passes = 0;
    let gpu = inpaint(&model, &image, &mask, &opts, None, &mut |done, _| passes = done).unwrap();
    assert_eq!(gpu.passes, cpu.passes, "transformer passes");
    assert!(passes > 0, "the progress callback saw the passes");
    assert_eq!(gpu.tokens, cpu.tokens, "sampled tokens");
    let close = |a: &Tensor, b: &Tensor, what: &str| {
        // Pixels in [0, 255] after a decoder of ~20 layers: 1e-3 absolute is far below one grey level.
        assert_close(&a.to_vec_f32().unwrap(), &b.to_vec_f32().unwrap(), (1e-3, 1e-4), what);
    };
    for k in 0..2 {
        close(&gpu.images[k], &cpu.images[k], &format!("composited sample {k}"));
        close(&gpu.raw[k], &cpu.raw[k], &format!("raw decoder output {k}"));
    }
    let known: Vec<f32> = mask.to_vec_f32().unwrap();
    let (img, out) = (image.to_vec_f32().unwrap(), gpu.images[0].to_vec_f32().unwrap());
    for (i, &m) in known.iter().enumerate() {
        if m == 1.0 {
            for c in 0..3 {
                assert_eq!(out[c * 65536 + i], img[c * 65536 + i], "known pixels are the input exactly");
            }
        }
    }
}
