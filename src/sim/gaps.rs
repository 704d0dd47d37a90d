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
    /// EIGER (1) 4M frame.
    Eiger,
    /// The EIGER2 M 2M of ESRF ID01 as stored: 4-px chip seams and 41-row module gaps.
    Eiger2Id01,
}

impl FromStr for GapSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::arg(
                "gap",
                "gap",
                format!(
                    "`{s}`: expected none, line:W, cross:W, maxipix, eiger, eiger2 or eiger2-id01"
                ),
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
            "eiger" => Ok(GapSpec::Eiger),
            "eiger2-id01" => Ok(GapSpec::Eiger2Id01),
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
            GapSpec::Eiger => write!(f, "eiger"),
            GapSpec::Eiger2Id01 => write!(f, "eiger2-id01"),
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

    /// EIGER (1) 4M: 4 x 2 modules of 514 x 1030, 37 rows / 10 columns between modules.
    pub fn eiger() -> Self {
        Detector {
            frame: [4 * 514 + 3 * 37, 2 * 1030 + 10],
            row_gaps: (1..4).map(|k| (k * 514 + (k - 1) * 37, k * 551)).collect(),
            col_gaps: vec![(1030, 1040)],
        }
    }

    /// The EIGER2 M 2M of ESRF ID01 as its frames are stored (2164 x 1030): 4-px seams between
    /// chips at columns 255, 513 and 771, and 41-row gaps between modules at rows 511, 1061
    /// and 1611.
    pub fn eiger2_id01() -> Self {
        Detector {
            frame: [2164, 1030],
            row_gaps: vec![(511, 552), (1061, 1102), (1611, 1652)],
            col_gaps: vec![(255, 259), (513, 517), (771, 775)],
        }
    }

    /// The detector of a frame layout (`None` for the synthetic line / cross gaps).
    pub fn of(spec: &GapSpec) -> Option<Self> {
        match spec {
            GapSpec::Maxipix => Some(Detector::maxipix()),
            GapSpec::Eiger2 => Some(Detector::eiger2()),
            GapSpec::Eiger => Some(Detector::eiger()),
            GapSpec::Eiger2Id01 => Some(Detector::eiger2_id01()),
            GapSpec::None | GapSpec::Line(_) | GapSpec::Cross(_) => None,
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
        GapSpec::Maxipix | GapSpec::Eiger2 | GapSpec::Eiger | GapSpec::Eiger2Id01 => {
            let det = Detector::of(spec).ok_or_else(|| Error::arg("gap", "gap", "no detector"))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn every_layout_parses_and_prints_back() {
        for s in [
            "none",
            "line:6",
            "cross:3",
            "maxipix",
            "eiger",
            "eiger2",
            "eiger2-id01",
        ] {
            let g: GapSpec = s.parse().unwrap();
            assert_eq!(g.to_string(), s);
        }
        assert!("eiger3".parse::<GapSpec>().is_err());
        assert!("line:0".parse::<GapSpec>().is_err());
    }

    #[test]
    fn detector_frames_match_the_published_layouts() {
        let e = Detector::eiger();
        assert_eq!(e.frame, [2167, 2070]);
        assert!(e.row_gaps.iter().all(|(a, b)| b - a == 37));
        assert!(e.col_gaps.iter().all(|(a, b)| b - a == 10));
        let e2 = Detector::eiger2();
        assert_eq!(e2.frame, [2162, 2068]);
        assert!(e2.row_gaps.iter().all(|(a, b)| b - a == 38));
        let id01 = Detector::eiger2_id01();
        assert!(id01.is_gap(530, 10) && id01.is_gap(10, 257) && !id01.is_gap(10, 260));
        assert!(id01.col_gaps.iter().all(|(a, b)| b - a == 4));
        assert!(id01.row_gaps.iter().all(|(a, b)| b - a == 41));
    }

    #[test]
    fn id01_masks_show_seams_and_module_gaps() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for _ in 0..20 {
            let (m, pos, width) = detector_plane(&GapSpec::Eiger2Id01, 64, &mut rng).unwrap();
            assert_eq!(width, [41, 4]);
            // Full masked rows and columns are exactly the bands that fall inside the array.
            let full_rows = (0..64)
                .filter(|&r| m.row(r).iter().all(|&v| v == 1))
                .count();
            let full_cols = (0..64)
                .filter(|&c| m.column(c).iter().all(|&v| v == 1))
                .count();
            let inside = |p: i32, w: i32| ((p + w).min(64) - p.max(0)).max(0) as usize;
            assert_eq!(full_rows, inside(pos[0], 41));
            assert_eq!(full_cols, inside(pos[1], 4));
        }
    }
}
