//! OpenCL launchers of nearest upsampling (`kernels/resample.cl`).

use super::UpsampleGeometry;
use crate::backend::opencl::{i32_len, Arg, ClBuffer, Family, OpenClBackend};
use crate::ops::pool::opencl::int4;
use crate::Result;

/// Nearest upsampling.
pub fn forward(be: &OpenClBackend, x: &ClBuffer, g: &UpsampleGeometry) -> Result<ClBuffer> {
    let n = g.output_len();
    let y = be.alloc(n)?;
    be.launch1(
        Family::Resample,
        "upsample_forward",
        &[
            Arg::Buf(x),
            Arg::Buf(&y),
            Arg::I32(i32_len(n, "upsample")?),
            Arg::Int4(int4(g.input, 0)),
            Arg::Int4(int4(g.factor, 0)),
        ],
        n,
    )?;
    Ok(y)
}

/// Block sums of the output gradient.
pub fn backward(be: &OpenClBackend, gy: &ClBuffer, g: &UpsampleGeometry) -> Result<ClBuffer> {
    let n = g.input_len();
    i32_len(g.output_len(), "upsample_backward")?;
    let gx = be.alloc(n)?;
    be.launch1(
        Family::Resample,
        "upsample_backward",
        &[
            Arg::Buf(gy),
            Arg::Buf(&gx),
            Arg::I32(i32_len(n, "upsample_backward")?),
            Arg::Int4(int4(g.input, 0)),
            Arg::Int4(int4(g.factor, 0)),
        ],
        n,
    )?;
    Ok(gx)
}
