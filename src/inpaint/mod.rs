//! Gap inpainting of whole arrays: classical baselines, model inference that replaces only the
//! gap pixels (2-D whole patterns, and the 3-D patch-sliding scheme of BRIEF section 5),
//! metrics, evaluation against the baselines and PNG figures.

pub mod baselines;
pub mod batch;
pub mod figures;
pub mod fill;
pub mod gap3d;
pub mod metrics;
pub mod physics;
pub mod study;

pub use baselines::Baseline;
pub use metrics::{Scores, Stat, Summary};

use crate::autograd::no_grad;
use crate::models::ModelConfig;
use crate::nn::Module;
use crate::train::data::{normalise, Prepared};
use crate::{Device, Error, Result, Tensor};
use ndarray::{s, Array3, ArrayD, Axis, IxDyn, Zip};
use serde::{Deserialize, Serialize};

/// Default stride of the 3-D sliding window (voxels, along the gap's in-plane axes). The
/// reference uses 1 (32^2 predictions per gap voxel); 8 gives 16 overlapping predictions
/// per voxel at 1/64 of the cost, which is what a CPU can afford.
pub const DEFAULT_STRIDE: usize = 8;

/// Runs a whole-array model on normalised patterns `[K, ...]`, `batch` at a time; spatial
/// sizes that are not multiples of what the model needs are zero-padded and cropped back.
pub fn predict_normalised(
    model: &dyn Module,
    cfg: &ModelConfig,
    x: &ArrayD<f32>,
    batch: usize,
    device: &Device,
) -> Result<ArrayD<f32>> {
    let shape = x.shape().to_vec();
    if shape.len() != cfg.dims + 1 {
        return Err(Error::shape(
            "predict",
            format!(
                "patterns {:?} are not [K] + {}-D as the {} model needs",
                shape, cfg.dims, cfg.kind
            ),
        ));
    }
    let k = cfg.size_multiple();
    let padded: Vec<usize> = shape[1..].iter().map(|&n| n.div_ceil(k) * k).collect();
    let plen: usize = padded.iter().product();
    let mut out = ArrayD::<f32>::zeros(IxDyn(&shape));
    for start in (0..shape[0]).step_by(batch.max(1)) {
        let end = (start + batch.max(1)).min(shape[0]);
        let mut buf = vec![0.0f32; (end - start) * plen];
        for (b, kk) in (start..end).enumerate() {
            let mut dst = ArrayD::<f32>::zeros(IxDyn(&padded));
            let src = x.index_axis(Axis(0), kk);
            let mut view = dst.view_mut();
            for (a, &n) in shape[1..].iter().enumerate() {
                view.slice_axis_inplace(Axis(a), ndarray::Slice::from(0..n));
            }
            view.assign(&src);
            buf[b * plen..(b + 1) * plen].copy_from_slice(dst.as_slice().unwrap_or(&[]));
        }
        let mut tshape = vec![end - start, 1];
        tshape.extend_from_slice(&padded);
        let t = Tensor::from_vec(buf, &tshape, device)?;
        let y = no_grad(|| model.forward(&t))?.to_vec()?;
        let y = ArrayD::from_shape_vec(IxDyn(&tshape), y)
            .map_err(|e| Error::shape("predict", e.to_string()))?;
        for (b, kk) in (start..end).enumerate() {
            let mut v = y.index_axis(Axis(0), b).index_axis(Axis(0), 0).to_owned();
            for (a, &n) in shape[1..].iter().enumerate() {
                v.slice_axis_inplace(Axis(a), ndarray::Slice::from(0..n));
            }
            out.index_axis_mut(Axis(0), kk).assign(&v);
        }
    }
    Ok(out)
}

/// Keeps `measured` where `mask` is 0 (bit-identical) and `pred` in the gap.
pub fn merge(measured: &ArrayD<f32>, pred: &ArrayD<f32>, mask: &ArrayD<f32>) -> ArrayD<f32> {
    Zip::from(measured)
        .and(pred)
        .and(mask)
        .map_collect(|&v, &p, &m| if m != 0.0 { p } else { v })
}

fn check_pair(intensity: &ArrayD<f32>, mask: &ArrayD<f32>) -> Result<()> {
    if intensity.shape() != mask.shape() {
        return Err(Error::shape(
            "inpaint",
            format!(
                "data {:?} and mask {:?} differ",
                intensity.shape(),
                mask.shape()
            ),
        ));
    }
    Ok(())
}

