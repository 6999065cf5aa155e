//! The whole inpainting model (`InpaintingModel` of the official code): codec
//! (`content_codec.`), UQ-Transformer (`generator.`) and FDM (`fdm.`), with every parameter in
//! one `ParamStore` under the official state-dict keys (spec §8.2), so a converted official
//! checkpoint loads with no renaming and saved weights are readable by the converter's checks.

use super::codec::Codec;
use super::fdm::Fdm;
use super::param_spec::ParamSpec;
use super::presets::ModelConfig;
use super::transformer::Transformer;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::io::safetensors as st;
use crate::io::weight_store::WeightStore;
use crate::nn::ParamStore;
use crate::rng::Rng;
use crate::tensor::Tensor;
use std::path::Path;

/// Storage precision of the transformer's Linear weights (`set_transformer_precision`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// f32 weights (training and the default inference).
    #[default]
    F32,
    /// bf16 weights, f32 activations and sums: inference only.
    Bf16,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }
}

pub struct InpaintingModel {
    pub cfg: ModelConfig,
    pub store: ParamStore,
    pub codec: Codec,
    pub transformer: Transformer,
    pub fdm: Fdm,
    /// Set by `prepare_for_inference`; `to_device` then redoes the device-dependent set-up.
    prepared_for_inference: bool,
}

impl InpaintingModel {
    /// A freshly initialised model (spec §0, §3.4 initialisations), seeded.
    pub fn new(cfg: &ModelConfig, seed: u64) -> Result<Self> {
        let mut rng = Rng::new(seed);
        let mut store = ParamStore::new();
        // The official state dict carries a dummy `temp` [1]; kept so files match spec §8.2.
        store.add("temp", Tensor::zeros(&[1]))?;
        let codec = Codec::new(&mut store, &mut rng, "content_codec", &cfg.codec)?;
        let fdm = Fdm::new(&mut store, &mut rng, "fdm", cfg.codec.e_dim, &cfg.fdm)?;
        let transformer = Transformer::new(&mut store, &mut rng, "generator", &cfg.transformer)?;
        Ok(InpaintingModel { cfg: cfg.clone(), store, codec, transformer, fdm, prepared_for_inference: false })
    }

    /// Load weights written by `save` or by the converter; strict against the config's spec.
    pub fn load(path: impl AsRef<Path>, expected: Option<&ModelConfig>) -> Result<Self> {
        let path = path.as_ref();
        let (weights, cfg) = st::load_model(path, expected)?;
        let mut model = InpaintingModel::new(&cfg, 0)?;
        model.set_weights(&weights)?;
        Ok(model)
    }

    /// Replace every parameter by the tensor of the same name (converted to f32).
    pub fn set_weights(&mut self, weights: &WeightStore) -> Result<()> {
        weights.check_against(&self.spec(), "weights").map_err(|m| Error::msg(format!("{m}")))?;
        let ids: Vec<_> = self.store.iter().map(|(id, name, _)| (id, name.to_string())).collect();
        for (id, name) in ids {
            let t = weights.get(&name).ok_or_else(|| Error::msg(format!("weights: missing {name}")))?;
            self.store.set(id, t.to_dtype(crate::DType::F32)?)?;
        }
        self.transformer.restack(&self.store)
    }

    /// The parameters as a `WeightStore` in spec order.
    pub fn weights(&self) -> Result<WeightStore> {
        let mut w = WeightStore::new();
        for (_, name, t) in self.store.iter() {
            w.insert(name, t.to_device(&Device::Cpu)?);
        }
        Ok(w.reordered_like(&self.spec()))
    }

    /// Save as safetensors (atomic write) with the config in the metadata.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        Ok(st::save_model(path, &self.weights()?, &self.cfg, &Default::default())?)
    }

    pub fn spec(&self) -> ParamSpec {
        ParamSpec::inference(&self.cfg)
    }

    /// Move every parameter to `device`.
    pub fn to_device(&mut self, device: &Device) -> Result<()> {
        let ids: Vec<_> = self.store.iter().map(|(id, _, _)| id).collect();
        for id in ids {
            let moved = self.store.get(id).to_device(device)?;
            self.store.set(id, moved)?;
        }
        if self.prepared_for_inference {
            // What inference stacks depends on the device (see `prepare_for_inference`).
            self.prepare_for_inference()
        } else {
            self.transformer.restack(&self.store)
        }
    }

    /// Store the transformer's Linear weights (`Transformer::linear_weights`) in `precision`,
    /// converted where they live. Bf16 is for inference: it halves those weights' memory and, on
    /// CUDA, runs the linears on tensor cores (activations rounded to bf16, f32 sums); on the CPU
    /// it only rounds the weights (they are widened back to f32 for each product). Gradients
    /// through bf16 weights are an error. `F32` widens them back (the rounding stays). Bf16 also
    /// stacks each block's query/key/value weights into one projection (`Transformer::restack`).
    pub fn set_transformer_precision(&mut self, precision: Precision) -> Result<()> {
        let dtype = match precision {
            Precision::F32 => crate::DType::F32,
            Precision::Bf16 => crate::DType::BF16,
        };
        for id in self.transformer.linear_weights() {
            let converted = self.store.get(id).to_dtype(dtype)?;
            self.store.set(id, converted)?;
        }
        self.transformer.restack(&self.store)
    }

    /// Sets the model up for inference only, on the device it is on (a later `to_device` redoes
    /// it for the new device): on CUDA the transformer's query/key/value projections of each
    /// block run as one stacked GEMM in f32 too (bf16 always does; `Transformer::restack`), two
    /// launches fewer per layer. On the CPU f32 keeps the separate projections: the stack
    /// measured no faster there (tiny preset 0-8 % slower, paper 2-5 % faster;
    /// `examples/pass_timing`), since the CPU attention slices q, k and v out of it. The CLI's
    /// inference commands call it; training must not (a stack would not follow the optimiser's
    /// updates).
    pub fn prepare_for_inference(&mut self) -> Result<()> {
        self.prepared_for_inference = true;
        let on_cuda = !matches!(self.device(), Device::Cpu);
        self.transformer.set_inference(&self.store, on_cuda)
    }

    pub fn device(&self) -> Device {
        self.store.iter().next().map(|(_, _, t)| t.device()).unwrap_or(Device::Cpu)
    }
}
