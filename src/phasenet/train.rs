//! Training of the phasing network on crystals simulated on the fly.
//!
//! A background thread simulates strained crystals ([`super::data`]) into a bounded queue, so
//! simulation overlaps training and no dataset file is written. Example `k` of the stream is a
//! pure function of the seed and `k`, so `resume` continues the same stream. The loss is the
//! symmetry-robust [`coherent_phase_loss`] (or, for comparison, the plain [`phase_mse`]),
//! weighted by the scaled log intensity.

use super::data::{simulate_example, Example, PhaseRecipe};
use crate::loss::{coherent_phase_loss, phase_mse};
use crate::models::{self, ModelConfig, ModelKind, META_MODEL};
use crate::nn::{io, Adam, Module, Optimizer};
use crate::{Device, Error, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

/// Metadata key of the data recipe in phasing-network files.
pub const META_RECIPE: &str = "bragg.phasenet.recipe";
/// Metadata key of the network's grid (array side it was trained on).
pub const META_GRID: &str = "bragg.phasenet.grid";

/// Which loss the network is trained with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PhaseLoss {
    /// [`coherent_phase_loss`]: invariant to the global phase and the twin.
    Coherent,
    /// [`phase_mse`]: plain weighted MSE of the angle.
    Mse,
}

fn one() -> f32 {
    1.0
}

/// Settings of a phasing-network training run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseTrainConfig {
    /// Architecture (kind `phase-unet`).
    pub model: ModelConfig,
    /// Total optimiser steps (counting resumed ones).
    pub steps: usize,
    /// Patterns per step.
    pub batch: usize,
    /// Peak learning rate (warm-up, then cosine decay to `min_lr`).
    pub lr: f32,
    /// Final learning rate.
    pub min_lr: f32,
    /// Seed of the weights and of the data stream.
    pub seed: u64,
    /// Loss.
    pub loss: PhaseLoss,
    /// The loss weight of a voxel is its scaled log intensity to this power (>= 1 favours the
    /// strong voxels near the Bragg peak, where the phase decides the object's shape).
    #[serde(default = "one")]
    pub weight_power: f32,
    /// Data recipe.
    pub recipe: PhaseRecipe,
    /// Output model file (checkpoint and log beside it).
    pub out: PathBuf,
    /// Continue from the checkpoint beside `out`.
    pub resume: bool,
    /// Steps between checkpoints.
    pub checkpoint_every: usize,
    /// Held-out patterns the validation loss is measured on.
    pub validation: usize,
    /// Print progress lines.
    pub progress: bool,
}

impl PhaseTrainConfig {
    /// Defaults: 3-D phase-unet width 8, depth 4 on 32^3 strained crystals, batch 4, Adam
    /// 1e-3 -> 1e-5, coherent loss.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        PhaseTrainConfig {
            model: ModelConfig::thesis(ModelKind::PhaseUnet),
            steps: 10_000,
            batch: 4,
            lr: 1e-3,
            min_lr: 1e-5,
            seed: 0,
            loss: PhaseLoss::Coherent,
            weight_power: 1.0,
            recipe: PhaseRecipe::default(),
            out: out.into(),
            resume: false,
            checkpoint_every: 100,
            validation: 32,
            progress: true,
        }
    }

    /// Checks the settings; errors name the bad one.
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "train-phasenet";
        self.model.validate()?;
        if self.model.kind != ModelKind::PhaseUnet {
            return Err(Error::arg(
                OP,
                "model",
                format!("needs phase-unet, got {}", self.model.kind),
            ));
        }
        if self.model.dims != self.recipe.dim {
            return Err(Error::arg(
                OP,
                "dim",
                format!(
                    "the model is {}-D but the data {}-D",
                    self.model.dims, self.recipe.dim
                ),
            ));
        }
        self.recipe.validate()?;
        let k = self.model.size_multiple();
        if !self.recipe.size.is_multiple_of(k) {
            return Err(Error::arg(
                OP,
                "size",
                format!(
                    "{} must be a multiple of {k} for depth {}",
                    self.recipe.size, self.model.depth
                ),
            ));
        }
        if self.steps == 0 || self.batch == 0 || self.batch > 256 {
            return Err(Error::arg(
                OP,
                "steps/batch",
                "steps must be >= 1 and batch in 1..=256",
            ));
        }
        if !(self.lr > 0.0 && self.lr.is_finite() && self.min_lr >= 0.0) {
            return Err(Error::arg(OP, "lr", "must be positive"));
        }
        if !(1.0..=16.0).contains(&self.weight_power) {
            return Err(Error::arg(OP, "weight_power", "must be in 1..=16"));
        }
        if self.checkpoint_every == 0 {
            return Err(Error::arg(OP, "checkpoint_every", "must be >= 1"));
        }
        Ok(())
    }

    /// Learning rate at `step`: linear warm-up over the first 5% (at most 200 steps), then
    /// cosine decay.
    pub fn lr_at(&self, step: usize) -> f32 {
        let warm = 200.min(self.steps / 20).max(1);
        if step < warm {
            return self.lr * (step + 1) as f32 / warm as f32;
        }
        let t = (step - warm) as f32 / (self.steps - warm).max(1) as f32;
        self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + (std::f32::consts::PI * t).cos())
    }

    fn shape(&self, batch: usize, channels: usize) -> Vec<usize> {
        let mut s = vec![batch, channels];
        s.extend(std::iter::repeat_n(self.recipe.size, self.recipe.dim));
        s
    }
}

