//! CPU vs OpenCL parity of every primitive, and of forward passes and gradients through the
//! Tensor API, on random 2-D and 3-D inputs.
//!
//! The OpenCL device is the first OpenCL GPU, else `opencl:0`. Without any OpenCL device the
//! tests print a skip message and pass, unless `BRAGG_REQUIRE_OPENCL=1`, where they fail.
//!
//! Tolerances (|opencl - cpu| against the CPU value `r`):
//! - element-wise ops, copies, pooling, upsampling, optimiser steps:
//!   `|d| <= 1e-5 * (1 + |r|)` per element (OpenCL's exp/log/tanh/sin are within a few ulp; the
//!   rest is exact);
//! - sums, convolutions, filters and gradients through the Tensor API (f32 accumulation in a
//!   different order than the CPU's f64 or blocked f32):
//!   `max|d| <= 2e-4 * (1 + max|r|)` over the tensor.

use bragg::backend::opencl::{list_devices, upload_f16, OpenClBackend};
use bragg::backend::Storage;
use bragg::ops::conv::ConvGeometry;
use bragg::ops::copy::AxisCopy;
use bragg::ops::elementwise::{BinaryOp, UnaryOp};
use bragg::ops::filter::{gaussian_taps, AxisFilter};
use bragg::ops::optim::{AdamHyper, SgdHyper};
use bragg::ops::pool::PoolGeometry;
use bragg::ops::resample::UpsampleGeometry;
use bragg::{concat, Device, Padding, Result, Tensor};
use rand::{Rng, SeedableRng};

const TIGHT: f32 = 1e-5;
const LOOSE: f32 = 2e-4;

/// The OpenCL device under test, or `None` (skip) when there is none.
fn ocl() -> Option<Device> {
    let require = std::env::var("BRAGG_REQUIRE_OPENCL").is_ok_and(|v| v == "1");
    let (rows, note) = list_devices();
    let pick = rows
        .iter()
        .filter(|r| r.spec.starts_with("opencl"))
        .min_by_key(|r| (r.kind != "GPU", r.spec.clone()))
        .map(|r| r.spec.clone());
    match pick.map(|s| Device::from_spec(&s)) {
        Some(Ok(d)) => {
            eprintln!("opencl_parity: testing on {}", d.name());
            Some(d)
        }
        Some(Err(e)) => {
            assert!(
                !require,
                "BRAGG_REQUIRE_OPENCL=1 but opening the device failed: {e}"
            );
            eprintln!("opencl_parity: SKIPPED ({e})");
            None
        }
        None => {
            let why = note.unwrap_or_else(|| "no OpenCL device".into());
            assert!(
                !require,
                "BRAGG_REQUIRE_OPENCL=1 but no OpenCL device: {why}"
            );
            eprintln!("opencl_parity: SKIPPED, no OpenCL device ({why})");
            None
        }
    }
}

fn rand_vec(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

fn tight(name: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = (g - w).abs() <= TIGHT * (1.0 + w.abs()) || (g.is_nan() && w.is_nan());
        assert!(ok, "{name}: element {i}: opencl {g} vs cpu {w}");
    }
}

fn loose(name: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let (i, d) = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .enumerate()
        .fold(
            (0, 0.0f32),
            |a, (i, d)| if d > a.1 || d.is_nan() { (i, d) } else { a },
        );
    assert!(
        d <= LOOSE * (1.0 + scale),
        "{name}: max |diff| {d} at {i} (opencl {} vs cpu {}), scale {scale}",
        got[i],
        want[i]
    );
}

fn up(d: &Device, v: &[f32]) -> Storage {
    d.backend().upload(v).unwrap()
}

fn down(d: &Device, s: &Storage) -> Vec<f32> {
    d.backend().download(s).unwrap()
}

