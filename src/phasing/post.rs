//! Post-processing and comparison of reconstructions: integer rolls, centring, phase ramp and
//! offset removal, the twin image `conj(rho(-r))`, and error metrics against a reference after
//! removing these ambiguities. Arrays are flat C-ordered slices with a shape (2D or 3D alike).

use crate::fft::{Direction, FftPlan};
use num_complex::Complex32;
use rayon::prelude::*;
use serde::Serialize;
use std::f64::consts::PI;

/// Relative modulus threshold defining the support of an object in comparisons.
pub const SUPPORT_LEVEL: f32 = 0.2;

fn strides(shape: &[usize]) -> Vec<usize> {
    (0..shape.len())
        .map(|d| shape[d + 1..].iter().product())
        .collect()
}

/// Circular roll: `out[(i + shift) mod n] = data[i]` along every axis.
pub fn roll<T: Copy + Send + Sync>(data: &[T], shape: &[usize], shift: &[i64]) -> Vec<T> {
    let st = strides(shape);
    (0..data.len())
        .into_par_iter()
        .map(|o| {
            let mut src = 0usize;
            for d in 0..shape.len() {
                let n = shape[d] as i64;
                let i = ((o / st[d]) % shape[d]) as i64;
                src += ((i - shift[d]).rem_euclid(n) as usize) * st[d];
            }
            data[src]
        })
        .collect()
}

/// Point reflection through index 0: `out[i] = data[-i mod n]`.
pub fn flip<T: Copy + Send + Sync>(data: &[T], shape: &[usize]) -> Vec<T> {
    let st = strides(shape);
    (0..data.len())
        .into_par_iter()
        .map(|o| {
            let mut src = 0usize;
            for d in 0..shape.len() {
                let n = shape[d];
                let i = (o / st[d]) % n;
                src += ((n - i) % n) * st[d];
            }
            data[src]
        })
        .collect()
}

/// The twin image `conj(rho(-r))`, which has the same diffraction intensity.
pub fn twin(rho: &[Complex32], shape: &[usize]) -> Vec<Complex32> {
    let mut t = flip(rho, shape);
    t.par_iter_mut().for_each(|v| *v = v.conj());
    t
}

/// Per-axis circular centre of mass of `weights` (robust to objects wrapped around the edges).
pub fn circular_centre(weights: &[f32], shape: &[usize]) -> Vec<f64> {
    let st = strides(shape);
    (0..shape.len())
        .map(|d| {
            let n = shape[d];
            let mut marg = vec![0.0f64; n];
            for (i, &w) in weights.iter().enumerate() {
                marg[(i / st[d]) % n] += w as f64;
            }
            let (mut c, mut s) = (0.0f64, 0.0f64);
            for (k, &m) in marg.iter().enumerate() {
                let a = 2.0 * PI * k as f64 / n as f64;
                c += m * a.cos();
                s += m * a.sin();
            }
            (s.atan2(c) * n as f64 / (2.0 * PI)).rem_euclid(n as f64)
        })
        .collect()
}

/// Integer shift that moves the circular centre of mass of `|rho|^2` to the array centre `n/2`.
pub fn centring_shift(rho: &[Complex32], shape: &[usize]) -> Vec<i64> {
    let w: Vec<f32> = rho.par_iter().map(|v| v.norm_sqr()).collect();
    circular_centre(&w, shape)
        .iter()
        .zip(shape)
        .map(|(&c, &n)| (n / 2) as i64 - c.round() as i64)
        .collect()
}

/// Phase gradient (rad/px per axis) of `rho`: the argument of the sum of `rho[i+e] conj(rho[i])`
/// over neighbouring pairs (no wrap-around), weighted by the modulus products.
pub fn phase_gradient(rho: &[Complex32], shape: &[usize]) -> Vec<f64> {
    let st = strides(shape);
    (0..shape.len())
        .map(|d| {
            let n = shape[d];
            let sum = (0..rho.len())
                .into_par_iter()
                .with_min_len(4096)
                .filter(|&i| (i / st[d]) % n + 1 < n)
                .map(|i| {
                    let p = rho[i + st[d]] * rho[i].conj();
                    (p.re as f64, p.im as f64)
                })
                .collect::<Vec<_>>()
                .iter()
                .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
            sum.1.atan2(sum.0)
        })
        .collect()
}

