//! The state-dict of a model as an ordered list of (key, shape): the contract between the model
//! code, the weights files and the checkpoint converter (spec §8.2, §6.5, §8.3).
//!
//! `ParamSpec::inference(cfg)` lists, for the `paper` config, exactly the keys and shapes of
//! spec §8.2 in the order of that table: `temp`, then `content_codec.*` (encoder, quant_conv,
//! quantizer buffers, post_quant_conv, decoder), `fdm.*`, `generator.*`. Other configs use the
//! same names with their own widths and counts. Layouts (PyTorch's): Linear `[out, in]`,
//! Conv2d `[out, in, kh, kw]`, ConvTranspose2d `[in, out, kh, kw]`, LayerNorm `[D]`.
//!
//! `ParamSpec::discriminator(cfg)` is the training-only discriminator (spec §6.5) under the
//! official names `loss.discriminator.conv{k}.0.*` (spectral-norm `weight_orig`, power-iteration
//! vectors `weight_u` [out], `weight_v` [in*16]); its duplicate `features.0.*` alias is not listed.
//!
//! Counting: every entry carries its module and role, so parameter counts per module (and the
//! learnable / buffer split of spec §2.5) are sums over filtered entries.

use super::presets::ModelConfig;

/// Which part of the system a tensor belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Module {
    /// The dummy `temp` parameter of the official InpaintingModel (unused).
    Temp,
    Encoder,
    QuantConv,
    Quantizer,
    PostQuantConv,
    Decoder,
    Fdm,
    Transformer,
    Discriminator,
}

impl Module {
    /// True for the codec's submodules (state-dict prefix `content_codec.`).
    pub fn is_codec(self) -> bool {
        matches!(
            self,
            Module::Encoder | Module::QuantConv | Module::Quantizer | Module::PostQuantConv | Module::Decoder
        )
    }
}

/// What a tensor is, which decides whether an optimiser touches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Trained by gradient descent.
    Learnable,
    /// `quantize.embedding`: the codebook (a buffer, updated by EMA in Phase 1a; spec §2.3).
    Codebook,
    /// `quantize.cluster_size` / `quantize.embedding_avg`: EMA state, training only.
    EmaState,
    /// `temp` [1]: present in official checkpoints, never used.
    Dummy,
    /// Spectral-norm power-iteration vectors `weight_u`, `weight_v` of the discriminator.
    SpectralState,
}

/// One tensor of the state dict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub module: Module,
    pub role: Role,
}

impl TensorSpec {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// An ordered list of tensor specs (state-dict order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    pub entries: Vec<TensorSpec>,
}

/// Appends entries for one module under one name prefix.
struct Builder<'a> {
    out: &'a mut Vec<TensorSpec>,
    module: Module,
    prefix: String,
}

impl Builder<'_> {
    fn push(&mut self, name: &str, shape: &[usize], role: Role) {
        self.out.push(TensorSpec {
            name: format!("{}{name}", self.prefix),
            shape: shape.to_vec(),
            module: self.module,
            role,
        });
    }
    /// Linear `[out, in]` + bias `[out]`.
    fn linear(&mut self, name: &str, fan_in: usize, out: usize) {
        self.push(&format!("{name}.weight"), &[out, fan_in], Role::Learnable);
        self.push(&format!("{name}.bias"), &[out], Role::Learnable);
    }
    /// Conv2d `[out, in, k, k]` + bias `[out]`.
    fn conv(&mut self, name: &str, cin: usize, cout: usize, k: usize) {
        self.push(&format!("{name}.weight"), &[cout, cin, k, k], Role::Learnable);
        self.push(&format!("{name}.bias"), &[cout], Role::Learnable);
    }
    /// ConvTranspose2d `[in, out, k, k]` + bias `[out]`.
    fn deconv(&mut self, name: &str, cin: usize, cout: usize, k: usize) {
        self.push(&format!("{name}.weight"), &[cin, cout, k, k], Role::Learnable);
        self.push(&format!("{name}.bias"), &[cout], Role::Learnable);
    }
    fn layernorm(&mut self, name: &str, d: usize) {
        self.push(&format!("{name}.weight"), &[d], Role::Learnable);
        self.push(&format!("{name}.bias"), &[d], Role::Learnable);
    }
    /// ConvResBlock(width, hidden): `conv.0` 3x3 width->hidden, `conv.2` 1x1 hidden->width.
    fn conv_res_block(&mut self, name: &str, width: usize, hidden: usize) {
        self.conv(&format!("{name}.conv.0"), width, hidden, 3);
        self.conv(&format!("{name}.conv.2"), hidden, width, 1);
    }
}

