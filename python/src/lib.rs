//! `bragg._bragg`: the native half of the Python package `bragg` (PyO3). The Python half
//! (`python/bragg/__init__.py`) converts arguments (dtype, contiguity, defaults) and documents
//! the API; this module takes float32 / complex64 C-contiguous arrays, runs the library with the
//! GIL released, and hands results back as numpy arrays that own the Rust buffers (no copy on
//! the way out). Inputs are copied once into Rust-owned arrays, since Python code could change
//! a numpy buffer while the GIL is released. Library errors become `ValueError` (bad input),
//! `OSError` (files) or `RuntimeError` (devices, anything else) with the library's message.

use bragg::data::dataset::{simulate_arrays, SimArray};
use bragg::inpaint::batch::{fill_batch, prepare, BatchOptions};
use bragg::models::{ModelConfig, ModelKind};
use bragg::nn::Module;
use bragg::num_complex::Complex32;
use bragg::phasing::{self, Chain, Options, Problem, ShrinkWrap, Start, ThresholdMethod};
use bragg::sim::{GapSpec, Range};
use bragg::{Device, Error, Tensor};
use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{IntoPyArray, PyArrayDyn, PyReadonlyArrayDyn};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Converts a library error into the Python exception of its kind, same message.
fn py_err(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::Io { .. } => PyOSError::new_err(msg),
        Error::Shape { .. }
        | Error::InvalidArgument { .. }
        | Error::NonFinite { .. }
        | Error::Data { .. } => PyValueError::new_err(msg),
        _ => PyRuntimeError::new_err(msg),
    }
}

type PyRes<T> = PyResult<T>;

fn device(spec: Option<&str>) -> PyRes<Device> {
    match spec {
        Some(s) => Device::from_spec(s),
        None => Device::default_device(),
    }
    .map_err(py_err)
}

/// The name arrays given from Python carry in error messages.
fn source(name: &str) -> PathBuf {
    PathBuf::from(format!("<{name}>"))
}

fn owned<T: numpy::Element + Clone>(a: &PyReadonlyArrayDyn<'_, T>) -> ArrayD<T> {
    a.as_array().to_owned()
}

fn out<'py, T: numpy::Element>(py: Python<'py>, a: ArrayD<T>) -> Bound<'py, PyArrayDyn<T>> {
    a.into_pyarray(py)
}

/// Simulates BCDI patterns; returns (key, array) pairs with the `.npz` keys.
#[pyfunction]
#[pyo3(signature = (dim, size, count, gap, seed, photons=None, oversampling=None, recipe=None))]
#[allow(clippy::too_many_arguments)]
fn simulate<'py>(
    py: Python<'py>,
    dim: Option<usize>,
    size: Option<usize>,
    count: Option<usize>,
    gap: Option<&str>,
    seed: Option<u64>,
    photons: Option<(f64, f64)>,
    oversampling: Option<(f64, f64)>,
    recipe: Option<PathBuf>,
) -> PyRes<Bound<'py, PyList>> {
    let args = bragg::cli::simulate::SimulateArgs {
        recipe,
        dim,
        size,
        count,
        gap: gap.map(str::parse::<GapSpec>).transpose().map_err(py_err)?,
        photons: photons.map(|(min, max)| Range { min, max }),
        oversampling: oversampling.map(|(min, max)| Range { min, max }),
        seed,
        out: None,
        half: false,
    };
    let c = args.config().map_err(py_err)?;
    let arrays = py.detach(|| simulate_arrays(&c, &|| {})).map_err(py_err)?;
    let list = PyList::empty(py);
    for (key, a) in arrays {
        let v: Bound<'py, PyAny> = match a {
            SimArray::F32(a) => out(py, a).into_any(),
            SimArray::F64(a) => out(py, a).into_any(),
            SimArray::U8(a) => out(py, a).into_any(),
            SimArray::I32(a) => out(py, a).into_any(),
            SimArray::C64(a) => out(py, a).into_any(),
        };
        list.append((key, v))?;
    }
    Ok(list)
}

