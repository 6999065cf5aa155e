//! Behaviour the spec pins down (spec §10 verification hooks), on the tiny preset with random
//! weights: the encoder is per-patch; the quantizer uses the right codebook half; the decoder's
//! reference guidance replaces (all-visible mask) or ignores (all-hole mask) the reference;
//! FDM is zero at visible patches and `v = qv + pv`; the transformer gives B x L x vocab logits.
use fdm::autograd::Tape;
use fdm::model::codec::feature_rows;
use fdm::model::inpainting::InpaintingModel;
use fdm::model::masks;
use fdm::model::presets::ModelConfig;
use fdm::rng::Rng;
use fdm::{Result, Tensor};

fn model() -> InpaintingModel {
    InpaintingModel::new(&ModelConfig::tiny(), 7).unwrap()
}

fn random_image(seed: u64) -> Tensor {
    let mut r = Rng::new(seed);
    let v: Vec<f32> = (0..3 * 256 * 256).map(|_| (r.uniform() * 255.0).floor()).collect();
    Tensor::from_vec(v, &[1, 3, 256, 256]).unwrap()
}

/// Visible everywhere but a rectangle [y0, y1) x [x0, x1).
fn rect_mask(y0: usize, y1: usize, x0: usize, x1: usize) -> Tensor {
    let mut m = vec![1.0; 256 * 256];
    for y in y0..y1 {
        for x in x0..x1 {
            m[y * 256 + x] = 0.0;
        }
    }
    Tensor::from_vec(m, &[1, 1, 256, 256]).unwrap()
}

#[test]
fn encoder_is_per_patch_cpu() -> Result<()> {
    let m = model();
    let t = Tape::no_grad();
    let p = m.store.bind(&t, |_| false);
    let img = random_image(1);
    // Hole covers patches rows 4..8, cols 2..6 exactly (pixels 32..64 x 16..48).
    let mask = rect_mask(32, 64, 16, 48);
    let full = m.codec.get_features(&t, &p, &m.store, &img, None)?;
    let part = m.codec.get_features(&t, &p, &m.store, &img, Some(&mask))?;
    let (a, b) = (feature_rows(full.feature.value())?.to_vec_f32()?, feature_rows(part.feature.value())?.to_vec_f32()?);
    let c = m.cfg.codec.e_dim;
    let mut visible = 0;
    for (l, &vis) in part.visible.iter().enumerate() {
        let (row, col) = (l / 32, l % 32);
        let in_hole = (4..8).contains(&row) && (2..6).contains(&col);
        assert_eq!(vis, !in_hole, "token type of patch {l}");
        if vis {
            visible += 1;
            assert_eq!(&a[l * c..(l + 1) * c], &b[l * c..(l + 1) * c], "visible patch {l} changed");
        }
    }
    assert_eq!(visible, 1024 - 16);
    Ok(())
}

#[test]
fn quantizer_uses_the_patch_half_cpu() -> Result<()> {
    let m = model();
    let t = Tape::no_grad();
    let p = m.store.bind(&t, |_| false);
    let half = m.cfg.codec.masked_embed_start as u32;
    let img = random_image(2);
    let f = m.codec.get_features(&t, &p, &m.store, &img, None)?;
    assert!(f.tokens.iter().all(|&k| k < half), "all-visible image: unmasked half only");
    // A partly hidden patch counts as masked (one hole pixel is enough, spec §1.2).
    let mask = rect_mask(0, 256, 0, 256);
    let g = m.codec.get_features(&t, &p, &m.store, &img, Some(&mask))?;
    assert!(g.tokens.iter().all(|&k| k >= half && k < 2 * half), "all-hole image: masked half only");
    let one_pixel = rect_mask(9, 10, 9, 10); // inside patch (1, 1)
    let h = m.codec.get_features(&t, &p, &m.store, &img, Some(&one_pixel))?;
    for (l, &k) in h.tokens.iter().enumerate() {
        assert_eq!(k >= half, l == 33, "patch {l}");
    }
    Ok(())
}

