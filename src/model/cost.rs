//! Multiply-accumulate counts of every layer, from the weight shapes of the `ParamSpec` and the
//! spatial size each layer runs at (spec §2.6, §3.6, §4.3; MACs, not FLOPs = 2 x MACs).
//!
//! A Linear applied to N tokens costs N x numel(W); a Conv2d costs (output pixels) x numel(W);
//! a ConvTranspose2d costs (input pixels) x numel(W) (each input pixel scatters one full
//! in x out x k x k product). Attention adds QK^T and AV: seq^2 x n_embd each per layer. Biases,
//! activations, LayerNorm, softmax and blends are element-wise and not counted as MACs; the
//! softmax exponentials are reported separately because at seq 1024 they are not negligible.

use super::param_spec::ParamSpec;
use super::presets::ModelConfig;

/// MACs of one named layer (or attention product).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CostEntry {
    pub name: String,
    pub macs: u64,
}

/// Per-layer MACs of one forward of a module, batch 1.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CostReport {
    pub entries: Vec<CostEntry>,
}

impl CostReport {
    pub fn total(&self) -> u64 {
        self.entries.iter().map(|e| e.macs).sum()
    }
    /// MACs of the layers whose name starts with `prefix`.
    pub fn with_prefix(&self, prefix: &str) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.name.starts_with(prefix))
            .map(|e| e.macs)
            .sum()
    }
}

/// Builds a report by looking weight shapes up in the spec of the same config.
struct Counter<'a> {
    spec: &'a ParamSpec,
    report: CostReport,
}

impl<'a> Counter<'a> {
    fn new(spec: &'a ParamSpec) -> Self {
        Counter {
            spec,
            report: CostReport::default(),
        }
    }
    /// A layer whose weight `{layer}.weight` (or `.weight_orig`) is applied at `positions` places.
    fn layer(&mut self, layer: &str, positions: usize) {
        let w = self
            .spec
            .get(&format!("{layer}.weight"))
            .or_else(|| self.spec.get(&format!("{layer}.weight_orig")))
            .unwrap_or_else(|| panic!("cost: no weight for layer {layer} in the spec of this config"));
        self.report.entries.push(CostEntry {
            name: layer.to_string(),
            macs: (w.numel() * positions) as u64,
        });
    }
    fn raw(&mut self, name: String, macs: usize) {
        self.report.entries.push(CostEntry {
            name,
            macs: macs as u64,
        });
    }
}

/// Per-patch MLP encoder over all patches of one image (0.654 G for paper).
pub fn encoder_macs(cfg: &ModelConfig) -> CostReport {
    let spec = ParamSpec::inference(cfg);
    let tokens = cfg.grid() * cfg.grid();
    let mut c = Counter::new(&spec);
    let p = "content_codec.encoder";
    c.layer(&format!("{p}.pre_layers.0"), tokens);
    for i in 0..cfg.codec.enc_res_blocks {
        c.layer(&format!("{p}.res_layers.{i}.layers.0"), tokens);
        c.layer(&format!("{p}.res_layers.{i}.layers.2"), tokens);
    }
    c.layer(&format!("{p}.post_layers.0"), tokens);
    c.report
}

/// One 1x1 quant_conv (or post_quant_conv) over the token grid (0.067 G for paper).
pub fn quant_conv_macs(cfg: &ModelConfig) -> u64 {
    let spec = ParamSpec::inference(cfg);
    let mut c = Counter::new(&spec);
    c.layer("content_codec.quant_conv", cfg.grid() * cfg.grid());
    c.report.total()
}

/// Distances of every token to every code in one quantisation call (0.268 G for paper).
pub fn vq_distance_macs(cfg: &ModelConfig) -> u64 {
    (cfg.grid() * cfg.grid() * cfg.codec.n_e * cfg.codec.e_dim) as u64
}

