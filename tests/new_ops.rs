//! The ops added on the custom-op machinery (pow, expm1, maximum/minimum, where, atan2, max
//! reduction, permute/transpose, pad/crop/roll/fftshift, matmul, pooling, dropout,
//! normalisation) and the complex FFT: known values, finite-difference gradient checks on every
//! device, and CPU-vs-OpenCL parity of outputs and gradients.
//!
//! The OpenCL device is `opencl:0` when present; without one the OpenCL halves are skipped,
//! unless `BRAGG_REQUIRE_OPENCL=1`, where they fail.
#![allow(clippy::type_complexity)]

use bragg::autograd::gradcheck::check_gradients;
use bragg::num_complex::Complex32;
use bragg::rand::{seq::SliceRandom, Rng, SeedableRng};
use bragg::{ComplexTensor, Device, Result, Tensor};

fn ocl() -> Option<Device> {
    let require = std::env::var("BRAGG_REQUIRE_OPENCL").is_ok_and(|v| v == "1");
    match Device::from_spec("opencl:0") {
        Ok(d) => Some(d),
        Err(e) => {
            assert!(!require, "BRAGG_REQUIRE_OPENCL=1 but opencl:0 failed: {e}");
            eprintln!("new_ops: OpenCL part SKIPPED ({e})");
            None
        }
    }
}

fn devices() -> Vec<Device> {
    let mut v = vec![Device::cpu()];
    v.extend(ocl());
    v
}

/// How to fill an input.
#[derive(Clone, Copy)]
enum Fill {
    /// Uniform in (lo, hi).
    Uniform(f32, f32),
    /// Distinct values spaced by 0.05 (no ties, no kinks within the finite-difference step).
    Distinct,
    /// [`Fill::Distinct`] shifted by a quarter step: never within 0.0125 of a `Distinct` value.
    Shifted,
    /// A 0/1 mask (not trainable).
    Mask,
}

fn host(shape: &[usize], fill: Fill, seed: u64) -> Vec<f32> {
    let mut rng = bragg::rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    match fill {
        Fill::Uniform(lo, hi) => (0..n).map(|_| rng.random_range(lo..hi)).collect(),
        Fill::Distinct | Fill::Shifted => {
            let off = if matches!(fill, Fill::Shifted) {
                0.0375
            } else {
                0.025
            };
            let mut v: Vec<f32> = (0..n)
                .map(|i| (i as f32 - n as f32 / 2.0) * 0.05 + off)
                .collect();
            v.shuffle(&mut rng);
            v
        }
        Fill::Mask => (0..n)
            .map(|_| if rng.random_bool(0.5) { 1.0 } else { 0.0 })
            .collect(),
    }
}

fn make(spec: &[(Vec<usize>, Fill)], device: &Device) -> Vec<Tensor> {
    spec.iter()
        .enumerate()
        .map(|(i, (s, f))| {
            let t = Tensor::from_vec(host(s, *f, 100 + i as u64), s, device).unwrap();
            match f {
                Fill::Mask => t,
                _ => t.into_param(),
            }
        })
        .collect()
}

/// Reduces an output to a scalar with fixed weights so every element's gradient matters.
fn weighted(y: &Tensor) -> Result<Tensor> {
    let n = y.numel();
    let w: Vec<f32> = (0..n).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.2).collect();
    y.mul(&Tensor::from_vec(w, y.shape(), y.device())?)?.sum()
}

type Case = (
    &'static str,
    Vec<(Vec<usize>, Fill)>,
    Box<dyn Fn(&[Tensor]) -> Result<Tensor>>,
);

