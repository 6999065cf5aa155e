//! Parameters of one Adam/AdamW update (spec §6.0-§6.1), in the form the element loop (CPU or
//! kernel) reads: the host folds the step-dependent scalars (bias corrections) in f64 exactly
//! as `torch.optim.Adam` does in Python, then rounds them to f32 the way PyTorch hands Python
//! scalars to an f32 tensor op.

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamParams {
    pub n: u32,
    /// 1: AdamW (param *= 1 - lr*wd before the update); 0: Adam (grad += wd * param).
    pub decoupled: u32,
    pub beta2: f32,
    /// `1 - beta1` (the lerp weight of `exp_avg.lerp_(grad, 1 - beta1)`).
    pub one_minus_beta1: f32,
    /// `1 - beta2` (the addcmul value).
    pub one_minus_beta2: f32,
    pub eps: f32,
    /// Adam: the L2 coefficient added to the gradient; AdamW: unused here (see `decay_factor`).
    pub weight_decay: f32,
    /// AdamW: `1 - lr*wd`; Adam: 1.
    pub decay_factor: f32,
    /// `lr / (1 - beta1^step)`.
    pub step_size: f32,
    /// `sqrt(1 - beta2^step)`.
    pub bias_correction2_sqrt: f32,
}

impl AdamParams {
    /// Scalars of update number `step` (1-based, as PyTorch counts after `step += 1`).
    pub fn new(
        n: usize,
        lr: f64,
        betas: (f64, f64),
        eps: f64,
        weight_decay: f64,
        decoupled: bool,
        step: u64,
    ) -> Self {
        let (b1, b2) = betas;
        let s = step as f64;
        let bias_correction1 = 1.0 - b1.powf(s);
        let bias_correction2 = 1.0 - b2.powf(s);
        AdamParams {
            n: n as u32,
            decoupled: decoupled as u32,
            beta2: b2 as f32,
            one_minus_beta1: (1.0 - b1) as f32,
            one_minus_beta2: (1.0 - b2) as f32,
            eps: eps as f32,
            weight_decay: weight_decay as f32,
            decay_factor: if decoupled {
                (1.0 - lr * weight_decay) as f32
            } else {
                1.0
            },
            step_size: (lr / bias_correction1) as f32,
            bias_correction2_sqrt: bias_correction2.sqrt() as f32,
        }
    }
}
