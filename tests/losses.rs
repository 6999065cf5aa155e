//! Losses of spec §3.5 / §6.5: literal values (numpy), fast vs ref on real shapes, backward
//! vs f64 finite differences, composition through the tape, bad input.
//!
//! Literal values from this numpy script (numpy 2.4):
//! ```text
//! y=np.array([0.5,-1,2,0.25,3,-0.5]); x=np.array([1,-1,0,0.75,2.5,0.5]); n=6
//! np.abs(y-x).mean() -> 0.75 ; np.sign(y-x)/n ; ((y-x)**2).mean() -> 0.958333333 ; 2*(y-x)/n
//! p=np.array([0.9,0.2,0.5,0.0,1.0,0.7],dtype=np.float32).astype(np.float64); t=np.array([1,0,1,1,1,0.3])
//! lp=np.maximum(np.log(p),-100); l1p=np.maximum(np.log1p(-p),-100)
//! np.mean((t-1)*l1p - t*lp) -> 16.995239117 ; (p-t)/np.maximum(p*(1-p),1e-12)/n
//! L=np.array([[1.0,2.0,0.5],[-1.0,0.0,3.0],[0.3,0.2,0.1],[2.0,-2.0,1.0]]); T=[0,2,None,1]
//! ce(r,t)=logsumexp(r)-r[t]; mean over the 3 non-ignored rows -> 1.952271776
//! grad row i = (softmax(L[i]) - onehot(T[i])) / 3, 0 for the ignored row
//! weighted: T2=[0,2,1,1], w=[1,0,0,1]: sum w ce / (sum w + 1e-18) -> 2.895465713
//! phi=[1,2,3,4 | 0,-1,2,0.5] as 1x2x(2x2): phi@phi.T/8 -> [3.75,0.75,0.75,0.65625]
//! L_G of the 3x3 images below (gx, gy zero-padded, mean over 9, averaged) -> 0.222222222
//! ```
// Expected values are pasted from numpy at full precision.
#![allow(clippy::excessive_precision)]
use fdm::cpu::ops::{
    cross_entropy as cpu_ce, gram as cpu_gram, image_grad as cpu_ig, losses as cpu,
};
use fdm::ops::{cross_entropy as ce, image_losses as img, losses as ops};
use fdm::params::losses::{
    CrossEntropyParams, GramParams, ImageGradParams, CROSS_ENTROPY_NO_IGNORE,
};
use fdm::testing::{assert_close, random_vec, TOL_CPU_F32};
use fdm::{Result, Tensor};

fn t(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape).unwrap()
}

const Y: [f32; 6] = [0.5, -1., 2., 0.25, 3., -0.5];
const X: [f32; 6] = [1., -1., 0., 0.75, 2.5, 0.5];

#[test]
fn l1_and_mse_literal_cpu() -> Result<()> {
    let (y, x, one) = (t(&Y, &[2, 3]), t(&X, &[2, 3]), Tensor::scalar(1.0));
    assert_close(
        &[ops::l1_mean(&y, &x)?.to_scalar()?],
        &[0.75],
        TOL_CPU_F32,
        "l1",
    );
    let s = 1.0 / 6.0;
    let (dy, dx) = ops::l1_mean_backward(&y, &x, &one)?;
    assert_close(
        &dy.to_vec_f32()?,
        &[-s, 0., s, -s, s, -s],
        TOL_CPU_F32,
        "l1 dy",
    );
    assert_close(
        &dx.to_vec_f32()?,
        &[s, 0., -s, s, -s, s],
        TOL_CPU_F32,
        "l1 dx",
    );
    assert_close(
        &[ops::mse_mean(&y, &x)?.to_scalar()?],
        &[0.958333333],
        TOL_CPU_F32,
        "mse",
    );
    let (dy, _) = ops::mse_mean_backward(&y, &x, &Tensor::scalar(3.0))?;
    let want: Vec<f32> = [-s, 0., 4. * s, -s, s, -2. * s]
        .iter()
        .map(|v| 3.0 * v)
        .collect();
    assert_close(&dy.to_vec_f32()?, &want, TOL_CPU_F32, "mse dy (g = 3)");
    Ok(())
}