fn builder<'a>(out: &'a mut Vec<TensorSpec>, module: Module, prefix: &str) -> Builder<'a> {
    Builder {
        out,
        module,
        prefix: prefix.to_string(),
    }
}

fn push_encoder(out: &mut Vec<TensorSpec>, cfg: &ModelConfig) {
    let c = &cfg.codec;
    let mut b = builder(out, Module::Encoder, "content_codec.encoder.");
    b.linear("pre_layers.0", c.patch_dim(), c.enc_width);
    for i in 0..c.enc_res_blocks {
        b.linear(&format!("res_layers.{i}.layers.0"), c.enc_width, c.enc_res_hidden);
        b.linear(&format!("res_layers.{i}.layers.2"), c.enc_res_hidden, c.enc_width);
    }
    b.linear("post_layers.0", c.enc_width, c.e_dim);
}

fn push_quantizer(out: &mut Vec<TensorSpec>, cfg: &ModelConfig) {
    let c = &cfg.codec;
    let mut b = builder(out, Module::Quantizer, "content_codec.quantize.");
    b.push("embedding", &[c.n_e, c.e_dim], Role::Codebook);
    b.push("cluster_size", &[c.n_e], Role::EmaState);
    b.push("embedding_avg", &[c.n_e, c.e_dim], Role::EmaState);
}

fn push_decoder(out: &mut Vec<TensorSpec>, cfg: &ModelConfig) {
    let c = &cfg.codec;
    let mut b = builder(out, Module::Decoder, "content_codec.decoder.");
    b.conv("pre_layers.0", c.e_dim, c.dec_width, 3);
    for i in 0..c.dec_res_blocks {
        b.conv_res_block(&format!("res_layers.{i}"), c.dec_width, c.dec_res_hidden);
    }
    let mut cin = c.dec_width;
    for (i, &cout) in c.up_channels.iter().enumerate() {
        b.deconv(&format!("up_layers.{i}.deconv"), cin, cout, 4);
        cin = cout;
    }
    let mut rin = c.in_ch;
    for (i, &rout) in c.reference_channels().iter().enumerate() {
        b.conv(&format!("encoder.layers.{i}"), rin, rout, if i == 0 { 3 } else { 4 });
        rin = rout;
    }
    b.conv("post_layers.0", cin, c.in_ch, 3);
}

fn push_fdm(out: &mut Vec<TensorSpec>, cfg: &ModelConfig) {
    let (f, e) = (&cfg.fdm, cfg.codec.e_dim);
    let mut b = builder(out, Module::Fdm, "fdm.");
    // mix.0 conv, mix.1 ReLU (no weights), mix.2.. residual blocks, then the tail conv.
    b.conv("mix.0", e + 1, f.width, 3);
    for j in 0..f.res_blocks {
        b.conv_res_block(&format!("mix.{}", j + 2), f.width, f.res_hidden);
    }
    b.conv(&format!("mix.{}", f.res_blocks + 2), f.width, e, 3);
}

fn push_transformer(out: &mut Vec<TensorSpec>, cfg: &ModelConfig) {
    let t = &cfg.transformer;
    let d = t.n_embd;
    let mut b = builder(out, Module::Transformer, "generator.");
    b.linear("emb_proj", t.embed_dim, d);
    b.push("pos_emb", &[1, t.seq_len, d], Role::Learnable);
    for n in 0..t.n_layer {
        let p = format!("blocks.{n}");
        b.layernorm(&format!("{p}.ln1"), d);
        for proj in ["query", "key", "value", "proj"] {
            b.linear(&format!("{p}.attn.{proj}"), d, d);
        }
        b.layernorm(&format!("{p}.ln2"), d);
        b.linear(&format!("{p}.mlp.0"), d, t.mlp_hidden());
        b.linear(&format!("{p}.mlp.2"), t.mlp_hidden(), d);
    }
    b.layernorm("layer_norm", d);
    b.linear("to_logits", d, t.vocab);
}

