//! Checks of loaded data: every failure is an error naming the file, the key, the pattern and
//! the element, so that a bad dataset stops a run at load time instead of producing NaN
//! losses or silently wrong results.

use crate::{Error, Result};
use ndarray::{ArrayD, Axis};
use num_complex::Complex32;
use std::path::Path;

/// Index `[i, j, ...]` of flat (C-order) index `flat` in `shape`.
pub fn unravel(flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    let mut r = flat;
    for (d, &n) in shape.iter().enumerate().rev() {
        if n > 0 {
            idx[d] = r % n;
            r /= n;
        }
    }
    idx
}

fn bad(path: &Path, key: &str, detail: String) -> Error {
    Error::data(path, format!("key `{key}`: {detail}"))
}

/// Every value must be finite.
pub fn finite(path: &Path, key: &str, a: &ArrayD<f32>) -> Result<()> {
    match a.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(bad(
            path,
            key,
            format!(
                "non-finite value {} at index {:?} (NaN and infinity are refused)",
                a.iter().nth(i).copied().unwrap_or(f32::NAN),
                unravel(i, a.shape())
            ),
        )),
        None => Ok(()),
    }
}

/// Every complex value must be finite.
pub fn finite_complex(path: &Path, key: &str, a: &ArrayD<Complex32>) -> Result<()> {
    match a
        .iter()
        .position(|v| !(v.re.is_finite() && v.im.is_finite()))
    {
        Some(i) => Err(bad(
            path,
            key,
            format!(
                "non-finite value at index {:?} (NaN and infinity are refused)",
                unravel(i, a.shape())
            ),
        )),
        None => Ok(()),
    }
}

/// Intensities (photon counts): finite and non-negative.
pub fn counts(path: &Path, key: &str, a: &ArrayD<f32>) -> Result<()> {
    finite(path, key, a)?;
    match a.iter().position(|&v| v < 0.0) {
        Some(i) => Err(bad(
            path,
            key,
            format!(
                "negative intensity {} at index {:?} (photon counts must be >= 0)",
                a.iter().nth(i).copied().unwrap_or(0.0),
                unravel(i, a.shape())
            ),
        )),
        None => Ok(()),
    }
}

/// A batch of gap masks `[K, ...]`: values 0 or 1 only, and no pattern entirely masked (its
/// scaling would have no measured pixel).
pub fn masks(path: &Path, key: &str, m: &ArrayD<f32>) -> Result<()> {
    if let Some(i) = m.iter().position(|&v| v != 0.0 && v != 1.0) {
        return Err(bad(
            path,
            key,
            format!(
                "mask value {} at index {:?}: masks must hold only 0 (measured) and 1 (gap)",
                m.iter().nth(i).copied().unwrap_or(f32::NAN),
                unravel(i, m.shape())
            ),
        ));
    }
    if m.ndim() < 2 {
        return Ok(());
    }
    for (k, p) in m.axis_iter(Axis(0)).enumerate() {
        if !p.is_empty() && p.iter().all(|&v| v != 0.0) {
            return Err(bad(
                path,
                key,
                format!("pattern {k} is entirely masked (no measured pixel)"),
            ));
        }
    }
    Ok(())
}

/// Every pattern of a batch of gap masks `[K, ...]` must have at least one gap pixel (what
/// training and scoring need: losses and metrics are computed in the gap).
pub fn masks_have_gaps(path: &Path, key: &str, m: &ArrayD<f32>) -> Result<()> {
    if m.ndim() < 2 {
        return Ok(());
    }
    for (k, p) in m.axis_iter(Axis(0)).enumerate() {
        if p.iter().all(|&v| v == 0.0) {
            return Err(bad(
                path,
                key,
                format!("pattern {k} has no gap pixel (empty mask): nothing to train on or score"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    #[test]
    fn messages_name_key_and_index() {
        let p = Path::new("d.npz");
        let mut a = ArrayD::<f32>::zeros(IxDyn(&[2, 3, 4]));
        assert!(finite(p, "truth", &a).is_ok());
        a[[1, 2, 3]] = f32::NAN;
        let e = finite(p, "truth", &a).unwrap_err().to_string();
        assert!(
            e.contains("d.npz") && e.contains("`truth`") && e.contains("[1, 2, 3]"),
            "{e}"
        );
        a[[1, 2, 3]] = -2.0;
        let e = counts(p, "truth", &a).unwrap_err().to_string();
        assert!(e.contains("negative"), "{e}");
        let mut m = ArrayD::<f32>::zeros(IxDyn(&[2, 3, 4]));
        let e = masks_have_gaps(p, "mask", &m).unwrap_err().to_string();
        assert!(e.contains("pattern 0") && e.contains("no gap"), "{e}");
        m.index_axis_mut(Axis(0), 1).fill(1.0);
        let e = masks(p, "mask", &m).unwrap_err().to_string();
        assert!(
            e.contains("pattern 1") && e.contains("entirely masked"),
            "{e}"
        );
        m[[1, 0, 0]] = 0.5;
        let e = masks(p, "mask", &m).unwrap_err().to_string();
        assert!(e.contains("0.5"), "{e}");
    }
}
