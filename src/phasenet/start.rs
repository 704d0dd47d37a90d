//! A trained phasing network applied to an intensity of any size, and the starting point of
//! iterative phasing built from its prediction.
//!
//! The network works on a fixed grid (its training size, e.g. 32^3). An intensity with the Bragg
//! peak at the array centre is cut to its central grid (or zero-padded up to it): the central
//! region of reciprocal space is where the strong, phase-defining signal lies, and the wave known
//! there is the object at the grid's resolution (for a 64^3 input and a 32^3 grid, half the
//! resolution), which is what a starting point needs. The phase outside the grid is left to the
//! iterative algorithms (random, as in a random start).

use super::data::network_input;
use super::train::META_GRID;
use crate::autograd::no_grad;
use crate::models::{self, LoadedModel, ModelConfig, ModelKind};
use crate::nn::{io, Module};
use crate::{Device, Error, Result, Tensor};
use ndarray::{ArrayD, IxDyn, Slice};
use std::collections::HashMap;
use std::path::Path;

/// A loaded phasing network.
pub struct PhaseNet {
    /// The network.
    pub model: Box<dyn Module>,
    /// Its architecture.
    pub config: ModelConfig,
    /// Side of the grid it was trained on.
    pub grid: usize,
    /// Every metadata entry of the file.
    pub metadata: HashMap<String, String>,
}

/// The prediction of a [`PhaseNet`] on a whole intensity array.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Predicted reciprocal-space phase (radians, same shape and centred layout as the
    /// intensity; 0 where not `known`).
    pub phase: ArrayD<f32>,
    /// 1 where the network predicted the phase (the central grid), 0 elsewhere.
    pub known: ArrayD<u8>,
}

/// Checks that a loaded model is a phasing network and reads its grid (`path` names it in
/// errors).
pub fn phasenet(loaded: LoadedModel, path: &Path) -> Result<PhaseNet> {
    if loaded.config.kind != ModelKind::PhaseUnet {
        return Err(Error::data(
            path,
            format!(
                "is a {} model, not a phasing network (phase-unet)",
                loaded.config.kind
            ),
        ));
    }
    let grid: usize = loaded
        .metadata
        .get(META_GRID)
        .ok_or_else(|| Error::data(path, format!("no `{META_GRID}` metadata")))?
        .parse()
        .map_err(|e| Error::data(path, format!("bad `{META_GRID}` metadata: {e}")))?;
    let k = loaded.config.size_multiple();
    if grid == 0 || grid > 512 || !grid.is_multiple_of(k) {
        return Err(Error::data(
            path,
            format!("grid {grid} must be a positive multiple of {k}, at most 512"),
        ));
    }
    Ok(PhaseNet {
        model: loaded.model,
        config: loaded.config,
        grid,
        metadata: loaded.metadata,
    })
}

/// Loads a phasing-network file (written by `bragg train-phasenet`).
pub fn load_phasenet(path: &Path, device: &Device) -> Result<PhaseNet> {
    phasenet(models::load_model(path, device)?, path)
}

/// Name of the shipped 3-D phasing network in `weights/`.
pub const SHIPPED_PHASENET3D_NAME: &str = "weights/phasenet3d.safetensors";
/// The shipped 3-D phasing network.
pub static SHIPPED_PHASENET3D: &[u8] = include_bytes!("../../weights/phasenet3d.safetensors");
/// Name of the shipped 2-D phasing network in `weights/`.
pub const SHIPPED_PHASENET2D_NAME: &str = "weights/phasenet2d.safetensors";
/// The shipped 2-D phasing network.
pub static SHIPPED_PHASENET2D: &[u8] = include_bytes!("../../weights/phasenet2d.safetensors");

/// The shipped phasing network for `dims` (2 or 3) dimensions (weights embedded in the binary).
pub fn shipped_phasenet(dims: usize, device: &Device) -> Result<PhaseNet> {
    let (name, bytes) = match dims {
        2 => (SHIPPED_PHASENET2D_NAME, SHIPPED_PHASENET2D),
        3 => (SHIPPED_PHASENET3D_NAME, SHIPPED_PHASENET3D),
        _ => {
            return Err(Error::arg(
                "phasenet",
                "dims",
                format!("no shipped network for {dims}-D data"),
            ))
        }
    };
    let path = Path::new(name);
    let ck = io::load_bytes(bytes, path, device)?;
    phasenet(models::model_from_checkpoint(path, ck, device)?, path)
}

