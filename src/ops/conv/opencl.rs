//! OpenCL launchers of the convolutions (`kernels/conv.cl`, implicit GEMMs).
//!
//! Every operand of the GEMMs is addressed through small host-built index tables (cached by
//! the backend per geometry), so the kernels gather im2col elements without integer
//! divisions. The tile shape is chosen per layer and direction ([`ConvTiles::for_gemm`],
//! cached per geometry); layers with at most 4 output rows use `conv_small_m`.

use super::ConvGeometry;
use crate::backend::opencl::{i32_len, Arg, ClBuffer, ConvTiles, Family, OpenClBackend};
use crate::Result;
use opencl3::memory::{Buffer, ClMem};
use std::sync::Arc;

fn int4(v: [usize; 3], w: usize) -> [i32; 4] {
    [v[0] as i32, v[1] as i32, v[2] as i32, w as i32]
}

/// Rows of `conv_small_m` per work-group row: layers with M up to this skip the tiled kernel.
const SMALL_M: usize = 4;

// Table kinds of the backend's cache.
const T_TAP: u8 = 10; // (c*IV + tap offset, dz, dy, dx) per (c, tap) over x
const T_VOX: u8 = 11; // (origin offset, z0, y0, x0) per output voxel of one batch item
const T_ID: u8 = 13; // identity over C * taps
const T_DTAP: u8 = 14; // backward data: taps over gy
const T_DVOX: u8 = 15; // backward data: (origin offset, z0, y0, x0) per input voxel
const T_DA: u8 = 17; // backward data: o*C*KV + (KV-1-tap) per (o, tap)

fn flat(dims: [usize; 3], z: i64, y: i64, x: i64) -> i64 {
    (z * dims[1] as i64 + y) * dims[2] as i64 + x
}

/// (channel * channel_stride + offset of the tap in a volume of `dims`, dz, dy, dx) per
/// (channel, tap), the taps in kernel order.
fn tap_table(
    g: &ConvGeometry,
    channels: usize,
    channel_stride: usize,
    dims: [usize; 3],
) -> Vec<i32> {
    let [kd, kh, kw] = g.kernel;
    let mut t = Vec::with_capacity(channels * kd * kh * kw * 4);
    for c in 0..channels {
        for a in 0..kd {
            for b in 0..kh {
                for e in 0..kw {
                    let (z, y, x) = (
                        (a * g.dilation[0]) as i64,
                        (b * g.dilation[1]) as i64,
                        (e * g.dilation[2]) as i64,
                    );
                    let off = (c * channel_stride) as i64 + flat(dims, z, y, x);
                    t.extend_from_slice(&[off as i32, z as i32, y as i32, x as i32]);
                }
            }
        }
    }
    t
}

/// Window origins (flat origin, z0, y0, x0) of every voxel of a grid `grid` over a volume
/// `dims` (one batch item): origin = voxel * stride - pad.
fn origin_table(grid: [usize; 3], dims: [usize; 3], stride: [usize; 3], pad: [i64; 3]) -> Vec<i32> {
    let mut t = Vec::with_capacity(grid.iter().product::<usize>() * 4);
    {
        for oz in 0..grid[0] {
            let z = (oz * stride[0]) as i64 - pad[0];
            for oy in 0..grid[1] {
                let y = (oy * stride[1]) as i64 - pad[1];
                for ox in 0..grid[2] {
                    let x = (ox * stride[2]) as i64 - pad[2];
                    let off = flat(dims, z, y, x);
                    t.extend_from_slice(&[off as i32, z as i32, y as i32, x as i32]);
                }
            }
        }
    }
    t
}

fn check(g: &ConvGeometry, op: &str) -> Result<()> {
    i32_len(g.input_len(), op)?;
    i32_len(g.output_len(), op)?;
    i32_len(g.weight_len(), op)?;
    Ok(())
}

/// One implicit GEMM, `C = A * B` (see `kernels/conv.cl`).
struct Gemm<'a> {
    kind: u8,
    m: usize,
    n: usize,
    k: usize,
    a: &'a ClBuffer,
    atab: &'a Buffer<i32>,
    a_ms: usize,
    x: &'a ClBuffer,
    ktab: &'a Buffer<i32>,
    ntab: &'a Buffer<i32>,
    o_ms: usize,
    bias: Option<&'a ClBuffer>,
    /// LeakyReLU slope applied to the stored outputs (the fused activation of the forward).
    leaky: Option<f32>,
    /// Dimensions of the gathered volume.
    dims: [usize; 3],
    /// The batch runs along K (backward_weight) rather than N.
    kb: bool,
    /// Voxels per batch item along the batched axis.
    p: usize,
    /// Batch strides of x, of a (kb) and of the output (not kb).
    xbs: usize,
    abs: usize,
    obs: usize,
}

