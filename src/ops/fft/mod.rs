//! The differentiable N-d FFT as a [`CustomOp`] over interleaved complex tensors
//! (`[..., 2]`, last axis = (re, im)): rustfft plans on the CPU ([`crate::fft::FftPlan`]), the
//! Stockham passes of `kernels/fft.cl` on OpenCL ([`crate::backend::opencl::fft::ClFftPlan`]).
//!
//! The transform runs over the last `ndim` axes before the complex axis; leading axes are a
//! batch. Conventions follow numpy: the forward transform is unscaled, the inverse is scaled by
//! 1/N when `scaled`. The backward of a complex-linear map `y = A x` is `A^H gy` (gradients of a
//! real loss with respect to (re, im) read as one complex number): the unscaled inverse for the
//! forward transform and `(1/N)` times the forward transform for the scaled inverse.

use super::custom::{apply_arc, CustomOp, DeviceTensor, HostTensor};
use crate::backend::opencl::fft::ClFftPlan;
use crate::backend::opencl::{ClBuffer, OpenClBackend};
use crate::fft::{Direction, FftPlan};
use crate::tensor::Tensor;
use crate::{Error, Result};
use num_complex::Complex32;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// An FFT over the last `ndim` axes of an interleaved complex tensor `[..., 2]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FftOp {
    /// Forward (`exp(-2 pi i k n / N)`) or inverse.
    pub direction: Direction,
    /// Number of transformed axes (those just before the complex axis).
    pub ndim: usize,
    /// Whether the inverse is scaled by 1/N (numpy's `ifftn`); ignored for the forward.
    pub scaled: bool,
}

impl FftOp {
    /// The complex shape (without the trailing 2) of an interleaved input, validated.
    fn complex_shape<'a>(&self, shape: &'a [usize]) -> Result<&'a [usize]> {
        let op = self.name();
        if shape.last() != Some(&2) {
            return Err(Error::shape(
                op,
                format!("expected an interleaved complex tensor [..., 2], got {shape:?}"),
            ));
        }
        let c = &shape[..shape.len() - 1];
        if self.ndim == 0 || self.ndim > c.len() {
            return Err(Error::arg(
                op,
                "ndim",
                format!(
                    "{} transformed axes for a complex tensor of shape {c:?}",
                    self.ndim
                ),
            ));
        }
        Ok(c)
    }

    /// Product of the transformed sizes.
    fn transformed_len(&self, complex_shape: &[usize]) -> usize {
        complex_shape[complex_shape.len() - self.ndim..]
            .iter()
            .product()
    }
}

/// The CPU plans, one per transformed shape.
fn cpu_plan(shape: &[usize]) -> Arc<FftPlan> {
    static PLANS: OnceLock<Mutex<HashMap<Vec<usize>, Arc<FftPlan>>>> = OnceLock::new();
    let plans = PLANS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = plans.lock().unwrap_or_else(|e| e.into_inner());
    if map.len() > 64 {
        map.clear();
    }
    map.entry(shape.to_vec())
        .or_insert_with(|| Arc::new(FftPlan::new(shape)))
        .clone()
}

impl CustomOp for FftOp {
    fn name(&self) -> &'static str {
        match self.direction {
            Direction::Forward => "fft",
            Direction::Inverse => "ifft",
        }
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        if inputs.len() != 1 {
            return Err(Error::arg(self.name(), "inputs", "takes one input"));
        }
        self.complex_shape(inputs[0])?;
        Ok(inputs[0].to_vec())
    }

    fn cpu_forward(&self, inputs: &[HostTensor<'_>], out: &mut [f32]) -> Result<()> {
        let c = self.complex_shape(inputs[0].shape)?;
        let t = &c[c.len() - self.ndim..];
        let len: usize = t.iter().product();
        out.copy_from_slice(inputs[0].data);
        if len == 0 {
            return Ok(());
        }
        // SAFETY: Complex32 is #[repr(C)] { re: f32, im: f32 } with the alignment of f32, and
        // `out` holds an even number of f32 (its last axis is 2).
        let data: &mut [Complex32] = unsafe {
            std::slice::from_raw_parts_mut(out.as_mut_ptr() as *mut Complex32, out.len() / 2)
        };
        let plan = cpu_plan(t);
        for chunk in data.chunks_mut(len) {
            if self.direction == Direction::Inverse && !self.scaled {
                plan.process_unscaled(chunk, self.direction);
            } else {
                plan.process(chunk, self.direction);
            }
        }
        Ok(())
    }

    fn opencl_forward(
        &self,
        be: &OpenClBackend,
        inputs: &[DeviceTensor<'_>],
        output: &ClBuffer,
        _output_shape: &[usize],
    ) -> Result<bool> {
        let c = self.complex_shape(inputs[0].shape)?;
        let plan = ClFftPlan::batched(c, self.ndim)?;
        let scratch = be.alloc(2 * plan.len())?;
        plan.execute(
            be,
            inputs[0].buffer,
            output,
            &scratch,
            self.direction,
            self.scaled,
        )?;
        Ok(true)
    }

    fn backward(
        &self,
        inputs: &[Tensor],
        _output: &Tensor,
        grad: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let g = match (self.direction, self.scaled) {
            (Direction::Forward, _) => fft_interleaved(grad, self.ndim, Direction::Inverse, false)?,
            (Direction::Inverse, false) => {
                fft_interleaved(grad, self.ndim, Direction::Forward, false)?
            }
            (Direction::Inverse, true) => {
                let c = self.complex_shape(inputs[0].shape())?;
                let n = self.transformed_len(c).max(1);
                fft_interleaved(grad, self.ndim, Direction::Forward, false)?
                    .mul_scalar(1.0 / n as f32)?
            }
        };
        Ok(vec![Some(g)])
    }
}

/// The FFT of an interleaved complex tensor `[..., 2]` over its last `ndim` complex axes,
/// differentiable. `scaled` applies numpy's 1/N to the inverse.
pub fn fft_interleaved(
    x: &Tensor,
    ndim: usize,
    direction: Direction,
    scaled: bool,
) -> Result<Tensor> {
    apply_arc(
        Arc::new(FftOp {
            direction,
            ndim,
            scaled,
        }),
        &[x],
    )
}
