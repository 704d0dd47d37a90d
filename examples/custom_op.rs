//! A user-defined op from outside the crate, on the public `bragg::` API only: a gated
//! soft-shrink `y = g * sign(x) * max(|x| - lambda, 0)` (the sparsity step of phase retrieval,
//! scaled by a learnable gate) with
//! - its own CPU code,
//! - its own OpenCL kernel (compiled once per device, run on the device's queue over the
//!   tensors' buffers: no host round trip),
//! - a backward written with built-in ops plus a second custom op (the shrink mask).
//!
//! It checks the forward against the same function composed from built-in ops and the gradient
//! by finite differences, and exits non-zero on a mismatch.
//!
//! ```text
//! BRAGG_DEVICE=cpu      cargo run --release --example custom_op
//! BRAGG_DEVICE=opencl:0 cargo run --release --example custom_op
//! ```

use bragg::autograd::gradcheck::check_gradients;
use bragg::ops::custom::apply;
use bragg::{CustomOp, Device, Error, HostTensor, OpenClKernel, Result, Tensor};

/// The OpenCL source of both ops (one program, two kernels, compiled once per device).
const KERNELS: &str = r#"
__kernel void gated_shrink(__global const float* x, __global const float* g,
                           __global float* y, int n, float lambda) {
    int i = get_global_id(0);
    if (i >= n) return;
    float m = fabs(x[i]) - lambda;
    y[i] = m > 0.0f ? g[i] * copysign(m, x[i]) : 0.0f;
}

__kernel void shrink_mask(__global const float* x, __global float* y, int n, float lambda) {
    int i = get_global_id(0);
    if (i >= n) return;
    y[i] = fabs(x[i]) > lambda ? 1.0f : 0.0f;
}
"#;

/// `y = g * sign(x) * max(|x| - lambda, 0)`; inputs `x` and `g` of one shape.
struct GatedShrink {
    lambda: f32,
}

/// `1` where `|x| > lambda`, else `0` (no gradient).
struct ShrinkMask {
    lambda: f32,
}

fn same_shapes(op: &'static str, inputs: &[&[usize]], arity: usize) -> Result<Vec<usize>> {
    if inputs.len() != arity || inputs.iter().any(|s| *s != inputs[0]) {
        return Err(Error::Msg(format!(
            "{op}: needs {arity} input(s) of one shape, got {inputs:?}"
        )));
    }
    Ok(inputs[0].to_vec())
}

impl CustomOp for GatedShrink {
    fn name(&self) -> &'static str {
        "gated_shrink"
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        same_shapes(self.name(), inputs, 2)
    }

    fn cpu_forward(&self, inputs: &[HostTensor<'_>], out: &mut [f32]) -> Result<()> {
        let (x, g) = (inputs[0].data, inputs[1].data);
        for ((y, &x), &g) in out.iter_mut().zip(x).zip(g) {
            let m = x.abs() - self.lambda;
            *y = if m > 0.0 { g * m.copysign(x) } else { 0.0 };
        }
        Ok(())
    }

    fn opencl_kernel(&self) -> Option<OpenClKernel> {
        Some(OpenClKernel::new(KERNELS, "gated_shrink"))
    }

    fn opencl_launch(&self, _inputs: &[&[usize]], output: &[usize]) -> Result<bragg::OpenClLaunch> {
        // The default (x, g, y, n) plus the threshold.
        let n: usize = output.iter().product();
        let mut launch = bragg::OpenClLaunch::per_element(2, n)?;
        launch.args.push(bragg::KernelArg::F32(self.lambda));
        Ok(launch)
    }

    fn backward(
        &self,
        inputs: &[Tensor],
        _output: &Tensor,
        gy: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let (x, g) = (&inputs[0], &inputs[1]);
        // dy/dx = g * [|x| > lambda]; dy/dg = sign(x) * max(|x| - lambda, 0).
        let mask = apply(
            ShrinkMask {
                lambda: self.lambda,
            },
            &[x],
        )?;
        let gx = gy.mul(&g.mul(&mask)?)?;
        let shrunk = apply(
            GatedShrink {
                lambda: self.lambda,
            },
            &[x, &Tensor::ones(g.shape(), g.device())?],
        )?;
        let gg = gy.mul(&shrunk)?;
        Ok(vec![Some(gx), Some(gg)])
    }
}

