//! OpenCL launchers of the optimiser updates (`kernels/optim.cl`).

use super::{AdamHyper, SgdHyper};
use crate::backend::opencl::{i32_len, Arg, ClBuffer, Family, OpenClBackend};
use crate::Result;

/// Bias-corrected Adam, in place on the device.
pub fn adam_step(
    be: &OpenClBackend,
    p: &ClBuffer,
    g: &ClBuffer,
    m: &ClBuffer,
    v: &ClBuffer,
    h: &AdamHyper,
) -> Result<()> {
    let c1 = 1.0 - h.beta1.powi(h.step as i32);
    let c2 = 1.0 - h.beta2.powi(h.step as i32);
    be.launch1(
        Family::Optim,
        "adam_step",
        &[
            Arg::Buf(p),
            Arg::Buf(g),
            Arg::Buf(m),
            Arg::Buf(v),
            Arg::I32(i32_len(p.len(), "adam")?),
            Arg::F32(h.lr / c1),
            Arg::F32(h.beta1),
            Arg::F32(h.beta2),
            Arg::F32(h.eps),
            Arg::F32(c2.sqrt()),
            Arg::F32(h.weight_decay),
        ],
        p.len(),
    )
}

/// SGD with momentum, in place on the device.
pub fn sgd_step(
    be: &OpenClBackend,
    p: &ClBuffer,
    g: &ClBuffer,
    vel: &ClBuffer,
    h: &SgdHyper,
) -> Result<()> {
    be.launch1(
        Family::Optim,
        "sgd_step",
        &[
            Arg::Buf(p),
            Arg::Buf(g),
            Arg::Buf(vel),
            Arg::I32(i32_len(p.len(), "sgd")?),
            Arg::F32(h.lr),
            Arg::F32(h.momentum),
            Arg::F32(h.weight_decay),
        ],
        p.len(),
    )
}
