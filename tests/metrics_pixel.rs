//! PSNR, SSIM, MAE and L1 (spec §7.2) against numpy / OpenCV / scikit-image.
//!
//! Reference script (numpy 2.4, opencv-python-headless 5.0.0, scikit-image 0.26.0):
//! ```python
//! import numpy as np, cv2
//! from skimage.metrics import structural_similarity
//! C,H,W = 3,37,45
//! c,y,x = np.meshgrid(np.arange(C),np.arange(H),np.arange(W),indexing='ij')
//! a = (x*7 + y*13 + c*50 + ((x*y) % 31)*3) % 256
//! b = np.clip(a + (x*5 + y*3 + c*11) % 21 - 10, 0, 255)
//! d = (x*x + y*3 + c*17) % 256
//! def hwc(t): return np.ascontiguousarray(t.transpose(1,2,0)).astype(np.uint8)
//! def psnr(p,q):
//!     mse = np.mean((p/255. - q/255.)**2)
//!     return 100 if mse < 1e-10 else 20*np.log10(1/np.sqrt(mse))
//! def mae(p,q): p,q=p/255.,q/255.; return np.abs(p-q).sum()/(p+q).sum()
//! def l1(p,q): return np.abs(p/255.-q/255.).mean()
//! def ssim(p,q):   # the official get_SSIM
//!     g1=cv2.cvtColor(hwc(p),cv2.COLOR_RGB2GRAY); g2=cv2.cvtColor(hwc(q),cv2.COLOR_RGB2GRAY)
//!     return structural_similarity(g1,g2,full=True)[0]
//! for name,(p,q) in {"ab":(a,b),"ad":(a,d)}.items():
//!     print(name, "psnr %.15g mae %.15g l1 %.15g ssim %.15g" % (psnr(p,q), mae(p,q), l1(p,q), ssim(p,q)))
//! # ab psnr 32.5777404862155 mae 0.02042953096792 l1 0.0202210053190445 ssim 0.99694888095073
//! # ad psnr 7.92064665233926 mae 0.337716423059406 l1 0.3312528214489 ssim -0.0029078981661534
//! g=cv2.cvtColor(hwc(a),cv2.COLOR_RGB2GRAY); print(g[0,:8].tolist(), int(g.astype(np.int64).sum()))
//! # [41, 48, 55, 62, 69, 76, 83, 90] 211662
//! ```
//! The metrics are f64 throughout, so the tolerance is 1e-11 relative (the references print 15
//! significant digits; skimage's filtered means and the exact integer window sums used here
//! differ only by f64 rounding).

use fdm::metrics::{l1, mae, psnr, rgb_to_gray_opencv, ssim, ssim_gray, to_gray_u8, GrayU8, PSNR_CAP};
use fdm::Tensor;

const C: usize = 3;
const H: usize = 37;
const W: usize = 45;

fn image(f: impl Fn(i64, i64, i64) -> i64) -> Tensor {
    let mut v = Vec::with_capacity(C * H * W);
    for c in 0..C as i64 {
        for y in 0..H as i64 {
            for x in 0..W as i64 {
                v.push(f(c, y, x) as f32);
            }
        }
    }
    Tensor::from_vec(v, &[C, H, W]).unwrap()
}

fn a_img() -> Tensor {
    image(|c, y, x| (x * 7 + y * 13 + c * 50 + ((x * y) % 31) * 3) % 256)
}
fn b_img() -> Tensor {
    image(|c, y, x| {
        let a = (x * 7 + y * 13 + c * 50 + ((x * y) % 31) * 3) % 256;
        (a + (x * 5 + y * 3 + c * 11) % 21 - 10).clamp(0, 255)
    })
}
fn d_img() -> Tensor {
    image(|c, y, x| (x * x + y * 3 + c * 17) % 256)
}

fn assert_rel(actual: f64, expected: f64, what: &str) {
    let tol = 1e-11 * expected.abs().max(1e-3);
    assert!(
        (actual - expected).abs() <= tol,
        "{what}: got {actual:.15}, expected {expected:.15}"
    );
}

#[test]
fn metrics_pixel_literal_close_pair_cpu() {
    let (a, b) = (a_img(), b_img());
    assert_rel(psnr(&a, &b).unwrap(), 32.5777404862155, "psnr");
    assert_rel(mae(&a, &b).unwrap(), 0.02042953096792, "mae");
    assert_rel(l1(&a, &b).unwrap(), 0.0202210053190445, "l1");
    assert_rel(ssim(&a, &b).unwrap(), 0.99694888095073, "ssim");
}

