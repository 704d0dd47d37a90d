//! The element-wise pieces of one phasing cycle, written over flat C-ordered slices so that an
//! OpenCL version can mirror them one kernel each: Fourier-magnitude projection, the ER / HIO /
//! RAAR real-space updates, Poisson log-likelihood sums, modulus, separable periodic Gaussian
//! blur and support thresholding.
//!
//! Reductions use fixed-size chunks summed in order, so results do not depend on the number of
//! threads.

use num_complex::Complex32;
use rayon::prelude::*;

/// Mask value of an observed pixel (used by the projection and the LLK).
pub const OBSERVED: u8 = 0;
/// Mask value of a masked (gap, dead) pixel: left free, excluded from every LLK.
pub const MASKED: u8 = 1;
/// Mask value of a pixel withheld for the free LLK: left free by the projection.
pub const FREE: u8 = 2;

/// Minimum number of elements handed to one rayon task.
const MIN_LEN: usize = 4096;
/// Chunk size of the deterministic reductions.
const RED_CHUNK: usize = 16384;

/// A real-space update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Error reduction: outside the support -> 0.
    Er,
    /// Hybrid input-output: outside the support -> old - beta * new.
    Hio,
    /// Relaxed averaged alternating reflections: outside -> (1 - 2 beta) * new + beta * old.
    Raar,
}

impl Algorithm {
    /// The PyNX-style name (`ER`, `HIO`, `RAAR`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Er => "ER",
            Algorithm::Hio => "HIO",
            Algorithm::Raar => "RAAR",
        }
    }
}

/// Fourier-magnitude projection, in place on the (forward-transformed) wave `psi`:
/// observed pixels get the amplitude `sqrt(iobs)` (or the calculated amplitude clamped to
/// `sqrt(iobs) +- confidence/2`, the Poisson standard deviation of an amplitude being ~1/2, when
/// `confidence > 0`), keeping their phase; masked and free pixels keep the calculated amplitude.
/// Every pixel is finally multiplied by `scale` (used to fold the 1/N of an unscaled inverse FFT).
pub fn fourier_projection(
    psi: &mut [Complex32],
    iobs: &[f32],
    mask: &[u8],
    scale: f32,
    confidence: f32,
) {
    let half = 0.5 * confidence.max(0.0);
    psi.par_iter_mut()
        .zip(iobs.par_iter())
        .zip(mask.par_iter())
        .with_min_len(MIN_LEN)
        .for_each(|((p, &i), &m)| {
            if m != OBSERVED {
                *p *= scale;
                return;
            }
            let a = i.max(0.0).sqrt();
            let calc = p.norm();
            let target = if half > 0.0 {
                calc.clamp((a - half).max(0.0), a + half)
            } else {
                a
            };
            if calc > 1e-30 {
                *p *= scale * target / calc;
            } else {
                *p = Complex32::new(scale * target, 0.0);
            }
        });
}

/// Amplitude range of one voxel of the wave (see [`clamp_amplitudes`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AmplitudeBound {
    /// Flat index of the voxel.
    pub index: usize,
    /// Lowest amplitude allowed.
    pub low: f32,
    /// Highest amplitude allowed.
    pub high: f32,
}

/// Clamps the amplitude of the listed voxels of `psi` into `scale * [low, high]`, keeping their
/// phase (a voxel of zero amplitude raised to the bound gets phase 0). Run after
/// [`fourier_projection`], whose `scale` the bounds take.
pub fn clamp_amplitudes(psi: &mut [Complex32], bounds: &[AmplitudeBound], scale: f32) {
    for b in bounds {
        let p = &mut psi[b.index];
        let calc = p.norm();
        let target = calc.clamp(scale * b.low, scale * b.high);
        if target == calc {
            continue;
        }
        if calc > 1e-30 {
            *p *= target / calc;
        } else {
            *p = Complex32::new(target, 0.0);
        }
    }
}