fn cases() -> Vec<Case> {
    use Fill::*;
    let u = Uniform(-1.0, 1.0);
    vec![
        (
            "pow",
            vec![(vec![2, 3, 4], Uniform(0.5, 2.0))],
            Box::new(|t| t[0].pow(2.5)),
        ),
        (
            "expm1",
            vec![(vec![2, 3, 4], u)],
            Box::new(|t| t[0].expm1()),
        ),
        (
            "maximum",
            vec![(vec![2, 3, 4], Distinct), (vec![3, 4], Shifted)],
            Box::new(|t| t[0].maximum(&t[1])),
        ),
        (
            "minimum",
            vec![(vec![2, 3, 4], Distinct), (vec![2, 3, 4], Shifted)],
            Box::new(|t| t[0].minimum(&t[1])),
        ),
        (
            "where",
            vec![(vec![3, 5], Mask), (vec![3, 5], u), (vec![5], u)],
            Box::new(|t| t[0].where_cond(&t[1], &t[2])),
        ),
        (
            "atan2",
            vec![(vec![4, 5], u), (vec![4, 5], Uniform(0.3, 1.0))],
            Box::new(|t| t[0].atan2(&t[1])),
        ),
        (
            "max_axes",
            vec![(vec![2, 3, 4, 5], Distinct)],
            Box::new(|t| t[0].max_axes(&[1, 3], false)),
        ),
        (
            "max",
            vec![(vec![3, 7], Distinct)],
            Box::new(|t| t[0].max()),
        ),
        (
            "permute",
            vec![(vec![2, 3, 4, 5], u)],
            Box::new(|t| t[0].permute(&[2, 0, 3, 1])),
        ),
        (
            "transpose",
            vec![(vec![3, 4, 5], u)],
            Box::new(|t| t[0].transpose(0, 2)),
        ),
        (
            "pad",
            vec![(vec![1, 2, 3, 4], u)],
            Box::new(|t| t[0].pad(&[(1, 2), (0, 3)], 0.5)),
        ),
        (
            "crop",
            vec![(vec![1, 2, 6, 7], u)],
            Box::new(|t| t[0].crop(&[1, 2], &[4, 3])),
        ),
        (
            "fftshift",
            vec![(vec![5, 6], u)],
            Box::new(|t| t[0].fftshift(&[0, 1])?.roll(-2, 1)),
        ),
        (
            "matmul batched",
            vec![(vec![2, 3, 4], u), (vec![2, 4, 5], u)],
            Box::new(|t| t[0].matmul(&t[1])),
        ),
        (
            "matmul shared",
            vec![(vec![2, 3, 17], u), (vec![17, 18], u)],
            Box::new(|t| t[0].matmul(&t[1])),
        ),
        (
            "avg_pool 2d",
            vec![(vec![1, 2, 4, 6], u)],
            Box::new(|t| t[0].avg_pool(&[2])),
        ),
        (
            "avg_pool 3d ceil",
            vec![(vec![1, 2, 3, 5, 4], u)],
            Box::new(|t| t[0].avg_pool(&[2])),
        ),
        (
            "max_pool_ceil 2d",
            vec![(vec![2, 1, 5, 7], Distinct)],
            Box::new(|t| t[0].max_pool_ceil(&[2, 3])),
        ),
        (
            "dropout",
            vec![(vec![4, 50], u)],
            Box::new(|t| t[0].dropout(0.3, 42)),
        ),
        (
            "group_norm",
            vec![(vec![2, 4, 3, 3], u)],
            Box::new(|t| t[0].group_norm(2, 1e-5)),
        ),
        (
            "batch_norm",
            vec![(vec![3, 2, 2, 3], u)],
            Box::new(|t| t[0].batch_norm(1e-5)),
        ),
        (
            "fft 2d of a batch",
            vec![(vec![2, 4, 6], u), (vec![2, 4, 6], u)],
            Box::new(|t| {
                let z = ComplexTensor::new(t[0].clone(), t[1].clone())?.fft(2)?;
                z.re().add(&z.im().mul_scalar(0.7)?)
            }),
        ),
        (
            "ifft 3d",
            vec![(vec![3, 4, 2], u), (vec![3, 4, 2], u)],
            Box::new(|t| {
                let z = ComplexTensor::new(t[0].clone(), t[1].clone())?.ifftn()?;
                z.re().sub(&z.im().mul_scalar(1.3)?)
            }),
        ),
        (
            "|fft(a exp(i phi))|^2 shifted",
            vec![(vec![6, 5], Uniform(0.2, 1.0)), (vec![6, 5], u)],
            Box::new(|t| {
                ComplexTensor::from_polar(&t[0], &t[1])?
                    .fftn()?
                    .norm_sqr()?
                    .fftshift(&[0, 1])
            }),
        ),
        (
            "complex mul, div, conj, exp, angle, abs",
            vec![
                (vec![8], Uniform(0.5, 1.0)),
                (vec![8], Uniform(0.5, 1.0)),
                (vec![8], u),
                (vec![8], Uniform(0.3, 1.0)),
            ],
            Box::new(|t| {
                let a = ComplexTensor::new(t[0].clone(), t[1].clone())?;
                let b = ComplexTensor::new(t[2].clone(), t[3].clone())?;
                // angle of `a` (first quadrant: away from the branch cut at +-pi).
                let c = a.mul(&b.conj()?)?.div(&a.exp()?)?;
                a.angle()?
                    .add(&c.abs()?)?
                    .add(&c.sum()?.re().broadcast_to(&[8])?)
            }),
        ),
    ]
}

