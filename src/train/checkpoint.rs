//! Training checkpoints: everything needed to continue a run bit for bit (design §6).
//!
//! A checkpoint is a directory `ckpt-<step, 8 digits>` holding
//! * `model.safetensors`: every model tensor (loadable by `--init` and by inference);
//! * `discriminator.safetensors` (phases 1a, 3): `loss.discriminator.*` incl. the spectral-norm
//!   vectors;
//! * `optimizer.safetensors`: Adam moments, keys `<optimiser>.<param>.exp_avg` / `.exp_avg_sq`;
//! * `state.json`: phase, steps done, epoch and batch position, the step generator's state,
//!   per optimiser the schedule state and Adam step counts, both configs, the fingerprint
//!   of the training file list (`fingerprint`; absent in checkpoints written before it), and
//!   where the epochs of the data order start when a resume moved that (`data_origin`, only
//!   then: `data::DataOrigin`, `resume_origin`).
//!   Floating-point schedule values are stored as their IEEE bit patterns (`*_bits`) so JSON
//!   cannot round them.
//!
//! Atomicity: the files are written (each fsynced) into `.ckpt-<step>.tmp-<pid>`, the directory
//! is fsynced and renamed to its final name, and the parent is fsynced; a crash leaves either the
//! complete new checkpoint or none. Older checkpoints beyond `keep_checkpoints` are removed
//! after the new one is in place.

use super::config::TrainConfig;
use super::data::DataOrigin;
use super::fingerprint::DataFingerprint;
use super::trainer::Trainer;
use crate::error::{Error, Result};
use crate::io::safetensors as st;
use crate::io::weight_store::WeightStore;
use crate::model::inpainting::InpaintingModel;
use crate::model::ModelConfig;
use crate::optim::{AdamParamState, ScheduleState};
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "state.json";
pub const MODEL_FILE: &str = "model.safetensors";
pub const DISC_FILE: &str = "discriminator.safetensors";
pub const OPTIM_FILE: &str = "optimizer.safetensors";
const FORMAT: &str = "fdm-train-checkpoint-1";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OptimRecord {
    pub name: String,
    pub last_epoch: i64,
    pub lr_bits: u64,
    pub max_lr_bits: u64,
    /// The learning rate the next update uses (informational; `lr_bits` is authoritative).
    pub lr: f64,
    /// Per parameter (registration order): Adam's step count, None before its first update.
    pub adam_steps: Vec<Option<u64>>,
    pub params: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointState {
    pub format: String,
    /// Steps completed; the resumed run continues with this global iteration.
    pub step: u64,
    pub epoch: u64,
    pub batch_in_epoch: u64,
    pub iters_per_epoch: u64,
    pub rng: Rng,
    pub optimizers: Vec<OptimRecord>,
    pub config: TrainConfig,
    pub model_config: ModelConfig,
    /// The photos the run trained on (`fingerprint`); None in a checkpoint from before this
    /// field, and from a trainer that was given none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataFingerprint>,
    /// Where the epochs of the data order start (`DataOrigin`): None for step 0 (every run
    /// whose data never changed the number of batches per epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_origin: Option<DataOrigin>,
}

fn io(what: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::msg(format!("{}: {e}", what.display()))
}

fn weights_err(e: crate::io::WeightsError) -> Error {
    Error::msg(e.to_string())
}

fn fsync_dir(dir: &Path) {
    // Best effort: not every platform can open a directory for syncing.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn optim_records(tr: &Trainer, moments: &mut WeightStore) -> Result<Vec<OptimRecord>> {
    let mut slots = vec![(&tr.gen, &tr.model.store)];
    if let (Some(o), Some(d)) = (&tr.dis, &tr.disc) {
        slots.push((o, &d.store));
    }
    let mut out = Vec::new();
    for (slot, store) in slots {
        let (sched, adam) = slot.export()?;
        let params: Vec<String> = slot
            .params
            .iter()
            .map(|&id| store.name(id).to_string())
            .collect();
        let mut steps = Vec::new();
        for (name, st) in params.iter().zip(adam) {
            steps.push(st.as_ref().map(|s| s.step));
            if let Some(s) = st {
                let shape = store
                    .get(store.id_of(name).expect("registered"))
                    .shape()
                    .to_vec();
                moments.insert(
                    format!("{}.{name}.exp_avg", slot.name),
                    Tensor::from_vec(s.exp_avg, &shape)?,
                );
                moments.insert(
                    format!("{}.{name}.exp_avg_sq", slot.name),
                    Tensor::from_vec(s.exp_avg_sq, &shape)?,
                );
            }
        }
        out.push(OptimRecord {
            name: slot.name.to_string(),
            last_epoch: sched.last_epoch,
            lr_bits: sched.lr.to_bits(),
            max_lr_bits: sched.max_lr.to_bits(),
            lr: sched.lr,
            adam_steps: steps,
            params,
        });
    }
    Ok(out)
}

/// Write a checkpoint of `tr` under `out_dir`; returns its directory.
pub fn save(tr: &Trainer, out_dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let final_dir = dir_for(out_dir, tr.step);
    let name = format!("ckpt-{:08}", tr.step);
    let tmp = out_dir.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let write = || -> Result<()> {
        tr.model.save(tmp.join(MODEL_FILE))?;
        if let Some(d) = &tr.disc {
            let meta = st::model_metadata(&tr.model.cfg);
            st::save(tmp.join(DISC_FILE), &d.weights()?, &meta).map_err(weights_err)?;
        }
        let mut moments = WeightStore::new();
        let optimizers = optim_records(tr, &mut moments)?;
        st::save(tmp.join(OPTIM_FILE), &moments, &Default::default()).map_err(weights_err)?;
        let (epoch, batch_in_epoch) = tr.data_origin.position(tr.step, tr.iters_per_epoch);
        let state = CheckpointState {
            format: FORMAT.into(),
            step: tr.step,
            epoch,
            batch_in_epoch,
            iters_per_epoch: tr.iters_per_epoch,
            rng: tr.rng.clone(),
            optimizers,
            config: tr.cfg.clone(),
            model_config: tr.model.cfg.clone(),
            data: tr.data_fingerprint.clone(),
            data_origin: (tr.data_origin != DataOrigin::default()).then_some(tr.data_origin),
        };
        let json = serde_json::to_string_pretty(&state).map_err(|e| Error::msg(e.to_string()))?;
        let path = tmp.join(STATE_FILE);
        let mut f = std::fs::File::create(&path).map_err(io(&path))?;
        f.write_all(json.as_bytes()).map_err(io(&path))?;
        f.sync_all().map_err(io(&path))?;
        fsync_dir(&tmp);
        if final_dir.exists() {
            std::fs::remove_dir_all(&final_dir).map_err(io(&final_dir))?;
        }
        std::fs::rename(&tmp, &final_dir).map_err(io(&final_dir))?;
        fsync_dir(out_dir);
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    prune(out_dir, tr.cfg.keep_checkpoints.max(1))?;
    Ok(final_dir)
}

/// The directory `save` writes the checkpoint of step `step` to.
pub fn dir_for(out_dir: &Path, step: u64) -> PathBuf {
    out_dir.join(format!("ckpt-{step:08}"))
}

/// Checkpoint directories under `out_dir`, oldest first.
pub fn list(out_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(out_dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("ckpt-"))
                && p.join(STATE_FILE).is_file()
        })
        .collect();
    dirs.sort();
    dirs
}