impl Gemm<'_> {
    /// Runs the GEMM into `out` over `splits` slices of K (`splits` > 1 writes `splits`
    /// partial M x N results one after another), on the layer's tile plan.
    fn run(
        &self,
        be: &OpenClBackend,
        g: &ConvGeometry,
        out: &ClBuffer,
        splits: usize,
    ) -> Result<()> {
        if splits == 1 && self.m <= SMALL_M && !self.kb {
            return self.run_small_m(be, out);
        }
        let t = self.plan(be, g, |t| self.run_tiled(be, out, splits, t))?;
        self.run_tiled(be, out, splits, t)
    }

    /// The tile shape of this GEMM: the heuristic one, or the fastest `trial` run when the
    /// device autotunes.
    fn plan(
        &self,
        be: &OpenClBackend,
        g: &ConvGeometry,
        trial: impl FnMut(ConvTiles) -> Result<()>,
    ) -> Result<ConvTiles> {
        let heuristic = ConvTiles::for_gemm(self.m, self.n, be.limits());
        be.conv_plan(self.kind, g, heuristic, trial)
    }

    /// `conv_small_m`: one work-item per column holding all (at most `SMALL_M`) rows.
    fn run_small_m(&self, be: &OpenClBackend, out: &ClBuffer) -> Result<()> {
        let op = "conv";
        let (m, n, k) = (self.m, self.n, self.k);
        let wg = be.limits().wg1.min(256);
        be.launch(
            Family::Conv,
            "conv_small_m",
            &[
                Arg::Buf(self.a),
                Arg::Mem(self.atab.get()),
                Arg::I32(i32_len(self.a_ms, op)?),
                Arg::Buf(self.x),
                Arg::Mem(self.ktab.get()),
                Arg::Mem(self.ntab.get()),
                Arg::Buf(out),
                Arg::I32(i32_len(self.o_ms, op)?),
                Arg::Buf(self.bias.unwrap_or(self.a)),
                Arg::I32(self.bias.is_some() as i32),
                Arg::I32(i32_len(m, op)?),
                Arg::I32(i32_len(n, op)?),
                Arg::I32(i32_len(k, op)?),
                Arg::Int4(int4(self.dims, 0)),
                Arg::I32(i32_len(self.p.max(1), op)?),
                Arg::I32(i32_len(self.xbs, op)?),
                Arg::I32(i32_len(self.obs, op)?),
                Arg::I32(self.leaky.is_some() as i32),
                Arg::F32(self.leaky.unwrap_or(0.0)),
            ],
            &[n, m.div_ceil(SMALL_M)],
            Some(&[wg, 1]),
        )
    }

    /// `conv_gemm` with tiles `t`.
    fn run_tiled(
        &self,
        be: &OpenClBackend,
        out: &ClBuffer,
        splits: usize,
        t: ConvTiles,
    ) -> Result<()> {
        let op = "conv";
        let (m, n, k) = (self.m, self.n, self.k);
        let kchunk = k.div_ceil(splits).div_ceil(t.tk) * t.tk;
        let (ntx, nty) = (t.tn / t.rn, t.tm / t.rm);
        be.launch_tiled(
            Family::Conv,
            t,
            "conv_gemm",
            &[
                Arg::Buf(self.a),
                Arg::Mem(self.atab.get()),
                Arg::I32(i32_len(self.a_ms, op)?),
                Arg::Buf(self.x),
                Arg::Mem(self.ktab.get()),
                Arg::Mem(self.ntab.get()),
                Arg::Buf(out),
                Arg::I32(i32_len(self.o_ms, op)?),
                Arg::I32(i32_len(m * n, op)?),
                Arg::Buf(self.bias.unwrap_or(self.a)),
                Arg::I32(self.bias.is_some() as i32),
                Arg::I32(i32_len(m, op)?),
                Arg::I32(i32_len(n, op)?),
                Arg::I32(i32_len(k, op)?),
                Arg::I32(i32_len(kchunk.max(1), op)?),
                Arg::Int4(int4(self.dims, 0)),
                Arg::I32(self.kb as i32),
                Arg::I32(i32_len(self.p.max(1), op)?),
                Arg::I32(i32_len(self.xbs, op)?),
                Arg::I32(i32_len(self.abs, op)?),
                Arg::I32(i32_len(self.obs, op)?),
                Arg::I32(self.leaky.is_some() as i32),
                Arg::F32(self.leaky.unwrap_or(0.0)),
            ],
            &[n.div_ceil(t.tn) * ntx, m.div_ceil(t.tm) * nty, splits],
            Some(&[ntx, nty, 1]),
        )
    }
}

