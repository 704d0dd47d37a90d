//! The public custom-op contract, from outside the crate: the OpenCL path runs the kernel on
//! the device (never the CPU code), ops without a kernel fall back to the host, errors name
//! the op (shapes, kernel build log, argument list, backward arity), and the layers built on
//! the new ops behave.

use bragg::nn::{Dropout, GroupNorm, Linear, Module, Param};
use bragg::ops::custom::apply;
use bragg::rand::SeedableRng;
use bragg::{CustomOp, Device, Error, HostTensor, KernelArg, OpenClKernel, OpenClLaunch};
use bragg::{Result, Tensor};

fn ocl() -> Option<Device> {
    let require = std::env::var("BRAGG_REQUIRE_OPENCL").is_ok_and(|v| v == "1");
    match Device::from_spec("opencl:0") {
        Ok(d) => Some(d),
        Err(e) => {
            assert!(!require, "BRAGG_REQUIRE_OPENCL=1 but opencl:0 failed: {e}");
            eprintln!("custom_op_api: OpenCL part SKIPPED ({e})");
            None
        }
    }
}

/// `y = 2 x`; the CPU code can be told to fail, to prove which path ran.
struct Double {
    cpu_fails: bool,
    kernel: Option<&'static str>,
    args: Option<Vec<KernelArg>>,
}

impl CustomOp for Double {
    fn name(&self) -> &'static str {
        "double"
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        Ok(inputs[0].to_vec())
    }
    fn cpu_forward(&self, inputs: &[HostTensor<'_>], out: &mut [f32]) -> Result<()> {
        if self.cpu_fails {
            return Err(Error::Msg("double: the CPU code ran".into()));
        }
        for (y, x) in out.iter_mut().zip(inputs[0].data) {
            *y = 2.0 * x;
        }
        Ok(())
    }
    fn opencl_kernel(&self) -> Option<OpenClKernel> {
        self.kernel.map(|src| OpenClKernel::new(src, "double_it"))
    }
    fn opencl_launch(&self, inputs: &[&[usize]], output: &[usize]) -> Result<OpenClLaunch> {
        let mut l = OpenClLaunch::per_element(inputs.len(), output.iter().product())?;
        if let Some(a) = &self.args {
            l.args = a.clone();
        }
        Ok(l)
    }
    fn backward(&self, _: &[Tensor], _: &Tensor, gy: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(gy.mul_scalar(2.0)?), None])
    }
}

const KERNEL: &str = "__kernel void double_it(__global const float* x, __global float* y, int n) {
    int i = get_global_id(0);
    if (i < n) y[i] = 2.0f * x[i];
}";

#[test]
fn opencl_runs_the_kernel_not_the_cpu_code() {
    let Some(gpu) = ocl() else { return };
    let x = Tensor::from_vec(vec![1.0, -2.0, 3.5], &[3], &gpu).unwrap();
    let op = Double {
        cpu_fails: true,
        kernel: Some(KERNEL),
        args: None,
    };
    let y = x.apply_op1(op).unwrap();
    assert_eq!(y.to_vec().unwrap(), [2.0, -4.0, 7.0]);
    assert!(matches!(*y.storage(), bragg::backend::Storage::OpenCl(_)));
    // Without a kernel the op still runs on an OpenCL tensor, through the host.
    let y = x
        .apply_op1(Double {
            cpu_fails: false,
            kernel: None,
            args: None,
        })
        .unwrap();
    assert_eq!(y.to_vec().unwrap(), [2.0, -4.0, 7.0]);
    assert!(y.device().same(&gpu));
}

