//! Supervised training of the inpainting models: seeded shuffled batches, Adam,
//! reduce-on-plateau on the validation loss, a loss from a [`LossSpec`] restricted to the gap,
//! an atomic checkpoint (weights + optimiser state + epoch) after every epoch with `resume`,
//! a progress bar, and CSV/JSON loss logs.

pub mod data;
pub mod gap3d;
pub mod resume;

use crate::autograd::no_grad;
use crate::loss::LossSpec;
use crate::models::{self, ModelConfig, META_MODEL};
use crate::nn::{io, Adam, Module, Optimizer, ReduceOnPlateau};
use crate::{Device, Error, Result, Tensor};
pub use data::{epoch_order, normalise, Prepared};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Training settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Architecture.
    pub model: ModelConfig,
    /// Number of epochs (in total, counting resumed ones).
    pub epochs: usize,
    /// Batch size.
    pub batch: usize,
    /// Initial learning rate of Adam.
    pub lr: f32,
    /// Loss specification, e.g. `mse+ssim+grad` (evaluated in the gap).
    pub loss: String,
    /// Seed of the weights and of the batch order.
    pub seed: u64,
    /// Reduce-on-plateau factor.
    pub plateau_factor: f32,
    /// Reduce-on-plateau patience (epochs).
    pub plateau_patience: usize,
    /// Smallest learning rate.
    pub min_lr: f32,
    /// Output model file; the checkpoint and logs are written beside it.
    pub out: PathBuf,
    /// Continue from the checkpoint beside `out` if there is one.
    pub resume: bool,
    /// Show a progress bar.
    pub progress: bool,
    /// Stop each epoch after this many steps (quick experiments and tests).
    pub max_steps: Option<usize>,
}

impl TrainConfig {
    /// Defaults of the thesis: batch 32, Adam 1e-4, plateau factor 0.15 / patience 4 / 1e-6.
    pub fn new(model: ModelConfig, out: impl Into<PathBuf>) -> TrainConfig {
        TrainConfig {
            model,
            epochs: 10,
            batch: 32,
            lr: 1e-4,
            loss: "mse+ssim+grad".into(),
            seed: 0,
            plateau_factor: 0.15,
            plateau_patience: 4,
            min_lr: 1e-6,
            out: out.into(),
            resume: false,
            progress: true,
            max_steps: None,
        }
    }

    fn validate(&self) -> Result<()> {
        self.model.validate()?;
        if self.model.kind == crate::models::ModelKind::PhaseUnet {
            return Err(Error::arg(
                "train",
                "model",
                "phase-unet predicts phases, not gap fills: train it with `bragg train-phasenet`",
            ));
        }
        if self.epochs == 0 || self.batch == 0 {
            return Err(Error::arg("train", "epochs/batch", "must be >= 1"));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(Error::arg(
                "train",
                "lr",
                format!("must be positive, got {}", self.lr),
            ));
        }
        Ok(())
    }
}

/// Path of the checkpoint written beside a model file (`m.safetensors` -> `m.ckpt.safetensors`).
pub fn checkpoint_path(out: &Path) -> PathBuf {
    sibling(out, "ckpt.safetensors")
}

/// Path of a log beside the model file (`m.safetensors` -> `m.log.csv`).
pub fn log_path(out: &Path, ext: &str) -> PathBuf {
    sibling(out, &format!("log.{ext}"))
}

fn sibling(out: &Path, suffix: &str) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "model".into());
    out.with_file_name(format!("{stem}.{suffix}"))
}

/// One epoch of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Mean validation loss.
    pub val_loss: Option<f64>,
    /// Learning rate used.
    pub lr: f32,
    /// Wall time of the epoch.
    pub seconds: f64,
    /// Training throughput.
    pub samples_per_s: f64,
}

/// What [`train`] returns.
pub struct Trained {
    /// The trained network.
    pub model: Box<dyn Module>,
    /// Every epoch (resumed ones included).
    pub history: Vec<EpochLog>,
}

