//! Plane-gap inpainting of 3-D volumes with the compact residual model
//! ([`crate::models::gap_unet3d`]).
//!
//! The volume is first filled classically: `log(1 + I)` interpolated linearly across every gap
//! band (the "log-linear" fill; crossings are filled from the already filled planes). Windows
//! of `window = [normal, side, side]` voxels, centred on each gap band along its normal and
//! sliding in-plane with a stride, are transposed so that the band's normal is their first
//! axis, scaled by the min-max of their measured log values, and corrected by the network in
//! the gap. Overlapping predictions are averaged in the log domain and mapped back to counts;
//! measured voxels are returned bit-identical. The same window code prepares the training data
//! ([`crate::train::gap3d`]), so training and inference see identical inputs.

use super::baselines::line_fill;
use super::{detect_bands, GapBand};
use crate::autograd::no_grad;
use crate::nn::Module;
use crate::{Device, Error, Result, Tensor};
use ndarray::{Array3, ArrayD, Zip};

/// Default window: 32 voxels along the gap normal, 16 x 16 in the gap plane.
pub const DEFAULT_WINDOW: [usize; 3] = [32, 16, 16];

/// Largest value of the corrected, scaled log intensity (1 = the window's measured maximum):
/// a gap through the Bragg peak may hold more than the measured maximum, never orders of
/// magnitude more.
pub const MAX_SCALED: f32 = 1.35;

/// Smallest log range a window is scaled by (a factor of e^3 ~ 20 in counts).
pub const MIN_LOG_RANGE: f32 = 3.0;

/// `log(1 + I)` with the gap filled by linear interpolation across it (negative counts are
/// treated as zero).
pub fn log_linear_prefill(intensity: &ArrayD<f32>, mask: &ArrayD<f32>) -> ArrayD<f32> {
    let log = intensity.mapv(|v| v.max(0.0).ln_1p());
    line_fill(&log, mask, true)
}

/// The log-linear fill in counts (a classical method in its own right).
pub fn log_linear_fill(intensity: &ArrayD<f32>, mask: &ArrayD<f32>) -> ArrayD<f32> {
    let filled = log_linear_prefill(intensity, mask).mapv(|l| l.exp_m1().max(0.0));
    super::merge(intensity, &filled, mask)
}

/// One window of a volume: its corner in the volume, the gap normal (volume axis) that becomes
/// the window's first axis, and the order of the two in-plane volume axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Corner (lowest index) in volume coordinates.
    pub corner: [usize; 3],
    /// Volume axis of the window's axes 0, 1, 2.
    pub axes: [usize; 3],
    /// Window size along its own axes.
    pub size: [usize; 3],
}

impl Window {
    /// Volume index of window voxel `(i, j, k)`.
    #[inline]
    pub fn at(&self, i: usize, j: usize, k: usize) -> [usize; 3] {
        let mut p = self.corner;
        p[self.axes[0]] += i;
        p[self.axes[1]] += j;
        p[self.axes[2]] += k;
        p
    }

    /// Extent of the window along each volume axis.
    pub fn extent(&self) -> [usize; 3] {
        let mut e = [0; 3];
        for (w, &a) in self.axes.iter().enumerate() {
            e[a] = self.size[w];
        }
        e
    }
}

/// A window's network input and scaling.
#[derive(Debug, Clone)]
pub struct WindowInput {
    /// Scaled log intensity, gap pre-filled (window order, `size` product long).
    pub x: Vec<f32>,
    /// Gap mask in window order (1 = gap).
    pub m: Vec<f32>,
    /// Log value mapped to 0.
    pub lo: f32,
    /// Log value mapped to 1.
    pub hi: f32,
}

impl WindowInput {
    /// Maps a scaled log value back to `log(1 + I)`.
    #[inline]
    pub fn unscale(&self, y: f32) -> f32 {
        y * (self.hi - self.lo) + self.lo
    }
    /// Scales a `log(1 + I)` value.
    #[inline]
    pub fn scale(&self, l: f32) -> f32 {
        (l - self.lo) / (self.hi - self.lo)
    }
}

