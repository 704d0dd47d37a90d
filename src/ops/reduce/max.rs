//! Max-reduction along one axis, a custom op (kernel in `kernels/reduce_max.cl`); the
//! gradient goes to the maxima, shared equally between ties.

use crate::backend::opencl::i32_len;
use crate::ops::custom::{apply, CustomOp, HostTensor, KernelArg, OpenClKernel, OpenClLaunch};
use crate::tensor::Tensor;
use crate::{Error, Result};
use rayon::prelude::*;

/// Maximum along `axis`, kept as a size-1 dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxAxis {
    /// The reduced axis.
    pub axis: usize,
}

impl MaxAxis {
    fn view(&self, shape: &[usize]) -> (usize, usize, usize) {
        let outer = shape[..self.axis].iter().product();
        let inner = shape[self.axis + 1..].iter().product();
        (outer, shape[self.axis], inner)
    }
}

impl CustomOp for MaxAxis {
    fn name(&self) -> &'static str {
        "max"
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        let s = inputs[0];
        if self.axis >= s.len() || s[self.axis] == 0 {
            return Err(Error::arg(
                "max",
                "axis",
                format!("axis {} is out of range or empty in {s:?}", self.axis),
            ));
        }
        let mut out = s.to_vec();
        out[self.axis] = 1;
        Ok(out)
    }

    fn cpu_forward(&self, inputs: &[HostTensor<'_>], out: &mut [f32]) -> Result<()> {
        let (_, len, inner) = self.view(inputs[0].shape);
        let x = inputs[0].data;
        let f = |(i, y): (usize, &mut f32)| {
            let (o, c) = (i / inner, i % inner);
            let base = o * len * inner + c;
            let mut m = x[base];
            for j in 1..len {
                let v = x[base + j * inner];
                m = if v > m { v } else { m };
            }
            *y = m;
        };
        if x.len() >= super::super::PAR_THRESHOLD {
            out.par_iter_mut().enumerate().for_each(f);
        } else {
            out.iter_mut().enumerate().for_each(f);
        }
        Ok(())
    }

    fn opencl_kernel(&self) -> Option<OpenClKernel> {
        Some(OpenClKernel::new(
            include_str!("../../../kernels/reduce_max.cl"),
            "max_axis",
        ))
    }

    fn opencl_launch(&self, inputs: &[&[usize]], _: &[usize]) -> Result<OpenClLaunch> {
        let (outer, len, inner) = self.view(inputs[0]);
        i32_len(outer * len * inner, "max")?;
        Ok(OpenClLaunch {
            global: vec![outer * inner],
            local: None,
            args: vec![
                KernelArg::Input(0),
                KernelArg::Output,
                KernelArg::I32(outer as i32),
                KernelArg::I32(len as i32),
                KernelArg::I32(inner as i32),
            ],
        })
    }

    fn backward(
        &self,
        inputs: &[Tensor],
        output: &Tensor,
        gy: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let mask = inputs[0].equal(output)?;
        let count = mask.sum_axes(&[self.axis], true)?;
        Ok(vec![Some(mask.mul(&gy.div(&count)?)?)])
    }
}

impl Tensor {
    /// Maximum over `axes`; `keepdim` keeps them as size-1 dimensions (removing every axis
    /// gives shape `[1]`). The gradient goes to the maxima, split equally between ties.
    pub fn max_axes(&self, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        let mut axes = axes.to_vec();
        axes.sort_unstable();
        axes.dedup();
        let mut y = self.clone();
        for &a in &axes {
            y = apply(MaxAxis { axis: a }, &[&y])?;
        }
        if keepdim {
            return Ok(y);
        }
        let mut s: Vec<usize> = self
            .shape()
            .iter()
            .enumerate()
            .filter(|(d, _)| !axes.contains(d))
            .map(|(_, &n)| n)
            .collect();
        if s.is_empty() {
            s.push(1);
        }
        y.reshape(&s)
    }

    /// Maximum of all elements, shape `[1]`.
    pub fn max(&self) -> Result<Tensor> {
        let axes: Vec<usize> = (0..self.rank()).collect();
        self.max_axes(&axes, false)
    }

    /// Minimum over `axes` (see [`Tensor::max_axes`]).
    pub fn min_axes(&self, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        self.neg()?.max_axes(axes, keepdim)?.neg()
    }
}
