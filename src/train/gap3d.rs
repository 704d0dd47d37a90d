//! Training of the residual 3-D gap model on data simulated on the fly.
//!
//! A background thread simulates 64^3 crystals (convex faceted shapes, strain fields and
//! dislocations from [`crate::sim`], oversampling 2-4.5, 1e4-1e8 photons, optional partial
//! coherence blur, a random background before Poisson noise), puts synthetic plane gaps
//! (2-13 px, through or next to the Bragg peak, sometimes a cross) on each, and cuts windows
//! exactly as inference does ([`crate::inpaint::gap3d`]). The loop takes batches from a bounded
//! queue, so simulation overlaps training and no dataset file is written. Every step is
//! reproducible from the seed and the step index, so `resume` continues the same stream.

use crate::inpaint::gap3d::{self, Window, WindowInput};
use crate::inpaint::GapBand;
use crate::loss::mse;
use crate::models::{self, ModelConfig, ModelKind, META_MODEL};
use crate::nn::{io, Adam, Module, Optimizer};
use crate::sim::{self, Range, SimConfig};
use crate::{Device, Error, Result, Tensor};
use ndarray::{Array3, ArrayD, IxDyn};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

/// Metadata key of the window size in gap-model files.
pub const META_WINDOW: &str = "bragg.gap3d.window";
/// Metadata key of the data recipe of a gap model.
pub const META_RECIPE: &str = "bragg.gap3d.recipe";

/// How training volumes and gaps are drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GapRecipe {
    /// Side of the simulated volumes.
    pub size: usize,
    /// Maximum photon count per volume (drawn log-uniformly).
    pub photons: Range,
    /// Oversampling per axis.
    pub oversampling: Range,
    /// Probability of a partial-coherence blur of the intensity.
    pub p_blur: f64,
    /// Blur sigma (voxels) when blurred.
    pub blur: Range,
    /// Mean background counts per voxel before Poisson noise (drawn log-uniformly).
    pub background: Range,
    /// Gap widths, inclusive (drawn uniformly).
    pub widths: [usize; 2],
    /// Largest distance of the gap centre from the peak (voxels).
    pub max_offset: usize,
    /// Probability of a second, orthogonal band (a detector cross).
    pub p_cross: f64,
    /// Probability that a window is placed so that it contains the peak.
    pub p_peak_window: f64,
    /// Windows cut from each simulated volume.
    pub windows_per_volume: usize,
}

impl Default for GapRecipe {
    fn default() -> Self {
        GapRecipe {
            size: 64,
            photons: Range { min: 1e4, max: 1e8 },
            oversampling: Range { min: 2.0, max: 4.5 },
            p_blur: 0.4,
            blur: Range { min: 0.3, max: 1.0 },
            background: Range {
                min: 1e-3,
                max: 1.0,
            },
            widths: [2, 13],
            max_offset: 18,
            p_cross: 0.2,
            p_peak_window: 0.5,
            windows_per_volume: 12,
        }
    }
}

/// Settings of a gap-model training run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gap3dTrainConfig {
    /// Architecture (kind `gap-unet3d`).
    pub model: ModelConfig,
    /// Window size, gap normal first.
    pub window: [usize; 3],
    /// Total optimiser steps (counting resumed ones).
    pub steps: usize,
    /// Windows per step.
    pub batch: usize,
    /// Peak learning rate (cosine decay to `min_lr`).
    pub lr: f32,
    /// Final learning rate.
    pub min_lr: f32,
    /// Seed of the weights and the data stream.
    pub seed: u64,
    /// Data recipe.
    pub recipe: GapRecipe,
    /// Output model file (checkpoint and log beside it).
    pub out: PathBuf,
    /// Continue from the checkpoint beside `out`.
    pub resume: bool,
    /// Steps between checkpoints.
    pub checkpoint_every: usize,
    /// Print progress lines.
    pub progress: bool,
}

