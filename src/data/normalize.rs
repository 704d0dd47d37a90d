//! The network input scaling: `x = (log(I + 1) - lo) / (hi - lo)` with `lo`, `hi` the min and max
//! of `log(I + 1)` over the non-gap pixels, and its exact inverse.

use ndarray::{ArrayD, Zip};

/// Fitted log + min-max scaling of one pattern.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogMinMax {
    /// Minimum of log(I+1) outside the gap.
    pub lo: f32,
    /// Maximum of log(I+1) outside the gap.
    pub hi: f32,
}

impl LogMinMax {
    /// Fits on the pixels where `mask` is 0 (all pixels without a mask). Negative or
    /// non-finite intensities are ignored. An empty or constant selection gives `hi = lo + 1`.
    pub fn fit(intensity: &ArrayD<f32>, mask: Option<&ArrayD<u8>>) -> Self {
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        let mut visit = |v: f32| {
            if v.is_finite() && v >= 0.0 {
                let l = v.ln_1p();
                lo = lo.min(l);
                hi = hi.max(l);
            }
        };
        match mask {
            Some(m) if m.shape() == intensity.shape() => {
                Zip::from(intensity).and(m).for_each(|&v, &g| {
                    if g == 0 {
                        visit(v)
                    }
                })
            }
            _ => intensity.iter().for_each(|&v| visit(v)),
        }
        if !lo.is_finite() {
            return LogMinMax { lo: 0.0, hi: 1.0 };
        }
        if hi <= lo {
            hi = lo + 1.0;
        }
        LogMinMax { lo, hi }
    }

    /// Forward: intensity -> [0, 1] (outside the fitted range the values extrapolate).
    pub fn forward(&self, intensity: &ArrayD<f32>) -> ArrayD<f32> {
        let s = 1.0 / (self.hi - self.lo);
        intensity.mapv(|v| (v.max(0.0).ln_1p() - self.lo) * s)
    }

    /// Inverse: [0, 1] -> intensity.
    pub fn inverse(&self, x: &ArrayD<f32>) -> ArrayD<f32> {
        let d = self.hi - self.lo;
        x.mapv(|v| (v * d + self.lo).exp_m1())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    #[test]
    fn maps_non_gap_range_to_unit_interval_and_inverts() {
        let i =
            ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![0.0, 3.0, 1e6, 7.0, 5e7, 120.0]).unwrap();
        let mask = ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![0u8, 0, 0, 0, 1, 0]).unwrap();
        let n = LogMinMax::fit(&i, Some(&mask));
        let x = n.forward(&i);
        assert_eq!(x[[0, 0]], 0.0);
        assert!((x[[0, 2]] - 1.0).abs() < 1e-6);
        assert!(x[[1, 1]] > 1.0); // the gap pixel was not used for the fit
        let back = n.inverse(&x);
        for (a, b) in i.iter().zip(back.iter()) {
            assert!((a - b).abs() <= 1e-4 * a.max(1.0), "{a} vs {b}");
        }
    }
}
