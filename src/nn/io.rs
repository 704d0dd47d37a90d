//! Weights as safetensors files: tensor names are parameter paths, f32 little-endian, and a
//! string-to-string metadata map (model architecture, preprocessing). Readable from Python
//! with `safetensors.numpy.load_file` or `safetensors.torch.load_file`.

use super::Param;
use crate::tensor::Tensor;
use crate::{Device, Error, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Writes `tensors` and `metadata` to `path` atomically (a temporary file renamed into
/// place, so a crash never leaves a truncated file).
pub fn save(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: &HashMap<String, String>,
) -> Result<()> {
    let mut host: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for (name, t) in tensors {
        let data = t.to_vec()?;
        if host
            .insert(
                name.clone(),
                (t.shape().to_vec(), bytemuck::cast_slice(&data).to_vec()),
            )
            .is_some()
        {
            return Err(Error::arg(
                "save",
                "tensors",
                format!("duplicate tensor name `{name}`"),
            ));
        }
    }
    let views: Vec<(String, TensorView<'_>)> = host
        .iter()
        .map(|(n, (shape, bytes))| {
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::data(path, format!("tensor `{n}`: {e}")))
        })
        .collect::<Result<_>>()?;
    let bytes = safetensors::serialize(views, Some(metadata.clone()))
        .map_err(|e| Error::data(path, format!("serialising: {e}")))?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` atomically: a unique temporary file in the same folder, fsync,
/// rename, folder fsync (see [`crate::data::io::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::data::io::write_atomic(path, bytes)
}

/// A loaded checkpoint: tensors by name (on the requested device) and the metadata.
pub struct Checkpoint {
    /// Tensors by name.
    pub tensors: HashMap<String, Tensor>,
    /// The string metadata map.
    pub metadata: HashMap<String, String>,
}

/// Reads a safetensors file (a regular file of at most [`crate::data::io::MAX_MODEL_BYTES`]).
/// Tensors may be stored as F32, F16, BF16 or F64 (converted to f32); every value must be
/// finite, so a corrupt or diverged file is refused before it is used.
pub fn load(path: &Path, device: &Device) -> Result<Checkpoint> {
    checkpoint_on(read_host(path)?, device)
}

/// Reads a safetensors file held in memory (e.g. weights embedded in the binary) with the
/// checks of [`load`]; `path` names it in errors.
pub fn load_bytes(bytes: &[u8], path: &Path, device: &Device) -> Result<Checkpoint> {
    checkpoint_on(host_from_bytes(bytes, path)?, device)
}

fn checkpoint_on(
    (tensors, metadata): (HostTensors, HashMap<String, String>),
    device: &Device,
) -> Result<Checkpoint> {
    let mut out = HashMap::new();
    for (name, (shape, data)) in tensors {
        let t = Tensor::from_vec(data, &shape, device)?;
        out.insert(name, t);
    }
    Ok(Checkpoint {
        tensors: out,
        metadata,
    })
}

/// Tensors of a safetensors file on the host: name -> (shape, f32 values).
pub type HostTensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// Reads only the string metadata of a safetensors file (bounded, regular files only).
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>> {
    let bytes = read_file(path)?;
    let (_, meta) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::data(path, format!("not a valid safetensors header: {e}")))?;
    Ok(meta.metadata().clone().unwrap_or_default())
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    crate::data::io::read_bounded(path, crate::data::io::MAX_MODEL_BYTES, "model")
}

/// Reads and checks a safetensors file on the host (see [`load`]).
pub fn read_host(path: &Path) -> Result<(HostTensors, HashMap<String, String>)> {
    host_from_bytes(&read_file(path)?, path)
}

fn host_from_bytes(bytes: &[u8], path: &Path) -> Result<(HostTensors, HashMap<String, String>)> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| Error::data(path, format!("not a valid safetensors file: {e}")))?;
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| Error::data(path, format!("not a valid safetensors header: {e}")))?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::F64 => raw
                .chunks_exact(8)
                .map(|c| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    f64::from_le_bytes(a) as f32
                })
                .collect(),
            other => {
                return Err(Error::data(
                    path,
                    format!("tensor `{name}` is {other:?}, expected F32, F16, BF16 or F64"),
                ))
            }
        };
        let want: usize = view.shape().iter().product();
        if data.len() != want {
            return Err(Error::data(
                path,
                format!(
                    "tensor `{name}` holds {} values for shape {:?}",
                    data.len(),
                    view.shape()
                ),
            ));
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::data(
                path,
                format!(
                    "tensor `{name}` holds the non-finite value {} at flat index {i} (a corrupt or diverged model is refused)",
                    data[i]
                ),
            ));
        }
        tensors.insert(name.clone(), (view.shape().to_vec(), data));
    }
    Ok((tensors, meta.metadata().clone().unwrap_or_default()))
}

/// Saves a module's parameters with metadata.
pub fn save_params(
    path: &Path,
    params: &[Param],
    metadata: &HashMap<String, String>,
) -> Result<()> {
    let named: Vec<(String, Tensor)> = params
        .iter()
        .map(|p| (p.name.clone(), p.tensor.clone()))
        .collect();
    save(path, &named, metadata)
}

/// Copies the checkpoint's tensors into `params` in place; every parameter must be present
/// with the same shape.
pub fn load_into(path: &Path, ckpt: &Checkpoint, params: &[Param]) -> Result<()> {
    for p in params {
        let t = ckpt
            .tensors
            .get(&p.name)
            .ok_or_else(|| Error::data(path, format!("missing parameter `{}`", p.name)))?;
        if t.shape() != p.tensor.shape() {
            return Err(Error::data(
                path,
                format!(
                    "parameter `{}` has shape {:?} in the file, {:?} in the model",
                    p.name,
                    t.shape(),
                    p.tensor.shape()
                ),
            ));
        }
        let data = t.to_vec()?;
        let fresh = p.tensor.device().backend().upload(&data)?;
        *p.tensor.update_storage() = fresh;
    }
    Ok(())
}