#[test]
fn unary_ops_forward_and_backward() {
    let Some(gpu) = ocl() else { return };
    let cpu = Device::cpu();
    let ops = [
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Log1p,
        UnaryOp::Sqrt,
        UnaryOp::Abs,
        UnaryOp::Square,
        UnaryOp::Recip,
        UnaryOp::Relu,
        UnaryOp::LeakyRelu(0.2),
        UnaryOp::Sigmoid,
        UnaryOp::ScaledSigmoid(1.7),
        UnaryOp::Tanh,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::AddScalar(0.3),
        UnaryOp::MulScalar(-1.5),
        UnaryOp::Clamp(-0.5, 0.7),
    ];
    for (i, op) in ops.into_iter().enumerate() {
        let positive = matches!(
            op,
            UnaryOp::Log | UnaryOp::Log1p | UnaryOp::Sqrt | UnaryOp::Recip
        );
        let (lo, hi) = if positive { (0.1, 3.0) } else { (-3.0, 3.0) };
        let x = rand_vec(1000, i as u64, lo, hi);
        let gy = rand_vec(1000, 100 + i as u64, -1.0, 1.0);
        let (xc, xg) = (up(&cpu, &x), up(&gpu, &x));
        let (gc, gg) = (up(&cpu, &gy), up(&gpu, &gy));
        let want = down(&cpu, &cpu.backend().unary(op, &xc).unwrap());
        let got = down(&gpu, &gpu.backend().unary(op, &xg).unwrap());
        tight(&format!("{op:?}"), &got, &want);
        let want = down(&cpu, &cpu.backend().unary_backward(op, &xc, &gc).unwrap());
        let got = down(&gpu, &gpu.backend().unary_backward(op, &xg, &gg).unwrap());
        tight(&format!("{op:?} backward"), &got, &want);
    }
}

#[test]
fn binary_ops_with_broadcasting() {
    let Some(gpu) = ocl() else { return };
    let cpu = Device::cpu();
    let cases: [(&[usize], &[usize]); 5] = [
        (&[2, 3, 4, 5], &[2, 3, 4, 5]),
        (&[2, 3, 4, 5], &[1, 3, 1, 5]),
        (&[2, 1, 4, 1], &[1, 3, 1, 5]),
        (&[2, 1, 3, 1, 2, 2], &[1, 2, 1, 3, 1, 2]),
        (&[3, 4], &[1, 1]),
    ];
    for (ci, (sa, sb)) in cases.into_iter().enumerate() {
        let out = bragg::ops::elementwise::broadcast_shape(sa, sb).unwrap();
        let a = rand_vec(sa.iter().product(), ci as u64, -2.0, 2.0);
        let b = rand_vec(sb.iter().product(), 50 + ci as u64, 0.5, 2.0);
        for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div] {
            let want = cpu
                .backend()
                .binary(op, &up(&cpu, &a), sa, &up(&cpu, &b), sb, &out)
                .unwrap();
            let got = gpu
                .backend()
                .binary(op, &up(&gpu, &a), sa, &up(&gpu, &b), sb, &out)
                .unwrap();
            tight(
                &format!("{op:?} {sa:?} {sb:?}"),
                &down(&gpu, &got),
                &down(&cpu, &want),
            );
        }
    }
}

#[test]
fn sums_over_axes() {
    let Some(gpu) = ocl() else { return };
    let cpu = Device::cpu();
    let cases: [(&[usize], &[usize]); 9] = [
        (&[2, 3, 4, 5], &[0, 1, 2, 3]),
        (&[2, 3, 4, 5], &[0]),
        (&[2, 3, 4, 5], &[1]),
        (&[2, 3, 4, 5], &[3]),
        (&[2, 3, 4, 5], &[0, 2, 3]),
        (&[2, 3, 4, 5], &[1, 3]),
        (&[4, 8, 300], &[0, 2]),
        (&[100_003], &[0]),
        (&[2, 1, 3, 1, 4, 2], &[1, 2, 5]),
    ];
    for (ci, (shape, axes)) in cases.into_iter().enumerate() {
        let x = rand_vec(shape.iter().product(), ci as u64, -1.0, 1.0);
        let want = cpu.backend().sum_axes(&up(&cpu, &x), shape, axes).unwrap();
        let got = gpu.backend().sum_axes(&up(&gpu, &x), shape, axes).unwrap();
        loose(
            &format!("sum {shape:?} over {axes:?}"),
            &down(&gpu, &got),
            &down(&cpu, &want),
        );
    }
}

/// (batch, C, O, input, kernel, dilation, stride, same padding)
type ConvCase = (
    usize,
    usize,
    usize,
    [usize; 3],
    [usize; 3],
    usize,
    usize,
    bool,
);

