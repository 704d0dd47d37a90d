//! Operations: one folder per op family.
//!
//! The primitives of the [`crate::backend::Backend`] trait (conv, pool, resample, elementwise,
//! reduce, copy, filter, optim) have their shape rules and geometry in `mod.rs`, their CPU code
//! in `cpu.rs` and their OpenCL launcher in `opencl.rs`; their differentiable API lives in
//! [`crate::tensor`]. The newer ops (math, layout, matmul, dropout, `reduce::max`, fft) are
//! [`custom::CustomOp`]s, the same public machinery users extend the engine with: each folder
//! holds the whole op (shape rules, CPU code, kernel source, backward, `Tensor` method).
//! `docs/ADDING_OPS.md` is the guide.

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
