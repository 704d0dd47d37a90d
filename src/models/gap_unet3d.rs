//! The compact residual 3-D gap model (`gap-unet3d`): a small UNet that learns a *correction*
//! to the log-domain linear fill of a plane gap, instead of the whole pattern.
//!
//! Input `[N, 2, D, H, W]`: channel 0 is the window's intensity as `log(1 + I)` min-max scaled
//! over its measured voxels, with the gap pre-filled by linear interpolation of that log
//! intensity across the gap planes; channel 1 is the gap mask (1 = gap). The gap planes are
//! normal to the first spatial axis (windows are transposed so). Output `[N, 1, D, H, W]`:
//! `x0 + mask * head(...)`, so measured voxels pass unchanged and a fresh model (zero head)
//! *is* the log-linear fill; training only has to learn what interpolation misses (fringes).
//!
//! Architecture: `depth` levels of two 3x3x3 convolutions (LeakyReLU) with `width * 2^l`
//! channels, max-pool between levels, nearest upsampling + skip concatenation + two
//! convolutions on the way up, and a zero-initialised 1x1x1 head.

use crate::nn::{prefixed, Conv, Init, Module, Param};
use crate::{Device, Error, Result, Tensor};
use rand_chacha::ChaCha8Rng;

/// Input channels: scaled log intensity with the gap pre-filled, and the gap mask.
pub const IN_CHANNELS: usize = 2;

/// The compact residual gap model.
pub struct GapUNet3d {
    slope: f32,
    down: Vec<[Conv; 2]>,
    up: Vec<[Conv; 2]>,
    head: Conv,
}

fn c3(cin: usize, cout: usize, rng: &mut ChaCha8Rng, dev: &Device) -> Result<Conv> {
    Conv::new(cin, cout, &[3; 3], &[1; 3], Init::HeUniform, rng, dev)
}

impl GapUNet3d {
    /// Builds the model: `depth` levels (>= 1) of `width * 2^level` channels.
    pub fn new(
        width: usize,
        depth: usize,
        slope: f32,
        rng: &mut ChaCha8Rng,
        dev: &Device,
    ) -> Result<GapUNet3d> {
        if width == 0 || depth == 0 {
            return Err(Error::arg(
                "gap-unet3d",
                "width/depth",
                format!("must be >= 1, got width {width}, depth {depth}"),
            ));
        }
        let ch = |l: usize| width << l;
        let mut down = vec![];
        for l in 0..depth {
            let cin = if l == 0 { IN_CHANNELS } else { ch(l - 1) };
            down.push([c3(cin, ch(l), rng, dev)?, c3(ch(l), ch(l), rng, dev)?]);
        }
        let mut up = vec![];
        for l in (0..depth.saturating_sub(1)).rev() {
            up.push([
                c3(ch(l + 1) + ch(l), ch(l), rng, dev)?,
                c3(ch(l), ch(l), rng, dev)?,
            ]);
        }
        let head = Conv::new(ch(0), 1, &[1; 3], &[1; 3], Init::Constant(0.0), rng, dev)?;
        Ok(GapUNet3d {
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
}

impl Module for GapUNet3d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let s = x.shape();
        let k = Self::size_multiple(self.down.len());
        if s.len() != 5 || s[1] != IN_CHANNELS || s[2..].iter().any(|&n| n == 0 || n % k != 0) {
            return Err(Error::shape(
                "gap-unet3d",
                format!(
                    "input {s:?} must be [N, {IN_CHANNELS}, D, H, W] with sizes multiples of {k}"
                ),
            ));
        }
        let base = x.narrow(1, 0, 1)?;
        let mask = x.narrow(1, 1, 1)?;
        let h = super::unet_levels("gap-unet3d", &self.down, &self.up, self.slope, x)?;
        base.add(&self.head.forward(&h)?.mul(&mask)?)
    }

    fn parameters(&self) -> Vec<Param> {
        let mut p = super::unet_level_parameters(&self.down, &self.up);
        p.extend(prefixed("head", self.head.parameters()));
        p
    }
}
