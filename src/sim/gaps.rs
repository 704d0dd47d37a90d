//! Detector gap masks. The two detector axes are the last two array axes (rows, columns); in
//! 3D a gap is a plane constant along the rocking axis (axis 0). Mask value 1 = gap.
//!
//! Layouts:
//! - `line:W`: one band of W pixels near the peak (within +-size/8 of the centre): vertical
//!   (constant column) in 2D, vertical or horizontal at random in 3D;
//! - `cross:W`: a row band and a column band near the peak (peak close to a chip corner);
//! - `maxipix`: the 516x516 MAXIPIX 2x2 frame, 6-px cross at rows/cols 255..261;
//! - `eiger2`: the EIGER2 4M frame, 512x1028 modules with 38 rows and 12 columns between them.
//!
//! For detector layouts the array is a crop of the frame whose centre (the Bragg peak) lies
//! within +-size/4 of a gap crossing chosen at random; pixels outside the frame are masked too.

use crate::{Error, Result};
use ndarray::{Array2, ArrayD, Axis};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A gap layout (`none`, `line:W`, `cross:W`, `maxipix`, `eiger2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum GapSpec {
    /// No gap.
    None,
    /// One band of the given width.
    Line(usize),
    /// A row band and a column band of the given width.
    Cross(usize),
    /// MAXIPIX 2x2 frame.
    Maxipix,
    /// EIGER2 4M frame.
    Eiger2,
}

impl FromStr for GapSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::arg(
                "gap",
                "gap",
                format!("`{s}`: expected none, line:W, cross:W, maxipix or eiger2"),
            )
        };
        let width = |w: &str| -> Result<usize> {
            let w: usize = w.parse().map_err(|_| bad())?;
            if w == 0 {
                return Err(Error::arg("gap", "gap", "width must be >= 1"));
            }
            Ok(w)
        };
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(GapSpec::None),
            "maxipix" => Ok(GapSpec::Maxipix),
            "eiger2" => Ok(GapSpec::Eiger2),
            t => match t.split_once(':') {
                Some(("line", w)) => Ok(GapSpec::Line(width(w)?)),
                Some(("cross", w)) => Ok(GapSpec::Cross(width(w)?)),
                _ => Err(bad()),
            },
        }
    }
}

impl TryFrom<String> for GapSpec {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<GapSpec> for String {
    fn from(g: GapSpec) -> String {
        g.to_string()
    }
}

impl fmt::Display for GapSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GapSpec::None => write!(f, "none"),
            GapSpec::Line(w) => write!(f, "line:{w}"),
            GapSpec::Cross(w) => write!(f, "cross:{w}"),
            GapSpec::Maxipix => write!(f, "maxipix"),
            GapSpec::Eiger2 => write!(f, "eiger2"),
        }
    }
}

impl GapSpec {
    /// Checks the width against the array size.
    pub fn validate(&self, size: usize) -> Result<()> {
        if let GapSpec::Line(w) | GapSpec::Cross(w) = self {
            if *w > size / 4 {
                return Err(Error::arg(
                    "gap",
                    "gap",
                    format!("width {w} is more than a quarter of the array size {size}"),
                ));
            }
        }
        Ok(())
    }
}

/// A detector layout: frame size and gap intervals `[start, end)` along rows and columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Detector {
    /// Frame rows, columns.
    pub frame: [usize; 2],
    /// Row gaps.
    pub row_gaps: Vec<(usize, usize)>,
    /// Column gaps.
    pub col_gaps: Vec<(usize, usize)>,
}

impl Detector {
    /// MAXIPIX 2x2 (ESRF ID01).
    pub fn maxipix() -> Self {
        Detector {
            frame: [516, 516],
            row_gaps: vec![(255, 261)],
            col_gaps: vec![(255, 261)],
        }
    }

    /// EIGER2 4M: 4 x 2 modules of 512 x 1028, 38 rows / 12 columns between modules.
    pub fn eiger2() -> Self {
        Detector {
            frame: [4 * 512 + 3 * 38, 2 * 1028 + 12],
            row_gaps: (1..4).map(|k| (k * 512 + (k - 1) * 38, k * 550)).collect(),
            col_gaps: vec![(1028, 1040)],
        }
    }

    /// Whether detector pixel (row, col) (signed, may be outside the frame) records nothing.
    pub fn is_gap(&self, row: i64, col: i64) -> bool {
        let inside = |v: i64, n: usize| v >= 0 && v < n as i64;
        if !inside(row, self.frame[0]) || !inside(col, self.frame[1]) {
            return true;
        }
        let hit = |v: i64, gaps: &[(usize, usize)]| {
            gaps.iter().any(|&(a, b)| v >= a as i64 && v < b as i64)
        };
        hit(row, &self.row_gaps) || hit(col, &self.col_gaps)
    }
}

/// A gap mask with its description.
#[derive(Debug, Clone)]
pub struct GapMask {
    /// 1 = gap, shape `[size; dim]`.
    pub mask: ArrayD<u8>,
    /// First row / column (array coordinates) of the row / column band, -1 where absent.
    pub pos: [i32; 2],
    /// Width of the row / column band, 0 where absent.
    pub width: [i32; 2],
}

/// Band start such that the band lies near the centre: centre + U(-size/8, size/8) - w/2.
fn band_near_centre(size: usize, w: usize, rng: &mut impl Rng) -> usize {
    let r = (size / 8) as i64;
    let off = rng.random_range(-r..=r);
    (size as i64 / 2 + off - w as i64 / 2).clamp(0, (size - w) as i64) as usize
}

/// Builds the 2D detector-plane mask (rows, cols) of a layout.
pub fn detector_plane(
    spec: &GapSpec,
    size: usize,
    rng: &mut impl Rng,
) -> Result<(Array2<u8>, [i32; 2], [i32; 2])> {
    spec.validate(size)?;
    let mut m = Array2::<u8>::zeros((size, size));
    let mut pos = [-1i32; 2];
    let mut width = [0i32; 2];
    let row_band = |m: &mut Array2<u8>, start: usize, w: usize| {
        for r in start..(start + w).min(size) {
            m.row_mut(r).fill(1);
        }
    };
    match *spec {
        GapSpec::None => {}
        GapSpec::Line(w) => {
            let start = band_near_centre(size, w, rng);
            // Vertical band; `make_mask` may transpose it in 3D.
            for c in start..start + w {
                m.column_mut(c).fill(1);
            }
            pos[1] = start as i32;
            width[1] = w as i32;
        }
        GapSpec::Cross(w) => {
            let rs = band_near_centre(size, w, rng);
            let cs = band_near_centre(size, w, rng);
            row_band(&mut m, rs, w);
            for c in cs..cs + w {
                m.column_mut(c).fill(1);
            }
            pos = [rs as i32, cs as i32];
            width = [w as i32, w as i32];
        }
        GapSpec::Maxipix | GapSpec::Eiger2 => {
            let det = if *spec == GapSpec::Maxipix {
                Detector::maxipix()
            } else {
                Detector::eiger2()
            };
            let rg = det.row_gaps[rng.random_range(0..det.row_gaps.len())];
            let cg = det.col_gaps[rng.random_range(0..det.col_gaps.len())];
            let q = (size / 4) as i64;
            let peak_r = ((rg.0 + rg.1) / 2) as i64 + rng.random_range(-q..=q);
            let peak_c = ((cg.0 + cg.1) / 2) as i64 + rng.random_range(-q..=q);
            let (or, oc) = (peak_r - size as i64 / 2, peak_c - size as i64 / 2);
            for ((r, c), v) in m.indexed_iter_mut() {
                *v = det.is_gap(or + r as i64, oc + c as i64) as u8;
            }
            pos = [(rg.0 as i64 - or) as i32, (cg.0 as i64 - oc) as i32];
            width = [(rg.1 - rg.0) as i32, (cg.1 - cg.0) as i32];
        }
    }
    Ok((m, pos, width))
}

/// The gap mask of a pattern of `dim` (2 or 3) axes of `size`. In 3D the detector plane is
/// repeated along the rocking axis 0, and a `line` gap is vertical or horizontal at random.
pub fn make_mask(spec: &GapSpec, dim: usize, size: usize, rng: &mut impl Rng) -> Result<GapMask> {
    let (mut plane, mut pos, mut width) = detector_plane(spec, size, rng)?;
    if dim == 3 && matches!(spec, GapSpec::Line(_)) && rng.random_bool(0.5) {
        plane = plane.reversed_axes().as_standard_layout().to_owned();
        pos = [pos[1], pos[0]];
        width = [width[1], width[0]];
    }
    let mask = match dim {
        2 => plane.into_dyn(),
        3 => plane
            .insert_axis(Axis(0))
            .broadcast((size, size, size))
            .ok_or_else(|| Error::shape("make_mask", "broadcast"))?
            .to_owned()
            .into_dyn(),
        _ => {
            return Err(Error::arg(
                "make_mask",
                "dim",
                format!("must be 2 or 3, got {dim}"),
            ))
        }
    };
    Ok(GapMask { mask, pos, width })
}
