//! `bragg train-phasenet`: trains the reciprocal-space phasing network on strained crystals
//! simulated on the fly.

use crate::models::{ModelConfig, ModelKind};
use crate::phasenet::{train_phasenet, PhaseLoss, PhaseTrainConfig};
use crate::sim::Range;
use crate::{Device, Error, Result};
use clap::Args;
use std::path::PathBuf;

/// Flags of `bragg train-phasenet`.
#[derive(Debug, Args)]
pub struct TrainPhasenetArgs {
    /// Output model file (.safetensors); the checkpoint and a CSV log go beside it.
    #[arg(long)]
    pub out: PathBuf,
    /// 2 or 3 dimensions.
    #[arg(long, default_value_t = 3)]
    pub dim: usize,
    /// Grid of the network: side of the simulated training patterns. Larger inputs are
    /// cropped to their central grid at inference.
    #[arg(long, default_value_t = 32)]
    pub size: usize,
    /// Simulate the training crystals on this larger grid and keep the central `--size` grid
    /// of each pattern, as a larger measured array is cropped at inference (0: simulate on
    /// `--size` directly).
    #[arg(long, default_value_t = 0)]
    pub simulate_size: usize,
    /// Total optimiser steps.
    #[arg(long, default_value_t = 10_000)]
    pub steps: usize,
    /// Patterns per step.
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Peak learning rate (warm-up, then cosine decay to 1e-5).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    /// Channels of the first level.
    #[arg(long, default_value_t = 8)]
    pub width: usize,
    /// Levels of the U-Net.
    #[arg(long, default_value_t = 4)]
    pub depth: usize,
    /// Loss: `coherent` (offset- and twin-invariant) or `mse` (plain, for comparison).
    #[arg(long, value_enum, default_value_t = PhaseLoss::Coherent)]
    pub loss: PhaseLoss,
    /// Loss weight of a voxel: its scaled log intensity to this power.
    #[arg(long, default_value_t = 1.0)]
    pub weight_power: f32,
    /// Maximum photon counts of the training patterns, `MIN..MAX` (log-uniform).
    #[arg(long, default_value = "1e5..1e9")]
    pub photons: Range,
    /// Oversampling of the training crystals, `MIN..MAX`.
    #[arg(long, default_value = "2..4.5")]
    pub oversampling: Range,
    /// Seed of the weights and of the simulated data stream.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Steps between checkpoints.
    #[arg(long, default_value_t = 100)]
    pub checkpoint_every: usize,
    /// Held-out patterns for the validation loss.
    #[arg(long, default_value_t = 32)]
    pub validation: usize,
    /// Continue from the checkpoint beside --out (the settings must be the same).
    #[arg(long)]
    pub resume: bool,
}

/// Runs `bragg train-phasenet`.
pub fn run(args: &TrainPhasenetArgs, device: &Device) -> Result<()> {
    if args.steps > 10_000_000 || args.validation > 10_000 {
        return Err(Error::arg(
            "train-phasenet",
            "steps",
            "--steps must be <= 10,000,000 and --validation <= 10,000",
        ));
    }
    let mut cfg = PhaseTrainConfig::new(&args.out);
    cfg.model = ModelConfig {
        dims: args.dim,
        width: args.width,
        depth: args.depth,
        ..ModelConfig::thesis(ModelKind::PhaseUnet)
    };
    cfg.recipe.dim = args.dim;
    cfg.recipe.size = args.size;
    cfg.recipe.simulate_size = args.simulate_size;
    cfg.recipe.photons = args.photons;
    cfg.recipe.oversampling = args.oversampling;
    cfg.steps = args.steps;
    cfg.batch = args.batch;
    cfg.lr = args.lr;
    cfg.loss = args.loss;
    cfg.weight_power = args.weight_power;
    cfg.seed = args.seed;
    cfg.checkpoint_every = args.checkpoint_every;
    cfg.validation = args.validation;
    cfg.resume = args.resume;
    let log = train_phasenet(&cfg, device)?;
    if let Some(l) = log.last() {
        println!(
            "trained {} steps in {:.0} s: loss {:.4}{}; model {}",
            l.step,
            l.seconds,
            l.loss,
            match (l.val_loss, l.val_flat) {
                (Some(a), Some(b)) => format!(", validation {a:.4} (flat phase {b:.4})"),
                _ => String::new(),
            },
            args.out.display()
        );
    }
    Ok(())
}