/// Fills the gap of one raw intensity pattern with the model: whole-array models predict the
/// normalised pattern which is mapped back to intensity; patch models slide along the gap
/// ([`slide_patches`]). Measured pixels are returned bit-identical.
pub fn inpaint_pattern(
    model: &dyn Module,
    cfg: &ModelConfig,
    intensity: &ArrayD<f32>,
    mask: &ArrayD<f32>,
    stride: usize,
    device: &Device,
) -> Result<ArrayD<f32>> {
    check_pair(intensity, mask)?;
    if intensity.ndim() != cfg.dims {
        return Err(Error::shape(
            "inpaint",
            format!(
                "pattern {:?} is {}-D, the {} model is {}-D",
                intensity.shape(),
                intensity.ndim(),
                cfg.kind,
                cfg.dims
            ),
        ));
    }
    let pred = match cfg.patch() {
        Some(p) if intensity.shape().iter().any(|&n| n != p) => {
            slide_patches(model, intensity, mask, p, stride, device)?
        }
        _ => {
            let (x, norm) = normalise(intensity, mask);
            let x = x.insert_axis(Axis(0));
            let y = predict_normalised(model, cfg, &x, 1, device)?;
            norm.inverse(&y.index_axis(Axis(0), 0).to_owned())
        }
    };
    Ok(merge(intensity, &pred, mask))
}

/// A band of gap planes: normal to `axis`, indices `start..start+width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapBand {
    /// Axis the planes are normal to (1 or 2 for detector gaps).
    pub axis: usize,
    /// First plane.
    pub start: usize,
    /// Number of planes.
    pub width: usize,
}

/// Detects plane gaps of a 3-D mask: runs of indices along axis 1 or 2 whose whole plane is gap.
pub fn detect_bands(mask: &Array3<f32>) -> Vec<GapBand> {
    let mut bands = vec![];
    for axis in 1..3 {
        let full: Vec<bool> = mask
            .axis_iter(Axis(axis))
            .map(|p| p.iter().all(|&m| m != 0.0))
            .collect();
        let mut i = 0;
        while i < full.len() {
            if full[i] {
                let start = i;
                while i < full.len() && full[i] {
                    i += 1;
                }
                bands.push(GapBand {
                    axis,
                    start,
                    width: i - start,
                });
            } else {
                i += 1;
            }
        }
    }
    bands
}

fn positions(n: usize, p: usize, stride: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..=n - p).step_by(stride.max(1)).collect();
    if *v.last().unwrap_or(&0) != n - p {
        v.push(n - p);
    }
    v
}

/// The 3-D patch-sliding inference of BRIEF section 5: for every gap band, `p`^3 windows
/// centred on the band slide along the two other axes with `stride`; each window is scaled by
/// log + min-max over its non-gap voxels, predicted, mapped back, and only its gap voxels are
/// kept; overlaps (and the two bands of a cross) are averaged. Without plane gaps the windows
/// tile the whole array. Returns intensities (measured voxels are not merged here).
pub fn slide_patches(
    model: &dyn Module,
    intensity: &ArrayD<f32>,
    mask: &ArrayD<f32>,
    p: usize,
    stride: usize,
    device: &Device,
) -> Result<ArrayD<f32>> {
    check_pair(intensity, mask)?;
    let shape = intensity.shape().to_vec();
    if shape.len() != 3 || shape.iter().any(|&n| n < p) {
        return Err(Error::shape(
            "inpaint",
            format!("patch sliding needs a 3-D array of at least {p}^3, got {shape:?}"),
        ));
    }
    let data = intensity
        .view()
        .into_dimensionality::<ndarray::Ix3>()
        .map_err(|e| Error::shape("inpaint", e.to_string()))?;
    let m3 = mask
        .view()
        .into_dimensionality::<ndarray::Ix3>()
        .map_err(|e| Error::shape("inpaint", e.to_string()))?
        .to_owned();
    let mut corners: Vec<[usize; 3]> = vec![];
    let bands = detect_bands(&m3);
    if bands.is_empty() {
        for a in positions(shape[0], p, stride) {
            for b in positions(shape[1], p, stride) {
                for c in positions(shape[2], p, stride) {
                    corners.push([a, b, c]);
                }
            }
        }
    }
    for band in &bands {
        let centre = band.start + band.width / 2;
        let o = centre.saturating_sub(p / 2).min(shape[band.axis] - p);
        let others: Vec<usize> = (0..3).filter(|&a| a != band.axis).collect();
        for u in positions(shape[others[0]], p, stride) {
            for v in positions(shape[others[1]], p, stride) {
                let mut c = [0; 3];
                c[band.axis] = o;
                c[others[0]] = u;
                c[others[1]] = v;
                corners.push(c);
            }
        }
    }
    let mut sum = Array3::<f64>::zeros((shape[0], shape[1], shape[2]));
    let mut count = Array3::<u32>::zeros((shape[0], shape[1], shape[2]));
    let batch = 8;
    for chunk in corners.chunks(batch) {
        let mut xs = Vec::with_capacity(chunk.len() * p * p * p);
        let mut norms = vec![];
        for c in chunk {
            let w = s![c[0]..c[0] + p, c[1]..c[1] + p, c[2]..c[2] + p];
            let (x, norm) = normalise(
                &data.slice(w).to_owned().into_dyn(),
                &m3.slice(w).to_owned().into_dyn(),
            );
            xs.extend(x.iter().copied());
            norms.push(norm);
        }
        let t = Tensor::from_vec(xs, &[chunk.len(), 1, p, p, p], device)?;
        let y = no_grad(|| model.forward(&t))?.to_vec()?;
        for (b, c) in chunk.iter().enumerate() {
            let yp = ArrayD::from_shape_vec(
                IxDyn(&[p, p, p]),
                y[b * p * p * p..(b + 1) * p * p * p].to_vec(),
            )
            .map_err(|e| Error::shape("inpaint", e.to_string()))?;
            let yi = norms[b].inverse(&yp);
            let w = s![c[0]..c[0] + p, c[1]..c[1] + p, c[2]..c[2] + p];
            Zip::from(sum.slice_mut(w))
                .and(count.slice_mut(w))
                .and(m3.slice(w))
                .and(
                    yi.view()
                        .into_dimensionality::<ndarray::Ix3>()
                        .map_err(|e| Error::shape("inpaint", e.to_string()))?,
                )
                .for_each(|s, n, &m, &v| {
                    if m != 0.0 {
                        *s += v as f64;
                        *n += 1;
                    }
                });
        }
    }
    let out =
        Zip::from(&sum)
            .and(&count)
            .map_collect(|&s, &n| if n > 0 { (s / n as f64) as f32 } else { 0.0 });
    Ok(out.into_dyn())
}

