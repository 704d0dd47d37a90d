//! `bragg train`: trains an inpainting model on a simulated `.npz` dataset.

use crate::data::Dataset;
use crate::models::{ModelConfig, ModelKind};
use crate::train::{train, Prepared, TrainConfig};
use crate::{Device, Error, Result};
use clap::Args;
use serde::Deserialize;
use std::path::PathBuf;

/// Flags of `bragg train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Architecture: unet, dilated-unet, msd, patch-unet3d (or from --recipe).
    #[arg(long)]
    pub model: Option<ModelKind>,
    /// Recipe TOML: a `[model]` table (a `ModelConfig`) and optional `epochs`, `batch`, `lr`,
    /// `loss`, `seed`; flags given on the command line win.
    #[arg(long)]
    pub recipe: Option<PathBuf>,
    /// Training set (.npz with intensity, truth, mask).
    #[arg(long)]
    pub data: PathBuf,
    /// Validation set (.npz); without it the plateau schedule watches the training loss.
    #[arg(long)]
    pub val: Option<PathBuf>,
    /// Epochs [default: 10].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Batch size [default: 32].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Adam learning rate [default: 1e-4].
    #[arg(long)]
    pub lr: Option<f32>,
    /// Loss in the gap: terms mse, mae, ssim, slice-ssim, grad, grad-l1 joined by `+`,
    /// optionally weighted (`mse+0.5*ssim`) [default: mse+ssim+grad].
    #[arg(long)]
    pub loss: Option<String>,
    /// Output model file (.safetensors); checkpoint and logs go beside it.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue from the checkpoint beside --out.
    #[arg(long)]
    pub resume: bool,
    /// Seed of the weights and the batch order [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Base width (UNets: channels of the first block; MSD: channels per layer).
    #[arg(long)]
    pub width: Option<usize>,
    /// Depth (UNets: encoder blocks; MSD: layers).
    #[arg(long)]
    pub depth: Option<usize>,
    /// Largest dilation of MSD-Net.
    #[arg(long)]
    pub max_dilation: Option<usize>,
    /// Stop every epoch after this many steps.
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Patch models: cut this many 32^3 patches with artificial centred gaps from every 3-D
    /// `truth` volume of --data / --val (instead of using their patterns as they are).
    #[arg(long)]
    pub patches: Option<usize>,
    /// Width of the artificial gap of --patches.
    #[arg(long, default_value_t = 6)]
    pub patch_gap: usize,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// A training recipe file (`datasets/*.toml`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainRecipe {
    /// Architecture.
    pub model: Option<ModelConfig>,
    /// Epochs.
    pub epochs: Option<usize>,
    /// Batch size.
    pub batch: Option<usize>,
    /// Learning rate.
    pub lr: Option<f32>,
    /// Loss specification.
    pub loss: Option<String>,
    /// Seed.
    pub seed: Option<u64>,
}

impl TrainArgs {
    /// The training configuration: defaults, then the recipe, then the flags; the model's
    /// dimensionality follows the data.
    pub fn config(&self, dims: usize) -> Result<TrainConfig> {
        let r: TrainRecipe = match &self.recipe {
            Some(p) => {
                let text = crate::data::io::read_text_bounded(
                    p,
                    crate::data::io::MAX_RECIPE_BYTES,
                    "recipe",
                )?;
                toml::from_str(&text).map_err(|e| Error::data(p, format!("recipe: {e}")))?
            }
            None => TrainRecipe::default(),
        };
        let mut m = match (self.model, &r.model) {
            (Some(k), Some(c)) if c.kind == k => c.clone(),
            (Some(k), _) => ModelConfig::thesis(k),
            (None, Some(c)) => c.clone(),
            (None, None) => {
                return Err(Error::arg(
                    "train",
                    "model",
                    "give --model KIND or a recipe with [model]",
                ))
            }
        };
        m.dims = dims;
        if let Some(w) = self.width {
            m.width = w;
        }
        if let Some(d) = self.depth {
            m.depth = d;
        }
        if let Some(d) = self.max_dilation {
            m.max_dilation = d;
        }
        let d = TrainConfig::new(m, self.out.clone());
        Ok(TrainConfig {
            epochs: self.epochs.or(r.epochs).unwrap_or(d.epochs),
            batch: self.batch.or(r.batch).unwrap_or(d.batch),
            lr: self.lr.or(r.lr).unwrap_or(d.lr),
            loss: self.loss.clone().or(r.loss).unwrap_or(d.loss.clone()),
            seed: self.seed.or(r.seed).unwrap_or(d.seed),
            resume: self.resume,
            progress: !self.quiet,
            max_steps: self.max_steps,
            ..d
        })
    }
}

/// Largest accepted `--epochs`.
pub const MAX_EPOCHS: usize = 100_000;
/// Largest accepted `--batch`.
pub const MAX_BATCH: usize = 65_536;
/// Largest accepted `--patches` (per volume).
pub const MAX_PATCHES: usize = 10_000;

