//! Patch unfold / fold (spec §1.1): literal order (numpy), fast vs ref and exact round trip on the
//! real shape (2 x 3 x 256 x 256, p = 8), element order spot checks, gradients, the feature map
//! <-> token permutation, errors.
mod elementwise_common;
use elementwise_common::*;

use fdm::autograd::patch as ag;
use fdm::cpu::ops::patch::{fold_fast, fold_ref, unfold_fast, unfold_ref};
use fdm::ops::patch::{patch_fold, patch_unfold};
use fdm::params::patch::PatchParams;
use fdm::testing::random_vec;
use fdm::Result;

#[test]
fn patch_literal_order_cpu() -> Result<()> {
    // numpy (equals torch F.unfold(x, 2, stride=2).transpose(1, 2)):
    //   x = np.arange(32).reshape(1,2,4,4)
    //   x.reshape(1,2,2,2,2,2).transpose(0,2,4,1,3,5).reshape(1,4,8)
    let x = t(
        &(0..32).map(|v| v as f32).collect::<Vec<_>>(),
        &[1, 2, 4, 4],
    );
    let tok = patch_unfold(&x, 2)?;
    assert_eq!(tok.shape(), &[1, 4, 8]);
    let want = [
        0, 1, 4, 5, 16, 17, 20, 21, 2, 3, 6, 7, 18, 19, 22, 23, 8, 9, 12, 13, 24, 25, 28, 29, 10,
        11, 14, 15, 26, 27, 30, 31,
    ];
    assert_eq!(vals(&tok), want.map(|v| v as f32));
    assert_eq!(vals(&patch_fold(&tok, 2, (4, 4))?), vals(&x));
    Ok(())
}

#[test]
fn patch_fast_matches_ref_and_round_trips_cpu() -> Result<()> {
    // Real shape: a batch of two 3 x 256 x 256 images, 8 x 8 patches -> 2 x 1024 x 192.
    let (b, c, h, w, p) = (2, 3, 256, 256, 8);
    let params = PatchParams::new(b, c, h, w, p);
    let img = random_vec(1, b * c * h * w, -1.0, 1.0);
    let (mut tr, mut tf) = (vec![0f32; img.len()], vec![0f32; img.len()]);
    unfold_ref(&params, &img, &mut tr);
    unfold_fast(&params, &img, &mut tf);
    assert_eq!(tr, tf);
    let (mut ir, mut iff) = (vec![0f32; img.len()], vec![0f32; img.len()]);
    fold_ref(&params, &tf, &mut ir);
    fold_fast(&params, &tf, &mut iff);
    assert_eq!(ir, iff);
    assert_eq!(iff, img, "fold(unfold(x)) == x exactly");
    // Spot checks of spec §1.1: token (b, l) element c*64 + ky*8 + kx is pixel
    // (b, c, (l / 32)*8 + ky, (l % 32)*8 + kx).
    let x = t(&img, &[b, c, h, w]);
    let tok = vals(&patch_unfold(&x, p)?);
    for &(bb, l, cc, ky, kx) in &[
        (0, 0, 0, 0, 0),
        (1, 1023, 2, 7, 7),
        (0, 33, 1, 3, 5),
        (1, 31, 0, 7, 0),
        (1, 992, 2, 0, 6),
    ] {
        let e = cc * 64 + ky * 8 + kx;
        let pix = ((bb * c + cc) * h + (l / 32) * 8 + ky) * w + (l % 32) * 8 + kx;
        assert_eq!(
            tok[(bb * 1024 + l) * 192 + e],
            img[pix],
            "token ({bb},{l}) element {e}"
        );
    }
    Ok(())
}

#[test]
fn patch_gradients_match_finite_diff_cpu() {
    // unfold and fold are linear permutations; their backward is the other op.
    let (b, c, h, w, p) = (1, 2, 4, 6, 2);
    let twin_unfold = move |x: &[f64]| -> Vec<f64> {
        let mut out = Vec::new();
        for bb in 0..b {
            for l in 0..(h / p) * (w / p) {
                for e in 0..c * p * p {
                    let (cc, ky, kx) = (e / (p * p), (e / p) % p, e % p);
                    out.push(
                        x[((bb * c + cc) * h + (l / (w / p)) * p + ky) * w
                            + (l % (w / p)) * p
                            + kx],
                    );
                }
            }
        }
        out
    };
    check_grads(
        "patch_unfold",
        &[(random_vec(1, b * c * h * w, -1.0, 1.0), vec![b, c, h, w])],
        |tape, v| ag::patch_unfold(tape, &v[0], p),
        move |xs| twin_unfold(&xs[0]),
    );
    let twin_fold = move |tok: &[f64]| -> Vec<f64> {
        let mut img = vec![0.0; b * c * h * w];
        let pos = twin_unfold(&(0..img.len()).map(|i| i as f64).collect::<Vec<_>>());
        for (k, &src) in pos.iter().enumerate() {
            img[src as usize] = tok[k];
        }
        img
    };
    check_grads(
        "patch_fold",
        &[(
            random_vec(2, b * c * h * w, -1.0, 1.0),
            vec![b, (h / p) * (w / p), c * p * p],
        )],
        |tape, v| ag::patch_fold(tape, &v[0], p, (h, w)),
        move |xs| twin_fold(&xs[0]),
    );
}

#[test]
fn patch_feature_map_to_tokens_is_a_permute_cpu() -> Result<()> {
    // B x C x h x w <-> B x (h*w) x C needs no op: reshape + permute + contiguous (spec §0: tokens
    // row-major over the grid, l = row*w + col).
    let (b, c, h, w) = (2, 5, 3, 4);
    let fm = rand(3, &[b, c, h, w], -1.0, 1.0);
    let tokens = fm
        .reshape(&[b, c, h * w])?
        .permute(&[0, 2, 1])?
        .contiguous()?;
    assert_eq!(tokens.shape(), &[b, h * w, c]);
    let (fv, tv) = (vals(&fm), vals(&tokens));
    for (bb, row, col, cc) in [(0, 0, 0, 0), (1, 2, 3, 4), (0, 1, 2, 3)] {
        assert_eq!(
            tv[(bb * h * w + row * w + col) * c + cc],
            fv[((bb * c + cc) * h + row) * w + col]
        );
    }
    let back = tokens
        .permute(&[0, 2, 1])?
        .contiguous()?
        .reshape(&[b, c, h, w])?;
    assert_eq!(vals(&back), fv);
    Ok(())
}

#[test]
fn patch_rejects_bad_inputs_cpu() -> Result<()> {
    let err = patch_unfold(&rand(1, &[1, 3, 20, 16], 0.0, 1.0), 8)
        .unwrap_err()
        .to_string();
    assert!(err.contains("20x16") && err.contains("8x8"), "{err}");
    let err = patch_unfold(&rand(1, &[3, 16, 16], 0.0, 1.0), 8)
        .unwrap_err()
        .to_string();
    assert!(err.contains("[B, C, H, W]"), "{err}");
    let err = patch_fold(&rand(1, &[1, 5, 192], 0.0, 1.0), 8, (16, 16))
        .unwrap_err()
        .to_string();
    assert!(err.contains("L = 4"), "{err}");
    Ok(())
}
