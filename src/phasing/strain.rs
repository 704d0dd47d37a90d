//! Displacement and strain from a reconstructed Bragg object.
//!
//! Near a Bragg reflection of scattering vector `q`, the phase of the reconstructed object is
//! `phi(r) = q . u(r)` (up to a constant), `u` being the lattice displacement. This module
//! unwraps `phi` inside the support, removes its offset (and, when asked, a linear ramp), and
//! returns the displacement projected on `q`, `u_q = phi / |q|`, and the strain component along
//! `q`, `d u_q / d x_q = (q_hat . grad phi) / |q|`, in physical units from the voxel size.
//!
//! Conventions: arrays are 2-D or 3-D, `q` and the voxel size are given per array axis (axis
//! 0 first), `q` in 1/nm (it includes the 2 pi: `|q| = 2 pi / d` for a lattice spacing `d`),
//! voxel sizes in nm, so the displacement is in nm and the strain is dimensionless.
//!
//! Unwrapping is quality guided: from the strongest voxel of each connected part of the
//! support it grows through the neighbours, most reliable link first (the link quality is the
//! smaller modulus of its two voxels), adding to each new voxel the wrapped phase difference to
//! the voxel it was reached from. Derivatives are central differences of the phase between
//! support voxels (one-sided next to the support's edge), taken on wrapped differences, so that
//! a local unwrapping error does not show up as a spike of strain. A voxel with no support
//! neighbour along an axis that `q` has a component on takes the mean strain of its
//! neighbours.

use crate::{Error, Result};
use ndarray::{ArrayD, IxDyn};
use num_complex::Complex32;
use rayon::prelude::*;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::f64::consts::{PI, TAU};

/// Default fraction of the maximum modulus below which support voxels are left out.
pub const DEFAULT_MODULUS_THRESHOLD: f32 = 0.1;

/// Options of [`displacement_and_strain_with`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StrainOptions {
    /// Remove the best-fitting linear phase ramp (a uniform strain or an off-centre Bragg
    /// peak) as well as the offset.
    pub remove_ramp: bool,
    /// Support voxels whose modulus is below this fraction of the maximum modulus inside the
    /// support are left out (their phase is noise); 0 keeps the whole support.
    pub modulus_threshold: f32,
}

impl Default for StrainOptions {
    fn default() -> Self {
        StrainOptions {
            remove_ramp: false,
            modulus_threshold: DEFAULT_MODULUS_THRESHOLD,
        }
    }
}

/// Displacement and strain of a reconstructed object, all arrays of the object's shape and 0
/// outside `support`.
#[derive(Debug, Clone)]
pub struct StrainField {
    /// Modulus of the object (everywhere).
    pub modulus: ArrayD<f32>,
    /// The voxels analysed (1): the given support where the modulus passes the threshold.
    pub support: ArrayD<u8>,
    /// Unwrapped phase in radians, offset (and ramp) removed.
    pub phase: ArrayD<f32>,
    /// Displacement along `q`, `phase / |q|`, in nm.
    pub displacement: ArrayD<f32>,
    /// Strain component along `q`, `d u_q / d x_q`.
    pub strain: ArrayD<f32>,
    /// Scattering vector per axis, 1/nm.
    pub q: Vec<f64>,
    /// Voxel size per axis, nm.
    pub voxel_nm: Vec<f64>,
    /// Phase ramp removed, rad/nm per axis (zeros without `remove_ramp`).
    pub ramp: Vec<f64>,
    /// Phase offset removed, rad.
    pub offset: f64,
    /// Number of connected parts of the support (each unwrapped from its own strongest voxel).
    pub parts: usize,
}

/// `x` wrapped into [-pi, pi).
pub fn wrap(x: f64) -> f64 {
    x - TAU * ((x + PI) / TAU).floor()
}

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut st = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        st[d] = st[d + 1] * shape[d + 1];
    }
    st
}

/// The neighbour of flat index `i` one step along axis `d` (`dir` = +1 or -1), if inside.
fn neighbour(i: usize, d: usize, dir: i8, shape: &[usize], st: &[usize]) -> Option<usize> {
    let c = (i / st[d]) % shape[d];
    match dir {
        1 if c + 1 < shape[d] => Some(i + st[d]),
        -1 if c > 0 => Some(i - st[d]),
        _ => None,
    }
}

