//! CPU code of the axis filter (rayon over the outer dimension).

use super::AxisFilter;
use rayon::prelude::*;

/// Applies the filter (or its adjoint) along the axis.
pub fn filter_axis(x: &[f32], f: &AxisFilter) -> Vec<f32> {
    let out_len = f.out_len();
    let inner = f.inner;
    let t = f.taps.len();
    let mut y = vec![0.0f32; f.outer * out_len * inner];
    if y.is_empty() {
        return y;
    }
    y.par_chunks_mut(out_len * inner)
        .enumerate()
        .for_each(|(o, yo)| {
            let xo = &x[o * f.len * inner..(o + 1) * f.len * inner];
            for i in 0..out_len {
                let yr = &mut yo[i * inner..(i + 1) * inner];
                for (k, &tap) in f.taps.iter().enumerate() {
                    let src = if f.adjoint {
                        // y[i] = sum_k taps[k] x[i - k]
                        if i < k || i - k >= f.len {
                            continue;
                        }
                        i - k
                    } else {
                        i + k
                    };
                    let xr = &xo[src * inner..(src + 1) * inner];
                    for (yv, &xv) in yr.iter_mut().zip(xr) {
                        *yv += tap * xv;
                    }
                }
            }
            let _ = t;
        });
    y
}
