//! Physics as a second source of truth: the intensity of a compact, oversampled crystal is
//! constrained inside a gap by the measured data around it. A gap fill (the network's or a
//! classical one) gives the initial support; masked phasing (the gap left free) then finds an
//! object that explains the measured voxels, and `|FFT(object)|^2`, scaled to the measured
//! counts, is a candidate fill of the gap.
//!
//! The candidate is only used where it is trustworthy. A fit to the measured voxels says little
//! (every run fits them, including runs whose gap is wrong), so trust comes from agreement:
//! the two runs with the best free log-likelihood must predict the same gap. Their agreement
//! (PCC of `log(1 + I)` over the strong part of the gap) gates the refinement as a whole, and
//! per voxel their log difference lowers the weight further; the start fill is kept where the
//! runs disagree or the signal is weak. The best run's intensity (a consistent diffraction
//! pattern, unlike a mean of two) is what enters the gap.

use super::study::pearson;
use crate::fft::{fftshift, Direction, FftPlan};
use crate::phasing::{Chain, Options, Phaser, Problem, Start};
use crate::{Error, Result};
use ndarray::{ArrayD, Dimension, IxDyn, Zip};
use num_complex::Complex32;
use serde::{Deserialize, Serialize};

/// Relative log intensity below which a gap voxel keeps the starting fill.
pub const STRONG_FROM: f64 = 0.1;
/// Relative log intensity above which a gap voxel takes the phased intensity (when trusted).
pub const STRONG_TO: f64 = 0.4;
/// Agreement of the two best runs below which the refinement changes nothing.
pub const AGREE_FROM: f64 = 0.75;
/// Agreement of the two best runs above which the refinement is fully trusted.
pub const AGREE_TO: f64 = 0.9;
/// Log-intensity difference between the two best runs at which a voxel's weight falls to 1/e.
pub const VOXEL_LOG_SPREAD: f64 = 2.0;

/// Settings of the physics refinement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhysicsOptions {
    /// Phasing chain (PyNX notation).
    pub chain: String,
    /// Independent runs (at least 2); the two with the best free log-likelihood are compared,
    /// and the best one fills the gap.
    pub runs: usize,
    /// Seed of the runs.
    pub seed: u64,
    /// Measured planes on each side of the gap used to judge the candidate.
    pub near_gap: usize,
}

impl Default for PhysicsOptions {
    fn default() -> Self {
        PhysicsOptions {
            chain: crate::phasing::DEFAULT_CHAIN.into(),
            runs: 4,
            seed: 0,
            near_gap: 3,
        }
    }
}

/// What the refinement found.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PhysicsReport {
    /// R-factor `sum |sqrt(Ic) - sqrt(I)| / sum sqrt(I)` of the best run's intensity over the
    /// measured voxels next to the gap (information only: it does not set the weight).
    pub r_near_gap: f64,
    /// PCC of `log(1 + I)` between the two best runs over the strong part of the gap.
    pub agreement: f64,
    /// Weight given to the phased intensity in the gap before the per-voxel terms (0: the
    /// starting fill is kept).
    pub weight: f64,
}

/// The measured voxels within `d` planes of a gap voxel along any axis (centred layout).
fn near_gap(mask: &ArrayD<f32>, d: usize) -> ArrayD<bool> {
    let mut near = mask.mapv(|_| false);
    let shape = mask.shape().to_vec();
    for (idx, &m) in mask.indexed_iter() {
        if m == 0.0 {
            continue;
        }
        for a in 0..shape.len() {
            for s in 1..=d as i64 {
                for sign in [-1i64, 1] {
                    let c = idx[a] as i64 + sign * s;
                    if c < 0 || c >= shape[a] as i64 {
                        continue;
                    }
                    let mut j = idx.slice().to_vec();
                    j[a] = c as usize;
                    let jd = IxDyn(&j);
                    if mask[&jd] == 0.0 {
                        near[&jd] = true;
                    }
                }
            }
        }
    }
    near
}

/// One phasing run of the refinement: its intensity, scaled to the measured counts.
#[derive(Debug, Clone)]
pub struct PhysicsCandidate {
    /// `|FFT(object)|^2` (centred), least-squares scaled to the measured voxels.
    pub intensity: ArrayD<f32>,
    /// Free log-likelihood of the run (its LLK when there are no free pixels); lower is better.
    pub score: f64,
}