impl CustomOp for ShrinkMask {
    fn name(&self) -> &'static str {
        "shrink_mask"
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        same_shapes(self.name(), inputs, 1)
    }

    fn cpu_forward(&self, inputs: &[HostTensor<'_>], out: &mut [f32]) -> Result<()> {
        for (y, &x) in out.iter_mut().zip(inputs[0].data) {
            *y = if x.abs() > self.lambda { 1.0 } else { 0.0 };
        }
        Ok(())
    }

    fn opencl_kernel(&self) -> Option<OpenClKernel> {
        Some(OpenClKernel::new(KERNELS, "shrink_mask"))
    }

    fn opencl_launch(&self, _inputs: &[&[usize]], output: &[usize]) -> Result<bragg::OpenClLaunch> {
        let n: usize = output.iter().product();
        let mut launch = bragg::OpenClLaunch::per_element(1, n)?;
        launch.args.push(bragg::KernelArg::F32(self.lambda));
        Ok(launch)
    }

    fn backward(&self, inputs: &[Tensor], _: &Tensor, _: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![None; inputs.len()])
    }
}

/// Deterministic inputs away from the kinks at `|x| = lambda` (finite differences need that).
fn inputs(device: &Device, lambda: f32) -> Result<(Tensor, Tensor)> {
    let shape = [2, 3, 5, 7];
    let n: usize = shape.iter().product();
    let x: Vec<f32> = (0..n)
        .map(|i| {
            let v = ((i * 37 % 101) as f32 / 101.0 - 0.5) * 2.0;
            if (v.abs() - lambda).abs() < 0.05 {
                v + 0.1
            } else {
                v
            }
        })
        .collect();
    let g: Vec<f32> = (0..n).map(|i| 0.5 + (i * 13 % 17) as f32 / 17.0).collect();
    Ok((
        Tensor::param(&x, &shape, device)?,
        Tensor::param(&g, &shape, device)?,
    ))
}

/// Runs the checks on `device`; `Err` on any mismatch.
pub fn run(device: &Device) -> Result<()> {
    let lambda = 0.3;
    let (x, g) = inputs(device, lambda)?;
    println!("custom_op on {}", device.name());

    // Forward against the same function made of built-in ops.
    let y = x.apply_op2(&g, GatedShrink { lambda })?;
    let reference = x
        .abs()?
        .add_scalar(-lambda)?
        .relu()?
        .mul(&x.step()?.mul_scalar(2.0)?.add_scalar(-1.0)?)?
        .mul(&g)?;
    let (a, b) = (y.to_vec()?, reference.to_vec()?);
    let worst = a
        .iter()
        .zip(&b)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0f32, f32::max);
    println!("  forward vs built-in ops: max |diff| = {worst:.2e}");
    if worst > 1e-5 {
        return Err(Error::Msg(format!("forward mismatch: max |diff| {worst}")));
    }
    if y.op_name() != Some("gated_shrink") {
        return Err(Error::Msg("the op was not recorded in the graph".into()));
    }

    // Gradients of a weighted sum by central differences.
    let w = Tensor::from_vec(
        (0..x.numel())
            .map(|i| ((i % 7) as f32 - 3.0) * 0.3)
            .collect(),
        x.shape(),
        device,
    )?;
    let report = check_gradients(
        |t| {
            t[0].apply_op2(&t[1], GatedShrink { lambda })?
                .mul(&w)?
                .sum()
        },
        &[x.clone(), g.clone()],
        1e-2,
        2e-2,
        2e-3,
    )?;
    println!(
        "  gradient check: {} elements, worst ratio {:.3} (<= 1 passes) at {:?}",
        report.checked, report.worst_ratio, report.worst_at
    );
    if report.worst_ratio > 1.0 {
        return Err(Error::Msg(format!(
            "gradient mismatch: worst ratio {} at (input, element, analytic, numeric) = {:?}",
            report.worst_ratio, report.worst_at
        )));
    }
    Ok(())
}

#[allow(dead_code)]
fn main() {
    let result = Device::default_device().and_then(|d| run(&d));
    match result {
        Ok(()) => println!("custom_op: OK"),
        Err(e) => {
            eprintln!("custom_op: FAILED: {e}");
            std::process::exit(1);
        }
    }
}
