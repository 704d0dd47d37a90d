//! OpenCL launcher of the axis range copy (`kernels/copy.cl`).

use super::AxisCopy;
use crate::backend::opencl::{i32_len, Arg, ClBuffer, Family, OpenClBackend};
use crate::Result;

/// Copies the range described by `c` from `src` into `dst` on the device.
pub fn copy_axis(be: &OpenClBackend, src: &ClBuffer, dst: &ClBuffer, c: &AxisCopy) -> Result<()> {
    let run = c.count * c.inner;
    let total = c.outer * run;
    if total == 0 {
        return Ok(());
    }
    i32_len(src.len().max(dst.len()), "copy_axis")?;
    be.launch1(
        Family::Copy,
        "copy_axis",
        &[
            Arg::Buf(src),
            Arg::Buf(dst),
            Arg::I32(i32_len(total, "copy_axis")?),
            Arg::I32(run as i32),
            Arg::I32((c.src_len * c.inner) as i32),
            Arg::I32((c.src_start * c.inner) as i32),
            Arg::I32((c.dst_len * c.inner) as i32),
            Arg::I32((c.dst_start * c.inner) as i32),
        ],
        total,
    )
}
