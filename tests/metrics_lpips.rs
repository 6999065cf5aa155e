//! LPIPS v0.1 (spec §7.4) with the bundled VGG-16 and AlexNet weights, against
//! `weights-tools/lpips_numpy.py` (a float64 numpy transcription of the `lpips` package run on
//! the same converted weights) and against the published AlexNet example values.
//!
//! Fixtures: `tests/fixtures/lpips/ex_{ref,p0,p1}.png`, the 64x64 example images of
//! richzhang/PerceptualSimilarity (BSD-2-Clause, see the SOURCES.md beside them). Its
//! `test_network.py` (AlexNet, v0.1, spatial map mean) prints "Distances: (0.722, 0.138)".
//!
//! Reference script (run from the repository root; numpy 2.4):
//! ```python
//! import sys; sys.path.insert(0, 'weights-tools')
//! import lpips_numpy as L, numpy as np
//! im = {n: L.load_image(f'tests/fixtures/lpips/{n}.png') for n in ['ex_ref', 'ex_p0', 'ex_p1']}
//! crop = lambda t: t[:, :, 5:45, 3:59]          # 40 x 56
//! for net, f in [('alexnet', 'alexnet_lpips'), ('vgg16', 'vgg16_lpips')]:
//!     w, _ = L.read_safetensors(f'assets/weights/{f}.safetensors')
//!     for sp in [True, False]:
//!         r = [L.lpips(w, net, im['ex_ref'], im[p], sp)[0] for p in ['ex_p0', 'ex_p1']]
//!         r.append(L.lpips(w, net, crop(im['ex_p0']), crop(im['ex_p1']), sp)[0])
//!         print(net, 'spatial' if sp else 'mean', ' '.join('%.10f' % x for x in r))
//! # alexnet spatial 0.7218581547 0.1375542320 0.4749770885
//! # alexnet mean 0.7218807125 0.1375656095 0.4749564645
//! # vgg16 spatial 0.5685956858 0.4216532853 0.5583320562
//! # vgg16 mean 0.5685956858 0.4216532853 0.5583365002
//! ```
//! Tolerance: the engine computes in f32 (13 convs with sums of up to 4608 products, channel
//! norms, 1x1 convs over up to 512 channels) against an f64 reference; observed differences
//! are at most 8.1e-8 on values of 0.14-0.72, so `LPIPS_TOL` = 1e-6 absolute.

use fdm::autograd::Tape;
use fdm::io::image::load_image;
use fdm::metrics::lpips::{default_weights_path, diversity_pairs, mean_std};
use fdm::metrics::{diversity, DiversityPairs, Lpips, LpipsNet};
use fdm::rng::Rng;
use fdm::Tensor;
use std::sync::OnceLock;

const LPIPS_TOL: f64 = 1e-6;

fn fixture(name: &str) -> Tensor {
    let path = format!("{}/tests/fixtures/lpips/{name}.png", env!("CARGO_MANIFEST_DIR"));
    load_image(path).unwrap().tensor
}

fn model(net: LpipsNet) -> &'static Lpips {
    static VGG: OnceLock<Lpips> = OnceLock::new();
    static ALEX: OnceLock<Lpips> = OnceLock::new();
    let cell = if net == LpipsNet::Vgg { &VGG } else { &ALEX };
    cell.get_or_init(|| Lpips::load_default(net).unwrap())
}

/// `[3, H, W]` in [0, 255] -> `[1, 3, H, W]` in [-1, 1].
fn signed(t: &Tensor) -> Tensor {
    let v: Vec<f32> = t.to_vec_f32().unwrap().iter().map(|x| x / 255.0 * 2.0 - 1.0).collect();
    let s = t.shape();
    Tensor::from_vec(v, &[1, s[0], s[1], s[2]]).unwrap()
}

fn crop(t: &Tensor) -> Tensor {
    t.narrow(1, 5, 40)
        .unwrap()
        .narrow(2, 3, 56)
        .unwrap()
        .contiguous()
        .unwrap()
}

fn assert_lpips(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= LPIPS_TOL,
        "{what}: got {actual:.10}, expected {expected:.10}"
    );
}

/// [ref-p0, ref-p1, crop(p0)-crop(p1)] for spatial and plain-mean reductions.
fn check_against_reference(net: LpipsNet, spatial: [f64; 3], mean: [f64; 3]) {
    let m = model(net);
    let (r, p0, p1) = (fixture("ex_ref"), fixture("ex_p0"), fixture("ex_p1"));
    let pairs = [(r.clone(), p0.clone()), (r, p1.clone()), (crop(&p0), crop(&p1))];
    for (k, (a, b)) in pairs.iter().enumerate() {
        assert_lpips(
            m.distance_images(a, b).unwrap(),
            spatial[k],
            &format!("{net:?} spatial pair {k}"),
        );
        assert_lpips(
            m.eval(&signed(a), &signed(b), false).unwrap()[0],
            mean[k],
            &format!("{net:?} mean pair {k}"),
        );
    }
}

