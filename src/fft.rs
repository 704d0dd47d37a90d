//! N-dimensional FFTs on the CPU (rustfft, parallel over lines with rayon) and the
//! `fftshift` helpers. Conventions follow numpy: the forward transform is unscaled, the inverse
//! is scaled by 1/N.

use ndarray::{ArrayViewMut1, ArrayViewMutD, Axis, IxDyn};
use num_complex::Complex32;
use rayon::prelude::*;
use rustfft::{Fft, FftDirection, FftPlanner};
use std::sync::Arc;

/// Direction of a transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// exp(-2 pi i k n / N), unscaled.
    Forward,
    /// exp(+2 pi i k n / N), scaled by 1/N.
    Inverse,
}

fn transform_lane(
    lane: &mut ArrayViewMut1<Complex32>,
    fft: &dyn Fft<f32>,
    buf: &mut Vec<Complex32>,
    scratch: &mut [Complex32],
) {
    if let Some(slice) = lane.as_slice_mut() {
        fft.process_with_scratch(slice, scratch);
        return;
    }
    buf.clear();
    buf.extend(lane.iter().copied());
    fft.process_with_scratch(buf, scratch);
    for (dst, src) in lane.iter_mut().zip(buf.iter()) {
        *dst = *src;
    }
}

/// Transforms `data` in place along one axis.
pub fn fft_axis(data: &mut ArrayViewMutD<Complex32>, axis: usize, direction: Direction) {
    let n = data.len_of(Axis(axis));
    if n <= 1 || data.is_empty() {
        return;
    }
    let fft: Arc<dyn Fft<f32>> = FftPlanner::new().plan_fft(
        n,
        match direction {
            Direction::Forward => FftDirection::Forward,
            Direction::Inverse => FftDirection::Inverse,
        },
    );
    let scratch_len = fft.get_inplace_scratch_len();
    // Parallelise over the largest other axis; lines inside one sub-view run sequentially and
    // share one buffer, so no allocation happens per line.
    let outer = (0..data.ndim())
        .filter(|&a| a != axis)
        .max_by_key(|&a| data.len_of(Axis(a)));
    match outer {
        None => {
            let mut buf = Vec::with_capacity(n);
            let mut scratch = vec![Complex32::default(); scratch_len];
            let mut lane = data
                .view_mut()
                .into_dimensionality::<ndarray::Ix1>()
                .expect("1-D");
            transform_lane(&mut lane, fft.as_ref(), &mut buf, &mut scratch);
        }
        Some(outer) => {
            let inner_axis = if axis > outer { axis - 1 } else { axis };
            data.axis_iter_mut(Axis(outer))
                .into_par_iter()
                .for_each_init(
                    || {
                        (
                            Vec::with_capacity(n),
                            vec![Complex32::default(); scratch_len],
                        )
                    },
                    |(buf, scratch), mut sub| {
                        for mut lane in sub.lanes_mut(Axis(inner_axis)) {
                            transform_lane(&mut lane, fft.as_ref(), buf, scratch);
                        }
                    },
                );
        }
    }
    if direction == Direction::Inverse {
        let scale = 1.0 / n as f32;
        data.par_mapv_inplace(|v| v * scale);
    }
}

/// Transforms `data` in place along every axis.
pub fn fftn(data: &mut ArrayViewMutD<Complex32>, direction: Direction) {
    for axis in 0..data.ndim() {
        fft_axis(data, axis, direction);
    }
}

/// Transforms `data` in place along the last `k` axes (for example the spatial axes of a batch).
pub fn fftn_last(data: &mut ArrayViewMutD<Complex32>, k: usize, direction: Direction) {
    let nd = data.ndim();
    for axis in nd.saturating_sub(k)..nd {
        fft_axis(data, axis, direction);
    }
}

/// Rolls every axis by `floor(n/2)` (numpy's `fftshift`): the zero frequency moves to the centre.
pub fn fftshift<T: Clone>(a: &ndarray::ArrayD<T>) -> ndarray::ArrayD<T> {
    roll_all(a, |n| n / 2)
}

/// The inverse of [`fftshift`] (numpy's `ifftshift`), different for odd sizes.
pub fn ifftshift<T: Clone>(a: &ndarray::ArrayD<T>) -> ndarray::ArrayD<T> {
    roll_all(a, |n| n - n / 2)
}

fn roll_all<T: Clone>(
    a: &ndarray::ArrayD<T>,
    shift: impl Fn(usize) -> usize,
) -> ndarray::ArrayD<T> {
    let shape = a.shape().to_vec();
    let shifts: Vec<usize> = shape.iter().map(|&n| shift(n)).collect();
    ndarray::ArrayD::from_shape_fn(IxDyn(&shape), |idx| {
        let src: Vec<usize> = (0..shape.len())
            .map(|d| (idx[d] + shape[d] - shifts[d] % shape[d].max(1)) % shape[d].max(1))
            .collect();
        a[IxDyn(&src)].clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ArrayD;

    fn naive_dft_1d(x: &[Complex32]) -> Vec<Complex32> {
        let n = x.len();
        (0..n)
            .map(|k| {
                x.iter()
                    .enumerate()
                    .fold(Complex32::default(), |acc, (j, v)| {
                        let ang = -2.0 * std::f64::consts::PI * (k * j) as f64 / n as f64;
                        acc + v * Complex32::new(ang.cos() as f32, ang.sin() as f32)
                    })
            })
            .collect()
    }

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn fft_axis_matches_naive_dft_on_strided_lines() {
        let shape = [3, 6, 5];
        let a = ArrayD::from_shape_fn(IxDyn(&shape), |i| {
            Complex32::new(
                (i[0] * 7 + i[1] * 3 + i[2]) as f32 * 0.1,
                (i[2] as f32).sin(),
            )
        });
        for axis in 0..3 {
            let mut b = a.clone();
            fft_axis(&mut b.view_mut(), axis, Direction::Forward);
            for lane_idx in 0..a.len() / shape[axis] {
                let lane_a: Vec<Complex32> = a
                    .lanes(Axis(axis))
                    .into_iter()
                    .nth(lane_idx)
                    .unwrap()
                    .to_vec();
                let lane_b: Vec<Complex32> = b
                    .lanes(Axis(axis))
                    .into_iter()
                    .nth(lane_idx)
                    .unwrap()
                    .to_vec();
                for (x, y) in naive_dft_1d(&lane_a).iter().zip(&lane_b) {
                    assert!((x - y).norm() < 1e-4, "axis {axis}: {x} vs {y}");
                }
            }
        }
    }

    #[test]
    fn inverse_undoes_forward() {
        let a = ArrayD::from_shape_fn(IxDyn(&[4, 9, 10]), |i| {
            Complex32::new(i[0] as f32 - i[2] as f32, i[1] as f32)
        });
        let mut b = a.clone();
        fftn(&mut b.view_mut(), Direction::Forward);
        fftn(&mut b.view_mut(), Direction::Inverse);
        for (x, y) in a.iter().zip(b.iter()) {
            assert!((x - y).norm() < 1e-4);
        }
    }

    #[test]
    fn shifts_match_numpy_convention() {
        let a = ArrayD::from_shape_vec(IxDyn(&[5]), vec![0, 1, 2, 3, 4]).unwrap();
        assert_eq!(fftshift(&a).as_slice().unwrap(), &[3, 4, 0, 1, 2]);
        assert_eq!(ifftshift(&a).as_slice().unwrap(), &[2, 3, 4, 0, 1]);
        assert_eq!(ifftshift(&fftshift(&a)), a);
    }
}
