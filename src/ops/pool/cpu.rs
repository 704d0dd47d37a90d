//! CPU code of max-pooling (rayon over planes).
//!
//! Both directions work on whole output rows: for each window element (in row-major window
//! order) one contiguous-destination loop over the output columns updates the running max and
//! its slot, which the compiler turns into vector selects. The visiting order of the window
//! elements is the same as a per-output scalar loop, so ties and NaNs resolve identically.

use super::PoolGeometry;
use rayon::prelude::*;

/// Planes per rayon task when planes are small (keeps tasks at a few thousand elements).
fn planes_per_task(in_plane: usize) -> usize {
    (16384 / in_plane.max(1)).max(1)
}

/// Whether `v` replaces the running max `b`: larger, or NaN over a number (NaN wins so that it
/// propagates instead of hiding). Non-short-circuit operators keep the loops branch-free.
#[inline(always)]
fn better(v: f32, b: f32) -> bool {
    (v > b) | (v.is_nan() & !b.is_nan())
}

/// One output row: `best[c]` / `slot[c]` updated with the input row `line` (`c*ww + e`) for
/// window elements `s0 + e`.
#[inline(always)]
fn update_row(best: &mut [f32], slot: &mut [f32], line: &[f32], ww: usize, s0: usize) {
    let n = best.len();
    let (slot, line) = (&mut slot[..n], &line[..n * ww]);
    if ww == 2 {
        let (s0, s1) = (s0 as f32, (s0 + 1) as f32);
        for c in 0..n {
            let (mut b, mut sl) = (best[c], slot[c]);
            let v = line[2 * c];
            let take = better(v, b);
            b = if take { v } else { b };
            sl = if take { s0 } else { sl };
            let v = line[2 * c + 1];
            let take = better(v, b);
            best[c] = if take { v } else { b };
            slot[c] = if take { s1 } else { sl };
        }
        return;
    }
    for e in 0..ww {
        let s = (s0 + e) as f32;
        for (c, (b, sl)) in best.iter_mut().zip(slot.iter_mut()).enumerate() {
            let v = line[c * ww + e];
            let take = better(v, *b);
            *b = if take { v } else { *b };
            *sl = if take { s } else { *sl };
        }
    }
}

/// Pooled values and the argmax slot (row-major index inside the window, as f32).
pub fn forward(x: &[f32], g: &PoolGeometry) -> (Vec<f32>, Vec<f32>) {
    let [id, ih, iw] = g.input;
    let [od, oh, ow] = g.output;
    let [wd, wh, ww] = g.window;
    let in_plane = id * ih * iw;
    let out_plane = (od * oh * ow).max(1);
    let mut y = crate::ops::alloc::for_overwrite(g.output_len());
    let mut arg = crate::ops::alloc::zeroed(g.output_len());
    let ppt = planes_per_task(in_plane);
    y.par_chunks_mut(out_plane * ppt)
        .zip(arg.par_chunks_mut(out_plane * ppt))
        .enumerate()
        .for_each(|(task, (yt, at))| {
            for (q, (yp, ap)) in yt
                .chunks_mut(out_plane)
                .zip(at.chunks_mut(out_plane))
                .enumerate()
            {
                let p = task * ppt + q;
                let xp = &x[p * in_plane..(p + 1) * in_plane];
                for z in 0..od {
                    for r in 0..oh {
                        let o = (z * oh + r) * ow;
                        let (best, slot) = (&mut yp[o..o + ow], &mut ap[o..o + ow]);
                        best.fill(f32::NEG_INFINITY);
                        for a in 0..wd {
                            for b in 0..wh {
                                let row = ((z * wd + a) * ih + r * wh + b) * iw;
                                let line = &xp[row..row + ow * ww];
                                update_row(best, slot, line, ww, (a * wh + b) * ww);
                            }
                        }
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
    let [wd, wh, ww] = g.window;
    let in_plane = (id * ih * iw).max(1);
    let out_plane = od * oh * ow;
    let mut gx = crate::ops::alloc::zeroed(g.input_len());
    let ppt = planes_per_task(in_plane);
    gx.par_chunks_mut(in_plane * ppt)
        .enumerate()
        .for_each(|(task, gxt)| {
            for (q, gxp) in gxt.chunks_mut(in_plane).enumerate() {
                let p = task * ppt + q;
                let gyp = &gy[p * out_plane..(p + 1) * out_plane];
                let ap = &argmax[p * out_plane..(p + 1) * out_plane];
                for z in 0..od {
                    for r in 0..oh {
                        let o = (z * oh + r) * ow;
                        let (gr, sr) = (&gyp[o..o + ow], &ap[o..o + ow]);
                        for a in 0..wd {
                            for b in 0..wh {
                                let row = ((z * wd + a) * ih + r * wh + b) * iw;
                                let line = &mut gxp[row..row + ow * ww];
                                let s0 = (a * wh + b) * ww;
                                if ww == 2 {
                                    let (t0, t1) = (s0 as f32, (s0 + 1) as f32);
                                    for ((pair, &gv), &sv) in
                                        line.chunks_exact_mut(2).zip(gr).zip(sr)
                                    {
                                        pair[0] += if sv == t0 { gv } else { 0.0 };
                                        pair[1] += if sv == t1 { gv } else { 0.0 };
                                    }
                                } else {
                                    for e in 0..ww {
                                        let t = (s0 + e) as f32;
                                        for (c, (&gv, &sv)) in gr.iter().zip(sr).enumerate() {
                                            line[c * ww + e] += if sv == t { gv } else { 0.0 };
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        });
    gx
}