/// Results of an evaluation: one row per method (the model first, then the baselines).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evaluation {
    /// Number of patterns.
    pub patterns: usize,
    /// `(method, summary)` rows.
    pub rows: Vec<(String, Summary)>,
}

impl Evaluation {
    /// A markdown table `method | PCC | SSIM | MSE | MAE` (mean ± std).
    pub fn markdown(&self) -> String {
        let mut s = String::from(
            "| method | PCC (log, gap) | SSIM | MSE (gap) | MAE (gap) |\n|---|---|---|---|---|\n",
        );
        let fix = |st: &Stat| {
            if st.mean.is_finite() {
                format!("{:.4} ± {:.4}", st.mean, st.std)
            } else {
                "n/a".into()
            }
        };
        let sci = |st: &Stat| format!("{:.2e} ± {:.1e}", st.mean, st.std);
        for (name, m) in &self.rows {
            s.push_str(&format!(
                "| {name} | {} | {} | {} | {} |\n",
                fix(&m.pcc),
                fix(&m.ssim),
                sci(&m.mse),
                sci(&m.mae)
            ));
        }
        if self.rows.iter().any(|(_, m)| !m.pcc.mean.is_finite()) {
            s.push_str("\nn/a: the correlation is undefined for a constant fill (zero).\n");
        }
        s
    }
}

/// Predictions made during an evaluation (normalised, `[K, ...]`), for figures.
pub struct Predictions {
    /// `(method, filled patterns)`, in the order of the evaluation rows.
    pub methods: Vec<(String, ArrayD<f32>)>,
}

/// Scores a model (if any) and every baseline on a preprocessed test set.
pub fn evaluate(
    model: Option<(&dyn Module, &ModelConfig, &str)>,
    data: &Prepared,
    baselines: &[Baseline],
    device: &Device,
) -> Result<(Evaluation, Predictions)> {
    let mut methods: Vec<(String, ArrayD<f32>)> = vec![];
    if let Some((m, cfg, name)) = model {
        let pred = match cfg.patch() {
            Some(p) if data.pattern_shape().iter().any(|&n| n != p) => {
                // Sliding windows work on intensities: map back, inpaint, rescale.
                let mut out = ArrayD::zeros(data.x.raw_dim());
                for k in 0..data.len() {
                    let norm = data.norms[k];
                    let xk = data.x.index_axis(Axis(0), k).to_owned();
                    let mk = data.m.index_axis(Axis(0), k).to_owned();
                    let ik = norm.inverse(&xk);
                    let filled = slide_patches(m, &ik, &mk, p, DEFAULT_STRIDE, device)?;
                    out.index_axis_mut(Axis(0), k)
                        .assign(&norm.forward(&filled));
                }
                out
            }
            _ => predict_normalised(m, cfg, &data.x, 8, device)?,
        };
        methods.push((name.to_string(), merge(&data.x, &pred, &data.m)));
    }
    for b in baselines {
        let mut out = ArrayD::zeros(data.x.raw_dim());
        for k in 0..data.len() {
            let xk = data.x.index_axis(Axis(0), k).to_owned();
            let mk = data.m.index_axis(Axis(0), k).to_owned();
            out.index_axis_mut(Axis(0), k).assign(&b.fill(&xk, &mk)?);
        }
        methods.push((b.name().to_string(), out));
    }
    let mut rows = vec![];
    for (name, pred) in &methods {
        let scores = (0..data.len())
            .map(|k| {
                metrics::score(
                    &pred.index_axis(Axis(0), k).to_owned(),
                    &data.y.index_axis(Axis(0), k).to_owned(),
                    &data.m.index_axis(Axis(0), k).to_owned(),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        rows.push((name.clone(), Summary::of(&scores)));
    }
    Ok((
        Evaluation {
            patterns: data.len(),
            rows,
        },
        Predictions { methods },
    ))
}
