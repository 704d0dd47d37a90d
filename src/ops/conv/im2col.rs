//! Tiled im2col / col2im: the lowering of a convolution to matrix products.
//!
//! A *tile* is a contiguous range `[p0, p1)` of flattened output positions of one sample. Its
//! column matrix has one row per (input channel, kernel tap) pair, `C * kD * kH * kW` rows, and
//! one column per output position of the tile, so the convolution of the tile is the product
//! `W[O, C*K] x col[C*K, T]`. Tiles keep that matrix small (a few hundred KiB) however large the
//! volume, instead of the `C*K*P` floats a whole-sample lowering would need.

use super::ConvGeometry;

/// Convolution geometry with signed padding, the form the lowering works on. Negative padding
/// appears when the gradient of a stride-1 convolution is computed as a convolution.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Channels of the tensor being lowered.
    pub channels: usize,
    /// Spatial size (D, H, W) of the tensor being lowered.
    pub input: [usize; 3],
    /// Spatial size of the output positions.
    pub output: [usize; 3],
    /// Kernel size per axis.
    pub kernel: [usize; 3],
    /// Dilation per axis.
    pub dilation: [usize; 3],
    /// Stride per axis.
    pub stride: [usize; 3],
    /// Padding before the first element (may be negative).
    pub pad: [isize; 3],
}

impl Plan {
    /// The lowering of the input of the convolution `g`.
    pub fn of(g: &ConvGeometry) -> Self {
        Plan {
            channels: g.in_channels,
            input: g.input,
            output: g.output,
            kernel: g.kernel,
            dilation: g.dilation,
            stride: g.stride,
            pad: g.pad_before.map(|p| p as isize),
        }
    }

    /// Kernel taps per channel.
    pub fn taps(&self) -> usize {
        self.kernel.iter().product()
    }

    /// Rows of the column matrix: channels times taps.
    pub fn rows(&self) -> usize {
        self.channels * self.taps()
    }

    /// Output positions per sample.
    pub fn out_len(&self) -> usize {
        self.output.iter().product()
    }

    /// Input elements per channel.
    pub fn in_len(&self) -> usize {
        self.input.iter().product()
    }

    /// True when the column matrix of a tile is the input itself (1x1x1 kernel, unit stride,
    /// no padding, output the size of the input), so no lowering is needed.
    pub fn is_identity(&self) -> bool {
        self.kernel == [1, 1, 1]
            && self.stride == [1, 1, 1]
            && self.pad == [0, 0, 0]
            && self.output == self.input
    }

    /// Output positions per tile: a pure function of the geometry (never of the thread count),
    /// so that sums over tiles always happen in the same order. `budget` is the number of floats
    /// the column matrix of a tile may hold.
    pub fn tile_len(&self, budget: usize) -> usize {
        let p = self.out_len().max(1);
        let mut t = (budget / self.rows().max(1)).max(32);
        let ow = self.output[2].max(1);
        if t >= ow {
            // Whole output rows: fewer, longer segments.
            t -= t % ow;
        }
        t.min(p)
    }

    /// For kernel tap `k` along `axis`, the output positions whose source lies inside the
    /// input: `lo..hi` (empty when `lo >= hi`).
    fn valid_range(&self, axis: usize, k: usize) -> (usize, usize) {
        let off = (k * self.dilation[axis]) as isize - self.pad[axis];
        let s = self.stride[axis] as isize;
        let n_out = self.output[axis] as isize;
        let last = self.input[axis] as isize - 1 - off;
        if last < 0 {
            return (0, 0);
        }
        let lo = if off < 0 { (-off + s - 1) / s } else { 0 };
        let hi = (last / s + 1).min(n_out);
        (lo.min(n_out) as usize, hi.max(0) as usize)
    }

    /// Source coordinate of output `o`, tap `k` along `axis` (may be outside the input).
    #[inline]
    fn source(&self, axis: usize, o: usize, k: usize) -> isize {
        (o * self.stride[axis] + k * self.dilation[axis]) as isize - self.pad[axis]
    }
}

/// A run of consecutive output positions along W inside one output row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segment {
    oz: usize,
    oy: usize,
    ox: usize,
    len: usize,
    /// Column of the tile where the run starts.
    t: usize,
}

/// Splits the output positions `p0..p1` into row segments, reusing `out`'s allocation.
pub(crate) fn segments(plan: &Plan, p0: usize, p1: usize, out: &mut Vec<Segment>) {
    out.clear();
    let [_, oh, ow] = plan.output;
    let mut p = p0;
    while p < p1 {
        let (oz, rem) = (p / (oh * ow), p % (oh * ow));
        let (oy, ox) = (rem / ow, rem % ow);
        let len = (ow - ox).min(p1 - p);
        out.push(Segment {
            oz,
            oy,
            ox,
            len,
            t: p - p0,
        });
        p += len;
    }
}

