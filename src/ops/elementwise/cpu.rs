//! CPU code of the element-wise operations.

use super::{broadcast_strides, BinaryOp, UnaryOp};
use crate::ops::PAR_THRESHOLD;
use rayon::prelude::*;

const CHUNK: usize = 1 << 14;

/// `f(x)` for every element into `out` (parallel over chunks for large inputs).
fn map1(out: &mut [f32], x: &[f32], f: impl Fn(f32) -> f32 + Sync) {
    let body = |o: &mut [f32], xs: &[f32]| o.iter_mut().zip(xs).for_each(|(o, &v)| *o = f(v));
    if x.len() < PAR_THRESHOLD {
        body(out, x);
    } else {
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(o, xs)| body(o, xs));
    }
}

/// `f(x, g)` for every pair of elements into `out`.
fn map2(out: &mut [f32], x: &[f32], g: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) {
    let body = |o: &mut [f32], xs: &[f32], gs: &[f32]| {
        for ((o, &v), &g) in o.iter_mut().zip(xs).zip(gs) {
            *o = f(v, g);
        }
    };
    if x.len() < PAR_THRESHOLD {
        body(out, x, g);
    } else {
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
            .for_each(|(o, (xs, gs))| body(o, xs, gs));
    }
}

/// `op(x)` for every element. The activations get loops of their own (the generic loop
/// matches `op` per element, which keeps it scalar).
pub fn unary(op: UnaryOp, x: &[f32]) -> Vec<f32> {
    let mut out = crate::ops::alloc::for_overwrite(x.len());
    match op {
        UnaryOp::LeakyRelu(s) => map1(&mut out, x, |v| if v > 0.0 { v } else { s * v }),
        UnaryOp::Relu => map1(&mut out, x, |v| if v > 0.0 { v } else { 0.0 }),
        _ => map1(&mut out, x, |v| op.apply(v)),
    }
    out
}

/// `gy * op'(x)` for every element (activations specialised as in [`unary`]).
pub fn unary_backward(op: UnaryOp, x: &[f32], gy: &[f32]) -> Vec<f32> {
    let mut out = crate::ops::alloc::for_overwrite(x.len());
    match op {
        UnaryOp::LeakyRelu(s) => map2(&mut out, x, gy, |v, g| if v > 0.0 { g } else { s * g }),
        UnaryOp::Relu => map2(&mut out, x, gy, |v, g| if v > 0.0 { g } else { g * 0.0 }),
        _ => map2(&mut out, x, gy, |v, g| g * op.derivative(v)),
    }
    out
}

/// `op(a, b)` with broadcasting; the shapes have equal rank.
pub fn binary(
    op: BinaryOp,
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    out_shape: &[usize],
) -> Vec<f32> {
    let n: usize = out_shape.iter().product();
    let mut out = crate::ops::alloc::for_overwrite(n);
    if a_shape == b_shape {
        let body = |o: &mut [f32], xs: &[f32], ys: &[f32]| {
            for ((o, &x), &y) in o.iter_mut().zip(xs).zip(ys) {
                *o = op.apply(x, y);
            }
        };
        if n < PAR_THRESHOLD {
            body(&mut out, a, b);
        } else {
            out.par_chunks_mut(CHUNK)
                .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
                .for_each(|(o, (xs, ys))| body(o, xs, ys));
        }
        return out;
    }
    if b.len() == 1 {
        let y = b[0];
        out.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK))
            .for_each(|(o, xs)| o.iter_mut().zip(xs).for_each(|(o, &x)| *o = op.apply(x, y)));
        return out;
    }
    // General case: walk the output row by row (last axis), with strided operands.
    let rank = out_shape.len();
    let sa = broadcast_strides(a_shape, out_shape);
    let sb = broadcast_strides(b_shape, out_shape);
    let row = out_shape[rank - 1].max(1);
    let (sa_last, sb_last) = (sa[rank - 1], sb[rank - 1]);
    let fill_row = |r: usize, o: &mut [f32]| {
        // Decompose the row index into the leading coordinates.
        let mut rem = r;
        let (mut ia, mut ib) = (0usize, 0usize);
        for d in (0..rank - 1).rev() {
            let c = rem % out_shape[d];
            rem /= out_shape[d];
            ia += c * sa[d];
            ib += c * sb[d];
        }
        for (j, o) in o.iter_mut().enumerate() {
            *o = op.apply(a[ia + j * sa_last], b[ib + j * sb_last]);
        }
    };
    if n < PAR_THRESHOLD {
        out.chunks_mut(row)
            .enumerate()
            .for_each(|(r, o)| fill_row(r, o));
    } else {
        out.par_chunks_mut(row)
            .enumerate()
            .for_each(|(r, o)| fill_row(r, o));
    }
    out
}