const CONV_CASES: [ConvCase; 10] = [
    (2, 3, 5, [1, 9, 11], [1, 3, 3], 1, 1, true),
    (2, 3, 4, [1, 12, 10], [1, 3, 3], 2, 1, true),
    (1, 2, 3, [1, 16, 16], [1, 3, 3], 3, 1, true),
    (1, 4, 2, [1, 17, 15], [1, 3, 3], 4, 1, true),
    (2, 3, 4, [1, 10, 9], [1, 4, 4], 1, 1, true),
    (2, 3, 4, [1, 11, 10], [1, 2, 2], 1, 2, true),
    (1, 70, 66, [1, 6, 7], [1, 3, 3], 1, 2, false),
    (2, 2, 3, [6, 7, 5], [3, 3, 3], 1, 1, true),
    (1, 3, 2, [8, 9, 8], [3, 3, 3], 2, 2, true),
    (1, 2, 3, [7, 9, 8], [2, 4, 2], 2, 1, false),
];

fn geometry(c: &ConvCase) -> ConvGeometry {
    let (n, ci, co, input, kernel, dil, stride, same) = *c;
    let twod = input[0] == 1 && kernel[0] == 1;
    let d = if twod { [1, dil, dil] } else { [dil; 3] };
    let s = if twod {
        [1, stride, stride]
    } else {
        [stride; 3]
    };
    if same {
        ConvGeometry::same("conv", n, ci, co, input, kernel, d, s).unwrap()
    } else {
        ConvGeometry::valid("conv", n, ci, co, input, kernel, d, s).unwrap()
    }
}

/// Cases for the per-layer tile shapes: O = 1 / 2 (MSD output layers, the small-M kernel and
/// 1-row tiles of backward_weight), C = 1 (small-M backward_data), large C, M not a multiple
/// of the tile (O = 5, 20, 48, 66, 130), wide images (TN = 256), dilated 2-D and 3-D k2.
const CONV_TILE_CASES: [ConvCase; 12] = [
    (2, 50, 1, [1, 40, 37], [1, 3, 3], 10, 1, true),
    (2, 20, 2, [1, 33, 35], [1, 3, 3], 3, 1, true),
    (2, 1, 16, [1, 36, 30], [1, 3, 3], 1, 1, true),
    (1, 1, 1, [1, 20, 21], [1, 3, 3], 2, 1, true),
    (1, 100, 3, [1, 24, 24], [1, 3, 3], 5, 1, true),
    (2, 7, 5, [1, 30, 31], [1, 3, 3], 1, 1, true),
    (1, 9, 20, [1, 34, 33], [1, 3, 3], 2, 1, true),
    (1, 12, 48, [1, 20, 26], [1, 3, 3], 1, 1, true),
    (1, 6, 130, [1, 11, 12], [1, 3, 3], 1, 1, true),
    (2, 33, 16, [6, 7, 8], [2, 2, 2], 3, 1, true),
    (1, 4, 66, [5, 6, 7], [3, 3, 3], 1, 1, false),
    (1, 3, 2, [9, 8, 10], [2, 2, 2], 2, 2, true),
];

#[test]
fn conv_primitives() {
    conv_parity(&CONV_CASES);
}

#[test]
fn conv_tile_shapes() {
    conv_parity(&CONV_TILE_CASES);
}

fn conv_parity(cases: &[ConvCase]) {
    let Some(gpu) = ocl() else { return };
    for (ci, case) in cases.iter().enumerate() {
        let g = geometry(case);
        conv_passes_match(&gpu, &g, 10 * ci as u64, &format!("{g:?}"));
    }
}

/// Forward (with bias), data gradient and weight gradient of geometry `g` on `gpu` against the
/// CPU, on random operands drawn from `seed`; `what` names the case in failures.
fn conv_passes_match(gpu: &Device, g: &ConvGeometry, seed: u64, what: &str) {
    let cpu = Device::cpu();
    let x = rand_vec(g.input_len(), seed, -1.0, 1.0);
    let w = rand_vec(g.weight_len(), seed + 1, -1.0, 1.0);
    let b = rand_vec(g.out_channels, seed + 2, -1.0, 1.0);
    let gy = rand_vec(g.output_len(), seed + 3, -1.0, 1.0);
    type Pass<'a> = (&'a str, &'a dyn Fn(&Device) -> Storage);
    let passes: [Pass; 3] = [
        ("forward", &|d| {
            let (x, w, b) = (up(d, &x), up(d, &w), up(d, &b));
            d.backend().conv_forward(&x, &w, Some(&b), g).unwrap()
        }),
        ("backward_data", &|d| {
            let (gy, w) = (up(d, &gy), up(d, &w));
            d.backend().conv_backward_data(&gy, &w, g).unwrap()
        }),
        ("backward_weight", &|d| {
            let (x, gy) = (up(d, &x), up(d, &gy));
            d.backend().conv_backward_weight(&x, &gy, g).unwrap()
        }),
    ];
    for (name, run) in passes {
        loose(
            &format!("conv {name} {what}"),
            &down(gpu, &run(gpu)),
            &down(&cpu, &run(&cpu)),
        );
    }
}

