//! The reciprocal-space phasing network (`phase-unet`): a dilated U-Net that predicts the phase
//! of the diffracted wave from the diffracted intensity (BRIEF section 6, "reciprocal-space
//! phasing"), in 2-D or 3-D.
//!
//! Input `[N, 1, ...]`: `log(1 + I)` min-max scaled to `[0, 1]` per pattern, Bragg peak at the
//! centre. Output `[N, 2, ...]`: an unnormalised vector `(c, s)` per voxel whose direction is the
//! predicted phase, `phi = atan2(s, c)`; predicting a direction instead of an angle keeps the
//! output continuous where the phase wraps (see [`crate::loss::coherent_phase_loss`]).
//!
//! Architecture: `depth` levels of two 3^d convolutions (LeakyReLU) with `width * 2^level`
//! channels; on every level but the deepest the second convolution is dilated (dilation 2), which
//! doubles the reach of a level at no cost; max-pool between levels; nearest upsampling, skip
//! concatenation and two convolutions on the way up; a 1^d head with two outputs.

use super::conv;
use crate::nn::{prefixed, Conv, Init, Module, Param};
use crate::{Device, Error, Result, Tensor};
use rand_chacha::ChaCha8Rng;

/// Output channels: the two components of the phase direction.
pub const OUT_CHANNELS: usize = 2;

/// Dilation of the second convolution of the levels above the deepest one.
pub const LEVEL_DILATION: usize = 2;

/// The reciprocal-space phasing network.
pub struct PhaseUNet {
    dims: usize,
    slope: f32,
    down: Vec<[Conv; 2]>,
    up: Vec<[Conv; 2]>,
    head: Conv,
}

impl PhaseUNet {
    /// Builds the network: `dims` (2 or 3) spatial axes, `depth` levels (>= 1) of
    /// `width * 2^level` channels.
    pub fn new(
        dims: usize,
        width: usize,
        depth: usize,
        slope: f32,
        rng: &mut ChaCha8Rng,
        dev: &Device,
    ) -> Result<PhaseUNet> {
        if width == 0 || depth == 0 || !(2..=3).contains(&dims) {
            return Err(Error::arg(
                "phase-unet",
                "dims/width/depth",
                format!("need dims 2 or 3 and width, depth >= 1; got {dims}, {width}, {depth}"),
            ));
        }
        let ch = |l: usize| width << l;
        let mut down = vec![];
        for l in 0..depth {
            let cin = if l == 0 { 1 } else { ch(l - 1) };
            let d = if l + 1 < depth { LEVEL_DILATION } else { 1 };
            down.push([
                conv(dims, cin, ch(l), 3, 1, rng, dev)?,
                conv(dims, ch(l), ch(l), 3, d, rng, dev)?,
            ]);
        }
        let mut up = vec![];
        for l in (0..depth.saturating_sub(1)).rev() {
            up.push([
                conv(dims, ch(l + 1) + ch(l), ch(l), 3, 1, rng, dev)?,
                conv(dims, ch(l), ch(l), 3, 1, rng, dev)?,
            ]);
        }
        let head = Conv::new(
            ch(0),
            OUT_CHANNELS,
            &vec![1; dims],
            &vec![1; dims],
            Init::GlorotUniform,
            rng,
            dev,
        )?;
        Ok(PhaseUNet {
            dims,
            slope,
            down,
            up,
            head,
        })
    }

    /// Spatial sizes must be multiples of this.
    pub fn size_multiple(depth: usize) -> usize {
        1 << depth.saturating_sub(1)
    }

    /// Number of parameters of the network `new(dims, width, depth, ..)` builds.
    pub fn parameter_count(dims: usize, width: usize, depth: usize) -> u64 {
        let k = 3u64.saturating_pow(dims as u32);
        let conv = |cin: u64, cout: u64, k: u64| cin.saturating_mul(cout).saturating_mul(k) + cout;
        let ch = |l: usize| (width as u64).saturating_mul(1u64 << l.min(62));
        let mut total = 0u64;
        for l in 0..depth {
            let cin = if l == 0 { 1 } else { ch(l - 1) };
            total = total
                .saturating_add(conv(cin, ch(l), k))
                .saturating_add(conv(ch(l), ch(l), k));
        }
        for l in (0..depth.saturating_sub(1)).rev() {
            total = total
                .saturating_add(conv(ch(l + 1).saturating_add(ch(l)), ch(l), k))
                .saturating_add(conv(ch(l), ch(l), k));
        }
        total.saturating_add(conv(ch(0), OUT_CHANNELS as u64, 1))
    }
}

impl Module for PhaseUNet {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let s = x.shape();
        let k = Self::size_multiple(self.down.len());
        if s.len() != self.dims + 2 || s[1] != 1 || s[2..].iter().any(|&n| n == 0 || n % k != 0) {
            return Err(Error::shape(
                "phase-unet",
                format!(
                    "input {s:?} must be [N, 1] + {} spatial axes, each a multiple of {k}",
                    self.dims
                ),
            ));
        }
        let h = super::unet_levels("phase-unet", &self.down, &self.up, self.slope, x)?;
        self.head.forward(&h)
    }

    fn parameters(&self) -> Vec<Param> {
        let mut p = super::unet_level_parameters(&self.down, &self.up);
        p.extend(prefixed("head", self.head.parameters()));
        p
    }
}
