//! Times one transformer pass (`Transformer::forward`: B x 1024 x e_dim features -> B x 1024 x
//! vocab logits, spec §3) the way `benches/reference/onnx_transformer.py` times onnxruntime on
//! the same graph: two warm-up passes, then N timed passes; prints the minimum and the median,
//! the MACs of one pass (`model::cost`) and the GFLOP/s (2 per MAC) at both.
//!
//! Usage: `cargo run --release --example transformer_pass_timing -- [--preset tiny|paper]
//!         [--runs N] [--batch B] [--dump DIR]`
//! (defaults: tiny, 5 runs, batch 1). Threads: rayon's pool, i.e. `RAYON_NUM_THREADS` or every
//! core. Weights: a freshly initialised model (seed 7) whose transformer parameters, biases,
//! LayerNorms and position embedding included, all get seeded uniform noise in +-0.05 on top, so
//! that a correctness check exercises every parameter (at init the biases and `pos_emb` are 0
//! and the LayerNorms the identity). Input: seeded uniform features in [-1, 1].
//! `--dump DIR` also writes `DIR/weights.safetensors` (the whole model, `InpaintingModel::save`),
//! `DIR/input.npy` (the features) and `DIR/logits.npy` (the logits of the first timed pass), for
//! `onnx_transformer.py --weights DIR/weights.safetensors --check DIR`.

use fdm::autograd::Tape;
use fdm::model::cost::transformer_pass_macs;
use fdm::model::inpainting::InpaintingModel;
use fdm::model::presets::ModelConfig;
use fdm::testing::random_vec;
use fdm::Tensor;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

struct Args {
    preset: String,
    runs: usize,
    batch: usize,
    dump: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        preset: "tiny".into(),
        runs: 5,
        batch: 1,
        dump: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--preset" => a.preset = value()?,
            "--runs" => a.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--batch" => a.batch = value()?.parse().map_err(|e| format!("--batch: {e}"))?,
            "--dump" => a.dump = Some(PathBuf::from(value()?)),
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    if a.runs == 0 || a.batch == 0 {
        return Err("--runs and --batch must be at least 1".into());
    }
    Ok(a)
}

/// Add seeded uniform noise in +-0.05 to every transformer parameter (`generator.*`).
fn perturb_transformer(model: &mut InpaintingModel) -> fdm::Result<()> {
    let params: Vec<_> = model
        .store
        .iter()
        .filter(|(_, name, _)| name.starts_with("generator."))
        .map(|(id, _, t)| (id, t.clone()))
        .collect();
    for (i, (id, t)) in params.into_iter().enumerate() {
        let noise = Tensor::from_vec(
            random_vec(1000 + i as u64, t.numel(), -0.05, 0.05),
            t.shape(),
        )?;
        model.store.set(id, fdm::ops::binary::add(&t, &noise)?)?;
    }
    Ok(())
}

/// Write a C-order little-endian f32 array as `.npy` (format version 1.0).
fn write_npy(path: &Path, t: &Tensor) -> std::io::Result<()> {
    let dims: Vec<String> = t.shape().iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // magic (6) + version (2) + header length (2) + header + '\n' is a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(b"\x93NUMPY\x01\x00")?;
    f.write_all(&(header.len() as u16).to_le_bytes())?;
    f.write_all(header.as_bytes())?;
    for x in t.to_vec_f32().map_err(std::io::Error::other)? {
        f.write_all(&x.to_le_bytes())?;
    }
    f.flush()
}

fn main() -> fdm::Result<()> {
    let args = parse_args().map_err(fdm::Error::msg)?;
    let cfg = ModelConfig::by_name(&args.preset)?;
    let mut model = InpaintingModel::new(&cfg, 7)?;
    perturb_transformer(&mut model)?;
    let tc = &cfg.transformer;
    let shape = [args.batch, tc.seq_len, tc.embed_dim];
    let input = Tensor::from_vec(random_vec(1, shape.iter().product(), -1.0, 1.0), &shape)?;
    let tape = Tape::no_grad();
    let params = model.store.bind(&tape, |_| false);
    let x = tape.constant(input.clone());
    let pass = || {
        model
            .transformer
            .forward(&tape, &params, &x)
            .map(|v| v.value().clone())
    };
    pass()?;
    pass()?;
    let mut secs = Vec::with_capacity(args.runs);
    let mut first = None;
    for _ in 0..args.runs {
        let t0 = Instant::now();
        let logits = pass()?;
        secs.push(t0.elapsed().as_secs_f64());
        first.get_or_insert(logits);
    }
    secs.sort_by(|a, b| a.total_cmp(b));
    let (min, median) = (secs[0], secs[secs.len() / 2]);
    let macs = transformer_pass_macs(&cfg).total() as f64 * args.batch as f64;
    println!(
        "ours {} batch {} threads {} runs {}: min {:.2} ms median {:.2} ms | {:.2} GMACs/pass | {:.1} GFLOP/s at min, {:.1} at median",
        args.preset,
        args.batch,
        rayon::current_num_threads(),
        args.runs,
        min * 1e3,
        median * 1e3,
        macs / 1e9,
        2.0 * macs / min / 1e9,
        2.0 * macs / median / 1e9
    );
    if let Some(dir) = args.dump {
        std::fs::create_dir_all(&dir)?;
        model.save(dir.join("weights.safetensors"))?;
        write_npy(&dir.join("input.npy"), &input)?;
        write_npy(&dir.join("logits.npy"), first.as_ref().expect("runs >= 1"))?;
        println!(
            "wrote {}/{{weights.safetensors,input.npy,logits.npy}}",
            dir.display()
        );
    }
    Ok(())
}
