//! `bragg patches`: cuts 3-D training patches with artificial centred gaps from a volume, the
//! data recipe of the published patching model (brief section 5). From a gap-free volume
//! (e.g. a large simulation) the patch centres follow the intensity marginals; from a measured
//! volume with a gap mask, patches touching the real gap are rejected, so the patches can
//! fine-tune a model on the user's own data. The output is a training set that `bragg train`
//! reads (`intensity`, `truth`, `mask`, plus `origin`).

use super::phase::{read_real, select, write_npz_atomic};
use crate::data::arrays::ArrayFile;
use crate::data::patches::{finetune_patches, training_patches, Patch};
use crate::{Error, Result};
use clap::Args;
use ndarray::{ArrayD, Axis, Ix3, IxDyn};
use rand::SeedableRng;
use std::path::PathBuf;

/// Flags of `bragg patches`.
#[derive(Debug, Args)]
pub struct PatchesArgs {
    /// Input volume (.npz, .npy, CXI/HDF5; a 4-D array is a batch, see --index).
    #[arg(long)]
    pub input: PathBuf,
    /// Key of the intensity.
    #[arg(long, default_value = "intensity")]
    pub key: String,
    /// Key of the real gap mask (non-zero = gap). Default: `gap`, else `mask` when present;
    /// `none` treats every voxel as measured.
    #[arg(long)]
    pub mask_key: Option<String>,
    /// Index in the batch (first axis).
    #[arg(long)]
    pub index: Option<usize>,
    /// Patch side (voxels).
    #[arg(long, default_value_t = 32)]
    pub size: usize,
    /// Number of patches.
    #[arg(long, default_value_t = 100)]
    pub count: usize,
    /// Width of the artificial gap at each patch centre (a plane normal to axis 1 or 2; a
    /// cross in 20% of the patches).
    #[arg(long, default_value_t = 6)]
    pub width: usize,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output .npz: `intensity` (gap zeroed), `truth`, `mask` (u8) of shape [count, size^3],
    /// `origin` [count, 3] (corner of each patch in the input).
    #[arg(long)]
    pub out: PathBuf,
}

/// Most patches one call may write (each 32^3 patch is 3 x 128 KiB in memory).
pub const MAX_PATCHES: usize = 100_000;

/// Runs the subcommand.
pub fn run(args: &PatchesArgs) -> Result<()> {
    if args.count == 0 || args.count > MAX_PATCHES {
        return Err(Error::arg(
            "patches",
            "--count",
            format!("{} asked, allowed 1..={MAX_PATCHES}", args.count),
        ));
    }
    let file = ArrayFile::open(&args.input)?;
    let mask_key = match args.mask_key.as_deref() {
        Some("none") | Some("") => None,
        Some(k) => Some(k.to_string()),
        None if file.has("gap") => Some("gap".to_string()),
        None if file.has("mask") => Some("mask".to_string()),
        None => None,
    };
    drop(file);
    let raw = read_real(&args.input, &args.key)?;
    let volume = select(raw, args.index, &args.input, &args.key)?;
    let volume = volume.into_dimensionality::<Ix3>().map_err(|_| {
        Error::data(
            &args.input,
            format!(
                "key `{}`: patches are cut from a 3-D volume (use --index for a batch)",
                args.key
            ),
        )
    })?;
    let mask = match &mask_key {
        Some(k) => {
            let m = select(read_real(&args.input, k)?, args.index, &args.input, k)?;
            if m.shape() != volume.shape() {
                return Err(Error::data(
                    &args.input,
                    format!(
                        "mask `{k}` {:?} and intensity {:?} differ",
                        m.shape(),
                        volume.shape()
                    ),
                ));
            }
            Some(
                m.into_dimensionality::<Ix3>()
                    .map_err(|e| Error::Msg(e.to_string()))?
                    .mapv(|v| (v != 0.0) as u8),
            )
        }
        None => None,
    };
    let mut clean = volume.clone();
    if let Some(m) = &mask {
        ndarray::Zip::from(&mut clean).and(m).for_each(|v, &g| {
            if g != 0 {
                *v = 0.0
            }
        });
    }
    crate::data::validate::counts(&args.input, &args.key, &clean.clone().into_dyn())?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let patches: Vec<Patch> = match &mask {
        Some(m) if m.iter().any(|&g| g != 0) => finetune_patches(
            clean.view(),
            m.view(),
            args.count,
            args.size,
            args.width,
            &mut rng,
        )?,
        _ => training_patches(clean.view(), args.count, args.size, args.width, &mut rng)?,
    };
    let p = args.size;
    let shape = IxDyn(&[patches.len(), p, p, p]);
    let mut truth = ArrayD::<f32>::zeros(shape.clone());
    let mut masks = ArrayD::<u8>::zeros(shape);
    for (k, patch) in patches.iter().enumerate() {
        truth
            .index_axis_mut(Axis(0), k)
            .assign(&patch.truth.view().into_dyn());
        masks
            .index_axis_mut(Axis(0), k)
            .assign(&patch.mask.view().into_dyn());
    }
    let intensity = ndarray::Zip::from(&truth)
        .and(&masks)
        .map_collect(|&v, &m| if m != 0 { 0.0 } else { v });
    let origin =
        ndarray::Array2::from_shape_fn((patches.len(), 3), |(k, d)| patches[k].origin[d] as u64);
    write_npz_atomic(&args.out, |npz| {
        npz.add("intensity", &intensity)?;
        npz.add("truth", &truth)?;
        npz.add("mask", &masks)?;
        npz.add("origin", &origin.into_dyn())
    })?;
    println!(
        "wrote {} patches of {p}^3 with {}-px centred gaps ({}) to {}",
        patches.len(),
        args.width,
        if mask.as_ref().is_some_and(|m| m.iter().any(|&g| g != 0)) {
            "avoiding the real gap"
        } else {
            "no real gap in the input"
        },
        args.out.display()
    );
    Ok(())
}