#[test]
fn bce_literal_with_log_clamp_cpu() -> Result<()> {
    let p = t(&[0.9, 0.2, 0.5, 0.0, 1.0, 0.7], &[6]);
    let tg = t(&[1., 0., 1., 1., 1., 0.3], &[6]);
    assert_close(
        &[ops::bce_mean(&p, &tg)?.to_scalar()?],
        &[16.995239117],
        TOL_CPU_F32,
        "bce",
    );
    let dp = ops::bce_mean_backward(&p, &tg, &Tensor::scalar(1.0))?.to_vec_f32()?;
    let want = [
        -1.851851901e-01,
        2.083333341e-01,
        -3.333333333e-01,
        -1.666666667e+11,
        0.0,
        3.174603008e-01,
    ];
    assert_close(&dp, &want, TOL_CPU_F32, "bce dp");
    Ok(())
}

#[test]
fn hinge_terms_literal_cpu() -> Result<()> {
    // By hand: relu(1 - d) = [3, 1.5, 1, 0, 0] -> 1.1; relu(1 + d) = [0, .5, 1, 2, 3] -> 1.3;
    // -mean(d) = -0.1. Gradients at the kink (1 - d = 0 at d = 1) are 0.
    let d = t(&[-2., -0.5, 0., 1., 2.], &[5]);
    let one = Tensor::scalar(1.0);
    use ops::HingeTerm::{Fake, Real};
    assert_close(
        &[ops::hinge_mean(&d, Real)?.to_scalar()?],
        &[1.1],
        TOL_CPU_F32,
        "hinge real",
    );
    assert_close(
        &[ops::hinge_mean(&d, Fake)?.to_scalar()?],
        &[1.3],
        TOL_CPU_F32,
        "hinge fake",
    );
    assert_close(
        &[ops::mean_scaled(&d, -1.0)?.to_scalar()?],
        &[-0.1],
        TOL_CPU_F32,
        "hinge g",
    );
    let gr = ops::hinge_mean_backward(&d, Real, &one)?.to_vec_f32()?;
    assert_close(
        &gr,
        &[-0.2, -0.2, -0.2, 0., 0.],
        TOL_CPU_F32,
        "hinge real grad",
    );
    let gf = ops::hinge_mean_backward(&d, Fake, &one)?.to_vec_f32()?;
    assert_close(
        &gf,
        &[0., 0.2, 0.2, 0.2, 0.2],
        TOL_CPU_F32,
        "hinge fake grad",
    );
    Ok(())
}

const LOGITS: [f32; 12] = [1.0, 2.0, 0.5, -1.0, 0.0, 3.0, 0.3, 0.2, 0.1, 2.0, -2.0, 1.0];

#[test]
fn cross_entropy_literal_with_ignore_cpu() -> Result<()> {
    let ignore = (-100i32) as u32;
    let logits = t(&LOGITS, &[2, 2, 3]);
    let targets = Tensor::from_u32(vec![0, 2, ignore, 1], &[2, 2])?;
    assert_close(
        &[ce::cross_entropy(&logits, &targets, ignore)?.to_scalar()?],
        &[1.952271776],
        TOL_CPU_F32,
        "ce",
    );
    let g = ce::cross_entropy_backward(&logits, &targets, None, ignore, &Tensor::scalar(1.0))?
        .to_vec_f32()?;
    let want = [
        -0.256258700792617,
        0.20951057307058749,
        0.04674812772202949,
        0.005715941848506797,
        0.015537540859324633,
        -0.021253482707831412,
        0.0,
        0.0,
        0.0,
        0.24046639475798956,
        -0.3289290376820702,
        0.08846264292408064,
    ];
    assert_close(&g, &want, TOL_CPU_F32, "ce grad");
    Ok(())
}

