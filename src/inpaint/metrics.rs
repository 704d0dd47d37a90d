//! Inpainting quality metrics, computed on normalised log-scale patterns (`log(I+1)` min-max
//! scaled, so the Pearson correlation equals the one of `log(I+1)`): Pearson correlation,
//! MSE and MAE inside the gap, SSIM of the filled pattern against the truth, and their mean
//! and spread over a test set.

use crate::loss::{ssim, SsimConfig};
use crate::{Device, Error, Result, Tensor};
use ndarray::ArrayD;
use serde::{Deserialize, Serialize};

/// Metrics of one pattern.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Pearson correlation in the gap (log scale).
    pub pcc: f64,
    /// SSIM of the filled pattern (measured pixels + gap prediction) against the truth.
    pub ssim: f64,
    /// Mean squared error in the gap (normalised log scale).
    pub mse: f64,
    /// Mean absolute error in the gap (normalised log scale).
    pub mae: f64,
}

/// Mean and standard deviation of a metric over a set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    /// Mean.
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
}

impl Stat {
    /// Mean and spread of `v` (NaN entries are skipped; empty gives NaN).
    pub fn of(v: &[f64]) -> Stat {
        let f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        if f.is_empty() {
            return Stat {
                mean: f64::NAN,
                std: f64::NAN,
            };
        }
        let n = f.len() as f64;
        let mean = f.iter().sum::<f64>() / n;
        let var = f.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        Stat {
            mean,
            std: var.sqrt(),
        }
    }
}

/// Aggregated metrics over a set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Pearson correlation in the gap.
    pub pcc: Stat,
    /// SSIM.
    pub ssim: Stat,
    /// MSE in the gap.
    pub mse: Stat,
    /// MAE in the gap.
    pub mae: Stat,
}

impl Summary {
    /// Aggregates per-pattern scores.
    pub fn of(scores: &[Scores]) -> Summary {
        let col = |f: fn(&Scores) -> f64| Stat::of(&scores.iter().map(f).collect::<Vec<_>>());
        Summary {
            pcc: col(|s| s.pcc),
            ssim: col(|s| s.ssim),
            mse: col(|s| s.mse),
            mae: col(|s| s.mae),
        }
    }
}

/// Pearson correlation of `a` and `b` over the pixels where `mask` is nonzero (NaN when
/// either selection is constant or empty).
pub fn pcc_in_gap(a: &ArrayD<f32>, b: &ArrayD<f32>, mask: &ArrayD<f32>) -> f64 {
    let (mut n, mut sa, mut sb) = (0.0f64, 0.0f64, 0.0f64);
    for ((&x, &y), &m) in a.iter().zip(b.iter()).zip(mask.iter()) {
        if m != 0.0 {
            n += 1.0;
            sa += x as f64;
            sb += y as f64;
        }
    }
    if n < 2.0 {
        return f64::NAN;
    }
    let (ma, mb) = (sa / n, sb / n);
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for ((&x, &y), &m) in a.iter().zip(b.iter()).zip(mask.iter()) {
        if m != 0.0 {
            let (dx, dy) = (x as f64 - ma, y as f64 - mb);
            cov += dx * dy;
            va += dx * dx;
            vb += dy * dy;
        }
    }
    if va <= 0.0 || vb <= 0.0 {
        return f64::NAN;
    }
    cov / (va * vb).sqrt()
}

fn masked_err(a: &ArrayD<f32>, b: &ArrayD<f32>, mask: &ArrayD<f32>, p: i32) -> f64 {
    let (mut n, mut s) = (0.0f64, 0.0f64);
    for ((&x, &y), &m) in a.iter().zip(b.iter()).zip(mask.iter()) {
        if m != 0.0 {
            n += 1.0;
            s += ((x - y) as f64).abs().powi(p);
        }
    }
    if n == 0.0 {
        f64::NAN
    } else {
        s / n
    }
}

/// Scores a filled pattern `pred` (normalised) against `truth` with the gap `mask`.
pub fn score(pred: &ArrayD<f32>, truth: &ArrayD<f32>, mask: &ArrayD<f32>) -> Result<Scores> {
    if pred.shape() != truth.shape() || mask.shape() != truth.shape() {
        return Err(Error::shape(
            "metrics",
            format!(
                "prediction {:?}, truth {:?} and mask {:?} must match",
                pred.shape(),
                truth.shape(),
                mask.shape()
            ),
        ));
    }
    let filled: ArrayD<f32> = ndarray::Zip::from(pred)
        .and(truth)
        .and(mask)
        .map_collect(|&p, &t, &m| if m != 0.0 { p } else { t });
    let dev = Device::cpu();
    let mut shape = vec![1, 1];
    shape.extend_from_slice(truth.shape());
    let cfg = SsimConfig::default();
    let ssim_v = if truth.shape().iter().all(|&n| n >= cfg.window) {
        let x = Tensor::from_vec(filled.iter().copied().collect(), &shape, &dev)?;
        let y = Tensor::from_vec(truth.iter().copied().collect(), &shape, &dev)?;
        crate::autograd::no_grad(|| ssim(&x, &y, &cfg))?.item()? as f64
    } else {
        f64::NAN
    };
    Ok(Scores {
        pcc: pcc_in_gap(pred, truth, mask),
        ssim: ssim_v,
        mse: masked_err(pred, truth, mask, 2),
        mae: masked_err(pred, truth, mask, 1),
    })
}