/// Unwraps `raw` (radians) inside `mask` (flat arrays of `shape`) guided by `quality`
/// (higher first). Returns the unwrapped phase (0 outside) and the number of connected parts.
fn unwrap_flat(raw: &[f64], quality: &[f32], mask: &[bool], shape: &[usize]) -> (Vec<f64>, usize) {
    let st = strides(shape);
    let mut out = vec![0.0f64; raw.len()];
    let mut done = vec![false; raw.len()];
    let mut seeds: Vec<usize> = (0..raw.len()).filter(|&i| mask[i]).collect();
    seeds.sort_by(|&a, &b| quality[b].total_cmp(&quality[a]).then(a.cmp(&b)));
    let mut parts = 0;
    // (link quality as ordered bits, lower index first on ties, from, to)
    let mut heap: BinaryHeap<(u32, Reverse<usize>, usize)> = BinaryHeap::new();
    for seed in seeds {
        if done[seed] {
            continue;
        }
        parts += 1;
        done[seed] = true;
        out[seed] = raw[seed];
        let push = |heap: &mut BinaryHeap<_>, from: usize, done: &[bool]| {
            for d in 0..shape.len() {
                for dir in [1i8, -1] {
                    if let Some(n) = neighbour(from, d, dir, shape, &st) {
                        if mask[n] && !done[n] {
                            let q = quality[n].min(quality[from]).max(0.0);
                            heap.push((q.to_bits(), Reverse(n), from));
                        }
                    }
                }
            }
        };
        push(&mut heap, seed, &done);
        while let Some((_, Reverse(n), from)) = heap.pop() {
            if done[n] {
                continue;
            }
            done[n] = true;
            out[n] = out[from] + wrap(raw[n] - raw[from]);
            push(&mut heap, n, &done);
        }
    }
    (out, parts)
}

/// Unwraps the phase of `object` inside `mask` (non-zero = inside), quality-guided by the
/// modulus; 0 outside the mask. Errors on mismatched shapes.
pub fn unwrap_phase(object: &ArrayD<Complex32>, mask: &ArrayD<u8>) -> Result<ArrayD<f32>> {
    if object.shape() != mask.shape() {
        return Err(Error::shape(
            "unwrap_phase",
            format!(
                "mask shape {:?} does not match the object {:?}",
                mask.shape(),
                object.shape()
            ),
        ));
    }
    let raw: Vec<f64> = object.iter().map(|v| v.arg() as f64).collect();
    let quality: Vec<f32> = object.iter().map(|v| v.norm()).collect();
    let m: Vec<bool> = mask.iter().map(|&v| v != 0).collect();
    let (out, _) = unwrap_flat(&raw, &quality, &m, object.shape());
    Ok(ArrayD::from_shape_vec(
        IxDyn(object.shape()),
        out.into_iter().map(|v| v as f32).collect(),
    )
    .expect("same length as the object"))
}

/// Solves the small dense system `a x = b` (row-major, n x n) by Gauss elimination with
/// partial pivoting; `None` when it is singular.
fn solve(mut a: Vec<f64>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    for k in 0..n {
        let p = (k..n).max_by(|&i, &j| a[i * n + k].abs().total_cmp(&a[j * n + k].abs()))?;
        if a[p * n + k].abs() <= 1e-12 * scale {
            return None;
        }
        for j in 0..n {
            a.swap(k * n + j, p * n + j);
        }
        b.swap(k, p);
        for i in k + 1..n {
            let f = a[i * n + k] / a[k * n + k];
            for j in k..n {
                a[i * n + j] -= f * a[k * n + j];
            }
            b[i] -= f * b[k];
        }
    }
    let mut x = vec![0.0; n];
    for k in (0..n).rev() {
        let s: f64 = (k + 1..n).map(|j| a[k * n + j] * x[j]).sum();
        x[k] = (b[k] - s) / a[k * n + k];
    }
    Some(x)
}

