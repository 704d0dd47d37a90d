//! `bragg`: a deep-learning engine for Bragg Coherent Diffraction Imaging.
//!
//! A small tensor + autograd core with a native CPU backend (ndarray + rayon) and an OpenCL
//! backend, and on top of it the BCDI simulator, the gap-inpainting models, the trainer and
//! iterative phase retrieval.
//!
//! Extending it: a layer implements [`nn::Module`]; an op with its own CPU code, OpenCL kernel
//! and backward implements [`CustomOp`] ([`ops::custom`]); complex numbers and the
//! differentiable FFT are [`ComplexTensor`]. `docs/ADDING_OPS.md` is the guide, and
//! `examples/custom_op.rs` and `examples/fourier_loss.rs` show both from outside the crate.

pub mod autograd;
pub mod backend;
pub mod cli;
pub mod data;
pub mod device;
pub mod dist;
pub mod error;
pub mod fft;
pub mod inpaint;
pub mod loss;
pub mod models;
pub mod nn;
pub mod ops;
pub mod phasenet;
pub mod phasing;
pub mod plot;
pub mod sim;
pub mod tensor;
pub mod train;

pub use device::Device;
pub use error::{Error, Result};
pub use ops::custom::{CustomOp, DeviceTensor, HostTensor, KernelArg, OpenClKernel, OpenClLaunch};
pub use tensor::ops_api::Padding;
pub use tensor::{concat, ComplexTensor, Tensor};

/// Re-exported so that users need no version-matched dependency of their own.
pub use ndarray;
/// Re-exported complex numbers ([`num_complex::Complex32`] is the element of [`ComplexTensor`]).
pub use num_complex;
/// Re-exported random numbers (layers and initialisers take `rand` generators).
pub use rand;
/// Re-exported seeded generator used by the examples and tests.
pub use rand_chacha;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