fn prune(out_dir: &Path, keep: usize) -> Result<()> {
    let dirs = list(out_dir);
    for old in dirs.iter().take(dirs.len().saturating_sub(keep)) {
        std::fs::remove_dir_all(old).map_err(io(old))?;
    }
    Ok(())
}

/// A checkpoint directory, or the newest checkpoint under a run's output folder.
pub fn resolve(path: &Path) -> Result<PathBuf> {
    if !path.exists() {
        return Err(Error::msg(format!("{} does not exist: --resume takes a checkpoint folder (ckpt-*) or the run folder holding one", path.display())));
    }
    if path.join(STATE_FILE).is_file() {
        return Ok(path.to_path_buf());
    }
    list(path).pop().ok_or_else(|| {
        Error::msg(format!(
            "{} is neither a checkpoint nor a folder holding one (ckpt-*/state.json)",
            path.display()
        ))
    })
}

pub fn read_state(dir: &Path) -> Result<CheckpointState> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let state: CheckpointState =
        serde_json::from_str(&text).map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
    if state.format != FORMAT {
        return Err(Error::msg(format!(
            "{}: unknown checkpoint format `{}`",
            path.display(),
            state.format
        )));
    }
    Ok(state)
}

/// The model stored in a checkpoint.
pub fn load_model(dir: &Path, state: &CheckpointState) -> Result<InpaintingModel> {
    InpaintingModel::load(dir.join(MODEL_FILE), Some(&state.model_config))
}