/// Decoder with its reference branch (14.252 G for paper, spec §2.6).
pub fn decoder_macs(cfg: &ModelConfig) -> CostReport {
    let spec = ParamSpec::inference(cfg);
    let (g, img) = (cfg.grid(), cfg.image_size);
    let mut c = Counter::new(&spec);
    let p = "content_codec.decoder";
    c.layer(&format!("{p}.pre_layers.0"), g * g);
    for i in 0..cfg.codec.dec_res_blocks {
        c.layer(&format!("{p}.res_layers.{i}.conv.0"), g * g);
        c.layer(&format!("{p}.res_layers.{i}.conv.2"), g * g);
    }
    for i in 0..cfg.codec.up_channels.len() {
        let side = g << i; // input side of up-step i
        c.layer(&format!("{p}.up_layers.{i}.deconv"), side * side);
    }
    for i in 0..cfg.codec.reference_channels().len() {
        let side = img >> i; // output side: layer 0 keeps the size, then each halves it
        c.layer(&format!("{p}.encoder.layers.{i}"), side * side);
    }
    c.layer(&format!("{p}.post_layers.0"), img * img);
    c.report
}

/// FDM over the token grid, once per image (3,894,673,408 for paper, spec §4.3).
pub fn fdm_macs(cfg: &ModelConfig) -> CostReport {
    let spec = ParamSpec::inference(cfg);
    let g = cfg.grid();
    let mut c = Counter::new(&spec);
    c.layer("fdm.mix.0", g * g);
    for j in 0..cfg.fdm.res_blocks {
        c.layer(&format!("fdm.mix.{}.conv.0", j + 2), g * g);
        c.layer(&format!("fdm.mix.{}.conv.2", j + 2), g * g);
    }
    c.layer(&format!("fdm.mix.{}", cfg.fdm.res_blocks + 2), g * g);
    c.report
}

/// One transformer forward over all `seq_len` tokens (150,726,508,544 for paper, spec §3.6).
pub fn transformer_pass_macs(cfg: &ModelConfig) -> CostReport {
    transformer_pass_macs_at(cfg, cfg.transformer.seq_len)
}

/// One pass that needs the logits at `rows` positions only (`Transformer::forward_at`, as the
/// sampler runs it on the CPU): every block but the last at all positions; the last block's
/// keys and values at all, its queries, attention rows, projection and MLP, and `to_logits`, at
/// `rows`. `rows` = seq_len is the full pass.
pub fn transformer_pass_macs_at(cfg: &ModelConfig, rows: usize) -> CostReport {
    let spec = ParamSpec::inference(cfg);
    let t = &cfg.transformer;
    let l = t.seq_len;
    let mut c = Counter::new(&spec);
    c.layer("generator.emb_proj", l);
    for n in 0..t.n_layer {
        let p = format!("generator.blocks.{n}");
        let q = if n + 1 == t.n_layer { rows } else { l };
        c.layer(&format!("{p}.attn.query"), q);
        for proj in ["key", "value"] {
            c.layer(&format!("{p}.attn.{proj}"), l);
        }
        c.raw(format!("{p}.attn.scores"), q * l * t.n_embd); // QK^T, all heads
        c.raw(format!("{p}.attn.weighted_values"), q * l * t.n_embd); // AV, all heads
        c.layer(&format!("{p}.attn.proj"), q);
        c.layer(&format!("{p}.mlp.0"), q);
        c.layer(&format!("{p}.mlp.2"), q);
    }
    c.layer("generator.to_logits", if t.n_layer == 0 { l } else { rows });
    c.report
}

/// Softmax exponentials of one transformer pass: heads x seq^2 per layer.
pub fn softmax_exps_per_pass(cfg: &ModelConfig) -> u64 {
    let t = &cfg.transformer;
    (t.n_layer * t.n_head * t.seq_len * t.seq_len) as u64
}

/// Discriminator on one image (spec §6.5): 4x4 convs, padding 1, strides 2, 2, 2, 1, 1.
pub fn discriminator_macs(cfg: &ModelConfig) -> CostReport {
    let spec = ParamSpec::discriminator(cfg);
    let mut c = Counter::new(&spec);
    let mut side = cfg.image_size;
    for (k, (_, _, stride)) in cfg.discriminator.convs().into_iter().enumerate() {
        side = (side + 2 - 4) / stride + 1;
        c.layer(&format!("loss.discriminator.conv{}.0", k + 1), side * side);
    }
    c.report
}

