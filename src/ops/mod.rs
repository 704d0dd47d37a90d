//! Primitive operations: one folder per op family, each with its shape rules and geometry
//! (`mod.rs`), its CPU code (`cpu.rs`) and, for the OpenCL backend, its launcher.
//! The differentiable tensor-level API over these primitives lives in [`crate::tensor`].

pub(crate) mod alloc;
pub mod conv;
pub mod copy;
pub mod custom;
pub mod dropout;
pub mod elementwise;
pub mod fft;
pub mod filter;
pub mod layout;
pub mod math;
pub mod matmul;
pub mod norm;
pub mod optim;
pub mod pool;
pub mod reduce;
pub mod resample;

/// Below this many elements a CPU loop runs on one thread: the rayon fork costs more.
pub(crate) const PAR_THRESHOLD: usize = 1 << 15;
