//! CPU code of the convolution primitives: tiled im2col + single-threaded `gemm` crate calls
//! (`Parallelism::None`; its AVX-512 micro-kernels measured 5-20% faster per CPU-second than
//! `matrixmultiply::sgemm` on every call site here, up to 3x on backward_weight of 1-channel
//! inputs), with rayon parallelism over (sample, output tile) pairs.
//!
//! * `forward`: per tile, `y[n, :, tile] = W[O, C*K] x col[C*K, tile]`, written in place.
//! * `backward_data`: for unit strides a gather — the gradient is itself a convolution of `gy`
//!   with the flipped, transposed kernel, so it runs through the forward path and parallelises
//!   over input tiles with no scatter at all. Other strides compute `W^T x gy` per tile and
//!   add it back with col2im; tasks own disjoint (sample, channel block) slices of the result,
//!   so there is no race.
//! * `backward_weight`: `gw += gy[n, :, tile] x col^T` accumulated over a fixed partition of
//!   the tiles into chunks, then the chunk partials are summed in order.
//!
//! Every partition depends on the geometry only, never on the thread count, so results are
//! bit-identical whatever the size of the rayon pool.

use super::im2col::{col2im_add, im2col, segments, Plan, Segment};
use super::ConvGeometry;
use rayon::prelude::*;

/// Floats the column matrix of one forward / backward-data tile may hold (256 KiB).
const TILE_BUDGET: usize = 1 << 18;
/// Floats of the column matrix of one backward-weight tile (its GEMM depth is the tile length,
/// so longer tiles pay off there).
const WEIGHT_TILE_BUDGET: usize = 1 << 18;
/// Fewest input channels for which unit-stride `backward_data` uses the gather formulation.
const GATHER_MIN_CHANNELS: usize = 8;
/// Granularity of the backward-weight tile (its GEMM depth).
const GEMM_DEPTH_BLOCK: usize = 256;
/// Upper bound on the chunks (partial weight gradients) of `backward_weight`.
const MAX_WEIGHT_CHUNKS: usize = 64;
/// Upper bound on the floats held by all partial weight gradients together.
const WEIGHT_PARTIALS_BUDGET: usize = 1 << 23;

/// A raw pointer that tasks writing disjoint parts of one buffer can share.
#[derive(Clone, Copy)]
pub(super) struct SharedMut(pub(super) *mut f32);
// SAFETY: only used by tasks that write provably disjoint index ranges.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}
impl SharedMut {
    pub(super) fn get(self) -> *mut f32 {
        self.0
    }
}

/// A strided view of a matrix for [`gemm`].
#[derive(Clone, Copy)]
struct Mat {
    ptr: *const f32,
    rs: usize,
    cs: usize,
}

