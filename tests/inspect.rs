//! `io::npy` (byte-exact against NumPy's own files, round trips, bad headers) and
//! `pipeline::inspect` on the bundled tiny model: the shape of every intermediate and the spec
//! §10 hooks (codebook halves by mask, per-patch encoder, FDM zero at visible patches and
//! `v = qv + pv`, token replay reproducing the default decode, pixels in [0, 255]).
use fdm::io::image::load_image;
use fdm::io::npy::{self, NpyArray, NpyData};
use fdm::model::inpainting::InpaintingModel;
use fdm::pipeline::inspect::{check_tokens, inspect, Inspection, TokenSource};
use fdm::{Result, Tensor};

const BUNDLED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/weights/fdm-tiny.safetensors");
const PHOTO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/photos/dev_005.jpg");

// Expected bytes written by NumPy 2 (`np.save` to a BytesIO):
//   import numpy as np, io
//   for a in [np.array([[1.5, -2.0, 3.25], [0, 1e-3, -7]], dtype='<f4'),
//             np.array([5, -1, 7], dtype='<i8'), np.array(3, dtype='<i4')]:
//       b = io.BytesIO(); np.save(b, a); v = b.getvalue()
//       print(len(v), v[:10], v[10:10 + int.from_bytes(v[8:10], 'little')], v[10 + ...:].hex())
// Every header is 118 bytes (0x76) after the 10-byte prefix, so the data starts at byte 128.
fn numpy_file(dict: &str, data_hex: &str) -> Vec<u8> {
    let mut text = dict.to_string();
    while text.len() < 117 {
        text.push(' ');
    }
    text.push('\n');
    let mut v = b"\x93NUMPY\x01\x00\x76\x00".to_vec();
    v.extend_from_slice(text.as_bytes());
    v.extend((0..data_hex.len()).step_by(2).map(|i| u8::from_str_radix(&data_hex[i..i + 2], 16).unwrap()));
    v
}

#[test]
fn npy_bytes_match_numpy_cpu() -> Result<()> {
    let f = NpyArray::new(&[2, 3], NpyData::F32(vec![1.5, -2.0, 3.25, 0.0, 1e-3, -7.0]))?;
    let want = numpy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", "0000c03f000000c000005040000000006f12833a0000e0c0");
    assert_eq!(f.to_bytes(), want);
    assert_eq!(NpyArray::from_bytes(&want)?, f);
    let i = NpyArray::new(&[3], NpyData::I64(vec![5, -1, 7]))?;
    let want = numpy_file("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", "0500000000000000ffffffffffffffff0700000000000000");
    assert_eq!(i.to_bytes(), want);
    assert_eq!(NpyArray::from_bytes(&want)?, i);
    let s = NpyArray::new(&[], NpyData::I32(vec![3]))?;
    let want = numpy_file("{'descr': '<i4', 'fortran_order': False, 'shape': (), }", "03000000");
    assert_eq!(s.to_bytes(), want);
    assert_eq!(NpyArray::from_bytes(&want)?, s);
    Ok(())
}

