//! Classical gap fillers used as baselines: zero, nearest and linear (per line across the
//! gap) and a Laplace (harmonic) fill. All work on N-d arrays; the mask is nonzero in the gap,
//! and measured values are returned unchanged.

use crate::{Error, Result};
use ndarray::{ArrayD, Axis, Zip};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A classical filling method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Baseline {
    /// Gap left at zero.
    Zero,
    /// Nearest measured value along the line that crosses the gap.
    Nearest,
    /// Linear interpolation between the two measured ends of the line crossing the gap.
    Linear,
    /// Harmonic fill: Laplace's equation on the gap pixels, the measured pixels as boundary.
    Laplace,
    /// Biharmonic fill: the gap values that minimise the squared Laplacian over the array
    /// (smooth continuation of values *and* slopes across the gap).
    Biharmonic,
}

impl Baseline {
    /// Every baseline, in table order.
    pub const ALL: [Baseline; 5] = [
        Baseline::Zero,
        Baseline::Nearest,
        Baseline::Linear,
        Baseline::Laplace,
        Baseline::Biharmonic,
    ];

    /// Name used in tables and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Baseline::Zero => "zero",
            Baseline::Nearest => "nearest",
            Baseline::Linear => "linear",
            Baseline::Laplace => "laplace",
            Baseline::Biharmonic => "biharmonic",
        }
    }

    /// Fills the gap of `data` (mask nonzero = gap).
    pub fn fill(self, data: &ArrayD<f32>, mask: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        check(data, mask)?;
        Ok(match self {
            Baseline::Zero => Zip::from(data)
                .and(mask)
                .map_collect(|&v, &m| if m != 0.0 { 0.0 } else { v }),
            Baseline::Nearest => line_fill(data, mask, false),
            Baseline::Linear => line_fill(data, mask, true),
            Baseline::Laplace => laplace_fill(data, mask, 1e-6, 20_000),
            Baseline::Biharmonic => biharmonic_fill(data, mask, 1e-6, 2_000),
        })
    }
}

impl fmt::Display for Baseline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Baseline {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Baseline::ALL
            .into_iter()
            .find(|b| b.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                Error::arg(
                    "baseline",
                    "method",
                    format!("unknown baseline `{s}` (known: zero, nearest, linear, laplace, biharmonic)"),
                )
            })
    }
}

fn check(data: &ArrayD<f32>, mask: &ArrayD<f32>) -> Result<()> {
    if data.shape() != mask.shape() {
        return Err(Error::shape(
            "inpaint",
            format!("data {:?} and mask {:?} differ", data.shape(), mask.shape()),
        ));
    }
    if data.is_empty() {
        return Err(Error::shape("inpaint", "empty array"));
    }
    Ok(())
}