impl Gap3dTrainConfig {
    /// Defaults: gap-unet3d width 16 depth 3, window 32x16x16, batch 8, Adam 5e-4 -> 1e-5.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Gap3dTrainConfig {
            model: ModelConfig::thesis(ModelKind::GapUnet3d),
            window: gap3d::DEFAULT_WINDOW,
            steps: 20_000,
            batch: 8,
            lr: 5e-4,
            min_lr: 1e-5,
            seed: 0,
            recipe: GapRecipe::default(),
            out: out.into(),
            resume: false,
            checkpoint_every: 200,
            progress: true,
        }
    }

    fn validate(&self) -> Result<()> {
        self.model.validate()?;
        if self.model.kind != ModelKind::GapUnet3d {
            return Err(Error::arg(
                "train-gap3d",
                "model",
                format!("needs gap-unet3d, got {}", self.model.kind),
            ));
        }
        let k = self.model.size_multiple();
        if self.window.iter().any(|&n| n == 0 || n % k != 0) || self.window[1] != self.window[2] {
            return Err(Error::arg(
                "train-gap3d",
                "window",
                format!(
                    "{:?}: sizes must be multiples of {k} with equal in-plane sides",
                    self.window
                ),
            ));
        }
        if self.window.iter().any(|&n| n > self.recipe.size) || self.window[0] > 128 {
            return Err(Error::arg(
                "train-gap3d",
                "window",
                format!(
                    "{:?} does not fit the {}^3 training volumes",
                    self.window, self.recipe.size
                ),
            ));
        }
        let [w0, w1] = self.recipe.widths;
        if w0 == 0 || w1 < w0 || w1 + 4 > self.window[0] {
            return Err(Error::arg(
                "train-gap3d",
                "widths",
                format!(
                    "{w0}..={w1} must be >= 1 and leave measured planes in a window of {}",
                    self.window[0]
                ),
            ));
        }
        if self.steps == 0 || self.batch == 0 || self.batch > 256 {
            return Err(Error::arg(
                "train-gap3d",
                "steps/batch",
                "steps must be >= 1 and batch in 1..=256",
            ));
        }
        if !(self.lr > 0.0 && self.lr.is_finite() && self.min_lr >= 0.0) {
            return Err(Error::arg("train-gap3d", "lr", "must be positive"));
        }
        Ok(())
    }

    /// Learning rate at `step`: linear warm-up over 200 steps, then cosine decay.
    pub fn lr_at(&self, step: usize) -> f32 {
        let warm = 200.min(self.steps / 10).max(1);
        if step < warm {
            return self.lr * (step + 1) as f32 / warm as f32;
        }
        let t = (step - warm) as f32 / (self.steps - warm).max(1) as f32;
        self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + (std::f32::consts::PI * t).cos())
    }
}

/// One training example: network input (2 channels), target and mask, window order.
#[derive(Debug, Clone)]
pub struct Example {
    /// Scaled log intensity with the gap pre-filled, then the mask: `2 * n` values.
    pub input: Vec<f32>,
    /// Scaled `log(1 + truth)`.
    pub target: Vec<f32>,
    /// Voxels the loss is taken over, when not the whole gap (fine-tuning: the artificial gap
    /// minus the real one, whose values are unknown).
    pub loss_mask: Option<Vec<f32>>,
}

/// Simulates volume `index` of the stream: Poisson counts (with background) and the peak.
pub fn simulate_volume(
    recipe: &GapRecipe,
    seed: u64,
    index: u64,
) -> Result<(Array3<f32>, [usize; 3])> {
    let mut rng = sim::sample_rng(seed ^ 0x6a09_e667_f3bc_c908, index);
    let mut realism = sim::Realism::default();
    if rng.random_bool(recipe.p_blur.clamp(0.0, 1.0)) {
        realism.intensity_blur = Some(recipe.blur);
    }
    let cfg = SimConfig {
        dim: 3,
        size: recipe.size,
        count: 1,
        seed,
        gap: sim::gaps::GapSpec::None,
        photons: recipe.photons,
        oversampling: recipe.oversampling,
        realism,
        ..SimConfig::default()
    };
    let s = sim::simulate_sample(&cfg, index)?;
    let bg = recipe.background.sample_log(&mut rng) as f32;
    let mean = s.noiseless.mapv(|v| v + bg);
    let counts = sim::noise::poisson(&mean, &mut rng);
    let counts = counts
        .into_dimensionality::<ndarray::Ix3>()
        .map_err(|e| Error::shape("train-gap3d", e.to_string()))?;
    let mut peak = [0usize; 3];
    let mut best = f32::NEG_INFINITY;
    for (p, &v) in s.noiseless.indexed_iter() {
        if v > best {
            best = v;
            peak = [p[0], p[1], p[2]];
        }
    }
    Ok((counts, peak))
}

