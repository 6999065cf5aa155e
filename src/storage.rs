//! Flat element storage. Dispatch is by `enum Storage { Cpu, Cuda }` (no backend trait tower):
//! every op matches once on the storage and calls the CPU loops or the CUDA launcher.

use crate::cuda::CudaStorage;
use crate::dtype::DType;
use half::{bf16, f16};

#[derive(Clone, Debug)]
pub enum CpuStorage {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    U32(Vec<u32>),
}

impl CpuStorage {
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F16(_) => DType::F16,
            CpuStorage::BF16(_) => DType::BF16,
            CpuStorage::U32(_) => DType::U32,
        }
    }
    pub fn len(&self) -> usize {
        match self {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::F16(v) => v.len(),
            CpuStorage::BF16(v) => v.len(),
            CpuStorage::U32(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn zeros(dtype: DType, n: usize) -> Self {
        match dtype {
            DType::F32 => CpuStorage::F32(vec![0.0; n]),
            DType::F16 => CpuStorage::F16(vec![f16::ZERO; n]),
            DType::BF16 => CpuStorage::BF16(vec![bf16::ZERO; n]),
            DType::U32 => CpuStorage::U32(vec![0; n]),
        }
    }
    /// The elements of `layout` in row-major order of its shape (a dense copy of the view).
    /// Where the innermost dim is unit-stride (narrowed last dims, permutes that keep it), each of
    /// its rows is copied as one slice instead of element by element.
    pub fn gather_layout(&self, layout: &crate::shape::Layout) -> Self {
        let r = layout.rank();
        if r == 0 || layout.strides[r - 1] != 1 || layout.shape[r - 1] < 2 {
            return self.gather(layout.indices());
        }
        let run = layout.shape[r - 1];
        let rows = crate::shape::Layout { shape: layout.shape[..r - 1].to_vec(), strides: layout.strides[..r - 1].to_vec(), offset: layout.offset };
        fn copy_runs<T: Copy>(v: &[T], rows: &crate::shape::Layout, run: usize, n: usize) -> Vec<T> {
            let mut out = Vec::with_capacity(n);
            for start in rows.indices() {
                out.extend_from_slice(&v[start..start + run]);
            }
            out
        }
        let n = layout.numel();
        match self {
            CpuStorage::F32(v) => CpuStorage::F32(copy_runs(v, &rows, run, n)),
            CpuStorage::F16(v) => CpuStorage::F16(copy_runs(v, &rows, run, n)),
            CpuStorage::BF16(v) => CpuStorage::BF16(copy_runs(v, &rows, run, n)),
            CpuStorage::U32(v) => CpuStorage::U32(copy_runs(v, &rows, run, n)),
        }
    }
    /// Gather the elements at the given flat indices (the order of a layout walk).
    pub fn gather(&self, idx: impl Iterator<Item = usize>) -> Self {
        match self {
            CpuStorage::F32(v) => CpuStorage::F32(idx.map(|i| v[i]).collect()),
            CpuStorage::F16(v) => CpuStorage::F16(idx.map(|i| v[i]).collect()),
            CpuStorage::BF16(v) => CpuStorage::BF16(idx.map(|i| v[i]).collect()),
            CpuStorage::U32(v) => CpuStorage::U32(idx.map(|i| v[i]).collect()),
        }
    }
    /// Values as f32 (u32 indices are converted exactly below 2^24).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self {
            CpuStorage::F32(v) => v.clone(),
            CpuStorage::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            CpuStorage::BF16(v) => v.iter().map(|x| x.to_f32()).collect(),
            CpuStorage::U32(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
    pub fn from_f32(dtype: DType, v: &[f32]) -> Self {
        match dtype {
            DType::F32 => CpuStorage::F32(v.to_vec()),
            DType::F16 => CpuStorage::F16(v.iter().map(|&x| f16::from_f32(x)).collect()),
            DType::BF16 => CpuStorage::BF16(v.iter().map(|&x| bf16::from_f32(x)).collect()),
            DType::U32 => CpuStorage::U32(v.iter().map(|&x| x as u32).collect()),
        }
    }
}

#[derive(Debug)]
pub enum Storage {
    Cpu(CpuStorage),
    Cuda(CudaStorage),
}

impl Storage {
    pub fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(s) => s.dtype(),
            Storage::Cuda(s) => s.dtype(),
        }
    }
}
