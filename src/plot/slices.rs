//! Central slices of a volume (or the image itself in 2-D) with physical coordinates, for
//! figures of three orthogonal views. Axes 0, 1, 2 of a volume are named z, y, x (rows of a
//! 2-D image are y, columns x); coordinates are centred on the middle voxel.

use crate::{Error, Result};
use ndarray::{ArrayD, Axis, Ix2};

/// One central slice ready for a panel.
#[derive(Debug, Clone)]
pub struct Slice {
    /// The slice, rows along `y_label`'s axis.
    pub data: ndarray::Array2<f32>,
    /// Which plane, e.g. `z = 0` (empty for a 2-D image).
    pub plane: String,
    /// Outer edges `[left, right, top, bottom]` in physical units.
    pub extent: [f64; 4],
    /// Horizontal axis label with unit, e.g. `x (nm)`.
    pub x_label: String,
    /// Vertical axis label with unit.
    pub y_label: String,
}

/// Axis names of a 2-D or 3-D array.
pub fn axis_names(ndim: usize) -> &'static [&'static str] {
    if ndim == 3 {
        &["z", "y", "x"]
    } else {
        &["y", "x"]
    }
}

/// The central slice across each axis of a 3-D `a` (one per axis, in axis order), or `a`
/// itself when 2-D. `spacing` is the voxel size per axis (one value for all), `unit` its unit.
pub fn central_slices(a: &ArrayD<f32>, spacing: &[f64], unit: &str) -> Result<Vec<Slice>> {
    let nd = a.ndim();
    if !(2..=3).contains(&nd) || a.is_empty() {
        return Err(Error::shape(
            "central_slices",
            format!(
                "expected a non-empty 2-D or 3-D array, got shape {:?}",
                a.shape()
            ),
        ));
    }
    let sp: Vec<f64> = match spacing.len() {
        1 => vec![spacing[0]; nd],
        n if n == nd => spacing.to_vec(),
        n => {
            return Err(Error::arg(
                "central_slices",
                "spacing",
                format!("{n} values for a {nd}-D array (give 1 or {nd})"),
            ))
        }
    };
    if sp.iter().any(|v| !v.is_finite() || *v <= 0.0) {
        return Err(Error::arg(
            "central_slices",
            "spacing",
            format!("{sp:?}: must be finite and > 0"),
        ));
    }
    let names = axis_names(nd);
    let edges = |d: usize| {
        let n = a.shape()[d];
        let c = (n / 2) as f64;
        (-c - 0.5) * sp[d]..=((n - 1) as f64 - c + 0.5) * sp[d]
    };
    let label = |d: usize| format!("{} ({unit})", names[d]);
    let make = |data: ArrayD<f32>, plane: String, r: usize, c: usize| -> Result<Slice> {
        let data = data
            .into_dimensionality::<Ix2>()
            .map_err(|e| Error::shape("central_slices", e.to_string()))?;
        let (er, ec) = (edges(r), edges(c));
        Ok(Slice {
            data,
            plane,
            extent: [*ec.start(), *ec.end(), *er.start(), *er.end()],
            x_label: label(c),
            y_label: label(r),
        })
    };
    if nd == 2 {
        return Ok(vec![make(a.clone(), String::new(), 0, 1)?]);
    }
    (0..3)
        .map(|d| {
            let s = a.index_axis(Axis(d), a.shape()[d] / 2).to_owned();
            let rest: Vec<usize> = (0..3).filter(|&k| k != d).collect();
            make(s, format!("{} = 0", names[d]), rest[0], rest[1])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    #[test]
    fn slices_pick_the_centre_with_physical_edges() {
        let a = ArrayD::from_shape_fn(IxDyn(&[4, 6, 8]), |i| {
            (100 * i[0] + 10 * i[1] + i[2]) as f32
        });
        let s = central_slices(&a, &[2.0, 1.0, 0.5], "nm").unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].data.dim(), (6, 8));
        assert_eq!(s[0].data[[0, 0]], 200.0);
        assert_eq!(s[0].plane, "z = 0");
        assert_eq!(
            (s[0].x_label.as_str(), s[0].y_label.as_str()),
            ("x (nm)", "y (nm)")
        );
        assert_eq!(s[0].extent, [-2.25, 1.75, -3.5, 2.5]);
        assert_eq!(s[1].data.dim(), (4, 8));
        assert_eq!(s[1].data[[0, 0]], 30.0);
        assert_eq!(s[2].data.dim(), (4, 6));
        assert_eq!(s[2].data[[1, 1]], 114.0);
        assert_eq!(
            central_slices(&a.index_axis(Axis(0), 0).to_owned(), &[1.0], "px")
                .unwrap()
                .len(),
            1
        );
        assert!(central_slices(&a, &[1.0, 2.0], "nm").is_err());
        assert!(central_slices(&a, &[0.0], "nm").is_err());
    }
}
