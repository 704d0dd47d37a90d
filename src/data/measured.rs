//! Measured diffraction patterns from `.npy` / `.npz` files, validated.

use super::npy::{read_npy, NpyArray, NpzFile};
use crate::{Error, Result};
use ndarray::ArrayD;
use std::path::Path;

/// Largest accepted pattern, in voxels (1024^3).
pub const MAX_VOXELS: usize = 1 << 30;

/// Keys tried, in order, for the intensity of an `.npz` without an explicit key.
pub const INTENSITY_KEYS: [&str; 4] = ["data", "intensity", "I", "truth"];

/// A measured pattern: intensity and optional mask (1 = gap / bad pixel).
#[derive(Debug, Clone)]
pub struct Measured {
    /// Intensity (2D or 3D), finite and non-negative.
    pub intensity: ArrayD<f32>,
    /// Mask of the same shape, 1 = missing.
    pub mask: Option<ArrayD<u8>>,
}

fn check_intensity(path: &Path, key: &str, a: &NpyArray) -> Result<ArrayD<f32>> {
    let bad = |m: String| Error::data(path, format!("key `{key}`: {m}"));
    match a.dtype() {
        "float32" | "float64" | "float16" | "uint8" | "uint16" | "uint32" | "uint64" | "int8"
        | "int16" | "int32" | "int64" => {}
        d => return Err(bad(format!("unsupported intensity dtype {d}"))),
    }
    if a.shape.len() != 2 && a.shape.len() != 3 {
        return Err(bad(format!(
            "expected a 2D or 3D array, got shape {:?}",
            a.shape
        )));
    }
    let n: usize = a.shape.iter().product();
    if n == 0 || n > MAX_VOXELS {
        return Err(bad(format!("size {n} outside 1..={MAX_VOXELS} voxels")));
    }
    let data = a.to_f32().map_err(bad)?;
    if let Some((i, v)) = data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(bad(format!("non-finite value {v} at flat index {i}")));
    }
    if let Some((i, v)) = data.iter().enumerate().find(|(_, v)| **v < 0.0) {
        return Err(bad(format!("negative value {v} at flat index {i}")));
    }
    Ok(data)
}

fn check_mask(path: &Path, key: &str, a: &NpyArray, shape: &[usize]) -> Result<ArrayD<u8>> {
    let bad = |m: String| Error::data(path, format!("key `{key}`: {m}"));
    if a.shape != shape {
        return Err(bad(format!(
            "mask shape {:?} differs from the data shape {shape:?}",
            a.shape
        )));
    }
    if a.is_complex() {
        return Err(bad("complex mask".into()));
    }
    let m = a.to_f32().map_err(bad)?;
    if m.iter().any(|v| !v.is_finite()) {
        return Err(bad("non-finite mask value".into()));
    }
    Ok(m.mapv(|v| (v != 0.0) as u8))
}

fn is_npz(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| e.eq_ignore_ascii_case("npz"))
        == Some(true)
}

/// Reads a measured pattern from `path` (`.npy` or `.npz`). For `.npz`, `key` names the
/// intensity (default: the first of [`INTENSITY_KEYS`] present, or the only array) and a `mask`
/// key is used when present. `mask_path` reads the mask from a separate `.npy`/`.npz` instead.
pub fn read_measured(path: &Path, key: Option<&str>, mask_path: Option<&Path>) -> Result<Measured> {
    let (intensity, mut mask) = if is_npz(path) {
        let mut z = NpzFile::open(path)?;
        let keys = z.keys();
        let key = match key {
            Some(k) => k.to_string(),
            None => INTENSITY_KEYS
                .iter()
                .find(|k| keys.iter().any(|x| x == *k))
                .map(|k| k.to_string())
                .or_else(|| (keys.len() == 1).then(|| keys[0].clone()))
                .ok_or_else(|| {
                    Error::data(
                        path,
                        format!(
                            "no intensity key among {INTENSITY_KEYS:?} (has: {}); pass the key",
                            keys.join(", ")
                        ),
                    )
                })?,
        };
        let a = z.read(&key)?;
        let data = check_intensity(path, &key, &a)?;
        let mask = if z.has("mask") && key != "mask" {
            let m = z.read("mask")?;
            Some(check_mask(path, "mask", &m, data.shape())?)
        } else {
            None
        };
        (data, mask)
    } else {
        let a = read_npy(path)?;
        (check_intensity(path, "(npy)", &a)?, None)
    };
    if let Some(mp) = mask_path {
        let m = if is_npz(mp) {
            NpzFile::open(mp)?.read("mask")?
        } else {
            read_npy(mp)?
        };
        mask = Some(check_mask(mp, "mask", &m, intensity.shape())?);
    }
    Ok(Measured { intensity, mask })
}
