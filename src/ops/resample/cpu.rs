//! CPU code of nearest upsampling (rayon over output slices `[plane, z]`).
//!
//! The forward widens each input row once (contiguous, vectorised) and copies it to the other
//! `fh - 1` output rows; the backward sums the `fd * fh` output rows of a block into a
//! contiguous accumulator row, adding in the same order as a scalar loop would.

use super::UpsampleGeometry;
use rayon::prelude::*;

/// Each input element repeated `factor` times per axis.
pub fn forward(x: &[f32], g: &UpsampleGeometry) -> Vec<f32> {
    let [id, ih, iw] = g.input;
    let [od, oh, ow] = g.output();
    let [fd, fh, fw] = g.factor;
    let mut y = crate::ops::alloc::for_overwrite(g.output_len());
    let slice = (oh * ow).max(1);
    let min_len = (8192 / slice).max(1);
    y.par_chunks_mut(slice)
        .with_min_len(min_len)
        .enumerate()
        .for_each(|(zs, ys)| {
            let (p, zo) = (zs / od, zs % od);
            let xs = &x[(p * id + zo / fd) * ih * iw..][..ih * iw];
            for (r, xr) in xs.chunks_exact(iw).enumerate() {
                let block = &mut ys[r * fh * ow..(r + 1) * fh * ow];
                let (first, rest) = block.split_at_mut(ow);
                if fw == 2 {
                    for (pair, &v) in first.chunks_exact_mut(2).zip(xr) {
                        pair[0] = v;
                        pair[1] = v;
                    }
                } else {
                    for (run, &v) in first.chunks_exact_mut(fw).zip(xr) {
                        run.fill(v);
                    }
                }
                for dst in rest.chunks_exact_mut(ow) {
                    dst.copy_from_slice(first);
                }
            }
        });
    y
}

/// Sum of the output gradients of each block.
pub fn backward(gy: &[f32], g: &UpsampleGeometry) -> Vec<f32> {
    let [id, ih, iw] = g.input;
    let [od, oh, ow] = g.output();
    let [fd, fh, fw] = g.factor;
    let mut gx = crate::ops::alloc::zeroed(g.input_len());
    let slice = (ih * iw).max(1);
    let min_len = (4096 / slice).max(1);
    gx.par_chunks_mut(slice)
        .with_min_len(min_len)
        .enumerate()
        .for_each(|(zs, gs)| {
            let (p, zi) = (zs / id, zs % id);
            for (r, gr) in gs.chunks_exact_mut(iw).enumerate() {
                for a in 0..fd {
                    for b in 0..fh {
                        let src = ((p * od + zi * fd + a) * oh + r * fh + b) * ow;
                        let row = &gy[src..src + ow];
                        if fw == 2 {
                            for (v, pair) in gr.iter_mut().zip(row.chunks_exact(2)) {
                                *v = *v + pair[0] + pair[1];
                            }
                        } else {
                            for (v, run) in gr.iter_mut().zip(row.chunks_exact(fw)) {
                                for &e in run {
                                    *v += e;
                                }
                            }
                        }
                    }
                }
            }
        });
    gx
}
