//! The data-parallel building blocks without training (`train::dist`, `dist_tcp`, `launch`):
//! the host transport's collectives across ranks in threads (identical bytes on every rank,
//! equal to the sequential reduction in rank order), its failures (a rank that leaves, ranks
//! that disagree, a rank that never connects: errors, never a hang), the batch split, and the
//! launcher's command line.

use fdm::cuda::CudaDevice;
use fdm::train::cli::TrainArgs;
use fdm::train::data::{BatchSource, Dataset};
use fdm::train::dist::{shard_range, Communicator, ReduceOp};
use fdm::train::dist_tcp::{start_hub, TcpComm};
use fdm::train::launch::to_argv;
use fdm::train::{Phase, TrainConfig};
use fdm::{Device, Tensor};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Run `body(comm)` on `world` ranks, each in its own thread with its own connection.
fn on_ranks<T: Send + 'static>(
    world: usize,
    body: impl Fn(TcpComm) -> T + Send + Sync + 'static,
) -> (Vec<T>, fdm::Result<()>) {
    let hub = start_hub(world, TIMEOUT).unwrap();
    let addr = hub.addr().to_string();
    let body = Arc::new(body);
    let threads: Vec<_> = (0..world)
        .map(|r| {
            let (addr, body) = (addr.clone(), body.clone());
            std::thread::spawn(move || body(TcpComm::connect(&addr, r, world, TIMEOUT).unwrap()))
        })
        .collect();
    let out = threads.into_iter().map(|t| t.join().unwrap()).collect();
    (out, hub.join())
}

/// Rank r's inputs: three tensors of different shapes, one on the emulated CUDA device.
fn inputs(rank: usize) -> Vec<Tensor> {
    let v = |seed: u64, n: usize| fdm::testing::random_vec(seed * 10 + rank as u64, n, -3.0, 3.0);
    vec![
        Tensor::from_vec(v(1, 7), &[7]).unwrap(),
        Tensor::from_vec(v(2, 6), &[2, 3]).unwrap(),
        Tensor::from_vec(v(3, 5), &[5])
            .unwrap()
            .to_device(&Device::Cuda(CudaDevice::emulated()))
            .unwrap(),
    ]
}

#[test]
fn dist_all_reduce_three_ranks_matches_the_sequential_reduction_cpu() {
    let world = 3;
    let (results, hub) = on_ranks(world, move |c| {
        let mut sum = inputs(c.rank());
        c.all_reduce(&mut sum, ReduceOp::Sum).unwrap();
        let mut mean = inputs(c.rank());
        c.all_reduce(&mut mean, ReduceOp::Mean).unwrap();
        let mut scalars = [c.rank() as f64 + 0.25, 1.0];
        c.all_reduce_scalars(&mut scalars, ReduceOp::Mean).unwrap();
        let mut lead = inputs(c.rank());
        c.broadcast(&mut lead).unwrap();
        let mut bytes = format!("from rank {}", c.rank()).into_bytes();
        c.broadcast_bytes(&mut bytes).unwrap();
        c.barrier().unwrap();
        let on_emu = matches!(sum[2].device(), Device::Cuda(d) if d.is_emulated());
        let flat = |ts: &[Tensor]| -> Vec<Vec<f32>> {
            ts.iter().map(|t| t.to_vec_f32().unwrap()).collect()
        };
        (
            flat(&sum),
            flat(&mean),
            scalars,
            flat(&lead),
            bytes,
            on_emu,
            sum[1].shape().to_vec(),
        )
    });
    hub.unwrap();
    // The reduction the transport promises: f64 sums in rank order, rounded once to f32.
    let all: Vec<Vec<Tensor>> = (0..world).map(inputs).collect();
    for k in 0..3 {
        let per_rank: Vec<Vec<f32>> = all.iter().map(|ts| ts[k].to_vec_f32().unwrap()).collect();
        let n = per_rank[0].len();
        let sum64: Vec<f64> = (0..n)
            .map(|i| per_rank.iter().map(|v| v[i] as f64).sum())
            .collect();
        let sum: Vec<f32> = sum64.iter().map(|&s| s as f32).collect();
        let mean: Vec<f32> = sum64.iter().map(|&s| (s / world as f64) as f32).collect();
        for (r, got) in results.iter().enumerate() {
            assert_eq!(got.0[k], sum, "sum of tensor {k} on rank {r}");
            assert_eq!(got.1[k], mean, "mean of tensor {k} on rank {r}");
            assert_eq!(got.3[k], per_rank[0], "broadcast of tensor {k} on rank {r}");
            // The plain f32 sum differs from the f64-accumulated one by at most a rounding.
            let f32_sum: Vec<f32> = (0..n)
                .map(|i| per_rank.iter().map(|v| v[i]).sum())
                .collect();
            fdm::testing::assert_close(
                &got.0[k],
                &f32_sum,
                fdm::testing::TOL_CPU_F32,
                "sum vs f32 sum",
            );
        }
    }
    for (r, got) in results.iter().enumerate() {
        assert_eq!(
            got.2,
            [(0.25 + 1.25 + 2.25) / 3.0, 1.0],
            "scalars on rank {r}"
        );
        assert_eq!(got.4, b"from rank 0", "bytes on rank {r}");
        assert!(
            got.5,
            "rank {r}: a reduced emulated-CUDA tensor stays on its device"
        );
        assert_eq!(got.6, vec![2, 3], "rank {r}: shapes are kept");
    }
}