/// Fills the gaps of a batch `[K, ...]` (float32, masks 1 = gap).
#[pyfunction]
#[pyo3(signature = (intensity, mask, method, model, finetune, stride, physics, physics_chain, device=None))]
#[allow(clippy::too_many_arguments)]
fn inpaint<'py>(
    py: Python<'py>,
    intensity: PyReadonlyArrayDyn<'py, f32>,
    mask: PyReadonlyArrayDyn<'py, f32>,
    method: String,
    model: Option<PathBuf>,
    finetune: f64,
    stride: usize,
    physics: String,
    physics_chain: String,
    device: Option<&str>,
) -> PyRes<Bound<'py, PyArrayDyn<f32>>> {
    let dev = self::device(device)?;
    let mut i = owned(&intensity);
    let m = owned(&mask);
    let opts = BatchOptions {
        method,
        model,
        stride,
        finetune,
        physics,
        physics_chain,
    };
    let filled = py
        .detach(|| {
            prepare(&source("intensity"), "mask", &mut i, &m)?;
            fill_batch(&i, &m, &opts, &dev, &mut |_, _| {}).map(|(f, _)| f)
        })
        .map_err(py_err)?;
    Ok(out(py, filled))
}

/// Phase retrieval of one centred pattern; returns a dict of the kept runs (best first).
#[pyfunction]
#[pyo3(signature = (intensity, mask, algorithm, runs, keep, seed, start_phase, start_object, beta, support_threshold, support_method, support_period, autocorrelation_threshold, confidence, free_fraction, device=None, start_net=None))]
#[allow(clippy::too_many_arguments)]
fn phase<'py>(
    py: Python<'py>,
    intensity: PyReadonlyArrayDyn<'py, f32>,
    mask: Option<PyReadonlyArrayDyn<'py, f32>>,
    algorithm: &str,
    runs: usize,
    keep: usize,
    seed: u64,
    start_phase: Option<PyReadonlyArrayDyn<'py, f32>>,
    start_object: Option<PyReadonlyArrayDyn<'py, Complex32>>,
    beta: f32,
    support_threshold: f32,
    support_method: &str,
    support_period: usize,
    autocorrelation_threshold: f32,
    confidence: f32,
    free_fraction: f32,
    device: Option<&str>,
    start_net: Option<&str>,
) -> PyRes<Bound<'py, PyDict>> {
    let dev = self::device(device)?;
    let chain = Chain::parse(algorithm).map_err(py_err)?;
    let method = match support_method.to_ascii_lowercase().as_str() {
        "rms" => ThresholdMethod::Rms,
        "max" => ThresholdMethod::Max,
        other => {
            return Err(PyValueError::new_err(format!(
                "phase: support_method `{other}` (expected rms or max)"
            )))
        }
    };
    if runs == 0 || runs > bragg::cli::phase::MAX_RUNS || keep == 0 {
        return Err(PyValueError::new_err(format!(
            "phase: runs {runs} (allowed 1..={}) and keep {keep} (>= 1)",
            bragg::cli::phase::MAX_RUNS
        )));
    }
    for (name, v) in [
        ("beta", beta),
        ("support_threshold", support_threshold),
        ("autocorrelation_threshold", autocorrelation_threshold),
        ("confidence", confidence),
        ("free_fraction", free_fraction),
    ] {
        if !v.is_finite() || v < 0.0 {
            return Err(PyValueError::new_err(format!(
                "phase: {name} {v}: must be finite and >= 0"
            )));
        }
    }
    let i = owned(&intensity);
    let m = mask.as_ref().map(|m| owned(m).mapv(|v| u8::from(v != 0.0)));
    let start = match (&start_phase, &start_object, start_net) {
        (Some(p), _, _) => Start::ReciprocalPhase(owned(p)),
        (None, Some(o), _) => Start::Object(owned(o)),
        (None, None, Some(model)) => {
            let net = if model.is_empty() {
                bragg::phasenet::shipped_phasenet(i.ndim(), &dev)
            } else {
                bragg::phasenet::load_phasenet(std::path::Path::new(model), &dev)
            }
            .map_err(py_err)?;
            let p = net.predict(&i, m.as_ref(), &dev).map_err(py_err)?;
            Start::Predicted {
                phase: p.phase,
                known: p.known,
            }
        }
        (None, None, None) => Start::Random,
    };
    let options = Options {
        chain,
        beta,
        shrink_wrap: ShrinkWrap {
            threshold: support_threshold,
            method,
            period: support_period,
            ..ShrinkWrap::default()
        },
        autocorrelation_threshold,
        confidence,
        free_fraction,
        runs,
        keep: keep.min(runs),
        seed,
        ..Options::default()
    };
    let runs = py
        .detach(|| {
            let problem = Problem::from_centred(&i, m.as_ref())?;
            phasing::phase_on(&problem, &options, &start, &dev, &mut |_, _, _| {})
        })
        .map_err(py_err)?;
    let shape = i.shape().to_vec();
    let mut stacked = vec![runs.len()];
    stacked.extend(&shape);
    let err = |e: numpy::ndarray::ShapeError| PyRuntimeError::new_err(e.to_string());
    let objects = ArrayD::from_shape_vec(
        IxDyn(&stacked),
        runs.iter().flat_map(|r| r.object.iter().copied()).collect(),
    )
    .map_err(err)?;
    let supports = ArrayD::from_shape_vec(
        IxDyn(&stacked),
        runs.iter()
            .flat_map(|r| r.support.iter().copied())
            .collect(),
    )
    .map_err(err)?;
    let d = PyDict::new(py);
    d.set_item("object", out(py, objects))?;
    d.set_item("support", out(py, supports))?;
    d.set_item("llk", runs.iter().map(|r| r.llk).collect::<Vec<_>>())?;
    d.set_item(
        "free_llk",
        runs.iter().map(|r| r.free_llk).collect::<Vec<_>>(),
    )?;
    d.set_item("run", runs.iter().map(|r| r.index).collect::<Vec<_>>())?;
    d.set_item(
        "support_size",
        runs.iter().map(|r| r.support_size).collect::<Vec<_>>(),
    )?;
    Ok(d)
}