#[test]
fn metrics_lpips_alex_matches_numpy_cpu() {
    check_against_reference(
        LpipsNet::Alex,
        [0.7218581547, 0.1375542320, 0.4749770885],
        [0.7218807125, 0.1375656095, 0.4749564645],
    );
}

#[test]
fn metrics_lpips_vgg_matches_numpy_cpu() {
    check_against_reference(
        LpipsNet::Vgg,
        [0.5685956858, 0.4216532853, 0.5583320562],
        [0.5685956858, 0.4216532853, 0.5583365002],
    );
}

/// The `lpips` package itself (0.1.4, PyTorch f32) with the same backbone weights, from
/// `weights-tools/lpips_package_check.py`:
/// alex spatial 0.7218582034 0.1375542432 0.4749770463, mean 0.7218807936 0.1375656277 0.4749564230;
/// vgg spatial 0.5685957074 0.4216533303 0.5583320856, mean 0.5685957074 0.4216533303 0.5583364367.
/// (It and the float64 numpy transcription above agree to 1e-7.)
#[test]
fn metrics_lpips_alex_matches_lpips_package_cpu() {
    check_against_reference(
        LpipsNet::Alex,
        [0.7218582034, 0.1375542432, 0.4749770463],
        [0.7218807936, 0.1375656277, 0.4749564230],
    );
}

#[test]
fn metrics_lpips_vgg_matches_lpips_package_cpu() {
    check_against_reference(
        LpipsNet::Vgg,
        [0.5685957074, 0.4216533303, 0.5583320856],
        [0.5685957074, 0.4216533303, 0.5583364367],
    );
}

#[test]
fn metrics_lpips_alex_published_example_cpu() {
    // richzhang/PerceptualSimilarity test_network.py: "Distances: (0.722, 0.138)".
    let m = model(LpipsNet::Alex);
    let r = fixture("ex_ref");
    let d0 = m.distance_images(&r, &fixture("ex_p0")).unwrap();
    let d1 = m.distance_images(&r, &fixture("ex_p1")).unwrap();
    assert_eq!(format!("{d0:.3} {d1:.3}"), "0.722 0.138");
}

#[test]
fn metrics_lpips_identical_is_zero_and_symmetric_cpu() {
    let (a, b) = (fixture("ex_p0"), fixture("ex_p1"));
    for net in [LpipsNet::Alex, LpipsNet::Vgg] {
        let m = model(net);
        assert_eq!(m.distance_images(&a, &a).unwrap(), 0.0, "{net:?}: LPIPS(x, x)");
        let (ab, ba) = (m.distance_images(&a, &b).unwrap(), m.distance_images(&b, &a).unwrap());
        assert!((ab - ba).abs() <= 1e-6 * ab, "{net:?}: not symmetric: {ab} vs {ba}");
    }
}

#[test]
fn metrics_lpips_batch_equals_single_cpu() {
    let m = model(LpipsNet::Alex);
    let (r, p0, p1) = (
        signed(&fixture("ex_ref")),
        signed(&fixture("ex_p0")),
        signed(&fixture("ex_p1")),
    );
    let cat = |a: &Tensor, b: &Tensor| fdm::ops::concat::concat(&[a, b], 0).unwrap();
    let batch = m.eval(&cat(&r, &r), &cat(&p0, &p1), true).unwrap();
    let single = [m.eval(&r, &p0, true).unwrap()[0], m.eval(&r, &p1, true).unwrap()[0]];
    for k in 0..2 {
        assert!(
            (batch[k] - single[k]).abs() <= 1e-6,
            "batch item {k}: {} vs {}",
            batch[k],
            single[k]
        );
    }
}