/// Real-space update of the iterate `rho` given the Fourier-projected wave `proj` (already back in
/// real space): inside the support `rho <- proj`; outside it follows `algorithm` with `beta`.
pub fn real_space_update(
    rho: &mut [Complex32],
    proj: &[Complex32],
    support: &[u8],
    algorithm: Algorithm,
    beta: f32,
) {
    let it = rho
        .par_iter_mut()
        .zip(proj.par_iter())
        .zip(support.par_iter())
        .with_min_len(MIN_LEN);
    match algorithm {
        Algorithm::Er => it.for_each(|((r, &p), &s)| {
            *r = if s != 0 { p } else { Complex32::default() };
        }),
        Algorithm::Hio => it.for_each(|((r, &p), &s)| {
            *r = if s != 0 { p } else { *r - p * beta };
        }),
        Algorithm::Raar => it.for_each(|((r, &p), &s)| {
            *r = if s != 0 {
                p
            } else {
                p * (1.0 - 2.0 * beta) + *r * beta
            };
        }),
    }
}

/// Sums of the Poisson log-likelihood terms `calc - obs + obs ln(obs / calc)` over observed and
/// free pixels, with `calc = |psi|^2` (psi: forward-transformed object, same scale as `iobs`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LlkSums {
    /// Sum over observed pixels.
    pub observed: f64,
    /// Number of observed pixels.
    pub n_observed: usize,
    /// Sum over free (withheld) pixels.
    pub free: f64,
    /// Number of free pixels.
    pub n_free: usize,
}

impl LlkSums {
    /// Normalised LLK of the observed pixels: `2 / n * sum`, ~1 for a perfect model of
    /// Poisson-noisy data (the deviance per degree of freedom); ~0 for noiseless data.
    pub fn llk(&self) -> f64 {
        2.0 * self.observed / self.n_observed.max(1) as f64
    }

    /// Normalised free LLK (same normalisation over the withheld pixels); NaN without any.
    pub fn free_llk(&self) -> f64 {
        if self.n_free == 0 {
            f64::NAN
        } else {
            2.0 * self.free / self.n_free as f64
        }
    }
}

/// One Poisson term `calc - obs + obs ln(obs / calc)` (0 when both are 0).
#[inline]
pub fn poisson_term(obs: f64, calc: f64) -> f64 {
    let obs = obs.max(0.0);
    let calc = calc.max(1e-30);
    if obs > 0.0 {
        calc - obs + obs * (obs / calc).ln()
    } else {
        calc
    }
}

/// Poisson LLK sums of `psi` against `iobs`, split by `mask` (masked pixels ignored).
pub fn poisson_llk(psi: &[Complex32], iobs: &[f32], mask: &[u8]) -> LlkSums {
    llk_sums(psi, iobs, mask, |p| p.norm_sqr())
}

/// Poisson LLK sums of a calculated intensity (e.g. blurred by a PSF) against `iobs`.
pub fn poisson_llk_intensity(calc: &[f32], iobs: &[f32], mask: &[u8]) -> LlkSums {
    llk_sums(calc, iobs, mask, |&c| c)
}

fn llk_sums<T: Sync>(
    calc: &[T],
    iobs: &[f32],
    mask: &[u8],
    value: impl Fn(&T) -> f32 + Sync,
) -> LlkSums {
    let parts: Vec<LlkSums> = calc
        .par_chunks(RED_CHUNK)
        .zip(iobs.par_chunks(RED_CHUNK))
        .zip(mask.par_chunks(RED_CHUNK))
        .map(|((p, i), m)| {
            let mut s = LlkSums::default();
            for ((p, &i), &m) in p.iter().zip(i).zip(m) {
                let t = poisson_term(i as f64, value(p) as f64);
                match m {
                    OBSERVED => {
                        s.observed += t;
                        s.n_observed += 1;
                    }
                    FREE => {
                        s.free += t;
                        s.n_free += 1;
                    }
                    _ => {}
                }
            }
            s
        })
        .collect();
    parts.iter().fold(LlkSums::default(), |a, b| LlkSums {
        observed: a.observed + b.observed,
        n_observed: a.n_observed + b.n_observed,
        free: a.free + b.free,
        n_free: a.n_free + b.n_free,
    })
}

/// `out <- |rho|`.
pub fn modulus(rho: &[Complex32], out: &mut [f32]) {
    out.par_iter_mut()
        .zip(rho.par_iter())
        .with_min_len(MIN_LEN)
        .for_each(|(o, r)| *o = r.norm());
}