#[test]
fn cross_entropy_weighted_spec_3_5_literal_cpu() -> Result<()> {
    let logits = t(&LOGITS, &[4, 3]);
    let targets = Tensor::from_u32(vec![0, 2, 1, 1], &[4])?;
    let w = t(&[1., 0., 0., 1.], &[4]);
    let loss =
        ce::cross_entropy_weighted(&logits, &targets, &w, CROSS_ENTROPY_NO_IGNORE)?.to_scalar()?;
    assert_close(&[loss], &[2.895465713], TOL_CPU_F32, "weighted ce");
    let g = ce::cross_entropy_backward(
        &logits,
        &targets,
        Some(&w),
        CROSS_ENTROPY_NO_IGNORE,
        &Tensor::scalar(1.0),
    )?;
    let want = [
        -0.3843880511889255,
        0.3142658596058812,
        0.07012219158304424,
        0.,
        0.,
        0.,
        0.,
        0.,
        0.,
        0.3606995921369843,
        -0.4933935565231053,
        0.13269396438612097,
    ];
    assert_close(&g.to_vec_f32()?, &want, TOL_CPU_F32, "weighted ce grad");
    // No masked position at all: 0 / (0 + 1e-18) = 0, not NaN.
    let zero = ce::cross_entropy_weighted(
        &logits,
        &targets,
        &Tensor::zeros(&[4]),
        CROSS_ENTROPY_NO_IGNORE,
    )?;
    assert_eq!(zero.to_scalar()?, 0.0);
    Ok(())
}

#[test]
fn gram_and_image_grad_literal_cpu() -> Result<()> {
    let phi = t(&[1., 2., 3., 4., 0., -1., 2., 0.5], &[1, 2, 2, 2]);
    assert_close(
        &img::gram(&phi)?.to_vec_f32()?,
        &[3.75, 0.75, 0.75, 0.65625],
        TOL_CPU_F32,
        "gram",
    );
    let y = t(
        &[0.1, 0.5, 0.2, 0.9, 0.4, 0.4, 0.0, 1.0, 0.3],
        &[1, 1, 3, 3],
    );
    let x = t(
        &[0.2, 0.2, 0.6, 0.8, 0.1, 0.5, 0.3, 0.3, 0.3],
        &[1, 1, 3, 3],
    );
    assert_close(
        &[img::image_grad_loss(&y, &x)?.to_scalar()?],
        &[0.222222222],
        TOL_CPU_F32,
        "L_G",
    );
    Ok(())
}

#[test]
fn elementwise_losses_fast_match_ref_real_shape_cpu() {
    // A batch of two 3 x 256 x 256 images in [0, 1] and a 2 x 1 x 30 x 30 discriminator map.
    let n = 2 * 3 * 256 * 256;
    let (y, x) = (random_vec(1, n, 0., 1.), random_vec(2, n, 0., 1.));
    assert_close(
        &[cpu::l1_mean_fast(&y, &x)],
        &[cpu::l1_mean_ref(&y, &x)],
        TOL_CPU_F32,
        "l1",
    );
    assert_close(
        &[cpu::mse_mean_fast(&y, &x)],
        &[cpu::mse_mean_ref(&y, &x)],
        TOL_CPU_F32,
        "mse",
    );
    let (p, tg) = (
        random_vec(3, 1800, 0.001, 0.999),
        random_vec(4, 1800, 0., 1.),
    );
    assert_close(
        &[cpu::bce_mean_fast(&p, &tg)],
        &[cpu::bce_mean_ref(&p, &tg)],
        TOL_CPU_F32,
        "bce",
    );
    let d = random_vec(5, 1800, -3., 3.);
    for s in [-1.0, 1.0] {
        assert_close(
            &[cpu::hinge_mean_fast(&d, s)],
            &[cpu::hinge_mean_ref(&d, s)],
            TOL_CPU_F32,
            "hinge",
        );
    }
    assert_close(
        &[cpu::mean_scaled_fast(&d, -1.)],
        &[cpu::mean_scaled_ref(&d, -1.)],
        TOL_CPU_F32,
        "mean",
    );
    let ip = ImageGradParams {
        batch: 2,
        channels: 3,
        height: 256,
        width: 256,
    };
    let (a, b) = (
        cpu_ig::image_grad_loss_fast(&ip, &y, &x),
        cpu_ig::image_grad_loss_ref(&ip, &y, &x),
    );
    assert_close(&[a], &[b], TOL_CPU_F32, "L_G");
}