impl ParamSpec {
    /// The inference state dict of spec §8.2 (every key an official FDM checkpoint's `model`
    /// must hold, training-only `loss.*` keys excluded), in table order.
    pub fn inference(cfg: &ModelConfig) -> ParamSpec {
        let mut e = Vec::new();
        e.push(TensorSpec {
            name: "temp".into(),
            shape: vec![1],
            module: Module::Temp,
            role: Role::Dummy,
        });
        push_encoder(&mut e, cfg);
        let c = &cfg.codec;
        builder(&mut e, Module::QuantConv, "content_codec.").conv("quant_conv", c.e_dim, c.e_dim, 1);
        push_quantizer(&mut e, cfg);
        builder(&mut e, Module::PostQuantConv, "content_codec.").conv("post_quant_conv", c.e_dim, c.e_dim, 1);
        push_decoder(&mut e, cfg);
        push_fdm(&mut e, cfg);
        push_transformer(&mut e, cfg);
        ParamSpec { entries: e }
    }

    /// The discriminator of spec §6.5 under `loss.discriminator.` (training only).
    pub fn discriminator(cfg: &ModelConfig) -> ParamSpec {
        let mut e = Vec::new();
        let mut b = builder(&mut e, Module::Discriminator, "loss.discriminator.");
        for (k, (cin, cout, _stride)) in cfg.discriminator.convs().into_iter().enumerate() {
            let p = format!("conv{}.0", k + 1);
            b.push(&format!("{p}.weight_orig"), &[cout, cin, 4, 4], Role::Learnable);
            b.push(&format!("{p}.weight_u"), &[cout], Role::SpectralState);
            b.push(&format!("{p}.weight_v"), &[cin * 16], Role::SpectralState);
        }
        ParamSpec { entries: e }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn get(&self, name: &str) -> Option<&TensorSpec> {
        self.entries.iter().find(|e| e.name == name)
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.name.as_str())
    }
    /// Number of scalar values of the entries that satisfy `keep`.
    pub fn numel_where(&self, keep: impl Fn(&TensorSpec) -> bool) -> usize {
        self.entries.iter().filter(|e| keep(e)).map(TensorSpec::numel).sum()
    }
    /// Learnable parameters of one module (spec §2.5 / §3.6 / §4.3 counts).
    pub fn learnable(&self, module: Module) -> usize {
        self.numel_where(|e| e.module == module && e.role == Role::Learnable)
    }
    /// Learnable parameters of every module.
    pub fn learnable_total(&self) -> usize {
        self.numel_where(|e| e.role == Role::Learnable)
    }
    /// Learnable parameters of the codec (encoder, quant convs, decoder; 7,401,219 for paper).
    pub fn codec_learnable(&self) -> usize {
        self.numel_where(|e| e.module.is_codec() && e.role == Role::Learnable)
    }
    /// All values (learnable, buffers, dummy) whose key starts with `prefix`.
    pub fn numel_with_prefix(&self, prefix: &str) -> usize {
        self.numel_where(|e| e.name.starts_with(prefix))
    }
    /// Values of the given role (e.g. the 525,312 quantizer buffer values: Codebook + EmaState).
    pub fn numel_of_role(&self, role: Role) -> usize {
        self.numel_where(|e| e.role == role)
    }
    /// The spec's "grand total": learnable parameters plus the codebook (122,723,331 for paper;
    /// `temp` and the EMA state excluded).
    pub fn model_total(&self) -> usize {
        self.learnable_total() + self.numel_of_role(Role::Codebook)
    }
    /// (key, shape) pairs in order.
    pub fn key_shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.entries.iter().map(|e| (e.name.clone(), e.shape.clone())).collect()
    }
}
