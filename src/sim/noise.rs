//! Photon statistics: scaling to a photon budget and Poisson noise.

use ndarray::ArrayD;
use rand::Rng;
use rand_distr::{Distribution, Poisson};

/// Scales `a` so that its maximum equals `max` (an all-zero array stays zero).
pub fn scale_to_max(a: &ArrayD<f32>, max: f32) -> ArrayD<f32> {
    let m = a.iter().copied().fold(0.0f32, f32::max);
    if m > 0.0 {
        let s = max / m;
        a.mapv(|v| v * s)
    } else {
        a.clone()
    }
}

/// Draws Poisson counts with means `mean` (negative or non-finite means give 0).
pub fn poisson(mean: &ArrayD<f32>, rng: &mut impl Rng) -> ArrayD<f32> {
    mean.mapv(|m| {
        if m > 0.0 && m.is_finite() {
            match Poisson::new(m as f64) {
                Ok(p) => p.sample(rng) as f32,
                Err(_) => 0.0,
            }
        } else {
            0.0
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;
    use rand::SeedableRng;

    #[test]
    fn poisson_mean_and_variance_match() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for lambda in [0.3f32, 4.0, 150.0, 1e5] {
            let m = ArrayD::from_elem(IxDyn(&[200, 200]), lambda);
            let c = poisson(&m, &mut rng);
            let n = c.len() as f64;
            let mean = c.iter().map(|&v| v as f64).sum::<f64>() / n;
            let var = c.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0);
            let l = lambda as f64;
            // Standard error of the mean is sqrt(l/n); of the variance about l*sqrt(2/n).
            assert!(
                (mean - l).abs() < 5.0 * (l / n).sqrt(),
                "mean {mean} vs {l}"
            );
            assert!(
                (var - l).abs() < 6.0 * l * (2.0 / n).sqrt() + 1e-3,
                "var {var} vs {l}"
            );
            assert!(c.iter().all(|&v| v >= 0.0 && v.fract() == 0.0));
        }
    }

    #[test]
    fn scale_sets_the_maximum() {
        let a = ArrayD::from_shape_vec(IxDyn(&[3]), vec![1.0, 4.0, 2.0]).unwrap();
        let b = scale_to_max(&a, 1e6);
        assert_eq!(b[[1]], 1e6);
        assert_eq!(b[[0]], 2.5e5);
    }
}
