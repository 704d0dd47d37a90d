//! CPU code of the axis sums (f64 accumulation, rayon over outputs or over chunks).

use crate::ops::PAR_THRESHOLD;
use rayon::prelude::*;

/// Sum of all elements, accumulated in f64.
pub fn sum_all(x: &[f32]) -> f32 {
    let chunk_sum = sum_f64;
    if x.len() < PAR_THRESHOLD {
        chunk_sum(x) as f32
    } else {
        x.par_chunks(1 << 14).map(chunk_sum).sum::<f64>() as f32
    }
}

/// Sum of `x` in f64, over 8 interleaved lanes (independent adds the compiler vectorises,
/// instead of one serial chain) combined in a fixed order.
fn sum_f64(x: &[f32]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let mut blocks = x.chunks_exact(8);
    for b in &mut blocks {
        for (l, &v) in lanes.iter_mut().zip(b) {
            *l += f64::from(v);
        }
    }
    let tail: f64 = blocks.remainder().iter().map(|&v| f64::from(v)).sum();
    let [a, b, c, d, e, f, g, h] = lanes;
    ((a + e) + (b + f)) + ((c + g) + (d + h)) + tail
}

/// Sum over `axes` (sorted, unique) keeping them as size-1 dimensions.
pub fn sum_axes(x: &[f32], shape: &[usize], axes: &[usize]) -> Vec<f32> {
    let rank = shape.len();
    if axes.len() == rank || x.is_empty() {
        let out_len: usize = super::reduced_shape(shape, axes).iter().product();
        let mut out = vec![0.0; out_len];
        if axes.len() == rank && out_len == 1 {
            out[0] = sum_all(x);
        }
        return out;
    }
    let mut strides = vec![1usize; rank];
    for d in (0..rank.saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    // Trailing reduced axes form one contiguous run.
    let mut run = 1usize;
    let mut first_trailing = rank;
    while first_trailing > 0 && axes.contains(&(first_trailing - 1)) {
        first_trailing -= 1;
        run *= shape[first_trailing];
    }
    let other: Vec<(usize, usize)> = axes
        .iter()
        .filter(|&&d| d < first_trailing)
        .map(|&d| (shape[d], strides[d]))
        .collect();
    let kept: Vec<(usize, usize)> = (0..rank)
        .filter(|d| !axes.contains(d))
        .map(|d| (shape[d], strides[d]))
        .collect();
    let out_len: usize = kept.iter().map(|k| k.0).product();
    let other_count: usize = other.iter().map(|o| o.0).product();
    let one = |o: usize| -> f32 {
        let mut base = 0usize;
        let mut rem = o;
        for &(n, s) in kept.iter().rev() {
            base += (rem % n) * s;
            rem /= n;
        }
        let mut acc = 0.0f64;
        for r in 0..other_count {
            let mut off = base;
            let mut rem = r;
            for &(n, s) in other.iter().rev() {
                off += (rem % n) * s;
                rem /= n;
            }
            acc += sum_f64(&x[off..off + run]);
        }
        acc as f32
    };
    if x.len() < PAR_THRESHOLD {
        (0..out_len).map(one).collect()
    } else {
        (0..out_len).into_par_iter().map(one).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_match_manual_loops() {
        let shape = [2, 3, 4];
        let x: Vec<f32> = (0..24).map(|v| v as f32).collect();
        assert_eq!(sum_axes(&x, &shape, &[0, 1, 2]), vec![276.0]);
        let s0 = sum_axes(&x, &shape, &[0]);
        assert_eq!(s0.len(), 12);
        assert_eq!(s0[0], 0.0 + 12.0);
        let s1 = sum_axes(&x, &shape, &[1]);
        assert_eq!(s1, vec![12.0, 15.0, 18.0, 21.0, 48.0, 51.0, 54.0, 57.0]);
        let s02 = sum_axes(&x, &shape, &[0, 2]);
        let expect: Vec<f32> = (0..3)
            .map(|j| {
                (4 * j..4 * j + 4)
                    .chain(12 + 4 * j..16 + 4 * j)
                    .sum::<usize>() as f32
            })
            .collect();
        assert_eq!(s02, expect);
        let s2 = sum_axes(&x, &shape, &[2]);
        assert_eq!(s2[1], (4 + 5 + 6 + 7) as f32);
    }
}