/// Every pass of a few layers with pinned tile shapes (register prefetch, each reduction depth,
/// narrow and wide column tiles, every register block) against the CPU. The geometries are
/// used by no other test, so the pins don't change what the other tests run.
#[test]
fn conv_pinned_tile_variants() {
    use bragg::backend::opencl::{ConvPass, ConvTiles};
    let Some(gpu) = ocl() else { return };
    let be = gpu.opencl_backend().unwrap();
    let cases: [ConvCase; 3] = [
        (2, 19, 21, [5, 9, 7], [3, 3, 3], 1, 1, true),
        (1, 13, 40, [1, 23, 29], [1, 3, 3], 2, 1, true),
        (3, 8, 9, [4, 6, 5], [2, 2, 2], 1, 1, false),
    ];
    let shapes = [
        (32, 64, 16, 8, 8, true),
        (32, 128, 8, 4, 8, true),
        (16, 32, 32, 2, 4, true),
        (64, 64, 16, 4, 4, false),
        (48, 256, 8, 8, 8, false),
        (8, 64, 16, 2, 8, true),
        (4, 32, 8, 1, 2, true),
    ];
    for (ci, case) in cases.iter().enumerate() {
        for (si, &(tm, tn, tk, rm, rn, prefetch)) in shapes.iter().enumerate() {
            let t = ConvTiles {
                tm,
                tn,
                tk,
                rm,
                rn,
                prefetch,
            };
            // Same geometry with a batch per shape, so each shape gets its own plan.
            let mut g = geometry(case);
            g.batch += si;
            for pass in [
                ConvPass::Forward,
                ConvPass::BackwardData,
                ConvPass::BackwardWeight,
            ] {
                be.pin_conv_tiles(pass, &g, t).unwrap();
            }
            let seed = 100 * ci as u64 + si as u64;
            conv_passes_match(&gpu, &g, seed, &format!("with {t:?} on {g:?}"));
            assert_eq!(be.conv_tiles_of(ConvPass::Forward, &g), Some(t));
        }
    }
    // A shape the device cannot hold is refused with a message naming it.
    let g = geometry(&cases[0]);
    let huge = ConvTiles {
        tm: 128,
        tn: 256,
        tk: 32,
        rm: 1,
        rn: 1,
        prefetch: false,
    };
    let e = be
        .pin_conv_tiles(ConvPass::Forward, &g, huge)
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not fit"), "{e}");
}

