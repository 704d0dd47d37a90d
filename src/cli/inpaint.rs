//! `bragg inpaint`: fills the gaps of measured or simulated patterns, with a network (the
//! shipped 3-D gap model by default, or `--model`) or a classical method, and writes a
//! phase-ready file: the filled intensity under `intensity`, the filled region under `gap`.

use crate::data::arrays::{ArrayFile, ArrayWriter};
use crate::inpaint::batch::{fill_batch, BatchOptions};
use crate::inpaint::DEFAULT_STRIDE;
use crate::{Device, Error, Result};
use clap::Args;
use ndarray::{ArrayD, Axis};
use std::path::PathBuf;

/// Flags of `bragg inpaint`.
#[derive(Debug, Args)]
pub struct InpaintArgs {
    /// Model file (`bragg train` or `bragg train-gap3d`); default: the shipped 3-D gap model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Method: model, or a classical fill: linear, log-linear, laplace, log-laplace,
    /// biharmonic, log-biharmonic, nearest (`log-` = on log(1 + I)).
    #[arg(long, default_value = "model")]
    pub method: String,
    /// Input .npz or CXI/HDF5 (`.cxi`, `.h5`, `FILE.h5:/path/to/data`) with `intensity` and a
    /// gap mask (non-zero = gap).
    #[arg(long)]
    pub input: PathBuf,
    /// Key of the gap mask: default `gap` when present, else `mask`.
    #[arg(long)]
    pub mask_key: Option<String>,
    /// The arrays hold one pattern (2-D or 3-D) without a batch axis. Without it, a 4-D
    /// array is a batch of volumes, a 2-D array one pattern, and a 3-D array one volume
    /// unless the file says it is a batch of 2-D patterns (`oversampling` of shape [K, 2], as
    /// `bragg simulate --dim 2` writes); `--batch` forces the batch reading.
    #[arg(long, conflicts_with = "batch")]
    pub single: bool,
    /// The arrays are batch first (see `--single`).
    #[arg(long)]
    pub batch: bool,
    /// Output .npz (or .cxi: the filled intensity as the detector data): `intensity` (filled;
    /// measured voxels unchanged) and `gap` (1 = filled).
    #[arg(long)]
    pub out: PathBuf,
    /// In-plane stride of the sliding windows of 3-D models.
    #[arg(long, default_value_t = DEFAULT_STRIDE)]
    pub stride: usize,
    /// Fine-tune the model on the input's own measured voxels for this many seconds first
    /// (3-D gap model only; artificial gaps of the real gap's width, never the real gap).
    #[arg(long, default_value_t = 0.0)]
    pub finetune: f64,
    /// Refine the fill with physics: masked phasing (the gap free, 4 runs) whose initial
    /// support comes from the fill; in the strong part of the gap the intensity of the best run
    /// replaces the fill, weighted by how well the two best runs agree there (runs that
    /// disagree change nothing). `auto`: on for 3-D volumes of at most 128^3 voxels whose gaps
    /// are plane bands of at most 13 px (REPORT.md section 6.7).
    #[arg(long, default_value = "auto")]
    pub physics: String,
    /// Phasing chain of the physics refinement.
    #[arg(long, default_value = crate::phasing::DEFAULT_CHAIN)]
    pub physics_chain: String,
}

/// Runs the subcommand.
pub fn run(args: &InpaintArgs, device: &Device) -> Result<()> {
    if args.stride == 0 || args.stride > 32 {
        return Err(Error::arg(
            "inpaint",
            "--stride",
            format!("{} asked, allowed 1..=32", args.stride),
        ));
    }
    let mut z = ArrayFile::open(&args.input)?;
    let batch_of_2d = z.has("oversampling")
        && z.read("oversampling")?
            .to_f32()
            .is_ok_and(|a| a.ndim() == 2 && a.shape()[1] == 2);
    let key = match &args.mask_key {
        Some(k) => k.clone(),
        None if z.has("gap") => "gap".to_string(),
        None => "mask".to_string(),
    };
    let mut read = |k: &str| -> Result<ArrayD<f32>> {
        if !z.has(k) {
            return Err(Error::data(
                &args.input,
                format!("no `{k}` array (keys: {})", z.keys().join(", ")),
            ));
        }
        z.read(k)?
            .to_f32()
            .map_err(|m| Error::data(&args.input, format!("key `{k}`: {m}")))
    };
    let mut intensity = read("intensity")?;
    let mut mask = read(&key)?;
    if intensity.shape() != mask.shape() {
        return Err(Error::data(
            &args.input,
            format!(
                "intensity {:?} and `{key}` {:?} differ",
                intensity.shape(),
                mask.shape()
            ),
        ));
    }
    let single = args.single
        || (!args.batch && (intensity.ndim() == 2 || (intensity.ndim() == 3 && !batch_of_2d)));
    if single {
        intensity = intensity.insert_axis(Axis(0));
        mask = mask.insert_axis(Axis(0));
    }
    eprintln!(
        "{}: {} (--single / --batch to choose)",
        args.input.display(),
        if single {
            format!(
                "one {}-D pattern {:?}",
                intensity.ndim() - 1,
                &intensity.shape()[1..]
            )
        } else {
            format!(
                "a batch of {} {}-D patterns {:?}",
                intensity.shape()[0],
                intensity.ndim() - 1,
                &intensity.shape()[1..]
            )
        }
    );
    crate::inpaint::batch::prepare(&args.input, &key, &mut intensity, &mask)?;
    let opts = BatchOptions {
        method: args.method.clone(),
        model: args.model.clone(),
        stride: args.stride,
        finetune: args.finetune,
        physics: args.physics.clone(),
        physics_chain: args.physics_chain.clone(),
    };
    let t0 = std::time::Instant::now();
    let count = intensity.shape()[0];
    let bar = crate::cli::progress_bar(count as u64, "inpaint");
    let (out, name) = fill_batch(
        &intensity,
        &mask,
        &opts,
        device,
        &mut |k, note| match note {
            Some(m) => bar.suspend(|| eprintln!("pattern {k}: {m}")),
            None => bar.inc(1),
        },
    )?;
    bar.finish_and_clear();
    let gap = mask.mapv(|v| (v != 0.0) as u8);
    let (out, gap) = if single {
        (
            out.index_axis_move(Axis(0), 0),
            gap.index_axis_move(Axis(0), 0),
        )
    } else {
        (out, gap)
    };
    let mut w = ArrayWriter::create(&args.out)?;
    w.add("intensity", &out)?;
    w.add("gap", &gap)?;
    w.finish()?;
    eprintln!(
        "inpainted {count} pattern(s) with {} in {:.1} s -> {} (keys: intensity, gap)",
        name,
        t0.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}
