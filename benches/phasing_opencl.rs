//! One RAAR cycle (FFT, Fourier projection, inverse FFT, real-space update, all on the device)
//! at 128^3 and 256^3 on every OpenCL device; prints a skip message without any.
//! Run: `cargo bench --bench phasing_opencl` (sizes: `BRAGG_PHASING_SIZES=128,256`).

use bragg::backend::opencl::list_devices;
use bragg::phasing::kernels::Algorithm;
use bragg::phasing::opencl::DevicePhaser;
use bragg::Device;
use criterion::{criterion_group, criterion_main, Criterion};
use num_complex::Complex32;
use std::time::Duration;

fn sizes() -> Vec<usize> {
    std::env::var("BRAGG_PHASING_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|v| v.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![128, 256])
}

fn raar_cycle(c: &mut Criterion) {
    let (rows, note) = list_devices();
    let specs: Vec<String> = rows
        .iter()
        .filter(|r| r.spec.starts_with("opencl"))
        .map(|r| r.spec.clone())
        .collect();
    if specs.is_empty() {
        eprintln!(
            "phasing_opencl: SKIPPED, no OpenCL device ({})",
            note.unwrap_or_default()
        );
        return;
    }
    let mut group = c.benchmark_group("phasing_opencl");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    for spec in specs {
        let be = match Device::from_spec(&spec).map(|d| d.opencl_backend()) {
            Ok(Some(be)) => be,
            Ok(None) => continue,
            Err(e) => {
                eprintln!("phasing_opencl: {spec} SKIPPED ({e})");
                continue;
            }
        };
        eprintln!("phasing_opencl: {spec} = {}", be.device_name());
        for n in sizes() {
            let shape = [n, n, n];
            let len = n * n * n;
            let iobs: Vec<f32> = (0..len).map(|i| ((i * 7919) % 1000) as f32).collect();
            let mask: Vec<u8> = (0..len).map(|i| u8::from(i % 97 == 0)).collect();
            let support: Vec<u8> = (0..len).map(|i| u8::from((i / n) % n < n / 2)).collect();
            let rho: Vec<Complex32> = (0..len)
                .map(|i| Complex32::new((i % 13) as f32, (i % 7) as f32))
                .collect();
            let mut p =
                match DevicePhaser::new(be.clone(), &shape, &iobs, &mask, &support, 0.0, 0.9) {
                    Ok(p) => p,
                    Err(e) => {
                        eprintln!("phasing_opencl: {spec} {n}^3 SKIPPED ({e})");
                        continue;
                    }
                };
            if let Err(e) = p.set_object(&rho) {
                eprintln!("phasing_opencl: {spec} {n}^3 SKIPPED ({e})");
                continue;
            }
            group.bench_function(format!("raar_cycle_{n}^3/{spec}"), |b| {
                b.iter(|| {
                    p.cycle(Algorithm::Raar).expect("cycle");
                    p.finish().expect("finish");
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, raar_cycle);
criterion_main!(benches);
