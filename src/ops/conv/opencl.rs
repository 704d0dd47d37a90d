//! OpenCL launchers of the convolutions (`kernels/conv.cl`, tiled implicit GEMMs).
//!
//! The host builds small per-geometry index tables (cached by the backend) so the kernels
//! gather im2col elements without integer divisions over the kernel axes.

use super::ConvGeometry;
use crate::backend::opencl::{i32_len, Arg, ClBuffer, Family, OpenClBackend};
use crate::Result;

fn int4(v: [usize; 3], w: usize) -> [i32; 4] {
    [v[0] as i32, v[1] as i32, v[2] as i32, w as i32]
}

fn kernel_offsets(g: &ConvGeometry) -> Vec<[i32; 3]> {
    let [kd, kh, kw] = g.kernel;
    let mut v = Vec::with_capacity(kd * kh * kw);
    for a in 0..kd {
        for b in 0..kh {
            for e in 0..kw {
                v.push([
                    (a * g.dilation[0]) as i32,
                    (b * g.dilation[1]) as i32,
                    (e * g.dilation[2]) as i32,
                ]);
            }
        }
    }
    v
}

/// (channel offset, dz, dy, dx) per (channel, kernel tap), the channel offset being
/// `channel * channel_stride`.
fn tap_table(g: &ConvGeometry, channels: usize, channel_stride: usize) -> Vec<i32> {
    let offs = kernel_offsets(g);
    let mut t = Vec::with_capacity(channels * offs.len() * 4);
    for c in 0..channels {
        for o in &offs {
            t.extend_from_slice(&[(c * channel_stride) as i32, o[0], o[1], o[2]]);
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

fn grid(be: &OpenClBackend, m: usize, n: usize, splits: usize) -> ([usize; 3], [usize; 3]) {
    let t = be.limits().tiles;
    let (ntx, nty) = (t.tn / t.rn, t.tm / t.rm);
    (
        [n.div_ceil(t.tn) * ntx, m.div_ceil(t.tm) * nty, splits],
        [ntx, nty, 1],
    )
}

/// `y = w * x + b`.
pub fn forward(
    be: &OpenClBackend,
    x: &ClBuffer,
    w: &ClBuffer,
    bias: Option<&ClBuffer>,
    g: &ConvGeometry,
) -> Result<ClBuffer> {
    check(g, "conv")?;
    let iv: usize = g.input.iter().product();
    let p: usize = g.output.iter().product();
    let kv: usize = g.kernel.iter().product();
    let (m, n, k) = (g.out_channels, g.batch * p, g.in_channels * kv);
    let y = be.alloc(g.output_len())?;
    let ktab = be.table(0, g, || tap_table(g, g.in_channels, iv))?;
    let (global, local) = grid(be, m, n, 1);
    use opencl3::memory::ClMem;
    be.launch(
        Family::Conv,
        "conv_forward",
        &[
            Arg::Buf(x),
            Arg::Buf(w),
            Arg::Buf(bias.unwrap_or(w)),
            Arg::Buf(&y),
            Arg::Mem(ktab.get()),
            Arg::I32(bias.is_some() as i32),
            Arg::I32(m as i32),
            Arg::I32(n as i32),
            Arg::I32(k as i32),
            Arg::Int4(int4(g.input, g.in_channels)),
            Arg::Int4(int4(g.output, p)),
            Arg::Int4(int4(g.stride, 0)),
            Arg::Int4(int4(g.pad_before, 0)),
        ],
        &global,
        Some(&local),
    )?;
    Ok(y)
}

/// Gradient with respect to the input (the transposed convolution).
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
    let (m, n, k) = (g.in_channels, g.batch * iv, g.out_channels * kv);
    let gx = be.alloc(g.input_len())?;
    let ktab = be.table(1, g, || tap_table(g, g.out_channels, p))?;
    let atab = be.table(2, g, || {
        (0..g.out_channels)
            .flat_map(|o| (0..kv).map(move |v| (o * g.in_channels * kv + v) as i32))
            .collect()
    })?;
    let (global, local) = grid(be, m, n, 1);
    use opencl3::memory::ClMem;
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
        &global,
        Some(&local),
    )?;
    Ok(gx)
}

/// Gradient with respect to the weights: reduces over batch x output voxels, split over
/// several work-group layers (split-K) when the weight tile grid alone would leave the device
/// idle.
pub fn backward_weight(
    be: &OpenClBackend,
    x: &ClBuffer,
    gy: &ClBuffer,
    g: &ConvGeometry,
) -> Result<ClBuffer> {
    check(g, "conv_backward_weight")?;
    let iv: usize = g.input.iter().product();
    let p: usize = g.output.iter().product();
    let kv: usize = g.kernel.iter().product();
    let (m, n, k) = (g.out_channels, g.in_channels * kv, g.batch * p);
    let t = be.limits().tiles;
    let blocks = m.div_ceil(t.tm) * n.div_ceil(t.tn);
    let target = 4 * be.limits().compute_units;
    let max_splits = k.div_ceil(t.tk * 8).max(1);
    let splits = target.div_ceil(blocks).clamp(1, max_splits.min(256));
    let kchunk = k.div_ceil(splits).div_ceil(t.tk) * t.tk;
    let splits = k.div_ceil(kchunk.max(1)).max(1);
    let gw = be.alloc(g.weight_len())?;
    let part = if splits > 1 {
        Some(be.alloc(splits * m * n)?)
    } else {
        None
    };
    let ktab = be.table(0, g, || tap_table(g, g.in_channels, iv))?;
    let (global, local) = grid(be, m, n, splits);
    use opencl3::memory::ClMem;
    be.launch(
        Family::Conv,
        "conv_backward_weight",
        &[
            Arg::Buf(x),
            Arg::Buf(gy),
            Arg::Buf(part.as_ref().unwrap_or(&gw)),
            Arg::Mem(ktab.get()),
            Arg::I32(m as i32),
            Arg::I32(n as i32),
            Arg::I32(k as i32),
            Arg::I32(i32_len(kchunk, "conv_backward_weight")?),
            Arg::Int4(int4(g.input, g.in_channels)),
            Arg::Int4(int4(g.output, p)),
            Arg::Int4(int4(g.stride, 0)),
            Arg::Int4(int4(g.pad_before, 0)),
        ],
        &global,
        Some(&local),
    )?;
    if let Some(part) = &part {
        let mn = m * n;
        be.launch1(
            Family::Conv,
            "sum_splits",
            &[
                Arg::Buf(part),
                Arg::Buf(&gw),
                Arg::I32(i32_len(mn, "conv_backward_weight")?),
                Arg::I32(splits as i32),
            ],
            mn,
        )?;
    }
    Ok(gw)
}
