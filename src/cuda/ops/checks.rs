//! Argument checks and small host round trips shared by the launchers of the gather, image,
//! loss and optimiser kernels (the f32 twin, `check_f32`, lives in `cuda/launch.rs`).

use crate::cuda::launch::{check_dtype_len, device_ptr, run_on_device, Launch};
use crate::cuda::{CudaDevice, CudaStorage};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::storage::CpuStorage;

/// Checks before a launcher reads `n` u32 elements of a device buffer.
pub fn check_u32(op: &'static str, s: &CudaStorage, n: usize) -> Result<()> {
    check_dtype_len(op, s, DType::U32, n)
}

/// A device copy of host u32 values (indices chosen on the host).
pub fn upload_u32(dev: &CudaDevice, v: &[u32]) -> Result<CudaStorage> {
    dev.upload(&CpuStorage::U32(v.to_vec()))
}

/// The contents of a u32 device buffer (waits for the stream).
pub fn download_u32(s: &CudaStorage) -> Result<Vec<u32>> {
    match s.download()? {
        CpuStorage::U32(v) => Ok(v),
        other => Err(Error::DType {
            op: "download_u32",
            dtype: other.dtype(),
        }),
    }
}

/// Runs a launch whose first argument is a one-word u32 flag buffer that the kernel lowers with
/// atomicMin from 0xffffffff, and returns the flag (None when the kernel left it untouched).
/// `make` builds the launch from the flag's device address.
pub fn run_flag_launch(dev: &CudaDevice, make: impl FnOnce(u64) -> Launch) -> Result<Option<u32>> {
    let flag = upload_u32(dev, &[u32::MAX])?;
    run_on_device(dev, &make(device_ptr(&flag, 0)))?;
    let v = download_u32(&flag)?[0];
    Ok((v != u32::MAX).then_some(v))
}