#[test]
fn metrics_pixel_literal_far_pair_cpu() {
    let (a, d) = (a_img(), d_img());
    assert_rel(psnr(&a, &d).unwrap(), 7.92064665233926, "psnr");
    assert_rel(mae(&a, &d).unwrap(), 0.337716423059406, "mae");
    assert_rel(l1(&a, &d).unwrap(), 0.3312528214489, "l1");
    assert_rel(ssim(&a, &d).unwrap(), -0.0029078981661534, "ssim");
}

#[test]
fn metrics_pixel_identical_images_cpu() {
    let a = a_img();
    assert_eq!(psnr(&a, &a).unwrap(), PSNR_CAP);
    assert_eq!(mae(&a, &a).unwrap(), 0.0);
    assert_eq!(l1(&a, &a).unwrap(), 0.0);
    assert_eq!(ssim(&a, &a).unwrap(), 1.0);
    let black = Tensor::zeros(&[3, 8, 8]);
    assert_eq!(
        mae(&black, &black).unwrap(),
        0.0,
        "0/0 is reported as 0 for identical black images"
    );
}

#[test]
fn metrics_pixel_symmetric_cpu() {
    let (a, d) = (a_img(), d_img());
    for (f, name) in [
        (psnr as fn(&Tensor, &Tensor) -> fdm::Result<f64>, "psnr"),
        (mae, "mae"),
        (l1, "l1"),
        (ssim, "ssim"),
    ] {
        let (x, y) = (f(&a, &d).unwrap(), f(&d, &a).unwrap());
        assert!(
            (x - y).abs() <= 1e-14 * x.abs().max(1.0),
            "{name} not symmetric: {x} vs {y}"
        );
    }
}

#[test]
fn metrics_pixel_gray_matches_opencv_cpu() {
    let g = to_gray_u8(&a_img()).unwrap();
    assert_eq!((g.width, g.height), (W, H));
    assert_eq!(&g.data[..8], &[41, 48, 55, 62, 69, 76, 83, 90]);
    assert_eq!(g.data.iter().map(|&v| v as u64).sum::<u64>(), 211662);
    // Triples where the 15-bit fixed point and a float round(0.299 R + 0.587 G + 0.114 B) differ
    // (found by an exhaustive scan against OpenCV 4.10.0 / 5.0.0): OpenCV gives the first value.
    assert_eq!(rgb_to_gray_opencv(255, 255, 255), 255);
    assert_eq!(rgb_to_gray_opencv(0, 0, 0), 0);
    assert_eq!(rgb_to_gray_opencv(10, 20, 30), 18);
    assert_eq!(rgb_to_gray_opencv(0, 1, 201), 23); // float rounding: 24
    assert_eq!(rgb_to_gray_opencv(0, 2, 152), 18); // float rounding: 19
    assert_eq!(rgb_to_gray_opencv(0, 4, 168), 21); // float rounding: 22
}

#[test]
fn metrics_pixel_gray_input_and_truncation_cpu() {
    // A [1, H, W] image is used as gray directly; fractions are truncated as astype(uint8).
    let t = Tensor::from_vec(vec![1.9, 2.0, 254.99, 300.0, -3.0, 7.5], &[1, 2, 3]).unwrap();
    assert_eq!(to_gray_u8(&t).unwrap().data, vec![1, 2, 254, 255, 0, 7]);
}

#[test]
fn metrics_pixel_ssim_constant_images_cpu() {
    // Constant images: vx = vy = vxy = 0, so S = (2 u v + C1) / (u^2 + v^2 + C1) with
    // C1 = (0.01*255)^2 = 6.5025; for u = 100, v = 110: 22006.5025 / 22106.5025.
    let g = |v: u8| GrayU8 {
        width: 9,
        height: 8,
        data: vec![v; 72],
    };
    let s = ssim_gray(&g(100), &g(110)).unwrap();
    assert_rel(s, 22006.5025 / 22106.5025, "constant ssim");
}

#[test]
fn metrics_pixel_errors_cpu() {
    let a = a_img();
    let small = Tensor::zeros(&[3, 6, 40]);
    let err = ssim(&small, &small).unwrap_err().to_string();
    assert!(err.contains("smaller than the 7x7 window"), "{err}");
    let other = Tensor::zeros(&[3, H, W + 1]);
    for r in [psnr(&a, &other), mae(&a, &other), l1(&a, &other), ssim(&a, &other)] {
        let e = r.unwrap_err().to_string();
        assert!(e.contains("differ in shape"), "{e}");
    }
    let four = Tensor::zeros(&[4, 8, 8]);
    assert!(ssim(&four, &four).unwrap_err().to_string().contains("[3, H, W]"));
    let nan = Tensor::from_vec(vec![f32::NAN; 3 * 8 * 8], &[3, 8, 8]).unwrap();
    assert!(psnr(&nan, &Tensor::zeros(&[3, 8, 8]))
        .unwrap_err()
        .to_string()
        .contains("non-finite"));
}
