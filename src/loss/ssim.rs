//! Structural similarity (Wang et al. 2004) with a separable Gaussian window and "valid"
//! extent, as in TensorFlow's `tf.image.ssim`: 2-D on images, 3-D on volumes, and slice-wise
//! 2-D on volumes (the loss of the 3-D patch model).

use super::check_finite_by_policy;
use crate::ops::filter::gaussian_taps;
use crate::tensor::Tensor;
use crate::{Error, Result};

/// SSIM settings; the default is window 11, sigma 1.5, K1 0.01, K2 0.03, data range 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SsimConfig {
    /// Window size (points of the Gaussian along each axis).
    pub window: usize,
    /// Standard deviation of the Gaussian window.
    pub sigma: f32,
    /// Luminance constant.
    pub k1: f32,
    /// Contrast constant.
    pub k2: f32,
    /// Dynamic range of the values.
    pub data_range: f32,
}

impl Default for SsimConfig {
    fn default() -> Self {
        SsimConfig {
            window: 11,
            sigma: 1.5,
            k1: 0.01,
            k2: 0.03,
            data_range: 1.0,
        }
    }
}

fn blur(t: &Tensor, axes: &[usize], taps: &[f32]) -> Result<Tensor> {
    let mut out = t.clone();
    for &a in axes {
        out = out.filter_axis(a, taps)?;
    }
    Ok(out)
}

/// The SSIM map over the given spatial `axes`.
fn ssim_map(x: &Tensor, y: &Tensor, axes: &[usize], cfg: &SsimConfig) -> Result<Tensor> {
    const OP: &str = "ssim";
    if x.shape() != y.shape() {
        return Err(Error::shape(
            OP,
            format!("inputs {:?} and {:?} differ", x.shape(), y.shape()),
        ));
    }
    for &a in axes {
        if x.shape()[a] < cfg.window {
            return Err(Error::shape(
                OP,
                format!(
                    "axis {a} of {:?} is shorter than the SSIM window {}",
                    x.shape(),
                    cfg.window
                ),
            ));
        }
    }
    let taps = gaussian_taps(cfg.window, cfg.sigma);
    let c1 = (cfg.k1 * cfg.data_range).powi(2);
    let c2 = (cfg.k2 * cfg.data_range).powi(2);
    let mx = blur(x, axes, &taps)?;
    let my = blur(y, axes, &taps)?;
    let sxx = blur(&x.square()?, axes, &taps)?.sub(&mx.square()?)?;
    let syy = blur(&y.square()?, axes, &taps)?.sub(&my.square()?)?;
    let sxy = blur(&x.mul(y)?, axes, &taps)?.sub(&mx.mul(&my)?)?;
    let mxy = mx.mul(&my)?;
    let num = mxy
        .mul_scalar(2.0)?
        .add_scalar(c1)?
        .mul(&sxy.mul_scalar(2.0)?.add_scalar(c2)?)?;
    let den = mx
        .square()?
        .add(&my.square()?)?
        .add_scalar(c1)?
        .mul(&sxx.add(&syy)?.add_scalar(c2)?)?;
    num.div(&den)
}

/// Mean SSIM of NCHW images.
pub fn ssim2d(x: &Tensor, y: &Tensor, cfg: &SsimConfig) -> Result<Tensor> {
    if x.rank() != 4 {
        return Err(Error::shape(
            "ssim2d",
            format!("expected NCHW, got {:?}", x.shape()),
        ));
    }
    check_finite_by_policy("ssim2d", ssim_map(x, y, &[2, 3], cfg)?.mean()?)
}

/// Mean SSIM of NCDHW volumes (3-D window).
pub fn ssim3d(x: &Tensor, y: &Tensor, cfg: &SsimConfig) -> Result<Tensor> {
    if x.rank() != 5 {
        return Err(Error::shape(
            "ssim3d",
            format!("expected NCDHW, got {:?}", x.shape()),
        ));
    }
    check_finite_by_policy("ssim3d", ssim_map(x, y, &[2, 3, 4], cfg)?.mean()?)
}

/// 2-D or 3-D SSIM chosen by the rank of the inputs.
pub fn ssim(x: &Tensor, y: &Tensor, cfg: &SsimConfig) -> Result<Tensor> {
    match x.rank() {
        4 => ssim2d(x, y, cfg),
        5 => ssim3d(x, y, cfg),
        _ => Err(Error::shape(
            "ssim",
            format!("expected NCHW or NCDHW, got {:?}", x.shape()),
        )),
    }
}

/// Mean over depth slices of the 2-D SSIM of NCDHW volumes (window in H and W only).
pub fn ssim_slicewise(x: &Tensor, y: &Tensor, cfg: &SsimConfig) -> Result<Tensor> {
    if x.rank() != 5 {
        return Err(Error::shape(
            "ssim_slicewise",
            format!("expected NCDHW, got {:?}", x.shape()),
        ));
    }
    check_finite_by_policy("ssim_slicewise", ssim_map(x, y, &[3, 4], cfg)?.mean()?)
}

/// Sum over the D slices of `1 - SSIM(slice)`, averaged over batch and channels: the SSIM
/// term of the 3-D patch model's loss.
pub fn slice_ssim_loss(x: &Tensor, y: &Tensor, cfg: &SsimConfig) -> Result<Tensor> {
    let depth = *x.shape().get(2).unwrap_or(&1) as f32;
    ssim_slicewise(x, y, cfg)?
        .neg()?
        .add_scalar(1.0)?
        .mul_scalar(depth)
}
