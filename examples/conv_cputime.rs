//! Throughput per CPU-second of the raw CPU convolution primitives (steadier than wall clock on
//! a shared machine): `RAYON_NUM_THREADS=1 cargo run --release --example conv_cputime`.
//! CPU time is utime + stime of the process from `/proc/self/stat` (all threads).

use bragg::ops::conv::{cpu, ConvGeometry};
use bragg::ops::pool::{cpu as pool_cpu, PoolGeometry};
use bragg::ops::resample::{cpu as up_cpu, UpsampleGeometry};
use std::time::Instant;

fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn measure(name: &str, flops: f64, f: impl FnMut()) {
    measure_unit(name, flops, "GFLOP", f)
}

fn measure_unit(name: &str, flops: f64, unit: &str, mut f: impl FnMut()) {
    f();
    let (c0, t0) = (cpu_seconds(), Instant::now());
    let mut iters = 0;
    while cpu_seconds() - c0 < 1.5 || iters < 2 {
        f();
        iters += 1;
    }
    let (cpu, wall) = (cpu_seconds() - c0, t0.elapsed().as_secs_f64());
    println!(
        "{name:40} {:7.2} {unit}/cpu-s {:7.2} {unit}/s wall",
        flops * iters as f64 / cpu / 1e9,
        flops * iters as f64 / wall / 1e9
    );
}

fn main() {
    let only = std::env::args().nth(1).unwrap_or_default();
    let cases = [
        ("conv3d_d1", 8, 32, 32, [32, 32, 32], [3, 3, 3], [1, 1, 1]),
        ("conv3d_d4", 8, 32, 32, [32, 32, 32], [3, 3, 3], [4, 4, 4]),
        ("conv2d_48", 32, 48, 48, [1, 128, 128], [1, 3, 3], [1, 1, 1]),
        ("conv2d_1", 32, 1, 48, [1, 128, 128], [1, 3, 3], [1, 1, 1]),
        // the patch model's first head convolution (most of its training FLOPs)
        ("head0", 8, 32, 24, [32, 32, 32], [4, 4, 4], [1, 1, 1]),
    ];
    if only.is_empty() || only == "pool" {
        pool_upsample();
    }
    for (name, n, ci, co, input, kernel, dil) in cases {
        if !only.is_empty() && !name.contains(&only) {
            continue;
        }
        let g = ConvGeometry::same("t", n, ci, co, input, kernel, dil, [1; 3]).unwrap();
        let flops = g.forward_flops();
        let x = rand_vec(g.input_len(), 1);
        let w = rand_vec(g.weight_len(), 2);
        let gy = rand_vec(g.output_len(), 3);
        measure(&format!("{name} forward"), flops, || {
            std::hint::black_box(cpu::forward(&x, &w, None, &g));
        });
        measure(&format!("{name} backward_data"), flops, || {
            std::hint::black_box(cpu::backward_data(&gy, &w, &g));
        });
        measure(&format!("{name} backward_weight"), flops, || {
            std::hint::black_box(cpu::backward_weight(&x, &gy, &g));
        });
    }
}

/// Max-pool / upsample raw kernels (window / factor 2), bytes as in benches/conv.rs.
fn pool_upsample() {
    for (name, planes, input) in [("2d", 32 * 48, [1, 128, 128]), ("3d", 8 * 32, [32, 32, 32])] {
        let window = if input[0] == 1 { [1, 2, 2] } else { [2, 2, 2] };
        let g = PoolGeometry::new(planes, input, window).unwrap();
        let (n, m) = (g.input_len() as f64, g.output_len() as f64);
        let x = rand_vec(g.input_len(), 4);
        measure_unit(
            &format!("maxpool_{name} forward"),
            4.0 * (n + 2.0 * m),
            "GB",
            || {
                std::hint::black_box(pool_cpu::forward(&x, &g));
            },
        );
        let (y, arg) = pool_cpu::forward(&x, &g);
        measure_unit(
            &format!("maxpool_{name} fwd+bwd"),
            4.0 * (2.0 * n + 4.0 * m),
            "GB",
            || {
                std::hint::black_box(pool_cpu::forward(&x, &g));
                std::hint::black_box(pool_cpu::backward(&y, &arg, &g));
            },
        );
        let small = [0, 1, 2].map(|a| input[a] / window[a]);
        let u = UpsampleGeometry::new(planes, small, window).unwrap();
        let xs = rand_vec(u.input_len(), 5);
        let gy = rand_vec(u.output_len(), 6);
        measure_unit(
            &format!("upsample_{name} forward"),
            4.0 * (n + m),
            "GB",
            || {
                std::hint::black_box(up_cpu::forward(&xs, &u));
            },
        );
        measure_unit(
            &format!("upsample_{name} fwd+bwd"),
            8.0 * (n + m),
            "GB",
            || {
                std::hint::black_box(up_cpu::forward(&xs, &u));
                std::hint::black_box(up_cpu::backward(&gy, &u));
            },
        );
    }
}