/// `c[m, n] = a[m, k] x b[k, n] + beta * c` (single-threaded `gemm::gemm`; `beta` is 0 or 1).
///
/// # Safety
/// Every view must be valid for its extent (`(m-1)*rs + (k-1)*cs` etc.) and `c` must not alias
/// `a` or `b`.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: Mat,
    b: Mat,
    beta: f32,
    c: *mut f32,
    rsc: usize,
    csc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                let p = c.add(i * rsc + j * csc);
                *p *= beta;
            }
        }
        return;
    }
    gemm::gemm(
        m,
        n,
        k,
        c,
        csc as isize,
        rsc as isize,
        beta != 0.0,
        a.ptr,
        a.cs as isize,
        a.rs as isize,
        b.ptr,
        b.cs as isize,
        b.rs as isize,
        beta,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

/// Scratch of one worker: the column matrix and the row segments of a tile.
#[derive(Default)]
struct Scratch {
    col: Vec<f32>,
    segs: Vec<Segment>,
}

impl Scratch {
    fn col(&mut self, len: usize) -> &mut [f32] {
        if self.col.len() < len {
            self.col.resize(len, 0.0);
        }
        &mut self.col[..len]
    }
}

/// The convolution `y[n, o, p] = b[o] + sum_r wmat[o, r] col_n[r, p]` over `batch` samples of
/// `x` (`[batch, plan.channels, input...]`) into `y` (`[batch, out_channels, output...]`),
/// followed by LeakyReLU when `leaky` gives its slope.
#[allow(clippy::too_many_arguments)]
fn forward_plan(
    x: &[f32],
    wmat: &[f32],
    bias: Option<&[f32]>,
    leaky: Option<f32>,
    plan: &Plan,
    batch: usize,
    out_channels: usize,
    y: &mut [f32],
) {
    let (rows, p, s) = (plan.rows(), plan.out_len(), plan.in_len());
    let (xs, ys) = (plan.channels * s, out_channels * p);
    debug_assert!(x.len() >= batch * xs && y.len() >= batch * ys);
    debug_assert!(wmat.len() >= out_channels * rows);
    if p == 0 || out_channels == 0 || batch == 0 {
        return;
    }
    if super::direct::forward(x, wmat, bias, leaky, plan, batch, out_channels, y) {
        return;
    }
    let tile = plan.tile_len(TILE_BUDGET);
    let ntiles = p.div_ceil(tile);
    let identity = plan.is_identity();
    let yp = SharedMut(y.as_mut_ptr());
    (0..batch * ntiles)
        .into_par_iter()
        .for_each_init(Scratch::default, |scratch, task| {
            let (n, t) = (task / ntiles, task % ntiles);
            let (p0, p1) = (t * tile, ((t + 1) * tile).min(p));
            let tl = p1 - p0;
            let xn = &x[n * xs..(n + 1) * xs];
            let b = if identity {
                Mat {
                    ptr: xn[p0..].as_ptr(),
                    rs: s,
                    cs: 1,
                }
            } else {
                let mut segs = std::mem::take(&mut scratch.segs);
                segments(plan, p0, p1, &mut segs);
                let col = scratch.col(rows * tl);
                im2col(xn, plan, &segs, tl, col);
                scratch.segs = segs;
                Mat {
                    ptr: scratch.col.as_ptr(),
                    rs: tl,
                    cs: 1,
                }
            };
            let a = Mat {
                ptr: wmat.as_ptr(),
                rs: rows,
                cs: 1,
            };
            // SAFETY: this task alone writes rows 0..O, columns p0..p1 of sample n.
            unsafe {
                let c = yp.get().add(n * ys + p0);
                gemm(out_channels, rows, tl, a, b, 0.0, c, p, 1);
                for o in 0..out_channels {
                    let row = std::slice::from_raw_parts_mut(c.add(o * p), tl);
                    match (bias.map(|b| b[o]), leaky) {
                        (Some(bo), Some(s)) => {
                            row.iter_mut().for_each(|v| *v = leaky_relu(*v + bo, s))
                        }
                        (Some(bo), None) => row.iter_mut().for_each(|v| *v += bo),
                        (None, Some(s)) => row.iter_mut().for_each(|v| *v = leaky_relu(*v, s)),
                        (None, None) => break,
                    }
                }
            }
        });
}

/// LeakyReLU of one value, as the element-wise op computes it.
#[inline]
fn leaky_relu(v: f32, slope: f32) -> f32 {
    if v > 0.0 {
        v
    } else {
        slope * v
    }
}

/// Forward convolution.
pub fn forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &ConvGeometry) -> Vec<f32> {
    forward_leaky_relu(x, w, bias, None, g)
}

/// Forward convolution with the LeakyReLU of slope `leaky` (when given) fused into the store:
/// the same values as [`forward`] followed by the element-wise LeakyReLU, in one pass.
pub fn forward_leaky_relu(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    leaky: Option<f32>,
    g: &ConvGeometry,
) -> Vec<f32> {
    // every output is written (direct kernels and GEMM with beta = 0)
    let mut y = crate::ops::alloc::for_overwrite(g.output_len());
    let plan = Plan::of(g);
    forward_plan(x, w, bias, leaky, &plan, g.batch, g.out_channels, &mut y);
    y
}

