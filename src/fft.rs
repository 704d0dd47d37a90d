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

/// Columns gathered per task when transforming a strided axis of an [`FftPlan`].
const PLAN_BLOCK: usize = 16;

thread_local! {
    /// Per-thread (gather buffer, scratch) reused by [`FftPlan`]: no allocation once warm.
    static PLAN_BUFFERS: std::cell::RefCell<(Vec<Complex32>, Vec<Complex32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

#[derive(Clone, Copy)]
struct SyncPtr(*mut Complex32);
// SAFETY: tasks built by `FftPlan::axis` write disjoint index sets of one buffer.
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}

impl SyncPtr {
    fn get(&self) -> *mut Complex32 {
        self.0
    }
}

/// A planned N-d FFT over a flat C-ordered buffer of a fixed shape: the rustfft plans are built
/// once and reused, and the work buffers live per thread, so repeated transforms (phase
/// retrieval cycles) allocate nothing. Contiguous lines go straight to rustfft; strided axes are
/// gathered in blocks of 16 columns. Parallel over lines with rayon.
pub struct FftPlan {
    shape: Vec<usize>,
    forward: Vec<Arc<dyn Fft<f32>>>,
    inverse: Vec<Arc<dyn Fft<f32>>>,
}

impl std::fmt::Debug for FftPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FftPlan")
            .field("shape", &self.shape)
            .finish()
    }
}

impl FftPlan {
    /// Plans forward and inverse transforms for `shape` (C order).
    pub fn new(shape: &[usize]) -> Self {
        let mut planner = FftPlanner::new();
        let forward = shape
            .iter()
            .map(|&n| planner.plan_fft(n.max(1), FftDirection::Forward))
            .collect();
        let inverse = shape
            .iter()
            .map(|&n| planner.plan_fft(n.max(1), FftDirection::Inverse))
            .collect();
        FftPlan {
            shape: shape.to_vec(),
            forward,
            inverse,
        }
    }

    /// The shape this plan transforms.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements of one array.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True for an empty shape.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Transforms `data` in place along every axis with numpy's scaling (inverse scaled by 1/N).
    ///
    /// # Panics
    /// If `data.len()` differs from the planned size (a programming error, not user input).
    pub fn process(&self, data: &mut [Complex32], direction: Direction) {
        self.process_unscaled(data, direction);
        if direction == Direction::Inverse {
            let scale = 1.0 / self.len().max(1) as f32;
            data.par_iter_mut()
                .with_min_len(4096)
                .for_each(|v| *v *= scale);
        }
    }

    /// Transforms `data` in place along every axis without any scaling (both directions).
    ///
    /// # Panics
    /// If `data.len()` differs from the planned size.
    pub fn process_unscaled(&self, data: &mut [Complex32], direction: Direction) {
        assert_eq!(data.len(), self.len(), "FftPlan: buffer length");
        for axis in 0..self.shape.len() {
            self.axis(data, axis, direction);
        }
    }

    fn axis(&self, data: &mut [Complex32], axis: usize, direction: Direction) {
        let n = self.shape[axis];
        if n <= 1 || data.is_empty() {
            return;
        }
        let fft = match direction {
            Direction::Forward => &self.forward[axis],
            Direction::Inverse => &self.inverse[axis],
        };
        let scratch_len = fft.get_inplace_scratch_len();
        let inner: usize = self.shape[axis + 1..].iter().product();
        if inner == 1 {
            // Contiguous lines: several per task.
            let lines_per_task = (8192 / n).max(1);
            data.par_chunks_mut(n * lines_per_task).for_each(|chunk| {
                PLAN_BUFFERS.with(|b| {
                    let (_, scratch) = &mut *b.borrow_mut();
                    if scratch.len() < scratch_len {
                        scratch.resize(scratch_len, Complex32::default());
                    }
                    fft.process_with_scratch(chunk, &mut scratch[..scratch_len]);
                });
            });
            return;
        }
        let outer = data.len() / (n * inner);
        let blocks = inner.div_ceil(PLAN_BLOCK);
        let ptr = SyncPtr(data.as_mut_ptr());
        (0..outer * blocks).into_par_iter().for_each(|task| {
            let o = task / blocks;
            let c0 = (task % blocks) * PLAN_BLOCK;
            let width = PLAN_BLOCK.min(inner - c0);
            let base = o * n * inner + c0;
            PLAN_BUFFERS.with(|b| {
                let (buf, scratch) = &mut *b.borrow_mut();
                if buf.len() < n * PLAN_BLOCK {
                    buf.resize(n * PLAN_BLOCK, Complex32::default());
                }
                if scratch.len() < scratch_len {
                    scratch.resize(scratch_len, Complex32::default());
                }
                // SAFETY: this task alone touches columns c0..c0+width of outer slab o, and all
                // indices stay below outer * n * inner = data.len().
                unsafe {
                    for k in 0..n {
                        let row = ptr.get().add(base + k * inner);
                        for c in 0..width {
                            buf[c * n + k] = *row.add(c);
                        }
                    }
                }
                fft.process_with_scratch(&mut buf[..width * n], &mut scratch[..scratch_len]);
                unsafe {
                    for k in 0..n {
                        let row = ptr.get().add(base + k * inner);
                        for c in 0..width {
                            *row.add(c) = buf[c * n + k];
                        }
                    }
                }
            });
        });
    }
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

    #[test]
    fn plan_matches_fftn() {
        let shape = [5usize, 6, 7];
        let a = ArrayD::from_shape_fn(IxDyn(&shape), |i| {
            Complex32::new((i[0] * 3 + i[1]) as f32 * 0.3, (i[2] as f32 * 0.7).cos())
        });
        let plan = FftPlan::new(&shape);
        for dir in [Direction::Forward, Direction::Inverse] {
            let mut b = a.clone();
            fftn(&mut b.view_mut(), dir);
            let mut c = a.clone();
            plan.process(c.as_slice_mut().unwrap(), dir);
            for (x, y) in b.iter().zip(c.iter()) {
                assert!((x - y).norm() < 1e-3, "{dir:?}: {x} vs {y}");
            }
        }
        // A wide strided axis (more than one block of columns).
        let shape = [8usize, 40];
        let a = ArrayD::from_shape_fn(IxDyn(&shape), |i| Complex32::new(i[0] as f32, i[1] as f32));
        let mut b = a.clone();
        fftn(&mut b.view_mut(), Direction::Forward);
        let mut c = a.clone();
        FftPlan::new(&shape).process(c.as_slice_mut().unwrap(), Direction::Forward);
        for (x, y) in b.iter().zip(c.iter()) {
            assert!((x - y).norm() < 1e-3);
        }
    }
}