/// Multiplies `rho` by `exp(-i sum_d g_d (x_d - n_d/2))`, removing a phase ramp of gradient `g`.
pub fn remove_ramp(rho: &mut [Complex32], shape: &[usize], g: &[f64]) {
    let st = strides(shape);
    rho.par_iter_mut().enumerate().for_each(|(i, v)| {
        let mut ph = 0.0f64;
        for d in 0..shape.len() {
            let x = ((i / st[d]) % shape[d]) as f64 - (shape[d] / 2) as f64;
            ph -= g[d] * x;
        }
        *v *= Complex32::new(ph.cos() as f32, ph.sin() as f32);
    });
}

/// Removes the global phase so that the `|rho|^2`-weighted mean phase is 0.
pub fn remove_offset(rho: &mut [Complex32]) {
    let s = rho
        .iter()
        .fold(Complex32::default(), |a, v| a + v * v.norm());
    let ph = -s.im.atan2(s.re);
    let r = Complex32::new(ph.cos(), ph.sin());
    rho.par_iter_mut().for_each(|v| *v *= r);
}

/// Centres `rho` (and its `support`) in the array, then removes its phase ramp and offset.
/// Returns the applied roll.
pub fn normalise(rho: &mut Vec<Complex32>, support: &mut Vec<u8>, shape: &[usize]) -> Vec<i64> {
    let shift = centring_shift(rho, shape);
    *rho = roll(rho, shape, &shift);
    *support = roll(support, shape, &shift);
    let g = phase_gradient(rho, shape);
    remove_ramp(rho, shape, &g);
    remove_offset(rho);
    shift
}

/// Integer shift `s` maximising the circular cross-correlation of `a` with `b` (so that
/// `a(x) ~ b(x - s)`), by FFT.
pub fn correlation_shift(a: &[f32], b: &[f32], shape: &[usize], plan: &FftPlan) -> Vec<i64> {
    let mut fa: Vec<Complex32> = a.par_iter().map(|&v| Complex32::new(v, 0.0)).collect();
    let mut fb: Vec<Complex32> = b.par_iter().map(|&v| Complex32::new(v, 0.0)).collect();
    plan.process(&mut fa, Direction::Forward);
    plan.process(&mut fb, Direction::Forward);
    fa.par_iter_mut()
        .zip(fb.par_iter())
        .for_each(|(x, y)| *x *= y.conj());
    plan.process(&mut fa, Direction::Inverse);
    let best = fa
        .iter()
        .enumerate()
        .fold((0usize, f32::NEG_INFINITY), |acc, (i, v)| {
            if v.re > acc.1 {
                (i, v.re)
            } else {
                acc
            }
        })
        .0;
    let st = strides(shape);
    (0..shape.len())
        .map(|d| {
            let n = shape[d] as i64;
            let s = ((best / st[d]) % shape[d]) as i64;
            if s > n / 2 {
                s - n
            } else {
                s
            }
        })
        .collect()
}

/// Translates `a` by a fraction of a pixel onto `reference`: the linear phase of the cross-power
/// spectrum `F(a) conj(F(reference))` (estimated as in [`phase_gradient`], in centred layout) is
/// removed from `F(a)`. Returns the translation removed (px per axis).
pub fn subpixel_register(
    a: &mut [Complex32],
    reference: &[Complex32],
    shape: &[usize],
    plan: &FftPlan,
) -> Vec<f64> {
    let half: Vec<i64> = shape.iter().map(|&n| (n / 2) as i64).collect();
    let minus_half: Vec<i64> = half.iter().map(|v| -v).collect();
    let mut fa = a.to_vec();
    let mut ft = reference.to_vec();
    plan.process(&mut fa, Direction::Forward);
    plan.process(&mut ft, Direction::Forward);
    let mut fa_c = roll(&fa, shape, &half);
    let ft_c = roll(&ft, shape, &half);
    let cross: Vec<Complex32> = fa_c
        .par_iter()
        .zip(ft_c.par_iter())
        .map(|(x, y)| x * y.conj())
        .collect();
    let g = phase_gradient(&cross, shape);
    remove_ramp(&mut fa_c, shape, &g);
    let mut back = roll(&fa_c, shape, &minus_half);
    plan.process(&mut back, Direction::Inverse);
    a.copy_from_slice(&back);
    g.iter()
        .zip(shape)
        .map(|(&g, &n)| g * n as f64 / (2.0 * PI))
        .collect()
}