#[test]
fn pool_upsample_copy_filter_primitives() {
    let Some(gpu) = ocl() else { return };
    let cpu = Device::cpu();
    let (cb, gb) = (cpu.backend(), gpu.backend());
    for (input, window) in [([1, 9, 8], [1, 2, 2]), ([5, 6, 7], [2, 2, 2])] {
        let g = PoolGeometry::new(3, input, window).unwrap();
        let x = rand_vec(g.input_len(), 1, -1.0, 1.0);
        let (yc, ac) = cb.maxpool_forward(&up(&cpu, &x), &g).unwrap();
        let (yg, ag) = gb.maxpool_forward(&up(&gpu, &x), &g).unwrap();
        tight("maxpool values", &down(&gpu, &yg), &down(&cpu, &yc));
        tight("maxpool argmax", &down(&gpu, &ag), &down(&cpu, &ac));
        let gy = rand_vec(g.output_len(), 2, -1.0, 1.0);
        let want = cb.maxpool_backward(&up(&cpu, &gy), &ac, &g).unwrap();
        let got = gb.maxpool_backward(&up(&gpu, &gy), &ag, &g).unwrap();
        tight("maxpool backward", &down(&gpu, &got), &down(&cpu, &want));
    }
    for (input, factor) in [([1, 5, 4], [1, 2, 3]), ([3, 4, 5], [2, 2, 2])] {
        let g = UpsampleGeometry::new(2, input, factor).unwrap();
        let x = rand_vec(g.input_len(), 3, -1.0, 1.0);
        let want = cb.upsample_forward(&up(&cpu, &x), &g).unwrap();
        let got = gb.upsample_forward(&up(&gpu, &x), &g).unwrap();
        tight("upsample", &down(&gpu, &got), &down(&cpu, &want));
        let gy = rand_vec(g.output_len(), 4, -1.0, 1.0);
        let want = cb.upsample_backward(&up(&cpu, &gy), &g).unwrap();
        let got = gb.upsample_backward(&up(&gpu, &gy), &g).unwrap();
        loose("upsample backward", &down(&gpu, &got), &down(&cpu, &want));
    }
    let c = AxisCopy {
        outer: 3,
        inner: 5,
        src_len: 4,
        src_start: 1,
        dst_len: 6,
        dst_start: 2,
        count: 3,
    };
    let src = rand_vec(3 * 4 * 5, 5, -1.0, 1.0);
    let dst = rand_vec(3 * 6 * 5, 6, -1.0, 1.0);
    let mut dc = up(&cpu, &dst);
    let mut dg = up(&gpu, &dst);
    cb.copy_axis(&up(&cpu, &src), &mut dc, &c).unwrap();
    gb.copy_axis(&up(&gpu, &src), &mut dg, &c).unwrap();
    tight("copy_axis", &down(&gpu, &dg), &down(&cpu, &dc));
    for adjoint in [false, true] {
        let f = AxisFilter {
            outer: 4,
            len: 13,
            inner: 6,
            taps: gaussian_taps(7, 1.5),
            adjoint,
        };
        let x = rand_vec(4 * 13 * 6, 7, -1.0, 1.0);
        let want = cb.filter_axis(&up(&cpu, &x), &f).unwrap();
        let got = gb.filter_axis(&up(&gpu, &x), &f).unwrap();
        loose(
            &format!("filter_axis adjoint={adjoint}"),
            &down(&gpu, &got),
            &down(&cpu, &want),
        );
    }
}

#[test]
fn optimiser_steps() {
    let Some(gpu) = ocl() else { return };
    let cpu = Device::cpu();
    let n = 3000;
    let p = rand_vec(n, 1, -1.0, 1.0);
    let (mut pc, mut pg) = (up(&cpu, &p), up(&gpu, &p));
    let (mut mc, mut mg) = (up(&cpu, &vec![0.0; n]), up(&gpu, &vec![0.0; n]));
    let (mut vc, mut vg) = (up(&cpu, &vec![0.0; n]), up(&gpu, &vec![0.0; n]));
    for step in 1..=3u64 {
        let g = rand_vec(n, 10 + step, -1.0, 1.0);
        let h = AdamHyper {
            lr: 1e-2,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            step,
            weight_decay: 1e-3,
        };
        cpu.backend()
            .adam_step(&mut pc, &up(&cpu, &g), &mut mc, &mut vc, &h)
            .unwrap();
        gpu.backend()
            .adam_step(&mut pg, &up(&gpu, &g), &mut mg, &mut vg, &h)
            .unwrap();
    }
    tight("adam param", &down(&gpu, &pg), &down(&cpu, &pc));
    tight("adam m", &down(&gpu, &mg), &down(&cpu, &mc));
    tight("adam v", &down(&gpu, &vg), &down(&cpu, &vc));
    let (mut pc, mut pg) = (up(&cpu, &p), up(&gpu, &p));
    let (mut uc, mut ug) = (up(&cpu, &vec![0.0; n]), up(&gpu, &vec![0.0; n]));
    for step in 1..=3u64 {
        let g = rand_vec(n, 20 + step, -1.0, 1.0);
        let h = SgdHyper {
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 1e-3,
        };
        cpu.backend()
            .sgd_step(&mut pc, &up(&cpu, &g), &mut uc, &h)
            .unwrap();
        gpu.backend()
            .sgd_step(&mut pg, &up(&gpu, &g), &mut ug, &h)
            .unwrap();
    }
    tight("sgd param", &down(&gpu, &pg), &down(&cpu, &pc));
    tight("sgd velocity", &down(&gpu, &ug), &down(&cpu, &uc));
}