/// A cached device index table.
type Table = Arc<Buffer<i32>>;

/// The forward tables (taps, voxel origins, identity), shared with backward_weight.
fn tables(be: &OpenClBackend, g: &ConvGeometry) -> Result<(Table, Table, Table)> {
    let iv: usize = g.input.iter().product();
    let kv: usize = g.kernel.iter().product();
    let pad = g.pad_before.map(|v| v as i64);
    let tap = be.table(T_TAP, g, || tap_table(g, g.in_channels, iv, g.input))?;
    let vox = be.table(T_VOX, g, || origin_table(g.output, g.input, g.stride, pad))?;
    let id = be.table(T_ID, g, || (0..(g.in_channels * kv) as i32).collect())?;
    Ok((tap, vox, id))
}

/// `y = w * x + b`.
pub fn forward(
    be: &OpenClBackend,
    x: &ClBuffer,
    w: &ClBuffer,
    bias: Option<&ClBuffer>,
    g: &ConvGeometry,
) -> Result<ClBuffer> {
    forward_leaky_relu(be, x, w, bias, None, g)
}

/// `y = w * x + b`, then LeakyReLU of slope `leaky` (when given) in the same kernel.
pub fn forward_leaky_relu(
    be: &OpenClBackend,
    x: &ClBuffer,
    w: &ClBuffer,
    bias: Option<&ClBuffer>,
    leaky: Option<f32>,
    g: &ConvGeometry,
) -> Result<ClBuffer> {
    check(g, "conv")?;
    let p: usize = g.output.iter().product();
    let kv: usize = g.kernel.iter().product();
    let y = be.alloc(g.output_len())?;
    let iv: usize = g.input.iter().product();
    let (tap, vox, id) = tables(be, g)?;
    Gemm {
        kind: 0,
        m: g.out_channels,
        n: g.batch * p,
        k: g.in_channels * kv,
        a: w,
        atab: &id,
        a_ms: g.in_channels * kv,
        x,
        ktab: &tap,
        ntab: &vox,
        o_ms: p,
        bias,
        leaky,
        dims: g.input,
        kb: false,
        p,
        xbs: g.in_channels * iv,
        abs: 0,
        obs: g.out_channels * p,
    }
    .run(be, g, &y, 1)?;
    Ok(y)
}

/// Gradient with respect to the input (the transposed convolution). With unit stride it is the
/// forward GEMM over `gy` with the flipped, transposed kernel and mirrored padding
/// `(k - 1) * dilation - pad_before`; strided layers use `conv_backward_data`.
pub fn backward_data(
    be: &OpenClBackend,
    gy: &ClBuffer,
    w: &ClBuffer,
    g: &ConvGeometry,
) -> Result<ClBuffer> {
    check(g, "conv_backward_data")?;
    let iv: usize = g.input.iter().product();
    let p: usize = g.output.iter().product();
    let kv: usize = g.kernel.iter().product();
    let gx = be.alloc(g.input_len())?;
    if g.stride != [1; 3] {
        return backward_data_strided(be, gy, w, g, gx);
    }
    let (c, o) = (g.in_channels, g.out_channels);
    let tap = be.table(T_DTAP, g, || tap_table(g, o, p, g.output))?;
    let mirrored: [i64; 3] = std::array::from_fn(|i| {
        ((g.kernel[i] - 1) * g.dilation[i]) as i64 - g.pad_before[i] as i64
    });
    let vox = be.table(T_DVOX, g, || {
        origin_table(g.input, g.output, [1; 3], mirrored)
    })?;
    let atab = be.table(T_DA, g, || {
        (0..o)
            .flat_map(|oc| (0..kv).map(move |t| (oc * c * kv + kv - 1 - t) as i32))
            .collect()
    })?;
    Gemm {
        kind: 1,
        m: c,
        n: g.batch * iv,
        k: o * kv,
        a: w,
        atab: &atab,
        a_ms: kv,
        x: gy,
        ktab: &tap,
        ntab: &vox,
        o_ms: iv,
        bias: None,
        leaky: None,
        dims: g.output,
        kb: false,
        p: iv,
        xbs: o * p,
        abs: 0,
        obs: c * iv,
    }
    .run(be, g, &gx, 1)?;
    Ok(gx)
}

