//! The backbones of `model::vgg` (spec §6.5, §7.4): torchvision layer indices and names,
//! parameter counts, tap shapes, strict weight loading, and one tap against numpy.
//!
//! Parameter counts of torchvision `features` (sum of conv weights and biases):
//! VGG-16 14,714,688; VGG-19 20,024,384; AlexNet 2,469,696.
//!
//! Literal tap check (numpy 2.4; `weights-tools/lpips_numpy.py` on the bundled VGG-16 weights,
//! input = the [0, 1] image of `tests/fixtures/lpips/ex_ref.png`, no normalisation, as the
//! training losses feed it):
//! ```python
//! import sys; sys.path.insert(0, 'weights-tools')
//! import lpips_numpy as L, numpy as np
//! w, _ = L.read_safetensors('assets/weights/vgg16_lpips.safetensors')
//! x = (L.load_image('tests/fixtures/lpips/ex_ref.png') + 1) / 2
//! f = L.features(w, 'vgg16', x)
//! print(f[1].shape, '%.9f %.9f %.9f' % (f[1].sum(), f[1][0, 0, 15, 5], f[2].mean()))
//! # (1, 128, 32, 32) 91388.036014979 3.336496865 1.245903877
//! ```
//! Tolerance: f32 against f64, sums over up to 2304 products per value: 1e-5 relative on
//! single values; the 131,072-term sum is compared with 1e-5 relative as well.

use fdm::autograd::Tape;
use fdm::io::image::load_image;
use fdm::io::WeightStore;
use fdm::metrics::lpips::default_weights_path;
use fdm::model::vgg::{Backbone, FeatureNet, LayerKind};
use fdm::Tensor;

fn random_weights(b: Backbone) -> WeightStore {
    b.param_shapes("features")
        .into_iter()
        .enumerate()
        .map(|(i, (k, s))| {
            let n = s.iter().product();
            (
                k,
                Tensor::from_vec(fdm::testing::random_vec(i as u64, n, -0.05, 0.05), &s).unwrap(),
            )
        })
        .collect()
}

#[test]
fn metrics_vgg_layer_indices_match_torchvision_cpu() {
    // Spec §6.5 slice boundaries of VGG-19: the ReLU ending each slice.
    let v19 = Backbone::Vgg19;
    for (name, idx) in [
        ("relu1_1", 1),
        ("relu1_2", 3),
        ("relu2_1", 6),
        ("relu2_2", 8),
        ("relu3_1", 11),
        ("relu3_4", 17),
        ("relu4_1", 20),
        ("relu4_4", 26),
        ("relu5_1", 29),
        ("relu5_2", 31),
        ("relu5_4", 35),
    ] {
        assert_eq!(v19.index_of(name).unwrap(), idx, "vgg19 {name}");
    }
    // LPIPS slices of VGG-16 ([0,4), [4,9), [9,16), [16,23), [23,30)) and AlexNet.
    let v16: Vec<usize> = ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"]
        .iter()
        .map(|n| Backbone::Vgg16.index_of(n).unwrap())
        .collect();
    assert_eq!(v16, [3, 8, 15, 22, 29]);
    let alex: Vec<usize> = ["relu1", "relu2", "relu3", "relu4", "relu5"]
        .iter()
        .map(|n| Backbone::AlexNet.index_of(n).unwrap())
        .collect();
    assert_eq!(alex, [1, 4, 7, 9, 11]);
    assert_eq!(Backbone::Vgg16.layers().len(), 31);
    assert_eq!(Backbone::Vgg19.layers().len(), 37);
    assert_eq!(Backbone::AlexNet.layers().len(), 13);
    let convs: Vec<usize> = Backbone::Vgg16
        .layers()
        .iter()
        .filter(|l| matches!(l.kind, LayerKind::Conv { .. }))
        .map(|l| l.index)
        .collect();
    assert_eq!(convs, [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]);
    let e = Backbone::Vgg16.index_of("relu3_4").unwrap_err().to_string();
    assert!(e.contains("no layer named `relu3_4`") && e.contains("relu3_3"), "{e}");
}

