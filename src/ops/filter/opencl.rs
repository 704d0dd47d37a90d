//! OpenCL launcher of the axis filter and its adjoint (`kernels/filter.cl`).

use super::AxisFilter;
use crate::backend::opencl::{i32_len, Arg, ClBuffer, Family, OpenClBackend};
use crate::Result;

/// Applies the filter (or its adjoint) along the axis.
pub fn filter_axis(be: &OpenClBackend, x: &ClBuffer, f: &AxisFilter) -> Result<ClBuffer> {
    let out_len = f.out_len();
    let total = f.outer * out_len * f.inner;
    let y = be.alloc(total)?;
    if total == 0 {
        return Ok(y);
    }
    let taps = be.upload_slice(&f.taps)?;
    be.launch1(
        Family::Filter,
        "filter_axis",
        &[
            Arg::Buf(x),
            Arg::Buf(&taps),
            Arg::Buf(&y),
            Arg::I32(i32_len(total, "filter_axis")?),
            Arg::I32(f.len as i32),
            Arg::I32(f.inner as i32),
            Arg::I32(out_len as i32),
            Arg::I32(i32_len(f.taps.len(), "filter_axis")?),
            Arg::I32(f.adjoint as i32),
        ],
        total,
    )?;
    Ok(y)
}