#[test]
fn metrics_lpips_gradient_reaches_input_cpu() {
    // The frozen backbone still passes gradients to the images (LPIPS as a loss): the analytic
    // directional derivative along a random direction matches central differences. Random
    // (tie-free) images: on flat photo regions max-pool windows hold exact ties, where the
    // one-sided derivative (first maximum wins) and a central difference legitimately differ.
    // 31x31 is the smallest AlexNet input, so few ReLU / max-pool kinks fall inside the +-eps
    // step (at 40x56 they alone move the difference quotient by ~2%). Observed: analytic
    // -0.0026141, central difference (eps 1e-3, f32 forward) -0.0026077, i.e. 0.25%; the
    // tolerance, 1%, is the f32 resolution of the difference quotient (~1.5e-5 / 2.6e-3 = 0.6%)
    // plus margin.
    let m = model(LpipsNet::Alex);
    let shape = [1, 3, 31, 31];
    let n = 3 * 31 * 31;
    let rand = |seed| Tensor::from_vec(fdm::testing::random_vec(seed, n, -1.0, 1.0), &shape).unwrap();
    let (x0, x1, dir) = (rand(5), rand(6), rand(7));
    let tape = Tape::new();
    let v0 = tape.var(x0.clone());
    let out = m.forward(&tape, &v0, &tape.constant(x1.clone()), true).unwrap();
    let loss = fdm::autograd::reduce::sum_all(&tape, &out).unwrap();
    let grads = tape.backward(&loss).unwrap();
    let g = grads.get(&v0).expect("gradient for the input").to_vec_f32().unwrap();
    let d = dir.to_vec_f32().unwrap();
    let analytic: f64 = g.iter().zip(&d).map(|(a, b)| *a as f64 * *b as f64).sum();
    let eps = 1e-3f32;
    let shifted = |s: f32| {
        let v: Vec<f32> = x0
            .to_vec_f32()
            .unwrap()
            .iter()
            .zip(&d)
            .map(|(x, d)| x + s * d)
            .collect();
        m.eval(&Tensor::from_vec(v, &shape).unwrap(), &x1, true).unwrap()[0]
    };
    let numeric = (shifted(eps) - shifted(-eps)) / (2.0 * eps as f64);
    assert!(analytic.abs() > 1e-3, "a non-trivial derivative ({analytic})");
    assert!(
        (analytic - numeric).abs() <= 1e-2 * numeric.abs(),
        "directional derivative {analytic} vs {numeric}"
    );
}

#[test]
fn metrics_lpips_diversity_cpu() {
    let m = model(LpipsNet::Alex);
    let (r, p0, p1) = (fixture("ex_ref"), fixture("ex_p0"), fixture("ex_p1"));
    let d = |a: &Tensor, b: &Tensor| m.distance_images(a, b).unwrap();
    let groups = vec![vec![r.clone(), p0.clone(), p1.clone()], vec![p0.clone()]];
    let got = diversity(m, &groups, DiversityPairs::All).unwrap();
    let expect = [d(&r, &p0), d(&r, &p1), d(&p0, &p1)];
    let (mean, std) = mean_std(&expect);
    assert_eq!((got.pairs, got.skipped_inputs), (3, 1));
    assert!(
        (got.mean - mean).abs() <= 1e-12 && (got.std - std).abs() <= 1e-12,
        "{got:?} vs {mean} {std}"
    );
    // Identical samples have zero diversity.
    let same = diversity(m, &[vec![p1.clone(), p1.clone()]], DiversityPairs::All).unwrap();
    assert_eq!(same.mean, 0.0);
    assert!(diversity(m, &[vec![p1]], DiversityPairs::All)
        .unwrap_err()
        .to_string()
        .contains("two or more"));
}

#[test]
fn metrics_lpips_diversity_pairs_cpu() {
    let mut rng = Rng::new(1);
    assert_eq!(
        diversity_pairs(3, DiversityPairs::All, &mut rng),
        vec![(0, 1), (0, 2), (1, 2)]
    );
    let how = DiversityPairs::Random { per_input: 5, seed: 1 };
    let p = diversity_pairs(10, how, &mut rng);
    assert_eq!(p.len(), 5);
    let mut q = p.clone();
    q.dedup();
    assert_eq!(q.len(), 5, "pairs are distinct");
    assert!(p.iter().all(|&(i, j)| i < j && j < 10));
    assert_eq!(
        diversity_pairs(3, how, &mut rng).len(),
        3,
        "capped at the number of pairs"
    );
}

#[test]
fn metrics_lpips_errors_cpu() {
    let m = model(LpipsNet::Alex);
    let a = fixture("ex_p0");
    let e = m.distance_images(&a, &crop(&a)).unwrap_err().to_string();
    assert!(e.contains("one shape"), "{e}");
    let tiny = Tensor::zeros(&[3, 8, 8]);
    let e = m.distance_images(&tiny, &tiny).unwrap_err().to_string();
    assert!(e.contains("alexnet"), "{e}");
    let e = Lpips::load(default_weights_path(LpipsNet::Alex), LpipsNet::Vgg)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("expected `vgg`"), "{e}");
    assert!(LpipsNet::parse("squeeze").is_err());
}
