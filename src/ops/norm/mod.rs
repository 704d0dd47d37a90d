//! Normalisation composed from ops: group normalisation (instance and layer norm are its
//! `groups = C` and `groups = 1` cases) and batch normalisation with batch statistics.

use crate::tensor::Tensor;
use crate::{Error, Result};

impl Tensor {
    /// Group normalisation of an `[N, C, ...]` tensor: the channels are split into `groups`
    /// groups and each (sample, group) is shifted to mean 0 and scaled to variance 1 (biased
    /// variance, `eps` added). No affine part: see [`crate::nn::GroupNorm`].
    pub fn group_norm(&self, groups: usize, eps: f32) -> Result<Tensor> {
        let s = self.shape();
        if s.len() < 2 || groups == 0 || !s[1].is_multiple_of(groups) {
            return Err(Error::arg(
                "group_norm",
                "groups",
                format!("{groups} groups must divide the channels (axis 1) of {s:?}"),
            ));
        }
        let rest: usize = s[1..].iter().product::<usize>() / groups;
        let g = self.reshape(&[s[0], groups, rest])?;
        let centred = g.sub(&g.mean_axes(&[2], true)?)?;
        let var = centred.square()?.mean_axes(&[2], true)?;
        centred.div(&var.add_scalar(eps)?.sqrt()?)?.reshape(s)
    }

    /// Batch normalisation with the statistics of this batch: each channel (axis 1) is
    /// normalised over the batch and spatial axes (biased variance, `eps` added).
    pub fn batch_norm(&self, eps: f32) -> Result<Tensor> {
        let s = self.shape();
        if s.len() < 2 {
            return Err(Error::shape(
                "batch_norm",
                format!("expected [N, C, ...], got {s:?}"),
            ));
        }
        let axes: Vec<usize> = (0..s.len()).filter(|&d| d != 1).collect();
        let centred = self.sub(&self.mean_axes(&axes, true)?)?;
        let var = centred.square()?.mean_axes(&axes, true)?;
        centred.div(&var.add_scalar(eps)?.sqrt()?)
    }
}
