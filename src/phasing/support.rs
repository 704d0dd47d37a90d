//! Supports: the initial support from the autocorrelation of the intensity, the shrink-wrap
//! update, and the free-LLK pixel mask.

use super::kernels::{self, FREE, OBSERVED};
use crate::fft::{Direction, FftPlan};
use num_complex::Complex32;
use rand::Rng;
use rayon::prelude::*;

/// How the shrink-wrap threshold is referenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThresholdMethod {
    /// Relative to the RMS of the blurred modulus inside the current support (PyNX default).
    Rms,
    /// Relative to the maximum of the blurred modulus.
    Max,
}

/// Shrink-wrap parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShrinkWrap {
    /// Threshold relative to the reference given by `method` (PyNX: 0.2 - 0.3).
    pub threshold: f32,
    /// Reference of the threshold.
    pub method: ThresholdMethod,
    /// Gaussian sigma (px) at the first update.
    pub sigma_start: f32,
    /// Gaussian sigma (px) at the last update (linear decay in between).
    pub sigma_end: f32,
    /// Automatic update every `period` HIO/RAAR cycles (0: only explicit `Sup` in the chain).
    pub period: usize,
    /// A new support smaller than this fraction of the array is rejected.
    pub min_fraction: f32,
    /// A new support larger than this fraction of the array is rejected.
    pub max_fraction: f32,
}

impl Default for ShrinkWrap {
    fn default() -> Self {
        ShrinkWrap {
            threshold: 0.25,
            method: ThresholdMethod::Rms,
            sigma_start: 2.0,
            sigma_end: 0.5,
            period: 50,
            min_fraction: 1e-4,
            max_fraction: 0.7,
        }
    }
}

impl ShrinkWrap {
    /// Sigma of update number `k` out of `total` updates.
    pub fn sigma(&self, k: usize, total: usize) -> f32 {
        if total <= 1 {
            return self.sigma_start;
        }
        let t = k.min(total - 1) as f32 / (total - 1) as f32;
        self.sigma_start + (self.sigma_end - self.sigma_start) * t
    }
}

/// A support from an estimate of the object: `|rho|` blurred with `sigma` px, thresholded at
/// `fraction` of its maximum (the start of a run from a predicted phase).
pub fn support_from_object(
    rho: &[Complex32],
    shape: &[usize],
    sigma: f32,
    fraction: f32,
) -> Vec<u8> {
    let mut amp = vec![0.0f32; rho.len()];
    kernels::modulus(rho, &mut amp);
    let mut tmp = vec![0.0f32; rho.len()];
    let mut kernel = Vec::new();
    kernels::gaussian_kernel(sigma, &mut kernel);
    kernels::gaussian_blur(&mut amp, &mut tmp, shape, &kernel);
    let max = amp.iter().copied().fold(0.0f32, f32::max);
    amp.iter().map(|&a| u8::from(a > fraction * max)).collect()
}

/// Work buffers of a shrink-wrap update (preallocated once per problem).
#[derive(Debug, Clone)]
pub struct ShrinkWrapBuffers {
    amp: Vec<f32>,
    tmp: Vec<f32>,
    candidate: Vec<u8>,
    kernel: Vec<f32>,
}

impl ShrinkWrapBuffers {
    /// The modulus buffer that [`shrink_wrap_from_modulus`] starts from.
    pub fn amplitude_mut(&mut self) -> &mut [f32] {
        &mut self.amp
    }

    /// Buffers for arrays of `n` elements.
    pub fn new(n: usize) -> Self {
        ShrinkWrapBuffers {
            amp: vec![0.0; n],
            tmp: vec![0.0; n],
            candidate: vec![0; n],
            kernel: Vec::with_capacity(64),
        }
    }
}

/// Outcome of one shrink-wrap update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShrinkWrapOutcome {
    /// Pixels in the candidate support.
    pub size: usize,
    /// Whether the candidate replaced the support (within the fraction limits).
    pub accepted: bool,
}

/// One shrink-wrap update: blur `|rho|` with `sigma`, threshold relative to the RMS inside the
/// current support (or the max), and replace `support` unless the new one is outside the
/// fraction limits.
pub fn shrink_wrap(
    rho: &[Complex32],
    support: &mut [u8],
    shape: &[usize],
    params: &ShrinkWrap,
    sigma: f32,
    buf: &mut ShrinkWrapBuffers,
) -> ShrinkWrapOutcome {
    kernels::modulus(rho, &mut buf.amp);
    shrink_wrap_from_modulus(support, shape, params, sigma, buf)
}

