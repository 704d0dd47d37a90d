//! Combining the kept runs of a phasing job: their average, their dominant mode and how far
//! they spread.
//!
//! [`crate::phasing::phase_on`] returns the best runs already registered onto the best one
//! (translation, sub-pixel shift, phase ramp, global phase and twin removed), so combining is
//! done on aligned objects:
//!
//! * **average**: the mean of the runs that agree with the best one (complex error to it below
//!   [`AGREEMENT`]), each scaled to the best run's norm, with the support where at least half
//!   of them agree; a run that stagnated elsewhere (wrong support, twin mixture) is left out
//!   rather than blurring the average;
//! * **modes**: the runs as columns of a matrix `X` (voxels x runs); the dominant right
//!   singular vector of `X` (power iteration on the small Gram matrix `X^H X`) gives the first
//!   mode `X v`, and `mode_fraction = lambda_1 / trace(X^H X)` says how much of the runs' power it
//!   holds: near 1 when the runs agree, lower when they differ (e.g. a run stuck in a mixture of
//!   the object and its twin);
//! * **spread**: the complex error (after registration) of every run against the average, and
//!   the median over pairs of runs, which is what a user comparing two seeds would see.

use super::post;
use super::Run;
use crate::{Error, Result};
use num_complex::{Complex32, Complex64};

/// Largest complex error (after registration) to the best run for a run to join the average.
pub const AGREEMENT: f64 = 0.15;

/// The combination of several aligned runs.
#[derive(Debug, Clone)]
pub struct Combined {
    /// Mean of the runs that agree with the first (scaled to the first run's norm, global
    /// phase of the first run).
    pub average: Vec<Complex32>,
    /// Voxels inside the support of at least half of the averaged runs.
    pub support: Vec<u8>,
    /// Positions (in the given slice) of the runs in the average; the first is always in.
    pub members: Vec<usize>,
    /// Complex error of each run against the first (after registration).
    pub error_to_best: Vec<f64>,
    /// First mode of the runs, scaled to the first run's norm, phase of the first run.
    pub mode: Vec<Complex32>,
    /// Share of the runs' power in the first mode (1 when all runs are identical).
    pub mode_fraction: f64,
    /// Complex error of each run against the average (after registration).
    pub error_to_average: Vec<f64>,
    /// Median complex error over all pairs of runs (0 for a single run).
    pub pairwise_median: f64,
}

/// Norm of a complex vector (f64 accumulation).
fn norm(v: &[Complex32]) -> f64 {
    v.iter().map(|z| z.norm_sqr() as f64).sum::<f64>().sqrt()
}

/// Inner product `<a, b> = sum conj(a) b` in f64.
fn dot(a: &[Complex32], b: &[Complex32]) -> Complex64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            Complex64::new(x.re as f64, -x.im as f64) * Complex64::new(y.re as f64, y.im as f64)
        })
        .sum()
}

/// Rotates and scales `v` so that it has norm `target_norm` and a real, positive overlap with
/// `reference`.
fn match_phase_and_norm(v: &mut [Complex32], reference: &[Complex32], target_norm: f64) {
    let n = norm(v);
    if n == 0.0 {
        return;
    }
    let overlap = dot(v, reference);
    let rot = if overlap.norm() > 0.0 {
        overlap / overlap.norm()
    } else {
        Complex64::new(1.0, 0.0)
    };
    let f = rot * (target_norm / n);
    let f = Complex32::new(f.re as f32, f.im as f32);
    v.iter_mut().for_each(|z| *z *= f);
}

/// Dominant eigenpair of a Hermitian positive semi-definite `k x k` matrix (row-major) by power
/// iteration; returns `(lambda, v)` with `|v| = 1`.
fn dominant_eigenpair(g: &[Complex64], k: usize) -> (f64, Vec<Complex64>) {
    let mut v = vec![Complex64::new(1.0 / (k as f64).sqrt(), 0.0); k];
    let mut lambda = 0.0;
    for _ in 0..500 {
        let w: Vec<Complex64> = (0..k)
            .map(|i| (0..k).map(|j| g[i * k + j] * v[j]).sum())
            .collect();
        let n = w.iter().map(|z| z.norm_sqr()).sum::<f64>().sqrt();
        if n == 0.0 {
            break;
        }
        let next: Vec<Complex64> = w.iter().map(|z| z / n).collect();
        let change: f64 = next
            .iter()
            .zip(&v)
            .map(|(a, b)| (a - b).norm_sqr())
            .sum::<f64>();
        v = next;
        lambda = n;
        if change < 1e-24 {
            break;
        }
    }
    (lambda, v)
}