#[test]
fn metrics_vgg_parameter_counts_cpu() {
    let count = |b: Backbone| {
        b.param_shapes("features")
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum::<usize>()
    };
    assert_eq!(count(Backbone::Vgg16), 14_714_688);
    assert_eq!(count(Backbone::Vgg19), 20_024_384);
    assert_eq!(count(Backbone::AlexNet), 2_469_696);
}

#[test]
fn metrics_vgg_tap_shapes_cpu() {
    let net = FeatureNet::from_weights(Backbone::Vgg19, &random_weights(Backbone::Vgg19), "features").unwrap();
    let tape = Tape::no_grad();
    let x = tape
        .constant(Tensor::from_vec(fdm::testing::random_vec(1, 2 * 3 * 32 * 48, 0.0, 1.0), &[2, 3, 32, 48]).unwrap());
    let taps = net
        .forward(
            &tape,
            &net.bind_frozen(&tape),
            &x,
            &["relu3_4", "relu1_1", "pool5", "relu5_2"],
        )
        .unwrap();
    let shapes: Vec<&[usize]> = taps.iter().map(|t| t.shape()).collect();
    assert_eq!(
        shapes,
        [&[2, 256, 8, 12][..], &[2, 64, 32, 48], &[2, 512, 1, 1], &[2, 512, 2, 3]]
    );
    assert!(net.forward(&tape, &net.bind_frozen(&tape), &x, &[]).unwrap().is_empty());
}

#[test]
fn metrics_vgg16_tap_matches_numpy_cpu() {
    let (weights, _) = fdm::io::safetensors::load(default_weights_path(fdm::metrics::LpipsNet::Vgg)).unwrap();
    let net = FeatureNet::from_weights(Backbone::Vgg16, &weights, "features").unwrap();
    let img = load_image(format!(
        "{}/tests/fixtures/lpips/ex_ref.png",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .tensor;
    let x: Vec<f32> = img.to_vec_f32().unwrap().iter().map(|v| v / 255.0).collect();
    let tape = Tape::no_grad();
    let x = tape.constant(Tensor::from_vec(x, &[1, 3, 64, 64]).unwrap());
    let taps = net
        .forward(&tape, &net.bind_frozen(&tape), &x, &["relu2_2", "relu3_3"])
        .unwrap();
    assert_eq!(taps[0].shape(), [1, 128, 32, 32]);
    let f1 = taps[0].value().to_vec_f32().unwrap();
    let f2 = taps[1].value().to_vec_f32().unwrap();
    let sum: f64 = f1.iter().map(|&v| v as f64).sum();
    let mean2 = f2.iter().map(|&v| v as f64).sum::<f64>() / f2.len() as f64;
    let close = |a: f64, b: f64, what: &str| assert!((a - b).abs() <= 1e-5 * b.abs(), "{what}: {a} vs {b}");
    close(sum, 91388.036014979, "relu2_2 sum");
    close(f1[15 * 32 + 5] as f64, 3.336496865, "relu2_2[0,0,15,5]");
    close(mean2, 1.245903877, "relu3_3 mean");
}

#[test]
fn metrics_vgg_strict_loading_cpu() {
    let mut w = random_weights(Backbone::AlexNet);
    w.remove("features.3.bias");
    w.insert("features.6.weight", Tensor::zeros(&[384, 192, 3, 2]));
    let e = FeatureNet::from_weights(Backbone::AlexNet, &w, "features")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("missing features.3.bias [192]"), "{e}");
    assert!(
        e.contains("features.6.weight: expected [384, 192, 3, 3], found [384, 192, 3, 2]"),
        "{e}"
    );
    // Wrong input layout and too small inputs are errors, not panics.
    let net = FeatureNet::from_weights(Backbone::AlexNet, &random_weights(Backbone::AlexNet), "features").unwrap();
    let tape = Tape::no_grad();
    let b = net.bind_frozen(&tape);
    let gray = tape.constant(Tensor::zeros(&[1, 1, 64, 64]));
    assert!(net
        .forward(&tape, &b, &gray, &["relu1"])
        .err()
        .unwrap()
        .to_string()
        .contains("[N, 3, H, W]"));
    let tiny = tape.constant(Tensor::zeros(&[1, 3, 16, 16]));
    assert!(net.forward(&tape, &b, &tiny, &["relu5"]).is_err());
}