/// Checks the inputs and returns the voxel size per axis, `|q|` and the unit vector of `q`.
fn check_inputs(
    object: &ArrayD<Complex32>,
    support: &ArrayD<u8>,
    voxel_nm: &[f64],
    q: &[f64],
    opts: &StrainOptions,
) -> Result<(Vec<f64>, f64, Vec<f64>)> {
    let nd = object.ndim();
    if !(2..=3).contains(&nd) || object.is_empty() {
        return Err(Error::shape(
            "strain",
            format!(
                "expected a non-empty 2-D or 3-D object, got shape {:?}",
                object.shape()
            ),
        ));
    }
    if support.shape() != object.shape() {
        return Err(Error::shape(
            "strain",
            format!(
                "support shape {:?} does not match the object {:?}",
                support.shape(),
                object.shape()
            ),
        ));
    }
    let voxel: Vec<f64> = match voxel_nm.len() {
        1 => vec![voxel_nm[0]; nd],
        n if n == nd => voxel_nm.to_vec(),
        n => {
            return Err(Error::arg(
                "strain",
                "voxel size",
                format!("{n} values for a {nd}-D object (give 1 or {nd})"),
            ))
        }
    };
    if voxel.iter().any(|v| !v.is_finite() || *v <= 0.0) {
        return Err(Error::arg(
            "strain",
            "voxel size",
            format!("{voxel:?} nm: every size must be finite and > 0"),
        ));
    }
    if q.len() != nd {
        return Err(Error::arg(
            "strain",
            "q",
            format!(
                "{} components for a {nd}-D object (give one per axis)",
                q.len()
            ),
        ));
    }
    let qn = q.iter().map(|v| v * v).sum::<f64>().sqrt();
    if !qn.is_finite() || qn == 0.0 {
        return Err(Error::arg(
            "strain",
            "q",
            format!("{q:?} 1/nm: must be finite and non-zero"),
        ));
    }
    let t = opts.modulus_threshold;
    if !t.is_finite() || !(0.0..1.0).contains(&t) {
        return Err(Error::arg(
            "strain",
            "modulus threshold",
            format!("{t}: must be in [0, 1)"),
        ));
    }
    let bad = object
        .iter()
        .filter(|v| !v.re.is_finite() || !v.im.is_finite())
        .count();
    if bad > 0 {
        return Err(Error::NonFinite {
            op: "strain",
            detail: format!("the object has {bad} non-finite values"),
        });
    }
    let unit = q.iter().map(|v| v / qn).collect();
    Ok((voxel, qn, unit))
}

/// [`displacement_and_strain_with`] with the default options (no ramp removal, voxels below
/// 10% of the maximum modulus left out).
pub fn displacement_and_strain(
    object: &ArrayD<Complex32>,
    support: &ArrayD<u8>,
    voxel_nm: &[f64],
    q: &[f64],
) -> Result<StrainField> {
    displacement_and_strain_with(object, support, voxel_nm, q, &StrainOptions::default())
}

