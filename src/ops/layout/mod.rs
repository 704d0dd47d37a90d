//! Layout ops: axis permutation ([`Permute`], a custom op with its kernel in
//! `kernels/layout.cl`) and, composed from `narrow` and `concat`, padding, cropping, circular
//! shifts and `fftshift` / `ifftshift`. All are differentiable on every device.

use super::custom::{apply, CustomOp, HostTensor, KernelArg, OpenClKernel, OpenClLaunch};
use crate::backend::opencl::i32_len;
use crate::tensor::{concat, Tensor};
use crate::{Error, Result};
use rayon::prelude::*;

/// Output axis `d` is input axis `perm[d]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permute {
    /// The permutation of `0..rank`.
    pub perm: Vec<usize>,
}

impl Permute {
    fn check(&self, shape: &[usize]) -> Result<()> {
        let r = shape.len();
        let mut seen = vec![false; r];
        let ok = self.perm.len() == r
            && self
                .perm
                .iter()
                .all(|&p| p < r && !std::mem::replace(&mut seen[p], true));
        if !ok {
            return Err(Error::arg(
                "permute",
                "perm",
                format!(
                    "{:?} is not a permutation of the {r} axes of {shape:?}",
                    self.perm
                ),
            ));
        }
        if r > 8 {
            return Err(Error::shape(
                "permute",
                format!("rank {r} above 8 ({shape:?})"),
            ));
        }
        Ok(())
    }

    /// Output shape and, per output axis, the input stride.
    fn geometry(&self, shape: &[usize]) -> (Vec<usize>, Vec<usize>) {
        let mut strides = vec![1usize; shape.len()];
        for d in (0..shape.len().saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * shape[d + 1];
        }
        let out: Vec<usize> = self.perm.iter().map(|&p| shape[p]).collect();
        let src: Vec<usize> = self.perm.iter().map(|&p| strides[p]).collect();
        (out, src)
    }
}

impl CustomOp for Permute {
    fn name(&self) -> &'static str {
        "permute"
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        self.check(inputs[0])?;
        Ok(self.geometry(inputs[0]).0)
    }

    fn cpu_forward(&self, inputs: &[HostTensor<'_>], out: &mut [f32]) -> Result<()> {
        let (shape, src) = self.geometry(inputs[0].shape);
        let x = inputs[0].data;
        let rank = shape.len();
        let f = |(i, y): (usize, &mut f32)| {
            let (mut rest, mut off) = (i, 0);
            for d in (0..rank).rev() {
                off += (rest % shape[d]) * src[d];
                rest /= shape[d];
            }
            *y = x[off];
        };
        if out.len() >= super::PAR_THRESHOLD {
            out.par_iter_mut().enumerate().for_each(f);
        } else {
            out.iter_mut().enumerate().for_each(f);
        }
        Ok(())
    }

    fn opencl_kernel(&self) -> Option<OpenClKernel> {
        Some(OpenClKernel::new(
            include_str!("../../../kernels/layout.cl"),
            "permute",
        ))
    }

    fn opencl_launch(&self, inputs: &[&[usize]], output: &[usize]) -> Result<OpenClLaunch> {
        let (shape, src) = self.geometry(inputs[0]);
        let n: usize = output.iter().product();
        let mut s8 = [1i32; 8];
        let mut t8 = [0i32; 8];
        for d in 0..shape.len() {
            s8[d] = i32_len(shape[d], "permute")?;
            t8[d] = i32_len(src[d], "permute")?;
        }
        Ok(OpenClLaunch {
            global: vec![n],
            local: None,
            args: vec![
                KernelArg::Input(0),
                KernelArg::Output,
                KernelArg::I32(i32_len(n, "permute")?),
                KernelArg::I32(shape.len() as i32),
                KernelArg::Int8(s8),
                KernelArg::Int8(t8),
            ],
        })
    }

    fn backward(&self, _: &[Tensor], _: &Tensor, gy: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let mut inverse = vec![0; self.perm.len()];
        for (d, &p) in self.perm.iter().enumerate() {
            inverse[p] = d;
        }
        Ok(vec![Some(gy.permute(&inverse)?)])
    }
}

/// Aligns per-axis arguments given for the last `v.len()` axes of a rank-`rank` tensor.
fn trailing(op: &'static str, arg: &'static str, n: usize, rank: usize) -> Result<usize> {
    if n > rank {
        return Err(Error::arg(
            op,
            arg,
            format!("{n} axes given for a rank-{rank} tensor"),
        ));
    }
    Ok(rank - n)
}