/// Per axis: (first voxel of the array, first voxel of the grid, length) of the central region
/// shared by an array of side `n` and a grid of side `g`, both centred on `n/2` and `g/2`.
fn central_overlap(n: usize, g: usize) -> (usize, usize, usize) {
    if n >= g {
        (n / 2 - g / 2, 0, g)
    } else {
        (0, g / 2 - n / 2, n)
    }
}

impl PhaseNet {
    /// Predicts the phase of `intensity` (Bragg peak at the array centre, one axis per model
    /// dimension). Masked voxels (`mask` non-zero, e.g. detector gaps) are filled by log-linear
    /// interpolation before the network sees them.
    pub fn predict(
        &self,
        intensity: &ArrayD<f32>,
        mask: Option<&ArrayD<u8>>,
        device: &Device,
    ) -> Result<Prediction> {
        let shape = intensity.shape().to_vec();
        if shape.len() != self.config.dims {
            return Err(Error::shape(
                "phasenet",
                format!(
                    "the network is {}-D but the intensity has shape {shape:?}",
                    self.config.dims
                ),
            ));
        }
        let filled = match mask {
            Some(m) if m.iter().any(|&v| v != 0) => {
                if m.shape() != shape.as_slice() {
                    return Err(Error::shape(
                        "phasenet",
                        format!("mask {:?} vs intensity {shape:?}", m.shape()),
                    ));
                }
                let mf = m.mapv(|v| f32::from(v != 0));
                crate::inpaint::gap3d::log_linear_fill(intensity, &mf)
            }
            _ => intensity.clone(),
        };
        let g = self.grid;
        let overlap: Vec<(usize, usize, usize)> =
            shape.iter().map(|&n| central_overlap(n, g)).collect();
        let mut grid = ArrayD::<f32>::zeros(IxDyn(&vec![g; shape.len()]));
        {
            let mut dst = grid.view_mut();
            let mut src = filled.view();
            for (d, &(a, b, len)) in overlap.iter().enumerate() {
                src.slice_axis_inplace(ndarray::Axis(d), Slice::from(a..a + len));
                dst.slice_axis_inplace(ndarray::Axis(d), Slice::from(b..b + len));
            }
            dst.assign(&src);
        }
        let mut in_shape = vec![1, 1];
        in_shape.extend(std::iter::repeat_n(g, shape.len()));
        let x = Tensor::from_vec(network_input(&grid), &in_shape, device)?;
        let out = no_grad(|| self.model.forward(&x))?.to_vec()?;
        let n = grid.len();
        let phase_grid = ArrayD::from_shape_vec(
            IxDyn(&vec![g; shape.len()]),
            (0..n).map(|i| out[n + i].atan2(out[i])).collect(),
        )
        .map_err(|e| Error::shape("phasenet", e.to_string()))?;
        let mut phase = ArrayD::<f32>::zeros(IxDyn(&shape));
        let mut known = ArrayD::<u8>::zeros(IxDyn(&shape));
        {
            let mut dst = phase.view_mut();
            let mut kn = known.view_mut();
            let mut src = phase_grid.view();
            for (d, &(a, b, len)) in overlap.iter().enumerate() {
                dst.slice_axis_inplace(ndarray::Axis(d), Slice::from(a..a + len));
                kn.slice_axis_inplace(ndarray::Axis(d), Slice::from(a..a + len));
                src.slice_axis_inplace(ndarray::Axis(d), Slice::from(b..b + len));
            }
            dst.assign(&src);
            kn.fill(1);
        }
        Ok(Prediction { phase, known })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn central_overlap_crops_and_pads_around_the_centre() {
        assert_eq!(central_overlap(64, 32), (16, 0, 32));
        assert_eq!(central_overlap(32, 32), (0, 0, 32));
        assert_eq!(central_overlap(20, 32), (0, 6, 20));
        // The array centre lands on the grid centre.
        for (n, g) in [(64, 32), (20, 32), (33, 32), (31, 32)] {
            let (a, b, _) = central_overlap(n, g);
            assert_eq!(n / 2 - a + b, g / 2, "{n} {g}");
        }
    }
}
