//! Direct (implicit-GEMM) convolution for unit strides: an AVX-512 register-blocked
//! micro-kernel that reads a zero-padded copy of the input and never builds a column matrix.
//!
//! With unit stride, the input of output position `(z, y, x)` at kernel tap `(a, b, e)` in the
//! padded copy lies at `(z, y, x) + (a*dz, b*dy, e*dx)`: a constant offset per tap. A *slot* is
//! 16 consecutive output positions (one 512-bit vector); the forward kernel accumulates
//! `OB` output channels x `V` slots in 24 registers, looping over (input channel, tap) with one
//! vector load per slot and one broadcast weight per channel. The weight gradient runs the same
//! walk with `OB` gradient rows x `TB` (channel, tap) pairs as accumulators, reduced across lanes
//! at the end of each fixed work unit.
//!
//! Slots come in two layouts, whichever wastes fewer lanes:
//! * rows: slots never cross an output row (the last vector of a row is masked); outputs are
//!   written in place;
//! * grid: slots run through the padded (H, W) grid of each output plane, so a vector may span
//!   several short rows; the few lanes that land in padding columns are computed and dropped
//!   (outputs go through a grid-shaped buffer, gradients come from a zero-embedded copy).
//!
//! Every sum runs in an order fixed by the geometry, so results do not depend on the thread
//! count. Used when the CPU has AVX-512F and AVX-512VL (runtime detection;
//! `BRAGG_CONV_DIRECT=0` turns it off) and the slots keep at least half their lanes busy;
//! otherwise the tiled im2col + GEMM path of [`super::cpu`] runs.

use super::cpu::SharedMut;
use super::im2col::Plan;
use crate::ops::alloc::Scratch;
use rayon::prelude::*;
use std::sync::OnceLock;

/// Floats per vector.
const LANES: usize = 16;
/// Output slots per forward task.
const FWD_TASK_SLOTS: usize = 64;
/// Output slots per backward-weight work unit (the span of one lane-reduction).
const BW_UNIT_SLOTS: usize = 128;
/// Upper bound on the partial weight gradients of the backward-weight pass.
const MAX_WEIGHT_CHUNKS: usize = 16;
/// Upper bound on the floats held by all partial weight gradients together.
const WEIGHT_PARTIALS_BUDGET: usize = 1 << 23;
/// Fewest busy lanes (as a fraction of all computed lanes) for the direct path to be used.
const MIN_LANE_EFFICIENCY: f64 = 0.5;
/// Output channels x (channel, tap) pairs per backward-weight micro-kernel call.
const BW_OB: usize = 4;
const BW_TB: usize = 6;

/// True when the direct kernels can run here (AVX-512F and VL) and are not turned off by
/// `BRAGG_CONV_DIRECT=0`.
pub(crate) fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("BRAGG_CONV_DIRECT").map_or(true, |v| v != "0") && detect())
}