/// Per-tap precomputation along W: valid output range and source offset.
struct WTap {
    lo: usize,
    hi: usize,
    off: isize,
}

fn w_taps(plan: &Plan) -> Vec<WTap> {
    (0..plan.kernel[2])
        .map(|k| {
            let (lo, hi) = plan.valid_range(2, k);
            WTap {
                lo,
                hi,
                off: (k * plan.dilation[2]) as isize - plan.pad[2],
            }
        })
        .collect()
}

/// Writes the column matrix of the tile described by `segs` (`tl` columns) into `col`
/// (`plan.rows() * tl` floats). `x` is one sample, `[C, D, H, W]`.
pub(crate) fn im2col(x: &[f32], plan: &Plan, segs: &[Segment], tl: usize, col: &mut [f32]) {
    let [id, ih, iw] = plan.input;
    let [kd, kh, _] = plan.kernel;
    let sx = plan.stride[2];
    let spatial = plan.in_len();
    let wt = w_taps(plan);
    let mut rows = col[..plan.rows() * tl].chunks_exact_mut(tl);
    for c in 0..plan.channels {
        let xc = &x[c * spatial..(c + 1) * spatial];
        for kz in 0..kd {
            for ky in 0..kh {
                for tap in &wt {
                    let dst = rows.next().expect("row count");
                    for s in segs {
                        let d = &mut dst[s.t..s.t + s.len];
                        let iz = plan.source(0, s.oz, kz);
                        let iy = plan.source(1, s.oy, ky);
                        if iz < 0 || iz >= id as isize || iy < 0 || iy >= ih as isize {
                            d.fill(0.0);
                            continue;
                        }
                        let line = &xc[(iz as usize * ih + iy as usize) * iw..][..iw];
                        let (a, b) = (s.ox, s.ox + s.len);
                        let vlo = tap.lo.clamp(a, b);
                        let vhi = tap.hi.clamp(vlo, b);
                        d[..vlo - a].fill(0.0);
                        d[vhi - a..].fill(0.0);
                        let valid = &mut d[vlo - a..vhi - a];
                        let start = (vlo * sx) as isize + tap.off;
                        if valid.is_empty() {
                            continue;
                        }
                        let start = start as usize;
                        if sx == 1 {
                            valid.copy_from_slice(&line[start..start + valid.len()]);
                        } else {
                            for (j, v) in valid.iter_mut().enumerate() {
                                *v = line[start + j * sx];
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Adds the column matrix `col` of the tile `segs` back onto the sample `x` (`[C, D, H, W]`),
/// the adjoint of [`im2col`]. Only channels `c0..c0 + channels` are touched: `col` holds the
/// rows of those channels and `x` starts at channel `c0`.
pub(crate) fn col2im_add(
    col: &[f32],
    plan: &Plan,
    segs: &[Segment],
    tl: usize,
    channels: usize,
    x: &mut [f32],
) {
    let [id, ih, iw] = plan.input;
    let [kd, kh, _] = plan.kernel;
    let sx = plan.stride[2];
    let spatial = plan.in_len();
    let wt = w_taps(plan);
    let mut rows = col[..channels * plan.taps() * tl].chunks_exact(tl);
    for c in 0..channels {
        let xc = &mut x[c * spatial..(c + 1) * spatial];
        for kz in 0..kd {
            for ky in 0..kh {
                for tap in &wt {
                    let src = rows.next().expect("row count");
                    for s in segs {
                        let iz = plan.source(0, s.oz, kz);
                        let iy = plan.source(1, s.oy, ky);
                        if iz < 0 || iz >= id as isize || iy < 0 || iy >= ih as isize {
                            continue;
                        }
                        let line = &mut xc[(iz as usize * ih + iy as usize) * iw..][..iw];
                        let (a, b) = (s.ox, s.ox + s.len);
                        let vlo = tap.lo.clamp(a, b);
                        let vhi = tap.hi.clamp(vlo, b);
                        if vlo == vhi {
                            continue;
                        }
                        let part = &src[s.t + vlo - a..s.t + vhi - a];
                        let start = ((vlo * sx) as isize + tap.off) as usize;
                        if sx == 1 {
                            for (l, v) in line[start..start + part.len()].iter_mut().zip(part) {
                                *l += v;
                            }
                        } else {
                            for (j, v) in part.iter().enumerate() {
                                line[start + j * sx] += v;
                            }
                        }
                    }
                }
            }
        }
    }
}