#[test]
fn gradients_match_finite_differences_on_every_device() {
    for dev in devices() {
        for (name, spec, f) in cases() {
            let inputs = make(&spec, &dev);
            let trainable: Vec<Tensor> = inputs.clone();
            let r = check_gradients(|t| weighted(&f(t)?), &trainable, 1e-2, 2e-2, 2e-3)
                .unwrap_or_else(|e| panic!("{name} on {}: {e}", dev.name()));
            assert!(
                r.worst_ratio <= 1.0,
                "{name} on {}: gradient mismatch {r:?}",
                dev.name()
            );
        }
    }
}

fn close(name: &str, what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{name}: {what} length");
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 2e-5 * (1.0 + scale),
            "{name}: {what} element {i}: opencl {g} vs cpu {w} (scale {scale})"
        );
    }
}

#[test]
fn opencl_matches_cpu_forward_and_backward() {
    let Some(gpu) = ocl() else { return };
    let cpu = Device::cpu();
    for (name, spec, f) in cases() {
        let a = make(&spec, &cpu);
        let b = make(&spec, &gpu);
        let (ya, yb) = (f(&a).unwrap(), f(&b).unwrap());
        close(
            name,
            "forward",
            &yb.to_vec().unwrap(),
            &ya.to_vec().unwrap(),
        );
        let (ga, gb) = (
            weighted(&ya).unwrap().backward().unwrap(),
            weighted(&yb).unwrap().backward().unwrap(),
        );
        for (i, (ta, tb)) in a.iter().zip(&b).enumerate() {
            if !ta.requires_grad() {
                continue;
            }
            let (x, y) = (ga.get(ta), gb.get(tb));
            assert_eq!(x.is_some(), y.is_some(), "{name}: gradient {i} presence");
            if let (Some(x), Some(y)) = (x, y) {
                close(
                    name,
                    &format!("gradient {i}"),
                    &y.to_vec().unwrap(),
                    &x.to_vec().unwrap(),
                );
            }
        }
    }
}

#[test]
fn comparisons_step_and_where_values() {
    for dev in devices() {
        let a = Tensor::from_vec(vec![-1.0, 0.0, 2.0, 3.0], &[4], &dev).unwrap();
        let b = Tensor::from_vec(vec![0.0, 0.0, 3.0, 1.0], &[4], &dev).unwrap();
        let v = |t: Result<Tensor>| t.unwrap().to_vec().unwrap();
        assert_eq!(v(a.step()), [0.0, 0.0, 1.0, 1.0]);
        assert_eq!(v(a.gt(&b)), [0.0, 0.0, 0.0, 1.0]);
        assert_eq!(v(a.ge(&b)), [0.0, 1.0, 0.0, 1.0]);
        assert_eq!(v(a.lt(&b)), [1.0, 0.0, 1.0, 0.0]);
        assert_eq!(v(a.le(&b)), [1.0, 1.0, 1.0, 0.0]);
        assert_eq!(v(a.equal(&b)), [0.0, 1.0, 0.0, 0.0]);
        assert_eq!(v(a.maximum(&b)), [0.0, 0.0, 3.0, 3.0]);
        assert_eq!(v(a.minimum(&b)), [-1.0, 0.0, 2.0, 1.0]);
        assert_eq!(
            v(a.gt(&b).unwrap().where_cond(&a, &b)),
            [0.0, 0.0, 3.0, 3.0]
        );
        assert_eq!(v(a.pow(2.0)), [1.0, 0.0, 4.0, 9.0]);
        assert_eq!(v(a.max()), [3.0]);
        // `where` keeps NaN values of the unselected branch out of the output and gradient
        // (a blend `c * a + (1 - c) * b` would not).
        let x = Tensor::param(&[1.0, -1.0], &[2], &dev).unwrap();
        let nan = Tensor::full(&[2], f32::NAN, &dev).unwrap();
        let c = Tensor::from_vec(vec![1.0, 0.0], &[2], &dev).unwrap();
        let y = c.where_cond(&x.mul_scalar(3.0).unwrap(), &nan).unwrap();
        let yv = y.to_vec().unwrap();
        assert_eq!(yv[0], 3.0);
        assert!(yv[1].is_nan());
        let g = y
            .narrow(0, 0, 1)
            .unwrap()
            .sum()
            .unwrap()
            .backward()
            .unwrap();
        assert_eq!(g.get(&x).unwrap().to_vec().unwrap(), [3.0, 0.0]);
    }
}

