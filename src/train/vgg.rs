//! The perceptual/style backbone for training: torchvision's ImageNet VGG-16 `features` (the
//! converted LPIPS backbone, `assets/weights/vgg16_lpips.safetensors`) standing in for the
//! official VGG-19, whose weights no registry package ships. VGG-16 has no relu3_4 / relu4_4, so
//! the style loss reads relu3_3 / relu4_3 there (a documented deviation); every other layer the
//! losses name exists in both networks. Input: [0, 1] images without ImageNet normalisation, as
//! the official losses feed VGG-19 (spec §6.5).

use super::losses::VggHook;
use crate::autograd::{Tape, Var};
use crate::error::{Error, Result};
use crate::model::vgg::{Backbone, FeatureNet};
use std::path::Path;

pub struct Vgg16Hook {
    net: FeatureNet,
}

/// The VGG-16 layer read for a VGG-19 layer name.
pub fn vgg16_name(vgg19: &str) -> &str {
    match vgg19 {
        "relu3_4" => "relu3_3",
        "relu4_4" => "relu4_3",
        other => other,
    }
}

impl Vgg16Hook {
    pub fn load(path: &Path) -> Result<Vgg16Hook> {
        let (weights, _) = crate::io::safetensors::load(path)?;
        let net = FeatureNet::from_weights(Backbone::Vgg16, &weights, "features").map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
        Ok(Vgg16Hook { net })
    }
}

impl VggHook for Vgg16Hook {
    fn activations(&self, tape: &Tape, x: &Var, layers: &[&str]) -> Result<Vec<Var>> {
        let names: Vec<&str> = layers.iter().map(|l| vgg16_name(l)).collect();
        let bound = self.net.bind_frozen(tape);
        self.net.forward(tape, &bound, x, &names)
    }
    fn to_device(&mut self, device: &crate::Device) -> Result<()> {
        self.net.to_device(device)
    }
}

/// `VggLoader` for `TrainConfig::vgg_weights`.
pub fn load_hook(path: &Path) -> Result<Box<dyn VggHook>> {
    Ok(Box::new(Vgg16Hook::load(path)?))
}