/// Runs `f` on both devices with the same leaf data; compares the output and the gradients of
/// every leaf (the output is reduced with fixed random weights first).
fn tensor_parity(
    name: &str,
    gpu: &Device,
    leaves: &[(Vec<usize>, f32, f32)],
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
) {
    let cpu = Device::cpu();
    let mut results = Vec::new();
    for dev in [&cpu, gpu] {
        let ts: Vec<Tensor> = leaves
            .iter()
            .enumerate()
            .map(|(i, (s, lo, hi))| {
                let v = rand_vec(s.iter().product(), 1000 + i as u64, *lo, *hi);
                Tensor::param(&v, s, dev).unwrap()
            })
            .collect();
        let y = f(&ts).unwrap();
        let w = Tensor::from_vec(rand_vec(y.numel(), 77, -1.0, 1.0), y.shape(), dev).unwrap();
        let loss = y.mul(&w).unwrap().sum().unwrap();
        let grads = loss.backward().unwrap();
        let gs: Vec<Vec<f32>> = ts
            .iter()
            .map(|t| {
                grads
                    .get(t)
                    .map(|g| g.to_vec().unwrap())
                    .unwrap_or_default()
            })
            .collect();
        results.push((y.to_vec().unwrap(), gs));
    }
    let (yc, gc) = &results[0];
    let (yg, gg) = &results[1];
    loose(&format!("{name}: forward"), yg, yc);
    for (i, (a, b)) in gg.iter().zip(gc).enumerate() {
        loose(&format!("{name}: gradient of input {i}"), a, b);
    }
}

#[test]
fn tensor_api_2d_network_gradients() {
    let Some(gpu) = ocl() else { return };
    for dil in 1..=4usize {
        tensor_parity(
            &format!("2-D conv net, dilation {dil}"),
            &gpu,
            &[
                (vec![2, 3, 12, 10], -1.0, 1.0),
                (vec![4, 3, 3, 3], -0.5, 0.5),
                (vec![4], -0.5, 0.5),
                (vec![4, 2, 4, 4], -0.5, 0.5),
                (vec![4], -0.5, 0.5),
            ],
            |t| {
                let h = t[0]
                    .conv(&t[1], Some(&t[2]), &[dil], &[1], Padding::Same)?
                    .leaky_relu(0.1)?;
                let p = h.max_pool(&[2, 2])?.upsample(&[2, 2])?;
                let c = concat(&[&p, &h], 1)?.narrow(1, 2, 2)?;
                // Even kernel, stride 2, then the transposed convolution back up.
                let d = c.conv(&t[3], Some(&t[4]), &[1], &[2], Padding::Same)?;
                let u = d.conv_transpose(&t[3].narrow(1, 0, 2)?, None, &[1], &[2])?;
                let s = u.tanh()?.filter_axis(3, &[0.25, 0.5, 0.25])?;
                let b = s.sum_axes(&[1], true)?.mul(&s)?;
                b.sigmoid()?.add(&s.mean_axes(&[2, 3], true)?)
            },
        );
    }
}

#[test]
fn tensor_api_3d_network_gradients() {
    let Some(gpu) = ocl() else { return };
    for dil in [1usize, 2, 3] {
        tensor_parity(
            &format!("3-D conv net, dilation {dil}"),
            &gpu,
            &[
                (vec![1, 2, 8, 7, 6], -1.0, 1.0),
                (vec![3, 2, 3, 3, 3], -0.5, 0.5),
                (vec![3], -0.5, 0.5),
                (vec![3, 3, 2, 2, 2], -0.5, 0.5),
            ],
            |t| {
                let h = t[0]
                    .conv(&t[1], Some(&t[2]), &[dil], &[1], Padding::Same)?
                    .relu()?;
                let p = h.narrow(2, 0, 6)?.max_pool_floor(&[2, 2, 2])?;
                let q = p.conv(&t[3], None, &[1], &[1], Padding::Same)?;
                let u = q.upsample(&[2, 2, 2])?;
                let c = concat(&[&u, &h.narrow(2, 0, 6)?.narrow(3, 0, 6)?], 1)?;
                c.square()?.sum_axes(&[2, 4], true)?.sqrt()
            },
        );
    }
}