/// Batches examples into `(input [B,1,...], target [B,2,...], weight [B,1,...])`; the weight
/// is the input to the power `cfg.weight_power`.
pub fn batch_tensors(
    examples: &[Example],
    cfg: &PhaseTrainConfig,
    device: &Device,
) -> Result<(Tensor, Tensor, Tensor)> {
    let b = examples.len();
    let mut x = Vec::with_capacity(b * examples.first().map_or(0, |e| e.input.len()));
    let mut y = Vec::with_capacity(2 * x.capacity());
    for e in examples {
        x.extend_from_slice(&e.input);
        y.extend_from_slice(&e.target);
    }
    let w: Vec<f32> = x.iter().map(|v| v.powf(cfg.weight_power)).collect();
    Ok((
        Tensor::from_vec(x, &cfg.shape(b, 1), device)?,
        Tensor::from_vec(y, &cfg.shape(b, 2), device)?,
        Tensor::from_vec(w, &cfg.shape(b, 1), device)?,
    ))
}

fn loss_of(kind: PhaseLoss, pred: &Tensor, target: &Tensor, weight: &Tensor) -> Result<Tensor> {
    match kind {
        PhaseLoss::Coherent => coherent_phase_loss(pred, target, weight),
        PhaseLoss::Mse => phase_mse(pred, target, weight),
    }
}

/// Validation losses on `examples` (coherent loss with the training weights): the model's, and
/// that of a flat phase (the loss of knowing nothing).
pub fn validation_losses(
    model: &dyn Module,
    examples: &[Example],
    cfg: &PhaseTrainConfig,
    device: &Device,
) -> Result<(f64, f64)> {
    let (mut ml, mut fl, mut n) = (0.0, 0.0, 0.0);
    for chunk in examples.chunks(cfg.batch.max(1)) {
        let (x, y, w) = batch_tensors(chunk, cfg, device)?;
        let (l, f) = crate::autograd::no_grad(|| {
            let pred = model.forward(&x)?;
            let flat = Tensor::ones(pred.shape(), device)?;
            Ok::<_, Error>((
                coherent_phase_loss(&pred, &y, &w)?.item()?,
                coherent_phase_loss(&flat, &y, &w)?.item()?,
            ))
        })?;
        ml += l as f64 * chunk.len() as f64;
        fl += f as f64 * chunk.len() as f64;
        n += chunk.len() as f64;
    }
    Ok((ml / n.max(1.0), fl / n.max(1.0)))
}