/// Gradient with respect to the input.
pub fn backward_data(gy: &[f32], w: &[f32], g: &ConvGeometry) -> Vec<f32> {
    // The gather writes every element (a forward convolution); col2im accumulates.
    let gather = g.stride == [1, 1, 1] && g.in_channels >= GATHER_MIN_CHANNELS;
    let mut gx = if gather {
        crate::ops::alloc::for_overwrite(g.input_len())
    } else {
        crate::ops::alloc::zeroed(g.input_len())
    };
    // The gather's GEMM has `in_channels` rows: too few (e.g. a first layer on one-channel
    // images) waste most of the GEMM micro-kernel, so those take the col2im path.
    if gather {
        backward_data_gather(gy, w, g, &mut gx);
    } else {
        backward_data_col2im(gy, w, g, &mut gx);
    }
    gx
}

/// Unit stride: `gx = conv(gy, flip(w)^T)` with padding `d*(k-1) - pad` (possibly negative).
fn backward_data_gather(gy: &[f32], w: &[f32], g: &ConvGeometry, gx: &mut [f32]) {
    let (c, o) = (g.in_channels, g.out_channels);
    let taps: usize = g.kernel.iter().product();
    // wt[c, o, k'] = w[o, c, taps - 1 - k']
    let mut wt = vec![0.0f32; w.len()];
    for oi in 0..o {
        for ci in 0..c {
            let src = &w[(oi * c + ci) * taps..][..taps];
            let dst = &mut wt[(ci * o + oi) * taps..][..taps];
            for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                *d = *s;
            }
        }
    }
    let plan = Plan {
        channels: o,
        input: g.output,
        output: g.input,
        kernel: g.kernel,
        dilation: g.dilation,
        stride: [1, 1, 1],
        pad: [0, 1, 2]
            .map(|a| (g.dilation[a] * (g.kernel[a] - 1)) as isize - g.pad_before[a] as isize),
    };
    forward_plan(gy, &wt, None, None, &plan, g.batch, c, gx);
}

/// Any stride: per tile `colgrad = W^T x gy`, then col2im. Tasks are (sample, channel block)
/// pairs, each the only writer of its slice of `gx`.
fn backward_data_col2im(gy: &[f32], w: &[f32], g: &ConvGeometry, gx: &mut [f32]) {
    let plan = Plan::of(g);
    let (c, o) = (g.in_channels, g.out_channels);
    let (taps, rows, p, s) = (plan.taps(), plan.rows(), plan.out_len(), plan.in_len());
    if c == 0 || s == 0 || g.batch == 0 {
        return;
    }
    let tile = plan.tile_len(TILE_BUDGET);
    // Enough blocks for parallelism on small batches; fixed by the geometry.
    let blocks = c.min(16usize.div_ceil(g.batch)).max(1);
    let cb = c.div_ceil(blocks);
    let blocks = c.div_ceil(cb);
    let mut parts: Vec<(usize, usize, &mut [f32])> = Vec::with_capacity(g.batch * blocks);
    for (n, gxn) in gx.chunks_mut(c * s).enumerate() {
        for (b, part) in gxn.chunks_mut(cb * s).enumerate() {
            parts.push((n, b, part));
        }
    }
    parts
        .into_par_iter()
        .for_each_init(Scratch::default, |scratch, (n, b, part)| {
            let (c0, nc) = (b * cb, (c - b * cb).min(cb));
            debug_assert!(b < blocks);
            let gyn = &gy[n * o * p..(n + 1) * o * p];
            let mut t0 = 0;
            while t0 < p {
                let t1 = (t0 + tile).min(p);
                let tl = t1 - t0;
                let mut segs = std::mem::take(&mut scratch.segs);
                segments(&plan, t0, t1, &mut segs);
                let col = scratch.col(nc * taps * tl);
                // W^T restricted to the rows of channels c0..c0+nc: a[r, o] = w[o, c0*taps + r].
                let a = Mat {
                    ptr: w[c0 * taps..].as_ptr(),
                    rs: 1,
                    cs: rows,
                };
                let bm = Mat {
                    ptr: gyn[t0..].as_ptr(),
                    rs: p,
                    cs: 1,
                };
                // SAFETY: views lie inside w, gy and the scratch column matrix.
                unsafe { gemm(nc * taps, o, tl, a, bm, 0.0, col.as_mut_ptr(), tl, 1) };
                col2im_add(col, &plan, &segs, tl, nc, part);
                scratch.segs = segs;
                t0 = t1;
            }
        });
}

