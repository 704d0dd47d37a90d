//! [`ComplexTensor`]: complex64 numbers as a pair of real [`Tensor`]s (real and imaginary
//! parts of one shape), so every complex op is differentiable through the real ops it is made
//! of. The FFT packs the pair into an interleaved `[..., 2]` tensor for the transform (the
//! layout of rustfft and of the OpenCL Stockham kernels) and unpacks the result.
//!
//! Gradients follow the convention of a real loss of real parameters: `d loss / d re` and
//! `d loss / d im` separately (PyTorch's conjugate Wirtinger gradient, read as two reals).
//!
//! ```
//! use bragg::{ComplexTensor, Device, Result, Tensor};
//!
//! # fn main() -> Result<()> {
//! let dev = Device::cpu();
//! let phase = Tensor::param(&[0.0, 0.5, 1.0, 1.5], &[2, 2], &dev)?;
//! let obj = ComplexTensor::exp_i(&phase)?; // |obj| = 1
//! let intensity = obj.fftn()?.norm_sqr()?; // |FFT(obj)|^2
//! let parseval = intensity.sum()?.item()? / 4.0; // sum |F|^2 / N = sum |obj|^2
//! assert!((parseval - 4.0).abs() < 1e-4);
//! let grads = intensity.sum()?.backward()?; // constant in the phase
//! assert!(grads.get(&phase).unwrap().to_vec()?.iter().all(|g| g.abs() < 1e-4));
//! # Ok(())
//! # }
//! ```

use super::{concat, Tensor};
use crate::device::Device;
use crate::fft::Direction;
use crate::ops::fft::fft_interleaved;
use crate::{Error, Result};
use num_complex::Complex32;

/// A complex64 tensor: real and imaginary parts of one shape on one device.
#[derive(Clone, Debug)]
pub struct ComplexTensor {
    re: Tensor,
    im: Tensor,
}

impl ComplexTensor {
    /// `re + i im`; both parts must have one shape and one device.
    pub fn new(re: Tensor, im: Tensor) -> Result<Self> {
        if re.shape() != im.shape() {
            return Err(Error::shape(
                "ComplexTensor::new",
                format!(
                    "real part {:?} and imaginary part {:?} differ",
                    re.shape(),
                    im.shape()
                ),
            ));
        }
        if !re.device().same(im.device()) {
            return Err(Error::Device(format!(
                "ComplexTensor::new: parts on different devices ({} and {})",
                re.device().name(),
                im.device().name()
            )));
        }
        Ok(ComplexTensor { re, im })
    }

    /// A real tensor as complex (imaginary part 0).
    pub fn from_real(re: &Tensor) -> Result<Self> {
        let im = Tensor::zeros(re.shape(), re.device())?;
        Ok(ComplexTensor { re: re.clone(), im })
    }

    /// Zeros of `shape`.
    pub fn zeros(shape: &[usize], device: &Device) -> Result<Self> {
        Ok(ComplexTensor {
            re: Tensor::zeros(shape, device)?,
            im: Tensor::zeros(shape, device)?,
        })
    }

    /// `exp(i phase) = cos(phase) + i sin(phase)`.
    pub fn exp_i(phase: &Tensor) -> Result<Self> {
        Ok(ComplexTensor {
            re: phase.cos()?,
            im: phase.sin()?,
        })
    }

    /// `magnitude * exp(i phase)` (broadcasting).
    pub fn from_polar(magnitude: &Tensor, phase: &Tensor) -> Result<Self> {
        ComplexTensor::exp_i(phase)?.mul_real(magnitude)
    }