#[test]
fn decoder_reference_guidance_extremes_cpu() -> Result<()> {
    let m = model();
    let t = Tape::no_grad();
    let p = m.store.bind(&t, |_| false);
    let c = m.cfg.codec.e_dim;
    let mut r = Rng::new(3);
    let mut feat = |_: ()| {
        let v: Vec<f32> = (0..c * 1024).map(|_| r.normal()).collect();
        t.constant(Tensor::from_vec(v, &[1, c, 32, 32]).unwrap())
    };
    let (f1, f2) = (feat(()), feat(()));
    let img = random_image(4);
    // All visible: every blend takes the reference maps, so the features do not matter.
    let ones = Tensor::full(1.0, &[1, 1, 256, 256]);
    let a = m.codec.decode(&t, &p, &f1, &img, &ones)?.value().to_vec_f32()?;
    let b = m.codec.decode(&t, &p, &f2, &img, &ones)?.value().to_vec_f32()?;
    assert_eq!(a, b);
    // All hole: the reference image has no influence.
    let zeros = Tensor::zeros(&[1, 1, 256, 256]);
    let c1 = m.codec.decode(&t, &p, &f1, &img, &zeros)?.value().to_vec_f32()?;
    let c2 = m.codec.decode(&t, &p, &f1, &random_image(5), &zeros)?.value().to_vec_f32()?;
    assert_eq!(c1, c2);
    assert_ne!(a, c1);
    Ok(())
}

#[test]
fn fdm_is_zero_at_visible_patches_and_adds_cpu() -> Result<()> {
    let m = model();
    let t = Tape::no_grad();
    let p = m.store.bind(&t, |_| false);
    let img = random_image(6);
    let mask = rect_mask(64, 128, 64, 200);
    let f = m.codec.get_features(&t, &p, &m.store, &img, Some(&mask))?;
    let mp = masks::masked_patch_indicator(&mask, 8)?;
    let q = m.codec.codebook_features(&m.store, &f.tokens, 1, (32, 32))?;
    let out = m.fdm.apply(&t, &p, &t.constant(q.clone()), &f.feature, &t.constant(mp))?;
    let (v, pv, qv) = (out.v.value().to_vec_f32()?, out.pv.value().to_vec_f32()?, out.qv.value().to_vec_f32()?);
    let (fv, qq) = (f.feature.value().to_vec_f32()?, q.to_vec_f32()?);
    let c = m.cfg.codec.e_dim;
    let mut nonzero = 0;
    for ch in 0..c {
        for l in 0..1024 {
            let i = ch * 1024 + l;
            if f.visible[l] {
                assert_eq!(pv[i], 0.0);
                assert_eq!(qv[i], fv[i], "visible: continuous encoder feature");
            } else {
                assert_eq!(qv[i], qq[i], "masked: codebook row");
                nonzero += (pv[i] != 0.0) as usize;
            }
            assert_eq!(v[i], qv[i] + pv[i]);
        }
    }
    assert!(nonzero > 0, "FDM must act at masked patches");
    Ok(())
}

#[test]
fn transformer_gives_logits_per_token_cpu() -> Result<()> {
    let m = model();
    let t = Tape::no_grad();
    let p = m.store.bind(&t, |_| false);
    let c = m.cfg.codec.e_dim;
    let x = t.constant(Tensor::from_vec(fdm::testing::random_vec(9, 2 * 1024 * c, -1.0, 1.0), &[2, 1024, c])?);
    let logits = m.transformer.forward(&t, &p, &x)?;
    assert_eq!(logits.shape(), &[2, 1024, m.cfg.transformer.vocab]);
    assert!(logits.value().to_vec_f32()?.iter().all(|v| v.is_finite()));
    assert_eq!(t.num_nodes(), 0, "inference records nothing");
    let bad = t.constant(Tensor::zeros(&[1, 100, c]));
    assert!(m.transformer.forward(&t, &p, &bad).is_err());
    Ok(())
}
