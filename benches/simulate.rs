//! Simulation throughput (patterns/s) at 2D 128^2, 3D 64^3 and 3D 128^3 (one pattern per
//! iteration, all threads of the rayon pool).

use bragg::sim::{simulate_sample, GapSpec, SimConfig};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("simulate");
    g.throughput(Throughput::Elements(1));
    for (name, dim, size, samples) in [
        ("2d_128", 2, 128, 30),
        ("3d_64", 3, 64, 10),
        ("3d_128", 3, 128, 10),
    ] {
        let cfg = SimConfig {
            dim,
            size,
            gap: GapSpec::Line(6),
            ..SimConfig::default()
        };
        g.sample_size(samples);
        g.measurement_time(Duration::from_secs(if size == 128 && dim == 3 {
            20
        } else {
            5
        }));
        let mut i = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                simulate_sample(&cfg, i).expect("simulate")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
