//! The VGG-16 stand-in for the perceptual/style losses: loads the bundled converted backbone,
//! maps the VGG-19-only layer names, returns every requested activation on the tape, and passes
//! gradients back to the image.
use fdm::autograd::{reduce, Tape};
use fdm::train::losses::{VggHook, PERCEPTUAL_LAYERS, STYLE_LAYERS};
use fdm::train::vgg::{vgg16_name, Vgg16Hook};
use fdm::Tensor;

#[test]
fn vgg16_hook_gives_all_loss_layers_with_gradients_cpu() {
    let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/weights/vgg16_lpips.safetensors"));
    let hook = Vgg16Hook::load(path).unwrap();
    assert_eq!(vgg16_name("relu3_4"), "relu3_3");
    assert_eq!(vgg16_name("relu4_4"), "relu4_3");
    assert_eq!(vgg16_name("relu5_2"), "relu5_2");
    let t = Tape::new();
    let x = t.var(Tensor::from_vec(fdm::testing::random_vec(5, 3 * 32 * 32, 0.0, 1.0), &[1, 3, 32, 32]).unwrap());
    let layers: Vec<&str> = PERCEPTUAL_LAYERS.iter().chain(STYLE_LAYERS.iter()).copied().collect();
    let acts = hook.activations(&t, &x, &layers).unwrap();
    assert_eq!(acts.len(), layers.len());
    // relu1_1 keeps the size with 64 channels; relu5_x is 1/16 of the side with 512 channels.
    assert_eq!(acts[0].shape(), &[1, 64, 32, 32]);
    assert_eq!(acts[4].shape(), &[1, 512, 2, 2]);
    let total = reduce::sum_all(&t, &acts[2]).unwrap();
    let g = t.backward(&total).unwrap();
    let gx = g.get(&x).expect("gradient reaches the image").to_vec_f32().unwrap();
    assert!(gx.iter().any(|v| *v != 0.0) && gx.iter().all(|v| v.is_finite()));
}
