//! The `fdm` command line.
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "fdm", version, about = "PUT + FDM pluralistic image inpainting on a from-scratch tensor engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check the engine on this machine: which device is used, and a small autograd run.
    Selfcheck,
    /// Score generated images against ground truth: PSNR, SSIM, MAE, L1, LPIPS, diversity.
    Eval(fdm::metrics::eval::EvalArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Selfcheck => selfcheck(),
        Command::Eval(args) => fdm::metrics::eval::run(&args).map(|_| ()).map_err(Into::into),
    }
}

fn selfcheck() -> anyhow::Result<()> {
    let (_device, why) = fdm::Device::best();
    println!("device: {why}");
    let tape = fdm::autograd::Tape::new();
    let a = tape.var(fdm::Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3])?);
    let b = tape.var(fdm::Tensor::from_vec(vec![0.5, 0.5, 0.5], &[3])?);
    let s = fdm::ops::binary::add(a.value(), b.value())?;
    println!("engine: [1,2,3] + [0.5,0.5,0.5] = {:?}", s.to_vec_f32()?);
    Ok(())
}
