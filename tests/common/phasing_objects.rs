//! Test objects shared by the phase-retrieval test files.

use bragg::fft::{fftshift, Direction, FftPlan};
use ndarray::{ArrayD, IxDyn};
use num_complex::Complex32;

/// A soft-edged ellipse (2D) or ellipsoid (3D) near the array centre, cut by a plane so that it
/// is not centro-symmetric (a facet, as crystals have), with a smooth phase.
pub fn object(shape: &[usize], semi: &[f64]) -> ArrayD<Complex32> {
    let soft = |d: f64| 1.0 / (1.0 + (d / 0.6).exp());
    ArrayD::from_shape_fn(IxDyn(shape), |idx| {
        let mut r2 = 0.0;
        let mut facet = 0.0;
        let mut ph = 0.0;
        for d in 0..shape.len() {
            let x = idx[d] as f64 - (shape[d] / 2) as f64;
            r2 += (x / semi[d]).powi(2);
            facet += x * [0.8, 0.6, 0.5][d];
            ph += 0.4 * (x / semi[d]) * (d as f64 + 1.0);
        }
        ph += 0.6 * (std::f64::consts::PI * r2.sqrt()).cos();
        let edge = (r2.sqrt() - 1.0) * semi[shape.len() - 1];
        let m = soft(edge) * soft(facet - 0.4 * semi[0]);
        Complex32::from_polar(m as f32, ph as f32)
    })
}

/// Centred intensity |FFT(obj)|^2 (peak at the array centre, as the simulator writes it).
pub fn intensity(obj: &ArrayD<Complex32>) -> ArrayD<f32> {
    let mut f = obj.clone();
    FftPlan::new(obj.shape()).process(f.as_slice_mut().unwrap(), Direction::Forward);
    fftshift(&f.mapv(|v| v.norm_sqr()))
}