#[test]
fn npy_round_trip_is_bit_exact_and_aligned_cpu() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("fdm-npy-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // Every f32 bit pattern class: signed zeros, subnormals, infinities, a NaN payload.
    let mut vals: Vec<f32> = vec![0.0, -0.0, f32::MIN_POSITIVE / 8.0, f32::INFINITY, f32::NEG_INFINITY, f32::from_bits(0x7fc0_1234), f32::MAX, -1e-30];
    let mut rng = fdm::rng::Rng::new(5);
    vals.extend((0..2 * 5 * 7 * 3 - vals.len()).map(|_| rng.uniform() * 200.0 - 100.0));
    let cases = [
        NpyArray::new(&[2, 5, 7, 3], NpyData::F32(vals.clone()))?,
        NpyArray::new(&[1, 4], NpyData::I64(vec![0, i64::MAX, i64::MIN, 1023]))?,
        NpyArray::new(&[6], NpyData::I32(vec![0, -1, i32::MAX, i32::MIN, 7, 511]))?,
        NpyArray::new(&[0, 3], NpyData::F32(vec![]))?,
        // A long shape tuple needs a second 64-byte header block.
        NpyArray::new(&[1; 40], NpyData::I32(vec![9]))?,
    ];
    for (k, a) in cases.iter().enumerate() {
        let path = dir.join(format!("a{k}.npy"));
        npy::write(&path, a)?;
        let bytes = std::fs::read(&path)?;
        let header_end = 10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!(header_end % 64, 0, "case {k}: data starts at {header_end}");
        assert_eq!(bytes[header_end - 1], b'\n');
        let back = npy::read(&path)?;
        assert_eq!(back.shape, a.shape, "case {k}");
        match (&back.data, &a.data) {
            (NpyData::F32(x), NpyData::F32(y)) => {
                assert_eq!(x.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "case {k}")
            }
            (x, y) => assert_eq!(x, y, "case {k}"),
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dir)?.filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().contains(".tmp-")).collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn npy_bad_input_is_an_error_cpu() -> Result<()> {
    assert!(NpyArray::new(&[2, 2], NpyData::F32(vec![1.0; 3])).is_err());
    assert!(NpyArray::from_tensor(&Tensor::from_u32(vec![1, 2], &[2])?).is_err());
    let good = NpyArray::new(&[2], NpyData::F32(vec![1.0, 2.0]))?.to_bytes();
    let msg = |b: &[u8]| NpyArray::from_bytes(b).unwrap_err().to_string();
    assert!(msg(&good[..good.len() - 1]).contains("data bytes"), "truncated data");
    assert!(msg(b"PK\x03\x04 not numpy").contains("magic"));
    // Header edits of equal length, on the bytes (the data is not text).
    let edit = |from: &str, to: &str| -> Vec<u8> {
        let at = good.windows(from.len()).position(|w| w == from.as_bytes()).expect("in header");
        let mut b = good.clone();
        b[at..at + to.len()].copy_from_slice(to.as_bytes());
        b
    };
    let e = msg(&edit("<f4", "<f8"));
    assert!(e.contains("<f8"), "unsupported dtype named: {e}");
    let e = msg(&edit("False", "True "));
    assert!(e.contains("fortran_order"), "{e}");
    Ok(())
}

fn bundled() -> InpaintingModel {
    InpaintingModel::load(BUNDLED, None).expect("bundled tiny weights")
}

fn photo() -> Tensor {
    load_image(PHOTO).unwrap().tensor
}

/// A [1, 256, 256] engine mask (1 = visible) with holes where `hole(y, x)`.
fn mask_where(hole: impl Fn(usize, usize) -> bool) -> Tensor {
    let v = (0..256 * 256).map(|i| if hole(i / 256, i % 256) { 0.0 } else { 1.0 }).collect();
    Tensor::from_vec(v, &[1, 256, 256]).unwrap()
}

/// Rows [100, 140) x columns [60, 93): off the 8-pixel grid, so partial patches are masked too.
fn off_grid_hole(y: usize, x: usize) -> bool {
    (100..140).contains(&y) && (60..93).contains(&x)
}

/// Channel values of patch `l` of a B=1 x C x 32 x 32 tensor.
fn patch(v: &[f32], c: usize, l: usize) -> Vec<f32> {
    (0..c).map(|ch| v[ch * 1024 + l]).collect()
}

#[test]
fn inspect_shapes_and_hooks_with_a_hole_cpu() -> Result<()> {
    let model = bundled();
    let (c, vocab) = (model.cfg.codec.e_dim, model.cfg.transformer.vocab as u32);
    let ins: Inspection = inspect(&model, &photo(), &mask_where(off_grid_hole), None)?;
    assert_eq!(ins.feat.shape(), &[1, c, 32, 32]);
    assert_eq!(ins.feat_q.shape(), &[1, c, 32, 32]);
    assert_eq!(ins.fdm.shape(), &[1, c, 32, 32]);
    assert_eq!(ins.dequantized.shape(), &[1, c, 32, 32]);
    assert_eq!(ins.logits.shape(), &[1, 1024, vocab as usize]);
    assert_eq!(ins.decoded.shape(), &[1, 3, 256, 256]);
    assert_eq!(ins.tokens.len(), 1024);
    assert_eq!(ins.source, TokenSource::Quantized);
    // Patch (r, q) is masked iff one of its pixels is in the hole: rows 12..=17, columns 7..=11.
    let masked = |l: usize| (12..=17).contains(&(l / 32)) && (7..=11).contains(&(l % 32));
    assert_eq!(ins.masked_patches, 30);
    assert_eq!(ins.masked_half_decoded, 30, "default decode replays the masked-half tokens");
    let (feat, fq, pv, v) = (ins.feat.to_vec_f32()?, ins.feat_q.to_vec_f32()?, ins.fdm.to_vec_f32()?, ins.dequantized.to_vec_f32()?);
    let codebook = model.store.get(model.codec.quantizer.embedding).to_vec_f32()?;
    for l in 0..1024 {
        let tok = ins.tokens[l];
        assert_eq!(ins.visible[l], !masked(l), "patch {l}");
        assert_eq!(tok >= vocab, masked(l), "token {tok} of patch {l}: codebook half follows the mask");
        assert_eq!(patch(&fq, c, l), codebook[tok as usize * c..(tok as usize + 1) * c], "feat_q = codebook row, patch {l}");
        let qv = if masked(l) { patch(&fq, c, l) } else { patch(&feat, c, l) };
        let p = patch(&pv, c, l);
        if !masked(l) {
            assert!(p.iter().all(|&x| x == 0.0), "FDM is zero at visible patch {l}");
        }
        let sum: Vec<f32> = qv.iter().zip(&p).map(|(a, b)| a + b).collect();
        assert_eq!(patch(&v, c, l), sum, "v = qv + pv at patch {l}");
    }
    assert!(pv.iter().any(|&x| x != 0.0), "FDM acts at masked patches");
    assert!(ins.logits.to_vec_f32()?.iter().all(|x| x.is_finite()));
    let d = ins.decoded.to_vec_f32()?;
    assert!(d.iter().all(|&x| (0.0..=255.0).contains(&x)), "decoded in [0, 255]");
    Ok(())
}

#[test]
fn inspect_no_hole_and_all_hole_masks_cpu() -> Result<()> {
    let model = bundled();
    let vocab = model.cfg.transformer.vocab as u32;
    let n_e = model.cfg.codec.n_e as u32;
    let whole = inspect(&model, &photo(), &mask_where(|_, _| false), None)?;
    assert_eq!(whole.masked_patches, 0);
    assert!(whole.tokens.iter().all(|&t| t < vocab), "no hole: unmasked half only");
    assert!(whole.fdm.to_vec_f32()?.iter().all(|&x| x == 0.0), "no hole: FDM output zero everywhere");
    assert_eq!(whole.dequantized.to_vec_f32()?, whole.feat.to_vec_f32()?, "no hole: the decoder gets the encoder features");
    let holes = inspect(&model, &photo(), &mask_where(|_, _| true), None)?;
    assert_eq!(holes.masked_patches, 1024);
    assert!(holes.tokens.iter().all(|&t| t >= vocab && t < n_e), "all hole: masked half only");
    assert!(holes.decoded.to_vec_f32()?.iter().all(|&x| (0.0..=255.0).contains(&x)));
    // Per-patch encoder: a fully visible patch has the same feature whether others are holes or not.
    let part = inspect(&model, &photo(), &mask_where(off_grid_hole), None)?;
    let (a, b, c) = (whole.feat.to_vec_f32()?, part.feat.to_vec_f32()?, model.cfg.codec.e_dim);
    let mut compared = 0;
    for l in (0..1024).filter(|&l| part.visible[l]) {
        assert_eq!(patch(&a, c, l), patch(&b, c, l), "visible patch {l}");
        assert_eq!(whole.tokens[l], part.tokens[l], "token of visible patch {l}");
        compared += 1;
    }
    assert_eq!(compared, 1024 - 30);
    Ok(())
}

#[test]
fn inspect_replay_reproduces_the_default_decode_cpu() -> Result<()> {
    let model = bundled();
    let (image, mask) = (photo(), mask_where(off_grid_hole));
    let plain = inspect(&model, &image, &mask, None)?;
    let replayed = inspect(&model, &image, &mask, Some(&plain.tokens))?;
    assert_eq!(replayed.source, TokenSource::Given);
    assert_eq!(replayed.decoded.to_vec_f32()?, plain.decoded.to_vec_f32()?);
    assert_eq!(replayed.fdm.to_vec_f32()?, plain.fdm.to_vec_f32()?);
    // The ideal tokens of the whole image (unmasked half) decode differently at the hole only
    // through the masked patches: the visible patches' tokens are not used at all.
    let ideal = inspect(&model, &image, &mask_where(|_, _| false), None)?.tokens;
    let a = inspect(&model, &image, &mask, Some(&ideal))?;
    assert_eq!(a.masked_half_decoded, 0);
    let mut shuffled = ideal.clone();
    for l in (0..1024).filter(|&l| plain.visible[l]) {
        shuffled[l] = (shuffled[l] + 17) % model.cfg.codec.n_e as u32;
    }
    let b = inspect(&model, &image, &mask, Some(&shuffled))?;
    assert_eq!(a.decoded.to_vec_f32()?, b.decoded.to_vec_f32()?, "tokens at visible patches are ignored");
    assert_ne!(a.decoded.to_vec_f32()?, plain.decoded.to_vec_f32()?);
    Ok(())
}

#[test]
fn inspect_bad_tokens_and_shapes_are_errors_cpu() -> Result<()> {
    let model = bundled();
    let n_e = model.cfg.codec.n_e as u32;
    let e = check_tokens(&model, &[0; 1000]).unwrap_err().to_string();
    assert!(e.contains("1000 tokens, expected 1024"), "{e}");
    let mut t = vec![0u32; 1024];
    t[77] = n_e;
    let e = check_tokens(&model, &t).unwrap_err().to_string();
    assert!(e.contains(&format!("token {n_e} at position 77")), "{e}");
    assert!(inspect(&model, &photo(), &mask_where(|_, _| false), Some(&t)).is_err());
    t[77] = n_e - 1;
    check_tokens(&model, &t)?;
    let small = Tensor::zeros(&[1, 128, 128]);
    assert!(inspect(&model, &photo(), &small, None).is_err(), "mask of another size");
    Ok(())
}
