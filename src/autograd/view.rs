//! Views on the tape: reshape and permute. Their backward rules are the inverse view of the
//! output gradient (made dense so later rules can read it as a flat slice).

use super::tape::{Tape, Var};
use crate::error::Result;

pub fn reshape(tape: &Tape, x: &Var, shape: &[usize]) -> Result<Var> {
    let out = x.value().reshape(shape)?;
    let in_shape = x.shape().to_vec();
    Ok(tape.record(out, &[x], Box::new(move |g| Ok(vec![Some(g.reshape(&in_shape)?)]))))
}

pub fn permute(tape: &Tape, x: &Var, dims: &[usize]) -> Result<Var> {
    let out = x.value().permute(dims)?.contiguous()?;
    let mut inverse = vec![0; dims.len()];
    for (i, &d) in dims.iter().enumerate() {
        inverse[d] = i;
    }
    Ok(tape.record(out, &[x], Box::new(move |g| Ok(vec![Some(g.permute(&inverse)?.contiguous()?)]))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;

    #[test]
    fn permute_backward_is_inverse_permute_cpu() -> Result<()> {
        let t = Tape::new();
        let x = t.var(Tensor::from_vec((0..24).map(|i| i as f32).collect(), &[2, 3, 4])?);
        let y = permute(&t, &x, &[2, 0, 1])?; // [4, 2, 3]
        assert_eq!(y.shape(), &[4, 2, 3]);
        // y[k, i, j] = x[i, j, k]
        assert_eq!(y.value().to_vec_f32()?[1 * 6 + 1 * 3 + 2], (1 * 12 + 2 * 4 + 1) as f32);
        let seed: Vec<f32> = (0..24).map(|i| 100.0 + i as f32).collect();
        let g = t.backward_with(&y, Tensor::from_vec(seed.clone(), &[4, 2, 3])?)?;
        let gx = g.expect(&x, "x")?.to_vec_f32()?;
        // dL/dx[i, j, k] = seed at y[k, i, j]
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..4 {
                    assert_eq!(gx[i * 12 + j * 4 + k], seed[k * 6 + i * 3 + j]);
                }
            }
        }
        Ok(())
    }

    #[test]
    fn reshape_backward_restores_shape_cpu() -> Result<()> {
        let t = Tape::new();
        let x = t.var(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?);
        let y = reshape(&t, &x, &[3, 2])?;
        let g = t.backward_with(&y, Tensor::from_vec(vec![6.0, 5.0, 4.0, 3.0, 2.0, 1.0], &[3, 2])?)?;
        let gx = g.expect(&x, "x")?;
        assert_eq!(gx.shape(), &[2, 3]);
        assert_eq!(gx.to_vec_f32()?, vec![6.0, 5.0, 4.0, 3.0, 2.0, 1.0]);
        Ok(())
    }
}
