//! The labelled figure of a complex object written by `bragg phase --figures`: central slices
//! (three orthogonal ones for a volume) of the modulus and the phase, with axes and colour bars.

use crate::plot::{central_slices, Colormap, Figure, Panel};
use crate::Result;
use ndarray::ArrayD;
use num_complex::Complex32;
use std::path::{Path, PathBuf};

/// Fraction of the maximum modulus below which the phase is not drawn (it is noise there).
const PHASE_LEVEL: f32 = 0.1;

/// Draws the central slices of `object`'s modulus (relative to its maximum) and phase (where
/// the modulus exceeds 10% of the maximum) with pixel axes, titled `title`.
pub fn object_figure(object: &ArrayD<Complex32>, title: &str) -> Result<Figure> {
    let max = object
        .iter()
        .map(|v| v.norm())
        .fold(0.0f32, f32::max)
        .max(1e-30);
    let modulus = object.mapv(|v| v.norm() / max);
    let phase = object.mapv(|v| {
        if v.norm() > PHASE_LEVEL * max {
            v.arg()
        } else {
            f32::NAN
        }
    });
    let pi = std::f32::consts::PI;
    let mod_slices = central_slices(&modulus, &[1.0], "px")?;
    let mut fig = Figure::new(title, mod_slices.len().max(2));
    let named = |name: &str, plane: &str| {
        if plane.is_empty() {
            name.to_string()
        } else {
            format!("{name} ({plane})")
        }
    };
    for s in mod_slices {
        fig.push(
            Panel::new(named("modulus", &s.plane), s.data, Colormap::Sequential)
                .axes(s.extent, &s.x_label, &s.y_label)
                .range(0.0, 1.0)
                .bar_label("modulus / max"),
        );
    }
    for s in central_slices(&phase, &[1.0], "px")? {
        fig.push(
            Panel::new(named("phase", &s.plane), s.data, Colormap::Cyclic)
                .axes(s.extent, &s.x_label, &s.y_label)
                .range(-pi, pi)
                .bar_ticks(Panel::phase_ticks())
                .bar_label("φ (rad)"),
        );
    }
    Ok(fig)
}

/// Writes `slices.png` (see [`object_figure`]) into `dir` and returns its path.
pub fn write_slices(dir: &Path, object: &ArrayD<Complex32>) -> Result<PathBuf> {
    let path = dir.join("slices.png");
    let title = format!("best run: {:?} array", object.shape());
    object_figure(object, &title)?.save(&path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    #[test]
    fn slices_figure_of_a_volume_and_an_image() {
        let dir = tempfile::tempdir().unwrap();
        let vol = ArrayD::from_shape_fn(IxDyn(&[24, 24, 24]), |i| {
            let r2 = (0..3).map(|d| (i[d] as f32 - 12.0).powi(2)).sum::<f32>();
            Complex32::from_polar(f32::from(u8::from(r2 < 64.0)), 0.3 * i[2] as f32)
        });
        let p = write_slices(&dir.path().join("v"), &vol).unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        assert!(img.width() >= 512, "{:?}", img.dimensions());
        assert_eq!(object_figure(&vol, "t").unwrap().panels.len(), 6);
        let im = vol.index_axis(ndarray::Axis(0), 12).to_owned();
        let p = write_slices(&dir.path().join("i"), &im).unwrap();
        assert!(image::open(&p).unwrap().width() >= 512);
        assert_eq!(object_figure(&im, "t").unwrap().panels.len(), 2);
    }
}
