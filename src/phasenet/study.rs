//! The phasing study: on held-out simulated crystals of a chosen strain range, how often do
//! random starts, the network alone and network starts recover the object (complex error after
//! registration below a threshold), how close do they get, and at what cost.

use super::start::PhaseNet;
use crate::phasing::{self, post, Options, Problem, Start};
use crate::sim::diffraction::centred_ifft;
use crate::sim::{self, Range, Realism, SimConfig};
use crate::{Device, Error, Result};
use ndarray::{ArrayD, Zip};
use num_complex::Complex32;
use serde::Serialize;
use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::time::Instant;

/// A realism model for test crystals with strong strain (independent of the training recipe):
/// a correlated phase field of 1-2.5 pi, always a strain gradient of 1.5-4 pi, and an edge
/// dislocation in half of them. Crystals are then selected by their phase span.
pub fn high_strain_test_realism() -> Realism {
    Realism {
        phase_range: Range {
            min: PI,
            max: 2.5 * PI,
        },
        p_gradient: 1.0,
        gradient_phase: Range {
            min: 1.5 * PI,
            max: 4.0 * PI,
        },
        p_dislocation: 0.5,
        ..Realism::default()
    }
}

/// Settings of a study.
#[derive(Debug, Clone)]
pub struct StudyConfig {
    /// The simulated crystals (dimension, size, photons, oversampling, realism); `count` is
    /// ignored.
    pub sim: SimConfig,
    /// Crystals to test.
    pub count: usize,
    /// Accepted peak-to-peak phase over the crystal, radians.
    pub span: Range,
    /// Phasing options (chain, runs, ...); the same for every start.
    pub options: Options,
    /// Complex error below which a reconstruction counts as recovered.
    pub success: f64,
    /// Score the random starts (off: only the network and oracle methods).
    pub random: bool,
    /// Also start from the *true* phase on the central grid of this side (method
    /// `oracle+refine`): the best any network of that grid could give, an upper bound.
    pub oracle_grid: Option<usize>,
}

/// The outcome of one method on one crystal.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Complex error after registration (translation, ramp, offset, twin).
    pub complex_error: f64,
    /// Phase RMS error inside the true support (rad).
    pub phase_rms_error: f64,
    /// Jaccard index of the supports.
    pub support_jaccard: f64,
    /// Wall time (s).
    pub seconds: f64,
}

/// One crystal of the study.
#[derive(Debug, Clone, Serialize)]
pub struct CrystalResult {
    /// Sample index in the simulated stream.
    pub index: u64,
    /// Its phase span (radians).
    pub phase_span: f64,
    /// Outcome per method (`random`, `net-alone`, `net+refine`).
    pub methods: BTreeMap<String, Outcome>,
}

/// Success rate and median error of a method over the crystals.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Crystals recovered (complex error below the threshold).
    pub recovered: usize,
    /// Crystals tested.
    pub tested: usize,
    /// Median complex error.
    pub median_error: f64,
    /// Mean wall time (s).
    pub mean_seconds: f64,
}

/// Summaries per method.
pub fn summarise(results: &[CrystalResult], success: f64) -> BTreeMap<String, Summary> {
    let mut by: BTreeMap<String, Vec<&Outcome>> = BTreeMap::new();
    for r in results {
        for (k, o) in &r.methods {
            by.entry(k.clone()).or_default().push(o);
        }
    }
    by.into_iter()
        .map(|(k, v)| {
            let mut errs: Vec<f64> = v.iter().map(|o| o.complex_error).collect();
            errs.sort_by(f64::total_cmp);
            let median = if errs.is_empty() {
                f64::NAN
            } else if errs.len() % 2 == 1 {
                errs[errs.len() / 2]
            } else {
                0.5 * (errs[errs.len() / 2 - 1] + errs[errs.len() / 2])
            };
            let summary = Summary {
                recovered: v.iter().filter(|o| o.complex_error < success).count(),
                tested: v.len(),
                median_error: median,
                mean_seconds: v.iter().map(|o| o.seconds).sum::<f64>() / v.len().max(1) as f64,
            };
            (k, summary)
        })
        .collect()
}