/// Per-line fill: every gap pixel takes, among the axes whose line through it has measured
/// (or already filled) pixels on both sides of its gap run, the one with the shortest run;
/// failing that, a line with one measured side (nearest value). Pixels no line reaches (the
/// centre of a cross) are filled in further passes from the filled pixels.
pub(crate) fn line_fill(data: &ArrayD<f32>, mask: &ArrayD<f32>, linear: bool) -> ArrayD<f32> {
    let mut out = data.clone();
    let mut known: ArrayD<bool> = mask.mapv(|m| m == 0.0);
    for _pass in 0..=data.ndim() {
        if known.iter().all(|&k| k) {
            break;
        }
        // Score: (sides, -run length) ; larger is better.
        let mut best_score = ArrayD::<i64>::from_elem(data.shape(), i64::MIN);
        let mut best_val = ArrayD::<f32>::zeros(data.shape());
        for axis in 0..data.ndim() {
            Zip::from(out.lanes(Axis(axis)))
                .and(known.lanes(Axis(axis)))
                .and(best_score.lanes_mut(Axis(axis)))
                .and(best_val.lanes_mut(Axis(axis)))
                .for_each(|v, k, mut score, mut val| {
                    let n = v.len();
                    let mut i = 0;
                    while i < n {
                        if k[i] {
                            i += 1;
                            continue;
                        }
                        let start = i;
                        while i < n && !k[i] {
                            i += 1;
                        }
                        let end = i; // exclusive
                        let left = (start > 0).then(|| v[start - 1]);
                        let right = (end < n).then(|| v[end]);
                        let sides = left.is_some() as i64 + right.is_some() as i64;
                        if sides == 0 {
                            continue;
                        }
                        let run = (end - start) as i64;
                        let s = sides * 1_000_000_000 - run;
                        for p in start..end {
                            if s <= score[p] {
                                continue;
                            }
                            score[p] = s;
                            val[p] = match (left, right) {
                                (Some(a), Some(b)) => {
                                    // positions of the ends: start-1 and end
                                    let t = (p + 1 - start) as f32 / (run + 1) as f32;
                                    if linear {
                                        a + (b - a) * t
                                    } else if t <= 0.5 {
                                        a
                                    } else {
                                        b
                                    }
                                }
                                (Some(a), None) => a,
                                (None, Some(b)) => b,
                                (None, None) => unreachable!("sides > 0"),
                            };
                        }
                    }
                });
        }
        let mut progress = false;
        Zip::from(&mut out)
            .and(&mut known)
            .and(&best_score)
            .and(&best_val)
            .for_each(|o, k, &s, &v| {
                if !*k && s > i64::MIN {
                    *o = v;
                    *k = true;
                    progress = true;
                }
            });
        if !progress {
            break;
        }
    }
    // Anything still unknown (a fully masked array) is zero.
    Zip::from(&mut out).and(&known).for_each(|o, &k| {
        if !k {
            *o = 0.0
        }
    });
    out
}

/// Element strides of a contiguous row-major array of `shape`.
fn row_major_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1usize; shape.len()];
    for a in (0..shape.len().saturating_sub(1)).rev() {
        strides[a] = strides[a + 1] * shape[a + 1];
    }
    strides
}

/// Harmonic fill by successive over-relaxation on the gap pixels (discrete Laplacian with the
/// in-bounds neighbours, i.e. a zero-flux condition at the array border), started from the
/// linear fill; stops when the largest update is below `tol` times the data range.
pub fn laplace_fill(
    data: &ArrayD<f32>,
    mask: &ArrayD<f32>,
    tol: f32,
    max_iter: usize,
) -> ArrayD<f32> {
    let start = line_fill(data, mask, true);
    let shape = data.shape().to_vec();
    let nd = shape.len();
    let strides = row_major_strides(&shape);
    let flat_mask: Vec<bool> = mask.iter().map(|&m| m != 0.0).collect();
    let mut u: Vec<f64> = start.iter().map(|&v| v as f64).collect();
    // Gap pixels with their neighbour offsets.
    let mut nodes: Vec<(usize, Vec<usize>)> = vec![];
    for (idx, &g) in flat_mask.iter().enumerate() {
        if !g {
            continue;
        }
        let mut nb = Vec::with_capacity(2 * nd);
        let mut rem = idx;
        for a in 0..nd {
            let c = rem / strides[a];
            rem %= strides[a];
            if c > 0 {
                nb.push(idx - strides[a]);
            }
            if c + 1 < shape[a] {
                nb.push(idx + strides[a]);
            }
        }
        if !nb.is_empty() {
            nodes.push((idx, nb));
        }
    }
    let (lo, hi) = u
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let thresh = (tol as f64) * (hi - lo).max(1e-12);
    let omega = 1.9;
    for _ in 0..max_iter {
        let mut delta: f64 = 0.0;
        for (idx, nb) in &nodes {
            let mean = nb.iter().map(|&j| u[j]).sum::<f64>() / nb.len() as f64;
            let d = omega * (mean - u[*idx]);
            u[*idx] += d;
            delta = delta.max(d.abs());
        }
        if delta < thresh {
            break;
        }
    }
    let mut out = data.clone();
    for (o, (&v, &g)) in out.iter_mut().zip(u.iter().zip(&flat_mask)) {
        if g {
            *o = v as f32;
        }
    }
    out
}