/// Strided backward data: the transposed GEMM with stride-divisibility tests, on the device's
/// default tiles.
fn backward_data_strided(
    be: &OpenClBackend,
    gy: &ClBuffer,
    w: &ClBuffer,
    g: &ConvGeometry,
    gx: ClBuffer,
) -> Result<ClBuffer> {
    let iv: usize = g.input.iter().product();
    let p: usize = g.output.iter().product();
    let kv: usize = g.kernel.iter().product();
    let (m, n, k) = (g.in_channels, g.batch * iv, g.out_channels * kv);
    let ktab = be.table(1, g, || {
        let [kd, kh, kw] = g.kernel;
        let mut t = Vec::with_capacity(g.out_channels * kv * 4);
        for o in 0..g.out_channels {
            for a in 0..kd {
                for b in 0..kh {
                    for e in 0..kw {
                        t.extend_from_slice(&[
                            (o * p) as i32,
                            (a * g.dilation[0]) as i32,
                            (b * g.dilation[1]) as i32,
                            (e * g.dilation[2]) as i32,
                        ]);
                    }
                }
            }
        }
        t
    })?;
    let atab = be.table(2, g, || {
        (0..g.out_channels)
            .flat_map(|o| (0..kv).map(move |v| (o * g.in_channels * kv + v) as i32))
            .collect()
    })?;
    let t = be.limits().tiles;
    let (ntx, nty) = (t.tn / t.rn, t.tm / t.rm);
    be.launch(
        Family::Conv,
        "conv_backward_data",
        &[
            Arg::Buf(gy),
            Arg::Buf(w),
            Arg::Buf(&gx),
            Arg::Mem(ktab.get()),
            Arg::Mem(atab.get()),
            Arg::I32(m as i32),
            Arg::I32(n as i32),
            Arg::I32(k as i32),
            Arg::I32(kv as i32),
            Arg::Int4(int4(g.input, g.out_channels)),
            Arg::Int4(int4(g.output, p)),
            Arg::Int4(int4(g.stride, 0)),
            Arg::Int4(int4(g.pad_before, 0)),
        ],
        &[n.div_ceil(t.tn) * ntx, m.div_ceil(t.tm) * nty],
        Some(&[ntx, nty]),
    )?;
    Ok(gx)
}

/// Gradient with respect to the weights: reduces over batch x output voxels, split over
/// enough work-group layers (split-K) to fill every compute unit, then summed.
pub fn backward_weight(
    be: &OpenClBackend,
    x: &ClBuffer,
    gy: &ClBuffer,
    g: &ConvGeometry,
) -> Result<ClBuffer> {
    check(g, "conv_backward_weight")?;
    let p: usize = g.output.iter().product();
    let kv: usize = g.kernel.iter().product();
    let (m, n, k) = (g.out_channels, g.in_channels * kv, g.batch * p);
    let iv: usize = g.input.iter().product();
    let (tap, vox, id) = tables(be, g)?;
    let gemm = Gemm {
        kind: 2,
        m,
        n,
        k,
        a: gy,
        atab: &id,
        a_ms: p,
        x,
        ktab: &vox,
        ntab: &tap,
        o_ms: n,
        bias: None,
        leaky: None,
        dims: g.input,
        kb: true,
        p,
        xbs: g.in_channels * iv,
        abs: m * p,
        obs: 0,
    };
    let t = gemm.plan(be, g, |t| weight_gradient_with(be, &gemm, t).map(drop))?;
    weight_gradient_with(be, &gemm, t)
}

/// The weight-gradient GEMM with tiles `t`: split over enough work-group layers (split-K) to
/// fill every compute unit, the partial results then summed.
fn weight_gradient_with(be: &OpenClBackend, gemm: &Gemm, t: ConvTiles) -> Result<ClBuffer> {
    let (m, n, k) = (gemm.m, gemm.n, gemm.k);
    let blocks = m.div_ceil(t.tm) * n.div_ceil(t.tn);
    // Enough work-groups for ~4 per compute unit and ~1024 work-items per compute unit (the
    // small work-groups of tiny-M layers need many more splits to fill the device).
    let cu = be.limits().compute_units;
    let target = (4 * cu).max(cu * 1024 / t.threads().max(1));
    // At least 8 K-slices per split so the partial sums stay a small fraction of the work.
    let max_splits = k.div_ceil(t.tk * 8).clamp(1, 1024);
    let splits = target.div_ceil(blocks).clamp(1, max_splits);
    let kchunk = k.div_ceil(splits).div_ceil(t.tk) * t.tk;
    let splits = k.div_ceil(kchunk.max(1)).max(1);
    let gw = be.alloc(m * n)?;
    if splits == 1 {
        gemm.run_tiled(be, &gw, 1, t)?;
        return Ok(gw);
    }
    let part = be.alloc(splits * m * n)?;
    gemm.run_tiled(be, &part, splits, t)?;
    let mn = m * n;
    be.launch1(
        Family::Conv,
        "sum_splits",
        &[
            Arg::Buf(&part),
            Arg::Buf(&gw),
            Arg::I32(i32_len(mn, "conv_backward_weight")?),
            Arg::I32(splits as i32),
        ],
        mn,
    )?;
    Ok(gw)
}
