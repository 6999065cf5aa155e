//! Parameter initialisation (spec §0, §3.4): PyTorch's defaults for the codec and FDM layers
//! (Kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and
//! biases alike) and N(0, 0.02) for the transformer and discriminator.

use crate::rng::Rng;
use crate::tensor::Tensor;

/// PyTorch's fan-in of a weight tensor: `shape[1] * prod(shape[2..])`. For ConvTranspose2d
/// weights `[in, out, kh, kw]` this is `out * kh * kw`, as in PyTorch (a known quirk).
pub fn fan_in(shape: &[usize]) -> usize {
    shape.get(1).copied().unwrap_or(1) * shape.iter().skip(2).product::<usize>()
}

/// U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for Linear/Conv weights and biases.
pub fn torch_default(rng: &mut Rng, shape: &[usize], fan_in: usize) -> Tensor {
    let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
    uniform(rng, shape, -bound, bound)
}

pub fn uniform(rng: &mut Rng, shape: &[usize], lo: f32, hi: f32) -> Tensor {
    let mut v = vec![0.0; shape.iter().product()];
    rng.fill_uniform(&mut v, lo, hi);
    Tensor::from_vec(v, shape).expect("length matches shape by construction")
}

pub fn normal(rng: &mut Rng, shape: &[usize], mean: f32, std: f32) -> Tensor {
    let mut v = vec![0.0; shape.iter().product()];
    rng.fill_normal(&mut v, mean, std);
    Tensor::from_vec(v, shape).expect("length matches shape by construction")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fan_in_follows_pytorch_cpu() {
        assert_eq!(fan_in(&[256, 192]), 192); // Linear [out, in]
        assert_eq!(fan_in(&[128, 256, 3, 3]), 2304); // Conv [out, in, kh, kw]
        assert_eq!(fan_in(&[256, 128, 4, 4]), 2048); // ConvTranspose [in, out, kh, kw]: out*k*k
    }

    #[test]
    fn torch_default_respects_bound_cpu() {
        let t = torch_default(&mut Rng::new(0), &[64, 100], 100);
        let v = t.to_vec_f32().unwrap();
        assert!(v.iter().all(|x| x.abs() <= 0.1));
        assert!(v.iter().any(|x| x.abs() > 0.09), "values should fill the range");
    }
}
