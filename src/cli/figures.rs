//! PNG figures of complex objects: central slices of modulus and phase.

use crate::{Error, Result};
use ndarray::{ArrayD, Axis, Ix2};
use num_complex::Complex32;
use std::path::Path;

/// A simple perceptual-ish ramp (black - purple - orange - yellow) for moduli in [0, 1].
fn modulus_colour(t: f32) -> [u8; 3] {
    let t = t.clamp(0.0, 1.0);
    let stops = [
        [0.0, 0.0, 0.02],
        [0.35, 0.05, 0.5],
        [0.85, 0.3, 0.3],
        [0.99, 0.7, 0.1],
        [1.0, 1.0, 0.75],
    ];
    let x = t * (stops.len() - 1) as f32;
    let i = (x.floor() as usize).min(stops.len() - 2);
    let f = x - i as f32;
    let c = |k: usize| ((stops[i][k] * (1.0 - f) + stops[i + 1][k] * f) * 255.0) as u8;
    [c(0), c(1), c(2)]
}

/// Cyclic hue for a phase in radians, dimmed by `v` in [0, 1].
fn phase_colour(phi: f32, v: f32) -> [u8; 3] {
    let h = (phi.rem_euclid(std::f32::consts::TAU)) / std::f32::consts::TAU * 6.0;
    let x = 1.0 - ((h % 2.0) - 1.0).abs();
    let (r, g, b) = match h as u32 {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        4 => (x, 0.0, 1.0),
        _ => (1.0, 0.0, x),
    };
    let v = v.clamp(0.0, 1.0) * 255.0;
    [(r * v) as u8, (g * v) as u8, (b * v) as u8]
}

/// Writes `modulus_axis{a}.png` and `phase_axis{a}.png` (central slice across each axis for 3D,
/// the array itself for 2D) into `dir`. The phase is shown where the modulus exceeds 10% of max.
pub fn write_slices(dir: &Path, object: &ArrayD<Complex32>) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let max = object
        .iter()
        .map(|v| v.norm())
        .fold(0.0f32, f32::max)
        .max(1e-30);
    let slices: Vec<(usize, ArrayD<Complex32>)> = if object.ndim() == 3 {
        (0..3)
            .map(|a| {
                (
                    a,
                    object.index_axis(Axis(a), object.shape()[a] / 2).to_owned(),
                )
            })
            .collect()
    } else {
        vec![(0, object.clone())]
    };
    for (axis, s) in slices {
        let s = s
            .into_dimensionality::<Ix2>()
            .map_err(|e| Error::Msg(format!("figures: {e}")))?;
        let (h, w) = s.dim();
        let mut modimg = image::RgbImage::new(w as u32, h as u32);
        let mut phimg = image::RgbImage::new(w as u32, h as u32);
        for ((y, x), v) in s.indexed_iter() {
            let m = v.norm() / max;
            modimg.put_pixel(x as u32, y as u32, image::Rgb(modulus_colour(m)));
            let c = if m > 0.1 {
                phase_colour(v.arg(), 1.0)
            } else {
                [0, 0, 0]
            };
            phimg.put_pixel(x as u32, y as u32, image::Rgb(c));
        }
        for (name, img) in [("modulus", &modimg), ("phase", &phimg)] {
            let p = dir.join(format!("{name}_axis{axis}.png"));
            crate::data::io::write_png(&p, img)?;
        }
    }
    Ok(())
}
