//! Simulated datasets in `.npz`: writing (streamed, atomic) and loading.
//!
//! Keys, batch first: `intensity`, `truth`, `noiseless`, `phase` (f32, or f16 with `half`),
//! `mask` (u8, 1 = gap), `object` (complex64), and the per-sample parameters `oversampling`
//! (f32, `[K, dim]`), `photons` (f64, `[K]`), `gap_pos` and `gap_width` (i32, `[K, 2]`: rows, cols).

use super::npy::{self, NpyElement, NpzFile, NpzWriter};
use crate::sim::{simulate_range, Field, Sample, SimConfig};
use crate::{Error, Result};
use half::f16;
use ndarray::{Array1, Array2, ArrayD};
use num_complex::Complex32;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

struct Stage {
    field: Field,
    path: PathBuf,
    w: Option<BufWriter<File>>,
}

/// Streams samples to per-array staging files next to the output (unique names, so that two
/// runs writing the same output never share one), then assembles the `.npz` (a unique
/// temporary file, fsynced and renamed at the end: the output is always one run's complete
/// data). Staging files are removed on every path, errors included.
pub struct DatasetWriter {
    path: PathBuf,
    dim: usize,
    shape: Vec<usize>,
    half: bool,
    stages: Vec<Stage>,
    oversampling: Vec<f32>,
    photons: Vec<f64>,
    gap_pos: Vec<i32>,
    gap_width: Vec<i32>,
    count: usize,
}