#[test]
fn dist_a_rank_that_leaves_stops_the_others_with_an_error_cpu() {
    let (results, hub) = on_ranks(3, |c| {
        if c.rank() == 2 {
            drop(c); // fails before the collective
            return Ok(());
        }
        let mut v = [1.0];
        c.all_reduce_scalars(&mut v, ReduceOp::Sum)
            .map_err(|e| e.to_string())
    });
    for r in 0..2 {
        let e = results[r].as_ref().unwrap_err();
        assert!(
            e.contains("rank(s) 2 left") && e.contains(&format!("rank {r}")),
            "{e}"
        );
    }
    assert!(hub.unwrap_err().to_string().contains("rank(s) 2 left"));
}

#[test]
fn dist_ranks_that_disagree_get_an_error_cpu() {
    let (results, hub) = on_ranks(2, |c| {
        let mut v = vec![1.0; 1 + c.rank()]; // different lengths: not the same training
        c.all_reduce_scalars(&mut v, ReduceOp::Sum)
            .map_err(|e| e.to_string())
    });
    for e in &results {
        let e = e.as_ref().unwrap_err();
        assert!(e.contains("disagree"), "{e}");
    }
    assert!(hub.is_err());
}

#[test]
fn dist_a_rank_that_never_connects_times_out_with_an_error_cpu() {
    let hub = start_hub(2, Duration::from_secs(2)).unwrap();
    let c = TcpComm::connect(&hub.addr().to_string(), 0, 2, Duration::from_secs(10)).unwrap();
    let e = c.barrier().unwrap_err().to_string();
    assert!(e.contains("rank(s) 1 did not connect within 2 s"), "{e}");
    assert!(hub.join().is_err());
    // And no hub at all: connecting gives up after its timeout.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let e = TcpComm::connect(&free.to_string(), 0, 2, Duration::from_millis(300))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("cannot reach the data-parallel hub"), "{e}");
}

fn photos() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/photos")
}

#[test]
fn dist_shards_of_a_batch_are_its_items_in_order_cpu() {
    assert_eq!(shard_range(4, 1, 2).unwrap(), (2, 4));
    assert_eq!(shard_range(6, 2, 3).unwrap(), (4, 6));
    let e = shard_range(3, 0, 2).unwrap_err().to_string();
    assert!(e.contains("3 does not split over 2 ranks"), "{e}");
    assert!(shard_range(4, 2, 2).is_err());
    // The two halves of each step's batch are exactly the single-process batch's items.
    let mut cfg = TrainConfig::tiny(Phase::Phase1a);
    cfg.batch_size = 4;
    let ds = Arc::new(Dataset::scan(&photos(), 0.1).unwrap());
    let whole = BatchSource::new(ds.clone(), &cfg, 8).unwrap();
    let halves: Vec<BatchSource> = (0..2)
        .map(|r| {
            BatchSource::new(ds.clone(), &cfg, 8)
                .unwrap()
                .shard(r, 2)
                .unwrap()
        })
        .collect();
    for step in [0, 1] {
        let full = whole.batch(step).unwrap();
        let parts: Vec<_> = halves.iter().map(|h| h.batch(step).unwrap()).collect();
        let joined: Vec<usize> = parts.iter().flat_map(|p| p.indices.clone()).collect();
        assert_eq!(joined, full.indices, "step {step}");
        let cat = |f: &dyn Fn(&fdm::train::data::Batch) -> &Tensor| -> Vec<f32> {
            parts
                .iter()
                .flat_map(|p| f(p).to_vec_f32().unwrap())
                .collect()
        };
        assert_eq!(
            cat(&|b| &b.images),
            full.images.to_vec_f32().unwrap(),
            "images, step {step}"
        );
        assert_eq!(
            cat(&|b| &b.masks),
            full.masks.to_vec_f32().unwrap(),
            "masks, step {step}"
        );
        assert_eq!(
            cat(&|b| &b.erase_masks),
            full.erase_masks.to_vec_f32().unwrap(),
            "erase masks, step {step}"
        );
    }
}

#[derive(clap::Parser)]
struct Wrapper {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    Train(TrainArgs),
}

#[test]
fn dist_launcher_command_line_parses_back_to_the_same_arguments_cpu() {
    use clap::Parser;
    let full = TrainArgs {
        phase: "phase3".into(),
        data: "photos dir".into(),
        preset: "paper".into(),
        config: Some("c.json".into()),
        out: Some("out".into()),
        init: Some("w.safetensors".into()),
        resume: Some("run".into()),
        allow_data_change: true,
        steps: Some(7),
        batch: Some(4),
        seed: Some(3),
        sample_every: Some(2),
        checkpoint_every: Some(5),
        masks: Some("masks".into()),
        vgg: Some("vgg.safetensors".into()),
        device: fdm::cli::device::DeviceArg::CudaEmu,
        gpus: 1,
        ranks: Some(2),
        dist_timeout: Some(9),
        rank: Some(1),
        dist_addr: Some("127.0.0.1:5".into()),
        no_progress: true,
        progress_every: Some(12.5),
        overwrite: false,
        compare_sampler: true,
        inject_nan_at: Some(4),
        inject_nan_rank: Some(1),
    };
    let minimal = TrainArgs {
        phase: "phase2".into(),
        data: "d".into(),
        preset: "tiny".into(),
        gpus: 2,
        ..Default::default()
    };
    // --overwrite excludes --resume, so it travels in a run of its own.
    let fresh = TrainArgs { overwrite: true, ..minimal.clone() };
    for args in [full, minimal, fresh] {
        let mut argv = vec![std::ffi::OsString::from("fdm")];
        argv.extend(to_argv(&args));
        let Cmd::Train(back) = Wrapper::try_parse_from(&argv).unwrap().cmd;
        assert_eq!(format!("{back:?}"), format!("{args:?}"));
    }
}