/// Side of the discriminator's output map (30 at 256x256).
pub fn discriminator_output_side(cfg: &ModelConfig) -> usize {
    cfg.discriminator
        .convs()
        .iter()
        .fold(cfg.image_size, |s, &(_, _, stride)| (s + 2 - 4) / stride + 1)
}

/// One inpainting of one image with `passes` transformer passes: encoder, quant_conv, one
/// quantisation, the passes, FDM, post_quant_conv, decoder (spec §5.1).
pub fn inpainting_macs(cfg: &ModelConfig, passes: u64) -> u64 {
    encoder_macs(cfg).total()
        + 2 * quant_conv_macs(cfg)
        + vq_distance_macs(cfg)
        + passes * transformer_pass_macs(cfg).total()
        + fdm_macs(cfg).total()
        + decoder_macs(cfg).total()
}

/// Parameter and cost summary of a config as a Markdown table (docs/PRESETS.md).
pub fn summary_markdown(cfgs: &[ModelConfig], passes: u64) -> String {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let specs: Vec<ParamSpec> = cfgs.iter().map(ParamSpec::inference).collect();
    let discs: Vec<ParamSpec> = cfgs.iter().map(ParamSpec::discriminator).collect();
    let mut row = |label: &str, f: &dyn Fn(usize) -> String| {
        rows.push((label.to_string(), (0..cfgs.len()).map(f).collect()));
    };
    use super::param_spec::{Module, Role};
    row("encoder params", &|i| {
        thousands(specs[i].learnable(Module::Encoder) as u64)
    });
    row("quant_conv + post_quant_conv params", &|i| {
        thousands((specs[i].learnable(Module::QuantConv) + specs[i].learnable(Module::PostQuantConv)) as u64)
    });
    row("decoder params", &|i| {
        thousands(specs[i].learnable(Module::Decoder) as u64)
    });
    row("codebook values (n_e x e_dim)", &|i| {
        thousands(specs[i].numel_of_role(Role::Codebook) as u64)
    });
    row("FDM params", &|i| thousands(specs[i].learnable(Module::Fdm) as u64));
    row("transformer params", &|i| {
        thousands(specs[i].learnable(Module::Transformer) as u64)
    });
    row("**total (learnable + codebook)**", &|i| {
        format!("**{}**", thousands(specs[i].model_total() as u64))
    });
    row("discriminator params (training)", &|i| {
        thousands(discs[i].numel_of_role(Role::Learnable) as u64)
    });
    row("encoder MACs", &|i| thousands(encoder_macs(&cfgs[i]).total()));
    row("decoder MACs", &|i| thousands(decoder_macs(&cfgs[i]).total()));
    row("FDM MACs", &|i| thousands(fdm_macs(&cfgs[i]).total()));
    row("transformer MACs per pass", &|i| {
        thousands(transformer_pass_macs(&cfgs[i]).total())
    });
    row("softmax exps per pass", &|i| thousands(softmax_exps_per_pass(&cfgs[i])));
    row(&format!("**one inpainting, {passes} passes (MACs)**"), &|i| {
        format!("**{}**", thousands(inpainting_macs(&cfgs[i], passes)))
    });
    row("discriminator MACs (training)", &|i| {
        thousands(discriminator_macs(&cfgs[i]).total())
    });
    let mut s = String::from("| quantity |");
    cfgs.iter().for_each(|c| s.push_str(&format!(" {} |", c.preset)));
    s.push_str("\n|---|");
    cfgs.iter().for_each(|_| s.push_str("---:|"));
    s.push('\n');
    for (label, vals) in rows {
        s.push_str(&format!("| {label} |"));
        vals.iter().for_each(|v| s.push_str(&format!(" {v} |")));
        s.push('\n');
    }
    s
}

/// 1234567 -> "1,234,567".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