impl Tensor {
    /// Reorders the axes: output axis `d` is input axis `perm[d]` (rank up to 8).
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        if perm.iter().enumerate().all(|(d, &p)| d == p) && perm.len() == self.rank() {
            return Ok(self.clone());
        }
        apply(
            Permute {
                perm: perm.to_vec(),
            },
            &[self],
        )
    }

    /// Swaps axes `a` and `b`.
    pub fn transpose(&self, a: usize, b: usize) -> Result<Tensor> {
        if a >= self.rank() || b >= self.rank() {
            return Err(Error::arg(
                "transpose",
                "axes",
                format!("({a}, {b}) out of range for {:?}", self.shape()),
            ));
        }
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Pads with `value`: `pads[i] = (before, after)` for the last `pads.len()` axes.
    pub fn pad(&self, pads: &[(usize, usize)], value: f32) -> Result<Tensor> {
        let first = trailing("pad", "pads", pads.len(), self.rank())?;
        let mut x = self.clone();
        for (i, &(before, after)) in pads.iter().enumerate() {
            let axis = first + i;
            let mut parts = Vec::with_capacity(3);
            for n in [before, after] {
                let mut s = x.shape().to_vec();
                s[axis] = n;
                parts.push(
                    (n > 0)
                        .then(|| Tensor::full(&s, value, x.device()))
                        .transpose()?,
                );
            }
            if parts.iter().all(Option::is_none) {
                continue;
            }
            let mut list: Vec<&Tensor> = Vec::with_capacity(3);
            if let Some(b) = &parts[0] {
                list.push(b);
            }
            list.push(&x);
            if let Some(a) = &parts[1] {
                list.push(a);
            }
            let y = concat(&list, axis)?;
            x = y;
        }
        Ok(x)
    }

    /// The block `start[i] .. start[i] + size[i]` of the last `start.len()` axes.
    pub fn crop(&self, start: &[usize], size: &[usize]) -> Result<Tensor> {
        if start.len() != size.len() {
            return Err(Error::arg(
                "crop",
                "size",
                format!("{} starts but {} sizes", start.len(), size.len()),
            ));
        }
        let first = trailing("crop", "start", start.len(), self.rank())?;
        let mut x = self.clone();
        for (i, (&s, &n)) in start.iter().zip(size).enumerate() {
            let axis = first + i;
            if s == 0 && n == x.shape()[axis] {
                continue;
            }
            x = x.narrow(axis, s, n)?;
        }
        Ok(x)
    }

    /// Circular shift by `shift` positions along `axis` (numpy's `roll`).
    pub fn roll(&self, shift: isize, axis: usize) -> Result<Tensor> {
        if axis >= self.rank() {
            return Err(Error::arg(
                "roll",
                "axis",
                format!("{axis} out of range for {:?}", self.shape()),
            ));
        }
        let n = self.shape()[axis];
        if n == 0 {
            return Ok(self.clone());
        }
        let k = shift.rem_euclid(n as isize) as usize;
        if k == 0 {
            return Ok(self.clone());
        }
        let tail = self.narrow(axis, n - k, k)?;
        let head = self.narrow(axis, 0, n - k)?;
        concat(&[&tail, &head], axis)
    }

    /// Moves the zero frequency to the centre of each axis in `axes` (numpy's `fftshift`).
    pub fn fftshift(&self, axes: &[usize]) -> Result<Tensor> {
        let mut x = self.clone();
        for &a in axes {
            let n = *self.shape().get(a).ok_or_else(|| {
                Error::arg(
                    "fftshift",
                    "axes",
                    format!("{a} out of range for {:?}", self.shape()),
                )
            })?;
            x = x.roll((n / 2) as isize, a)?;
        }
        Ok(x)
    }

    /// The inverse of [`Tensor::fftshift`] (they differ for odd sizes).
    pub fn ifftshift(&self, axes: &[usize]) -> Result<Tensor> {
        let mut x = self.clone();
        for &a in axes {
            let n = *self.shape().get(a).ok_or_else(|| {
                Error::arg(
                    "ifftshift",
                    "axes",
                    format!("{a} out of range for {:?}", self.shape()),
                )
            })?;
            x = x.roll(-((n / 2) as isize), a)?;
        }
        Ok(x)
    }
}