/// One line of the training log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepLog {
    /// Steps done.
    pub step: usize,
    /// Mean training loss since the last line.
    pub loss: f64,
    /// Validation coherent loss, when measured.
    pub val_loss: Option<f64>,
    /// Validation coherent loss of a flat phase.
    pub val_flat: Option<f64>,
    /// Learning rate.
    pub lr: f32,
    /// Seconds of training so far (all sessions).
    pub seconds: f64,
}

fn spawn_stream(recipe: PhaseRecipe, seed: u64, first: u64) -> mpsc::Receiver<Result<Example>> {
    let (tx, rx) = mpsc::sync_channel::<Result<Example>>(64);
    std::thread::spawn(move || {
        for k in first.. {
            let e = simulate_example(&recipe, seed, k);
            let stop = e.is_err();
            if tx.send(e).is_err() || stop {
                return;
            }
        }
    });
    rx
}

fn save_state(
    path: &Path,
    model: &dyn Module,
    opt: &Adam,
    cfg: &PhaseTrainConfig,
    step: usize,
    log: &[StepLog],
    with_optimiser: bool,
) -> Result<()> {
    let mut meta = HashMap::new();
    meta.insert(META_MODEL.to_string(), cfg.model.to_json());
    meta.insert(
        models::META_PREPROCESS.to_string(),
        "log1p, min-max over the grid; output (cos, sin) of the reciprocal-space phase, \
         object centred on its centre of mass, phase referenced to the central voxel"
            .to_string(),
    );
    meta.insert(META_GRID.to_string(), cfg.recipe.size.to_string());
    meta.insert(
        META_RECIPE.to_string(),
        serde_json::to_string(&cfg.recipe).unwrap_or_default(),
    );
    meta.insert("bragg.step".into(), step.to_string());
    meta.insert(
        "bragg.train".into(),
        serde_json::to_string(cfg).unwrap_or_default(),
    );
    meta.insert(
        "bragg.log".into(),
        serde_json::to_string(log).unwrap_or_default(),
    );
    crate::train::save_state(path, model, with_optimiser.then_some(opt), &meta)
}

/// Restores weights, optimiser state, step and log from the checkpoint, refusing one written
/// with other settings.
fn resume_from(
    ckpt: &Path,
    cfg: &PhaseTrainConfig,
    params: &[crate::nn::Param],
    opt: &mut Adam,
    device: &Device,
) -> Result<(usize, Vec<StepLog>)> {
    let ck = io::load(ckpt, device)?;
    let saved: PhaseTrainConfig =
        serde_json::from_str(ck.metadata.get("bragg.train").map_or("", |s| s)).map_err(|e| {
            Error::data(ckpt, format!("no training settings in the checkpoint: {e}"))
        })?;
    let mut changed = vec![];
    if saved.model != cfg.model {
        changed.push("model");
    }
    if saved.batch != cfg.batch {
        changed.push("batch");
    }
    if saved.seed != cfg.seed {
        changed.push("seed");
    }
    if saved.recipe != cfg.recipe {
        changed.push("recipe");
    }
    if saved.loss != cfg.loss || saved.weight_power != cfg.weight_power {
        changed.push("loss");
    }
    if !changed.is_empty() {
        return Err(Error::data(
            ckpt,
            format!(
                "--resume with changed settings ({}); use the original ones or a new --out",
                changed.join(", ")
            ),
        ));
    }
    crate::train::restore_weights_and_optimiser(ckpt, &ck, params, opt)?;
    let step = ck
        .metadata
        .get("bragg.step")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let log =
        serde_json::from_str(ck.metadata.get("bragg.log").map_or("[]", |s| s)).unwrap_or_default();
    Ok((step, log))
}

