//! `bragg`: a deep-learning engine for Bragg Coherent Diffraction Imaging.
//!
//! A small tensor + autograd core with a native CPU backend (ndarray + rayon) and an OpenCL
//! backend, and on top of it the BCDI simulator, the gap-inpainting models, the trainer and
//! iterative phase retrieval.

pub mod autograd;
pub mod backend;
pub mod cli;
pub mod data;
pub mod device;
pub mod error;
pub mod fft;
pub mod inpaint;
pub mod loss;
pub mod models;
pub mod nn;
pub mod ops;
pub mod phasing;
pub mod sim;
pub mod tensor;
pub mod train;

pub use device::Device;
pub use error::{Error, Result};
pub use tensor::ops_api::Padding;
pub use tensor::{concat, Tensor};

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