/// Unwraps the phase of `object` inside `support` (non-zero = inside), removes its offset (and
/// ramp), and returns the displacement along `q` and the strain along `q`. `voxel_nm`: voxel
/// size in nm, one value or one per axis; `q`: scattering vector per axis in 1/nm.
pub fn displacement_and_strain_with(
    object: &ArrayD<Complex32>,
    support: &ArrayD<u8>,
    voxel_nm: &[f64],
    q: &[f64],
    opts: &StrainOptions,
) -> Result<StrainField> {
    let (voxel, qn, qhat) = check_inputs(object, support, voxel_nm, q, opts)?;
    let shape = object.shape().to_vec();
    let nd = shape.len();
    let st = strides(&shape);
    let modulus: Vec<f32> = object.iter().map(|v| v.norm()).collect();
    let in_support: Vec<bool> = support.iter().map(|&s| s != 0).collect();
    let max = modulus
        .iter()
        .zip(&in_support)
        .filter(|(_, &s)| s)
        .fold(0.0f32, |m, (&v, _)| m.max(v));
    let level = opts.modulus_threshold * max;
    let mask: Vec<bool> = modulus
        .iter()
        .zip(&in_support)
        .map(|(&m, &s)| s && m > 0.0 && m >= level)
        .collect();
    let count = mask.iter().filter(|&&m| m).count();
    if count == 0 {
        return Err(Error::arg(
            "strain",
            "support",
            format!(
                "no voxel to analyse: the support has {} voxels, none with a modulus above {} \
                 of the maximum {max:e}",
                in_support.iter().filter(|&&s| s).count(),
                opts.modulus_threshold
            ),
        ));
    }
    let raw: Vec<f64> = object.iter().map(|v| v.arg() as f64).collect();
    let (mut phase, parts) = unwrap_flat(&raw, &modulus, &mask, &shape);

    // Offset, and optionally a ramp, fitted by least squares on the analysed voxels.
    let coord = |i: usize, d: usize| ((i / st[d]) % shape[d]) as f64 - (shape[d] / 2) as f64;
    let mut ramp = vec![0.0; nd];
    let offset;
    if opts.remove_ramp {
        let n = nd + 1;
        let mut a = vec![0.0f64; n * n];
        let mut b = vec![0.0f64; n];
        for i in (0..phase.len()).filter(|&i| mask[i]) {
            let mut f = vec![1.0f64; n];
            for d in 0..nd {
                f[d + 1] = coord(i, d) * voxel[d];
            }
            for r in 0..n {
                b[r] += f[r] * phase[i];
                for c in 0..n {
                    a[r * n + c] += f[r] * f[c];
                }
            }
        }
        let x = solve(a, b).ok_or_else(|| {
            Error::arg(
                "strain",
                "remove_ramp",
                format!(
                    "cannot fit a phase ramp: the {count} analysed voxels do not span every axis"
                ),
            )
        })?;
        offset = x[0];
        ramp.copy_from_slice(&x[1..]);
    } else {
        offset = (0..phase.len())
            .filter(|&i| mask[i])
            .map(|i| phase[i])
            .sum::<f64>()
            / count as f64;
    }
    for (i, p) in phase.iter_mut().enumerate() {
        if mask[i] {
            let r: f64 = (0..nd).map(|d| ramp[d] * coord(i, d) * voxel[d]).sum();
            *p -= offset + r;
        } else {
            *p = 0.0;
        }
    }

    // Strain along q from (wrapped) differences of the phase between analysed voxels.
    let strain: Vec<f32> = (0..phase.len())
        .into_par_iter()
        .with_min_len(4096)
        .map(|i| {
            if !mask[i] {
                return 0.0;
            }
            let mut dq = 0.0f64;
            for d in (0..nd).filter(|&d| qhat[d] != 0.0) {
                let p = neighbour(i, d, 1, &shape, &st).filter(|&n| mask[n]);
                let m = neighbour(i, d, -1, &shape, &st).filter(|&n| mask[n]);
                let g = match (p, m) {
                    (Some(p), Some(m)) => wrap(phase[p] - phase[m]) / (2.0 * voxel[d]),
                    (Some(p), None) => wrap(phase[p] - phase[i]) / voxel[d],
                    (None, Some(m)) => wrap(phase[i] - phase[m]) / voxel[d],
                    (None, None) => return f32::NAN, // no neighbour along this axis
                };
                dq += qhat[d] * g;
            }
            (dq / qn) as f32
        })
        .collect();
    // Voxels without a neighbour along an axis that q needs take their neighbours' mean.
    let strain: Vec<f32> = (0..strain.len())
        .into_par_iter()
        .with_min_len(4096)
        .map(|i| {
            if !strain[i].is_nan() {
                return strain[i];
            }
            let (mut sum, mut n) = (0.0f64, 0usize);
            for d in 0..nd {
                for dir in [1i8, -1] {
                    if let Some(k) = neighbour(i, d, dir, &shape, &st) {
                        if mask[k] && !strain[k].is_nan() {
                            sum += strain[k] as f64;
                            n += 1;
                        }
                    }
                }
            }
            if n > 0 {
                (sum / n as f64) as f32
            } else {
                0.0
            }
        })
        .collect();

    let arr =
        |v: Vec<f32>| ArrayD::from_shape_vec(IxDyn(&shape), v).expect("same length as the object");
    let displacement = phase.iter().map(|&p| (p / qn) as f32).collect();
    Ok(StrainField {
        modulus: arr(modulus),
        support: ArrayD::from_shape_vec(IxDyn(&shape), mask.iter().map(|&m| u8::from(m)).collect())
            .expect("same length as the object"),
        phase: arr(phase.iter().map(|&p| p as f32).collect()),
        displacement: arr(displacement),
        strain: arr(strain),
        q: q.to_vec(),
        voxel_nm: voxel,
        ramp,
        offset,
        parts,
    })
}

/// The `p`-quantile (0..=1) of `|v|` over the analysed voxels.
fn abs_quantile(v: &ArrayD<f32>, mask: &ArrayD<u8>, p: f64) -> f32 {
    let mut a: Vec<f32> = v
        .iter()
        .zip(mask.iter())
        .filter(|(_, &m)| m != 0)
        .map(|(x, _)| x.abs())
        .collect();
    if a.is_empty() {
        return 0.0;
    }
    let k = ((a.len() - 1) as f64 * p).round() as usize;
    let (_, x, _) = a.select_nth_unstable_by(k, f32::total_cmp);
    *x
}