impl TrainArgs {
    /// Checks the numeric flags before any file is read; errors name the flag and the range.
    pub fn check(&self) -> Result<()> {
        let range = |flag: &'static str, v: Option<usize>, max: usize| -> Result<()> {
            match v {
                Some(v) if v == 0 || v > max => Err(Error::arg(
                    "train",
                    flag,
                    format!("{v} asked, allowed 1..={max}"),
                )),
                _ => Ok(()),
            }
        };
        range("--epochs", self.epochs, MAX_EPOCHS)?;
        range("--batch", self.batch, MAX_BATCH)?;
        range("--patches", self.patches, MAX_PATCHES)?;
        range("--max-steps", self.max_steps, usize::MAX)?;
        range("--width", self.width, 4096)?;
        range("--depth", self.depth, 400)?;
        range("--max-dilation", self.max_dilation, 1024)?;
        let p = crate::models::patch_unet3d::PATCH;
        if self.patches.is_some() && (self.patch_gap == 0 || self.patch_gap >= p) {
            return Err(Error::arg(
                "train",
                "--patch-gap",
                format!("{} asked, allowed 1..={}", self.patch_gap, p - 1),
            ));
        }
        if let Some(lr) = self.lr {
            if !(lr > 0.0 && lr.is_finite()) {
                return Err(Error::arg(
                    "train",
                    "--lr",
                    format!("{lr}: must be positive and finite"),
                ));
            }
        }
        Ok(())
    }
}

/// Rough bytes of host memory a CPU training run needs: weights, gradients and the two Adam
/// moments, plus the activations of one batch kept for the backward pass.
pub fn training_bytes(m: &ModelConfig, pattern: &[usize], batch: usize) -> u64 {
    let voxels: u64 = pattern.iter().map(|&n| n as u64).product();
    let b = batch as u64;
    let per_sample: u64 = match m.kind {
        ModelKind::Unet | ModelKind::DilatedUnet => (0..m.depth)
            .map(|i| {
                let w = (m.width as u64).saturating_mul(1 << i.min(62));
                (voxels >> (m.dims * i).min(63)).saturating_mul(w.saturating_mul(6))
            })
            .fold(0u64, u64::saturating_add),
        ModelKind::Msd => voxels.saturating_mul(1 + (m.depth as u64) * (m.width as u64) * 3),
        ModelKind::PatchUnet3d => voxels.saturating_mul(1500),
        ModelKind::GapUnet3d | ModelKind::PhaseUnet => {
            voxels.saturating_mul((m.width as u64).saturating_mul(16))
        }
    };
    m.parameter_count()
        .saturating_mul(16)
        .saturating_add(per_sample.saturating_mul(b).saturating_mul(4))
}

/// Runs the subcommand.
pub fn run(args: &TrainArgs, device: &Device) -> Result<()> {
    args.check()?;
    let load = |p: &std::path::Path, seed: u64| -> Result<Prepared> {
        let ds = Dataset::load(p)?;
        match args.patches {
            Some(n) => {
                let truth = ds.require("truth")?;
                let pp = crate::models::patch_unet3d::PATCH as u64;
                let bytes = (truth.shape()[0] as u64)
                    .saturating_mul(n as u64)
                    .saturating_mul(pp * pp * pp * 4 * 5);
                crate::data::io::check_allocation(
                    p,
                    &format!("{n} patches of {pp}^3 per volume"),
                    bytes,
                )?;
                Prepared::from_patches(
                    truth,
                    n,
                    crate::models::patch_unet3d::PATCH,
                    args.patch_gap,
                    seed,
                )
            }
            None => {
                ds.require_gaps()?;
                Prepared::from_dataset(&ds)
            }
        }
    };
    let seed = args.seed.unwrap_or(0);
    let train_set = load(&args.data, seed)?;
    let val = match &args.val {
        Some(p) => Some(load(p, seed + 1)?),
        None => None,
    };
    let cfg = args.config(train_set.pattern_shape().len())?;
    cfg.model.validate()?;
    if !device.is_opencl() {
        let need = training_bytes(&cfg.model, train_set.pattern_shape(), cfg.batch);
        if let Some(avail) = crate::data::io::available_memory() {
            if need > avail {
                return Err(Error::arg(
                    "train",
                    "--width/--depth/--batch",
                    format!(
                        "{} width {} depth {} at batch {} on {:?} patterns needs about {} of memory, {} is available",
                        cfg.model.kind,
                        cfg.model.width,
                        cfg.model.depth,
                        cfg.batch,
                        train_set.pattern_shape(),
                        crate::data::io::human_bytes(need),
                        crate::data::io::human_bytes(avail)
                    ),
                ));
            }
        }
    }
    let t0 = std::time::Instant::now();
    let trained = train(&cfg, &train_set, val.as_ref(), device)?;
    if !crate::dist::world().is_root() {
        return Ok(());
    }
    eprintln!(
        "{} ({} parameters) trained in {:.1} s -> {} (log {})",
        cfg.model.kind,
        trained.model.num_parameters(),
        t0.elapsed().as_secs_f64(),
        args.out.display(),
        crate::train::log_path(&args.out, "csv").display()
    );
    Ok(())
}
