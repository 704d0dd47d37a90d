//! Element-wise ops built on the custom-op machinery: `pow`, `expm1`, element-wise
//! maximum / minimum, `step`, comparisons, `where` and `atan2`. One [`MathOp`] enum gives the
//! CPU code, the op code of `kernels/math.cl` and the backward rule of each.
//!
//! Comparisons and `step` return 0/1 masks and pass no gradient. The tensor-level methods
//! ([`Tensor::pow`], [`Tensor::maximum`], [`Tensor::where_cond`], ...) broadcast their operands
//! to one shape first.

use super::custom::{apply, CustomOp, HostTensor, KernelArg, OpenClKernel, OpenClLaunch};
use crate::backend::opencl::i32_len;
use crate::tensor::Tensor;
use crate::{Error, Result};
use rayon::prelude::*;

/// An element-wise op of `kernels/math.cl`; all operands have the output's shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MathOp {
    /// `x^p`.
    Pow(f32),
    /// `exp(x) - 1`, accurate near 0.
    Expm1,
    /// `max(a, b)`; the gradient goes to `a` on ties.
    Maximum,
    /// `min(a, b)`; the gradient goes to `a` on ties.
    Minimum,
    /// `1` where `x > 0`, else `0`.
    Step,
    /// `a > b` as 0/1.
    Gt,
    /// `a >= b` as 0/1.
    Ge,
    /// `a < b` as 0/1.
    Lt,
    /// `a <= b` as 0/1.
    Le,
    /// `a == b` as 0/1.
    Equal,
    /// `cond != 0 ? a : b` (inputs `cond, a, b`).
    Where,
    /// `atan2(y, x)` (inputs `y, x`), in `(-pi, pi]`.
    Atan2,
}

impl MathOp {
    /// Number of inputs.
    pub fn arity(self) -> usize {
        match self {
            MathOp::Pow(_) | MathOp::Expm1 | MathOp::Step => 1,
            MathOp::Where => 3,
            _ => 2,
        }
    }

    /// Op code of `math_map` in `kernels/math.cl` and its parameter.
    pub fn code(self) -> (i32, f32) {
        match self {
            MathOp::Pow(p) => (0, p),
            MathOp::Expm1 => (1, 0.0),
            MathOp::Maximum => (2, 0.0),
            MathOp::Minimum => (3, 0.0),
            MathOp::Step => (4, 0.0),
            MathOp::Gt => (5, 0.0),
            MathOp::Ge => (6, 0.0),
            MathOp::Lt => (7, 0.0),
            MathOp::Le => (8, 0.0),
            MathOp::Equal => (9, 0.0),
            MathOp::Where => (10, 0.0),
            MathOp::Atan2 => (11, 0.0),
        }
    }

    /// The value of the op (unused operands are ignored).
    #[inline(always)]
    pub fn apply(self, a: f32, b: f32, c: f32) -> f32 {
        let mask = |t: bool| if t { 1.0 } else { 0.0 };
        match self {
            MathOp::Pow(p) => a.powf(p),
            MathOp::Expm1 => a.exp_m1(),
            MathOp::Maximum => {
                if a >= b {
                    a
                } else {
                    b
                }
            }
            MathOp::Minimum => {
                if a <= b {
                    a
                } else {
                    b
                }
            }
            MathOp::Step => mask(a > 0.0),
            MathOp::Gt => mask(a > b),
            MathOp::Ge => mask(a >= b),
            MathOp::Lt => mask(a < b),
            MathOp::Le => mask(a <= b),
            MathOp::Equal => mask(a == b),
            MathOp::Where => {
                if a != 0.0 {
                    b
                } else {
                    c
                }
            }
            MathOp::Atan2 => a.atan2(b),
        }
    }
}