/// Writes a figure of the central slices (three orthogonal ones for a volume) of the modulus,
/// phase (wrapped, cyclic colours), displacement and strain (diverging colours, symmetric
/// around 0, ranges up to the 99th percentile of the absolute values, so that a few noisy
/// voxels at the support's edge do not wash the bulk out) at `path` (PNG), axes in nm.
pub fn write_figure(path: &std::path::Path, field: &StrainField, title: &str) -> Result<()> {
    use crate::plot::{central_slices, Colormap, Figure, Panel};
    let masked = |a: &ArrayD<f32>, f: &dyn Fn(f32) -> f32| {
        ndarray::Zip::from(a)
            .and(&field.support)
            .map_collect(|&v, &m| if m != 0 { f(v) } else { f32::NAN })
    };
    let max = field
        .modulus
        .iter()
        .fold(0.0f32, |m, &v| m.max(v))
        .max(1e-30);
    let modulus = field.modulus.mapv(|v| v / max);
    let phase = masked(&field.phase, &|v| wrap(v as f64) as f32);
    let u = masked(&field.displacement, &|v| v);
    let e = masked(&field.strain, &|v| v);
    let u_lim = abs_quantile(&field.displacement, &field.support, 0.99).max(1e-6);
    let e_lim = abs_quantile(&field.strain, &field.support, 0.99).max(1e-6);
    type Row<'a> = (&'a str, &'a ArrayD<f32>, Colormap, f32, f32, &'a str);
    let rows: [Row; 4] = [
        (
            "modulus",
            &modulus,
            Colormap::Sequential,
            0.0,
            1.0,
            "modulus / max",
        ),
        (
            "phase",
            &phase,
            Colormap::Cyclic,
            -std::f32::consts::PI,
            std::f32::consts::PI,
            "φ (rad)",
        ),
        (
            "displacement",
            &u,
            Colormap::Diverging,
            -u_lim,
            u_lim,
            "u (nm)",
        ),
        (
            "strain",
            &e,
            Colormap::Diverging,
            -e_lim,
            e_lim,
            "ε along q",
        ),
    ];
    let nd = field.modulus.ndim();
    let mut fig = Figure::new(title, if nd == 3 { 3 } else { 4 });
    for (name, a, map, lo, hi, bar) in rows {
        for s in central_slices(a, &field.voxel_nm, "nm")? {
            let t = if s.plane.is_empty() {
                name.to_string()
            } else {
                format!("{name} ({})", s.plane)
            };
            let mut p = Panel::new(t, s.data, map)
                .axes(s.extent, &s.x_label, &s.y_label)
                .range(lo, hi)
                .bar_label(bar);
            if map == Colormap::Cyclic {
                p = p.bar_ticks(Panel::phase_ticks());
            }
            fig.push(p);
        }
    }
    fig.save(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Dimension;

    /// A crystal of `shape`: a ball of radius `r` voxels with unit modulus, phase `phi(x_nm)`.
    fn crystal(
        shape: &[usize],
        r: f64,
        voxel: &[f64],
        phi: impl Fn(&[f64]) -> f64,
    ) -> (ArrayD<Complex32>, ArrayD<u8>) {
        let mut sup = ArrayD::<u8>::zeros(IxDyn(shape));
        let obj = ArrayD::from_shape_fn(IxDyn(shape), |ix| {
            let c: Vec<f64> = (0..shape.len())
                .map(|d| ix[d] as f64 - (shape[d] / 2) as f64)
                .collect();
            let inside = c.iter().map(|v| v * v).sum::<f64>() <= r * r;
            let x: Vec<f64> = c.iter().zip(voxel).map(|(c, v)| c * v).collect();
            if inside {
                sup[ix.slice()] = 1;
                Complex32::from_polar(1.0, phi(&x) as f32)
            } else {
                Complex32::new(0.0, 0.0)
            }
        });
        (obj, sup)
    }

    /// Voxels at least `layer` voxels (city-block) inside the support.
    fn interior(sup: &ArrayD<u8>, layer: usize) -> Vec<usize> {
        let shape = sup.shape().to_vec();
        let st = strides(&shape);
        let flat: Vec<u8> = sup.iter().copied().collect();
        let mut inside: Vec<bool> = flat.iter().map(|&v| v != 0).collect();
        for _ in 0..layer {
            let prev = inside.clone();
            for (i, v) in inside.iter_mut().enumerate() {
                if *v {
                    for d in 0..shape.len() {
                        for dir in [1i8, -1] {
                            if !neighbour(i, d, dir, &shape, &st).is_some_and(|n| prev[n]) {
                                *v = false;
                            }
                        }
                    }
                }
            }
        }
        (0..flat.len()).filter(|&i| inside[i]).collect()
    }

    #[test]
    fn constant_strain_over_several_wraps() {
        // |q| = 2 pi / 0.2 nm, strain 5e-3 along q (oblique), voxels 5 x 4 x 6 nm: the phase
        // spans about 6 turns of 2 pi across the crystal.
        let voxel = [5.0, 4.0, 6.0];
        let dir = [0.48f64, 0.6, 0.64];
        let n = dir.iter().map(|v| v * v).sum::<f64>().sqrt();
        let qn = TAU / 0.2;
        let q: Vec<f64> = dir.iter().map(|v| v / n * qn).collect();
        let e = 5e-3;
        // u = e * (x . q_hat) q_hat, so q . u = |q| e (x . q_hat).
        let (obj, sup) = crystal(&[48, 48, 48], 20.0, &voxel, |x| {
            let xq: f64 = x.iter().zip(&q).map(|(a, b)| a * b / qn).sum();
            qn * e * xq + 1.0
        });
        let f = displacement_and_strain(&obj, &sup, &voxel, &q).unwrap();
        assert_eq!(f.parts, 1);
        let turns = (f.phase.iter().fold(0.0f32, |m, v| m.max(*v))
            - f.phase.iter().fold(0.0f32, |m, v| m.min(*v)))
            / TAU as f32;
        assert!(turns > 4.5, "phase spans {turns} turns");
        // Strain everywhere in the support (central or one-sided differences are exact here).
        for (s, m) in f.strain.iter().zip(f.support.iter()) {
            if *m != 0 {
                assert!((*s as f64 - e).abs() < 1e-3 * e, "strain {s}");
            }
        }
        // Displacement up to a constant: u = e (x . q_hat) - mean.
        let st = strides(obj.shape());
        let u: Vec<f32> = f.displacement.iter().copied().collect();
        let mut diffs = vec![];
        for i in (0..u.len()).filter(|&i| sup.as_slice().unwrap()[i] != 0) {
            let xq: f64 = (0..3)
                .map(|d| (((i / st[d]) % 48) as f64 - 24.0) * voxel[d] * q[d] / qn)
                .sum();
            diffs.push(u[i] as f64 - e * xq);
        }
        let mean = diffs.iter().sum::<f64>() / diffs.len() as f64;
        let worst = diffs.iter().map(|d| (d - mean).abs()).fold(0.0, f64::max);
        assert!(worst < 1e-4, "displacement off by up to {worst} nm");
        // With the ramp removed, the uniform strain goes and the ramp is q e q_hat.
        let opts = StrainOptions {
            remove_ramp: true,
            ..StrainOptions::default()
        };
        let g = displacement_and_strain_with(&obj, &sup, &voxel, &q, &opts).unwrap();
        for (r, qd) in g.ramp.iter().zip(&q) {
            assert!((r - e * qd).abs() < 1e-5 * qn, "{:?}", g.ramp);
        }
        assert!(
            g.strain.iter().all(|s| s.abs() < 1e-5),
            "strain left after ramp removal"
        );
        assert!(g.phase.iter().all(|p| p.abs() < 1e-3));
    }

    #[test]
    fn quadratic_displacement_gives_linear_strain() {
        // u along q = x-axis (axis 2): u = a x^2 (nm), strain = 2 a x.
        let voxel = [3.0];
        let qn = TAU / 0.25;
        let q = [0.0, 0.0, qn];
        let a = 2e-4; // strain up to 2 a 48 nm = 1.9e-2, phase up to ~1.8 turns
        let (obj, sup) = crystal(&[40, 40, 40], 16.0, &[3.0; 3], |x| qn * a * x[2] * x[2]);
        let f = displacement_and_strain(&obj, &sup, &voxel, &q).unwrap();
        let st = strides(obj.shape());
        let mut worst = 0.0f64;
        for i in interior(&sup, 1) {
            let x = (((i / st[2]) % 40) as f64 - 20.0) * 3.0;
            let s = f.strain.as_slice().unwrap()[i] as f64;
            worst = worst.max((s - 2.0 * a * x).abs());
        }
        assert!(worst < 1e-3 * 2.0 * a * 48.0, "strain error {worst}");
    }

    #[test]
    fn unwrapping_follows_many_turns_in_2d() {
        // A 2-D disc with a phase of 8 turns across it, along both axes.
        let (obj, sup) = crystal(&[64, 64], 28.0, &[1.0, 1.0], |x| 0.6 * x[0] + 0.7 * x[1]);
        let u = unwrap_phase(&obj, &sup).unwrap();
        let (mut lo, mut hi) = (f64::MAX, f64::MIN);
        for (ix, &m) in sup.indexed_iter() {
            if m != 0 {
                let want = 0.6 * (ix[0] as f64 - 32.0) + 0.7 * (ix[1] as f64 - 32.0);
                let d = u[ix.slice()] as f64 - want;
                lo = lo.min(d);
                hi = hi.max(d);
            }
        }
        assert!(
            hi - lo < 1e-3,
            "unwrapped phase off by a varying {}",
            hi - lo
        );
        // Two separate parts are each unwrapped.
        let mut two = sup.clone();
        for ix in 0..64 {
            two[[32, ix]] = 0;
        }
        let f = displacement_and_strain(&obj, &two, &[1.0], &[1.0, 0.0]).unwrap();
        assert_eq!(f.parts, 2);
    }

    #[test]
    fn bad_inputs_are_errors_that_say_what() {
        let (obj, sup) = crystal(&[8, 8, 8], 3.0, &[1.0; 3], |_| 0.0);
        let msg = |r: Result<StrainField>| r.unwrap_err().to_string();
        assert!(msg(displacement_and_strain(
            &obj,
            &sup,
            &[1.0],
            &[0.0, 0.0, 0.0]
        ))
        .contains("q"));
        assert!(msg(displacement_and_strain(&obj, &sup, &[1.0], &[1.0, 0.0])).contains("q"));
        assert!(msg(displacement_and_strain(
            &obj,
            &sup,
            &[1.0, 2.0],
            &[1.0, 0.0, 0.0]
        ))
        .contains("voxel"));
        assert!(msg(displacement_and_strain(
            &obj,
            &sup,
            &[-1.0],
            &[1.0, 0.0, 0.0]
        ))
        .contains("voxel"));
        let small = ArrayD::<u8>::ones(IxDyn(&[4, 8, 8]));
        assert!(msg(displacement_and_strain(
            &obj,
            &small,
            &[1.0],
            &[1.0, 0.0, 0.0]
        ))
        .contains("support shape"));
        let empty = ArrayD::<u8>::zeros(IxDyn(&[8, 8, 8]));
        assert!(msg(displacement_and_strain(
            &obj,
            &empty,
            &[1.0],
            &[1.0, 0.0, 0.0]
        ))
        .contains("no voxel"));
        let mut nan = obj.clone();
        nan[[4, 4, 4]] = Complex32::new(f32::NAN, 0.0);
        assert!(msg(displacement_and_strain(
            &nan,
            &sup,
            &[1.0],
            &[1.0, 0.0, 0.0]
        ))
        .contains("non-finite"));
        let flat = ArrayD::<u8>::from_shape_fn(IxDyn(&[8, 8, 8]), |i| u8::from(i[0] == 4));
        let opts = StrainOptions {
            remove_ramp: true,
            modulus_threshold: 0.0,
        };
        let r = displacement_and_strain_with(
            &obj.mapv(|_| Complex32::new(1.0, 0.0)),
            &flat,
            &[1.0],
            &[1.0, 0.0, 0.0],
            &opts,
        );
        assert!(msg(r).contains("ramp"));
    }

    #[test]
    fn figure_of_a_strained_crystal() {
        let q = [0.0, TAU / 0.3, 0.0];
        let (obj, sup) = crystal(&[32, 32, 32], 12.0, &[4.0; 3], |x| {
            q[1] * 2e-3 * (x[1] * x[1] + x[0] * x[2]) / 40.0
        });
        let f = displacement_and_strain(&obj, &sup, &[4.0], &q).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("strain.png");
        write_figure(&p, &f, "strained crystal").unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        assert!(
            img.width() >= 1000 && img.height() >= 1000,
            "{:?}",
            img.dimensions()
        );
        let colours: std::collections::HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
        assert!(colours.len() > 200);
    }
}