/// Mean loss of `model` over `data` without gradients.
pub fn evaluate_loss(
    model: &dyn Module,
    data: &Prepared,
    loss: &LossSpec,
    batch: usize,
    device: &Device,
) -> Result<f64> {
    evaluate_loss_on(
        model,
        data,
        loss,
        batch,
        device,
        &crate::dist::SingleProcess,
    )
}

/// [`evaluate_loss`] with the batches dealt over the ranks of `comm` (every rank gets the
/// mean over all of `data`).
pub fn evaluate_loss_on(
    model: &dyn Module,
    data: &Prepared,
    loss: &LossSpec,
    batch: usize,
    device: &Device,
    comm: &dyn crate::dist::Comm,
) -> Result<f64> {
    no_grad(|| {
        let (mut sum, mut n) = (0.0f64, 0usize);
        let idx: Vec<usize> = (0..data.len()).collect();
        let chunks: Vec<&[usize]> = idx.chunks(batch.max(1)).collect();
        for i in crate::dist::runs_of_rank(chunks.len(), comm.rank(), comm.size()) {
            let chunk = chunks[i];
            let (x, y, m) = data.batch(chunk, device)?;
            let l = loss.eval(&model.forward(&x)?, &y, Some(&m))?.item()?;
            if !l.is_finite() {
                return Err(Error::NonFinite {
                    op: "evaluate_loss",
                    detail: format!("the loss is {l}: an input holds NaN or infinite values"),
                });
            }
            sum += l as f64 * chunk.len() as f64;
            n += chunk.len();
        }
        let mut totals = [sum, n as f64];
        comm.all_reduce_sum_f64(&mut totals)?;
        Ok(totals[0] / totals[1].max(1.0))
    })
}

fn check_data(cfg: &ModelConfig, d: &Prepared, what: &str) -> Result<()> {
    let s = d.pattern_shape();
    if s.len() != cfg.dims {
        return Err(Error::shape(
            "train",
            format!(
                "{what} patterns {s:?} are {}-D, the {} model is {}-D",
                s.len(),
                cfg.kind,
                cfg.dims
            ),
        ));
    }
    let k = cfg.size_multiple();
    if s.iter().any(|&n| n % k != 0) {
        return Err(Error::shape(
            "train",
            format!(
                "{what} patterns {s:?} must be multiples of {k} for this {} model",
                cfg.kind
            ),
        ));
    }
    Ok(())
}

