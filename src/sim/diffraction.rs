//! Far-field diffraction: the object, zero-padded to the array size and centred, is Fourier
//! transformed with the origin at the array centre, so the Bragg peak sits at index `n/2` on
//! every axis (numpy's `fftshift(fftn(ifftshift(obj)))`, forward transform unscaled).

use crate::fft::{fftn, Direction};
use ndarray::{ArrayD, Axis, IxDyn, Slice};
use num_complex::Complex32;

/// Copies `small` into the centre of a zero array of size `n` per axis: its centre voxel
/// `e/2` lands on `n/2`. Requires `small.shape()[d] <= n`.
pub fn embed_centred<T: Clone + Default>(small: &ArrayD<T>, n: usize) -> ArrayD<T> {
    let shape = vec![n; small.ndim()];
    let mut out = ArrayD::<T>::default(IxDyn(&shape));
    let mut view = out.view_mut();
    for (d, &e) in small.shape().iter().enumerate() {
        let start = (n / 2 - e / 2) as isize;
        view.slice_axis_inplace(Axis(d), Slice::from(start..start + e as isize));
    }
    view.assign(small);
    out
}

/// Rolls every axis by `shift(len)` (as `numpy.roll`), with block copies.
pub fn roll<T: Clone>(a: &ArrayD<T>, shift: impl Fn(usize) -> usize) -> ArrayD<T> {
    let mut cur = a.clone();
    for d in 0..a.ndim() {
        let n = a.len_of(Axis(d));
        let s = shift(n) % n.max(1);
        if s == 0 {
            continue;
        }
        let mut next = cur.clone();
        // next[s..] = cur[..n-s]; next[..s] = cur[n-s..]
        next.slice_axis_mut(Axis(d), Slice::from(s..))
            .assign(&cur.slice_axis(Axis(d), Slice::from(..n - s)));
        next.slice_axis_mut(Axis(d), Slice::from(..s))
            .assign(&cur.slice_axis(Axis(d), Slice::from(n - s..)));
        cur = next;
    }
    cur
}

/// Centred unscaled DFT: `fftshift(fftn(ifftshift(a)))`.
pub fn centred_fft(a: &ArrayD<Complex32>) -> ArrayD<Complex32> {
    let mut f = roll(a, |n| n - n / 2);
    fftn(&mut f.view_mut(), Direction::Forward);
    roll(&f, |n| n / 2)
}

/// Centred inverse DFT (scaled by 1/N): `fftshift(ifftn(ifftshift(a)))`.
pub fn centred_ifft(a: &ArrayD<Complex32>) -> ArrayD<Complex32> {
    let mut f = roll(a, |n| n - n / 2);
    fftn(&mut f.view_mut(), Direction::Inverse);
    roll(&f, |n| n / 2)
}

/// The far field of a centred object at array size: `F = centred_fft(object)`; the intensity is
/// `|F|^2` (unscaled: `sum |F|^2 = N * sum |object|^2`).
pub fn diffract(object: &ArrayD<Complex32>) -> ArrayD<Complex32> {
    centred_fft(object)
}

/// The autocorrelation of the object computed from the intensity, `centred_ifft(I)`, real part
/// (the Patterson function), centred at `n/2`.
pub fn autocorrelation(intensity: &ArrayD<f32>) -> ArrayD<f32> {
    centred_ifft(&intensity.mapv(|v| Complex32::new(v, 0.0))).mapv(|c| c.re)
}

/// Extent of the non-zero voxels of `a` along every axis (last - first + 1, 0 when empty).
pub fn support_extent<T: Copy + Default + PartialEq>(a: &ArrayD<T>) -> Vec<usize> {
    extent_where(a, |v| *v != T::default())
}

/// Extent along every axis of the voxels where `pred` holds.
pub fn extent_where<T>(a: &ArrayD<T>, pred: impl Fn(&T) -> bool) -> Vec<usize> {
    let nd = a.ndim();
    let mut lo = vec![usize::MAX; nd];
    let mut hi = vec![0usize; nd];
    for (idx, v) in a.indexed_iter() {
        if pred(v) {
            for d in 0..nd {
                lo[d] = lo[d].min(idx[d]);
                hi[d] = hi[d].max(idx[d]);
            }
        }
    }
    (0..nd)
        .map(|d| {
            if lo[d] == usize::MAX {
                0
            } else {
                hi[d] - lo[d] + 1
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roll_matches_numpy_shift_convention() {
        let a = ArrayD::from_shape_vec(IxDyn(&[5]), vec![0, 1, 2, 3, 4]).unwrap();
        assert_eq!(roll(&a, |n| n / 2), crate::fft::fftshift(&a));
        assert_eq!(roll(&a, |n| n - n / 2), crate::fft::ifftshift(&a));
        let b = ArrayD::from_shape_fn(IxDyn(&[4, 6]), |i| i[0] * 10 + i[1]);
        assert_eq!(roll(&b, |n| n / 2), crate::fft::fftshift(&b));
    }

    #[test]
    fn centred_delta_has_flat_spectrum_and_zero_phase() {
        let mut a = ArrayD::<Complex32>::zeros(IxDyn(&[8, 8]));
        a[[4, 4]] = Complex32::new(1.0, 0.0);
        let f = diffract(&a);
        for v in f.iter() {
            assert!((v - Complex32::new(1.0, 0.0)).norm() < 1e-6);
        }
    }

    #[test]
    fn embed_puts_centre_on_centre() {
        let small = ArrayD::from_shape_fn(IxDyn(&[3, 4]), |i| (i[0] * 4 + i[1]) as f32);
        let big = embed_centred(&small, 8);
        assert_eq!(big[[4, 4]], small[[1, 2]]);
        assert_eq!(support_extent(&big), vec![3, 4]);
    }
}
