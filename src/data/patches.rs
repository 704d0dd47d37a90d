//! 3D patches for the patching model (brief section 5).
//!
//! - Training: patches cut from large simulated patterns, with an artificial gap at the patch
//!   centre: 80% one plane (normal to detector axis 1 or 2, constant along the rocking axis 0),
//!   20% a cross (both planes).
//! - Fine-tuning: patches of a measured array drawn with the intensity marginals, rejecting any
//!   that touch the real gap, with the same artificial gaps.

use crate::{Error, Result};
use ndarray::{s, Array3, ArrayView3, Axis};
use rand::Rng;

/// One patch: the ground truth and the artificial gap mask (1 = gap).
#[derive(Debug, Clone)]
pub struct Patch {
    /// Intensity of the patch (no gap).
    pub truth: Array3<f32>,
    /// Artificial gap, 1 = gap.
    pub mask: Array3<u8>,
    /// Corner of the patch in the source array.
    pub origin: [usize; 3],
}

/// Artificial gap of width `w` at the centre of a cubic patch of side `p`: a single plane with
/// probability `1 - p_cross`, else a cross. Planes are normal to axis 1 or 2.
pub fn centre_gap(p: usize, w: usize, p_cross: f64, rng: &mut impl Rng) -> Array3<u8> {
    let mut m = Array3::<u8>::zeros((p, p, p));
    let start = (p / 2).saturating_sub(w / 2);
    let end = (start + w).min(p);
    let cross = rng.random_bool(p_cross);
    let axis = if rng.random_bool(0.5) { 1 } else { 2 };
    if cross || axis == 1 {
        m.slice_mut(s![.., start..end, ..]).fill(1);
    }
    if cross || axis == 2 {
        m.slice_mut(s![.., .., start..end]).fill(1);
    }
    m
}

fn check(op: &'static str, shape: &[usize], p: usize, w: usize) -> Result<()> {
    if p == 0 || shape.iter().any(|&n| n < p) {
        return Err(Error::arg(
            op,
            "patch",
            format!("patch {p} larger than array {shape:?}"),
        ));
    }
    if w == 0 || w >= p {
        return Err(Error::arg(
            op,
            "width",
            format!("gap width {w} must be in 1..{p}"),
        ));
    }
    Ok(())
}

/// Cumulative distribution of the marginal of `a` along `axis` (sum over the other axes).
fn marginal_cdf(a: &ArrayView3<f32>, axis: usize) -> Vec<f64> {
    let mut acc = 0.0;
    let mut cdf: Vec<f64> = a
        .axis_iter(Axis(axis))
        .map(|sl| {
            acc += sl.iter().map(|&v| v.max(0.0) as f64).sum::<f64>();
            acc
        })
        .collect();
    // No signal, or non-finite values (refused on load; guarded here too): uniform centres.
    if !(acc > 0.0 && acc.is_finite()) {
        let n = cdf.len() as f64;
        cdf.iter_mut()
            .enumerate()
            .for_each(|(i, c)| *c = (i + 1) as f64 / n);
    }
    cdf
}

/// Draws a patch corner with centre distributed as the intensity marginals.
fn draw_corner(cdfs: &[Vec<f64>], shape: &[usize], p: usize, rng: &mut impl Rng) -> [usize; 3] {
    let mut o = [0usize; 3];
    for d in 0..3 {
        let cdf = &cdfs[d];
        let total = *cdf.last().unwrap_or(&1.0);
        let u = rng.random_range(0.0..total);
        let centre = cdf.partition_point(|&c| c <= u).min(shape[d] - 1);
        o[d] = centre.saturating_sub(p / 2).min(shape[d] - p);
    }
    o
}

/// `count` training patches of side `p` from a large pattern `truth` (no real gap), each
/// with an artificial centred gap of width `w` (20% crosses). Patch centres follow the
/// intensity marginals so that patches cover the signal.
pub fn training_patches(
    truth: ArrayView3<f32>,
    count: usize,
    p: usize,
    w: usize,
    rng: &mut impl Rng,
) -> Result<Vec<Patch>> {
    check("training_patches", truth.shape(), p, w)?;
    let cdfs: Vec<Vec<f64>> = (0..3).map(|d| marginal_cdf(&truth, d)).collect();
    Ok((0..count)
        .map(|_| {
            let o = draw_corner(&cdfs, truth.shape(), p, rng);
            Patch {
                truth: truth
                    .slice(s![o[0]..o[0] + p, o[1]..o[1] + p, o[2]..o[2] + p])
                    .to_owned(),
                mask: centre_gap(p, w, 0.2, rng),
                origin: o,
            }
        })
        .collect())
}

