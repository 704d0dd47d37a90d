//! One RAAR cycle (FFT, Fourier projection, inverse FFT, real-space update) at 128^3 and 256^3.
//! Run: `cargo bench --bench phasing`.

use bragg::fft::{Direction, FftPlan};
use bragg::phasing::kernels::{self, Algorithm};
use criterion::{criterion_group, criterion_main, Criterion};
use num_complex::Complex32;

fn raar_cycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("phasing");
    group.sample_size(10);
    for n in [128usize, 256] {
        let shape = [n, n, n];
        let len = n * n * n;
        let plan = FftPlan::new(&shape);
        let iobs: Vec<f32> = (0..len).map(|i| ((i * 7919) % 1000) as f32).collect();
        let mask: Vec<u8> = (0..len).map(|i| u8::from(i % 97 == 0)).collect();
        let support: Vec<u8> = (0..len).map(|i| u8::from((i / n) % n < n / 2)).collect();
        let mut rho: Vec<Complex32> = (0..len)
            .map(|i| Complex32::new((i % 13) as f32, (i % 7) as f32))
            .collect();
        let mut psi = vec![Complex32::default(); len];
        let scale = 1.0 / len as f32;
        group.bench_function(format!("raar_cycle_{n}^3"), |b| {
            b.iter(|| {
                kernels::copy(&rho, &mut psi);
                plan.process_unscaled(&mut psi, Direction::Forward);
                kernels::fourier_projection(&mut psi, &iobs, &mask, scale, 0.0);
                plan.process_unscaled(&mut psi, Direction::Inverse);
                kernels::real_space_update(&mut rho, &psi, &support, Algorithm::Raar, 0.9);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, raar_cycle);
criterion_main!(benches);
