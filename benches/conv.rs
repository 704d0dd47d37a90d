//! CPU kernel benchmarks: convolutions (forward + backward through autograd, and the raw
//! primitives), max-pooling and nearest upsampling.
//!
//! Throughput of the convolutions is reported as elements = FLOPs (so criterion's `Gelem/s`
//! reads as GFLOP/s); forward + backward counts three forward passes (input and weight
//! gradients). Pooling and upsampling report bytes moved. Run with `cargo bench --bench conv`;
//! `BRAGG_BENCH_QUICK=1` keeps only the two conv3d autograd cases.

use bragg::ops::conv::{cpu as conv_cpu, ConvGeometry};
use bragg::{Device, Padding, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use std::time::Duration;

fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// One convolution case: batch, in/out channels, spatial size (2-D: depth 1), kernel, dilation.
struct ConvCase {
    name: &'static str,
    batch: usize,
    c_in: usize,
    c_out: usize,
    spatial: Vec<usize>,
    kernel: usize,
    dilation: usize,
}

impl ConvCase {
    fn geometry(&self) -> ConvGeometry {
        let sr = self.spatial.len();
        let mut input = [1; 3];
        let mut kernel = [1; 3];
        let mut dilation = [1; 3];
        for a in 0..sr {
            input[3 - sr + a] = self.spatial[a];
            kernel[3 - sr + a] = self.kernel;
            dilation[3 - sr + a] = self.dilation;
        }
        ConvGeometry::same(
            "bench", self.batch, self.c_in, self.c_out, input, kernel, dilation, [1; 3],
        )
        .unwrap()
    }
}

fn conv_cases() -> Vec<ConvCase> {
    let mut v = vec![
        ConvCase {
            name: "conv3d_n8_c32_32^3_k3_d1",
            batch: 8,
            c_in: 32,
            c_out: 32,
            spatial: vec![32, 32, 32],
            kernel: 3,
            dilation: 1,
        },
        ConvCase {
            name: "conv3d_n8_c32_32^3_k3_d4",
            batch: 8,
            c_in: 32,
            c_out: 32,
            spatial: vec![32, 32, 32],
            kernel: 3,
            dilation: 4,
        },
    ];
    if std::env::var_os("BRAGG_BENCH_QUICK").is_none() {
        v.push(ConvCase {
            name: "conv2d_n32_c1-48_128^2_k3",
            batch: 32,
            c_in: 1,
            c_out: 48,
            spatial: vec![128, 128],
            kernel: 3,
            dilation: 1,
        });
        v.push(ConvCase {
            name: "conv2d_n32_c48-48_128^2_k3",
            batch: 32,
            c_in: 48,
            c_out: 48,
            spatial: vec![128, 128],
            kernel: 3,
            dilation: 1,
        });
    }
    v
}

fn configure(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
}

fn bench_conv(c: &mut Criterion) {
    let dev = Device::cpu();
    let quick = std::env::var_os("BRAGG_BENCH_QUICK").is_some();
    for case in conv_cases() {
        let g = case.geometry();
        let flops = g.forward_flops();
        let mut x_shape = vec![case.batch, case.c_in];
        x_shape.extend(&case.spatial);
        let mut w_shape = vec![case.c_out, case.c_in];
        w_shape.extend(std::iter::repeat_n(case.kernel, case.spatial.len()));
        let xd = rand_vec(g.input_len(), 1);
        let wd = rand_vec(g.weight_len(), 2);
        let x = Tensor::param(&xd, &x_shape, &dev).unwrap();
        let w = Tensor::param(&wd, &w_shape, &dev).unwrap();
        let mut group = c.benchmark_group(case.name);
        configure(&mut group);

        group.throughput(Throughput::Elements((3.0 * flops) as u64));
        group.bench_function("autograd_fwd_bwd", |b| {
            b.iter(|| {
                let y = x
                    .conv(&w, None, &[case.dilation], &[1], Padding::Same)
                    .unwrap();
                let grads = y.sum().unwrap().backward().unwrap();
                assert!(grads.get(&w).is_some() && grads.get(&x).is_some());
            })
        });
        if quick {
            group.finish();
            continue;
        }
        let gy = rand_vec(g.output_len(), 3);
        group.throughput(Throughput::Elements(flops as u64));
        group.bench_function("raw_forward", |b| {
            b.iter(|| conv_cpu::forward(&xd, &wd, None, &g))
        });
        group.bench_function("raw_backward_data", |b| {
            b.iter(|| conv_cpu::backward_data(&gy, &wd, &g))
        });
        group.bench_function("raw_backward_weight", |b| {
            b.iter(|| conv_cpu::backward_weight(&xd, &gy, &g))
        });
        group.finish();
    }
}

fn bench_pool_upsample(c: &mut Criterion) {
    if std::env::var_os("BRAGG_BENCH_QUICK").is_some() {
        return;
    }
    let dev = Device::cpu();
    for (name, shape) in [
        ("2d_n32_c48_128^2", vec![32, 48, 128, 128]),
        ("3d_n8_c32_32^3", vec![8, 32, 32, 32, 32]),
    ] {
        let n: usize = shape.iter().product();
        let x = Tensor::param(&rand_vec(n, 4), &shape, &dev).unwrap();
        let small = x.max_pool(&[2]).unwrap().detach();
        let small = small.into_param();
        let mut group = c.benchmark_group(format!("pool_upsample_{name}"));
        configure(&mut group);
        // max-pool forward: reads n floats, writes n/2^r values and n/2^r argmax slots.
        let m = small.numel();
        group.throughput(Throughput::Bytes((4 * (n + 2 * m)) as u64));
        group.bench_function("maxpool_forward", |b| b.iter(|| x.max_pool(&[2]).unwrap()));
        // forward + backward: the above, then reads gy and argmax and writes n floats.
        group.throughput(Throughput::Bytes((4 * (2 * n + 4 * m)) as u64));
        group.bench_function("maxpool_fwd_bwd", |b| {
            b.iter(|| x.max_pool(&[2]).unwrap().sum().unwrap().backward().unwrap())
        });
        // upsample forward: reads m floats, writes n.
        group.throughput(Throughput::Bytes((4 * (n + m)) as u64));
        group.bench_function("upsample_forward", |b| {
            b.iter(|| small.upsample(&[2]).unwrap())
        });
        group.throughput(Throughput::Bytes((4 * 2 * (n + m)) as u64));
        group.bench_function("upsample_fwd_bwd", |b| {
            b.iter(|| {
                small
                    .upsample(&[2])
                    .unwrap()
                    .sum()
                    .unwrap()
                    .backward()
                    .unwrap()
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench_conv, bench_pool_upsample);
criterion_main!(benches);
