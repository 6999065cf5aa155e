//! Training (spec §6): the four phases of the paper with the official losses, optimisers and
//! schedules, the data pipeline, checkpoints with bit-exact resume, and the `fdm train` driver.
//! This is a pipeline-level module: it drives the models through `model`, `nn`, `autograd`,
//! `optim` and `io`.
//!
//! * `config`: `TrainConfig` (the `paper` and `tiny` presets per phase);
//! * `data`: photos, augmentation, masks, background batches;
//! * `losses`: the image losses of spec §6.5 and the VGG hook;
//! * `optimizer`: one Adam/AdamW + warmup-cosine schedule + start iteration;
//! * `trainer`: the shared state and the discriminator step; `phase1a`..`phase3`: one step each;
//! * `codebook_restart`: phase 1a's dead-code restart of the EMA codebook (a deviation for small runs);
//! * `checkpoint`: atomic checkpoints and resume; `fingerprint`: which photos a checkpoint trained on;
//!   `runner`: the loop, CSV, samples; `progress`: the bar, progress lines and summary, over training time;
//! * `cli`: `fdm train ...`;
//! * `dist`, `dist_tcp` + `dist_hub`, `dist_nccl`, `launch`: data-parallel training over several processes
//!   (`--ranks N` with the host transport, `--gpus N` with NCCL), gradients averaged;
//! * `signals`: stopping a run by signal; `job_control`: Ctrl-Z / `fg` for a whole group.
//!
//! Training runs on the model's device (the CPU or one CUDA device, `--device`), or data-parallel
//! on several (`dist`).
pub mod checkpoint;
pub mod codebook_restart;
pub mod cli;
pub mod config;
pub mod data;
pub mod dist;
pub mod dist_hub;
pub mod dist_nccl;
pub mod dist_tcp;
pub mod fingerprint;
pub mod job_control;
pub mod launch;
pub mod losses;
pub mod optimizer;
pub mod phase1a;
pub mod phase1b;
pub mod phase2;
pub mod phase3;
pub mod progress;
pub mod runner;
pub mod signals;
pub mod trainer;

pub use config::{Phase, TrainConfig};
pub use trainer::Trainer;
pub mod vgg;
