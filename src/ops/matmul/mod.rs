//! Batched matrix product `[..., m, k] x [..., k, n] -> [..., m, n]`, the right operand either
//! with the same batch axes or a shared `[k, n]` matrix. A custom op: row-parallel CPU code,
//! a tiled kernel in `kernels/matmul.cl`, and a backward made of transposes and products.

use super::custom::{apply, CustomOp, HostTensor, KernelArg, OpenClKernel, OpenClLaunch};
use crate::backend::opencl::i32_len;
use crate::tensor::Tensor;
use crate::{Error, Result};
use rayon::prelude::*;

/// The matrix product op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matmul;

/// (batch, m, k, n, b_batched) of two operand shapes.
fn dims(a: &[usize], b: &[usize]) -> Result<(usize, usize, usize, usize, bool)> {
    let bad = || {
        Error::shape(
            "matmul",
            format!(
                "cannot multiply {a:?} by {b:?}: expected [..., m, k] x [..., k, n] with equal \
                 batch axes, or [..., m, k] x [k, n]"
            ),
        )
    };
    if a.len() < 2 || b.len() < 2 {
        return Err(bad());
    }
    let (m, k) = (a[a.len() - 2], a[a.len() - 1]);
    let (k2, n) = (b[b.len() - 2], b[b.len() - 1]);
    if k != k2 {
        return Err(bad());
    }
    let batch: usize = a[..a.len() - 2].iter().product();
    let b_batched = b.len() > 2;
    if b_batched && a[..a.len() - 2] != b[..b.len() - 2] {
        return Err(bad());
    }
    Ok((batch, m, k, n, b_batched))
}

impl CustomOp for Matmul {
    fn name(&self) -> &'static str {
        "matmul"
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        let (a, b) = (inputs[0], inputs[1]);
        let (_, m, _, n, _) = dims(a, b)?;
        let mut s = a[..a.len() - 2].to_vec();
        s.extend([m, n]);
        Ok(s)
    }

    fn cpu_forward(&self, inputs: &[HostTensor<'_>], out: &mut [f32]) -> Result<()> {
        let (_, m, k, n, b_batched) = dims(inputs[0].shape, inputs[1].shape)?;
        let (a, b) = (inputs[0].data, inputs[1].data);
        if n == 0 {
            return Ok(());
        }
        let row = |(r, y): (usize, &mut [f32])| {
            let batch = r / m.max(1);
            let ar = &a[r * k..(r + 1) * k];
            let bb = if b_batched { &b[batch * k * n..] } else { b };
            for (p, &av) in ar.iter().enumerate() {
                let br = &bb[p * n..(p + 1) * n];
                for (yv, &bv) in y.iter_mut().zip(br) {
                    *yv += av * bv;
                }
            }
        };
        if out.len() * k >= super::PAR_THRESHOLD {
            out.par_chunks_mut(n).enumerate().for_each(row);
        } else {
            out.chunks_mut(n).enumerate().for_each(row);
        }
        Ok(())
    }

    fn opencl_kernel(&self) -> Option<OpenClKernel> {
        Some(OpenClKernel::new(
            include_str!("../../../kernels/matmul.cl"),
            "matmul",
        ))
    }

    fn opencl_launch(&self, inputs: &[&[usize]], _: &[usize]) -> Result<OpenClLaunch> {
        let (batch, m, k, n, b_batched) = dims(inputs[0], inputs[1])?;
        let len = |v: usize| i32_len(v, "matmul");
        i32_len(batch * m * k.max(n), "matmul")?;
        Ok(OpenClLaunch {
            global: vec![n, m, batch],
            local: Some(vec![16, 16, 1]),
            args: vec![
                KernelArg::Input(0),
                KernelArg::Input(1),
                KernelArg::Output,
                KernelArg::I32(len(m)?),
                KernelArg::I32(len(k)?),
                KernelArg::I32(len(n)?),
                KernelArg::I32(b_batched as i32),
            ],
        })
    }

    fn backward(&self, inputs: &[Tensor], _: &Tensor, gy: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (a, b) = (&inputs[0], &inputs[1]);
        let (batch, m, k, n, b_batched) = dims(a.shape(), b.shape())?;
        let last_t = |t: &Tensor| t.transpose(t.rank() - 2, t.rank() - 1);
        let ga = a
            .requires_grad()
            .then(|| gy.matmul(&last_t(b)?))
            .transpose()?;
        let gb = b
            .requires_grad()
            .then(|| -> Result<Tensor> {
                if b_batched {
                    last_t(a)?.matmul(gy)
                } else {
                    let a2 = a.reshape(&[batch * m, k])?.transpose(0, 1)?;
                    a2.matmul(&gy.reshape(&[batch * m, n])?)
                }
            })
            .transpose()?;
        Ok(vec![ga, gb])
    }
}

impl Tensor {
    /// Matrix product over the last two axes: `[..., m, k] x [..., k, n]` (equal batch axes)
    /// or `[..., m, k] x [k, n]`.
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        apply(Matmul, &[self, other])
    }
}