/// Cuts window `w` out of the pre-filled log volume and the mask and scales it by the min-max
/// of its measured voxels (a window without measured voxels, or a flat one, gets a unit range).
pub fn window_input(prefilled: &Array3<f32>, mask: &Array3<f32>, w: &Window) -> WindowInput {
    let n = w.size.iter().product();
    let mut x = Vec::with_capacity(n);
    let mut m = Vec::with_capacity(n);
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for i in 0..w.size[0] {
        for j in 0..w.size[1] {
            for k in 0..w.size[2] {
                let p = w.at(i, j, k);
                let v = prefilled[p];
                let g = (mask[p] != 0.0) as u8 as f32;
                if g == 0.0 {
                    lo = lo.min(v);
                    hi = hi.max(v);
                }
                x.push(v);
                m.push(g);
            }
        }
    }
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    // A floor on the range: a nearly flat window (weak far-field voxels) must not turn a
    // few counts in the gap into huge scaled values.
    if hi - lo < MIN_LOG_RANGE {
        hi = lo + MIN_LOG_RANGE;
    }
    let s = 1.0 / (hi - lo);
    x.iter_mut().for_each(|v| *v = (*v - lo) * s);
    WindowInput { x, m, lo, hi }
}

/// Windows covering gap band `band` of a volume of `shape`: centred on the band along its
/// normal (clamped to the volume), sliding in-plane with `stride` (the last window flush with
/// the far edge). The two in-plane axes keep their volume order.
pub fn band_windows(
    shape: [usize; 3],
    band: &GapBand,
    window: [usize; 3],
    stride: usize,
) -> Result<Vec<Window>> {
    let a = band.axis;
    let others: Vec<usize> = (0..3).filter(|&x| x != a).collect();
    let axes = [a, others[0], others[1]];
    for (w, &ax) in axes.iter().enumerate() {
        if shape[ax] < window[w] {
            return Err(Error::shape(
                "inpaint",
                format!(
                    "the gap model's window is {window:?} (gap normal first); the volume {shape:?} \
                     is only {} along axis {ax}",
                    shape[ax]
                ),
            ));
        }
    }
    let centre = band.start + band.width / 2;
    let o = centre
        .saturating_sub(window[0] / 2)
        .min(shape[a] - window[0]);
    let pos = |n: usize, p: usize| -> Vec<usize> {
        let mut v: Vec<usize> = (0..=n - p).step_by(stride.max(1)).collect();
        if *v.last().unwrap_or(&0) != n - p {
            v.push(n - p);
        }
        v
    };
    let mut out = vec![];
    for u in pos(shape[axes[1]], window[1]) {
        for v in pos(shape[axes[2]], window[2]) {
            let mut corner = [0; 3];
            corner[a] = o;
            corner[axes[1]] = u;
            corner[axes[2]] = v;
            out.push(Window {
                corner,
                axes,
                size: window,
            });
        }
    }
    Ok(out)
}

/// Fills the plane gaps of one 3-D volume (`mask` nonzero = gap) with the residual gap model.
/// Gap voxels outside any full-plane band (partial masks) keep the log-linear fill. Measured
/// voxels are returned unchanged.
pub fn inpaint_volume(
    model: &dyn Module,
    intensity: &ArrayD<f32>,
    mask: &ArrayD<f32>,
    window: [usize; 3],
    stride: usize,
    batch: usize,
    device: &Device,
) -> Result<ArrayD<f32>> {
    inpaint_volume_flips(model, intensity, mask, window, stride, batch, 1, device)
}

