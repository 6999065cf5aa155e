//! The models (codec, transformer, FDM) and what describes them: presets, the state-dict key
//! table, and parameter / MAC counts.
pub mod cost;
pub mod param_spec;
pub mod presets;

pub use param_spec::{Module, ParamSpec, Role, TensorSpec};
pub use presets::{CodecConfig, DiscriminatorConfig, FdmConfig, ModelConfig, TransformerConfig};
pub mod blocks;
pub mod codec;
pub mod decoder;
pub mod discriminator;
pub mod encoder;
pub mod fdm;
pub mod fx;
pub mod masks;
pub mod quantizer;
pub mod transformer;
pub mod inpainting;
pub mod vgg;
pub mod inception;
