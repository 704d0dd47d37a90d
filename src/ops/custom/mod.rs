//! User-defined ops: the [`CustomOp`] trait and [`apply`], which runs an op on the device of
//! its inputs and records it in the autograd graph like a built-in op.
//!
//! An op gives
//! - its output shape ([`CustomOp::output_shape`], where it validates its inputs),
//! - a CPU forward over host slices ([`CustomOp::cpu_forward`]),
//! - optionally an OpenCL forward: kernel source and entry point ([`CustomOp::opencl_kernel`])
//!   plus launch geometry and argument list ([`CustomOp::opencl_launch`]), compiled once per
//!   device, cached with the built-in programs' kernels, and enqueued on the device's queue over
//!   the input buffers (no host round trip); or, for multi-pass ops, a whole
//!   [`CustomOp::opencl_forward`],
//! - a backward written with tensor ops or other custom ops ([`CustomOp::backward`]).
//!
//! Without OpenCL code an op still runs on an OpenCL device, through a copy of its inputs to the
//! host and of its output back. Several built-in ops (`ops::extra`, the FFT) are written this way.
//!
//! ```
//! use bragg::ops::custom::{apply, CustomOp, HostTensor, OpenClKernel};
//! use bragg::{Device, Result, Tensor};
//!
//! /// `y = x^3`, with an OpenCL kernel and a backward built from ops.
//! struct Cube;
//!
//! impl CustomOp for Cube {
//!     fn name(&self) -> &'static str {
//!         "cube"
//!     }
//!     fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
//!         Ok(inputs[0].to_vec())
//!     }
//!     fn cpu_forward(&self, inputs: &[HostTensor<'_>], out: &mut [f32]) -> Result<()> {
//!         for (y, x) in out.iter_mut().zip(inputs[0].data) {
//!             *y = x * x * x;
//!         }
//!         Ok(())
//!     }
//!     fn opencl_kernel(&self) -> Option<OpenClKernel> {
//!         Some(OpenClKernel::new(
//!             "__kernel void cube(__global const float* x, __global float* y, int n) {
//!                  int i = get_global_id(0);
//!                  if (i < n) y[i] = x[i] * x[i] * x[i];
//!              }",
//!             "cube",
//!         ))
//!     }
//!     fn backward(&self, inputs: &[Tensor], _out: &Tensor, gy: &Tensor)
//!         -> Result<Vec<Option<Tensor>>> {
//!         Ok(vec![Some(gy.mul(&inputs[0].square()?.mul_scalar(3.0)?)?)])
//!     }
//! }
//!
//! # fn main() -> Result<()> {
//! let x = Tensor::param(&[1.0, 2.0], &[2], &Device::cpu())?;
//! let y = apply(Cube, &[&x])?;
//! assert_eq!(y.to_vec()?, vec![1.0, 8.0]);
//! let g = y.sum()?.backward()?;
//! assert_eq!(g.get(&x).unwrap().to_vec()?, vec![3.0, 12.0]);
//! # Ok(())
//! # }
//! ```

use crate::autograd::record;
use crate::backend::opencl::{cl, i32_len, Arg, ClBuffer, OpenClBackend};
use crate::backend::Storage;
use crate::tensor::Tensor;
use crate::{Error, Result};
use std::borrow::Cow;
use std::sync::Arc;

/// One input of a CPU forward: the numbers (row-major, contiguous) and the shape.
#[derive(Debug, Clone, Copy)]
pub struct HostTensor<'a> {
    /// The elements, row-major.
    pub data: &'a [f32],
    /// The dimensions.
    pub shape: &'a [usize],
}

/// One input of an OpenCL forward: the device buffer and the shape.
#[derive(Debug, Clone, Copy)]
pub struct DeviceTensor<'a> {
    /// The pooled device buffer (f32, row-major, exactly `shape.product()` elements).
    pub buffer: &'a ClBuffer,
    /// The dimensions.
    pub shape: &'a [usize],
}

/// An OpenCL C kernel of a custom op: the program source, the `__kernel` to run and extra
/// build options (`-cl-std=CL1.2` is always given). Programs are compiled once per device and
/// source, then cached.
#[derive(Debug, Clone)]
pub struct OpenClKernel {
    /// OpenCL C source of the program.
    pub source: Cow<'static, str>,
    /// Name of the `__kernel` function to launch.
    pub entry: Cow<'static, str>,
    /// Extra build options, e.g. `-DWIDTH=4`.
    pub options: Cow<'static, str>,
}

impl OpenClKernel {
    /// A kernel `entry` of `source`, built without extra options.
    pub fn new(source: impl Into<Cow<'static, str>>, entry: impl Into<Cow<'static, str>>) -> Self {
        OpenClKernel {
            source: source.into(),
            entry: entry.into(),
            options: Cow::Borrowed(""),
        }
    }

    /// The same kernel built with extra `options`.
    pub fn with_options(mut self, options: impl Into<Cow<'static, str>>) -> Self {
        self.options = options.into();
        self
    }
}

