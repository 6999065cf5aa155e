//! The user-level algorithms on the models: the token sampler and inpainting.
pub mod inpaint;
pub mod inspect;
pub mod photo;
pub mod sampler;
