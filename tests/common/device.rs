//! Helpers of the device tests (`cuda_dispatch*.rs`): seeded inputs on the CPU, moving them to a
//! CUDA device (emulated or real), and comparing a device result with the CPU result.

use fdm::cuda::CudaDevice;
use fdm::testing::{assert_close, random_vec, TOL_CUDA_F32};
use fdm::{Device, Tensor};

/// A CPU tensor of `shape` with values uniform in [lo, hi) from `seed`.
pub fn rand(seed: u64, shape: &[usize], lo: f32, hi: f32) -> Tensor {
    Tensor::from_vec(random_vec(seed, shape.iter().product(), lo, hi), shape).unwrap()
}

/// `t` moved to the CUDA device `dev`.
pub fn on(dev: &CudaDevice, t: &Tensor) -> Tensor {
    t.to_device(&Device::Cuda(dev.clone())).unwrap()
}

/// The device result (brought back) against the CPU result, same shape, TOL_CUDA_F32.
#[track_caller]
pub fn same(gpu: &Tensor, cpu: &Tensor, what: &str) {
    assert_eq!(gpu.shape(), cpu.shape(), "{what}: shape");
    assert!(!gpu.device().is_cpu(), "{what}: the result should stay on the device");
    assert_close(&gpu.to_vec_f32().unwrap(), &cpu.to_vec_f32().unwrap(), TOL_CUDA_F32, what);
}