    /// A tensor holding a copy of host complex numbers.
    pub fn from_complex(data: &[Complex32], shape: &[usize], device: &Device) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::shape(
                "ComplexTensor::from_complex",
                format!("shape {shape:?} needs {n} elements, got {}", data.len()),
            ));
        }
        let re: Vec<f32> = data.iter().map(|c| c.re).collect();
        let im: Vec<f32> = data.iter().map(|c| c.im).collect();
        Ok(ComplexTensor {
            re: Tensor::from_vec(re, shape, device)?,
            im: Tensor::from_vec(im, shape, device)?,
        })
    }

    /// Copies the numbers to the host.
    pub fn to_complex_vec(&self) -> Result<Vec<Complex32>> {
        let (re, im) = (self.re.to_vec()?, self.im.to_vec()?);
        Ok(re
            .into_iter()
            .zip(im)
            .map(|(r, i)| Complex32::new(r, i))
            .collect())
    }

    /// Reads an interleaved tensor `[..., 2]` (last axis = (re, im)).
    pub fn from_interleaved(t: &Tensor) -> Result<Self> {
        let s = t.shape();
        if s.len() < 2 || s[s.len() - 1] != 2 {
            return Err(Error::shape(
                "ComplexTensor::from_interleaved",
                format!("expected [..., 2] with at least one axis before the pair, got {s:?}"),
            ));
        }
        let shape = &s[..s.len() - 1];
        let last = s.len() - 1;
        Ok(ComplexTensor {
            re: t.narrow(last, 0, 1)?.reshape(shape)?,
            im: t.narrow(last, 1, 1)?.reshape(shape)?,
        })
    }

    /// The interleaved tensor `[..., 2]` (last axis = (re, im)).
    pub fn to_interleaved(&self) -> Result<Tensor> {
        let mut s = self.shape().to_vec();
        s.push(1);
        let last = s.len() - 1;
        concat(&[&self.re.reshape(&s)?, &self.im.reshape(&s)?], last)
    }

    /// The real part.
    pub fn re(&self) -> &Tensor {
        &self.re
    }

    /// The imaginary part.
    pub fn im(&self) -> &Tensor {
        &self.im
    }

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        self.re.shape()
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.re.rank()
    }

    /// Number of complex elements.
    pub fn numel(&self) -> usize {
        self.re.numel()
    }

    /// The device holding the numbers.
    pub fn device(&self) -> &Device {
        self.re.device()
    }

    /// The same numbers without history.
    pub fn detach(&self) -> Self {
        ComplexTensor {
            re: self.re.detach(),
            im: self.im.detach(),
        }
    }

    /// The same numbers with another shape of the same size.
    pub fn reshape(&self, shape: &[usize]) -> Result<Self> {
        Ok(ComplexTensor {
            re: self.re.reshape(shape)?,
            im: self.im.reshape(shape)?,
        })
    }

    fn map(&self, f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Self> {
        Ok(ComplexTensor {
            re: f(&self.re)?,
            im: f(&self.im)?,
        })
    }

    /// The complex conjugate.
    pub fn conj(&self) -> Result<Self> {
        Ok(ComplexTensor {
            re: self.re.clone(),
            im: self.im.neg()?,
        })
    }

    /// `-z`.
    pub fn neg(&self) -> Result<Self> {
        self.map(|t| t.neg())
    }

    /// `self + other` (broadcasting).
    pub fn add(&self, other: &ComplexTensor) -> Result<Self> {
        Ok(ComplexTensor {
            re: self.re.add(&other.re)?,
            im: self.im.add(&other.im)?,
        })
    }

    /// `self - other` (broadcasting).
    pub fn sub(&self, other: &ComplexTensor) -> Result<Self> {
        Ok(ComplexTensor {
            re: self.re.sub(&other.re)?,
            im: self.im.sub(&other.im)?,
        })
    }

    /// The complex product (broadcasting).
    pub fn mul(&self, other: &ComplexTensor) -> Result<Self> {
        let (a, b, c, d) = (&self.re, &self.im, &other.re, &other.im);
        Ok(ComplexTensor {
            re: a.mul(c)?.sub(&b.mul(d)?)?,
            im: a.mul(d)?.add(&b.mul(c)?)?,
        })
    }

    /// The complex quotient (broadcasting).
    pub fn div(&self, other: &ComplexTensor) -> Result<Self> {
        let den = other.norm_sqr()?;
        let num = self.mul(&other.conj()?)?;
        Ok(ComplexTensor {
            re: num.re.div(&den)?,
            im: num.im.div(&den)?,
        })
    }

    /// Multiplies by a real tensor (broadcasting).
    pub fn mul_real(&self, t: &Tensor) -> Result<Self> {
        self.map(|p| p.mul(t))
    }

    /// Multiplies by a real constant.
    pub fn scale(&self, c: f32) -> Result<Self> {
        self.map(|p| p.mul_scalar(c))
    }

    /// `|z|^2 = re^2 + im^2` (smooth everywhere).
    pub fn norm_sqr(&self) -> Result<Tensor> {
        self.re.square()?.add(&self.im.square()?)
    }

    /// `|z|`; its gradient is undefined at 0 (use [`ComplexTensor::norm_sqr`] there).
    pub fn abs(&self) -> Result<Tensor> {
        self.norm_sqr()?.sqrt()
    }

    /// The argument `atan2(im, re)` in `(-pi, pi]`.
    pub fn angle(&self) -> Result<Tensor> {
        self.im.atan2(&self.re)
    }

    /// `exp(z) = exp(re) (cos(im) + i sin(im))`.
    pub fn exp(&self) -> Result<Self> {
        ComplexTensor::exp_i(&self.im)?.mul_real(&self.re.exp()?)
    }

    /// Sum of all elements, shape `[1]`.
    pub fn sum(&self) -> Result<Self> {
        self.map(|t| t.sum())
    }

    /// Sum over `axes`.
    pub fn sum_axes(&self, axes: &[usize], keepdim: bool) -> Result<Self> {
        self.map(|t| t.sum_axes(axes, keepdim))
    }

    /// Mean of all elements, shape `[1]`.
    pub fn mean(&self) -> Result<Self> {
        self.map(|t| t.mean())
    }

    fn transform(&self, ndim: usize, direction: Direction, scaled: bool) -> Result<Self> {
        let y = fft_interleaved(&self.to_interleaved()?, ndim, direction, scaled)?;
        ComplexTensor::from_interleaved(&y)
    }

    /// Forward FFT (unscaled) over the last `ndim` axes; leading axes are a batch.
    pub fn fft(&self, ndim: usize) -> Result<Self> {
        self.transform(ndim, Direction::Forward, false)
    }

    /// Inverse FFT (scaled by 1/N, numpy's `ifftn`) over the last `ndim` axes.
    pub fn ifft(&self, ndim: usize) -> Result<Self> {
        self.transform(ndim, Direction::Inverse, true)
    }

    /// Forward FFT over every axis.
    pub fn fftn(&self) -> Result<Self> {
        self.fft(self.rank())
    }

    /// Inverse FFT over every axis.
    pub fn ifftn(&self) -> Result<Self> {
        self.ifft(self.rank())
    }

    /// `fftshift` of `axes` (zero frequency to the centre).
    pub fn fftshift(&self, axes: &[usize]) -> Result<Self> {
        self.map(|t| t.fftshift(axes))
    }

    /// `ifftshift` of `axes`.
    pub fn ifftshift(&self, axes: &[usize]) -> Result<Self> {
        self.map(|t| t.ifftshift(axes))
    }

    /// Copies the tensor to another device (no history is kept).
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        self.map(|t| t.to_device(device))
    }
}

impl Tensor {
    /// `exp(i self)` as a complex tensor.
    pub fn exp_i(&self) -> Result<ComplexTensor> {
        ComplexTensor::exp_i(self)
    }
}