/// One argument of a custom kernel launch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KernelArg {
    /// The buffer of input number `i` (`__global const float*`).
    Input(usize),
    /// The output buffer (`__global float*`).
    Output,
    /// An `int`.
    I32(i32),
    /// A `float`.
    F32(f32),
    /// An `int4`.
    Int4([i32; 4]),
    /// An `int8`.
    Int8([i32; 8]),
    /// `__local` scratch memory of this many bytes.
    Local(usize),
}

/// Launch geometry and arguments of a custom kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenClLaunch {
    /// Global work size, 1 to 3 dimensions (rounded up to a multiple of `local`).
    pub global: Vec<usize>,
    /// Work-group size, or `None` to let the driver choose (then `global` is exact).
    pub local: Option<Vec<usize>>,
    /// The kernel's arguments, in the order of its signature.
    pub args: Vec<KernelArg>,
}

impl OpenClLaunch {
    /// The default launch: one work-item per output element and arguments
    /// `(in_0, ..., in_{k-1}, out, int n)` with `n` the number of output elements.
    pub fn per_element(inputs: usize, n: usize) -> Result<Self> {
        let mut args: Vec<KernelArg> = (0..inputs).map(KernelArg::Input).collect();
        args.push(KernelArg::Output);
        args.push(KernelArg::I32(i32_len(n, "custom op")?));
        Ok(OpenClLaunch {
            global: vec![n],
            local: None,
            args,
        })
    }
}

/// A user-defined differentiable op with one output: see the [module docs](self).
pub trait CustomOp: Send + Sync {
    /// The op's name, used in error messages and recorded in the graph.
    fn name(&self) -> &'static str;

    /// The output shape for these input shapes; the place to validate the inputs (return an
    /// error naming what is wrong).
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>>;

