//! Random fields of the object: Gaussian-correlated noise, the random phase, strain phases
//! (linear strain gradient, edge dislocation) and the modulus realism model.

use super::{Range, Realism};
use crate::fft::{fftn, Direction};
use ndarray::{ArrayD, Axis, IxDyn, Zip};
use num_complex::Complex32;
use rand::Rng;
use rand_distr::StandardNormal;
use std::f64::consts::PI;

/// Separable Gaussian filter with zero ("constant") boundary, kernel truncated at 4 sigma.
/// `sigma <= 0` returns a copy.
pub fn gaussian_filter(a: &ArrayD<f32>, sigma: f64) -> ArrayD<f32> {
    if sigma <= 0.0 {
        return a.clone();
    }
    let radius = (4.0 * sigma).ceil() as isize;
    let mut kernel: Vec<f32> = (-radius..=radius)
        .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp() as f32)
        .collect();
    let norm: f32 = kernel.iter().sum();
    kernel.iter_mut().for_each(|k| *k /= norm);
    let mut out = a.clone();
    let mut buf = Vec::new();
    for axis in 0..a.ndim() {
        let n = out.len_of(Axis(axis)) as isize;
        for mut lane in out.lanes_mut(Axis(axis)) {
            buf.clear();
            buf.extend(lane.iter().copied());
            for (i, dst) in lane.iter_mut().enumerate() {
                let i = i as isize;
                let lo = (i - radius).max(0);
                let hi = (i + radius).min(n - 1);
                let mut acc = 0.0f32;
                for j in lo..=hi {
                    acc += buf[j as usize] * kernel[(j - i + radius) as usize];
                }
                *dst = acc;
            }
        }
    }
    out
}

/// White Gaussian noise (unit variance) on `shape`, filtered by a periodic Gaussian of
/// standard deviation `sigma` pixels (applied in Fourier space).
pub fn correlated_noise(shape: &[usize], sigma: f64, rng: &mut impl Rng) -> ArrayD<f32> {
    let mut c = ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        Complex32::new(rng.sample::<f32, _>(StandardNormal), 0.0)
    });
    if sigma <= 0.0 {
        return c.mapv(|v| v.re);
    }
    fftn(&mut c.view_mut(), Direction::Forward);
    let transfer: Vec<Vec<f32>> = shape
        .iter()
        .map(|&n| {
            (0..n)
                .map(|k| {
                    let f = if k <= n / 2 {
                        k as f64
                    } else {
                        k as f64 - n as f64
                    } / n as f64;
                    (-2.0 * PI * PI * sigma * sigma * f * f).exp() as f32
                })
                .collect()
        })
        .collect();
    c.indexed_iter_mut().for_each(|(idx, v)| {
        let mut t = 1.0;
        for (d, tr) in transfer.iter().enumerate() {
            t *= tr[idx[d]];
        }
        *v *= t;
    });
    fftn(&mut c.view_mut(), Direction::Inverse);
    c.mapv(|v| v.re)
}

/// Coordinates of voxel `idx` relative to the box centre.
fn centred(idx: &IxDyn, shape: &[usize]) -> [f64; 3] {
    let mut p = [0.0; 3];
    for d in 0..shape.len() {
        p[d] = idx[d] as f64 - (shape[d] as f64 - 1.0) / 2.0;
    }
    p
}

fn random_unit(dim: usize, rng: &mut impl Rng) -> [f64; 3] {
    loop {
        let mut v = [0.0f64; 3];
        for x in v.iter_mut().take(dim) {
            *x = rng.sample(StandardNormal);
        }
        let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        if n > 1e-6 {
            return [v[0] / n, v[1] / n, v[2] / n];
        }
    }
}

/// Phase of a linear strain gradient: a displacement quadratic along a random direction,
/// `phi = max_phase * ((h . r) / R)^2`, `R` the largest `|h . r|` in the box.
pub fn strain_gradient_phase(shape: &[usize], max_phase: f64, rng: &mut impl Rng) -> ArrayD<f32> {
    let h = random_unit(shape.len(), rng);
    let proj = |p: [f64; 3]| h[0] * p[0] + h[1] * p[1] + h[2] * p[2];
    let rmax = ArrayD::<f32>::zeros(IxDyn(shape))
        .indexed_iter()
        .map(|(i, _)| proj(centred(&i, shape)).abs())
        .fold(1e-9, f64::max);
    ArrayD::from_shape_fn(IxDyn(shape), |i| {
        let x = proj(centred(&i, shape)) / rmax;
        (max_phase * x * x) as f32
    })
}

/// Phase of a straight edge dislocation (isotropic elasticity, Poisson ratio 0.3) with its
/// line along `line_axis` (3D; ignored in 2D) through `core` (box coordinates), Burgers vector
/// of one lattice spacing along the local x axis and Bragg vector at angle `alpha` in the plane
/// normal to the line: `phi = G . u`. The phase winds by `2 pi cos(alpha)` around the core.
pub fn edge_dislocation_phase(
    shape: &[usize],
    line_axis: usize,
    core: [f64; 3],
    alpha: f64,
) -> ArrayD<f32> {
    let nu = 0.3;
    let plane: Vec<usize> = if shape.len() == 2 {
        vec![0, 1]
    } else {
        (0..3).filter(|&a| a != line_axis).collect()
    };
    ArrayD::from_shape_fn(IxDyn(shape), |i| {
        let x = i[plane[0]] as f64 - core[plane[0]];
        let y = i[plane[1]] as f64 - core[plane[1]];
        let r2 = (x * x + y * y).max(1e-6);
        // 2 pi u / b for b = 1 lattice spacing.
        let ux = y.atan2(x) + x * y / (2.0 * (1.0 - nu) * r2);
        let uy = -((1.0 - 2.0 * nu) / (4.0 * (1.0 - nu)) * r2.ln()
            + (x * x - y * y) / (4.0 * (1.0 - nu) * r2));
        (alpha.cos() * ux + alpha.sin() * uy) as f32
    })
}