/// Trains `cfg.model` on `train_set`, validating on `val` after every epoch. Launched as
/// several MPI ranks (see [`crate::dist`]), every rank holds a replica and computes its part
/// of each global batch of `cfg.batch` (the ranks see the global order of one process, and
/// sum their gradients before each step, so the weights follow those of one process up to
/// rounding); rank 0 alone writes the checkpoints, logs and model.
pub fn train(
    cfg: &TrainConfig,
    train_set: &Prepared,
    val: Option<&Prepared>,
    device: &Device,
) -> Result<Trained> {
    cfg.validate()?;
    check_data(&cfg.model, train_set, "training")?;
    if let Some(v) = val {
        check_data(&cfg.model, v, "validation")?;
    }
    let loss: LossSpec = cfg.loss.parse()?;
    let model = models::build(&cfg.model, device, cfg.seed)?;
    let params = model.parameters();
    let mut opt = Adam::new(cfg.lr);
    let mut plateau = ReduceOnPlateau::new(cfg.plateau_factor, cfg.plateau_patience, cfg.min_lr);
    let mut history: Vec<EpochLog> = vec![];
    let ckpt_path = checkpoint_path(&cfg.out);
    let data_meta = resume::data_metadata(train_set, val);
    let mut dp = crate::dist::DataParallel::new(crate::dist::world());
    let root = dp.is_root();
    let show = cfg.progress && root;

    if cfg.resume && ckpt_path.exists() {
        let ck = io::load(&ckpt_path, device)?;
        let saved = ck.metadata.get(META_MODEL).cloned().unwrap_or_default();
        if ModelConfig::from_json(&saved).ok().as_ref() != Some(&cfg.model) {
            return Err(Error::data(
                &ckpt_path,
                format!(
                    "checkpoint model {saved} differs from the requested {}",
                    cfg.model.to_json()
                ),
            ));
        }
        resume::check(&ckpt_path, &ck.metadata, cfg, &data_meta)?;
        restore_weights_and_optimiser(&ckpt_path, &ck, &params, &mut opt)?;
        history = serde_json::from_str(ck.metadata.get("bragg.history").map_or("[]", |s| s))
            .map_err(|e| Error::data(&ckpt_path, format!("bad history: {e}")))?;
        let mut lr = cfg.lr;
        for h in &history {
            lr = plateau.observe(h.val_loss.unwrap_or(h.train_loss) as f32, lr);
        }
        opt.set_lr(lr);
    }
    // Identical replicas even if a rank's initialisation or checkpoint differed.
    dp.broadcast_parameters(&params)?;
    if show && dp.size() > 1 {
        eprintln!(
            "data-parallel on {} ranks: {} examples per rank and step",
            dp.size(),
            crate::dist::share(cfg.batch, 0, dp.size()).len()
        );
    }

    let n = train_set.len();
    let steps_full = n.div_ceil(cfg.batch);
    let steps = cfg.max_steps.map_or(steps_full, |m| m.min(steps_full));
    for epoch in history.len()..cfg.epochs {
        let t0 = Instant::now();
        let order = epoch_order(n, cfg.seed, epoch);
        let bar = if show {
            let b = ProgressBar::new(steps as u64);
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:25}] {pos}/{len} {msg} [{elapsed_precise}<{eta_precise}]",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_prefix(format!("epoch {}/{}", epoch + 1, cfg.epochs));
            b
        } else {
            ProgressBar::hidden()
        };
        let (mut sum, mut seen) = (0.0f64, 0usize);
        for chunk in order.chunks(cfg.batch).take(steps) {
            let part = &chunk[dp.share(chunk.len())];
            // Across ranks, each part's loss is its share of the global batch's loss.
            let global = if dp.size() > 1 {
                Some(crate::loss::GlobalBatch {
                    fraction: part.len() as f64 / chunk.len() as f64,
                    counts: loss.mask_counts(Some(&train_set.mask_batch(chunk)?))?,
                })
            } else {
                None
            };
            let (grads, mut value) = if part.is_empty() {
                (None, [0.0f64])
            } else {
                let (x, y, m) = train_set.batch(part, device)?;
                let pred = model.forward(&x)?;
                let l = match &global {
                    Some(g) => loss.eval_part(&pred, &y, Some(&m), g)?,
                    None => loss.eval(&pred, &y, Some(&m))?,
                };
                (Some(l.backward()?), [l.item()? as f64])
            };
            let grads = dp.all_reduce(&params, grads, &mut value)?;
            opt.step(&params, &grads)?;
            let v = value[0];
            if !v.is_finite() {
                return Err(Error::NonFinite {
                    op: "train",
                    detail: format!(
                        "the training loss is {v} at epoch {} (an input or a weight holds NaN \
                         or infinite values, or the learning rate is too high)",
                        epoch + 1
                    ),
                });
            }
            sum += v * chunk.len() as f64;
            seen += chunk.len();
            let rate = seen as f64 / t0.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "loss {:.5} {:.1} samples/s",
                sum / seen as f64,
                rate
            ));
            bar.inc(1);
        }
        bar.finish_and_clear();
        let val_loss = match val {
            Some(v) => Some(evaluate_loss_on(
                model.as_ref(),
                v,
                &loss,
                cfg.batch,
                device,
                dp.comm(),
            )?),
            None => None,
        };
        let secs = t0.elapsed().as_secs_f64();
        let log = EpochLog {
            epoch: epoch + 1,
            train_loss: sum / seen.max(1) as f64,
            val_loss,
            lr: opt.lr(),
            seconds: secs,
            samples_per_s: seen as f64 / secs.max(1e-9),
        };
        if show {
            eprintln!(
                "epoch {}/{}: train {:.5}{} lr {:.2e} ({:.1}s, {:.1} samples/s)",
                log.epoch,
                cfg.epochs,
                log.train_loss,
                log.val_loss
                    .map_or(String::new(), |v| format!(" val {v:.5}")),
                log.lr,
                log.seconds,
                log.samples_per_s
            );
        }
        let next_lr = plateau.observe(log.val_loss.unwrap_or(log.train_loss) as f32, opt.lr());
        opt.set_lr(next_lr);
        history.push(log);
        if root {
            save_checkpoint(&ckpt_path, model.as_ref(), &opt, cfg, &history, &data_meta)?;
            write_logs(&cfg.out, &history)?;
        }
    }
    if root && dp.size() > 1 {
        let s = dp.stats();
        eprintln!(
            "gradient all-reduce: {:.2} ms per step ({} numbers in {} buckets, of which {:.2} ms waiting for the slowest rank), {} steps",
            s.ms_per_step(),
            s.floats_per_step,
            s.buckets_per_step,
            s.wait_ms_per_step(),
            s.steps
        );
    }
    let extra = vec![
        ("bragg.loss".to_string(), loss.to_string()),
        ("bragg.epochs".to_string(), history.len().to_string()),
        (
            "bragg.history".to_string(),
            serde_json::to_string(&history).unwrap_or_default(),
        ),
    ];
    if root {
        models::save_model(&cfg.out, model.as_ref(), &cfg.model, &extra)?;
    }
    Ok(Trained { model, history })
}