/// Combines runs that [`crate::phasing::phase_on`] has aligned onto the first (best) one.
/// Errors when there is no run or the shapes differ.
pub fn combine(runs: &[Run]) -> Result<Combined> {
    let first = runs
        .first()
        .ok_or_else(|| Error::arg("combine", "runs", "at least one run is needed"))?;
    let shape = first.object.shape().to_vec();
    if let Some(r) = runs.iter().find(|r| r.object.shape() != shape.as_slice()) {
        return Err(Error::arg(
            "combine",
            "runs",
            format!(
                "run {} has shape {:?}, the first run {:?}",
                r.index,
                r.object.shape(),
                shape
            ),
        ));
    }
    let objects: Vec<Vec<Complex32>> = runs
        .iter()
        .map(|r| r.object.iter().copied().collect())
        .collect();
    let reference = &objects[0];
    let ref_norm = norm(reference);
    if ref_norm == 0.0 {
        return Err(Error::arg("combine", "runs", "the best run is all zero"));
    }
    // Runs scaled to the reference's norm, phase matched (alignment already removed the
    // global phase; this makes the average insensitive to any residual offset).
    let scaled: Vec<Vec<Complex32>> = objects
        .iter()
        .map(|o| {
            let mut o = o.clone();
            match_phase_and_norm(&mut o, reference, ref_norm);
            o
        })
        .collect();
    let k = scaled.len();
    let n = reference.len();
    let error_to_best: Vec<f64> = objects
        .iter()
        .enumerate()
        .map(|(i, o)| {
            if i == 0 {
                0.0
            } else {
                post::align(o, reference, &shape).metrics.complex_error
            }
        })
        .collect();
    let members: Vec<usize> = (0..k)
        .filter(|&i| i == 0 || error_to_best[i] < AGREEMENT)
        .collect();
    let mut average = vec![Complex32::default(); n];
    for &i in &members {
        average
            .iter_mut()
            .zip(&scaled[i])
            .for_each(|(a, b)| *a += b);
    }
    average.iter_mut().for_each(|a| *a /= members.len() as f32);
    let mut votes = vec![0usize; n];
    for &i in &members {
        votes
            .iter_mut()
            .zip(runs[i].support.iter())
            .for_each(|(v, &s)| *v += (s != 0) as usize);
    }
    let support: Vec<u8> = votes
        .iter()
        .map(|&v| (2 * v >= members.len()) as u8)
        .collect();

    // First mode from the Gram matrix of the (unscaled-phase) runs.
    let mut gram = vec![Complex64::default(); k * k];
    for i in 0..k {
        for j in i..k {
            let d = dot(&scaled[i], &scaled[j]);
            gram[i * k + j] = d;
            gram[j * k + i] = d.conj();
        }
    }
    let trace: f64 = (0..k).map(|i| gram[i * k + i].re).sum();
    let (lambda, v) = dominant_eigenpair(&gram, k);
    let mut mode = vec![Complex32::default(); n];
    for (o, c) in scaled.iter().zip(&v) {
        let c = Complex32::new(c.re as f32, c.im as f32);
        mode.iter_mut().zip(o).for_each(|(m, x)| *m += x * c);
    }
    match_phase_and_norm(&mut mode, reference, ref_norm);
    let mode_fraction = if trace > 0.0 { lambda / trace } else { 0.0 };

    let error_to_average = objects
        .iter()
        .map(|o| post::align(o, &average, &shape).metrics.complex_error)
        .collect();
    let mut pairs = error_to_best[1..].to_vec();
    for i in 1..k {
        for j in i + 1..k {
            pairs.push(
                post::align(&objects[j], &objects[i], &shape)
                    .metrics
                    .complex_error,
            );
        }
    }
    pairs.sort_by(f64::total_cmp);
    let pairwise_median = if pairs.is_empty() {
        0.0
    } else if pairs.len() % 2 == 1 {
        pairs[pairs.len() / 2]
    } else {
        0.5 * (pairs[pairs.len() / 2 - 1] + pairs[pairs.len() / 2])
    };
    Ok(Combined {
        average,
        support,
        members,
        error_to_best,
        mode,
        mode_fraction,
        error_to_average,
        pairwise_median,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, IxDyn};
    use rand::{Rng, SeedableRng};

    fn blob(shape: &[usize], phase_scale: f64) -> Vec<Complex32> {
        let (h, w) = (shape[0], shape[1]);
        let mut v = vec![Complex32::default(); h * w];
        for y in 0..h {
            for x in 0..w {
                let (dy, dx) = (y as f64 - h as f64 / 2.0, x as f64 - w as f64 / 2.0);
                if dy * dy + dx * dx < 30.0 {
                    let ph = phase_scale * (0.3 * dx + 0.02 * dy * dy);
                    v[y * w + x] = Complex32::new(ph.cos() as f32, ph.sin() as f32);
                }
            }
        }
        v
    }

    fn run(index: usize, obj: Vec<Complex32>, shape: &[usize]) -> Run {
        let support: Vec<u8> = obj.iter().map(|z| (z.norm() > 0.1) as u8).collect();
        Run {
            index,
            object: ArrayD::from_shape_vec(IxDyn(shape), obj).unwrap(),
            support: ArrayD::from_shape_vec(IxDyn(shape), support).unwrap(),
            llk: 1.0,
            free_llk: 1.0,
            support_size: 0,
            psf: None,
        }
    }

    #[test]
    fn identical_runs_are_one_mode_with_no_spread() {
        let shape = [20, 20];
        let o = blob(&shape, 1.0);
        // Same object with another global phase and scale: still one mode.
        let rot = Complex32::new(0.3f32.cos(), 0.3f32.sin()) * 1.7;
        let o2: Vec<Complex32> = o.iter().map(|z| z * rot).collect();
        let c = combine(&[run(0, o.clone(), &shape), run(1, o2, &shape)]).unwrap();
        assert!((c.mode_fraction - 1.0).abs() < 1e-9, "{}", c.mode_fraction);
        assert!(c.pairwise_median < 1e-4, "{}", c.pairwise_median);
        let err: f64 = c
            .average
            .iter()
            .zip(&o)
            .map(|(a, b)| (a - b).norm_sqr() as f64)
            .sum::<f64>()
            .sqrt()
            / norm(&o);
        assert!(err < 1e-5, "average differs from the run: {err}");
        assert_eq!(
            c.support.iter().filter(|&&s| s == 1).count(),
            o.iter().filter(|z| z.norm() > 0.1).count()
        );
    }

    #[test]
    fn averaging_noisy_runs_beats_each_run_and_an_outlier_lowers_the_mode_fraction() {
        let shape = [24, 24];
        let truth = blob(&shape, 1.0);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let noisy: Vec<Vec<Complex32>> = (0..6)
            .map(|_| {
                truth
                    .iter()
                    .map(|z| {
                        z + Complex32::new(
                            rng.random::<f32>() * 0.1 - 0.05,
                            rng.random::<f32>() * 0.1 - 0.05,
                        )
                    })
                    .collect()
            })
            .collect();
        let runs: Vec<Run> = noisy
            .iter()
            .enumerate()
            .map(|(i, o)| run(i, o.clone(), &shape))
            .collect();
        let c = combine(&runs).unwrap();
        let err = |a: &[Complex32]| post::align(a, &truth, &shape).metrics.complex_error;
        let avg_err = err(&c.average);
        let run_err = err(&noisy[0]);
        assert!(
            avg_err < 0.6 * run_err,
            "average {avg_err} vs single run {run_err}"
        );
        assert!(err(&c.mode) < 0.6 * run_err);
        // Six runs with independent noise (~1% of the power each): the mode holds ~99%.
        assert!(c.mode_fraction > 0.95, "{}", c.mode_fraction);
        assert_eq!(c.members.len(), 6, "{:?}", c.error_to_best);
        assert_eq!(c.error_to_average.len(), 6);

        // A run of another object lowers the first mode's share and stays out of the average.
        let mut with_outlier = runs.clone();
        // A run stuck elsewhere: the right modulus with scrambled phases.
        let scrambled: Vec<Complex32> = truth
            .iter()
            .map(|z| z * Complex32::from_polar(1.0, rng.random::<f32>() * std::f32::consts::TAU))
            .collect();
        with_outlier.push(run(6, scrambled, &shape));
        let c2 = combine(&with_outlier).unwrap();
        assert!(
            c2.mode_fraction < c.mode_fraction - 0.02,
            "{} vs {}",
            c2.mode_fraction,
            c.mode_fraction
        );
        assert_eq!(c2.error_to_average.len(), 7);
        assert_eq!(
            c2.members,
            (0..6).collect::<Vec<_>>(),
            "{:?}",
            c2.error_to_best
        );
        assert!(c2.error_to_best[6] > AGREEMENT);
        assert!((err(&c2.average) - avg_err).abs() < 1e-9);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(combine(&[]).is_err());
        let a = run(0, blob(&[8, 8], 1.0), &[8, 8]);
        let b = run(1, blob(&[10, 10], 1.0), &[10, 10]);
        assert!(combine(&[a, b]).is_err());
        let z = run(0, vec![Complex32::default(); 64], &[8, 8]);
        assert!(combine(&[z]).is_err());
    }
}