impl CustomOp for MathOp {
    fn name(&self) -> &'static str {
        match self {
            MathOp::Pow(_) => "pow",
            MathOp::Expm1 => "expm1",
            MathOp::Maximum => "maximum",
            MathOp::Minimum => "minimum",
            MathOp::Step => "step",
            MathOp::Gt => "gt",
            MathOp::Ge => "ge",
            MathOp::Lt => "lt",
            MathOp::Le => "le",
            MathOp::Equal => "equal",
            MathOp::Where => "where",
            MathOp::Atan2 => "atan2",
        }
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        if inputs.len() != self.arity() {
            return Err(Error::arg(
                self.name(),
                "inputs",
                format!("takes {} input(s), got {}", self.arity(), inputs.len()),
            ));
        }
        if inputs.iter().any(|s| *s != inputs[0]) {
            return Err(Error::shape(
                self.name(),
                format!("operands must have one shape, got {inputs:?}"),
            ));
        }
        Ok(inputs[0].to_vec())
    }

    fn cpu_forward(&self, inputs: &[HostTensor<'_>], out: &mut [f32]) -> Result<()> {
        let op = *self;
        let a = inputs[0].data;
        let b = inputs.get(1).map_or(a, |t| t.data);
        let c = inputs.get(2).map_or(a, |t| t.data);
        let f = |(i, y): (usize, &mut f32)| *y = op.apply(a[i], b[i], c[i]);
        if out.len() >= super::PAR_THRESHOLD {
            out.par_iter_mut().enumerate().for_each(f);
        } else {
            out.iter_mut().enumerate().for_each(f);
        }
        Ok(())
    }

    fn opencl_kernel(&self) -> Option<OpenClKernel> {
        Some(OpenClKernel::new(
            include_str!("../../../kernels/math.cl"),
            "math_map",
        ))
    }

    fn opencl_launch(&self, inputs: &[&[usize]], output: &[usize]) -> Result<OpenClLaunch> {
        let n: usize = output.iter().product();
        let (code, p) = self.code();
        let k = inputs.len();
        Ok(OpenClLaunch {
            global: vec![n],
            local: None,
            args: vec![
                KernelArg::Input(0),
                KernelArg::Input(1.min(k - 1)),
                KernelArg::Input(2.min(k - 1)),
                KernelArg::Output,
                KernelArg::I32(i32_len(n, self.name())?),
                KernelArg::I32(code),
                KernelArg::F32(p),
            ],
        })
    }

    fn backward(
        &self,
        inputs: &[Tensor],
        output: &Tensor,
        gy: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let need = |i: usize| inputs[i].requires_grad();
        Ok(match *self {
            MathOp::Pow(p) => vec![Some(gy.mul(&inputs[0].pow(p - 1.0)?.mul_scalar(p)?)?)],
            MathOp::Expm1 => vec![Some(gy.mul(&output.add_scalar(1.0)?)?)],
            MathOp::Maximum | MathOp::Minimum => {
                let (to_a, to_b) = if *self == MathOp::Maximum {
                    (MathOp::Ge, MathOp::Lt)
                } else {
                    (MathOp::Le, MathOp::Gt)
                };
                let (a, b) = (&inputs[0], &inputs[1]);
                vec![
                    need(0)
                        .then(|| gy.mul(&apply(to_a, &[a, b])?))
                        .transpose()?,
                    need(1)
                        .then(|| gy.mul(&apply(to_b, &[a, b])?))
                        .transpose()?,
                ]
            }
            MathOp::Step | MathOp::Gt | MathOp::Ge | MathOp::Lt | MathOp::Le | MathOp::Equal => {
                vec![None; inputs.len()]
            }
            MathOp::Where => {
                let zero = Tensor::zeros(gy.shape(), gy.device())?;
                let c = &inputs[0];
                vec![
                    None,
                    need(1)
                        .then(|| apply(MathOp::Where, &[c, gy, &zero]))
                        .transpose()?,
                    need(2)
                        .then(|| apply(MathOp::Where, &[c, &zero, gy]))
                        .transpose()?,
                ]
            }
            MathOp::Atan2 => {
                let (y, x) = (&inputs[0], &inputs[1]);
                let r2 = x.square()?.add(&y.square()?)?;
                let g = gy.div(&r2)?;
                vec![
                    need(0).then(|| g.mul(x)).transpose()?,
                    need(1).then(|| g.mul(y)?.neg()).transpose()?,
                ]
            }
        })
    }
}