fn band_near(
    rng: &mut ChaCha8Rng,
    recipe: &GapRecipe,
    n: usize,
    peak: usize,
    axis: usize,
) -> GapBand {
    let w = rng
        .random_range(recipe.widths[0]..=recipe.widths[1])
        .min(n - 2);
    let off = recipe.max_offset as i64;
    let c = peak as i64 + rng.random_range(-off..=off);
    let start = (c - w as i64 / 2).clamp(0, (n - w) as i64) as usize;
    GapBand {
        axis,
        start,
        width: w,
    }
}

/// Cuts the examples of one volume: each with its own synthetic gap, window and flips.
pub fn volume_examples(
    counts: &Array3<f32>,
    peak: [usize; 3],
    recipe: &GapRecipe,
    window: [usize; 3],
    rng: &mut ChaCha8Rng,
) -> Vec<Example> {
    let shape = [counts.shape()[0], counts.shape()[1], counts.shape()[2]];
    let log_truth = counts.mapv(|v| v.max(0.0).ln_1p());
    let counts_d = counts.clone().into_dyn();
    let mut out = vec![];
    for _ in 0..recipe.windows_per_volume {
        let axis = rng.random_range(1..=2usize);
        let band = band_near(rng, recipe, shape[axis], peak[axis], axis);
        let mut mask = Array3::<f32>::zeros(shape);
        let mut set_band = |b: &GapBand| {
            for i in b.start..b.start + b.width {
                mask.index_axis_mut(ndarray::Axis(b.axis), i).fill(1.0);
            }
        };
        set_band(&band);
        if rng.random_bool(recipe.p_cross.clamp(0.0, 1.0)) {
            let other = 3 - axis;
            set_band(&band_near(rng, recipe, shape[other], peak[other], other));
        }
        let Ok(prefilled) = gap3d::log_linear_prefill(&counts_d, &mask.clone().into_dyn())
            .into_dimensionality::<ndarray::Ix3>()
        else {
            continue;
        };
        let Ok(mut wins) = gap3d::band_windows(shape, &band, window, window[1]) else {
            continue;
        };
        // One window of the band: containing the peak, or anywhere in the plane.
        let axes = wins[0].axes;
        let mut w: Window = wins.swap_remove(0);
        for (k, &ax) in axes.iter().enumerate().skip(1) {
            let hi = shape[ax] - window[k];
            w.corner[ax] = if rng.random_bool(recipe.p_peak_window.clamp(0.0, 1.0)) {
                let lo = (peak[ax] + 1).saturating_sub(window[k]).min(hi);
                rng.random_range(lo..=peak[ax].min(hi))
            } else {
                rng.random_range(0..=hi)
            };
        }
        let wi: WindowInput = gap3d::window_input(&prefilled, &mask, &w);
        let mut target = Vec::with_capacity(wi.x.len());
        for i in 0..window[0] {
            for j in 0..window[1] {
                for k in 0..window[2] {
                    target.push(
                        wi.scale(log_truth[w.at(i, j, k)])
                            .clamp(-0.25, gap3d::MAX_SCALED),
                    );
                }
            }
        }
        let flips = [
            rng.random_bool(0.5),
            rng.random_bool(0.5),
            rng.random_bool(0.5),
        ];
        let swap = rng.random_bool(0.5);
        let remap = |v: &[f32]| -> Vec<f32> {
            let [d, h, ww] = window;
            let mut o = vec![0.0; v.len()];
            for i in 0..d {
                for j in 0..h {
                    for k in 0..ww {
                        let (si, mut sj, mut sk) = (
                            if flips[0] { d - 1 - i } else { i },
                            if flips[1] { h - 1 - j } else { j },
                            if flips[2] { ww - 1 - k } else { k },
                        );
                        if swap {
                            std::mem::swap(&mut sj, &mut sk);
                        }
                        o[(i * h + j) * ww + k] = v[(si * h + sj) * ww + sk];
                    }
                }
            }
            o
        };
        let mut input = remap(&wi.x);
        input.extend(remap(&wi.m));
        out.push(Example {
            input,
            target: remap(&target),
            loss_mask: None,
        });
    }
    out
}

