//! OpenCL launchers of the element-wise ops (`kernels/elementwise.cl`).

use super::{broadcast_strides, BinaryOp, UnaryOp};
use crate::backend::opencl::{i32_len, Arg, ClBuffer, Family, OpenClBackend};
use crate::{Error, Result};

/// `op(x)` element-wise.
pub fn unary(be: &OpenClBackend, op: UnaryOp, x: &ClBuffer) -> Result<ClBuffer> {
    let y = be.alloc(x.len())?;
    let (code, p, q) = op.code();
    let n = i32_len(x.len(), "unary")?;
    be.launch1(
        Family::Elementwise,
        "unary",
        &[
            Arg::Buf(x),
            Arg::Buf(&y),
            Arg::I32(n),
            Arg::I32(code),
            Arg::F32(p),
            Arg::F32(q),
        ],
        x.len(),
    )?;
    Ok(y)
}

/// `gy * op'(x)` element-wise.
pub fn unary_backward(
    be: &OpenClBackend,
    op: UnaryOp,
    x: &ClBuffer,
    gy: &ClBuffer,
) -> Result<ClBuffer> {
    let gx = be.alloc(x.len())?;
    let (code, p, q) = op.code();
    let n = i32_len(x.len(), "unary_backward")?;
    be.launch1(
        Family::Elementwise,
        "unary_backward",
        &[
            Arg::Buf(x),
            Arg::Buf(gy),
            Arg::Buf(&gx),
            Arg::I32(n),
            Arg::I32(code),
            Arg::F32(p),
            Arg::F32(q),
        ],
        x.len(),
    )?;
    Ok(gx)
}

/// Packs up to 8 values into an OpenCL `int8`.
pub(crate) fn int8(v: &[usize], op: &str) -> Result<[i32; 8]> {
    if v.len() > 8 {
        return Err(Error::OpenCl(format!(
            "{op}: rank {} exceeds the rank-8 limit of the OpenCL kernels",
            v.len()
        )));
    }
    let mut out = [1i32; 8];
    for (o, &x) in out.iter_mut().zip(v) {
        *o = i32_len(x, op)?;
    }
    Ok(out)
}

/// `op(a, b)` with numpy broadcasting (all shapes of the same rank).
pub fn binary(
    be: &OpenClBackend,
    op: BinaryOp,
    a: &ClBuffer,
    a_shape: &[usize],
    b: &ClBuffer,
    b_shape: &[usize],
    out_shape: &[usize],
) -> Result<ClBuffer> {
    let len: usize = out_shape.iter().product();
    let y = be.alloc(len)?;
    let n = i32_len(len, "binary")?;
    if a_shape == out_shape && b_shape == out_shape {
        be.launch1(
            Family::Elementwise,
            "binary_same",
            &[
                Arg::Buf(a),
                Arg::Buf(b),
                Arg::Buf(&y),
                Arg::I32(n),
                Arg::I32(op.code()),
            ],
            len,
        )?;
        return Ok(y);
    }
    let sa = broadcast_strides(a_shape, out_shape);
    let sb = broadcast_strides(b_shape, out_shape);
    // Size-1 output axes carry no index: drop them, which also lets rank up to 8 through.
    let keep: Vec<usize> = (0..out_shape.len())
        .filter(|&d| out_shape[d] != 1)
        .collect();
    let pick = |v: &[usize]| keep.iter().map(|&d| v[d]).collect::<Vec<_>>();
    be.launch1(
        Family::Elementwise,
        "binary_bcast",
        &[
            Arg::Buf(a),
            Arg::Buf(b),
            Arg::Buf(&y),
            Arg::I32(n),
            Arg::I32(keep.len() as i32),
            Arg::Int8(int8(&pick(out_shape), "binary")?),
            Arg::Int8(int8(&pick(&sa), "binary")?),
            Arg::Int8(int8(&pick(&sb), "binary")?),
            Arg::I32(op.code()),
        ],
        len,
    )?;
    Ok(y)
}