/// Phases `intensity` with the gap of `mask` left free and the initial support taken from
/// `start_fill`; returns every run's scaled intensity, best score first.
pub fn physics_candidates(
    intensity: &ArrayD<f32>,
    mask: &ArrayD<f32>,
    start_fill: &ArrayD<f32>,
    opts: &PhysicsOptions,
) -> Result<Vec<PhysicsCandidate>> {
    if intensity.shape() != mask.shape() || intensity.shape() != start_fill.shape() {
        return Err(Error::shape(
            "physics fill",
            format!(
                "intensity {:?}, mask {:?} and fill {:?} differ",
                intensity.shape(),
                mask.shape(),
                start_fill.shape()
            ),
        ));
    }
    if opts.runs < 2 || opts.runs > 64 {
        return Err(Error::arg(
            "physics fill",
            "runs",
            format!("{} not in 2..=64 (two runs must agree)", opts.runs),
        ));
    }
    let m8 = mask.mapv(|v| u8::from(v != 0.0));
    let problem = Problem::from_centred(intensity, Some(&m8))?.with_support_hint(start_fill)?;
    let options = Options {
        chain: Chain::parse(&opts.chain)?,
        runs: opts.runs,
        seed: opts.seed,
        // automatic: 0.2 for 3-D volumes with the default chain (REPORT.md section 8.9)
        autocorrelation_threshold: 0.0,
        ..Options::default()
    };
    let mut phaser = Phaser::new(&problem, &options)?;
    let shape = intensity.shape().to_vec();
    let plan = FftPlan::new(&shape);
    let mut out = Vec::with_capacity(opts.runs);
    for r in 0..opts.runs {
        let run = phaser.run(
            r,
            &Start::Random,
            opts.seed.wrapping_add(r as u64),
            &mut |_, _| {},
        )?;
        let score = if run.free_llk.is_finite() {
            run.free_llk
        } else {
            run.llk
        };
        let mut psi: Vec<Complex32> = run.object.iter().copied().collect();
        plan.process_unscaled(&mut psi, Direction::Forward);
        let calc =
            ArrayD::from_shape_vec(IxDyn(&shape), psi.iter().map(|c| c.norm_sqr()).collect())
                .map_err(|e| Error::shape("physics fill", e.to_string()))?;
        let calc = fftshift(&calc);
        // Scale to the measured counts (least squares over the measured voxels).
        let (mut sab, mut sbb) = (0.0f64, 0.0f64);
        Zip::from(intensity)
            .and(&calc)
            .and(mask)
            .for_each(|&i, &c, &m| {
                if m == 0.0 {
                    sab += i as f64 * c as f64;
                    sbb += c as f64 * c as f64;
                }
            });
        let scale = if sbb > 0.0 { sab / sbb } else { 0.0 };
        out.push(PhysicsCandidate {
            intensity: calc.mapv(|c| (c as f64 * scale) as f32),
            score,
        });
    }
    out.sort_by(|a, b| a.score.total_cmp(&b.score));
    Ok(out)
}

/// Refines the gap of `intensity` (centred, Bragg peak near the centre; `mask` nonzero = gap)
/// starting from `start_fill` (a complete fill of the gap, e.g. the network's). Returns the
/// refined fill (measured voxels unchanged) and a report.
pub fn physics_fill(
    intensity: &ArrayD<f32>,
    mask: &ArrayD<f32>,
    start_fill: &ArrayD<f32>,
    opts: &PhysicsOptions,
) -> Result<(ArrayD<f32>, PhysicsReport)> {
    let candidates = physics_candidates(intensity, mask, start_fill, opts)?;
    let (best, second) = (&candidates[0].intensity, &candidates[1].intensity);
    let (out, agreement, weight) = blend_two_runs(intensity, mask, start_fill, best, second)?;
    Ok((
        out,
        PhysicsReport {
            r_near_gap: r_factor_near_gap(intensity, best, mask, opts.near_gap.max(1)),
            agreement,
            weight,
        },
    ))
}