/// Errors of a reconstruction against a reference, after removing the ambiguities.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// `min_c ||c a - t|| / ||t||` over complex scalars c.
    pub complex_error: f64,
    /// `min_s || s|a| - |t| || / ||t||` over real scalars s.
    pub modulus_error: f64,
    /// RMS of the wrapped phase difference (rad) inside the reference support.
    pub phase_rms_error: f64,
    /// Jaccard index of the supports `|.| > 0.2 max|.|`.
    pub support_jaccard: f64,
    /// Whether the twin image matched better.
    pub twin: bool,
    /// Integer roll applied to the reconstruction (after the twin flip when `twin`).
    pub shift: Vec<i64>,
    /// Residual sub-pixel translation removed after the integer roll (px per axis): a
    /// reconstruction may be translated by any fraction of a pixel without changing `|F|`.
    pub subpixel_shift: Vec<f64>,
    /// Phase gradient removed (rad/px per axis).
    pub ramp: Vec<f64>,
}

/// Result of [`align`]: the reconstruction transformed onto the reference, and the metrics.
#[derive(Debug, Clone)]
pub struct Aligned {
    /// The transformed reconstruction.
    pub object: Vec<Complex32>,
    /// The metrics.
    pub metrics: Comparison,
}

fn support_of(a: &[Complex32]) -> Vec<bool> {
    let max = a.iter().map(|v| v.norm()).fold(0.0f32, f32::max);
    a.iter().map(|v| v.norm() > SUPPORT_LEVEL * max).collect()
}