/// The object phase on the box `shape`: a Gaussian-correlated random field rescaled to a random
/// peak-to-peak range, plus, at random, a strain gradient and an edge dislocation.
pub fn random_phase(shape: &[usize], r: &Realism, rng: &mut impl Rng) -> ArrayD<f32> {
    let mean_extent = shape.iter().sum::<usize>() as f64 / shape.len() as f64;
    let corr = (r.phase_corr.sample(rng) * mean_extent).max(0.5);
    let range = r.phase_range.sample(rng);
    let noise = correlated_noise(shape, corr, rng);
    let (lo, hi) = noise
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let span = (hi - lo).max(1e-12);
    let mut phase = noise.mapv(|v| ((v - lo) / span - 0.5) * range as f32);
    if rng.random_bool(r.p_gradient) {
        let g = strain_gradient_phase(shape, r.gradient_phase.sample(rng), rng);
        phase += &g;
    }
    if rng.random_bool(r.p_dislocation) {
        let line_axis = rng.random_range(0..shape.len());
        let mut core = [0.0; 3];
        for (d, c) in core.iter_mut().enumerate().take(shape.len()) {
            let e = shape[d] as f64;
            // Off-lattice so the core never falls on a voxel centre.
            *c = rng.random_range(0.35 * e..0.65 * e) + 0.37;
        }
        let alpha = rng.random_range(0.0..2.0 * PI);
        phase += &edge_dislocation_phase(shape, line_axis, core, alpha);
    }
    phase
}

/// The realism model of the modulus (brief section 3): Gaussian smoothing, zero below
/// `threshold * max`, then Gaussian-correlated noise (amplitude x max on white noise, correlation
/// length a fraction of the array size `array_size`) inside the support, clipped at zero.
/// The result is normalised to a maximum of 1.
pub fn realistic_modulus(
    support: &ArrayD<f32>,
    array_size: usize,
    r: &Realism,
    rng: &mut impl Rng,
) -> ArrayD<f32> {
    let sigma = r.modulus_sigma.sample(rng);
    let mut m = gaussian_filter(support, sigma);
    let max = m.iter().copied().fold(0.0f32, f32::max).max(1e-12);
    let thr = r.threshold as f32 * max;
    m.mapv_inplace(|v| if v < thr { 0.0 } else { v / max });
    let amp = sample_range(&r.modulus_noise, rng);
    let corr = (r.modulus_noise_corr.sample(rng) * array_size as f64).max(0.5);
    let noise = correlated_noise(support.shape(), corr, rng);
    Zip::from(&mut m).and(&noise).for_each(|v, &n| {
        if *v > 0.0 {
            *v = (*v + amp as f32 * n).max(0.0);
        }
    });
    let max = m.iter().copied().fold(0.0f32, f32::max);
    if max > 0.0 {
        m.mapv_inplace(|v| v / max);
    }
    m
}

fn sample_range(r: &Range, rng: &mut impl Rng) -> f64 {
    r.sample(rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn gaussian_filter_preserves_mass_away_from_edges() {
        let mut a = ArrayD::<f32>::zeros(IxDyn(&[21, 21]));
        a[[10, 10]] = 1.0;
        let b = gaussian_filter(&a, 1.5);
        assert!((b.sum() - 1.0).abs() < 1e-5);
        assert!((b[[10, 9]] - b[[9, 10]]).abs() < 1e-7);
        assert!(b[[10, 10]] > b[[10, 11]]);
    }

    #[test]
    fn correlated_noise_is_correlated() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let n = correlated_noise(&[64, 64], 4.0, &mut rng);
        // Neighbour correlation of Gaussian-filtered white noise: exp(-1/(4 sigma^2)) ~ 0.98.
        let (mut c, mut v) = (0.0f64, 0.0f64);
        for i in 0..64 {
            for j in 0..64 {
                c += (n[[i, j]] * n[[i, (j + 1) % 64]]) as f64;
                v += (n[[i, j]] * n[[i, j]]) as f64;
            }
        }
        assert!((c / v - (-1.0f64 / 64.0).exp()).abs() < 0.02, "{}", c / v);
    }

    #[test]
    fn dislocation_phase_winds_once_around_the_core() {
        let p = edge_dislocation_phase(&[33, 33], 0, [16.3, 16.4, 0.0], 0.0);
        // Walk a square loop around the core and sum wrapped phase differences.
        let mut path = vec![];
        for j in 6..26 {
            path.push([6, j]);
        }
        for i in 6..26 {
            path.push([i, 26]);
        }
        for j in (7..=26).rev() {
            path.push([26, j]);
        }
        for i in (7..=26).rev() {
            path.push([i, 6]);
        }
        path.push([6, 6]);
        let mut total = 0.0f64;
        for w in path.windows(2) {
            let d = (p[w[1]] - p[w[0]]) as f64;
            total += (d + PI).rem_euclid(2.0 * PI) - PI;
        }
        assert!((total.abs() - 2.0 * PI).abs() < 1e-3, "{total}");
    }
}