/// Applies the graph Laplacian with in-bounds neighbours (zero flux at the border):
/// `out[p] = sum over neighbours q of (u[q] - u[p])`.
fn graph_laplacian(u: &[f64], shape: &[usize], strides: &[usize], out: &mut [f64]) {
    let nd = shape.len();
    out.iter_mut().for_each(|o| *o = 0.0);
    for a in 0..nd {
        let st = strides[a];
        let n = shape[a];
        for (idx, o) in out.iter_mut().enumerate() {
            let c = (idx / st) % n;
            if c > 0 {
                *o += u[idx - st] - u[idx];
            }
            if c + 1 < n {
                *o += u[idx + st] - u[idx];
            }
        }
    }
}

/// Biharmonic fill: minimises the squared graph Laplacian of the whole array (zero flux at the
/// border) over the gap values (conjugate gradients on the normal equations, started from the
/// linear fill); stops when the residual norm falls below `tol` times its start or after
/// `max_iter` iterations.
pub fn biharmonic_fill(
    data: &ArrayD<f32>,
    mask: &ArrayD<f32>,
    tol: f64,
    max_iter: usize,
) -> ArrayD<f32> {
    let start = line_fill(data, mask, true);
    let shape = data.shape().to_vec();
    let strides = row_major_strides(&shape);
    let gap: Vec<bool> = mask.iter().map(|&m| m != 0.0).collect();
    if !gap.iter().any(|&g| g) || gap.iter().all(|&g| g) {
        return start;
    }
    let n = gap.len();
    let mut u: Vec<f64> = start.iter().map(|&v| v as f64).collect();
    let (mut t1, mut t2) = (vec![0.0; n], vec![0.0; n]);
    // H v = P L L P v, with L the graph Laplacian (zero flux at the border) and P the
    // projection on the gap.
    let apply = |v: &[f64], t1: &mut Vec<f64>, t2: &mut Vec<f64>| {
        graph_laplacian(v, &shape, &strides, t1);
        graph_laplacian(t1, &shape, &strides, t2);
        for (x, &g) in t2.iter_mut().zip(&gap) {
            if !g {
                *x = 0.0;
            }
        }
    };
    apply(&u, &mut t1, &mut t2);
    let mut r: Vec<f64> = t2.iter().map(|x| -x).collect();
    let mut p = r.clone();
    let mut rr: f64 = r.iter().map(|x| x * x).sum();
    let rr0 = rr.max(1e-300);
    // Nothing to improve on (the start is already biharmonic to rounding).
    let scale: f64 = u.iter().map(|x| x * x).sum::<f64>().max(1e-300);
    if rr <= 1e-24 * scale {
        return start;
    }
    for _ in 0..max_iter {
        if rr <= tol * tol * rr0 {
            break;
        }
        apply(&p, &mut t1, &mut t2);
        let php: f64 = p.iter().zip(&t2).map(|(a, b)| a * b).sum();
        if php <= 0.0 || !php.is_finite() {
            break;
        }
        let alpha = rr / php;
        if !alpha.is_finite() {
            break;
        }
        for i in 0..n {
            u[i] += alpha * p[i];
            r[i] -= alpha * t2[i];
        }
        let rr_new: f64 = r.iter().map(|x| x * x).sum();
        if !rr_new.is_finite() || rr_new > 1e6 * rr0 {
            // Rounding took over (a semi-definite direction): keep the linear start.
            return start;
        }
        let beta = rr_new / rr;
        for i in 0..n {
            p[i] = r[i] + beta * p[i];
        }
        rr = rr_new;
    }
    // Keep the fill within the measured range widened by half of it on each side.
    let (lo, hi) = data
        .iter()
        .zip(&gap)
        .filter(|(_, &g)| !g)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (&v, _)| {
            (a.min(v as f64), b.max(v as f64))
        });
    let pad = 0.5 * (hi - lo);
    let mut out = data.clone();
    for (o, (&v, &g)) in out.iter_mut().zip(u.iter().zip(&gap)) {
        if g {
            *o = if v.is_finite() {
                v.clamp(lo - pad, hi + pad) as f32
            } else {
                f32::NAN
            };
        }
    }
    if out.iter().any(|v| !v.is_finite()) {
        return start;
    }
    out
}
