//! Pretrained ImageNet convolutional backbones as torchvision builds their `features` stacks:
//! VGG-16 and VGG-19 (LPIPS, spec §7.4; the perceptual and style losses, spec §6.5) and AlexNet
//! (LPIPS `net='alex'`). All three are plain sequences of Conv2d (zero padding, with bias), ReLU
//! and MaxPool2d (floor mode, no padding), so one type, `FeatureNet`, runs them.
//!
//! Layouts: input `[N, 3, H, W]` RGB; conv weights `[out, in, kh, kw]` under torchvision's
//! state-dict keys `{prefix}.{i}.weight` / `.bias`, `i` = the layer's index in `features`
//! (VGG-16 convs at 0, 2, 5, 7, 10, ...), so converted torchvision / LPIPS weights load as they
//! are. Layer names for taps: VGG `conv{b}_{k}`, `relu{b}_{k}`, `pool{b}`; AlexNet `conv{k}`,
//! `relu{k}`, `pool{k}`. `forward` runs only as far as the deepest requested tap.
//!
//! Input conventions are the caller's, and they differ between users:
//! * LPIPS feeds `(x - shift) / scale` of an image in [-1, 1] (its own ScalingLayer,
//!   shift = [-.030, -.088, -.188], scale = [.458, .448, .450]; `metrics::lpips`);
//! * the training losses feed the **[0, 1] image without ImageNet mean/std normalisation**
//!   (spec §6.5), exactly as the official code does.
//!
//! The backbone is frozen in both uses: `bind_frozen` binds its weights as constants, so a
//! training tape still carries gradients through the activations to the input image.

use crate::autograd::{self as ag, Tape, Var};
use crate::error::{Error, Result};
use crate::io::WeightStore;
use crate::nn::layers::Conv2d;
use crate::nn::{Bound, ParamStore};
use crate::DType;

/// Which torchvision `features` stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backbone {
    Vgg16,
    Vgg19,
    AlexNet,
}

/// One layer of a `features` stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    Conv {
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    Relu,
    MaxPool {
        kernel: usize,
        stride: usize,
    },
}

/// A layer with its torchvision index and tap name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    pub index: usize,
    pub name: String,
    pub kind: LayerKind,
}

const VGG16_CFG: &[usize] = &[2, 2, 3, 3, 3];
const VGG19_CFG: &[usize] = &[2, 2, 4, 4, 4];
const VGG_WIDTHS: &[usize] = &[64, 128, 256, 512, 512];

impl Backbone {
    pub fn name(self) -> &'static str {
        match self {
            Backbone::Vgg16 => "vgg16",
            Backbone::Vgg19 => "vgg19",
            Backbone::AlexNet => "alexnet",
        }
    }

    /// Every layer of torchvision's `features`, in order (`index` = position).
    pub fn layers(self) -> Vec<LayerInfo> {
        let mut out = Vec::new();
        let mut push = |name: String, kind: LayerKind| {
            out.push(LayerInfo {
                index: out.len(),
                name,
                kind,
            })
        };
        match self {
            Backbone::Vgg16 | Backbone::Vgg19 => {
                let cfg = if self == Backbone::Vgg16 { VGG16_CFG } else { VGG19_CFG };
                let mut c_in = 3;
                for (b, (&convs, &width)) in cfg.iter().zip(VGG_WIDTHS).enumerate() {
                    for k in 0..convs {
                        let conv = LayerKind::Conv {
                            c_in,
                            c_out: width,
                            kernel: 3,
                            stride: 1,
                            padding: 1,
                        };
                        push(format!("conv{}_{}", b + 1, k + 1), conv);
                        push(format!("relu{}_{}", b + 1, k + 1), LayerKind::Relu);
                        c_in = width;
                    }
                    push(format!("pool{}", b + 1), LayerKind::MaxPool { kernel: 2, stride: 2 });
                }
            }
            Backbone::AlexNet => {
                // torchvision alexnet().features: (out, kernel, stride, padding, pool after).
                let convs = [
                    (64, 11, 4, 2, true),
                    (192, 5, 1, 2, true),
                    (384, 3, 1, 1, false),
                    (256, 3, 1, 1, false),
                    (256, 3, 1, 1, true),
                ];
                let mut c_in = 3;
                for (k, &(c_out, kernel, stride, padding, pool)) in convs.iter().enumerate() {
                    push(
                        format!("conv{}", k + 1),
                        LayerKind::Conv {
                            c_in,
                            c_out,
                            kernel,
                            stride,
                            padding,
                        },
                    );
                    push(format!("relu{}", k + 1), LayerKind::Relu);
                    if pool {
                        push(format!("pool{}", k + 1), LayerKind::MaxPool { kernel: 3, stride: 2 });
                    }
                    c_in = c_out;
                }
            }
        }
        out
    }

    /// The torchvision index of a named layer, or an error listing the valid names.
    pub fn index_of(self, name: &str) -> Result<usize> {
        let layers = self.layers();
        layers.iter().find(|l| l.name == name).map(|l| l.index).ok_or_else(|| {
            let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
            Error::msg(format!(
                "{}: no layer named `{name}` (layers: {})",
                self.name(),
                names.join(", ")
            ))
        })
    }

    /// (key, shape) of every parameter under `prefix` (e.g. `features`), in layer order.
    pub fn param_shapes(self, prefix: &str) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        for l in self.layers() {
            if let LayerKind::Conv {
                c_in, c_out, kernel, ..
            } = l.kind
            {
                out.push((
                    format!("{prefix}.{}.weight", l.index),
                    vec![c_out, c_in, kernel, kernel],
                ));
                out.push((format!("{prefix}.{}.bias", l.index), vec![c_out]));
            }
        }
        out
    }
}

