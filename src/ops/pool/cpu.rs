//! CPU code of max-pooling (rayon over planes).

use super::PoolGeometry;
use rayon::prelude::*;

/// Pooled values and the argmax slot (row-major index inside the window, as f32).
pub fn forward(x: &[f32], g: &PoolGeometry) -> (Vec<f32>, Vec<f32>) {
    let [id, ih, iw] = g.input;
    let [od, oh, ow] = g.output;
    let [wd, wh, ww] = g.window;
    let in_plane = id * ih * iw;
    let out_plane = od * oh * ow;
    let mut y = vec![0.0f32; g.output_len()];
    let mut arg = vec![0.0f32; g.output_len()];
    y.par_chunks_mut(out_plane.max(1))
        .zip(arg.par_chunks_mut(out_plane.max(1)))
        .enumerate()
        .for_each(|(p, (yp, ap))| {
            let xp = &x[p * in_plane..(p + 1) * in_plane];
            for z in 0..od {
                for r in 0..oh {
                    for c in 0..ow {
                        let mut best = f32::NEG_INFINITY;
                        let mut slot = 0usize;
                        let mut s = 0usize;
                        for a in 0..wd {
                            for b in 0..wh {
                                let row = ((z * wd + a) * ih + r * wh + b) * iw + c * ww;
                                for e in 0..ww {
                                    let v = xp[row + e];
                                    // NaN wins so that it propagates instead of hiding.
                                    if v > best || v.is_nan() && !best.is_nan() {
                                        best = v;
                                        slot = s;
                                    }
                                    s += 1;
                                }
                            }
                        }
                        let o = (z * oh + r) * ow + c;
                        yp[o] = best;
                        ap[o] = slot as f32;
                    }
                }
            }
        });
    (y, arg)
}

/// Routes each output gradient to the input element that won the max.
pub fn backward(gy: &[f32], argmax: &[f32], g: &PoolGeometry) -> Vec<f32> {
    let [id, ih, iw] = g.input;
    let [od, oh, ow] = g.output;
    let [_, wh, ww] = g.window;
    let in_plane = id * ih * iw;
    let out_plane = od * oh * ow;
    let mut gx = vec![0.0f32; g.input_len()];
    gx.par_chunks_mut(in_plane.max(1))
        .enumerate()
        .for_each(|(p, gxp)| {
            for z in 0..od {
                for r in 0..oh {
                    for c in 0..ow {
                        let o = p * out_plane + (z * oh + r) * ow + c;
                        let s = argmax[o] as usize;
                        let (a, rem) = (s / (wh * ww), s % (wh * ww));
                        let (b, e) = (rem / ww, rem % ww);
                        let wd = g.window[0];
                        gxp[((z * wd + a) * ih + r * wh + b) * iw + c * ww + e] += gy[o];
                    }
                }
            }
        });
    gx
}