#[test]
fn layout_and_pooling_values() {
    for dev in devices() {
        let x = Tensor::from_vec((0..6).map(|v| v as f32).collect(), &[2, 3], &dev).unwrap();
        assert_eq!(
            x.transpose(0, 1).unwrap().to_vec().unwrap(),
            [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
        );
        assert_eq!(
            x.roll(1, 1).unwrap().to_vec().unwrap(),
            [2.0, 0.0, 1.0, 5.0, 3.0, 4.0]
        );
        let p = x.pad(&[(1, 0)], -1.0).unwrap();
        assert_eq!(p.shape(), [2, 4]);
        assert_eq!(
            p.to_vec().unwrap(),
            [-1.0, 0.0, 1.0, 2.0, -1.0, 3.0, 4.0, 5.0]
        );
        assert_eq!(
            p.crop(&[1], &[3]).unwrap().to_vec().unwrap(),
            x.to_vec().unwrap()
        );
        // fftshift then ifftshift is the identity for odd and even sizes.
        let z = Tensor::from_vec((0..15).map(|v| v as f32).collect(), &[3, 5], &dev).unwrap();
        let back = z.fftshift(&[0, 1]).unwrap().ifftshift(&[0, 1]).unwrap();
        assert_eq!(back.to_vec().unwrap(), z.to_vec().unwrap());
        assert_eq!(
            z.fftshift(&[1]).unwrap().to_vec().unwrap()[..5],
            [3.0, 4.0, 0.0, 1.0, 2.0]
        );
        // Odd sizes: max_pool refuses, the ceil and floor variants say what they do.
        let img =
            Tensor::from_vec((0..15).map(|v| v as f32).collect(), &[1, 1, 3, 5], &dev).unwrap();
        let e = img.max_pool(&[2]).unwrap_err().to_string();
        assert!(e.contains("max_pool_ceil"), "{e}");
        let c = img.max_pool_ceil(&[2]).unwrap();
        assert_eq!(c.shape(), [1, 1, 2, 3]);
        assert_eq!(c.to_vec().unwrap(), [6.0, 8.0, 9.0, 11.0, 13.0, 14.0]);
        assert_eq!(img.max_pool_floor(&[2]).unwrap().shape(), [1, 1, 1, 2]);
        let a = img.avg_pool(&[2]).unwrap();
        assert_eq!(a.shape(), [1, 1, 2, 3]);
        let want = [3.0, 5.0, 6.5, 10.5, 12.5, 14.0];
        for (g, w) in a.to_vec().unwrap().iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "avg_pool {g} vs {w}");
        }
        // matmul against a hand-computed product.
        let m = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2], &dev).unwrap();
        assert_eq!(
            m.matmul(&m).unwrap().to_vec().unwrap(),
            [7.0, 10.0, 15.0, 22.0]
        );
        // Dropout: the same seed drops the same elements on every device, and about p of them.
        let ones = Tensor::ones(&[10000], &dev).unwrap();
        let d = ones.dropout(0.25, 9).unwrap().to_vec().unwrap();
        let kept = d.iter().filter(|&&v| v != 0.0).count();
        assert!((7200..7800).contains(&kept), "kept {kept}");
        assert!(d.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
        let cpu = Tensor::ones(&[10000], &Device::cpu())
            .unwrap()
            .dropout(0.25, 9)
            .unwrap()
            .to_vec()
            .unwrap();
        assert_eq!(d, cpu, "dropout masks differ between devices");
    }
}