#[cfg(target_arch = "x86_64")]
fn detect() -> bool {
    std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vl")
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> bool {
    false
}

/// 16 output positions: offset of the first one in the padded input, in the output (or grid)
/// buffer, and the mask of the positions that exist.
#[derive(Debug, Clone, Copy)]
struct Slot {
    inp: usize,
    out: usize,
    mask: u16,
}

/// The padded input and the slots of one geometry.
#[derive(Debug)]
struct Layout {
    /// Padded spatial size (D', H', W').
    padded: [usize; 3],
    /// Floats per channel of the padded input.
    cs: usize,
    /// Offset of each kernel tap (kz, ky, kx order) in the padded input.
    toff: Vec<usize>,
    slots: Vec<Slot>,
    /// Slots run through the padded grid: outputs go through a `[od, oh, W']` buffer.
    grid: bool,
    /// Floats per channel of the output buffer (`od*oh*ow`, or `od*oh*W'` for the grid).
    out_cs: usize,
    /// Busy lanes / computed lanes.
    efficiency: f64,
}

impl Layout {
    /// `None` for strides other than 1 and empty outputs.
    fn new(plan: &Plan) -> Option<Layout> {
        if plan.stride != [1, 1, 1] || plan.out_len() == 0 || plan.in_len() == 0 {
            return None;
        }
        let [od, oh, ow] = plan.output;
        let [kd, kh, kw] = plan.kernel;
        let [dz, dy, dx] = plan.dilation;
        let padded = [0, 1, 2].map(|a| plan.output[a] + plan.dilation[a] * (plan.kernel[a] - 1));
        let [_, hp, wp] = padded;
        let cs = padded.iter().product();
        let mut toff = Vec::with_capacity(kd * kh * kw);
        for a in 0..kd {
            for b in 0..kh {
                for e in 0..kw {
                    toff.push((a * dz * hp + b * dy) * wp + e * dx);
                }
            }
        }
        let row_lanes = od * oh * ow.div_ceil(LANES) * LANES;
        let span = (oh - 1) * wp + ow;
        let grid_lanes = od * span.div_ceil(LANES) * LANES;
        let grid = grid_lanes < row_lanes;
        let mut slots = Vec::new();
        let tail = |len: usize| -> u16 {
            if len >= LANES {
                u16::MAX
            } else {
                ((1u32 << len) - 1) as u16
            }
        };
        if grid {
            for z in 0..od {
                for q in (0..span).step_by(LANES) {
                    slots.push(Slot {
                        inp: z * hp * wp + q,
                        out: z * oh * wp + q,
                        mask: tail(span - q),
                    });
                }
            }
        } else {
            for z in 0..od {
                for y in 0..oh {
                    for x in (0..ow).step_by(LANES) {
                        slots.push(Slot {
                            inp: (z * hp + y) * wp + x,
                            out: (z * oh + y) * ow + x,
                            mask: tail(ow - x),
                        });
                    }
                }
            }
        }
        let useful = (od * oh * ow) as f64;
        Some(Layout {
            padded,
            cs,
            toff,
            slots,
            grid,
            out_cs: if grid { od * oh * wp } else { od * oh * ow },
            efficiency: useful / grid_lanes.min(row_lanes) as f64,
        })
    }
}

/// The zero-padded copy of `batch` samples of `x` (`[batch, C, input...]`), `[batch, C, D', H', W']`.
fn pad_input(x: &[f32], plan: &Plan, lay: &Layout, batch: usize) -> Scratch {
    let [id, ih, iw] = plan.input;
    let [dp, hp, wp] = lay.padded;
    let s = plan.in_len();
    let mut xp = Scratch::take(batch * plan.channels * lay.cs);
    let [pz, py, px] = plan.pad;
    // valid W' range of every row
    let lo = px.clamp(0, wp as isize) as usize;
    let hi = (px + iw as isize).clamp(lo as isize, wp as isize) as usize;
    xp.par_chunks_mut(lay.cs)
        .zip(x.par_chunks(s))
        .for_each(|(dst, src)| {
            for zp in 0..dp {
                let z = zp as isize - pz;
                for yp in 0..hp {
                    let y = yp as isize - py;
                    let row = &mut dst[(zp * hp + yp) * wp..][..wp];
                    if z < 0 || z >= id as isize || y < 0 || y >= ih as isize || lo == hi {
                        row.fill(0.0);
                        continue;
                    }
                    let line = &src[(z as usize * ih + y as usize) * iw..][..iw];
                    let off = (lo as isize - px) as usize;
                    row[..lo].fill(0.0);
                    row[lo..hi].copy_from_slice(&line[off..off + hi - lo]);
                    row[hi..].fill(0.0);
                }
            }
        });
    xp
}

/// Output channels per forward block for `o` channels: the fewest wasted lanes, favouring wide
/// blocks (fewer loads per FMA).
fn forward_block(o: usize) -> usize {
    let cost = |ob: usize, penalty: f64| (o.div_ceil(ob) * ob) as f64 * (1.0 + penalty);
    let mut best = (8, cost(8, 0.0));
    for (ob, pen) in [(6, 0.03), (4, 0.08), (2, 0.25)] {
        let c = cost(ob, pen);
        if c < best.1 {
            best = (ob, c);
        }
    }
    best.0
}

/// Direct forward convolution `y[n, o, p] = b[o] + sum_r wmat[o, r] col_n[r, p]` (the product
/// the im2col path computes). Returns false, writing nothing, when the direct path does not
/// apply (no AVX-512, stride other than 1, too many idle lanes).
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward(
    x: &[f32],
    wmat: &[f32],
    bias: Option<&[f32]>,
    leaky: Option<f32>,
    plan: &Plan,
    batch: usize,
    out_channels: usize,
    y: &mut [f32],
) -> bool {
    forward_impl(x, wmat, bias, leaky, plan, batch, out_channels, y, false)
}

/// [`forward`], optionally whatever the lane efficiency (`force`); `leaky` = Some(slope)
/// applies LeakyReLU to the outputs as they are stored.
#[allow(clippy::too_many_arguments)]
fn forward_impl(
    x: &[f32],
    wmat: &[f32],
    bias: Option<&[f32]>,
    leaky: Option<f32>,
    plan: &Plan,
    batch: usize,
    out_channels: usize,
    y: &mut [f32],
    force: bool,
) -> bool {
    if !enabled() || plan.is_identity() || batch == 0 || out_channels == 0 {
        return false;
    }
    let Some(lay) = Layout::new(plan) else {
        return false;
    };
    if !force && lay.efficiency < MIN_LANE_EFFICIENCY {
        return false;
    }
    let (c, taps, p) = (plan.channels, plan.taps(), plan.out_len());
    let rows = c * taps;
    debug_assert!(x.len() >= batch * c * plan.in_len() && y.len() >= batch * out_channels * p);
    debug_assert!(wmat.len() >= out_channels * rows);
    let ob = forward_block(out_channels);
    let nb = out_channels.div_ceil(ob);
    // wp[b][r][j] = wmat[b*ob + j][r], zero past the last channel
    let mut wp = vec![0.0f32; nb * rows * ob];
    for o in 0..out_channels {
        let (b, j) = (o / ob, o % ob);
        for r in 0..rows {
            wp[(b * rows + r) * ob + j] = wmat[o * rows + r];
        }
    }
    let mut bp = vec![0.0f32; nb * ob];
    if let Some(bias) = bias {
        bp[..out_channels].copy_from_slice(&bias[..out_channels]);
    }
    let xp = pad_input(x, plan, &lay, batch);
    // every grid element the crop reads is written by a slot
    let mut grid_buf = Scratch::take(if lay.grid {
        batch * out_channels * lay.out_cs
    } else {
        0
    });
    let out = if lay.grid {
        &mut grid_buf[..]
    } else {
        &mut y[..]
    };
    let out_ptr = SharedMut(out.as_mut_ptr());
    let nchunks = lay.slots.len().div_ceil(FWD_TASK_SLOTS);
    let ocs = lay.out_cs;
    (0..batch * nchunks).into_par_iter().for_each(|task| {
        let (n, ch) = (task / nchunks, task % nchunks);
        let slots =
            &lay.slots[ch * FWD_TASK_SLOTS..((ch + 1) * FWD_TASK_SLOTS).min(lay.slots.len())];
        let xn = &xp[n * c * lay.cs..(n + 1) * c * lay.cs];
        for b in 0..nb {
            let ov = (out_channels - b * ob).min(ob);
            let wb = &wp[b * rows * ob..(b + 1) * rows * ob];
            let bb = &bp[b * ob..(b + 1) * ob];
            // SAFETY: AVX-512F and VL were detected by `enabled`; this task alone writes channels
            // b*ob..b*ob+ov of its slots of sample n, all inside `out`.
            unsafe {
                let yb = out_ptr.get().add((n * out_channels + b * ob) * ocs);
                forward_block_avx512(ob, xn, &lay, c, wb, bb, leaky, slots, yb, ocs, ov);
            }
        }
    });
    if lay.grid {
        let [od, oh, ow] = plan.output;
        let wpd = lay.padded[2];
        y[..batch * out_channels * p]
            .par_chunks_mut(p)
            .zip(grid_buf.par_chunks(ocs))
            .for_each(|(dst, src)| {
                for r in 0..od * oh {
                    dst[r * ow..(r + 1) * ow].copy_from_slice(&src[r * wpd..r * wpd + ow]);
                }
            });
    }
    true
}

/// Runs the forward micro-kernel of block width `ob` over `slots`.
///
/// # Safety
/// AVX-512F and AVX-512VL must be available; `yb` must be valid for `ov` channels of `ocs` floats.
#[allow(clippy::too_many_arguments)]
#[cfg(target_arch = "x86_64")]
unsafe fn forward_block_avx512(
    ob: usize,
    xn: &[f32],
    lay: &Layout,
    c: usize,
    wb: &[f32],
    bb: &[f32],
    leaky: Option<f32>,
    slots: &[Slot],
    yb: *mut f32,
    ocs: usize,
    ov: usize,
) {
    match ob {
        8 => fwd_slots::<8, 3>(xn, lay, c, wb, bb, leaky, slots, yb, ocs, ov),
        6 => fwd_slots::<6, 4>(xn, lay, c, wb, bb, leaky, slots, yb, ocs, ov),
        4 => fwd_slots::<4, 6>(xn, lay, c, wb, bb, leaky, slots, yb, ocs, ov),
        _ => fwd_slots::<2, 12>(xn, lay, c, wb, bb, leaky, slots, yb, ocs, ov),
    }
}

#[allow(clippy::too_many_arguments)]
#[cfg(not(target_arch = "x86_64"))]
unsafe fn forward_block_avx512(
    _: usize,
    _: &[f32],
    _: &Layout,
    _: usize,
    _: &[f32],
    _: &[f32],
    _: Option<f32>,
    _: &[Slot],
    _: *mut f32,
    _: usize,
    _: usize,
) {
    unreachable!("the direct path is only enabled on x86-64 with AVX-512F and VL")
}

/// Groups `slots` by `V` (the last group repeats its final slot) and runs the kernel on each.
#[allow(clippy::too_many_arguments)]
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn fwd_slots<const OB: usize, const V: usize>(
    xn: &[f32],
    lay: &Layout,
    c: usize,
    wb: &[f32],
    bb: &[f32],
    leaky: Option<f32>,
    slots: &[Slot],
    yb: *mut f32,
    ocs: usize,
    ov: usize,
) {
    debug_assert_eq!(wb.len(), c * lay.toff.len() * OB);
    for group in slots.chunks(V) {
        let last = group[group.len() - 1];
        let s: [Slot; V] = std::array::from_fn(|v| *group.get(v).unwrap_or(&last));
        fwd_kernel::<OB, V>(xn.as_ptr(), lay, c, wb.as_ptr(), bb, leaky, &s, yb, ocs, ov);
    }
}

/// `OB` output channels x `V` slots: `y = bias + sum_{c, tap} w * x` in 24 (or fewer) vector
/// registers, then LeakyReLU when `leaky` gives a slope (`y > 0 ? y : slope * y`).
#[allow(clippy::too_many_arguments)]
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
#[inline]
unsafe fn fwd_kernel<const OB: usize, const V: usize>(
    xn: *const f32,
    lay: &Layout,
    c: usize,
    wb: *const f32,
    bb: &[f32],
    leaky: Option<f32>,
    s: &[Slot; V],
    yb: *mut f32,
    ocs: usize,
    ov: usize,
) {
    use std::arch::x86_64::*;
    let mut acc: [[__m512; V]; OB] = [[_mm512_setzero_ps(); V]; OB];
    for (o, row) in acc.iter_mut().enumerate() {
        let b = _mm512_set1_ps(bb[o]);
        for a in row.iter_mut() {
            *a = b;
        }
    }
    let masks: [u16; V] = std::array::from_fn(|v| s[v].mask);
    let mut w = wb;
    for ci in 0..c {
        let xc = xn.add(ci * lay.cs);
        let base: [*const f32; V] = std::array::from_fn(|v| xc.add(s[v].inp));
        for &t in &lay.toff {
            let xv: [__m512; V] =
                std::array::from_fn(|v| _mm512_maskz_loadu_ps(masks[v], base[v].add(t)));
            for (o, row) in acc.iter_mut().enumerate() {
                let wv = _mm512_set1_ps(*w.add(o));
                for (a, &xx) in row.iter_mut().zip(xv.iter()) {
                    *a = _mm512_fmadd_ps(wv, xx, *a);
                }
            }
            w = w.add(OB);
        }
    }
    for (o, row) in acc.iter().enumerate().take(ov) {
        for (v, a) in row.iter().enumerate() {
            let mut r = *a;
            if let Some(slope) = leaky {
                let positive = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(r, _mm512_setzero_ps());
                r = _mm512_mask_blend_ps(positive, _mm512_mul_ps(r, _mm512_set1_ps(slope)), r);
            }
            _mm512_mask_storeu_ps(yb.add(o * ocs + s[v].out), masks[v], r);
        }
    }
}

/// Direct weight gradient `gw[o, r] = sum_{n, p} gy[n, o, p] col_n[r, p]`. Returns `None` when
/// the direct path does not apply.
pub(crate) fn backward_weight(
    x: &[f32],
    gy: &[f32],
    plan: &Plan,
    batch: usize,
    out_channels: usize,
) -> Option<Vec<f32>> {
    backward_weight_impl(x, gy, plan, batch, out_channels, false)
}

fn backward_weight_impl(
    x: &[f32],
    gy: &[f32],
    plan: &Plan,
    batch: usize,
    out_channels: usize,
    force: bool,
) -> Option<Vec<f32>> {
    if !enabled() || plan.is_identity() || batch == 0 || out_channels == 0 {
        return None;
    }
    let lay = Layout::new(plan)?;
    if !force && lay.efficiency < MIN_LANE_EFFICIENCY {
        return None;
    }
    let (c, taps, p) = (plan.channels, plan.taps(), plan.out_len());
    let o = out_channels;
    let rows = c * taps;
    let wlen = o * rows;
    debug_assert!(gy.len() >= batch * o * p);
    let xp = pad_input(x, plan, &lay, batch);
    // gradients in the slots' layout: the grid embeds each row in W' columns, zeros after
    let gyg;
    let gsrc: &[f32] = if lay.grid {
        let [od, oh, ow] = plan.output;
        let wpd = lay.padded[2];
        let mut g = Scratch::take(batch * o * lay.out_cs);
        g.par_chunks_mut(lay.out_cs)
            .zip(gy.par_chunks(p))
            .for_each(|(dst, src)| {
                for r in 0..od * oh {
                    dst[r * wpd..r * wpd + ow].copy_from_slice(&src[r * ow..(r + 1) * ow]);
                    dst[r * wpd + ow..(r + 1) * wpd].fill(0.0);
                }
            });
        gyg = g;
        &gyg
    } else {
        gy
    };
    let ocs = lay.out_cs;
    // (channel, tap) offsets in the padded sample
    let ctoff: Vec<usize> = (0..rows)
        .map(|r| (r / taps) * lay.cs + lay.toff[r % taps])
        .collect();
    let units_per_sample = lay.slots.len().div_ceil(BW_UNIT_SLOTS);
    let units = batch * units_per_sample;
    let chunks = units
        .min(MAX_WEIGHT_CHUNKS)
        .min((WEIGHT_PARTIALS_BUDGET / wlen.max(1)).max(1));
    let per_chunk = units.div_ceil(chunks);
    let chunks = units.div_ceil(per_chunk);
    let partials: Vec<Vec<f32>> = (0..chunks)
        .into_par_iter()
        .map(|ch| {
            let mut acc = vec![0.0f32; wlen];
            for unit in ch * per_chunk..((ch + 1) * per_chunk).min(units) {
                let (n, u) = (unit / units_per_sample, unit % units_per_sample);
                let slots =
                    &lay.slots[u * BW_UNIT_SLOTS..((u + 1) * BW_UNIT_SLOTS).min(lay.slots.len())];
                let xn = &xp[n * c * lay.cs..(n + 1) * c * lay.cs];
                let gn = &gsrc[n * o * ocs..(n + 1) * o * ocs];
                // SAFETY: AVX-512F and VL were detected by `enabled`; offsets lie inside xn / gn.
                unsafe { bw_unit_avx512(xn, gn, ocs, o, &ctoff, slots, &mut acc) };
            }
            acc
        })
        .collect();
    let mut iter = partials.into_iter();
    let mut gw = iter.next().unwrap_or_else(|| vec![0.0; wlen]);
    for part in iter {
        gw.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
    }
    Some(gw)
}

/// Adds one work unit's contribution to `acc` (`[o, rows]`), block by block.
///
/// # Safety
/// AVX-512F and AVX-512VL must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn bw_unit_avx512(
    xn: &[f32],
    gn: &[f32],
    ocs: usize,
    o: usize,
    ctoff: &[usize],
    slots: &[Slot],
    acc: &mut [f32],
) {
    let rows = ctoff.len();
    for o0 in (0..o).step_by(BW_OB) {
        let goff: [usize; BW_OB] = std::array::from_fn(|j| (o0 + j).min(o - 1) * ocs);
        for r0 in (0..rows).step_by(BW_TB) {
            let xoff: [usize; BW_TB] = std::array::from_fn(|j| ctoff[(r0 + j).min(rows - 1)]);
            let sums = bw_kernel(xn.as_ptr(), gn.as_ptr(), &goff, &xoff, slots);
            for (k, col) in sums.iter().enumerate().take(rows - r0) {
                for (j, v) in col.iter().enumerate().take(o - o0) {
                    acc[(o0 + j) * rows + r0 + k] += v;
                }
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn bw_unit_avx512(
    _: &[f32],
    _: &[f32],
    _: usize,
    _: usize,
    _: &[usize],
    _: &[Slot],
    _: &mut [f32],
) {
    unreachable!("the direct path is only enabled on x86-64 with AVX-512F and VL")
}

/// Defines a backward-weight micro-kernel: `BW_OB` gradient rows x `BW_TB` (channel, tap)
/// pairs summed over `slots` (at least one), then across lanes; returns the sums indexed
/// `[pair][row]`. Written out accumulator by accumulator (the macro lists them column by
/// column: one input vector, then its products with every gradient row); the accumulators
/// start from the first slot's products. The kernels need AVX-512VL as well as F: the lane
/// reductions go through 256/128-bit steps, which can only reach xmm16-31 with VL, and
/// without it LLVM kept every accumulator in zmm0-15 and spilled a third of them.
macro_rules! bw_kernel_fn {
    ($name:ident, grads [$(($gv:ident, $gp:ident, $gi:literal)),*],
     cols [$(($xp:ident, $xi:literal) => [$($acc:ident * $gu:ident),*]),*]) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512vl")]
        #[inline(never)]
        unsafe fn $name(
            xn: *const f32,
            gn: *const f32,
            goff: &[usize; BW_OB],
            xoff: &[usize; BW_TB],
            slots: &[Slot],
        ) -> [[f32; BW_OB]; BW_TB] {
            use std::arch::x86_64::*;
            let Some((first, rest)) = slots.split_first() else {
                return [[0.0; BW_OB]; BW_TB];
            };
            $(let $gp = gn.add(goff[$gi]);)*
            $(let $xp = xn.add(xoff[$xi]);)*
            let m = first.mask;
            $(let $gv = _mm512_maskz_loadu_ps(m, $gp.add(first.out));)*
            $(
                let x = _mm512_maskz_loadu_ps(m, $xp.add(first.inp));
                $(let mut $acc = _mm512_mul_ps($gu, x);)*
            )*
            for s in rest {
                let m = s.mask;
                $(let $gv = _mm512_maskz_loadu_ps(m, $gp.add(s.out));)*
                $(
                    let x = _mm512_maskz_loadu_ps(m, $xp.add(s.inp));
                    $($acc = _mm512_fmadd_ps($gu, x, $acc);)*
                )*
            }
            [$([$(_mm512_reduce_add_ps($acc)),*]),*]
        }
    };
}

bw_kernel_fn!(bw_kernel,
    grads [(g0, g0p, 0), (g1, g1p, 1), (g2, g2p, 2), (g3, g3p, 3)],
    cols [
        (x0p, 0) => [a00 * g0, a10 * g1, a20 * g2, a30 * g3],
        (x1p, 1) => [a01 * g0, a11 * g1, a21 * g2, a31 * g3],
        (x2p, 2) => [a02 * g0, a12 * g1, a22 * g2, a32 * g3],
        (x3p, 3) => [a03 * g0, a13 * g1, a23 * g2, a33 * g3],
        (x4p, 4) => [a04 * g0, a14 * g1, a24 * g2, a34 * g3],
        (x5p, 5) => [a05 * g0, a15 * g1, a25 * g2, a35 * g3]
    ]
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::conv::{reference, ConvGeometry};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn rand_vec(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    fn close(what: &str, g: &ConvGeometry, got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len(), "{what} {g:?}");
        let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 * scale,
                "{what} [{i}]: {a} vs {b}, {g:?}"
            );
        }
    }

    /// Forward and weight gradient through the direct kernels (forced, whatever the lane
    /// efficiency) against the nested-loop reference.
    fn check(g: &ConvGeometry, rng: &mut ChaCha8Rng) {
        if !enabled() {
            return;
        }
        let x = rand_vec(rng, g.input_len());
        let w = rand_vec(rng, g.weight_len());
        let b = rand_vec(rng, g.out_channels);
        let gy = rand_vec(rng, g.output_len());
        let plan = Plan::of(g);
        let mut y = vec![f32::NAN; g.output_len()];
        let ran = forward_impl(
            &x,
            &w,
            Some(&b),
            None,
            &plan,
            g.batch,
            g.out_channels,
            &mut y,
            true,
        );
        if !ran {
            assert!(plan.is_identity() || g.stride != [1, 1, 1], "{g:?}");
            return;
        }
        close("forward", g, &y, &reference::forward(&x, &w, Some(&b), g));
        // The fused LeakyReLU stores exactly the activation of those values.
        let mut fused = vec![f32::NAN; g.output_len()];
        let slope = Some(0.1);
        assert!(forward_impl(
            &x,
            &w,
            Some(&b),
            slope,
            &plan,
            g.batch,
            g.out_channels,
            &mut fused,
            true
        ));
        let want: Vec<f32> = y
            .iter()
            .map(|&v| if v > 0.0 { v } else { 0.1 * v })
            .collect();
        assert_eq!(fused, want, "fused LeakyReLU on {g:?}");
        let gw = backward_weight_impl(&x, &gy, &plan, g.batch, g.out_channels, true).unwrap();
        close(
            "backward_weight",
            g,
            &gw,
            &reference::backward_weight(&x, &gy, g),
        );
    }

    #[test]
    fn direct_matches_reference_on_odd_shapes() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        // (input, kernel, dilation, in channels, out channels)
        type Case = ([usize; 3], [usize; 3], [usize; 3], usize, usize);
        let cases: &[Case] = &[
            ([1, 1, 37], [1, 1, 3], [1, 1, 1], 3, 5), // 1-D, W not a multiple of 16
            ([1, 9, 13], [1, 3, 3], [1, 2, 1], 5, 7), // 2-D, grid layout, dilation
            ([1, 20, 33], [1, 2, 4], [1, 1, 3], 17, 9), // 2-D, even kernels
            ([5, 6, 7], [3, 3, 3], [1, 1, 1], 3, 13), // 3-D small: grid
            ([6, 5, 18], [2, 3, 2], [2, 1, 3], 4, 1), // rows with a masked tail, O = 1
            ([4, 4, 4], [2, 2, 2], [1, 1, 1], 19, 6), // U-Net bottom sizes
            ([8, 8, 8], [3, 3, 3], [4, 4, 4], 2, 10), // dilation larger than the volume/2
            ([3, 17, 32], [3, 3, 3], [1, 1, 1], 33, 24),
        ];
        for &(input, kernel, dilation, c, o) in cases {
            for batch in [1, 3] {
                let g =
                    ConvGeometry::same("t", batch, c, o, input, kernel, dilation, [1; 3]).unwrap();
                check(&g, &mut rng);
                if let Ok(v) =
                    ConvGeometry::valid("t", batch, c, o, input, kernel, dilation, [1; 3])
                {
                    check(&v, &mut rng);
                }
            }
        }
    }

    #[test]
    fn direct_matches_reference_on_random_geometries() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for _ in 0..60 {
            let mut input = [1; 3];
            let mut kernel = [1; 3];
            let mut dilation = [1; 3];
            let first = rng.random_range(0..3);
            for a in first..3 {
                input[a] = rng.random_range(1..=20);
                kernel[a] = rng.random_range(1..=4);
                dilation[a] = rng.random_range(1..=3);
            }
            let (c, o) = (rng.random_range(1..=20), rng.random_range(1..=20));
            let batch = rng.random_range(1..=2);
            let g = ConvGeometry::same("t", batch, c, o, input, kernel, dilation, [1; 3]).unwrap();
            check(&g, &mut rng);
        }
    }

    #[test]
    fn block_choice_wastes_little() {
        assert_eq!(forward_block(32), 8);
        assert_eq!(forward_block(24), 8);
        assert_eq!(forward_block(12), 6);
        assert_eq!(forward_block(6), 6);
        assert_eq!(forward_block(1), 2);
    }

    fn thread_cpu_seconds() -> f64 {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid pointer to a timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
        t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
    }

    /// Single-thread GFLOP per CPU-second of the forward and weight-gradient kernels on the
    /// conv3d case of the speed benchmark (N8 32->32 32^3 k3). Run with
    /// `cargo test --release --lib direct_kernel_rates -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn direct_kernel_rates() {
        if !enabled() {
            return;
        }
        let g = ConvGeometry::same(
            "conv",
            8,
            32,
            32,
            [32, 32, 32],
            [3, 3, 3],
            [1, 1, 1],
            [1, 1, 1],
        )
        .unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let x = rand_vec(&mut rng, g.input_len());
        let w = rand_vec(&mut rng, g.weight_len());
        let gy = rand_vec(&mut rng, g.output_len());
        let plan = Plan::of(&g);
        let flops = 2.0 * (g.output_len() * g.in_channels * 27) as f64;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        pool.install(|| {
            let mut y = vec![0.0; g.output_len()];
            for rep in 0..3 {
                let t0 = thread_cpu_seconds();
                assert!(forward_impl(
                    &x, &w, None, None, &plan, 8, 32, &mut y, false
                ));
                let t1 = thread_cpu_seconds();
                let gw = backward_weight_impl(&x, &gy, &plan, 8, 32, false).unwrap();
                let t2 = thread_cpu_seconds();
                assert_eq!(gw.len(), g.weight_len());
                println!(
                    "rep {rep}: forward {:.1} GFLOP/s, weight gradient {:.1} GFLOP/s",
                    flops / (t1 - t0) * 1e-9,
                    flops / (t2 - t1) * 1e-9
                );
            }
        });
    }
}
