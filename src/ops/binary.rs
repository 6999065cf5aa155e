//! Element-wise binary ops with numpy broadcasting (placeholder: filled by the element-wise work).
use crate::error::Result;
use crate::tensor::Tensor;

/// a + b with broadcasting.
pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let shape = crate::shape::broadcast_shape("add", a.shape(), b.shape())?;
    super::check_same_device("add", a, b)?;
    if !super::is_cpu(a) {
        return Err(super::no_cuda_kernel("add"));
    }
    let x = a.broadcast_as(&shape)?.contiguous()?;
    let y = b.broadcast_as(&shape)?.contiguous()?;
    let out: Vec<f32> = x.cpu_f32()?.iter().zip(y.cpu_f32()?).map(|(p, q)| p + q).collect();
    Tensor::from_vec(out, &shape)
}
