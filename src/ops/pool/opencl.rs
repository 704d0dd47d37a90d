//! OpenCL launchers of max-pooling (`kernels/pool.cl`).

use super::PoolGeometry;
use crate::backend::opencl::{i32_len, Arg, ClBuffer, Family, OpenClBackend};
use crate::Result;

pub(crate) fn int4(v: [usize; 3], w: usize) -> [i32; 4] {
    [v[0] as i32, v[1] as i32, v[2] as i32, w as i32]
}

/// Pooled values and argmax slots.
pub fn forward(be: &OpenClBackend, x: &ClBuffer, g: &PoolGeometry) -> Result<(ClBuffer, ClBuffer)> {
    let n = g.output_len();
    let y = be.alloc(n)?;
    let arg = be.alloc(n)?;
    i32_len(g.input_len(), "max_pool")?;
    be.launch1(
        Family::Pool,
        "maxpool_forward",
        &[
            Arg::Buf(x),
            Arg::Buf(&y),
            Arg::Buf(&arg),
            Arg::I32(i32_len(n, "max_pool")?),
            Arg::Int4(int4(g.input, 0)),
            Arg::Int4(int4(g.output, 0)),
            Arg::Int4(int4(g.window, 0)),
        ],
        n,
    )?;
    Ok((y, arg))
}

/// Routes the output gradients to the argmax inputs (zeros elsewhere).
pub fn backward(
    be: &OpenClBackend,
    gy: &ClBuffer,
    argmax: &ClBuffer,
    g: &PoolGeometry,
) -> Result<ClBuffer> {
    let n = g.input_len();
    let gx = be.alloc(n)?;
    be.launch1(
        Family::Pool,
        "maxpool_backward",
        &[
            Arg::Buf(gy),
            Arg::Buf(argmax),
            Arg::Buf(&gx),
            Arg::I32(i32_len(n, "max_pool_backward")?),
            Arg::Int4(int4(g.input, 0)),
            Arg::Int4(int4(g.output, 0)),
            Arg::Int4(int4(g.window, 0)),
        ],
        n,
    )?;
    Ok(gx)
}