/// Where the data order of a run resumed from `state` starts, for data that gives
/// `iters_per_epoch` batches per epoch: the checkpoint's own origin when that is the
/// checkpoint's number. Otherwise the position in the old order means nothing in the new one:
/// with `allow_change` (`--allow-data-change`) the epoch after the checkpoint's starts at its
/// step from the beginning of the new order (`DataOrigin::next_epoch_at`), with a note saying
/// so; without, an error naming both numbers. `epochs`: the run's nominal epochs, for the note.
pub fn resume_origin(
    state: &CheckpointState,
    iters_per_epoch: u64,
    epochs: u64,
    allow_change: bool,
) -> Result<(DataOrigin, Option<String>)> {
    let had = state.data_origin.unwrap_or_default();
    if state.iters_per_epoch == iters_per_epoch || state.iters_per_epoch == 0 || iters_per_epoch == 0 {
        // (0: no batch at all, which `BatchSource::new` reports.)
        return Ok((had, None));
    }
    if !allow_change {
        return Err(iters_mismatch(state.iters_per_epoch, iters_per_epoch));
    }
    let origin = had.next_epoch_at(state.step, state.iters_per_epoch);
    Ok((
        origin,
        Some(format!(
            "note: --allow-data-change: the data gives {iters_per_epoch} batches per epoch (the checkpoint's gave {}): epoch {} starts at step {} from the beginning of the new data order; the nominal {epochs} epochs now end at step {}",
            state.iters_per_epoch,
            origin.epoch,
            origin.step,
            origin.end(epochs, iters_per_epoch)
        )),
    ))
}

fn iters_mismatch(had: u64, now: u64) -> Error {
    Error::msg(format!(
        "the checkpoint was made with {had} iterations per epoch, this data gives {now}: the data folder or batch size changed (--allow-data-change continues with the next epoch from the beginning of the new data order)"
    ))
}

/// Restore the discriminator, the optimisers, the step and the generator state into `tr`
/// (built from the checkpoint's configs and model). `tr.data_origin` must be where the resumed
/// run's data order starts (`resume_origin`): the checkpoint's own, which needs the same number
/// of batches per epoch, or one at the checkpoint's step, which starts the order anew.
pub fn restore(tr: &mut Trainer, dir: &Path, state: &CheckpointState) -> Result<()> {
    let had = state.data_origin.unwrap_or_default();
    let continues = tr.data_origin == had && state.iters_per_epoch == tr.iters_per_epoch;
    if !continues && tr.data_origin.step != state.step {
        if tr.data_origin == had {
            return Err(iters_mismatch(state.iters_per_epoch, tr.iters_per_epoch));
        }
        return Err(Error::msg(format!(
            "the data order of a run resumed at step {} cannot start at step {} (epoch {}): checkpoint::resume_origin gives where it starts",
            state.step, tr.data_origin.step, tr.data_origin.epoch
        )));
    }
    if let Some(d) = tr.disc.as_mut() {
        let (w, _) = st::load_strict(dir.join(DISC_FILE), d.spec()).map_err(weights_err)?;
        d.set_weights(&w)?;
    }
    let (moments, _) = st::load(dir.join(OPTIM_FILE)).map_err(weights_err)?;
    let mut slots = vec![&mut tr.gen];
    if let Some(o) = tr.dis.as_mut() {
        slots.push(o);
    }
    if slots.len() != state.optimizers.len() {
        return Err(Error::msg(format!(
            "checkpoint has {} optimisers, the phase has {}",
            state.optimizers.len(),
            slots.len()
        )));
    }
    for (slot, rec) in slots.into_iter().zip(&state.optimizers) {
        if rec.name != slot.name || rec.adam_steps.len() != slot.params.len() {
            return Err(Error::msg(format!(
                "checkpoint optimiser `{}` does not match `{}`",
                rec.name, slot.name
            )));
        }
        let mut adam = Vec::new();
        for (name, steps) in rec.params.iter().zip(&rec.adam_steps) {
            adam.push(match steps {
                None => None,
                Some(step) => {
                    let get = |k: &str| -> Result<Vec<f32>> {
                        let key = format!("{}.{name}.{k}", rec.name);
                        moments
                            .get(&key)
                            .ok_or_else(|| Error::msg(format!("optimizer state lacks {key}")))?
                            .to_vec_f32()
                    };
                    Some(AdamParamState {
                        step: *step,
                        exp_avg: get("exp_avg")?,
                        exp_avg_sq: get("exp_avg_sq")?,
                    })
                }
            });
        }
        let sched = ScheduleState {
            last_epoch: rec.last_epoch,
            lr: f64::from_bits(rec.lr_bits),
            max_lr: f64::from_bits(rec.max_lr_bits),
        };
        slot.import(sched, adam)?;
    }
    tr.step = state.step;
    tr.rng = state.rng.clone();
    Ok(())
}
