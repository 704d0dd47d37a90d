//! `bragg train`: trains an inpainting model on a simulated `.npz` dataset.

use crate::data::Dataset;
use crate::models::{ModelConfig, ModelKind};
use crate::train::{train, Prepared, TrainConfig};
use crate::{Device, Result};
use clap::Args;
use std::path::PathBuf;

/// Flags of `bragg train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Architecture: unet, dilated-unet, msd, patch-unet3d.
    #[arg(long)]
    pub model: ModelKind,
    /// Training set (.npz with intensity, truth, mask).
    #[arg(long)]
    pub data: PathBuf,
    /// Validation set (.npz); without it the plateau schedule watches the training loss.
    #[arg(long)]
    pub val: Option<PathBuf>,
    /// Epochs.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f32,
    /// Loss in the gap: terms mse, mae, ssim, slice-ssim, grad, grad-l1 joined by `+`,
    /// optionally weighted (`mse+0.5*ssim`).
    #[arg(long, default_value = "mse+ssim+grad")]
    pub loss: String,
    /// Output model file (.safetensors); checkpoint and logs go beside it.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue from the checkpoint beside --out.
    #[arg(long)]
    pub resume: bool,
    /// Seed of the weights and the batch order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
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
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl TrainArgs {
    /// The model configuration: the thesis one of the kind, with the given overrides; the
    /// dimensionality follows the data.
    pub fn model_config(&self, dims: usize) -> ModelConfig {
        let mut c = ModelConfig::thesis(self.model);
        c.dims = dims;
        if let Some(w) = self.width {
            c.width = w;
        }
        if let Some(d) = self.depth {
            c.depth = d;
        }
        if let Some(d) = self.max_dilation {
            c.max_dilation = d;
        }
        c
    }
}

/// Runs the subcommand.
pub fn run(args: &TrainArgs, device: &Device) -> Result<()> {
    let train_set = Prepared::from_dataset(&Dataset::load(&args.data)?)?;
    let val = match &args.val {
        Some(p) => Some(Prepared::from_dataset(&Dataset::load(p)?)?),
        None => None,
    };
    let model = args.model_config(train_set.pattern_shape().len());
    let cfg = TrainConfig {
        epochs: args.epochs,
        batch: args.batch,
        lr: args.lr,
        loss: args.loss.clone(),
        seed: args.seed,
        resume: args.resume,
        progress: !args.quiet,
        max_steps: args.max_steps,
        ..TrainConfig::new(model, args.out.clone())
    };
    let t0 = std::time::Instant::now();
    let trained = train(&cfg, &train_set, val.as_ref(), device)?;
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
