//! OpenCL kernel benchmarks on every available OpenCL device: the conv cases of the BCDI models
//! (forward, and backward = data + weight gradients) and max-pool / upsample.
//!
//! Throughput: for convolutions criterion's "elem/s" is FLOP/s (2 x multiply-adds; backward
//! counts both gradients, 2x the forward); for pool/upsample its "B/s" is bytes read + written.
//! Without an OpenCL device the bench prints a message and measures nothing.
//! Each conv case also prints one line `name: forward .. ms .. GFLOP/s | backward .. | fwd+bwd ..`
//! (median of 20 runs) in the format of `scripts/bench_torch_gpu.py`, which runs the same cases.
//! `BRAGG_BENCH_SMALL=1` shrinks every case (batch 1, 16^3 / 64^2) for quick runs.
//!
//! Run: `cargo bench --bench opencl` (`BRAGG_DEVICE=opencl:N` to bench one device only)

use bragg::backend::opencl::list_devices;
use bragg::ops::conv::ConvGeometry;
use bragg::ops::pool::PoolGeometry;
use bragg::ops::resample::UpsampleGeometry;
use bragg::Device;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;

fn opencl_devices() -> Vec<Device> {
    let (rows, note) = list_devices();
    let devs: Vec<Device> = rows
        .iter()
        .filter(|r| r.spec.starts_with("opencl"))
        // BRAGG_DEVICE=opencl:N restricts the bench to that device.
        .filter(|r| match std::env::var("BRAGG_DEVICE") {
            Ok(want) if want.starts_with("opencl") => r.spec == want,
            _ => true,
        })
        .filter_map(|r| match Device::from_spec(&r.spec) {
            Ok(d) => Some(d),
            Err(e) => {
                eprintln!("skipping {}: {e}", r.spec);
                None
            }
        })
        .collect();
    if devs.is_empty() {
        eprintln!(
            "opencl bench: no OpenCL device, nothing to measure ({})",
            note.unwrap_or_default()
        );
    }
    devs
}

fn fill(dev: &Device, n: usize) -> bragg::backend::Storage {
    let v: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    dev.backend().upload(&v).expect("upload")
}

fn conv_cases(small: bool) -> Vec<(String, ConvGeometry)> {
    let mut v = Vec::new();
    let (n3, s3, n2, s2) = if small {
        (1, 16, 1, 64)
    } else {
        (8, 32, 32, 128)
    };
    // (name, batch, C, O, input, kernel, dilation)
    let mut push = |n: usize, c: usize, o: usize, input: [usize; 3], k: [usize; 3], d: usize| {
        let dims = if input[0] == 1 {
            format!("{}^2", input[1])
        } else {
            format!("{}^3", input[0])
        };
        let kk = k[2];
        let dil = if input[0] == 1 { [1, d, d] } else { [d; 3] };
        let name = format!(
            "conv{}d_n{n}_{c}to{o}_{dims}_k{kk}_d{d}",
            if input[0] == 1 { 2 } else { 3 }
        );
        let g = ConvGeometry::same("bench", n, c, o, input, k, dil, [1; 3]).expect("geometry");
        v.push((name, g));
    };
    for dil in [1usize, 4] {
        push(n3, 32, 32, [s3; 3], [3; 3], dil);
    }
    push(n2, 48, 48, [1, s2, s2], [1, 3, 3], 1);
    push(n2, 1, 48, [1, s2, s2], [1, 3, 3], 1);
    // An MSD-Net layer (many channels in, one out, strongly dilated) and a 3-D patch-model layer.
    push(n2, 50, 1, [1, s2, s2], [1, 3, 3], 10);
    let (np, sp) = if small { (2, 16) } else { (32, 16) };
    push(np, 33, 16, [sp; 3], [2; 3], 3);
    v
}

/// Median seconds of `f` over `reps` runs after two warm-up runs.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = std::time::Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    t[reps / 2]
}

fn bench(c: &mut Criterion) {
    let small = std::env::var("BRAGG_BENCH_SMALL").is_ok_and(|v| v == "1");
    for dev in opencl_devices() {
        let be = dev.backend();
        let name = dev.name();
        eprintln!("opencl bench on {name}");
        for (case, g) in conv_cases(small) {
            let x = fill(&dev, g.input_len());
            let w = fill(&dev, g.weight_len());
            let b = fill(&dev, g.out_channels);
            let gy = fill(&dev, g.output_len());
            let flops = g.forward_flops() as u64;
            let reps = if small { 5 } else { 20 };
            let fwd = time(reps, || {
                be.conv_forward(&x, &w, Some(&b), &g).expect("forward");
                be.synchronize().expect("sync");
            });
            let bwd = time(reps, || {
                be.conv_backward_data(&gy, &w, &g).expect("backward data");
                be.conv_backward_weight(&x, &gy, &g)
                    .expect("backward weight");
                be.synchronize().expect("sync");
            });
            let f = flops as f64;
            println!(
                "{case}: forward {:.3} ms {:.0} GFLOP/s | backward {:.3} ms {:.0} GFLOP/s | \
                 fwd+bwd {:.3} ms {:.0} GFLOP/s",
                fwd * 1e3,
                f / fwd / 1e9,
                bwd * 1e3,
                2.0 * f / bwd / 1e9,
                (fwd + bwd) * 1e3,
                3.0 * f / (fwd + bwd) / 1e9
            );
            let mut group = c.benchmark_group(format!("opencl/{case}"));
            group.throughput(Throughput::Elements(flops));
            group.bench_function(BenchmarkId::new("forward_flops", &name), |bch| {
                bch.iter(|| {
                    let y = be.conv_forward(&x, &w, Some(&b), &g).expect("forward");
                    be.synchronize().expect("sync");
                    y
                })
            });
            group.throughput(Throughput::Elements(2 * flops));
            group.bench_function(BenchmarkId::new("backward_flops", &name), |bch| {
                bch.iter(|| {
                    let gx = be.conv_backward_data(&gy, &w, &g).expect("backward data");
                    let gw = be
                        .conv_backward_weight(&x, &gy, &g)
                        .expect("backward weight");
                    be.synchronize().expect("sync");
                    (gx, gw)
                })
            });
            group.finish();
        }
        let (planes, side) = if small { (32, 16) } else { (8 * 32, 32) };
        let pg = PoolGeometry::new(planes, [side; 3], [2; 3]).expect("pool");
        let x = fill(&dev, pg.input_len());
        let mut group = c.benchmark_group(format!("opencl/maxpool3d_{planes}x{side}^3_w2"));
        group.throughput(Throughput::Bytes(
            4 * (pg.input_len() + 2 * pg.output_len()) as u64,
        ));
        group.bench_function(BenchmarkId::new("forward_bytes", &name), |bch| {
            bch.iter(|| {
                let r = be.maxpool_forward(&x, &pg).expect("pool");
                be.synchronize().expect("sync");
                r
            })
        });
        group.finish();
        let ug = UpsampleGeometry::new(planes, [side / 2; 3], [2; 3]).expect("upsample");
        let x = fill(&dev, ug.input_len());
        let mut group = c.benchmark_group(format!("opencl/upsample3d_{planes}x{}^3_f2", side / 2));
        group.throughput(Throughput::Bytes(
            4 * (ug.input_len() + ug.output_len()) as u64,
        ));
        group.bench_function(BenchmarkId::new("forward_bytes", &name), |bch| {
            bch.iter(|| {
                let r = be.upsample_forward(&x, &ug).expect("upsample");
                be.synchronize().expect("sync");
                r
            })
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