fn align_one(
    candidate: &[Complex32],
    reference: &[Complex32],
    shape: &[usize],
    plan: &FftPlan,
    twin_flag: bool,
) -> Aligned {
    let am: Vec<f32> = candidate.par_iter().map(|v| v.norm()).collect();
    let tm: Vec<f32> = reference.par_iter().map(|v| v.norm()).collect();
    let s = correlation_shift(&am, &tm, shape, plan);
    let back: Vec<i64> = s.iter().map(|v| -v).collect();
    let mut a = roll(candidate, shape, &back);
    // Alternate the removal of the relative phase ramp (a shift in reciprocal space) and of the
    // sub-pixel translation (a ramp in reciprocal space).
    let mut sub = vec![0.0f64; shape.len()];
    let mut g = vec![0.0f64; shape.len()];
    for _ in 0..3 {
        let d: Vec<Complex32> = a
            .par_iter()
            .zip(reference.par_iter())
            .map(|(x, y)| x * y.conj())
            .collect();
        let gi = phase_gradient(&d, shape);
        remove_ramp(&mut a, shape, &gi);
        g.iter_mut().zip(&gi).for_each(|(x, y)| *x += y);
        let s = subpixel_register(&mut a, reference, shape, plan);
        sub.iter_mut().zip(&s).for_each(|(x, y)| *x += y);
    }
    // Global phase and complex scale.
    let (mut at, mut aa, mut tt) = (num_complex::Complex64::default(), 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(reference) {
        let x64 = num_complex::Complex64::new(x.re as f64, x.im as f64);
        let y64 = num_complex::Complex64::new(y.re as f64, y.im as f64);
        at += x64.conj() * y64;
        aa += x64.norm_sqr();
        tt += y64.norm_sqr();
    }
    let ph = at.arg();
    let rot = Complex32::new(ph.cos() as f32, ph.sin() as f32);
    a.par_iter_mut().for_each(|v| *v *= rot);
    let complex_error = if aa > 0.0 && tt > 0.0 {
        ((tt - at.norm_sqr() / aa).max(0.0) / tt).sqrt()
    } else {
        1.0
    };
    let (mut mt, mut mm) = (0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(reference) {
        mt += x.norm() as f64 * y.norm() as f64;
        mm += x.norm_sqr() as f64;
    }
    let modulus_error = if mm > 0.0 && tt > 0.0 {
        ((tt - mt * mt / mm).max(0.0) / tt).sqrt()
    } else {
        1.0
    };
    let sa = support_of(&a);
    let st = support_of(reference);
    let (mut ph2, mut np) = (0.0f64, 0usize);
    for ((x, y), &inside) in a.iter().zip(reference).zip(&st) {
        if inside {
            let dphi = (x * y.conj()).arg() as f64;
            ph2 += dphi * dphi;
            np += 1;
        }
    }
    let inter = sa.iter().zip(&st).filter(|(x, y)| **x && **y).count();
    let union = sa.iter().zip(&st).filter(|(x, y)| **x || **y).count();
    Aligned {
        object: a,
        metrics: Comparison {
            complex_error,
            modulus_error,
            phase_rms_error: (ph2 / np.max(1) as f64).sqrt(),
            support_jaccard: inter as f64 / union.max(1) as f64,
            twin: twin_flag,
            shift: back,
            subpixel_shift: sub,
            ramp: g,
        },
    }
}

/// Aligns `object` onto `reference` (same shape): for the object and its twin, removes the
/// integer translation (cross-correlation of the moduli), the phase ramp and the global phase,
/// and keeps the candidate with the lower complex error.
pub fn align(object: &[Complex32], reference: &[Complex32], shape: &[usize]) -> Aligned {
    let plan = FftPlan::new(shape);
    let direct = align_one(object, reference, shape, &plan, false);
    let tw = twin(object, shape);
    let flipped = align_one(&tw, reference, shape, &plan, true);
    if flipped.metrics.complex_error < direct.metrics.complex_error {
        flipped
    } else {
        direct
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(shape: &[usize], centre: &[f64], ramp: &[f64], offset: f64) -> Vec<Complex32> {
        let st = strides(shape);
        (0..shape.iter().product::<usize>())
            .map(|i| {
                let mut r2 = 0.0;
                let mut ph = offset;
                for d in 0..shape.len() {
                    let x = ((i / st[d]) % shape[d]) as f64;
                    r2 += (x - centre[d]).powi(2);
                    ph += ramp[d] * x + 0.02 * (x - centre[d]).powi(2) * (d as f64 + 1.0);
                }
                let m = (-r2 / 20.0).exp();
                Complex32::new((m * ph.cos()) as f32, (m * ph.sin()) as f32)
            })
            .collect()
    }

    #[test]
    fn align_removes_shift_ramp_offset_and_twin() {
        let shape = [24usize, 20];
        let truth = blob(&shape, &[12.0, 10.0], &[0.0, 0.0], 0.0);
        // Roll + ramp + offset + scale + twin of the truth.
        let mut obj = roll(&truth, &shape, &[-4, 3]);
        // Periodic ramp (whole cycles over each axis), so that the roll keeps it continuous.
        let g = [2.0 * PI * 2.0 / 24.0, -2.0 * PI / 20.0];
        remove_ramp(&mut obj, &shape, &[-g[0], -g[1]]);
        obj.iter_mut()
            .for_each(|v| *v *= Complex32::new(1.3f32.cos(), 1.3f32.sin()) * 2.0);
        let obj = twin(&obj, &shape);
        let al = align(&obj, &truth, &shape);
        assert!(al.metrics.twin);
        assert!(al.metrics.complex_error < 1e-3, "{:?}", al.metrics);
        assert!(al.metrics.phase_rms_error < 1e-3);
        assert!((al.metrics.support_jaccard - 1.0).abs() < 1e-9);
    }

    #[test]
    fn normalise_centres_wrapped_objects() {
        let shape = [16usize, 16];
        let mut rho = blob(&shape, &[5.0, 10.0], &[0.4, 0.0], 0.5);
        let mut sup = vec![0u8; 256];
        let shift = normalise(&mut rho, &mut sup, &shape);
        assert_eq!(shift, vec![3, -2]);
        let c = circular_centre(
            &rho.iter().map(|v| v.norm_sqr()).collect::<Vec<_>>(),
            &shape,
        );
        assert!(
            (c[0] - 8.0).abs() < 0.5 && (c[1] - 8.0).abs() < 0.5,
            "{c:?}"
        );
        let g = phase_gradient(&rho, &shape);
        assert!(g.iter().all(|v| v.abs() < 1e-3), "{g:?}");
    }
}
