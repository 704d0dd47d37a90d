//! Filling a batch of measured patterns: the work of `bragg inpaint` (and of the Python
//! `bragg.inpaint`) without its file handling.

use super::fill::{FillMethod, Filler};
use super::physics::{physics_fill, PhysicsOptions};
use crate::{Device, Error, Result};
use ndarray::{ArrayD, Axis};
use std::path::{Path, PathBuf};

/// How to fill.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// `model` or a classical fill (`linear`, `log-linear`, `laplace`, ...).
    pub method: String,
    /// Model file; default: the shipped 3-D gap model.
    pub model: Option<PathBuf>,
    /// In-plane stride of the sliding windows of 3-D models (1..=32).
    pub stride: usize,
    /// Seconds of fine-tuning on the pattern's own measured voxels (0..=86400).
    pub finetune: f64,
    /// Physics refinement: `auto`, `on` or `off`.
    pub physics: String,
    /// Phasing chain of the physics refinement.
    pub physics_chain: String,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            method: "model".into(),
            model: None,
            stride: super::DEFAULT_STRIDE,
            finetune: 0.0,
            physics: "auto".into(),
            physics_chain: crate::phasing::DEFAULT_CHAIN.into(),
        }
    }
}

/// Widest plane gap for which `physics = auto` refines: the widest the shipped network was
/// trained on; the refinement was measured to help up to 12 px (REPORT.md section 6.7).
pub const AUTO_PHYSICS_MAX_WIDTH: usize = 13;

/// Whether a 3-D mask's gaps are plane bands no wider than [`AUTO_PHYSICS_MAX_WIDTH`].
fn narrow_bands_only(mask: &ArrayD<f32>) -> bool {
    let Ok(m3) = mask.view().into_dimensionality::<ndarray::Ix3>() else {
        return false;
    };
    let bands = super::detect_bands(&m3.to_owned());
    !bands.is_empty() && bands.iter().all(|b| b.width <= AUTO_PHYSICS_MAX_WIDTH)
}

/// Checks a batch `[K, ...]` of intensities and gap masks (`source` and `mask_key` name them in
/// errors): same shapes, 2-D or 3-D patterns, masks of 0/1, and counts finite and non-negative
/// once the gap voxels (whose values are never used: detectors mark them with -1 or NaN) are
/// set to 0.
pub fn prepare(
    source: &Path,
    mask_key: &str,
    intensity: &mut ArrayD<f32>,
    mask: &ArrayD<f32>,
) -> Result<()> {
    if intensity.shape() != mask.shape() {
        return Err(Error::data(
            source,
            format!(
                "intensity {:?} and `{mask_key}` {:?} differ",
                intensity.shape(),
                mask.shape()
            ),
        ));
    }
    crate::data::validate::masks(source, mask_key, mask)?;
    ndarray::Zip::from(&mut *intensity)
        .and(mask)
        .for_each(|v, &m| {
            if m != 0.0 {
                *v = 0.0
            }
        });
    crate::data::validate::counts(source, "intensity", intensity)?;
    let dims = intensity.ndim().saturating_sub(1);
    if !(2..=3).contains(&dims) {
        return Err(Error::data(
            source,
            format!(
                "intensity {:?} must be one 2-D or 3-D pattern or a batch of them",
                intensity.shape()
            ),
        ));
    }
    Ok(())
}

/// Fills the gaps of the prepared batch `[K, ...]` (see [`prepare`]); measured voxels are
/// returned unchanged. `report(k, message)` is called with notes about pattern `k` (`None`
/// when pattern `k` is done). Returns the filled batch and the filler's name.
pub fn fill_batch(
    intensity: &ArrayD<f32>,
    mask: &ArrayD<f32>,
    opts: &BatchOptions,
    device: &Device,
    report: &mut dyn FnMut(usize, Option<String>),
) -> Result<(ArrayD<f32>, String)> {
    if opts.stride == 0 || opts.stride > 32 {
        return Err(Error::arg(
            "inpaint",
            "--stride",
            format!("{} asked, allowed 1..=32", opts.stride),
        ));
    }
    if !(opts.finetune >= 0.0 && opts.finetune <= 86_400.0) {
        return Err(Error::arg(
            "inpaint",
            "--finetune",
            format!("must be 0..=86400 seconds, got {}", opts.finetune),
        ));
    }
    let dims = intensity.ndim().saturating_sub(1);
    let method: FillMethod = opts.method.parse()?;
    let filler = Filler::new(method, opts.model.as_deref(), dims, device)?;
    if let Some(note) = filler.note() {
        report(0, Some(note.to_string()));
    }
    let auto = opts.physics.eq_ignore_ascii_case("auto");
    let physics = match opts.physics.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" => true,
        "off" | "false" | "no" => false,
        "auto" => dims == 3 && intensity.shape()[1..].iter().product::<usize>() <= 128 * 128 * 128,
        other => {
            return Err(Error::arg(
                "inpaint",
                "--physics",
                format!("`{other}`: expected auto, on or off"),
            ))
        }
    };
    let mut out = ArrayD::<f32>::zeros(intensity.raw_dim());
    for k in 0..intensity.shape()[0] {
        let ik = intensity.index_axis(Axis(0), k).to_owned();
        let mk = mask.index_axis(Axis(0), k).to_owned();
        if let Some(w) = super::gap3d::counts_warning(&ik, &mk) {
            report(k, Some(w));
        }
        let mut filled = filler.fill(&ik, &mk, opts.stride, opts.finetune, device)?;
        let refine = physics && mk.iter().any(|&v| v != 0.0) && (!auto || narrow_bands_only(&mk));
        if refine {
            let popts = PhysicsOptions {
                chain: opts.physics_chain.clone(),
                ..PhysicsOptions::default()
            };
            let (refined, rep) = physics_fill(&ik, &mk, &filled, &popts)?;
            report(
                k,
                Some(format!(
                    "physics refinement: agreement of the two best runs {:.3}, weight {:.2}",
                    rep.agreement, rep.weight
                )),
            );
            filled = refined;
        }
        out.index_axis_mut(Axis(0), k).assign(&filled);
        report(k, None);
    }
    Ok((out, filler.name().to_string()))
}