#[test]
fn kernel_errors_name_the_op_and_carry_the_build_log() {
    let Some(gpu) = ocl() else { return };
    let x = Tensor::ones(&[4], &gpu).unwrap();
    let e = x
        .apply_op1(Double {
            cpu_fails: true,
            kernel: Some("__kernel void double_it(__global float* x) { x[0] = undefined_thing; }"),
            args: None,
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("double") && e.contains("undefined_thing"), "{e}");
    let e = x
        .apply_op1(Double {
            cpu_fails: true,
            kernel: Some(KERNEL),
            args: Some(vec![KernelArg::Input(3), KernelArg::Output]),
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("Input(3)"), "{e}");
    let e = x
        .apply_op1(Double {
            cpu_fails: true,
            kernel: Some(KERNEL),
            args: Some(vec![KernelArg::Input(0), KernelArg::Output]),
        })
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("double_it") && e.contains("takes 3 argument(s), the launch gives 2"),
        "{e}"
    );
}

#[test]
fn graph_records_the_op_and_checks_the_backward() {
    let x = Tensor::param(&[1.0, 2.0], &[2], &Device::cpu()).unwrap();
    let op = || Double {
        cpu_fails: false,
        kernel: Some(KERNEL),
        args: None,
    };
    let y = apply(op(), &[&x]).unwrap();
    assert_eq!(y.op_name(), Some("double"));
    // The backward above returns two gradients for one input: a named error.
    let e = y.sum().unwrap().backward().err().unwrap().to_string();
    assert!(e.contains("double") && e.contains("2 gradient"), "{e}");
    // Not recorded when nothing needs a gradient.
    let c = Tensor::ones(&[2], &Device::cpu()).unwrap();
    assert_eq!(apply(op(), &[&c]).unwrap().op_name(), None);
    assert!(apply(op(), &[]).is_err());
}

#[test]
fn layers_on_the_new_ops() {
    let dev = Device::cpu();
    let mut rng = bragg::rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let lin = Linear::new(5, 3, bragg::nn::Init::GlorotUniform, &mut rng, &dev).unwrap();
    let x = Tensor::ones(&[2, 4, 5], &dev).unwrap();
    let y = lin.forward(&x).unwrap();
    assert_eq!(y.shape(), [2, 4, 3]);
    let g = y.sum().unwrap().backward().unwrap();
    assert_eq!(g.get(&lin.weight).unwrap().to_vec().unwrap(), vec![8.0; 15]);
    assert_eq!(lin.num_parameters(), 18);

    let gn = GroupNorm::new(2, 4, &dev).unwrap();
    let data: Vec<f32> = (0..2 * 4 * 9).map(|i| (i as f32 * 0.7).sin()).collect();
    let x = Tensor::from_vec(data, &[2, 4, 3, 3], &dev).unwrap();
    let y = gn.forward(&x).unwrap().to_vec().unwrap();
    for group in y.chunks(18) {
        let mean: f32 = group.iter().sum::<f32>() / 18.0;
        let var: f32 = group.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 18.0;
        assert!(
            mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-3,
            "{mean} {var}"
        );
    }
    assert!(GroupNorm::new(3, 4, &dev).is_err());

    let drop = Dropout::new(0.5, 1).unwrap();
    let ones = Tensor::ones(&[1000], &dev).unwrap();
    let a = drop.forward(&ones).unwrap().to_vec().unwrap();
    let b = drop.forward(&ones).unwrap().to_vec().unwrap();
    assert_ne!(a, b, "a fresh mask per call");
    drop.set_training(false);
    assert_eq!(
        drop.forward(&ones).unwrap().to_vec().unwrap(),
        vec![1.0; 1000]
    );

    let conv = bragg::nn::Conv::new(
        1,
        2,
        &[3, 3],
        &[1],
        bragg::nn::Init::HeNormal,
        &mut rng,
        &dev,
    )
    .unwrap()
    .with_stride(&[2])
    .unwrap();
    let y = conv
        .forward(&Tensor::ones(&[1, 1, 9, 8], &dev).unwrap())
        .unwrap();
    assert_eq!(y.shape(), [1, 2, 5, 4]);
    assert!(conv.clone().with_stride(&[0]).is_err());
    let s = bragg::nn::Conv::strided(
        1,
        2,
        &[3, 3],
        &[2, 1],
        bragg::nn::Init::HeNormal,
        &mut rng,
        &dev,
    )
    .unwrap();
    let y = s
        .forward(&Tensor::ones(&[1, 1, 9, 8], &dev).unwrap())
        .unwrap();
    assert_eq!(y.shape(), [1, 2, 5, 8]);
    assert_eq!(
        conv.forward_many(&[&ones.reshape(&[1, 1, 10, 100]).unwrap()])
            .unwrap()
            .shape(),
        [1, 2, 5, 50]
    );
    assert!(conv.forward_many(&[&ones, &ones]).is_err());
}

/// A two-input layer written with `forward_many`: a masked blend.
struct Blend {
    w: Tensor,
}

impl Module for Blend {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_many(&[x, &Tensor::ones(x.shape(), x.device())?])
    }
    fn forward_many(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let [x, mask] = inputs else {
            return Err(Error::arg("Blend", "inputs", "needs [x, mask]"));
        };
        x.mul(mask)?.mul(&self.w)
    }
    fn parameters(&self) -> Vec<Param> {
        vec![Param::new("w", &self.w)]
    }
}

#[test]
fn multi_input_module() {
    let dev = Device::cpu();
    let b = Blend {
        w: Tensor::param(&[3.0], &[1], &dev).unwrap(),
    };
    let x = Tensor::ones(&[4], &dev).unwrap();
    let m = Tensor::from_vec(vec![1.0, 0.0, 1.0, 0.0], &[4], &dev).unwrap();
    assert_eq!(
        b.forward_many(&[&x, &m]).unwrap().to_vec().unwrap(),
        [3.0, 0.0, 3.0, 0.0]
    );
    assert_eq!(b.forward(&x).unwrap().to_vec().unwrap(), [3.0; 4]);
}