/// Fills `kernel` with a normalised Gaussian of `sigma` px, truncated at 4 sigma (odd length,
/// centre in the middle). Reuses the vector's capacity.
pub fn gaussian_kernel(sigma: f32, kernel: &mut Vec<f32>) {
    kernel.clear();
    if sigma <= 0.0 {
        kernel.push(1.0);
        return;
    }
    let radius = (4.0 * sigma).ceil() as i64;
    for k in -radius..=radius {
        let x = k as f32 / sigma;
        kernel.push((-0.5 * x * x).exp());
    }
    let sum: f32 = kernel.iter().sum();
    kernel.iter_mut().for_each(|v| *v /= sum);
}

/// Convolves `src` with `kernel` (odd length, centred) along `axis` of the C-ordered `shape`,
/// with periodic boundaries (the FFT's own), into `dst`.
pub fn blur_axis(src: &[f32], dst: &mut [f32], shape: &[usize], axis: usize, kernel: &[f32]) {
    let n = shape[axis] as i64;
    let inner: usize = shape[axis + 1..].iter().product();
    let radius = (kernel.len() / 2) as i64;
    dst.par_iter_mut()
        .enumerate()
        .with_min_len(MIN_LEN)
        .for_each(|(idx, d)| {
            let k = ((idx / inner) as i64) % n;
            let base = idx as i64 - k * inner as i64;
            let mut acc = 0.0f32;
            for (t, &w) in kernel.iter().enumerate() {
                let kk = (k + t as i64 - radius).rem_euclid(n);
                acc += w * src[(base + kk * inner as i64) as usize];
            }
            *d = acc;
        });
}

/// Separable periodic Gaussian blur of `data` in place over all axes of `shape`, using `tmp`
/// (same length) as work space.
pub fn gaussian_blur(data: &mut [f32], tmp: &mut [f32], shape: &[usize], kernel: &[f32]) {
    for axis in 0..shape.len() {
        if shape[axis] <= 1 {
            continue;
        }
        blur_axis(data, tmp, shape, axis, kernel);
        data.par_iter_mut()
            .zip(tmp.par_iter())
            .with_min_len(MIN_LEN)
            .for_each(|(d, &t)| *d = t);
    }
}

/// Maximum of `data` and the root mean square of `data` over `support != 0`.
pub fn max_and_rms_in_support(data: &[f32], support: &[u8]) -> (f32, f32) {
    let parts: Vec<(f32, f64, usize)> = data
        .par_chunks(RED_CHUNK)
        .zip(support.par_chunks(RED_CHUNK))
        .map(|(d, s)| {
            let mut mx = 0.0f32;
            let mut ss = 0.0f64;
            let mut n = 0usize;
            for (&v, &s) in d.iter().zip(s) {
                mx = mx.max(v);
                if s != 0 {
                    ss += (v as f64) * (v as f64);
                    n += 1;
                }
            }
            (mx, ss, n)
        })
        .collect();
    let (mx, ss, n) = parts.iter().fold((0.0f32, 0.0f64, 0usize), |a, b| {
        (a.0.max(b.0), a.1 + b.1, a.2 + b.2)
    });
    (mx, (ss / n.max(1) as f64).sqrt() as f32)
}

/// `support <- data > threshold`; returns the number of pixels in the new support.
pub fn threshold_support(data: &[f32], support: &mut [u8], threshold: f32) -> usize {
    support
        .par_chunks_mut(RED_CHUNK)
        .zip(data.par_chunks(RED_CHUNK))
        .map(|(s, d)| {
            let mut n = 0;
            for (s, &v) in s.iter_mut().zip(d) {
                *s = u8::from(v > threshold);
                n += *s as usize;
            }
            n
        })
        .sum()
}

