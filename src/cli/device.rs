//! `--device auto|cpu|cuda|cuda-emu`, shared by `fdm inpaint`, `profile`, `reproduce` and
//! `train`: the argument and the device it picks.

use crate::error::{Error, Result};
use crate::Device;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceArg {
    /// A CUDA GPU when one is usable (driver, device and NVRTC found), else the CPU.
    Auto,
    /// The CPU.
    // `Default` (for callers that build the arguments in code, e.g. tests) is the CPU; the
    // command line's default is `auto`.
    #[default]
    Cpu,
    /// A CUDA GPU; an error saying why when none is usable.
    Cuda,
    /// The CUDA backend with its kernels run on a CPU emulator of the CUDA execution model:
    /// checks the CUDA path on machines without a GPU (very slow).
    CudaEmu,
}

/// The device `d` names; `cuda` without a usable GPU is an error saying why. Prints one line
/// naming the device for `auto` and `cuda-emu`.
pub fn pick_device(d: DeviceArg) -> Result<Device> {
    match d {
        DeviceArg::Cpu => Ok(Device::Cpu),
        DeviceArg::Cuda => crate::cuda::probe()
            .map(Device::Cuda)
            .map_err(|why| Error::msg(format!("--device cuda: {why}"))),
        DeviceArg::CudaEmu => {
            println!("device: the emulated CUDA device (CUDA kernels run on a CPU emulator: for checking kernels, very slow)");
            Ok(Device::Cuda(crate::cuda::CudaDevice::emulated()))
        }
        DeviceArg::Auto => {
            let (device, why) = Device::best();
            println!("device: {why}");
            Ok(device)
        }
    }
}
