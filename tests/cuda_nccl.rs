//! The NCCL transport of `fdm train --gpus N` (src/train/dist_nccl.rs) as a group of one on one
//! GPU: the machines this is tested on have at most one GPU, and NCCL refuses two ranks on the
//! same device, so the group-of-N equality with one process (tests/train_dist.rs) runs on the host
//! transport only. This exercises the NCCL code itself: the launcher's `join` builds the
//! communicator (unique id handed over through the hub, `ncclCommInitRank` on the device's
//! stream), and every collective, all-reduce (sum and mean), broadcast, the scalar and byte
//! collectives and the barrier, returns its input unchanged, in fresh buffers, leaving the inputs
//! alone. A group of one sums one value, so the results must be bit-identical.
//!
//! Without a GPU: `SKIP (no CUDA device)` (a failure with FDM_REQUIRE_CUDA=1). Without the NCCL
//! library: `SKIP (no NCCL library ...)`, a failure with FDM_REQUIRE_NCCL=1 (scripts/gpu-tier.sh
//! sets it where it found the library).

use fdm::cli::device::DeviceArg;
use fdm::testing::{cuda_device_or_skip, random_vec};
use fdm::train::dist::ReduceOp;
use fdm::train::dist_nccl::nccl_available;
use fdm::train::dist_tcp::start_hub;
use fdm::train::launch::{join, Plan, Transport};
use fdm::{Device, Tensor};
use std::time::Duration;

/// Whether NCCL can be loaded; prints the skip line when not (panics with FDM_REQUIRE_NCCL=1).
fn nccl_or_skip(test: &str) -> bool {
    match nccl_available() {
        Ok(()) => true,
        Err(why) if std::env::var("FDM_REQUIRE_NCCL").is_ok_and(|v| v == "1") => {
            panic!("{test}: FDM_REQUIRE_NCCL=1 but {why}")
        }
        Err(why) => {
            println!("{test}: SKIP (no NCCL library: {why})");
            false
        }
    }
}

/// Host values and device tensors of the shapes a gradient list has (a bias, a small matrix,
/// one of the transformer's 512 x 1536 stacked projections, a single value).
fn device_tensors(device: &Device) -> (Vec<Vec<f32>>, Vec<Tensor>) {
    let shapes: [&[usize]; 4] = [&[512], &[3, 5], &[512, 1536], &[1]];
    let values: Vec<Vec<f32>> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| random_vec(40 + i as u64, s.iter().product(), -3.0, 3.0))
        .collect();
    let tensors = shapes
        .iter()
        .zip(&values)
        .map(|(s, v)| Tensor::from_vec(v.clone(), s).unwrap().to_device(device).unwrap())
        .collect();
    (values, tensors)
}

/// Every tensor is on `device`, has its shape and holds exactly `values`.
fn assert_holds(what: &str, device: &Device, tensors: &[Tensor], originals: &[Tensor], values: &[Vec<f32>]) {
    assert_eq!(tensors.len(), values.len(), "{what}: one result per tensor");
    for (i, ((t, o), v)) in tensors.iter().zip(originals).zip(values).enumerate() {
        assert!(t.device().same_as(device), "{what}: tensor {i} left the GPU");
        assert_eq!(t.shape(), o.shape(), "{what}: tensor {i} shape");
        let got = t.to_vec_f32().unwrap();
        let first_diff = got.iter().zip(v).position(|(a, b)| a.to_bits() != b.to_bits());
        assert_eq!(first_diff, None, "{what}: tensor {i} changed (a group of one must return its input)");
    }
}

#[test]
fn gpu_nccl_group_of_one_collectives_return_their_input() {
    let test = "cuda_nccl::gpu_nccl_group_of_one_collectives_return_their_input";
    let Some(_) = cuda_device_or_skip(test) else { return };
    if !nccl_or_skip(test) {
        return;
    }
    let timeout = Duration::from_secs(60);
    let hub = start_hub(1, timeout).unwrap();
    let plan = Plan { world: 1, transport: Transport::Nccl };
    let (comm, device) = join(&plan, 0, &hub.addr().to_string(), timeout, DeviceArg::Cuda).unwrap();
    assert!(matches!(device, Device::Cuda(_)), "a --gpus rank trains on a GPU, got {}", device.name());
    assert_eq!((comm.rank(), comm.world()), (0, 1));

    let (values, originals) = device_tensors(&device);
    for op in [ReduceOp::Sum, ReduceOp::Mean] {
        let mut t = originals.clone();
        comm.all_reduce(&mut t, op).unwrap();
        assert_holds(&format!("all-reduce {op:?}"), &device, &t, &originals, &values);
    }
    let mut t = originals.clone();
    comm.broadcast(&mut t).unwrap();
    assert_holds("broadcast", &device, &t, &originals, &values);
    assert_holds("the inputs after the collectives", &device, &originals, &originals, &values);

    // Scalars, bytes and the barrier go through the host transport beside NCCL.
    let mut scalars = [1.5f64, -2.25, 1e-300];
    comm.all_reduce_scalars(&mut scalars, ReduceOp::Mean).unwrap();
    assert_eq!(scalars, [1.5, -2.25, 1e-300]);
    let mut bytes = b"rank 0".to_vec();
    comm.broadcast_bytes(&mut bytes).unwrap();
    assert_eq!(bytes, b"rank 0");
    comm.barrier().unwrap();

    // Host tensors in a --gpus group take the host transport, with the same result.
    let host: Vec<Tensor> = originals.iter().map(|t| t.to_device(&Device::Cpu).unwrap()).collect();
    let mut t = host.clone();
    comm.all_reduce(&mut t, ReduceOp::Mean).unwrap();
    assert_holds("all-reduce of host tensors", &Device::Cpu, &t, &host, &values);

    drop(comm);
    hub.join().unwrap();
}