/// Errors of a reconstruction against the truth after removing the ambiguities, as JSON.
#[pyfunction]
fn compare(
    py: Python<'_>,
    result: PyReadonlyArrayDyn<'_, Complex32>,
    truth: PyReadonlyArrayDyn<'_, Complex32>,
) -> PyRes<String> {
    let (result, truth) = (result.as_array(), truth.as_array());
    if result.shape() != truth.shape() {
        return Err(PyValueError::new_err(format!(
            "compare: result shape {:?} differs from the truth {:?}",
            result.shape(),
            truth.shape()
        )));
    }
    if !(2..=3).contains(&truth.ndim()) {
        return Err(PyValueError::new_err(format!(
            "compare: expected 2-D or 3-D objects, got shape {:?}",
            truth.shape()
        )));
    }
    let o: Vec<Complex32> = result.iter().copied().collect();
    let t: Vec<Complex32> = truth.iter().copied().collect();
    let shape = truth.shape().to_vec();
    let m = py.detach(|| phasing::post::align(&o, &t, &shape).metrics);
    serde_json::to_string(&m).map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

/// Trains an inpainting model on `.npz` datasets (what `bragg train` does).
#[pyfunction]
#[pyo3(signature = (data, out, model, val, epochs, batch, lr, loss, seed, width, depth, max_steps, patches, patch_gap, resume, quiet, device=None))]
#[allow(clippy::too_many_arguments)]
fn train(
    py: Python<'_>,
    data: PathBuf,
    out: PathBuf,
    model: &str,
    val: Option<PathBuf>,
    epochs: Option<usize>,
    batch: Option<usize>,
    lr: Option<f32>,
    loss: Option<String>,
    seed: Option<u64>,
    width: Option<usize>,
    depth: Option<usize>,
    max_steps: Option<usize>,
    patches: Option<usize>,
    patch_gap: usize,
    resume: bool,
    quiet: bool,
    device: Option<&str>,
) -> PyRes<()> {
    let dev = self::device(device)?;
    let kind: ModelKind = model.parse().map_err(py_err)?;
    let args = bragg::cli::train::TrainArgs {
        model: Some(kind),
        recipe: None,
        data,
        val,
        epochs,
        batch,
        lr,
        loss,
        out,
        resume,
        seed,
        width,
        depth,
        max_dilation: None,
        max_steps,
        patches,
        patch_gap,
        quiet,
    };
    py.detach(|| bragg::cli::train::run(&args, &dev))
        .map_err(py_err)
}

/// Reads array `key` of an `.npz`, `.npy` or CXI / HDF5 file (`FILE.h5:/dataset` works).
#[pyfunction]
fn read_array<'py>(py: Python<'py>, path: PathBuf, key: &str) -> PyRes<Bound<'py, PyAny>> {
    use bragg::data::npy::NpyData;
    let a = py
        .detach(|| bragg::data::arrays::ArrayFile::open(&path)?.read(key))
        .map_err(py_err)?;
    let shape = IxDyn(&a.shape);
    macro_rules! arr {
        ($v:expr) => {
            ArrayD::from_shape_vec(shape, $v)
                .map(|x| out(py, x).into_any())
                .map_err(|e| PyRuntimeError::new_err(e.to_string()))
        };
    }
    match a.data {
        NpyData::F16(v) => arr!(v.iter().map(|x| x.to_f32()).collect::<Vec<f32>>()),
        NpyData::F32(v) => arr!(v),
        NpyData::F64(v) => arr!(v),
        NpyData::U8(v) | NpyData::Bool(v) => arr!(v),
        NpyData::U16(v) => arr!(v),
        NpyData::U32(v) => arr!(v),
        NpyData::U64(v) => arr!(v),
        NpyData::I8(v) => arr!(v),
        NpyData::I16(v) => arr!(v),
        NpyData::I32(v) => arr!(v),
        NpyData::I64(v) => arr!(v),
        NpyData::C64(v) => arr!(v),
        NpyData::C128(v) => arr!(v),
    }
}