/// `count` fine-tuning patches of side `p` from a measured array with its real gap mask
/// (1 = gap): centres drawn by the intensity marginals, patches touching the real gap
/// rejected, artificial centred gaps of width `w` added. Errors after `1000 * count` rejections.
pub fn finetune_patches(
    measured: ArrayView3<f32>,
    real_mask: ArrayView3<u8>,
    count: usize,
    p: usize,
    w: usize,
    rng: &mut impl Rng,
) -> Result<Vec<Patch>> {
    const OP: &str = "finetune_patches";
    check(OP, measured.shape(), p, w)?;
    if real_mask.shape() != measured.shape() {
        return Err(Error::shape(
            OP,
            format!(
                "mask {:?} vs data {:?}",
                real_mask.shape(),
                measured.shape()
            ),
        ));
    }
    // Do not let the gap's zeros or garbage steer the sampling.
    let clean = ndarray::Zip::from(&measured)
        .and(&real_mask)
        .map_collect(|&v, &m| if m != 0 { 0.0 } else { v });
    let cdfs: Vec<Vec<f64>> = (0..3).map(|d| marginal_cdf(&clean.view(), d)).collect();
    let mut out = Vec::with_capacity(count);
    let mut tries = 0usize;
    while out.len() < count {
        tries += 1;
        if tries > 1000 * count.max(1) {
            return Err(Error::arg(
                OP,
                "real_mask",
                format!(
                    "found only {} of {count} patches that avoid the real gap",
                    out.len()
                ),
            ));
        }
        let o = draw_corner(&cdfs, measured.shape(), p, rng);
        let win = s![o[0]..o[0] + p, o[1]..o[1] + p, o[2]..o[2] + p];
        if real_mask.slice(win).iter().any(|&m| m != 0) {
            continue;
        }
        out.push(Patch {
            truth: measured.slice(win).to_owned(),
            mask: centre_gap(p, w, 0.2, rng),
            origin: o,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn centre_gap_is_a_centred_plane_or_cross() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let (mut planes, mut crosses) = (0, 0);
        for _ in 0..500 {
            let m = centre_gap(32, 6, 0.2, &mut rng);
            let n = m.iter().filter(|&&v| v != 0).count();
            // gap rows 13..19
            assert_eq!(m[[5, 13, 0]] | m[[5, 0, 13]], 1);
            assert_eq!(m[[5, 12, 12]] | m[[5, 19, 19]], 0);
            if n == 32 * 32 * 6 {
                planes += 1
            } else {
                assert_eq!(n, 32 * 32 * 12 - 32 * 36);
                crosses += 1
            }
        }
        assert!(
            (60..140).contains(&crosses),
            "{crosses} crosses, {planes} planes"
        );
    }

    #[test]
    fn finetune_patches_avoid_the_real_gap_and_follow_the_signal() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let n = 64;
        let data = Array3::from_shape_fn((n, n, n), |(i, j, k)| {
            let r2 = [i, j, k]
                .iter()
                .map(|&x| (x as f32 - 40.0).powi(2))
                .sum::<f32>();
            1e4 * (-r2 / 50.0).exp()
        });
        let mut mask = Array3::<u8>::zeros((n, n, n));
        mask.slice_mut(s![.., 20..24, ..]).fill(1);
        let ps = finetune_patches(data.view(), mask.view(), 50, 16, 3, &mut rng).unwrap();
        for p in &ps {
            assert!(p.origin[1] >= 24 || p.origin[1] + 16 <= 20);
            // centred near the peak at 40 (marginal sd 5 px)
            assert!((p.origin[0] as i64 + 8 - 40).abs() <= 22, "{:?}", p.origin);
        }
        let all = Array3::<u8>::ones((n, n, n));
        assert!(finetune_patches(data.view(), all.view(), 1, 16, 3, &mut rng).is_err());
    }
}
