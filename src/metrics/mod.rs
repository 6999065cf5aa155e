//! Evaluation metrics of spec §7 and design §8: the pixel metrics of the official
//! `cal_metrics.py` (PSNR, SSIM, relative MAE, plain L1), LPIPS v0.1 (VGG-16 or AlexNet
//! backbone, spec §7.4) with the pluralistic diversity score, and the folder evaluation behind
//! `fdm eval`.
//!
//! Image convention everywhere here: `[3, H, W]` f32 tensors with values in [0, 255], as
//! `io::image::load_image` returns them. Pixel metrics are host-side f64 computations that
//! reproduce the reference numbers (scikit-image / numpy) to ~1e-12; LPIPS runs its backbone on
//! the engine.
pub mod eval;
pub mod fid;
pub mod kid;
pub mod folders;
pub mod lpips;
pub mod pixel;
pub mod ssim;

pub use lpips::{diversity, Diversity, DiversityPairs, Lpips, LpipsNet};
pub use pixel::{l1, mae, mse, psnr, psnr_from_mse, PSNR_CAP};
pub use ssim::{rgb_to_gray_opencv, ssim, ssim_gray, to_gray_u8, GrayU8};