/// Writes float32 arrays (and a uint8 `mask`) by key to `.npz` or CXI, atomically.
#[pyfunction]
fn write_arrays(
    py: Python<'_>,
    path: PathBuf,
    real: HashMap<String, PyReadonlyArrayDyn<'_, f32>>,
    bytes: HashMap<String, PyReadonlyArrayDyn<'_, u8>>,
    complex: HashMap<String, PyReadonlyArrayDyn<'_, Complex32>>,
) -> PyRes<()> {
    let real: Vec<(String, ArrayD<f32>)> =
        real.iter().map(|(k, a)| (k.clone(), owned(a))).collect();
    let bytes: Vec<(String, ArrayD<u8>)> =
        bytes.iter().map(|(k, a)| (k.clone(), owned(a))).collect();
    let complex: Vec<(String, ArrayD<Complex32>)> =
        complex.iter().map(|(k, a)| (k.clone(), owned(a))).collect();
    py.detach(|| {
        let mut w = bragg::data::arrays::ArrayWriter::create(&path)?;
        for (k, a) in &real {
            w.add(k, a)?;
        }
        for (k, a) in &bytes {
            w.add(k, a)?;
        }
        for (k, a) in &complex {
            w.add(k, a)?;
        }
        w.finish()
    })
    .map_err(py_err)
}

/// The device used when none is given: `BRAGG_DEVICE`, else the first OpenCL GPU, else `cpu`.
#[pyfunction]
fn default_device() -> String {
    bragg::device::default_spec()
}

/// A float32 tensor of the engine, on a device.
#[pyclass(name = "Tensor", module = "bragg")]
struct PyTensor {
    inner: Tensor,
}

#[pymethods]
impl PyTensor {
    #[new]
    #[pyo3(signature = (array, device=None))]
    fn new(array: PyReadonlyArrayDyn<'_, f32>, device: Option<&str>) -> PyRes<Self> {
        let dev = self::device(device)?;
        let a = owned(&array);
        Ok(PyTensor {
            inner: Tensor::from_ndarray(&a, &dev).map_err(py_err)?,
        })
    }

    /// The shape.
    #[getter]
    fn shape(&self) -> Vec<usize> {
        self.inner.shape().to_vec()
    }

    /// The device name.
    #[getter]
    fn device(&self) -> String {
        self.inner.device().name()
    }

    /// A numpy copy of the values (float32).
    fn numpy<'py>(&self, py: Python<'py>) -> PyRes<Bound<'py, PyArrayDyn<f32>>> {
        let a = py.detach(|| self.inner.to_ndarray()).map_err(py_err)?;
        Ok(out(py, a))
    }

    /// The tensor on another device.
    fn to(&self, device: &str) -> PyRes<PyTensor> {
        let dev = self::device(Some(device))?;
        let a = self.inner.to_ndarray().map_err(py_err)?;
        Ok(PyTensor {
            inner: Tensor::from_ndarray(&a, &dev).map_err(py_err)?,
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "bragg.Tensor(shape={:?}, device={})",
            self.inner.shape(),
            self.inner.device().name()
        )
    }
}

/// A network of the engine (`unet`, `dilated-unet`, `msd`, `patch-unet3d`, `gap-unet3d`).
#[pyclass(name = "Model", module = "bragg")]
struct PyModel {
    config: ModelConfig,
    model: Box<dyn Module>,
    device: Device,
}

fn param_map(model: &dyn Module) -> Vec<(String, Tensor)> {
    model
        .parameters()
        .into_iter()
        .map(|p| (p.name, p.tensor))
        .collect()
}

