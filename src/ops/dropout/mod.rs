//! Dropout as a custom op: element `i` is zeroed when a hash of `(seed, i)` falls below `p`,
//! the rest are scaled by `1 / (1 - p)`. The hash is the same on the CPU and in
//! `kernels/dropout.cl`, so both devices drop the same elements for one seed, and the backward
//! is the same op applied to the gradient (no mask is stored).

use super::custom::{apply, CustomOp, HostTensor, KernelArg, OpenClKernel, OpenClLaunch};
use crate::backend::opencl::i32_len;
use crate::tensor::Tensor;
use crate::{Error, Result};
use rayon::prelude::*;

/// Dropout with probability `p` and a seed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    /// Probability of zeroing an element, in `[0, 1)`.
    pub p: f32,
    /// Seed of the mask.
    pub seed: u64,
}

#[inline(always)]
fn hash(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

impl Dropout {
    fn seed_parts(&self) -> (u32, u32) {
        (self.seed as u32, (self.seed >> 32) as u32)
    }

    /// Whether element `i` is kept.
    #[inline(always)]
    pub fn keeps(&self, i: usize) -> bool {
        let (lo, hi) = self.seed_parts();
        let s = hash(lo ^ hash(hi.wrapping_add(0x9e37_79b9)));
        let h = hash((i as u32) ^ s);
        let u = (h >> 8) as f32 * (1.0 / 16_777_216.0);
        u >= self.p
    }
}

impl CustomOp for Dropout {
    fn name(&self) -> &'static str {
        "dropout"
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        if !(0.0..1.0).contains(&self.p) {
            return Err(Error::arg(
                "dropout",
                "p",
                format!("must be in [0, 1), got {}", self.p),
            ));
        }
        Ok(inputs[0].to_vec())
    }

    fn cpu_forward(&self, inputs: &[HostTensor<'_>], out: &mut [f32]) -> Result<()> {
        let x = inputs[0].data;
        let scale = 1.0 / (1.0 - self.p);
        let f = |(i, y): (usize, &mut f32)| *y = if self.keeps(i) { x[i] * scale } else { 0.0 };
        if out.len() >= super::PAR_THRESHOLD {
            out.par_iter_mut().enumerate().for_each(f);
        } else {
            out.iter_mut().enumerate().for_each(f);
        }
        Ok(())
    }

    fn opencl_kernel(&self) -> Option<OpenClKernel> {
        Some(OpenClKernel::new(
            include_str!("../../../kernels/dropout.cl"),
            "dropout",
        ))
    }

    fn opencl_launch(&self, _: &[&[usize]], output: &[usize]) -> Result<OpenClLaunch> {
        let n: usize = output.iter().product();
        let (lo, hi) = self.seed_parts();
        Ok(OpenClLaunch {
            global: vec![n],
            local: None,
            args: vec![
                KernelArg::Input(0),
                KernelArg::Output,
                KernelArg::I32(i32_len(n, "dropout")?),
                KernelArg::I32(lo as i32),
                KernelArg::I32(hi as i32),
                KernelArg::F32(self.p),
                KernelArg::F32(1.0 / (1.0 - self.p)),
            ],
        })
    }

    fn backward(&self, _: &[Tensor], _: &Tensor, gy: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(apply(*self, &[gy])?)])
    }
}

impl Tensor {
    /// Zeroes each element with probability `p` (a function of `seed` and the element index)
    /// and scales the others by `1 / (1 - p)`. Use a new seed per step; skip the call at
    /// inference (see [`crate::nn::Dropout`]).
    pub fn dropout(&self, p: f32, seed: u64) -> Result<Tensor> {
        if p == 0.0 {
            return Ok(self.clone());
        }
        apply(Dropout { p, seed }, &[self])
    }
}