fn save_checkpoint(
    path: &Path,
    model: &dyn Module,
    opt: &Adam,
    cfg: &TrainConfig,
    history: &[EpochLog],
    data_meta: &[(String, String)],
) -> Result<()> {
    let mut meta = HashMap::new();
    meta.insert(META_MODEL.to_string(), cfg.model.to_json());
    meta.insert(
        models::META_PREPROCESS.to_string(),
        data::PREPROCESS.to_string(),
    );
    meta.insert("bragg.epoch".into(), history.len().to_string());
    meta.insert(
        "bragg.history".into(),
        serde_json::to_string(history).unwrap_or_default(),
    );
    meta.insert(
        "bragg.train".into(),
        serde_json::to_string(cfg).unwrap_or_default(),
    );
    meta.extend(data_meta.iter().cloned());
    save_state(path, model, Some(opt), &meta)
}

/// Saves a training state atomically: the model's parameters, the Adam moments when `opt` is
/// given (checkpoints; final model files leave them out), and `meta`.
pub fn save_state(
    path: &Path,
    model: &dyn Module,
    opt: Option<&Adam>,
    meta: &HashMap<String, String>,
) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> = model
        .parameters()
        .into_iter()
        .map(|p| (p.name, p.tensor))
        .collect();
    if let Some(opt) = opt {
        tensors.extend(opt.state());
    }
    io::save(path, &tensors, meta)
}

/// Copies a checkpoint's weights into `params` and its Adam moments (the `adam.` tensors) into
/// `opt` (`path` names the checkpoint in errors).
pub fn restore_weights_and_optimiser(
    path: &Path,
    ck: &io::Checkpoint,
    params: &[crate::nn::Param],
    opt: &mut Adam,
) -> Result<()> {
    io::load_into(path, ck, params)?;
    let state: HashMap<String, Tensor> = ck
        .tensors
        .iter()
        .filter(|(k, _)| k.starts_with("adam."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    opt.load_state(&state)
}

/// Writes the CSV and JSON loss logs beside the model file.
pub fn write_logs(out: &Path, history: &[EpochLog]) -> Result<()> {
    let mut csv = String::from("epoch,train_loss,val_loss,lr,seconds,samples_per_s\n");
    for h in history {
        csv.push_str(&format!(
            "{},{:.6},{},{:.3e},{:.2},{:.2}\n",
            h.epoch,
            h.train_loss,
            h.val_loss.map_or(String::new(), |v| format!("{v:.6}")),
            h.lr,
            h.seconds,
            h.samples_per_s
        ));
    }
    io::write_atomic(&log_path(out, "csv"), csv.as_bytes())?;
    let json = serde_json::to_string_pretty(history).unwrap_or_default();
    io::write_atomic(&log_path(out, "json"), json.as_bytes())
}
