//! Training data in network space: per pattern, `bragg::data::LogMinMax` fitted on the
//! measured (non-gap) pixels of the gapped intensity; input = scaled intensity with the gap at
//! 0, target = the gap-free truth with the same scaling, mask = 1 in the gap.

use crate::data::{Dataset, LogMinMax};
use crate::{Device, Error, Result, Tensor};
use ndarray::{ArrayD, Axis};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Name of the preprocessing scheme stored in model files.
pub const PREPROCESS: &str = "log1p-minmax-nongap, gap=0";

/// Scales one pattern for the network: returns the input (gap at 0) and the fitted scaling.
pub fn normalise(intensity: &ArrayD<f32>, mask: &ArrayD<f32>) -> (ArrayD<f32>, LogMinMax) {
    let m8 = mask.mapv(|m| (m != 0.0) as u8);
    let norm = LogMinMax::fit(intensity, Some(&m8));
    let mut x = norm.forward(intensity);
    ndarray::Zip::from(&mut x).and(mask).for_each(|v, &m| {
        if m != 0.0 {
            *v = 0.0
        }
    });
    (x, norm)
}

/// A preprocessed dataset held in memory, batch first.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Network inputs `[K, ...]`.
    pub x: ArrayD<f32>,
    /// Targets `[K, ...]` (truth in the same scaling).
    pub y: ArrayD<f32>,
    /// Gap masks `[K, ...]`, 1 = gap.
    pub m: ArrayD<f32>,
    /// Scaling of every pattern.
    pub norms: Vec<LogMinMax>,
}

impl Prepared {
    /// Preprocesses a loaded dataset (keys `intensity`, `truth`, `mask`).
    pub fn from_dataset(ds: &Dataset) -> Result<Prepared> {
        let i = ds.require("intensity")?;
        let t = ds.require("truth")?;
        let m = ds.require("mask")?;
        Prepared::new(i, t, m)
    }

    /// Preprocesses arrays `[K, ...]` of gapped intensity, truth and mask.
    pub fn new(
        intensity: &ArrayD<f32>,
        truth: &ArrayD<f32>,
        mask: &ArrayD<f32>,
    ) -> Result<Prepared> {
        if intensity.shape() != truth.shape() || intensity.shape() != mask.shape() {
            return Err(Error::shape(
                "prepare",
                format!(
                    "intensity {:?}, truth {:?} and mask {:?} must have the same shape",
                    intensity.shape(),
                    truth.shape(),
                    mask.shape()
                ),
            ));
        }
        if intensity.ndim() < 3 || intensity.shape()[0] == 0 {
            return Err(Error::shape(
                "prepare",
                format!(
                    "arrays {:?} must be [K, ...] with K >= 1 and 2 or 3 pattern axes",
                    intensity.shape()
                ),
            ));
        }
        let mut x = ArrayD::zeros(intensity.raw_dim());
        let mut y = ArrayD::zeros(intensity.raw_dim());
        let mut norms = vec![];
        for k in 0..intensity.shape()[0] {
            let ik = intensity.index_axis(Axis(0), k).to_owned();
            let mk = mask.index_axis(Axis(0), k).to_owned();
            let (xk, norm) = normalise(&ik, &mk);
            let yk = norm.forward(&truth.index_axis(Axis(0), k).to_owned());
            x.index_axis_mut(Axis(0), k).assign(&xk);
            y.index_axis_mut(Axis(0), k).assign(&yk);
            norms.push(norm);
        }
        Ok(Prepared {
            x,
            y,
            m: mask.mapv(|v| (v != 0.0) as u8 as f32),
            norms,
        })
    }

    /// Number of patterns.
    pub fn len(&self) -> usize {
        self.x.shape()[0]
    }

    /// Whether there is no pattern.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shape of one pattern.
    pub fn pattern_shape(&self) -> &[usize] {
        &self.x.shape()[1..]
    }