/// The naive DFT over every axis of a row-major 2-D array.
fn naive_dft2(x: &[Complex32], rows: usize, cols: usize) -> Vec<Complex32> {
    let mut out = vec![Complex32::new(0.0, 0.0); rows * cols];
    for u in 0..rows {
        for v in 0..cols {
            let mut acc = Complex32::new(0.0, 0.0);
            for r in 0..rows {
                for c in 0..cols {
                    let ang = -2.0
                        * std::f64::consts::PI
                        * ((u * r) as f64 / rows as f64 + (v * c) as f64 / cols as f64);
                    acc += x[r * cols + c] * Complex32::new(ang.cos() as f32, ang.sin() as f32);
                }
            }
            out[u * cols + v] = acc;
        }
    }
    out
}

#[test]
fn complex_fft_known_values() {
    for dev in devices() {
        let (rows, cols) = (6, 8);
        let data: Vec<Complex32> = (0..rows * cols)
            .map(|i| Complex32::new((i as f32 * 0.37).sin(), (i as f32 * 0.11).cos()))
            .collect();
        let z = ComplexTensor::from_complex(&data, &[rows, cols], &dev).unwrap();
        let f = z.fftn().unwrap();
        let want = naive_dft2(&data, rows, cols);
        for (g, w) in f.to_complex_vec().unwrap().iter().zip(&want) {
            assert!((g - w).norm() < 1e-3, "fft on {}: {g} vs {w}", dev.name());
        }
        // Inverse undoes forward; Parseval; real/imag/abs/angle/conj round trips.
        let back = f.ifftn().unwrap().to_complex_vec().unwrap();
        for (g, w) in back.iter().zip(&data) {
            assert!((g - w).norm() < 1e-5);
        }
        let e_x = z.norm_sqr().unwrap().sum().unwrap().item().unwrap();
        let e_f = f.norm_sqr().unwrap().sum().unwrap().item().unwrap();
        assert!((e_f / (rows * cols) as f32 - e_x).abs() < 1e-3 * e_x);
        let polar = ComplexTensor::from_polar(&z.abs().unwrap(), &z.angle().unwrap()).unwrap();
        for (g, w) in polar.to_complex_vec().unwrap().iter().zip(&data) {
            assert!((g - w).norm() < 1e-5);
        }
        let c = z.conj().unwrap().to_complex_vec().unwrap();
        assert!(c.iter().zip(&data).all(|(a, b)| *a == b.conj()));
        let inter = z.to_interleaved().unwrap();
        assert_eq!(inter.shape(), [rows, cols, 2]);
        let again = ComplexTensor::from_interleaved(&inter).unwrap();
        assert_eq!(again.to_complex_vec().unwrap(), data);
        // Friedel symmetry: the transform of a real object is Hermitian.
        let real = ComplexTensor::from_real(z.re()).unwrap().fftn().unwrap();
        let v = real.to_complex_vec().unwrap();
        for u in 0..rows {
            for w in 0..cols {
                let a = v[u * cols + w];
                let b = v[((rows - u) % rows) * cols + (cols - w) % cols];
                assert!((a - b.conj()).norm() < 1e-4);
            }
        }
    }
}