#[pymethods]
impl PyModel {
    #[new]
    #[pyo3(signature = (kind, dims, width, depth, max_dilation, slope, seed, device=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        kind: &str,
        dims: Option<usize>,
        width: Option<usize>,
        depth: Option<usize>,
        max_dilation: Option<usize>,
        slope: Option<f32>,
        seed: u64,
        device: Option<&str>,
    ) -> PyRes<Self> {
        let kind: ModelKind = kind.parse().map_err(py_err)?;
        let mut c = ModelConfig::thesis(kind);
        if let Some(v) = dims {
            c.dims = v;
        }
        if let Some(v) = width {
            c.width = v;
        }
        if let Some(v) = depth {
            c.depth = v;
        }
        if let Some(v) = max_dilation {
            c.max_dilation = v;
        }
        if let Some(v) = slope {
            c.slope = v;
        }
        let dev = self::device(device)?;
        let model = bragg::models::build(&c, &dev, seed).map_err(py_err)?;
        Ok(PyModel {
            config: c,
            model,
            device: dev,
        })
    }

    /// Loads a model file written by `bragg train` / `Model.save`.
    #[staticmethod]
    #[pyo3(signature = (path, device=None))]
    fn load(path: PathBuf, device: Option<&str>) -> PyRes<Self> {
        let dev = self::device(device)?;
        let m = bragg::models::load_model(&path, &dev).map_err(py_err)?;
        Ok(PyModel {
            config: m.config,
            model: m.model,
            device: dev,
        })
    }

    /// The architecture as a JSON string.
    #[getter]
    fn config_json(&self) -> String {
        self.config.to_json()
    }

    /// Number of trainable scalars.
    #[getter]
    fn num_parameters(&self) -> usize {
        self.model.num_parameters()
    }

    /// Runs the network on a float32 batch `[N, 1, ...]` without recording gradients.
    fn forward<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArrayDyn<'py, f32>,
    ) -> PyRes<Bound<'py, PyArrayDyn<f32>>> {
        let a = owned(&x);
        let y = py
            .detach(|| {
                bragg::autograd::no_grad(|| {
                    let t = Tensor::from_ndarray(&a, &self.device)?;
                    self.model.forward(&t)?.to_ndarray()
                })
            })
            .map_err(py_err)?;
        Ok(out(py, y))
    }

    /// Parameter names and shapes, in the model's order.
    fn parameter_shapes(&self) -> Vec<(String, Vec<usize>)> {
        param_map(self.model.as_ref())
            .into_iter()
            .map(|(n, t)| (n, t.shape().to_vec()))
            .collect()
    }

    /// The parameters as float32 arrays by name (a copy).
    fn state_dict<'py>(&self, py: Python<'py>) -> PyRes<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, t) in param_map(self.model.as_ref()) {
            d.set_item(name, out(py, t.to_ndarray().map_err(py_err)?))?;
        }
        Ok(d)
    }

    /// Copies arrays by name into the parameters; every parameter must be given with its
    /// shape (`strict`: and no other name).
    fn load_state_dict(
        &self,
        state: HashMap<String, PyReadonlyArrayDyn<'_, f32>>,
        strict: bool,
    ) -> PyRes<()> {
        let params = self.model.parameters();
        if strict {
            let mut extra: Vec<&String> = state
                .keys()
                .filter(|k| !params.iter().any(|p| &p.name == *k))
                .collect();
            if !extra.is_empty() {
                extra.sort();
                return Err(PyValueError::new_err(format!(
                    "load_state_dict: unexpected keys {extra:?} (the model has {:?})",
                    params.iter().map(|p| p.name.as_str()).collect::<Vec<_>>()
                )));
            }
        }
        let mut tensors = HashMap::new();
        for p in &params {
            let a = state.get(&p.name).ok_or_else(|| {
                PyValueError::new_err(format!("load_state_dict: missing parameter `{}`", p.name))
            })?;
            let a = owned(a);
            if a.iter().any(|v| !v.is_finite()) {
                return Err(PyValueError::new_err(format!(
                    "load_state_dict: parameter `{}` holds non-finite values",
                    p.name
                )));
            }
            tensors.insert(
                p.name.clone(),
                Tensor::from_ndarray(&a, &self.device).map_err(py_err)?,
            );
        }
        let ckpt = bragg::nn::io::Checkpoint {
            tensors,
            metadata: HashMap::new(),
        };
        bragg::nn::io::load_into(Path::new("<state_dict>"), &ckpt, &params).map_err(py_err)
    }

    /// Saves the weights and the architecture (safetensors; `bragg inpaint --model` reads it).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyRes<()> {
        py.detach(|| bragg::models::save_model(&path, self.model.as_ref(), &self.config, &[]))
            .map_err(py_err)
    }
}

/// The native module.
#[pymodule]
fn _bragg(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(simulate, m)?)?;
    m.add_function(wrap_pyfunction!(inpaint, m)?)?;
    m.add_function(wrap_pyfunction!(phase, m)?)?;
    m.add_function(wrap_pyfunction!(compare, m)?)?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(read_array, m)?)?;
    m.add_function(wrap_pyfunction!(write_arrays, m)?)?;
    m.add_function(wrap_pyfunction!(default_device, m)?)?;
    m.add_class::<PyTensor>()?;
    m.add_class::<PyModel>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