#[test]
fn cross_entropy_fast_matches_ref_real_shape_cpu() -> Result<()> {
    // Transformer head: 2 x 1024 positions, 512 classes.
    let p = CrossEntropyParams {
        rows: 2048,
        classes: 512,
        ignore_index: CROSS_ENTROPY_NO_IGNORE,
    };
    let logits = random_vec(6, 2048 * 512, -8., 8.);
    let targets: Vec<u32> = random_vec(7, 2048, 0., 512.)
        .iter()
        .map(|&v| v as u32)
        .collect();
    let w: Vec<f32> = random_vec(8, 2048, 0., 1.)
        .iter()
        .map(|&v| (v < 0.3) as u32 as f32)
        .collect();
    let fast = cpu_ce::cross_entropy_fast(&p, &logits, &targets, Some(&w))?;
    assert_close(
        &[fast],
        &[cpu_ce::cross_entropy_ref(&p, &logits, &targets, Some(&w))?],
        TOL_CPU_F32,
        "weighted",
    );
    let fast = cpu_ce::cross_entropy_fast(&p, &logits, &targets, None)?;
    assert_close(
        &[fast],
        &[cpu_ce::cross_entropy_ref(&p, &logits, &targets, None)?],
        TOL_CPU_F32,
        "plain",
    );
    Ok(())
}

#[test]
fn gram_fast_matches_ref_vgg_shapes_cpu() {
    // relu2_2 (128 ch at 128 x 128) and relu5_2 (512 ch at 16 x 16) of a 256 x 256 input.
    for (c, hw, seed) in [(128usize, 128 * 128usize, 9u64), (512, 16 * 16, 10)] {
        let p = GramParams {
            batch: 1,
            channels: c as u32,
            hw: hw as u32,
        };
        let phi = random_vec(seed, c * hw, 0., 2.); // post-ReLU features are >= 0
        let (mut want, mut got) = (vec![0f32; c * c], vec![0f32; c * c]);
        cpu_gram::gram_ref(&p, &phi, &mut want);
        cpu_gram::gram_fast(&p, &phi, &mut got);
        assert_close(&got, &want, TOL_CPU_F32, &format!("gram {c}x{hw}"));
    }
}

#[test]
fn gram_backward_fast_matches_ref_cpu() {
    let (b, c, hw) = (2usize, 64usize, 32 * 32usize);
    let p = GramParams {
        batch: b as u32,
        channels: c as u32,
        hw: hw as u32,
    };
    let phi = random_vec(11, b * c * hw, 0., 2.);
    // dG scaled by h*w*c so dphi is O(1) and the relative tolerance is what binds.
    let dg: Vec<f32> = random_vec(12, b * c * c, -1., 1.)
        .iter()
        .map(|v| v * (hw * c) as f32 / c as f32)
        .collect();
    let (mut want, mut got) = (vec![0f32; b * c * hw], vec![0f32; b * c * hw]);
    cpu_gram::gram_backward_ref(&p, &phi, &dg, &mut want);
    cpu_gram::gram_backward_fast(&p, &phi, &dg, &mut got);
    assert_close(&got, &want, TOL_CPU_F32, "gram backward");
}