/// Starts the background simulation thread; examples arrive in stream order from the global
/// example number `from` on (volume `v` gives examples `v * per ..`), only those that `keep`
/// accepts; volumes with no kept example are not simulated (a rank of a data-parallel run
/// simulates only what it trains on).
fn spawn_stream(
    recipe: GapRecipe,
    window: [usize; 3],
    seed: u64,
    from: u64,
    keep: impl Fn(u64) -> bool + Send + 'static,
) -> mpsc::Receiver<Result<Example>> {
    let (tx, rx) = mpsc::sync_channel::<Result<Example>>(96);
    let per = recipe.windows_per_volume.max(1) as u64;
    std::thread::spawn(move || {
        for v in from / per.. {
            let wanted = |g: u64| g >= from && keep(g);
            if !(v * per..(v + 1) * per).any(wanted) {
                continue;
            }
            let examples = simulate_volume(&recipe, seed, v).map(|(counts, peak)| {
                let mut rng = sim::sample_rng(seed ^ 0xbb67_ae85_84ca_a73b, v);
                volume_examples(&counts, peak, &recipe, window, &mut rng)
            });
            match examples {
                Ok(ex) => {
                    for (j, e) in ex.into_iter().enumerate() {
                        if !wanted(v * per + j as u64) {
                            continue;
                        }
                        if tx.send(Ok(e)).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    });
    rx
}

/// Squared error and number of voxels of the plain log-linear fill in the loss masks of
/// `examples` (its mean is the fill's loss, the model's starting point).
fn linear_fill_error(examples: &[Example], window: [usize; 3]) -> (f64, f64) {
    let n: usize = window.iter().product();
    let (mut se, mut cnt) = (0.0f64, 0.0f64);
    for e in examples {
        let lm = e.loss_mask.as_deref().unwrap_or(&e.input[n..]);
        for ((&g, &xi), &yi) in lm.iter().zip(&e.input[..n]).zip(&e.target) {
            if g != 0.0 {
                se += ((xi - yi) as f64).powi(2);
                cnt += 1.0;
            }
        }
    }
    (se, cnt)
}

/// Batches examples into `(input [B,2,...], target [B,1,...], mask [B,1,...])` tensors and the
/// loss of the plain log-linear fill on them (the model's starting point).
pub fn batch_tensors(
    examples: &[Example],
    window: [usize; 3],
    device: &Device,
) -> Result<(Tensor, Tensor, Tensor, f64)> {
    let n: usize = window.iter().product();
    let b = examples.len();
    let mut x = Vec::with_capacity(b * 2 * n);
    let mut y = Vec::with_capacity(b * n);
    let mut m = Vec::with_capacity(b * n);
    for e in examples {
        x.extend_from_slice(&e.input);
        y.extend_from_slice(&e.target);
        m.extend_from_slice(e.loss_mask.as_deref().unwrap_or(&e.input[n..]));
    }
    let (se, cnt) = linear_fill_error(examples, window);
    let [d, h, w] = window;
    Ok((
        Tensor::from_vec(x, &[b, 2, d, h, w], device)?,
        Tensor::from_vec(y, &[b, 1, d, h, w], device)?,
        Tensor::from_vec(m, &[b, 1, d, h, w], device)?,
        se / cnt.max(1.0),
    ))
}

/// A fixed validation set: examples of held-out volumes (another seed).
pub fn validation_set(cfg: &Gap3dTrainConfig, volumes: u64) -> Result<Vec<Example>> {
    let seed = cfg.seed.wrapping_add(0x5eed_0000_0000);
    let mut out = vec![];
    for v in 0..volumes {
        let (counts, peak) = simulate_volume(&cfg.recipe, seed, v)?;
        let mut rng = sim::sample_rng(seed, v);
        out.extend(volume_examples(
            &counts,
            peak,
            &cfg.recipe,
            cfg.window,
            &mut rng,
        ));
    }
    Ok(out)
}

/// Masked MSE of the model and of the log-linear fill on `examples`.
pub fn validation_losses(
    model: &dyn Module,
    examples: &[Example],
    window: [usize; 3],
    device: &Device,
) -> Result<(f64, f64)> {
    validation_losses_on(model, examples, window, device, &crate::dist::SingleProcess)
}

/// [`validation_losses`] with the chunks dealt over the ranks of `comm`.
fn validation_losses_on(
    model: &dyn Module,
    examples: &[Example],
    window: [usize; 3],
    device: &Device,
    comm: &dyn crate::dist::Comm,
) -> Result<(f64, f64)> {
    let chunks: Vec<&[Example]> = examples.chunks(16).collect();
    let mut t = [0.0f64; 3];
    for i in crate::dist::runs_of_rank(chunks.len(), comm.rank(), comm.size()) {
        let chunk = chunks[i];
        let (x, y, m, base) = batch_tensors(chunk, window, device)?;
        let l = crate::autograd::no_grad(|| mse(&model.forward(&x)?, &y, Some(&m)))?.item()?;
        t[0] += l as f64 * chunk.len() as f64;
        t[1] += base * chunk.len() as f64;
        t[2] += chunk.len() as f64;
    }
    comm.all_reduce_sum_f64(&mut t)?;
    Ok((t[0] / t[2], t[1] / t[2]))
}

/// One line of the training log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepLog {
    /// Steps done.
    pub step: usize,
    /// Mean training loss since the last line.
    pub loss: f64,
    /// Loss of the log-linear fill on the same windows.
    pub linear_loss: f64,
    /// Validation loss of the model, when measured.
    pub val_loss: Option<f64>,
    /// Validation loss of the log-linear fill.
    pub val_linear: Option<f64>,
    /// Learning rate.
    pub lr: f32,
    /// Seconds of training so far (all sessions).
    pub seconds: f64,
}

fn save_state(
    path: &Path,
    model: &dyn Module,
    opt: &Adam,
    cfg: &Gap3dTrainConfig,
    step: usize,
    log: &[StepLog],
    with_optimiser: bool,
) -> Result<()> {
    let mut meta = HashMap::new();
    meta.insert(META_MODEL.to_string(), cfg.model.to_json());
    meta.insert(
        models::META_PREPROCESS.to_string(),
        "log1p, gap log-linear prefilled, window min-max over measured voxels".to_string(),
    );
    meta.insert(
        META_WINDOW.to_string(),
        serde_json::to_string(&cfg.window).unwrap_or_default(),
    );
    meta.insert(
        META_RECIPE.to_string(),
        serde_json::to_string(&cfg.recipe).unwrap_or_default(),
    );
    meta.insert("bragg.step".into(), step.to_string());
    meta.insert("bragg.adam_steps".into(), opt.steps().to_string());
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

/// The checkpoint file of a run writing `out`.
pub fn checkpoint_path(out: &Path) -> PathBuf {
    crate::train::checkpoint_path(out)
}

/// Trains the gap model; returns the training log. Checkpoints every `checkpoint_every` steps;
/// the final model (weights and metadata, no optimiser state) goes to `cfg.out`. Launched as
/// several MPI ranks, each simulates and trains on its contiguous part of every global batch
/// of `cfg.batch` (the same examples as one process), the gradients are summed before each
/// step, and rank 0 alone writes the checkpoints, log and model.
pub fn train_gap3d(cfg: &Gap3dTrainConfig, device: &Device) -> Result<Vec<StepLog>> {
    cfg.validate()?;
    let model = models::build(&cfg.model, device, cfg.seed)?;
    let params = model.parameters();
    let mut opt = Adam::new(cfg.lr);
    let mut dp = crate::dist::DataParallel::new(crate::dist::world());
    let root = dp.is_root();
    let show = cfg.progress && root;
    let ckpt = checkpoint_path(&cfg.out);
    let mut start = 0usize;
    let mut log: Vec<StepLog> = vec![];
    let mut secs_before = 0.0;
    if cfg.resume && ckpt.exists() {
        let ck = io::load(&ckpt, device)?;
        let saved: Gap3dTrainConfig = serde_json::from_str(
            ck.metadata.get("bragg.train").map_or("", |s| s),
        )
        .map_err(|e| {
            Error::data(
                &ckpt,
                format!("no training settings in the checkpoint: {e}"),
            )
        })?;
        let mut changed = vec![];
        if saved.model != cfg.model {
            changed.push("model");
        }
        if saved.window != cfg.window {
            changed.push("window");
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
        if !changed.is_empty() {
            return Err(Error::data(
                &ckpt,
                format!(
                    "--resume with changed settings ({}); use the original ones or a new --out",
                    changed.join(", ")
                ),
            ));
        }
        crate::train::restore_weights_and_optimiser(&ckpt, &ck, &params, &mut opt)?;
        start = ck
            .metadata
            .get("bragg.step")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        log = serde_json::from_str(ck.metadata.get("bragg.log").map_or("[]", |s| s))
            .unwrap_or_default();
        secs_before = log.last().map_or(0.0, |l| l.seconds);
        if show {
            eprintln!("resuming at step {start} of {}", cfg.steps);
        }
    }
    dp.broadcast_parameters(&params)?;
    let val = validation_set(cfg, 6)?;
    let mine = dp.share(cfg.batch);
    let (batch, lo, hi) = (cfg.batch as u64, mine.start as u64, mine.end as u64);
    let rx = spawn_stream(
        cfg.recipe.clone(),
        cfg.window,
        cfg.seed,
        start as u64 * batch,
        move |g| (lo..hi).contains(&(g % batch)),
    );
    let mse_spec: crate::loss::LossSpec = "mse".parse()?;
    let t0 = Instant::now();
    let (mut sum, mut base_sum, mut seen) = (0.0f64, 0.0f64, 0usize);
    let report_every = 50usize;
    for step in start..cfg.steps {
        let mut examples = Vec::with_capacity(mine.len());
        for _ in 0..mine.len() {
            let e = rx.recv().map_err(|_| {
                Error::arg("train-gap3d", "data", "the simulation thread stopped")
            })??;
            examples.push(e);
        }
        opt.set_lr(cfg.lr_at(step));
        // [loss, squared error of the linear fill, gap voxels]: summed over the ranks.
        let (se, cnt) = linear_fill_error(&examples, cfg.window);
        let mut totals = [0.0, se, cnt];
        let grads = if examples.is_empty() {
            dp.all_reduce(&params, None, &mut totals)?
        } else {
            let (x, y, m, _) = batch_tensors(&examples, cfg.window, device)?;
            let pred = model.forward(&x)?;
            let l = if dp.size() > 1 {
                let mut count = [cnt];
                dp.comm().all_reduce_sum_f64(&mut count)?;
                let global = crate::loss::GlobalBatch {
                    fraction: examples.len() as f64 / cfg.batch as f64,
                    counts: vec![count[0]],
                };
                mse_spec.eval_part(&pred, &y, Some(&m), &global)?
            } else {
                mse(&pred, &y, Some(&m))?
            };
            let grads = l.backward()?;
            totals[0] = l.item()? as f64;
            dp.all_reduce(&params, Some(grads), &mut totals)?
        };
        opt.step(&params, &grads)?;
        sum += totals[0];
        base_sum += totals[1] / totals[2].max(1.0);
        seen += 1;
        let done = step + 1;
        let last = done == cfg.steps;
        if done % report_every == 0 || last {
            let val_now = done % (cfg.checkpoint_every * 5) == 0 || last;
            let (vl, vb) = if val_now {
                let (a, b) =
                    validation_losses_on(model.as_ref(), &val, cfg.window, device, dp.comm())?;
                (Some(a), Some(b))
            } else {
                (None, None)
            };
            let entry = StepLog {
                step: done,
                loss: sum / seen as f64,
                linear_loss: base_sum / seen as f64,
                val_loss: vl,
                val_linear: vb,
                lr: opt.lr(),
                seconds: secs_before + t0.elapsed().as_secs_f64(),
            };
            if show {
                let rate = (done - start) as f64 * cfg.batch as f64 / t0.elapsed().as_secs_f64();
                eprintln!(
                    "step {done}/{}: loss {:.5} (log-linear {:.5}, ratio {:.3}){} lr {:.1e}, {rate:.1} windows/s",
                    cfg.steps,
                    entry.loss,
                    entry.linear_loss,
                    entry.loss / entry.linear_loss.max(1e-12),
                    match (vl, vb) {
                        (Some(a), Some(b)) => format!(" val {a:.5}/{b:.5} = {:.3}", a / b.max(1e-12)),
                        _ => String::new(),
                    },
                    entry.lr
                );
            }
            log.push(entry);
            (sum, base_sum, seen) = (0.0, 0.0, 0);
        }
        if root && (done % cfg.checkpoint_every == 0 || last) {
            save_state(&ckpt, model.as_ref(), &opt, cfg, done, &log, true)?;
            write_log_csv(&cfg.out, &log)?;
        }
    }
    if root {
        save_state(&cfg.out, model.as_ref(), &opt, cfg, cfg.steps, &log, false)?;
    }
    Ok(log)
}

/// Writes the step log as CSV beside the model file.
pub fn write_log_csv(out: &Path, log: &[StepLog]) -> Result<()> {
    let mut s = String::from("step,loss,linear_loss,val_loss,val_linear,lr,seconds\n");
    for l in log {
        let o = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
        s.push_str(&format!(
            "{},{:.6},{:.6},{},{},{:.3e},{:.1}\n",
            l.step,
            l.loss,
            l.linear_loss,
            o(l.val_loss),
            o(l.val_linear),
            l.lr,
            l.seconds
        ));
    }
    io::write_atomic(&crate::train::log_path(out, "csv"), s.as_bytes())
}

/// A loaded gap model: the network, its window and the file's metadata.
pub struct GapModel {
    /// The network.
    pub model: Box<dyn Module>,
    /// Window size, gap normal first.
    pub window: [usize; 3],
    /// Every metadata entry of the file.
    pub metadata: HashMap<String, String>,
}

/// Checks that a loaded model is a gap model and reads its window (`path` names it in errors).
pub fn gap_model(loaded: models::LoadedModel, path: &Path) -> Result<GapModel> {
    if loaded.config.kind != ModelKind::GapUnet3d {
        return Err(Error::data(
            path,
            format!("is a {} model, not gap-unet3d", loaded.config.kind),
        ));
    }
    let window: [usize; 3] = match loaded.metadata.get(META_WINDOW) {
        Some(s) => serde_json::from_str(s)
            .map_err(|e| Error::data(path, format!("bad `{META_WINDOW}` metadata: {e}")))?,
        None => gap3d::DEFAULT_WINDOW,
    };
    let k = loaded.config.size_multiple();
    if window.iter().any(|&n| n == 0 || n > 256 || n % k != 0) {
        return Err(Error::data(
            path,
            format!("window {window:?} must be positive multiples of {k}, at most 256"),
        ));
    }
    Ok(GapModel {
        model: loaded.model,
        window,
        metadata: loaded.metadata,
    })
}

/// Loads a gap model file.
pub fn load_gap_model(path: &Path, device: &Device) -> Result<GapModel> {
    gap_model(models::load_model(path, device)?, path)
}

/// The shipped gap model (weights embedded in the binary, see `weights/`).
pub fn shipped_gap_model(device: &Device) -> Result<GapModel> {
    let path = Path::new(SHIPPED_GAP3D_NAME);
    let ck = io::load_bytes(SHIPPED_GAP3D, path, device)?;
    gap_model(models::model_from_checkpoint(path, ck, device)?, path)
}

/// Name of the shipped 3-D gap model file in `weights/`.
pub const SHIPPED_GAP3D_NAME: &str = "weights/gap3d.safetensors";
/// The shipped 3-D gap model file.
pub static SHIPPED_GAP3D: &[u8] = include_bytes!("../../weights/gap3d.safetensors");

/// Reads an example as arrays (tests and figures): input, mask and target `[D, H, W]`.
pub fn example_arrays(e: &Example, window: [usize; 3]) -> Result<[ArrayD<f32>; 3]> {
    let n: usize = window.iter().product();
    let sh = IxDyn(&window);
    let f = |v: &[f32]| {
        ArrayD::from_shape_vec(sh.clone(), v.to_vec())
            .map_err(|e| Error::shape("gap3d", e.to_string()))
    };
    Ok([f(&e.input[..n])?, f(&e.input[n..])?, f(&e.target)?])
}

/// Self-supervised fine-tuning of a gap model on one measured volume, for `seconds`:
/// artificial bands as wide as the real gap (normal to any axis, near the peak) are cut out of
/// the measured voxels, the real gap stays masked in the input and is never in the loss, and
/// a copy of the model is trained with Adam (lr 1e-4). Returns the tuned copy.
pub fn finetune(
    g: &GapModel,
    intensity: &ArrayD<f32>,
    mask: &ArrayD<f32>,
    seconds: f64,
    device: &Device,
) -> Result<GapModel> {
    let t0 = Instant::now();
    let json = g.metadata.get(META_MODEL).ok_or_else(|| {
        Error::arg(
            "finetune",
            "model",
            "the gap model has no architecture metadata",
        )
    })?;
    let config = ModelConfig::from_json(json)?;
    let model = models::build(&config, device, 0)?;
    for (dst, src) in model.parameters().iter().zip(g.model.parameters()) {
        let fresh = device.backend().upload(&src.tensor.to_vec()?)?;
        *dst.tensor.update_storage() = fresh;
    }
    let to3 = |a: &ArrayD<f32>| {
        a.clone()
            .into_dimensionality::<ndarray::Ix3>()
            .map_err(|e| Error::shape("finetune", e.to_string()))
    };
    let counts = to3(intensity)?;
    let real = to3(mask)?;
    let shape = [counts.shape()[0], counts.shape()[1], counts.shape()[2]];
    let bands = crate::inpaint::detect_bands(&real);
    let width = bands
        .iter()
        .map(|b| b.width)
        .max()
        .unwrap_or(6)
        .clamp(1, g.window[0] - 4);
    // The peak: brightest measured voxel.
    let mut peak = [0usize; 3];
    let mut best = f32::NEG_INFINITY;
    for ((p, &v), &m) in counts.indexed_iter().zip(real.iter()) {
        if m == 0.0 && v > best {
            best = v;
            peak = [p.0, p.1, p.2];
        }
    }
    let log_counts = ndarray::Zip::from(&counts)
        .and(&real)
        .map_collect(|&v, &m| if m == 0.0 { v.max(0.0).ln_1p() } else { 0.0 });
    let window = g.window;
    let mut rng = sim::sample_rng(0x0f1e_2d3c, 0);
    let params = model.parameters();
    let mut opt = Adam::new(1e-4);
    let batch = 8;
    let mut steps = 0usize;
    while t0.elapsed().as_secs_f64() < seconds {
        let mut examples = vec![];
        while examples.len() < batch {
            let axis = rng.random_range(0..3usize);
            if shape[axis] < window[0] || (0..3).any(|a| a != axis && shape[a] < window[1]) {
                continue;
            }
            let off = 18i64;
            let c = peak[axis] as i64 + rng.random_range(-off..=off);
            let start = (c - width as i64 / 2).clamp(0, (shape[axis] - width) as i64) as usize;
            let band = GapBand { axis, start, width };
            let mut art = Array3::<f32>::zeros(shape);
            for i in start..start + width {
                art.index_axis_mut(ndarray::Axis(axis), i).fill(1.0);
            }
            let combined = ndarray::Zip::from(&art)
                .and(&real)
                .map_collect(|&a, &r| ((a != 0.0) || (r != 0.0)) as u8 as f32);
            let prefilled = to3(&gap3d::log_linear_prefill(
                &counts.clone().into_dyn(),
                &combined.clone().into_dyn(),
            ))?;
            let mut wins = gap3d::band_windows(shape, &band, window, window[1])?;
            let mut w = wins.swap_remove(rng.random_range(0..wins.len()));
            for (k, &ax) in w.axes.clone().iter().enumerate().skip(1) {
                let hi = shape[ax] - window[k];
                let lo = (peak[ax] + 1).saturating_sub(window[k]).min(hi);
                w.corner[ax] = rng.random_range(lo..=peak[ax].min(hi));
            }
            let wi = gap3d::window_input(&prefilled, &combined, &w);
            let mut target = Vec::with_capacity(wi.x.len());
            let mut lm = Vec::with_capacity(wi.x.len());
            let mut idx = 0;
            for i in 0..window[0] {
                for j in 0..window[1] {
                    for k in 0..window[2] {
                        let p = w.at(i, j, k);
                        // Real-gap voxels are never read: their target is the input itself
                        // and they are outside the loss.
                        let measured = real[p] == 0.0;
                        target.push(if measured {
                            wi.scale(log_counts[p]).clamp(-0.25, gap3d::MAX_SCALED)
                        } else {
                            wi.x[idx]
                        });
                        lm.push((art[p] != 0.0 && measured) as u8 as f32);
                        idx += 1;
                    }
                }
            }
            if lm.iter().all(|&v| v == 0.0) {
                continue;
            }
            let mut input = wi.x;
            input.extend(wi.m);
            examples.push(Example {
                input,
                target,
                loss_mask: Some(lm),
            });
        }
        let (x, y, m, _) = batch_tensors(&examples, window, device)?;
        let l = mse(&model.forward(&x)?, &y, Some(&m))?;
        let grads = l.backward()?;
        opt.step(&params, &grads)?;
        steps += 1;
    }
    let mut metadata = g.metadata.clone();
    metadata.insert("bragg.finetune_steps".into(), steps.to_string());
    Ok(GapModel {
        model,
        window,
        metadata,
    })
}