#[test]
fn ndarray_round_trip_and_errors() {
    let a = bragg::ndarray::Array3::<f32>::from_shape_fn((2, 3, 4), |(i, j, k)| {
        (i * 12 + j * 4 + k) as f32
    });
    let t = Tensor::from_ndarray(&a.view().reversed_axes(), &Device::cpu()).unwrap();
    assert_eq!(t.shape(), [4, 3, 2]);
    let back = t.to_ndarray().unwrap();
    assert_eq!(back, a.view().reversed_axes().into_dyn());
    let x = Tensor::zeros(&[2, 3], &Device::cpu()).unwrap();
    assert!(x.permute(&[0, 0]).is_err());
    assert!(x.matmul(&x).unwrap_err().to_string().contains("matmul"));
    assert!(x.max_axes(&[2], false).is_err());
    assert!(x.dropout(1.0, 0).is_err());
    assert!(x.group_norm(4, 1e-5).is_err());
    assert!(x.pad(&[(1, 1); 3], 0.0).is_err());
    assert!(ComplexTensor::from_real(&x).unwrap().fft(3).is_err());
}

/// The fused conv + LeakyReLU against the two ops in sequence: identical values and gradients
/// on the CPU (direct kernels, the GEMM path of strided layers, 2-D and 3-D, slope 0 = ReLU,
/// a negative slope that falls back to the unfused ops), and OpenCL against the CPU.
#[test]
fn fused_conv_leaky_relu_matches_conv_then_activation() {
    use bragg::Padding;
    // (input shape, weight shape, stride, dilation, slope)
    let cases: [(Vec<usize>, Vec<usize>, usize, usize, f32); 5] = [
        (vec![2, 5, 12, 40], vec![16, 5, 3, 3], 1, 1, 0.2),
        (vec![1, 4, 9, 10, 33], vec![8, 4, 3, 3, 3], 1, 2, 0.01),
        (vec![2, 3, 11, 12], vec![6, 3, 3, 3], 2, 1, 0.2),
        (vec![1, 3, 6, 7, 40], vec![3, 3, 2, 2, 2], 1, 1, 0.0),
        (vec![1, 2, 8, 9], vec![4, 2, 3, 3], 1, 1, -0.5),
    ];
    let cpu = Device::cpu();
    let run = |dev: &Device, ci: usize, fused: bool| -> (Vec<f32>, Vec<Vec<f32>>) {
        let (xs, ws, stride, dil, slope) = &cases[ci];
        let seed = 40 + ci as u64;
        let x = Tensor::from_vec(host(xs, Fill::Uniform(-1.0, 1.0), seed), xs, dev)
            .unwrap()
            .into_param();
        let w = Tensor::from_vec(host(ws, Fill::Uniform(-0.5, 0.5), seed + 1), ws, dev)
            .unwrap()
            .into_param();
        let b = Tensor::from_vec(
            host(&[ws[0]], Fill::Uniform(-0.3, 0.3), seed + 2),
            &[ws[0]],
            dev,
        )
        .unwrap()
        .into_param();
        let (d, s) = ([*dil], [*stride]);
        let y = if fused {
            x.conv_leaky_relu(&w, Some(&b), &d, &s, Padding::Same, *slope)
        } else {
            x.conv(&w, Some(&b), &d, &s, Padding::Same)
                .and_then(|y| y.leaky_relu(*slope))
        }
        .unwrap();
        let g = weighted(&y).unwrap().backward().unwrap();
        let grads = [&x, &w, &b]
            .iter()
            .map(|t| g.get(t).unwrap().to_vec().unwrap())
            .collect();
        (y.to_vec().unwrap(), grads)
    };
    for (ci, case) in cases.iter().enumerate() {
        let (y_fused, g_fused) = run(&cpu, ci, true);
        let (y_plain, g_plain) = run(&cpu, ci, false);
        assert!(case.4 <= 0.0 || y_fused.iter().any(|v| *v < 0.0));
        assert_eq!(
            y_fused, y_plain,
            "case {ci}: fused values differ on the CPU"
        );
        assert_eq!(
            g_fused, g_plain,
            "case {ci}: fused gradients differ on the CPU"
        );
        if let Some(gpu) = ocl() {
            let (y_gpu, g_gpu) = run(&gpu, ci, true);
            let name = format!("conv_leaky_relu case {ci}");
            close(&name, "forward", &y_gpu, &y_plain);
            for (i, (a, b)) in g_gpu.iter().zip(&g_plain).enumerate() {
                close(&name, &format!("gradient {i}"), a, b);
            }
        }
    }
}