/// [`inpaint_volume`] averaged over `flips` (1..=8) mirrorings of every window (test-time
/// augmentation: the model was trained on randomly flipped windows, so each mirror is an
/// equally valid prediction; the average in the log domain has a lower error). Mirror `v`
/// flips the window's axis `a` when bit `a` of `v` is set.
#[allow(clippy::too_many_arguments)]
pub fn inpaint_volume_flips(
    model: &dyn Module,
    intensity: &ArrayD<f32>,
    mask: &ArrayD<f32>,
    window: [usize; 3],
    stride: usize,
    batch: usize,
    flips: usize,
    device: &Device,
) -> Result<ArrayD<f32>> {
    if !(1..=8).contains(&flips) {
        return Err(Error::arg(
            "inpaint",
            "flips",
            format!("{flips} not in 1..=8"),
        ));
    }
    if intensity.shape() != mask.shape() || intensity.ndim() != 3 {
        return Err(Error::shape(
            "inpaint",
            format!(
                "the 3-D gap model needs a 3-D volume and a mask of the same shape, got {:?} and {:?}",
                intensity.shape(),
                mask.shape()
            ),
        ));
    }
    let to3 = |a: ArrayD<f32>| {
        a.into_dimensionality::<ndarray::Ix3>()
            .map_err(|e| Error::shape("inpaint", e.to_string()))
    };
    let prefilled = to3(log_linear_prefill(intensity, mask))?;
    let m3 = to3(mask.clone())?;
    let s = prefilled.shape();
    let shape = [s[0], s[1], s[2]];
    let mut windows = vec![];
    for band in detect_bands(&m3) {
        windows.extend(band_windows(shape, &band, window, stride)?);
    }
    let mut sum = Array3::<f64>::zeros(shape);
    let mut count = Array3::<u32>::zeros(shape);
    let n: usize = window.iter().product();
    let [s0, s1, s2] = window;
    // Window-order index of the voxel that mirror `v` puts at (i, j, k).
    let mirrored = |v: usize, i: usize, j: usize, k: usize| {
        let i = if v & 1 != 0 { s0 - 1 - i } else { i };
        let j = if v & 2 != 0 { s1 - 1 - j } else { j };
        let k = if v & 4 != 0 { s2 - 1 - k } else { k };
        (i, j, k, (i * s1 + j) * s2 + k)
    };
    // Each window's input is cut once and shared by its mirrorings.
    let inputs: Vec<WindowInput> = windows
        .iter()
        .map(|w| window_input(&prefilled, &m3, w))
        .collect();
    let jobs: Vec<(usize, &Window, &WindowInput)> = (0..flips)
        .flat_map(|v| windows.iter().zip(&inputs).map(move |(w, wi)| (v, w, wi)))
        .collect();
    for chunk in jobs.chunks(batch.max(1)) {
        let mut buf = Vec::with_capacity(chunk.len() * 2 * n);
        for (v, _, wi) in chunk {
            for src in [&wi.x, &wi.m] {
                for i in 0..s0 {
                    for j in 0..s1 {
                        for k in 0..s2 {
                            buf.push(src[mirrored(*v, i, j, k).3]);
                        }
                    }
                }
            }
        }
        let t = Tensor::from_vec(
            buf,
            &[chunk.len(), 2, window[0], window[1], window[2]],
            device,
        )?;
        let y = no_grad(|| model.forward(&t))?.to_vec()?;
        if y.len() != chunk.len() * n {
            return Err(Error::shape(
                "inpaint",
                format!(
                    "the model returned {} values for {} windows of {n}",
                    y.len(),
                    chunk.len()
                ),
            ));
        }
        for (b, (mirror, w, wi)) in chunk.iter().enumerate() {
            let yb = &y[b * n..(b + 1) * n];
            let mut idx = 0;
            for i in 0..s0 {
                for j in 0..s1 {
                    for k in 0..s2 {
                        let (oi, oj, ok, o) = mirrored(*mirror, i, j, k);
                        if wi.m[o] != 0.0 {
                            let v = yb[idx];
                            if !v.is_finite() {
                                return Err(Error::data(
                                    std::path::Path::new("<model>"),
                                    "the gap model produced a non-finite value (bad weights?)",
                                ));
                            }
                            let p = w.at(oi, oj, ok);
                            sum[p] += wi.unscale(v.clamp(-0.25, MAX_SCALED)) as f64;
                            count[p] += 1;
                        }
                        idx += 1;
                    }
                }
            }
        }
    }
    let filled = Zip::from(&prefilled)
        .and(&sum)
        .and(&count)
        .map_collect(|&base, &s, &c| {
            let l = if c > 0 { (s / c as f64) as f32 } else { base };
            l.exp_m1().max(0.0)
        });
    Ok(super::merge(intensity, &filled.into_dyn(), mask))
}

/// Checks that a volume looks like photon counts; returns a warning to print when it does not
/// (the model's scaling assumes counts: a maximum <= 1 means normalised data).
pub fn counts_warning(intensity: &ArrayD<f32>, mask: &ArrayD<f32>) -> Option<String> {
    let mut max = f32::NEG_INFINITY;
    Zip::from(intensity).and(mask).for_each(|&v, &m| {
        if m == 0.0 && v.is_finite() {
            max = max.max(v)
        }
    });
    (max <= 1.0).then(|| {
        format!(
            "warning: the measured maximum is {max}; the gap model expects photon counts \
             (a maximum of 1 or less looks like normalised data, results may be poor)"
        )
    })
}
