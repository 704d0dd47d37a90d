//! Physics as a second source of truth: the intensity of a compact, oversampled crystal is
//! constrained inside a gap by the measured data around it. A gap fill (the network's or a
//! classical one) gives the initial support; masked phasing (the gap left free) then finds an
//! object that explains the measured voxels, and `|FFT(object)|^2`, scaled to the measured
//! counts, is a candidate fill of the gap.
//!
//! The candidate is only used where it is trustworthy: its fit to the measured voxels next to
//! the gap (`near_gap` planes on either side) is compared with the fit of the starting fill
//! extrapolated the same way, and the two are blended per voxel in the log domain with a weight
//! set by that comparison (no phasing success, no change).

use crate::fft::{fftshift, Direction, FftPlan};
use crate::phasing::{Chain, Options, Phaser, Problem, Start};
use crate::{Error, Result};
use ndarray::{ArrayD, Dimension, IxDyn, Zip};
use num_complex::Complex32;
use serde::{Deserialize, Serialize};

/// Relative log intensity below which a gap voxel keeps the starting fill.
pub const STRONG_FROM: f64 = 0.2;
/// Relative log intensity above which a gap voxel takes the phased intensity (when trusted).
pub const STRONG_TO: f64 = 0.5;

/// Settings of the physics refinement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhysicsOptions {
    /// Phasing chain (PyNX notation).
    pub chain: String,
    /// Independent runs; the one with the best free log-likelihood is used.
    pub runs: usize,
    /// Seed of the runs.
    pub seed: u64,
    /// Measured planes on each side of the gap used to judge the candidate.
    pub near_gap: usize,
}

impl Default for PhysicsOptions {
    fn default() -> Self {
        PhysicsOptions {
            chain: "HIO**400,RAAR**400,ER**200".into(),
            runs: 2,
            seed: 0,
            near_gap: 3,
        }
    }
}

/// What the refinement found.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PhysicsReport {
    /// R-factor `sum |sqrt(Ic) - sqrt(I)| / sum sqrt(I)` of the phased intensity over the
    /// measured voxels next to the gap.
    pub r_near_gap: f64,
    /// Weight given to the phased intensity in the gap (0: the starting fill is kept).
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

/// Refines the gap of `intensity` (centred, Bragg peak near the centre; `mask` nonzero = gap)
/// starting from `start_fill` (a complete fill of the gap, e.g. the network's). Returns the
/// refined fill (measured voxels unchanged) and a report.
pub fn physics_fill(
    intensity: &ArrayD<f32>,
    mask: &ArrayD<f32>,
    start_fill: &ArrayD<f32>,
    opts: &PhysicsOptions,
) -> Result<(ArrayD<f32>, PhysicsReport)> {
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
    if opts.runs == 0 || opts.runs > 64 {
        return Err(Error::arg("physics fill", "runs", "must be in 1..=64"));
    }
    let m8 = mask.mapv(|v| u8::from(v != 0.0));
    let problem = Problem::from_centred(intensity, Some(&m8))?.with_support_hint(start_fill)?;
    let options = Options {
        chain: Chain::parse(&opts.chain)?,
        runs: opts.runs,
        seed: opts.seed,
        ..Options::default()
    };
    let mut phaser = Phaser::new(&problem, &options)?;
    let mut best: Option<(f64, Vec<Complex32>)> = None;
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
        if best.as_ref().is_none_or(|(s, _)| score < *s) {
            best = Some((score, run.object.iter().copied().collect()));
        }
    }
    let Some((_, mut psi)) = best else {
        return Err(Error::arg("physics fill", "runs", "no run"));
    };
    let shape = intensity.shape().to_vec();
    FftPlan::new(&shape).process_unscaled(&mut psi, Direction::Forward);
    let calc = ArrayD::from_shape_vec(IxDyn(&shape), psi.iter().map(|c| c.norm_sqr()).collect())
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
    let calc = calc.mapv(|c| (c as f64 * scale) as f32);
    // Judge the candidate next to the gap.
    let near = near_gap(mask, opts.near_gap.max(1));
    let (mut num, mut den) = (0.0f64, 0.0f64);
    Zip::from(intensity)
        .and(&calc)
        .and(&near)
        .for_each(|&i, &c, &n| {
            if n {
                let si = (i.max(0.0) as f64).sqrt();
                num += ((c.max(0.0) as f64).sqrt() - si).abs();
                den += si;
            }
        });
    let r_near = if den > 0.0 { num / den } else { f64::INFINITY };
    // Full trust below R = 0.15, none above 0.45, linear in between.
    let weight = ((0.45 - r_near) / 0.30).clamp(0.0, 1.0);
    // Per voxel, the phased intensity is trusted where the signal is strong (its relative
    // error is smallest there); weak voxels keep the starting fill. `s` is the starting fill's
    // log intensity relative to the log of the measured maximum.
    let log_max = (intensity
        .iter()
        .zip(mask.iter())
        .filter(|(_, &m)| m == 0.0)
        .fold(0.0f32, |a, (&i, _)| a.max(i)) as f64)
        .ln_1p()
        .max(1e-6);
    let out = Zip::from(intensity)
        .and(start_fill)
        .and(&calc)
        .and(mask)
        .map_collect(|&i, &f, &c, &m| {
            if m == 0.0 {
                i
            } else {
                let lf = (f.max(0.0) as f64).ln_1p();
                let s = lf / log_max;
                let w = weight * ((s - STRONG_FROM) / (STRONG_TO - STRONG_FROM)).clamp(0.0, 1.0);
                let l = (1.0 - w) * lf + w * (c.max(0.0) as f64).ln_1p();
                l.exp_m1() as f32
            }
        });
    Ok((
        out,
        PhysicsReport {
            r_near_gap: r_near,
            weight,
        },
    ))
}