/// Blends the best run's intensity (`best`, scaled to the counts) into the gap of
/// `start_fill`: gated by its agreement with the second best run (`second`) over the strong
/// part of the gap, per voxel by the signal strength and by the two runs' log difference.
/// Returns the fill (measured voxels of `intensity` unchanged), the agreement and the gate's
/// weight.
pub fn blend_two_runs(
    intensity: &ArrayD<f32>,
    mask: &ArrayD<f32>,
    start_fill: &ArrayD<f32>,
    best: &ArrayD<f32>,
    second: &ArrayD<f32>,
) -> Result<(ArrayD<f32>, f64, f64)> {
    let shape = intensity.shape();
    if [mask, start_fill, best, second]
        .iter()
        .any(|a| a.shape() != shape)
    {
        return Err(Error::shape(
            "physics blend",
            format!(
                "intensity {:?}, mask {:?}, fill {:?} and runs {:?} / {:?} differ",
                shape,
                mask.shape(),
                start_fill.shape(),
                best.shape(),
                second.shape()
            ),
        ));
    }
    // `s` is the starting fill's log intensity relative to the log of the measured maximum:
    // the phased intensity is trusted where the signal is strong (its relative error is
    // smallest there); weak voxels keep the starting fill.
    let log_max = (intensity
        .iter()
        .zip(mask.iter())
        .filter(|(_, &m)| m == 0.0)
        .fold(0.0f32, |a, (&i, _)| a.max(i)) as f64)
        .ln_1p()
        .max(1e-6);
    let relative_log = |f: f32| (f.max(0.0) as f64).ln_1p() / log_max;
    let strong =
        |f: f32| ((relative_log(f) - STRONG_FROM) / (STRONG_TO - STRONG_FROM)).clamp(0.0, 1.0);
    let ln = |v: f32| (v.max(0.0) as f64).ln_1p();
    // Agreement of the two best runs over the strong part of the gap.
    let (mut a, mut b) = (vec![], vec![]);
    Zip::from(mask)
        .and(start_fill)
        .and(best)
        .and(second)
        .for_each(|&m, &f, &c0, &c1| {
            if m != 0.0 && strong(f) > 0.5 {
                a.push(ln(c0));
                b.push(ln(c1));
            }
        });
    let agreement = if a.len() >= 8 {
        pearson(&a, &b)
    } else {
        f64::NAN
    };
    let agreement = if agreement.is_finite() {
        agreement
    } else {
        0.0
    };
    let weight = ((agreement - AGREE_FROM) / (AGREE_TO - AGREE_FROM)).clamp(0.0, 1.0);
    // The part of the gap taken unmixed from the best run: all the strong part at full trust,
    // shrinking towards the brightest voxels as the trust falls, none at zero trust.
    let unmixed_from = STRONG_FROM + (1.0 - weight) * (1.0 - STRONG_FROM);
    let strongest = |f: f32| {
        if weight <= 0.0 {
            return 0.0;
        }
        ((relative_log(f) - unmixed_from) / (STRONG_TO - STRONG_FROM)).clamp(0.0, 1.0)
    };
    let out = Zip::from(intensity)
        .and(start_fill)
        .and(best)
        .and(second)
        .and(mask)
        .map_collect(|&i, &f, &c0, &c1, &m| {
            if m == 0.0 {
                return i;
            }
            let (l0, l1, lf) = (ln(c0), ln(c1), ln(f));
            let spread = (l0 - l1) / VOXEL_LOG_SPREAD;
            // A partial gate mixes the fill into the strong voxels, except the strongest ones,
            // which keep the best run's intensity unmixed (a mixed peak phases badly).
            let w = (weight * strong(f)).max(strongest(f)) * (-spread * spread).exp();
            ((1.0 - w) * lf + w * l0).exp_m1() as f32
        });
    Ok((out, agreement, weight))
}

/// R-factor of `calc` against `intensity` over the measured voxels within `d` planes of the gap.
fn r_factor_near_gap(
    intensity: &ArrayD<f32>,
    calc: &ArrayD<f32>,
    mask: &ArrayD<f32>,
    d: usize,
) -> f64 {
    let near = near_gap(mask, d);
    let (mut num, mut den) = (0.0f64, 0.0f64);
    Zip::from(intensity)
        .and(calc)
        .and(&near)
        .for_each(|&i, &c, &n| {
            if n {
                let si = (i.max(0.0) as f64).sqrt();
                num += ((c.max(0.0) as f64).sqrt() - si).abs();
                den += si;
            }
        });
    if den > 0.0 {
        num / den
    } else {
        f64::INFINITY
    }
}