impl DatasetWriter {
    /// Prepares a dataset of patterns of `shape`, storing `fields`.
    pub fn create(path: &Path, shape: &[usize], fields: &[Field], half: bool) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut stages = Vec::new();
        for &field in fields {
            if stages.iter().any(|s: &Stage| s.field == field) {
                continue;
            }
            let (f, p) = super::io::create_temp(path, field.key())?;
            stages.push(Stage {
                field,
                path: p,
                w: Some(BufWriter::new(f)),
            });
        }
        Ok(DatasetWriter {
            path: path.to_path_buf(),
            dim: shape.len(),
            shape: shape.to_vec(),
            half,
            stages,
            oversampling: vec![],
            photons: vec![],
            gap_pos: vec![],
            gap_width: vec![],
            count: 0,
        })
    }

    fn float_descr(&self) -> (&'static str, usize) {
        if self.half {
            (f16::DESCR, 2)
        } else {
            (f32::DESCR, 4)
        }
    }

    /// A float value that float16 cannot hold (it would be written as infinity) is an error.
    fn check_half(&self, s: &Sample) -> Result<()> {
        for st in &self.stages {
            let a = match st.field {
                Field::Intensity => &s.intensity,
                Field::Truth => &s.truth,
                Field::Noiseless => &s.noiseless,
                Field::Phase => &s.phase,
                Field::Mask | Field::Object => continue,
            };
            if let Some(v) = a.iter().find(|v| f16::from_f32(**v).is_infinite()) {
                return Err(Error::data(
                    &self.path,
                    format!(
                        "sample {}: `{}` value {v} overflows float16 (largest 65504); store float32 (no --half, `half = false`) or lower the photon count",
                        self.count,
                        st.field.key()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Appends one sample.
    pub fn push(&mut self, s: &Sample) -> Result<()> {
        if s.truth.shape() != self.shape.as_slice() {
            return Err(Error::shape(
                "DatasetWriter::push",
                format!("sample {:?} vs dataset {:?}", s.truth.shape(), self.shape),
            ));
        }
        let half = self.half;
        if half {
            self.check_half(s)?;
        }
        for st in &mut self.stages {
            let w =
                st.w.as_mut()
                    .ok_or_else(|| Error::Msg("writer closed".into()))?;
            let floats = |w: &mut BufWriter<File>, a: &ArrayD<f32>| {
                if half {
                    npy::write_elements(w, a.iter().map(|&v| f16::from_f32(v)))
                } else {
                    npy::write_elements(w, a.iter().copied())
                }
            };
            let r = match st.field {
                Field::Intensity => floats(w, &s.intensity),
                Field::Truth => floats(w, &s.truth),
                Field::Noiseless => floats(w, &s.noiseless),
                Field::Phase => floats(w, &s.phase),
                Field::Mask => npy::write_elements(w, s.mask.iter().copied()),
                Field::Object => npy::write_elements(w, s.object.iter().copied()),
            };
            r.map_err(|e| Error::io(&st.path, e))?;
        }
        self.oversampling.extend(&s.params.oversampling);
        self.photons.push(s.params.photons);
        self.gap_pos.extend(s.params.gap_pos);
        self.gap_width.extend(s.params.gap_width);
        self.count += 1;
        Ok(())
    }

    /// Assembles the archive and renames it into place.
    pub fn finish(mut self) -> Result<()> {
        let k = self.count;
        let mut shape = vec![k];
        shape.extend(&self.shape);
        let mut out = NpzWriter::create(&self.path)?;
        let (fdescr, fsize) = self.float_descr();
        for st in &mut self.stages {
            let w =
                st.w.take()
                    .ok_or_else(|| Error::Msg("writer closed".into()))?;
            w.into_inner()
                .map_err(|e| Error::io(&st.path, e.into_error()))?
                .flush()
                .map_err(|e| Error::io(&st.path, e))?;
            let (descr, item) = match st.field {
                Field::Mask => (u8::DESCR, 1),
                Field::Object => (Complex32::DESCR, 8),
                _ => (fdescr, fsize),
            };
            out.start(st.field.key(), descr, &shape, item)?;
            let mut r = BufReader::new(File::open(&st.path).map_err(|e| Error::io(&st.path, e))?);
            let n = std::io::copy(&mut r, out.writer()).map_err(|e| Error::io(&st.path, e))?;
            let want = shape.iter().product::<usize>() as u64 * item as u64;
            if n != want {
                return Err(Error::data(
                    &st.path,
                    format!("staging file holds {n} bytes, expected {want}"),
                ));
            }
            let _ = std::fs::remove_file(&st.path);
        }
        let os = Array2::from_shape_vec((k, self.dim), std::mem::take(&mut self.oversampling))
            .map_err(|e| Error::shape("DatasetWriter", e.to_string()))?;
        out.add("oversampling", &os.into_dyn())?;
        out.add(
            "photons",
            &Array1::from_vec(std::mem::take(&mut self.photons)).into_dyn(),
        )?;
        for (key, v) in [
            ("gap_pos", std::mem::take(&mut self.gap_pos)),
            ("gap_width", std::mem::take(&mut self.gap_width)),
        ] {
            let a = Array2::from_shape_vec((k, 2), v)
                .map_err(|e| Error::shape("DatasetWriter", e.to_string()))?;
            out.add(key, &a.into_dyn())?;
        }
        out.finish()
    }
}

impl Drop for DatasetWriter {
    fn drop(&mut self) {
        for st in &mut self.stages {
            st.w = None;
            let _ = std::fs::remove_file(&st.path);
        }
    }
}

/// Simulates the dataset of `cfg` into `path` in chunks (parallel inside a chunk), calling
/// `progress()` once per finished sample.
/// A CXI / HDF5 `path` (see [`super::cxi`]) gets the whole dataset simulated in memory and
/// written in CXI layout.
pub fn write_dataset(cfg: &SimConfig, path: &Path, progress: &(dyn Fn() + Sync)) -> Result<()> {
    cfg.validate()?;
    if super::cxi::is_hdf5(path) {
        return super::cxi::write_simulation(cfg, path, progress);
    }
    let mut w = DatasetWriter::create(path, &cfg.shape(), &cfg.fields, cfg.half)?;
    let chunk = (2 * rayon::current_num_threads()).max(2);
    let mut start = 0usize;
    while start < cfg.count {
        let n = chunk.min(cfg.count - start);
        let samples = simulate_range(cfg, start as u64, n, progress)?;
        for s in &samples {
            w.push(s)?;
        }
        start += n;
    }
    w.finish()
}

/// One array of a simulated dataset held in memory, typed as in the `.npz`.
#[derive(Debug, Clone)]
pub enum SimArray {
    /// float32 patterns and per-sample parameters.
    F32(ArrayD<f32>),
    /// float64 (`photons`).
    F64(ArrayD<f64>),
    /// uint8 (`mask`).
    U8(ArrayD<u8>),
    /// int32 (`gap_pos`, `gap_width`).
    I32(ArrayD<i32>),
    /// complex64 (`object`).
    C64(ArrayD<Complex32>),
}

/// Simulates the dataset of `cfg` in memory: the `.npz` keys (the fields of `cfg`, batch first,
/// float32 whatever `half` says, then `oversampling`, `photons`, `gap_pos`, `gap_width`) with
/// their arrays. The memory it needs is checked first.
pub fn simulate_arrays(
    cfg: &SimConfig,
    progress: &(dyn Fn() + Sync),
) -> Result<Vec<(&'static str, SimArray)>> {
    cfg.validate()?;
    let shape = cfg.shape();
    let voxels: u64 = shape.iter().map(|&n| n as u64).product();
    let mut fields = cfg.fields.clone();
    fields.dedup();
    let per_sample = voxels.saturating_mul(4 * (Field::ALL.len() as u64) + 8);
    super::io::check_allocation(
        cfg.out.as_deref().unwrap_or(Path::new("simulation")),
        &format!("{} patterns of {shape:?} in memory", cfg.count),
        per_sample.saturating_mul(cfg.count as u64),
    )?;
    let samples = crate::sim::simulate_range(cfg, 0, cfg.count, progress)?;
    let k = samples.len();
    let mut batch = vec![k];
    batch.extend(&shape);
    let err = |e: ndarray::ShapeError| Error::shape("simulate_arrays", e.to_string());
    fn stacked<T: Clone>(
        batch: &[usize],
        samples: &[Sample],
        f: impl Fn(&Sample) -> &ArrayD<T>,
    ) -> std::result::Result<ArrayD<T>, ndarray::ShapeError> {
        let v: Vec<T> = samples.iter().flat_map(|s| f(s).iter().cloned()).collect();
        ArrayD::from_shape_vec(ndarray::IxDyn(batch), v)
    }
    let mut out = Vec::new();
    for field in Field::ALL {
        if !fields.contains(&field) {
            continue;
        }
        let a = match field {
            Field::Intensity => {
                SimArray::F32(stacked(&batch, &samples, |s| &s.intensity).map_err(err)?)
            }
            Field::Truth => SimArray::F32(stacked(&batch, &samples, |s| &s.truth).map_err(err)?),
            Field::Noiseless => {
                SimArray::F32(stacked(&batch, &samples, |s| &s.noiseless).map_err(err)?)
            }
            Field::Phase => SimArray::F32(stacked(&batch, &samples, |s| &s.phase).map_err(err)?),
            Field::Mask => SimArray::U8(stacked(&batch, &samples, |s| &s.mask).map_err(err)?),
            Field::Object => SimArray::C64(stacked(&batch, &samples, |s| &s.object).map_err(err)?),
        };
        out.push((field.key(), a));
    }
    let os: Vec<f32> = samples
        .iter()
        .flat_map(|s| s.params.oversampling.clone())
        .collect();
    out.push((
        "oversampling",
        SimArray::F32(
            Array2::from_shape_vec((k, cfg.dim), os)
                .map_err(err)?
                .into_dyn(),
        ),
    ));
    out.push((
        "photons",
        SimArray::F64(Array1::from_iter(samples.iter().map(|s| s.params.photons)).into_dyn()),
    ));
    for key in ["gap_pos", "gap_width"] {
        let v: Vec<i32> = samples
            .iter()
            .flat_map(|s| {
                if key == "gap_pos" {
                    s.params.gap_pos
                } else {
                    s.params.gap_width
                }
            })
            .collect();
        out.push((
            key,
            SimArray::I32(Array2::from_shape_vec((k, 2), v).map_err(err)?.into_dyn()),
        ));
    }
    Ok(out)
}

/// A simulated dataset loaded in memory (arrays batch first; absent keys are `None`).
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Noisy intensity with gap voxels 0.
    pub intensity: Option<ArrayD<f32>>,
    /// Noisy intensity without gaps.
    pub truth: Option<ArrayD<f32>>,
    /// Scaled noiseless intensity.
    pub noiseless: Option<ArrayD<f32>>,
    /// Gap mask as f32 (1 = gap).
    pub mask: Option<ArrayD<f32>>,
    /// Reciprocal-space phase.
    pub phase: Option<ArrayD<f32>>,
    /// Complex object.
    pub object: Option<ArrayD<Complex32>>,
    /// Oversampling ratios, [K, dim].
    pub oversampling: Option<ArrayD<f32>>,
    /// Photon budgets, `[K]`.
    pub photons: Option<ArrayD<f32>>,
    /// Gap band positions, [K, 2].
    pub gap_pos: Option<ArrayD<f32>>,
    /// Gap band widths, [K, 2].
    pub gap_width: Option<ArrayD<f32>>,
    path: PathBuf,
}

impl Dataset {
    /// Loads every known key present in `path` (f16 arrays are widened to f32) and validates
    /// it: every value finite, intensities (`intensity`, `truth`, `noiseless`) non-negative,
    /// masks of 0/1 only with no pattern entirely masked. Errors name the file and the key.
    pub fn load(path: &Path) -> Result<Self> {
        let d = Dataset::load_unchecked(path)?;
        d.validate()?;
        Ok(d)
    }

    /// Checks the values (see [`Dataset::load`]).
    pub fn validate(&self) -> Result<()> {
        use super::validate as v;
        let p = self.path.as_path();
        for (key, a) in [
            ("intensity", &self.intensity),
            ("truth", &self.truth),
            ("noiseless", &self.noiseless),
        ] {
            if let Some(a) = a {
                v::counts(p, key, a)?;
            }
        }
        for (key, a) in [
            ("phase", &self.phase),
            ("oversampling", &self.oversampling),
            ("photons", &self.photons),
            ("gap_pos", &self.gap_pos),
            ("gap_width", &self.gap_width),
        ] {
            if let Some(a) = a {
                v::finite(p, key, a)?;
            }
        }
        if let Some(m) = &self.mask {
            v::masks(p, "mask", m)?;
        }
        if let Some(o) = &self.object {
            v::finite_complex(p, "object", o)?;
        }
        Ok(())
    }

    /// Every pattern's mask must have at least one gap pixel (training and scoring).
    pub fn require_gaps(&self) -> Result<()> {
        super::validate::masks_have_gaps(&self.path, "mask", self.require("mask")?)
    }

    /// The file the dataset was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads every known key present in `path` without checking the values (shapes are
    /// still checked).
    pub fn load_unchecked(path: &Path) -> Result<Self> {
        let mut z = NpzFile::open(path)?;
        let mut real = |key: &str| -> Result<Option<ArrayD<f32>>> {
            if !z.has(key) {
                return Ok(None);
            }
            let a = z.read(key)?;
            a.into_f32()
                .map(Some)
                .map_err(|m| Error::data(path, format!("key `{key}`: {m}")))
        };
        let mut d = Dataset {
            intensity: real("intensity")?,
            truth: real("truth")?,
            noiseless: real("noiseless")?,
            mask: real("mask")?,
            phase: real("phase")?,
            object: None,
            oversampling: real("oversampling")?,
            photons: real("photons")?,
            gap_pos: real("gap_pos")?,
            gap_width: real("gap_width")?,
            path: path.to_path_buf(),
        };
        if z.has("object") {
            d.object = Some(
                z.read("object")?
                    .to_c64()
                    .map_err(|m| Error::data(path, format!("key `object`: {m}")))?,
            );
        }
        let mut batch: Option<(String, Vec<usize>)> = None;
        for (key, shape) in [
            (
                "intensity",
                d.intensity.as_ref().map(|a| a.shape().to_vec()),
            ),
            ("truth", d.truth.as_ref().map(|a| a.shape().to_vec())),
            (
                "noiseless",
                d.noiseless.as_ref().map(|a| a.shape().to_vec()),
            ),
            ("mask", d.mask.as_ref().map(|a| a.shape().to_vec())),
            ("phase", d.phase.as_ref().map(|a| a.shape().to_vec())),
            ("object", d.object.as_ref().map(|a| a.shape().to_vec())),
        ] {
            if let Some(s) = shape {
                if s.len() < 3 {
                    return Err(Error::data(
                        path,
                        format!(
                            "key `{key}`: shape {s:?} is not [K, ...] with 2 or 3 pattern axes"
                        ),
                    ));
                }
                match &batch {
                    None => batch = Some((key.to_string(), s)),
                    Some((k0, s0)) if *s0 != s => {
                        return Err(Error::data(
                            path,
                            format!("key `{key}`: shape {s:?} differs from `{k0}` {s0:?}"),
                        ))
                    }
                    _ => {}
                }
            }
        }
        if batch.is_none() {
            return Err(Error::data(
                path,
                "no pattern arrays (intensity, truth, ...) found",
            ));
        }
        Ok(d)
    }

    /// A required float array by key, with an error naming the missing key.
    pub fn require(&self, key: &str) -> Result<&ArrayD<f32>> {
        let a = match key {
            "intensity" => &self.intensity,
            "truth" => &self.truth,
            "noiseless" => &self.noiseless,
            "mask" => &self.mask,
            "phase" => &self.phase,
            _ => &None,
        };
        a.as_ref()
            .ok_or_else(|| Error::data(&self.path, format!("dataset has no `{key}` array")))
    }

    /// Number of patterns.
    pub fn len(&self) -> usize {
        [
            &self.truth,
            &self.intensity,
            &self.noiseless,
            &self.mask,
            &self.phase,
        ]
        .iter()
        .find_map(|a| a.as_ref().map(|a| a.shape()[0]))
        .or_else(|| self.object.as_ref().map(|a| a.shape()[0]))
        .unwrap_or(0)
    }

    /// Whether the dataset holds no pattern.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