enum Layer {
    Conv(Conv2d),
    Relu,
    MaxPool { kernel: usize, stride: usize },
}

/// A `features` stack with its weights in a `ParamStore`.
pub struct FeatureNet {
    backbone: Backbone,
    layers: Vec<(String, Layer)>,
    store: ParamStore,
}

impl FeatureNet {
    /// Build from converted weights: every `{prefix}.{i}.weight/bias` of the backbone must be in
    /// `weights` with its shape (one error lists every problem); other keys are ignored. Half
    /// precision weights are widened to f32 (the compute dtype).
    pub fn from_weights(backbone: Backbone, weights: &WeightStore, prefix: &str) -> Result<FeatureNet> {
        let mut problems = Vec::new();
        for (key, shape) in backbone.param_shapes(prefix) {
            match weights.get(&key) {
                None => problems.push(format!("missing {key} {shape:?}")),
                Some(t) if t.shape() != shape.as_slice() => {
                    problems.push(format!("{key}: expected {shape:?}, found {:?}", t.shape()))
                }
                Some(t) if !t.dtype().is_float() => {
                    problems.push(format!("{key}: dtype {:?} is not a float type", t.dtype()))
                }
                Some(_) => {}
            }
        }
        if !problems.is_empty() {
            return Err(Error::msg(format!(
                "{} weights under `{prefix}`: {}",
                backbone.name(),
                problems.join("; ")
            )));
        }
        let mut store = ParamStore::new();
        let mut layers = Vec::new();
        for l in backbone.layers() {
            let layer = match l.kind {
                LayerKind::Conv { stride, padding, .. } => {
                    let mut get = |what: &str| -> Result<_> {
                        let key = format!("{prefix}.{}.{what}", l.index);
                        let t = weights.get(&key).expect("checked above").to_dtype(DType::F32)?;
                        store.add(key, t)
                    };
                    let weight = get("weight")?;
                    let bias = get("bias")?;
                    Layer::Conv(Conv2d {
                        weight,
                        bias: Some(bias),
                        stride,
                        padding,
                    })
                }
                LayerKind::Relu => Layer::Relu,
                LayerKind::MaxPool { kernel, stride } => Layer::MaxPool { kernel, stride },
            };
            layers.push((l.name, layer));
        }
        Ok(FeatureNet {
            backbone,
            layers,
            store,
        })
    }

    pub fn backbone(&self) -> Backbone {
        self.backbone
    }

    /// The weights (torchvision keys), e.g. to count or move them.
    pub fn store(&self) -> &ParamStore {
        &self.store
    }

    /// Move the weights to `device` (e.g. for the training losses on a CUDA device).
    pub fn to_device(&mut self, device: &crate::Device) -> Result<()> {
        self.store.to_device(device)
    }

    /// Bind the weights on `tape` as constants (the backbone is never trained).
    pub fn bind_frozen(&self, tape: &Tape) -> Bound {
        self.store.bind(tape, |_| false)
    }

    /// Activations of the named layers for `x [N, 3, H, W]`, in the order of `taps`. The stack
    /// runs up to the deepest tap only. Unknown names are an error listing the valid ones.
    pub fn forward(&self, tape: &Tape, bound: &Bound, x: &Var, taps: &[&str]) -> Result<Vec<Var>> {
        if x.shape().len() != 4 || x.shape()[1] != 3 {
            return Err(Error::shape(
                "FeatureNet::forward",
                format!("input must be [N, 3, H, W], got {:?}", x.shape()),
            ));
        }
        let wanted: Vec<usize> = taps.iter().map(|t| self.backbone.index_of(t)).collect::<Result<_>>()?;
        let last = match wanted.iter().max() {
            Some(&m) => m,
            None => return Ok(Vec::new()),
        };
        let mut found: Vec<Option<Var>> = vec![None; taps.len()];
        let mut h = x.clone();
        for (i, (name, layer)) in self.layers.iter().enumerate().take(last + 1) {
            h = match layer {
                Layer::Conv(c) => c
                    .forward(tape, bound, &h)
                    .map_err(|e| Error::msg(format!("{} {name}: {e}", self.backbone.name())))?,
                Layer::Relu => ag::unary::relu(tape, &h)?,
                Layer::MaxPool { kernel, stride } => {
                    ag::pool::max_pool2d(tape, &h, *kernel, *stride, 0).map_err(|e| {
                        Error::msg(format!(
                            "{} {name}: input too small for the backbone ({e})",
                            self.backbone.name()
                        ))
                    })?
                }
            };
            for (slot, &w) in found.iter_mut().zip(&wanted) {
                if w == i {
                    *slot = Some(h.clone());
                }
            }
        }
        Ok(found
            .into_iter()
            .map(|v| v.expect("every tap index is <= last"))
            .collect())
    }
}
