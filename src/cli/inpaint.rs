//! `bragg inpaint`: fills the gaps of measured or simulated patterns with a trained model.

use crate::data::npy::NpzWriter;
use crate::data::Dataset;
use crate::inpaint::{inpaint_pattern, DEFAULT_STRIDE};
use crate::models::load_model;
use crate::{Device, Result};
use clap::Args;
use ndarray::{ArrayD, Axis};
use std::path::PathBuf;

/// Flags of `bragg inpaint`.
#[derive(Debug, Args)]
pub struct InpaintArgs {
    /// Model file written by `bragg train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Input .npz with `intensity` and `mask` (1 = gap), batch first.
    #[arg(long)]
    pub input: PathBuf,
    /// Output .npz: `intensity` (filled; measured pixels unchanged) and `mask`.
    #[arg(long)]
    pub out: PathBuf,
    /// Stride of the 3-D sliding window of patch models (1 = the reference, slow).
    #[arg(long, default_value_t = DEFAULT_STRIDE)]
    pub stride: usize,
}

/// Runs the subcommand.
pub fn run(args: &InpaintArgs, device: &Device) -> Result<()> {
    let p = crate::models::patch_unet3d::PATCH;
    if args.stride == 0 || args.stride > p {
        return Err(crate::Error::arg(
            "inpaint",
            "--stride",
            format!("{} asked, allowed 1..={p}", args.stride),
        ));
    }
    let ds = Dataset::load(&args.input)?;
    let intensity = ds.require("intensity")?;
    let mask = ds.require("mask")?;
    if intensity.shape() != mask.shape() {
        return Err(crate::Error::data(
            &args.input,
            format!(
                "intensity {:?} and mask {:?} differ",
                intensity.shape(),
                mask.shape()
            ),
        ));
    }
    let m = load_model(&args.model, device)?;
    let mut out = ArrayD::<f32>::zeros(intensity.raw_dim());
    let t0 = std::time::Instant::now();
    for k in 0..intensity.shape()[0] {
        let filled = inpaint_pattern(
            m.model.as_ref(),
            &m.config,
            &intensity.index_axis(Axis(0), k).to_owned(),
            &mask.index_axis(Axis(0), k).to_owned(),
            args.stride,
            device,
        )?;
        out.index_axis_mut(Axis(0), k).assign(&filled);
    }
    let mut w = NpzWriter::create(&args.out)?;
    w.add("intensity", &out)?;
    w.add("mask", &mask.mapv(|v| (v != 0.0) as u8))?;
    w.finish()?;
    eprintln!(
        "inpainted {} patterns in {:.1} s -> {}",
        intensity.shape()[0],
        t0.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}