/// Broadcasts `tensors` to their common shape.
fn broadcast_all(op: &'static str, tensors: &[&Tensor]) -> Result<Vec<Tensor>> {
    let rank = tensors.iter().map(|t| t.rank()).max().unwrap_or(0);
    let padded: Vec<Vec<usize>> = tensors
        .iter()
        .map(|t| {
            let mut s = vec![1; rank - t.rank()];
            s.extend_from_slice(t.shape());
            s
        })
        .collect();
    let mut shape = vec![1; rank];
    for s in &padded {
        for d in 0..rank {
            if s[d] != 1 {
                if shape[d] != 1 && shape[d] != s[d] {
                    return Err(Error::shape(
                        op,
                        format!(
                            "cannot broadcast {:?}",
                            tensors.iter().map(|t| t.shape()).collect::<Vec<_>>()
                        ),
                    ));
                }
                shape[d] = s[d];
            }
        }
    }
    tensors
        .iter()
        .zip(&padded)
        .map(|(t, p)| t.reshape(p)?.broadcast_to(&shape))
        .collect()
}

fn binary(op: MathOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let v = broadcast_all(op.name(), &[a, b])?;
    apply(op, &[&v[0], &v[1]])
}

impl Tensor {
    /// `x^p` element-wise (NaN for negative `x` and non-integer `p`).
    pub fn pow(&self, p: f32) -> Result<Tensor> {
        apply(MathOp::Pow(p), &[self])
    }

    /// `exp(x) - 1`, accurate for small `x`.
    pub fn expm1(&self) -> Result<Tensor> {
        apply(MathOp::Expm1, &[self])
    }

    /// Element-wise maximum (broadcasting); ties send the gradient to `self`.
    pub fn maximum(&self, other: &Tensor) -> Result<Tensor> {
        binary(MathOp::Maximum, self, other)
    }

    /// Element-wise minimum (broadcasting); ties send the gradient to `self`.
    pub fn minimum(&self, other: &Tensor) -> Result<Tensor> {
        binary(MathOp::Minimum, self, other)
    }

    /// Heaviside step: 1 where `x > 0`, else 0 (no gradient).
    pub fn step(&self) -> Result<Tensor> {
        apply(MathOp::Step, &[self])
    }

    /// `self > other` as a 0/1 mask (broadcasting, no gradient).
    pub fn gt(&self, other: &Tensor) -> Result<Tensor> {
        binary(MathOp::Gt, self, other)
    }

    /// `self >= other` as a 0/1 mask (broadcasting, no gradient).
    pub fn ge(&self, other: &Tensor) -> Result<Tensor> {
        binary(MathOp::Ge, self, other)
    }

    /// `self < other` as a 0/1 mask (broadcasting, no gradient).
    pub fn lt(&self, other: &Tensor) -> Result<Tensor> {
        binary(MathOp::Lt, self, other)
    }

    /// `self <= other` as a 0/1 mask (broadcasting, no gradient).
    pub fn le(&self, other: &Tensor) -> Result<Tensor> {
        binary(MathOp::Le, self, other)
    }

    /// `self == other` as a 0/1 mask (broadcasting, no gradient).
    pub fn equal(&self, other: &Tensor) -> Result<Tensor> {
        binary(MathOp::Equal, self, other)
    }

    /// `on_true` where `self` (the condition) is non-zero, else `on_false` (broadcasting). The
    /// gradient flows to the selected operand only, so NaN or infinite values of the other
    /// branch do not leak into it (unlike a blend `c * a + (1 - c) * b`); a NaN *derivative*
    /// of the other branch's own op (`sqrt` of a negative) still does, as in other engines.
    pub fn where_cond(&self, on_true: &Tensor, on_false: &Tensor) -> Result<Tensor> {
        let v = broadcast_all("where", &[self, on_true, on_false])?;
        apply(MathOp::Where, &[&v[0], &v[1], &v[2]])
    }

    /// `atan2(self, x)`: the angle of the point `(x, self)`, in `(-pi, pi]` (broadcasting).
    pub fn atan2(&self, x: &Tensor) -> Result<Tensor> {
        binary(MathOp::Atan2, self, x)
    }
}
