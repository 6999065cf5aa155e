//! How much of a photo the codec renders from its features alone, with no reference pixels (the
//! decoder's own path, which is what paints a hole): the decoder given (a) the encoder's
//! continuous features, (b) their quantisation (each patch's nearest code of the unmasked half,
//! the "ideal tokens"), (c) the quantisation plus FDM's correction with every patch marked
//! masked. Reports, on the 0-255 scale over the photos, the mean absolute error and its chroma
//! part (each pixel's RGB minus its own mean), and the linear colour map fitted from the photo's
//! RGB to the decoded RGB (identity = colours kept; off-diagonal weight = channels mixed).
//!
//! Run: `cargo run --release --example unguided_decode -- WEIGHTS SHEET.png PHOTO...`; the sheet
//! shows the first photo and its three decodings side by side.
use fdm::autograd::Tape;
use fdm::io::image::{load_image, save_png};
use fdm::model::inpainting::InpaintingModel;
use fdm::model::masks::denormalise;
use fdm::ops::{binary, concat};
use fdm::Tensor;

const KINDS: [&str; 3] = ["continuous", "quantised", "quantised + FDM"];

/// Sums for the mean absolute error, its chroma part, and the normal equations of the fit
/// decoded_c = sum_k a_ck photo_k + b_c.
#[derive(Default)]
struct Stats {
    abs: f64,
    chroma: f64,
    pixels: f64,
    xtx: [[f64; 4]; 4],
    xty: [[f64; 3]; 4],
}

impl Stats {
    fn add(&mut self, photo: &[f32], decoded: &[f32]) {
        let n = photo.len() / 3;
        for i in 0..n {
            let p = [
                photo[i] as f64,
                photo[n + i] as f64,
                photo[2 * n + i] as f64,
            ];
            let d = [
                decoded[i] as f64,
                decoded[n + i] as f64,
                decoded[2 * n + i] as f64,
            ];
            let (pm, dm) = ((p[0] + p[1] + p[2]) / 3.0, (d[0] + d[1] + d[2]) / 3.0);
            for c in 0..3 {
                self.abs += (d[c] - p[c]).abs() / 3.0;
                self.chroma += ((d[c] - dm) - (p[c] - pm)).abs() / 3.0;
            }
            let x = [p[0], p[1], p[2], 1.0];
            for r in 0..4 {
                for c in 0..4 {
                    self.xtx[r][c] += x[r] * x[c];
                }
                for (acc, dc) in self.xty[r].iter_mut().zip(d) {
                    *acc += x[r] * dc;
                }
            }
        }
        self.pixels += n as f64;
    }

    /// The fitted map, row c = (a_cR, a_cG, a_cB, b_c), by Gauss-Jordan on the 4x4 system.
    fn colour_map(&self) -> [[f64; 4]; 3] {
        let mut m: Vec<Vec<f64>> = (0..4)
            .map(|r| [&self.xtx[r][..], &self.xty[r][..]].concat())
            .collect();
        for col in 0..4 {
            let pivot = (col..4)
                .max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))
                .unwrap_or(col);
            m.swap(col, pivot);
            let d = m[col][col];
            m[col].iter_mut().for_each(|v| *v /= d);
            for r in (0..4).filter(|&r| r != col) {
                let f = m[r][col];
                let row = m[col].clone();
                m[r].iter_mut().zip(row).for_each(|(v, w)| *v -= f * w);
            }
        }
        let mut out = [[0.0; 4]; 3];
        for (c, row) in out.iter_mut().enumerate() {
            for (k, v) in row.iter_mut().enumerate() {
                *v = m[k][4 + c];
            }
        }
        out
    }
}

fn main() -> fdm::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: unguided_decode WEIGHTS SHEET.png PHOTO...");
        std::process::exit(2);
    }
    let model = InpaintingModel::load(&args[1], None)?;
    let (s, g) = (model.cfg.image_size, model.cfg.grid());
    let tape = Tape::no_grad();
    let params = model.store.bind(&tape, |_| false);
    let mut stats: Vec<Stats> = KINDS.iter().map(|_| Stats::default()).collect();
    for (i, path) in args[3..].iter().enumerate() {
        let photo = load_image(path)
            .map_err(|e| fdm::Error::msg(format!("{path}: {e}")))?
            .tensor
            .reshape(&[1, 3, s, s])?;
        let feats = model
            .codec
            .get_features(&tape, &params, &model.store, &photo, None)?;
        let quantised = model
            .codec
            .codebook_features(&model.store, &feats.tokens, 1, (g, g))?;
        let all_masked = tape.constant(Tensor::from_vec(vec![1.0; g * g], &[1, 1, g, g])?);
        let correction = model.fdm.forward(
            &tape,
            &params,
            &tape.constant(quantised.clone()),
            &all_masked,
        )?;
        let corrected = binary::add(&quantised, correction.value())?;
        let mut decoded = Vec::new();
        for feature in [feats.feature.value().clone(), quantised, corrected] {
            let out = model
                .codec
                .decode_unguided(&tape, &params, &tape.constant(feature))?;
            decoded.push(denormalise(out.value())?);
        }
        let p = photo.to_vec_f32()?;
        for (st, d) in stats.iter_mut().zip(&decoded) {
            st.add(&p, &d.to_vec_f32()?);
        }
        if i == 0 {
            let row = concat::concat(&[&photo, &decoded[0], &decoded[1], &decoded[2]], 3)?;
            save_png(&row.reshape(&[3, s, 4 * s])?, &args[2])
                .map_err(|e| fdm::Error::msg(e.to_string()))?;
        }
    }
    println!(
        "{} photos, no reference pixels (0-255 scale):",
        args.len() - 3
    );
    for (kind, st) in KINDS.iter().zip(&stats) {
        println!(
            "  {kind:<16} mean abs. error {:6.2}   chroma {:6.2}",
            st.abs / st.pixels,
            st.chroma / st.pixels
        );
        for (c, row) in ["R", "G", "B"].iter().zip(st.colour_map()) {
            println!(
                "      decoded {c} = {:+.3} R {:+.3} G {:+.3} B {:+7.2}",
                row[0], row[1], row[2], row[3]
            );
        }
    }
    Ok(())
}