/// Gradient with respect to the weights.
pub fn backward_weight(x: &[f32], gy: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let plan = Plan::of(g);
    let (o, rows, p, s) = (g.out_channels, plan.rows(), plan.out_len(), plan.in_len());
    let wlen = o * rows;
    if wlen == 0 || p == 0 || g.batch == 0 {
        return vec![0.0; wlen];
    }
    if let Some(gw) = super::direct::backward_weight(x, gy, &plan, g.batch, o) {
        return gw;
    }
    let (xs, ys) = (plan.channels * s, o * p);
    let mut tile = plan.tile_len(WEIGHT_TILE_BUDGET);
    if tile > GEMM_DEPTH_BLOCK {
        // The tile is the GEMM depth here: keep it a multiple of a cache-friendly depth block.
        tile -= tile % GEMM_DEPTH_BLOCK;
    }
    let ntiles = p.div_ceil(tile);
    let tasks = g.batch * ntiles;
    let chunks = tasks
        .min(MAX_WEIGHT_CHUNKS)
        .min((WEIGHT_PARTIALS_BUDGET / wlen).max(1));
    let per_chunk = tasks.div_ceil(chunks);
    let chunks = tasks.div_ceil(per_chunk);
    let identity = plan.is_identity();
    let partials: Vec<Vec<f32>> = (0..chunks)
        .into_par_iter()
        .map_init(Scratch::default, |scratch, ch| {
            let mut acc = vec![0.0f32; wlen];
            for task in ch * per_chunk..((ch + 1) * per_chunk).min(tasks) {
                let (n, t) = (task / ntiles, task % ntiles);
                let (p0, p1) = (t * tile, ((t + 1) * tile).min(p));
                let tl = p1 - p0;
                let xn = &x[n * xs..(n + 1) * xs];
                // gw[o, r] += gy[o, position] x col^T[position, r]
                let b = if identity {
                    Mat {
                        ptr: xn[p0..].as_ptr(),
                        rs: 1,
                        cs: s,
                    }
                } else {
                    let mut segs = std::mem::take(&mut scratch.segs);
                    segments(&plan, p0, p1, &mut segs);
                    let col = scratch.col(rows * tl);
                    im2col(xn, &plan, &segs, tl, col);
                    scratch.segs = segs;
                    Mat {
                        ptr: scratch.col.as_ptr(),
                        rs: 1,
                        cs: tl,
                    }
                };
                let a = Mat {
                    ptr: gy[n * ys + p0..].as_ptr(),
                    rs: p,
                    cs: 1,
                };
                // SAFETY: views lie inside gy, x / the scratch, and acc (o x rows).
                unsafe { gemm(o, tl, rows, a, b, 1.0, acc.as_mut_ptr(), rows, 1) };
            }
            acc
        })
        .collect();
    let mut iter = partials.into_iter();
    let mut gw = iter.next().unwrap_or_else(|| vec![0.0; wlen]);
    for part in iter {
        gw.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
    }
    gw
}