/// `dst <- src` in parallel.
pub fn copy(src: &[Complex32], dst: &mut [Complex32]) {
    dst.par_iter_mut()
        .zip(src.par_iter())
        .with_min_len(MIN_LEN)
        .for_each(|(d, &s)| *d = s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_sets_observed_amplitude_and_keeps_free_ones() {
        let mut psi = vec![
            Complex32::new(3.0, 4.0),
            Complex32::new(3.0, 4.0),
            Complex32::new(0.0, 0.0),
        ];
        fourier_projection(
            &mut psi,
            &[4.0, 4.0, 9.0],
            &[OBSERVED, MASKED, OBSERVED],
            0.5,
            0.0,
        );
        assert!((psi[0] - Complex32::new(0.6, 0.8)).norm() < 1e-6);
        assert!((psi[1] - Complex32::new(1.5, 2.0)).norm() < 1e-6);
        assert!((psi[2] - Complex32::new(1.5, 0.0)).norm() < 1e-6);
        // Confidence interval: |psi| = 5, sqrt(I) = 4.6 +- 0.5 -> stays 5.
        let mut psi = vec![Complex32::new(3.0, 4.0)];
        fourier_projection(&mut psi, &[4.6 * 4.6], &[OBSERVED], 1.0, 1.0);
        assert!((psi[0].norm() - 5.0).abs() < 1e-5);
    }

    #[test]
    fn clamped_amplitudes_stay_in_their_bounds_and_keep_their_phase() {
        let mut psi = vec![
            Complex32::from_polar(10.0, 0.3),
            Complex32::from_polar(0.5, -1.2),
            Complex32::from_polar(2.0, 2.0),
            Complex32::new(0.0, 0.0),
            Complex32::from_polar(7.0, 1.0),
        ];
        let untouched = psi[4];
        let bound = |index, low, high| AmplitudeBound { index, low, high };
        let bounds = [
            bound(0, 2.0, 4.0),
            bound(1, 2.0, 4.0),
            bound(2, 2.0, 4.0),
            bound(3, 1.0, 3.0),
        ];
        clamp_amplitudes(&mut psi, &bounds, 0.5);
        // scale 0.5: the bounds become [1, 2] and [0.5, 1.5]
        assert!((psi[0].norm() - 2.0).abs() < 1e-5 && (psi[0].arg() - 0.3).abs() < 1e-5);
        assert!((psi[1].norm() - 1.0).abs() < 1e-5 && (psi[1].arg() + 1.2).abs() < 1e-5);
        assert!((psi[2].norm() - 2.0).abs() < 1e-5 && (psi[2].arg() - 2.0).abs() < 1e-5);
        assert!((psi[3] - Complex32::new(0.5, 0.0)).norm() < 1e-6);
        assert_eq!(psi[4], untouched);
    }

    #[test]
    fn updates_follow_the_rules() {
        let old = Complex32::new(1.0, 0.0);
        let new = Complex32::new(0.0, 2.0);
        for (algo, want) in [
            (Algorithm::Er, Complex32::default()),
            (Algorithm::Hio, old - new * 0.9),
            (Algorithm::Raar, new * (1.0 - 1.8) + old * 0.9),
        ] {
            let mut rho = vec![old, old];
            real_space_update(&mut rho, &[new, new], &[1, 0], algo, 0.9);
            assert_eq!(rho[0], new);
            assert!((rho[1] - want).norm() < 1e-6, "{algo:?}");
        }
    }

    #[test]
    fn blur_preserves_sum_and_is_periodic() {
        let shape = [7usize, 9];
        let mut data = vec![0.0f32; 63];
        data[0] = 1.0;
        let mut tmp = vec![0.0; 63];
        let mut k = Vec::new();
        gaussian_kernel(1.0, &mut k);
        gaussian_blur(&mut data, &mut tmp, &shape, &k);
        let s: f32 = data.iter().sum();
        assert!((s - 1.0).abs() < 1e-5);
        // Symmetric around index 0 with wrap-around.
        assert!((data[1] - data[8]).abs() < 1e-6);
        assert!((data[9] - data[6 * 9]).abs() < 1e-6);
    }

    #[test]
    fn llk_is_zero_for_a_perfect_noiseless_fit() {
        let psi = vec![Complex32::new(2.0, 0.0); 4];
        let s = poisson_llk(
            &psi,
            &[4.0, 4.0, 4.0, 1.0],
            &[OBSERVED, FREE, MASKED, OBSERVED],
        );
        assert_eq!((s.n_observed, s.n_free), (2, 1));
        assert!(s.free.abs() < 1e-9);
        assert!(s.observed > 0.0);
    }
}
