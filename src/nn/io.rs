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

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// A loaded checkpoint: tensors by name (on the requested device) and the metadata.
pub struct Checkpoint {
    /// Tensors by name.
    pub tensors: HashMap<String, Tensor>,
    /// The string metadata map.
    pub metadata: HashMap<String, String>,
}

/// Reads a safetensors file; every tensor must be f32.
pub fn load(path: &Path, device: &Device) -> Result<Checkpoint> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    load_bytes(&bytes, path, device)
}

/// Reads a safetensors file held in memory (e.g. weights embedded in the binary); `origin`
/// names it in errors.
pub fn load_bytes(bytes: &[u8], path: &Path, device: &Device) -> Result<Checkpoint> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| Error::data(path, format!("not a valid safetensors file: {e}")))?;
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| Error::data(path, format!("not a valid safetensors header: {e}")))?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(Error::data(
                path,
                format!("tensor `{name}` is {:?}, expected F32", view.dtype()),
            ));
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.insert(name.clone(), Tensor::from_vec(data, view.shape(), device)?);
    }
    Ok(Checkpoint {
        tensors,
        metadata: meta.metadata().clone().unwrap_or_default(),
    })
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
