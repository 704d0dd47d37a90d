//! `bragg train-gap3d`: trains the residual 3-D gap model on crystals simulated on the fly.

use crate::models::{ModelConfig, ModelKind};
use crate::train::gap3d::{train_gap3d, Gap3dTrainConfig};
use crate::{Device, Error, Result};
use clap::Args;
use std::path::PathBuf;

/// Flags of `bragg train-gap3d`.
#[derive(Debug, Args)]
pub struct TrainGap3dArgs {
    /// Output model file (.safetensors); the checkpoint and a CSV log go beside it.
    #[arg(long)]
    pub out: PathBuf,
    /// Total optimiser steps.
    #[arg(long, default_value_t = 20_000)]
    pub steps: usize,
    /// Windows per step.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Peak learning rate (warm-up, then cosine decay).
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f32,
    /// Channels of the first level.
    #[arg(long, default_value_t = 16)]
    pub width: usize,
    /// Levels of the UNet.
    #[arg(long, default_value_t = 3)]
    pub depth: usize,
    /// Window along the gap normal.
    #[arg(long, default_value_t = 32)]
    pub window_normal: usize,
    /// Window side in the gap plane.
    #[arg(long, default_value_t = 16)]
    pub window_side: usize,
    /// Seed of the weights and of the simulated data stream.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Steps between checkpoints.
    #[arg(long, default_value_t = 200)]
    pub checkpoint_every: usize,
    /// Continue from the checkpoint beside --out (the settings must be the same).
    #[arg(long)]
    pub resume: bool,
}

/// Runs `bragg train-gap3d`.
pub fn run(args: &TrainGap3dArgs, device: &Device) -> Result<()> {
    if args.steps > 10_000_000 || args.checkpoint_every == 0 {
        return Err(Error::arg(
            "train-gap3d",
            "steps",
            "--steps must be <= 10,000,000 and --checkpoint-every >= 1",
        ));
    }
    let mut cfg = Gap3dTrainConfig::new(&args.out);
    cfg.model = ModelConfig {
        width: args.width,
        depth: args.depth,
        ..ModelConfig::thesis(ModelKind::GapUnet3d)
    };
    cfg.window = [args.window_normal, args.window_side, args.window_side];
    cfg.steps = args.steps;
    cfg.batch = args.batch;
    cfg.lr = args.lr;
    cfg.seed = args.seed;
    cfg.checkpoint_every = args.checkpoint_every;
    cfg.resume = args.resume;
    let log = train_gap3d(&cfg, device)?;
    let root = crate::dist::world().is_root();
    if let Some(l) = log.last().filter(|_| root) {
        println!(
            "trained {} steps in {:.0} s: loss {:.5} (log-linear fill {:.5}); model {}",
            l.step,
            l.seconds,
            l.loss,
            l.linear_loss,
            args.out.display()
        );
    }
    Ok(())
}