/// Trains the phasing network; returns the log. Checkpoints every `checkpoint_every` steps (an
/// interrupted run loses at most that much); the final model (weights and metadata, no optimiser
/// state) goes to `cfg.out`, the log to a CSV beside it.
pub fn train_phasenet(cfg: &PhaseTrainConfig, device: &Device) -> Result<Vec<StepLog>> {
    cfg.validate()?;
    let model = models::build(&cfg.model, device, cfg.seed)?;
    let params = model.parameters();
    let mut opt = Adam::new(cfg.lr);
    let ckpt = crate::train::checkpoint_path(&cfg.out);
    let (start, mut log) = if cfg.resume && ckpt.exists() {
        resume_from(&ckpt, cfg, &params, &mut opt, device)?
    } else {
        (0, vec![])
    };
    if cfg.progress && start > 0 {
        eprintln!("resuming at step {start} of {}", cfg.steps);
    }
    let secs_before = log.last().map_or(0.0, |l| l.seconds);
    let val_seed = cfg.seed.wrapping_add(0x5eed_0000_0000);
    let val: Vec<Example> = (0..cfg.validation as u64)
        .map(|k| simulate_example(&cfg.recipe, val_seed, k))
        .collect::<Result<_>>()?;
    let rx = spawn_stream(cfg.recipe.clone(), cfg.seed, (start * cfg.batch) as u64);
    let t0 = Instant::now();
    let (mut sum, mut seen) = (0.0f64, 0usize);
    let report_every = 25usize;
    for step in start..cfg.steps {
        let examples: Vec<Example> = (0..cfg.batch)
            .map(|_| {
                rx.recv().map_err(|_| {
                    Error::arg("train-phasenet", "data", "the simulation thread stopped")
                })?
            })
            .collect::<Result<_>>()?;
        let (x, y, w) = batch_tensors(&examples, cfg, device)?;
        opt.set_lr(cfg.lr_at(step));
        let l = loss_of(cfg.loss, &model.forward(&x)?, &y, &w)?;
        let grads = l.backward()?;
        opt.step(&params, &grads)?;
        let lv = l.item()? as f64;
        if !lv.is_finite() {
            return Err(Error::NonFinite {
                op: "train-phasenet",
                detail: format!("loss {lv} at step {step}; lower --lr"),
            });
        }
        sum += lv;
        seen += 1;
        let done = step + 1;
        let last = done == cfg.steps;
        if done % report_every == 0 || last {
            let val_now = done % (cfg.checkpoint_every * 4) == 0 || last;
            let (vl, vf) = if val_now && !val.is_empty() {
                let (a, b) = validation_losses(model.as_ref(), &val, cfg, device)?;
                (Some(a), Some(b))
            } else {
                (None, None)
            };
            let entry = StepLog {
                step: done,
                loss: sum / seen as f64,
                val_loss: vl,
                val_flat: vf,
                lr: opt.lr(),
                seconds: secs_before + t0.elapsed().as_secs_f64(),
            };
            if cfg.progress {
                let rate = (done - start) as f64 * cfg.batch as f64 / t0.elapsed().as_secs_f64();
                eprintln!(
                    "step {done}/{}: loss {:.4}{} lr {:.1e}, {rate:.2} patterns/s",
                    cfg.steps,
                    entry.loss,
                    match (vl, vf) {
                        (Some(a), Some(b)) => format!(" val {a:.4} (flat phase {b:.4})"),
                        _ => String::new(),
                    },
                    entry.lr
                );
            }
            log.push(entry);
            (sum, seen) = (0.0, 0);
        }
        if done % cfg.checkpoint_every == 0 || last {
            save_state(&ckpt, model.as_ref(), &opt, cfg, done, &log, true)?;
            write_log_csv(&cfg.out, &log)?;
        }
    }
    save_state(&cfg.out, model.as_ref(), &opt, cfg, cfg.steps, &log, false)?;
    Ok(log)
}

/// Writes the step log as CSV beside the model file.
pub fn write_log_csv(out: &Path, log: &[StepLog]) -> Result<()> {
    let mut s = String::from("step,loss,val_loss,val_flat,lr,seconds\n");
    for l in log {
        let o = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
        s.push_str(&format!(
            "{},{:.6},{},{},{:.3e},{:.1}\n",
            l.step,
            l.loss,
            o(l.val_loss),
            o(l.val_flat),
            l.lr,
            l.seconds
        ));
    }
    io::write_atomic(&crate::train::log_path(out, "csv"), s.as_bytes())
}