fn outcome(object: &ArrayD<Complex32>, truth: &ArrayD<Complex32>, seconds: f64) -> Outcome {
    let a: Vec<Complex32> = object.iter().copied().collect();
    let t: Vec<Complex32> = truth.iter().copied().collect();
    let m = post::align(&a, &t, truth.shape()).metrics;
    Outcome {
        complex_error: m.complex_error,
        phase_rms_error: m.phase_rms_error,
        support_jaccard: m.support_jaccard,
        seconds,
    }
}

/// Draws the test crystals: sample indices whose phase span lies in `cfg.span` (scanning at most
/// 50 candidates per crystal wanted).
pub fn test_crystals(cfg: &StudyConfig) -> Result<Vec<(u64, sim::Sample)>> {
    let mut out = vec![];
    let limit = (cfg.count as u64).saturating_mul(50).max(50);
    for index in 0..limit {
        if out.len() == cfg.count {
            break;
        }
        let s = sim::simulate_sample(&cfg.sim, index)?;
        let span = s.params.phase_span as f64;
        if span >= cfg.span.min && span <= cfg.span.max {
            out.push((index, s));
        }
    }
    if out.len() < cfg.count {
        return Err(Error::arg(
            "phasing study",
            "span",
            format!(
                "found only {} of {} crystals with a phase span in {:.2}..{:.2} pi",
                out.len(),
                cfg.count,
                cfg.span.min / PI,
                cfg.span.max / PI
            ),
        ));
    }
    Ok(out)
}

/// Runs the study: for every test crystal, the random start, and with `net` the network alone
/// (the object of the predicted part of the wave) and the network start, all with the same
/// options. `progress(crystal, method)` is called before each method.
pub fn run_study(
    cfg: &StudyConfig,
    net: Option<&PhaseNet>,
    device: &Device,
    progress: &mut dyn FnMut(usize, &str),
) -> Result<Vec<CrystalResult>> {
    let crystals = test_crystals(cfg)?;
    let mut results = vec![];
    for (c, (index, s)) in crystals.iter().enumerate() {
        let problem = Problem::from_centred(&s.truth, None)?;
        let mut methods = BTreeMap::new();
        if cfg.random {
            progress(c, "random");
            let t0 = Instant::now();
            let runs = phasing::phase_on(
                &problem,
                &cfg.options,
                &Start::Random,
                device,
                &mut |_, _, _| {},
            )?;
            methods.insert(
                "random".to_string(),
                outcome(&runs[0].object, &s.object, t0.elapsed().as_secs_f64()),
            );
        }
        if let Some(net) = net {
            progress(c, "net");
            let t0 = Instant::now();
            let p = net.predict(&s.truth, None, device)?;
            let alone_secs = t0.elapsed().as_secs_f64();
            let wave =
                Zip::from(&s.truth)
                    .and(&p.phase)
                    .and(&p.known)
                    .map_collect(|&i, &ph, &k| {
                        if k != 0 {
                            Complex32::from_polar(i.max(0.0).sqrt(), ph)
                        } else {
                            Complex32::default()
                        }
                    });
            methods.insert(
                "net-alone".to_string(),
                outcome(&centred_ifft(&wave), &s.object, alone_secs),
            );
            let start = Start::Predicted {
                phase: p.phase,
                known: p.known,
            };
            let runs =
                phasing::phase_on(&problem, &cfg.options, &start, device, &mut |_, _, _| {})?;
            methods.insert(
                "net+refine".to_string(),
                outcome(&runs[0].object, &s.object, t0.elapsed().as_secs_f64()),
            );
        }
        if let Some(g) = cfg.oracle_grid {
            progress(c, "oracle");
            let t0 = Instant::now();
            let label = super::data::reciprocal_phase_label(&s.object);
            let known = ArrayD::from_shape_fn(label.raw_dim(), |idx| {
                let inside = (0..label.ndim()).all(|d| {
                    let n = label.shape()[d];
                    let (a, len) = if n >= g { (n / 2 - g / 2, g) } else { (0, n) };
                    idx[d] >= a && idx[d] < a + len
                });
                u8::from(inside)
            });
            let start = Start::Predicted {
                phase: label,
                known,
            };
            let runs =
                phasing::phase_on(&problem, &cfg.options, &start, device, &mut |_, _, _| {})?;
            methods.insert(
                "oracle+refine".to_string(),
                outcome(&runs[0].object, &s.object, t0.elapsed().as_secs_f64()),
            );
        }
        results.push(CrystalResult {
            index: *index,
            phase_span: s.params.phase_span as f64,
            methods,
        });
    }
    Ok(results)
}
