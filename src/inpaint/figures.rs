//! PNG panels of patterns in log scale (the normalised `log(I+1)` values) with a perceptual
//! colour map (a 9-entry approximation of viridis, linearly interpolated).

use crate::{Error, Result};
use image::{Rgb, RgbImage};
use ndarray::{ArrayD, Axis};
use std::path::Path;

/// Anchor colours of the map at 0, 1/8, ..., 1 (dark blue-violet to yellow, monotone in
/// lightness).
const MAP: [[u8; 3]; 9] = [
    [68, 1, 84],
    [71, 44, 122],
    [59, 81, 139],
    [44, 113, 142],
    [33, 144, 141],
    [39, 173, 129],
    [92, 200, 99],
    [170, 220, 50],
    [253, 231, 37],
];

/// Colour of `v` in [0, 1] (clamped; NaN is black).
pub fn colour(v: f32) -> [u8; 3] {
    if !v.is_finite() {
        return [0, 0, 0];
    }
    let t = v.clamp(0.0, 1.0) * (MAP.len() - 1) as f32;
    let i = (t.floor() as usize).min(MAP.len() - 2);
    let f = t - i as f32;
    let mut c = [0u8; 3];
    for (k, ck) in c.iter_mut().enumerate() {
        *ck = (MAP[i][k] as f32 * (1.0 - f) + MAP[i + 1][k] as f32 * f).round() as u8;
    }
    c
}

/// A 2-D view of a pattern: itself, or the central slice along axis 0 of a volume.
pub fn slice2d(a: &ArrayD<f32>) -> Result<ndarray::Array2<f32>> {
    let v = match a.ndim() {
        2 => a.clone(),
        3 => a.index_axis(Axis(0), a.shape()[0] / 2).to_owned(),
        n => return Err(Error::shape("figure", format!("cannot draw a {n}-D array"))),
    };
    v.into_dimensionality::<ndarray::Ix2>()
        .map_err(|e| Error::shape("figure", e.to_string()))
}

/// Writes a grid of panels: `rows[r][c]` is drawn at row `r`, column `c`, every image scaled
/// up by `zoom` (nearest), 2-px white separators.
pub fn write_grid(path: &Path, rows: &[Vec<ArrayD<f32>>], zoom: u32) -> Result<()> {
    let first = rows
        .first()
        .and_then(|r| r.first())
        .ok_or_else(|| Error::arg("figure", "rows", "nothing to draw"))?;
    let s = slice2d(first)?;
    let (h, w) = (s.shape()[0] as u32 * zoom, s.shape()[1] as u32 * zoom);
    let cols = rows.iter().map(Vec::len).max().unwrap_or(1) as u32;
    let gap = 2;
    let mut img = RgbImage::from_pixel(
        cols * (w + gap) - gap,
        rows.len() as u32 * (h + gap) - gap,
        Rgb([255, 255, 255]),
    );
    for (r, row) in rows.iter().enumerate() {
        for (c, a) in row.iter().enumerate() {
            let s = slice2d(a)?;
            if s.shape()[0] as u32 * zoom != h || s.shape()[1] as u32 * zoom != w {
                return Err(Error::shape("figure", "panels of different sizes"));
            }
            let (x0, y0) = (c as u32 * (w + gap), r as u32 * (h + gap));
            for y in 0..h {
                for x in 0..w {
                    let v = s[[(y / zoom) as usize, (x / zoom) as usize]];
                    img.put_pixel(x0 + x, y0 + y, Rgb(colour(v)));
                }
            }
        }
    }
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    crate::data::io::write_png(path, &img)
}

/// Writes a labelled grid of patterns: `rows[r][c]` (2-D, or the central slice along axis 0
/// of a volume) at row `r`, column `c`, each panel titled `columns[c]`, all on the colour
/// range 0..1 of the normalised `log(I+1)`, with a colour bar at the end of each row and the
/// figure `title` on top.
pub fn write_labelled_grid(
    path: &Path,
    title: &str,
    columns: &[String],
    rows: &[Vec<ArrayD<f32>>],
) -> Result<()> {
    use crate::plot::{Colormap, Figure, Panel};
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    if n == 0 {
        return Err(Error::arg("figure", "rows", "nothing to draw"));
    }
    let mut fig = Figure::new(title, n);
    fig.panel_size = 160;
    for row in rows {
        for c in 0..n {
            let name = columns.get(c).cloned().unwrap_or_default();
            let data = match row.get(c) {
                Some(a) => slice2d(a)?,
                None => ndarray::Array2::from_elem((1, 1), f32::NAN),
            };
            let mut p = Panel::new(name, data, Colormap::Sequential)
                .no_axes()
                .range(0.0, 1.0)
                .bar_label("log(I+1), norm.");
            if c + 1 < n {
                p = p.no_bar();
            }
            fig.push(p);
        }
    }
    fig.save(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    #[test]
    fn labelled_grid_has_titles_and_a_bar() {
        let a = ArrayD::from_shape_fn(IxDyn(&[32, 32]), |i| (i[0] + i[1]) as f32 / 62.0);
        let rows = vec![vec![a.clone(), a.clone(), a.clone()], vec![a.clone(), a]];
        let cols: Vec<String> = ["truth", "input", "unet"].map(String::from).to_vec();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("grid.png");
        write_labelled_grid(&p, "examples", &cols, &rows).unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        assert!(
            img.width() >= 512 && img.height() > 2 * 160,
            "{:?}",
            img.dimensions()
        );
        assert!(write_labelled_grid(&p, "none", &cols, &[]).is_err());
    }
}
