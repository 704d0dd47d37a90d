//! `bragg`: a deep-learning engine for Bragg Coherent Diffraction Imaging.
//!
//! A small tensor + autograd core with a native CPU backend (ndarray + rayon) and an OpenCL
//! backend, and on top of it the BCDI simulator, the gap-inpainting models, the trainer and
//! iterative phase retrieval.

pub mod cli;
pub mod data;
pub mod error;
pub mod fft;
pub mod sim;

pub use error::{Error, Result};