#[test]
fn f16_upload_converts_on_device() {
    let Some(gpu) = ocl() else { return };
    let vals: Vec<f32> = rand_vec(1234, 9, -100.0, 100.0);
    let h: Vec<half::f16> = vals.iter().map(|&v| half::f16::from_f32(v)).collect();
    let s = upload_f16(&gpu, &h).unwrap();
    let got = down(&gpu, &s);
    let want: Vec<f32> = h.iter().map(|v| v.to_f32()).collect();
    assert_eq!(got, want, "f16 -> f32 conversion must be exact");
    assert!(upload_f16(&Device::cpu(), &h).is_err());
}

#[test]
fn buffer_pool_reuses_and_tracks_peak() {
    let Some(gpu) = ocl() else { return };
    // A private backend instance: other tests running in parallel do not touch its pool.
    let index: usize = gpu.name()[7..].split(' ').next().unwrap().parse().unwrap();
    let be = std::sync::Arc::new(OpenClBackend::new(index).unwrap());
    let gpu = Device::from_backend(be.clone());
    let a = gpu.backend().full(1 << 20, 1.0).unwrap();
    let peak = gpu.backend().peak_memory().unwrap();
    assert!(peak >= 4 << 20, "peak {peak} must count the 4 MiB tensor");
    let before = be.memory_in_use();
    drop(a);
    assert_eq!(be.memory_in_use() + (4 << 20), before);
    let b = gpu.backend().full(1 << 20, 2.0).unwrap();
    assert_eq!(down(&gpu, &b)[12345], 2.0);
    assert_eq!(be.memory_in_use(), before);
    // Too large for any device: a clear error, not a crash.
    let e = gpu.backend().full(1usize << 46, 0.0).unwrap_err();
    assert!(e.to_string().contains("out of device memory"), "{e}");
}

#[test]
fn device_specs() {
    assert!(Device::from_spec("cpu").unwrap().same(&Device::cpu()));
    let e = Device::from_spec("tpu").unwrap_err().to_string();
    assert!(e.contains("unknown device"), "{e}");
    let e = Device::from_spec("opencl:x").unwrap_err().to_string();
    assert!(e.contains("opencl:N"), "{e}");
    let Some(_) = ocl() else { return };
    let e = Device::from_spec("opencl:999").unwrap_err().to_string();
    assert!(e.contains("does not exist"), "{e}");
    assert!(Device::from_spec("opencl:0")
        .unwrap()
        .same(&Device::opencl(0).unwrap()));
}

#[test]
fn conv_tile_selection() {
    use bragg::backend::opencl::{ConvTiles, Limits};
    let default = ConvTiles::square(64);
    let gpu = Limits {
        max_work_group: 1024,
        local_mem: 48 * 1024,
        compute_units: 132,
        wg1: 256,
        tiles: default,
    };
    let t = |m: usize, n: usize| {
        let t = ConvTiles::for_gemm(m, n, &gpu);
        assert!(t.threads() <= 1024 && t.local_bytes() <= 48 * 1024, "{t:?}");
        assert_eq!(t.tm % t.rm, 0);
        assert_eq!(t.tn % t.rn, 0);
        (t.tm, t.tn, t.rm, t.rn)
    };
    assert_eq!(t(32, 262144), (32, 256, 8, 8));
    assert_eq!(t(1, 864), (1, 128, 1, 2));
    assert_eq!(t(1, 450), (1, 64, 1, 2));
    assert_eq!(t(33, 1 << 20), (48, 256, 8, 8));
    assert_eq!(t(66, 1 << 20), (96, 128, 8, 8));
    assert_eq!(t(16, 1 << 20), (16, 256, 4, 8));
    assert_eq!(t(48, 1 << 19), (48, 256, 8, 8));
    assert_eq!(t(64, 1 << 19), (64, 256, 8, 8));
    assert_eq!(t(256, 1 << 19), (128, 128, 8, 8));
    assert_eq!(t(32, 864), (32, 128, 8, 8));
    // A device without room for the shapes keeps its default.
    let small = Limits {
        max_work_group: 128,
        local_mem: 16 * 1024,
        ..gpu
    };
    assert_eq!(ConvTiles::for_gemm(32, 1 << 20, &small), default);
}