/// [`shrink_wrap`] from `|rho|` already in `buf` ([`ShrinkWrapBuffers::amplitude_mut`]), e.g.
/// downloaded from a device.
pub fn shrink_wrap_from_modulus(
    support: &mut [u8],
    shape: &[usize],
    params: &ShrinkWrap,
    sigma: f32,
    buf: &mut ShrinkWrapBuffers,
) -> ShrinkWrapOutcome {
    kernels::gaussian_kernel(sigma, &mut buf.kernel);
    kernels::gaussian_blur(&mut buf.amp, &mut buf.tmp, shape, &buf.kernel);
    let (max, rms) = kernels::max_and_rms_in_support(&buf.amp, support);
    let reference = match params.method {
        ThresholdMethod::Rms => rms,
        ThresholdMethod::Max => max,
    };
    let size =
        kernels::threshold_support(&buf.amp, &mut buf.candidate, params.threshold * reference);
    let n = support.len().max(1) as f32;
    let frac = size as f32 / n;
    let accepted = size > 0 && frac >= params.min_fraction && frac <= params.max_fraction;
    if accepted {
        support
            .par_iter_mut()
            .zip(buf.candidate.par_iter())
            .for_each(|(s, &c)| *s = c);
    }
    ShrinkWrapOutcome { size, accepted }
}

/// Initial support: `|IFFT(I)| > threshold * max` (the autocorrelation of the object, about twice
/// its size), with masked pixels of `I` set to 0. `iobs` and `mask` are in FFT layout (zero
/// frequency at index 0), so the support is centred on index 0 (wrapping around the edges).
/// Falls back to the whole array if the threshold leaves nothing.
pub fn autocorrelation_support(
    iobs: &[f32],
    mask: &[u8],
    plan: &FftPlan,
    threshold: f32,
) -> Vec<u8> {
    let mut ac: Vec<Complex32> = iobs
        .par_iter()
        .zip(mask.par_iter())
        .map(|(&i, &m)| Complex32::new(if m == OBSERVED { i.max(0.0) } else { 0.0 }, 0.0))
        .collect();
    plan.process(&mut ac, Direction::Inverse);
    let amp: Vec<f32> = ac.par_iter().map(|c| c.norm()).collect();
    let max = amp.iter().copied().fold(0.0f32, f32::max);
    let mut support = vec![0u8; amp.len()];
    let n = kernels::threshold_support(&amp, &mut support, threshold * max);
    if n == 0 {
        support.fill(1);
    }
    support
}

/// Marks about `fraction` of the observed pixels of `mask` (FFT layout) as [`FREE`], in cubic
/// islands of half-width `radius` px at random places, avoiding the central zone (|q| below 5%
/// of each axis, at least 2 px) where the strongest signal is. Returns the number marked.
pub fn add_free_pixels<R: Rng>(
    mask: &mut [u8],
    shape: &[usize],
    fraction: f32,
    radius: usize,
    rng: &mut R,
) -> usize {
    let n: usize = shape.iter().product();
    if n == 0 || fraction <= 0.0 {
        return 0;
    }
    let observed = mask.iter().filter(|&&m| m == OBSERVED).count();
    let target = (fraction as f64 * observed as f64).round() as usize;
    let exclude: Vec<i64> = shape
        .iter()
        .map(|&s| ((0.05 * s as f64).ceil() as i64).max(2))
        .collect();
    let strides: Vec<usize> = (0..shape.len())
        .map(|d| shape[d + 1..].iter().product())
        .collect();
    let r = radius as i64;
    let mut marked = 0usize;
    let mut attempts = 0usize;
    let mut centre = vec![0i64; shape.len()];
    let mut offs = vec![0i64; shape.len()];
    while marked < target && attempts < 100 * target.max(1) + 1000 {
        attempts += 1;
        for (c, &s) in centre.iter_mut().zip(shape) {
            *c = rng.random_range(0..s as i64);
        }
        // Wrapped distance of the island centre to the zero frequency.
        let central = centre
            .iter()
            .zip(shape)
            .zip(&exclude)
            .all(|((&c, &s), &e)| {
                let d = c.min(s as i64 - c);
                d < e + r
            });
        if central {
            continue;
        }
        // Visit the (2r+1)^d cube.
        let side = (2 * r + 1) as usize;
        let count = side.pow(shape.len() as u32);
        for k in 0..count {
            let mut rem = k;
            for o in offs.iter_mut().rev() {
                *o = (rem % side) as i64 - r;
                rem /= side;
            }
            let mut idx = 0usize;
            for d in 0..shape.len() {
                let s = shape[d] as i64;
                idx += ((centre[d] + offs[d]).rem_euclid(s) as usize) * strides[d];
            }
            if mask[idx] == OBSERVED && marked < target {
                mask[idx] = FREE;
                marked += 1;
            }
        }
    }
    marked
}
