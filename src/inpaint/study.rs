//! Scoring gap fills of raw counts the way the field reports them: Pearson correlation of
//! `log(1 + I)` inside the gap against the measured (Poisson) values, the relative L2 error of
//! the intensity in the gap, the ratio of filled to true total gap intensity, and the noise
//! ceiling (the correlation of the noiseless intensity with the counts, which no fill beats
//! on average).

use super::metrics::Stat;
use crate::{Error, Result};
use ndarray::{ArrayD, Zip};
use serde::{Deserialize, Serialize};

/// Scores of one filled volume.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GapScores {
    /// Pearson correlation of `log(1 + I)` in the gap.
    pub pcc_log: f64,
    /// `||fill - truth|| / ||truth||` of the intensity in the gap.
    pub rel_l2: f64,
    /// Total filled intensity in the gap over the true total.
    pub sum_ratio: f64,
}

/// Pearson correlation of two equally long samples (NaN when either is constant).
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    if n < 2.0 {
        return f64::NAN;
    }
    let ma = a.iter().sum::<f64>() / n;
    let mb = b.iter().sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa <= 0.0 || sbb <= 0.0 {
        return f64::NAN;
    }
    sab / (saa * sbb).sqrt()
}

fn gap_values(a: &ArrayD<f32>, mask: &ArrayD<f32>) -> Vec<f64> {
    let mut v = vec![];
    Zip::from(a).and(mask).for_each(|&x, &m| {
        if m != 0.0 {
            v.push(x as f64)
        }
    });
    v
}

/// Scores `filled` against `truth` in the gap of `mask`.
pub fn score_gap(
    filled: &ArrayD<f32>,
    truth: &ArrayD<f32>,
    mask: &ArrayD<f32>,
) -> Result<GapScores> {
    if filled.shape() != truth.shape() || filled.shape() != mask.shape() {
        return Err(Error::shape(
            "score",
            format!(
                "filled {:?}, truth {:?} and mask {:?} differ",
                filled.shape(),
                truth.shape(),
                mask.shape()
            ),
        ));
    }
    let f = gap_values(filled, mask);
    let t = gap_values(truth, mask);
    let lf: Vec<f64> = f.iter().map(|v| v.max(0.0).ln_1p()).collect();
    let lt: Vec<f64> = t.iter().map(|v| v.max(0.0).ln_1p()).collect();
    let d2: f64 = f.iter().zip(&t).map(|(a, b)| (a - b) * (a - b)).sum();
    let t2: f64 = t.iter().map(|b| b * b).sum();
    let (sf, st): (f64, f64) = (f.iter().sum(), t.iter().sum());
    Ok(GapScores {
        pcc_log: pearson(&lf, &lt),
        rel_l2: if t2 > 0.0 { (d2 / t2).sqrt() } else { f64::NAN },
        sum_ratio: if st > 0.0 { sf / st } else { f64::NAN },
    })
}

/// The noise ceiling: correlation of `log(1 + noiseless)` with `log(1 + counts)` in the gap.
pub fn noise_ceiling(
    noiseless: &ArrayD<f32>,
    truth: &ArrayD<f32>,
    mask: &ArrayD<f32>,
) -> Result<f64> {
    Ok(score_gap(noiseless, truth, mask)?.pcc_log)
}

/// Mean and spread of scores of one method over a set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GapSummary {
    /// PCC of `log(1 + I)` in the gap.
    pub pcc_log: Stat,
    /// Relative L2 error of the intensity in the gap.
    pub rel_l2: Stat,
    /// Filled over true total gap intensity.
    pub sum_ratio: Stat,
    /// Mean seconds per volume.
    pub seconds: f64,
    /// PCC of `log(1 + I)` in the gap of each volume, in order.
    pub pcc_log_per_volume: Vec<f64>,
}

impl GapSummary {
    /// Summarises per-volume scores and the time they took.
    pub fn of(scores: &[GapScores], seconds: f64) -> GapSummary {
        let pick = |f: fn(&GapScores) -> f64| Stat::of(&scores.iter().map(f).collect::<Vec<_>>());
        GapSummary {
            pcc_log: pick(|s| s.pcc_log),
            rel_l2: pick(|s| s.rel_l2),
            sum_ratio: pick(|s| s.sum_ratio),
            seconds: seconds / scores.len().max(1) as f64,
            pcc_log_per_volume: scores.iter().map(|s| s.pcc_log).collect(),
        }
    }
}