    /// The first `n` patterns.
    pub fn head(&self, n: usize) -> Prepared {
        let n = n.min(self.len());
        let s = ndarray::Slice::from(0..n);
        Prepared {
            x: self.x.slice_axis(Axis(0), s).to_owned(),
            y: self.y.slice_axis(Axis(0), s).to_owned(),
            m: self.m.slice_axis(Axis(0), s).to_owned(),
            norms: self.norms[..n].to_vec(),
        }
    }

    /// Tensors `[B, 1, ...]` of inputs, targets and masks for the patterns `idx`.
    pub fn batch(&self, idx: &[usize], device: &Device) -> Result<(Tensor, Tensor, Tensor)> {
        let mut shape = vec![idx.len(), 1];
        shape.extend_from_slice(self.pattern_shape());
        let gather = |a: &ArrayD<f32>| -> Result<Tensor> {
            let mut v = Vec::with_capacity(idx.len() * a.len() / self.len());
            for &k in idx {
                v.extend(a.index_axis(Axis(0), k).iter().copied());
            }
            Tensor::from_vec(v, &shape, device)
        };
        Ok((gather(&self.x)?, gather(&self.y)?, gather(&self.m)?))
    }

    /// The masks `[B, 1, ...]` of the patterns `idx`, on the CPU (data-parallel training sums
    /// the masks of a whole global batch on every rank).
    pub fn mask_batch(&self, idx: &[usize]) -> Result<Tensor> {
        let mut shape = vec![idx.len(), 1];
        shape.extend_from_slice(self.pattern_shape());
        let mut v = Vec::with_capacity(idx.len() * self.m.len() / self.len().max(1));
        for &k in idx {
            v.extend(self.m.index_axis(Axis(0), k).iter().copied());
        }
        Tensor::from_vec(v, &shape, &Device::cpu())
    }

    /// One pattern of an array as an owned `ArrayD`.
    pub fn pattern(a: &ArrayD<f32>, k: usize) -> ArrayD<f32> {
        a.index_axis(Axis(0), k).to_owned()
    }
}

/// The shuffled order of epoch `epoch`: a ChaCha8 permutation seeded by `seed`, stream `epoch`
/// (so a resumed run sees the same batches).
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64 + 1);
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut rng);
    idx
}

impl Prepared {
    /// Training patches for the 3-D patch model: `per` patches of side `p` from every 3-D
    /// `truth` pattern `[K, D, H, W]` (centres drawn by the intensity marginals), each with an
    /// artificial centred gap of width `w` (80% one plane, 20% a cross), seeded.
    pub fn from_patches(
        truth: &ArrayD<f32>,
        per: usize,
        p: usize,
        w: usize,
        seed: u64,
    ) -> Result<Prepared> {
        if truth.ndim() != 4 {
            return Err(Error::shape(
                "patches",
                format!("truth {:?} must be [K, D, H, W] volumes", truth.shape()),
            ));
        }
        if per == 0 {
            return Err(Error::arg(
                "patches",
                "per",
                "need at least one patch per pattern",
            ));
        }
        let k = truth.shape()[0];
        let shape = [k * per, p, p, p];
        let mut t = ArrayD::<f32>::zeros(ndarray::IxDyn(&shape));
        let mut m = ArrayD::<f32>::zeros(ndarray::IxDyn(&shape));
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for i in 0..k {
            let vol = truth
                .index_axis(Axis(0), i)
                .into_dimensionality::<ndarray::Ix3>()
                .map_err(|e| Error::shape("patches", e.to_string()))?;
            let patches = crate::data::patches::training_patches(vol, per, p, w, &mut rng)?;
            for (j, pt) in patches.iter().enumerate() {
                t.index_axis_mut(Axis(0), i * per + j).assign(&pt.truth);
                m.index_axis_mut(Axis(0), i * per + j)
                    .assign(&pt.mask.mapv(f32::from));
            }
        }
        let gapped = ndarray::Zip::from(&t)
            .and(&m)
            .map_collect(|&v, &g| if g != 0.0 { 0.0 } else { v });
        Prepared::new(&gapped, &t, &m)
    }
}
