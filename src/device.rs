//! Where a tensor lives. `Device::best()` picks CUDA when it is usable, else the CPU, and says why.

use crate::cuda::CudaDevice;

#[derive(Clone, Debug)]
pub enum Device {
    Cpu,
    Cuda(CudaDevice),
}

impl Device {
    pub fn is_cpu(&self) -> bool {
        matches!(self, Device::Cpu)
    }
    pub fn name(&self) -> String {
        match self {
            Device::Cpu => "cpu".to_string(),
            Device::Cuda(d) => d.name(),
        }
    }
    /// CUDA device 0 when the probe finds a usable driver, device and NVRTC; otherwise the CPU,
    /// with the reason the probe gave (never panics on machines without CUDA).
    pub fn best() -> (Device, String) {
        match crate::cuda::probe() {
            Ok(dev) => {
                let why = format!("using {}", dev.name());
                (Device::Cuda(dev), why)
            }
            Err(reason) => (Device::Cpu, format!("using the CPU: {reason}")),
        }
    }
    pub fn same_as(&self, other: &Device) -> bool {
        match (self, other) {
            (Device::Cpu, Device::Cpu) => true,
            (Device::Cuda(a), Device::Cuda(b)) => a.same_as(b),
            _ => false,
        }
    }
}