    /// The forward on the host: fills `out` (zero-initialised, output-shape sized) from
    /// `inputs`.
    fn cpu_forward(&self, inputs: &[HostTensor<'_>], out: &mut [f32]) -> Result<()>;

    /// The OpenCL kernel of the forward, if the op has one.
    fn opencl_kernel(&self) -> Option<OpenClKernel> {
        None
    }

    /// Geometry and arguments of the kernel launch; by default
    /// [`OpenClLaunch::per_element`].
    fn opencl_launch(&self, inputs: &[&[usize]], output: &[usize]) -> Result<OpenClLaunch> {
        OpenClLaunch::per_element(inputs.len(), output.iter().product())
    }

    /// The whole OpenCL forward: writes `output` (uninitialised, output-shape sized) on `be`'s
    /// queue. The default launches [`CustomOp::opencl_kernel`] with
    /// [`CustomOp::opencl_launch`]; override it for ops of several launches (use
    /// [`OpenClBackend::launch_source`] and [`OpenClBackend::alloc`] for scratch buffers).
    /// Returns `false` when the op has no OpenCL code: the engine then runs
    /// [`CustomOp::cpu_forward`] on host copies.
    fn opencl_forward(
        &self,
        be: &OpenClBackend,
        inputs: &[DeviceTensor<'_>],
        output: &ClBuffer,
        output_shape: &[usize],
    ) -> Result<bool> {
        let Some(kernel) = self.opencl_kernel() else {
            return Ok(false);
        };
        let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape).collect();
        let launch = self.opencl_launch(&shapes, output_shape)?;
        launch_kernel(be, self.name(), &kernel, &launch, inputs, output)?;
        Ok(true)
    }

    /// Gradients of the inputs (one entry per input, `None` where an input gets none) from the
    /// gradient `grad` of the output, written with tensor ops or custom ops so that they run on
    /// the inputs' device. `inputs` are the forward's inputs (`inputs[i].requires_grad()` says
    /// whether input `i` needs a gradient; a gradient returned for one that does not is
    /// ignored) and `output` its value (without history). Backward runs without recording a
    /// graph. The default fails: the op is not differentiable.
    fn backward(
        &self,
        inputs: &[Tensor],
        output: &Tensor,
        grad: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let _ = (inputs, output, grad);
        Err(Error::Msg(format!(
            "custom op `{}` has no backward (implement CustomOp::backward)",
            self.name()
        )))
    }
}

/// Launches a custom kernel with its argument list over the given buffers.
pub fn launch_kernel(
    be: &OpenClBackend,
    op: &'static str,
    kernel: &OpenClKernel,
    launch: &OpenClLaunch,
    inputs: &[DeviceTensor<'_>],
    output: &ClBuffer,
) -> Result<()> {
    let args: Vec<Arg<'_>> = launch
        .args
        .iter()
        .map(|a| {
            Ok(match *a {
                KernelArg::Input(i) => Arg::Buf(
                    inputs
                        .get(i)
                        .ok_or_else(|| {
                            Error::arg(
                                op,
                                "opencl_launch",
                                format!(
                                    "argument Input({i}) but the op has {} input(s)",
                                    inputs.len()
                                ),
                            )
                        })?
                        .buffer,
                ),
                KernelArg::Output => Arg::Buf(output),
                KernelArg::I32(v) => Arg::I32(v),
                KernelArg::F32(v) => Arg::F32(v),
                KernelArg::Int4(v) => Arg::Int4(v),
                KernelArg::Int8(v) => Arg::Int8(v),
                KernelArg::Local(b) => Arg::Local(b),
            })
        })
        .collect::<Result<_>>()?;
    be.launch_source(
        &kernel.source,
        &kernel.entry,
        &kernel.options,
        &args,
        &launch.global,
        launch.local.as_deref(),
    )
    .map_err(|e| match e {
        Error::OpenCl(m) => Error::OpenCl(format!("custom op `{op}`: {m}")),
        other => other,
    })
}

/// Runs `op` on `inputs` (all on one device) and records it in the autograd graph.
pub fn apply(op: impl CustomOp + 'static, inputs: &[&Tensor]) -> Result<Tensor> {
    apply_arc(Arc::new(op), inputs)
}

/// [`apply`] for a shared op (an op that its own backward applies again).
pub fn apply_arc(op: Arc<dyn CustomOp>, inputs: &[&Tensor]) -> Result<Tensor> {
    let name = op.name();
    let first = inputs
        .first()
        .ok_or_else(|| Error::arg(name, "inputs", "a custom op needs at least one input"))?;
    let device = first.device().clone();
    for t in inputs {
        if !t.device().same(&device) {
            return Err(Error::Device(format!(
                "{name}: inputs on different devices ({} and {})",
                device.name(),
                t.device().name()
            )));
        }
    }
    let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape()).collect();
    let out_shape = op.output_shape(&shapes)?;
    let n: usize = out_shape.iter().product();
    let storage = {
        let guards: Vec<_> = inputs.iter().map(|t| t.storage()).collect();
        match &*guards[0] {
            Storage::Cpu(_) => {
                let views = guards
                    .iter()
                    .zip(&shapes)
                    .map(|(g, s)| {
                        Ok(HostTensor {
                            data: g.cpu(name)?,
                            shape: s,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let mut out = vec![0.0f32; n];
                op.cpu_forward(&views, &mut out)?;
                Storage::Cpu(out)
            }
            Storage::OpenCl(_) => {
                let be = device.opencl_backend().ok_or_else(|| {
                    Error::Device(format!(
                        "{name}: {} holds OpenCL buffers but is not an opened OpenCL device",
                        device.name()
                    ))
                })?;
                let views = guards
                    .iter()
                    .zip(&shapes)
                    .map(|(g, s)| {
                        Ok(DeviceTensor {
                            buffer: cl(g, name)?,
                            shape: s,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let out = be.alloc(n)?;
                if n == 0 || op.opencl_forward(&be, &views, &out, &out_shape)? {
                    Storage::OpenCl(out)
                } else {
                    // No OpenCL code: run the CPU forward on host copies.
                    let host: Vec<Vec<f32>> = views
                        .iter()
                        .map(|v| be.read(v.buffer))
                        .collect::<Result<_>>()?;
                    let hv: Vec<HostTensor<'_>> = host
                        .iter()
                        .zip(&shapes)
                        .map(|(d, s)| HostTensor { data: d, shape: s })
                        .collect();
                    let mut y = vec![0.0f32; n];
                    op.cpu_forward(&hv, &mut y)?;
                    Storage::OpenCl(be.upload_slice(&y)?)
                }
            }
        }
    };
    let out = Tensor::from_parts(storage, out_shape, device, None, false);
    // The inputs themselves (their `requires_grad` tells the backward which gradients are
    // needed); the graph node holds them anyway, so this adds no reference cycle.
    let saved: Vec<Tensor> = inputs.iter().map(|t| (*t).clone()).collect();
    let out_saved = out.detach();
    Ok(record(out, name, inputs, move |gy| {
        let grads = op.backward(&saved, &out_saved, gy)?;
        if grads.len() != saved.len() {
            return Err(Error::Msg(format!(
                "custom op `{name}`: backward returned {} gradient(s) for {} input(s)",
                grads.len(),
                saved.len()
            )));
        }
        Ok(grads)
    }))
}

impl Tensor {
    /// Applies a one-input custom op (see [`crate::ops::custom`]).
    pub fn apply_op1(&self, op: impl CustomOp + 'static) -> Result<Tensor> {
        apply(op, &[self])
    }

    /// Applies a two-input custom op.
    pub fn apply_op2(&self, other: &Tensor, op: impl CustomOp + 'static) -> Result<Tensor> {
        apply(op, &[self, other])
    }

    /// Applies a three-input custom op.
    pub fn apply_op3(&self, b: &Tensor, c: &Tensor, op: impl CustomOp + 'static) -> Result<Tensor> {
        apply(op, &[self, b, c])
    }
}
