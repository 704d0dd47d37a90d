//! OpenCL launchers of the sums (`kernels/reduce.cl`).

use crate::backend::opencl::{i32_len, Arg, ClBuffer, Family, OpenClBackend};
use crate::ops::elementwise::opencl::int8;
use crate::Result;

/// Merges adjacent axes of the same kind (kept or reduced) into (size, stride) runs.
fn runs(shape: &[usize], axes: &[usize], reduced: bool) -> (Vec<usize>, Vec<usize>) {
    let rank = shape.len();
    let mut strides = vec![1usize; rank];
    for d in (0..rank.saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    let mut sizes: Vec<usize> = Vec::new();
    let mut st: Vec<usize> = Vec::new();
    let mut prev: Option<usize> = None;
    for d in 0..rank {
        if axes.contains(&d) != reduced || shape[d] == 1 {
            continue;
        }
        match prev {
            // d continues the run when the previous axis of this kind is d - 1.
            Some(p) if p + 1 == d => {
                let last = sizes.len() - 1;
                sizes[last] *= shape[d];
                st[last] = strides[d];
            }
            _ => {
                sizes.push(shape[d]);
                st.push(strides[d]);
            }
        }
        prev = Some(d);
    }
    (sizes, st)
}

/// Full sum of `x` into a one-element buffer with the two-stage tree reduction.
pub fn sum_all(be: &OpenClBackend, x: &ClBuffer) -> Result<ClBuffer> {
    let wg = be.limits().wg1.next_power_of_two().min(256);
    let wg = if wg > be.limits().wg1 { wg / 2 } else { wg };
    let n = x.len();
    let groups = n.div_ceil(wg * 8).clamp(1, 1024);
    let partial = be.alloc(groups)?;
    let out = be.alloc(1)?;
    be.launch(
        Family::Reduce,
        "sum_partial",
        &[
            Arg::Buf(x),
            Arg::Buf(&partial),
            Arg::I32(i32_len(n, "sum")?),
            Arg::Local(wg * 4),
        ],
        &[groups * wg],
        Some(&[wg]),
    )?;
    be.launch(
        Family::Reduce,
        "sum_partial",
        &[
            Arg::Buf(&partial),
            Arg::Buf(&out),
            Arg::I32(groups as i32),
            Arg::Local(wg * 4),
        ],
        &[wg],
        Some(&[wg]),
    )?;
    Ok(out)
}

/// Sum over `axes` keeping them as size-1 dimensions.
pub fn sum_axes(
    be: &OpenClBackend,
    x: &ClBuffer,
    shape: &[usize],
    axes: &[usize],
) -> Result<ClBuffer> {
    let out_len: usize = super::reduced_shape(shape, axes).iter().product();
    let red_len: usize = axes.iter().map(|&a| shape[a]).product();
    if x.is_empty() {
        return be.fill(out_len, 0.0);
    }
    if out_len == 1 {
        return sum_all(be, x);
    }
    let (ks, kt) = runs(shape, axes, false);
    let (rs, rt) = runs(shape, axes, true);
    let y = be.alloc(out_len)?;
    let args = [
        Arg::Buf(x),
        Arg::Buf(&y),
        Arg::I32(i32_len(out_len, "sum")?),
        Arg::I32(i32_len(red_len, "sum")?),
        Arg::I32(ks.len() as i32),
        Arg::Int8(int8(&ks, "sum")?),
        Arg::Int8(int8(&kt, "sum")?),
        Arg::I32(rs.len() as i32),
        Arg::Int8(int8(&rs, "sum")?),
        Arg::Int8(int8(&rt, "sum")?),
    ];
    if red_len >= 256 && out_len < 1 << 16 {
        // One work-group per output: a tree reduction over a long axis set.
        let wg = be.limits().wg1.min(256);
        let wg = 1usize << (usize::BITS - 1 - wg.leading_zeros());
        let mut a = args.to_vec();
        a.push(Arg::Local(wg * 4));
        be.launch(
            Family::Reduce,
            "sum_axes_group",
            &a,
            &[out_len * wg],
            Some(&[wg]),
        )?;
    } else {
        be.launch1(Family::Reduce, "sum_axes_thread", &args, out_len)?;
    }
    Ok(y)
}
