//! BCDI pattern simulator (brief section 3): random convex objects with correlated phase and
//! strain fields, diffraction at a chosen oversampling ratio, Poisson noise and detector gaps.
//!
//! Every sample is drawn from its own ChaCha8 stream (`seed`, stream = sample index), so a
//! dataset is identical whatever the number of threads that generate it.

pub mod diffraction;
pub mod gaps;
pub mod noise;
pub mod objects;
pub mod phase;

use crate::{Error, Result};
use ndarray::ArrayD;
use num_complex::Complex32;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

pub use gaps::GapSpec;

/// A closed interval `[min, max]` of a random parameter. Written `"MIN..MAX"` on the command
/// line and in recipes (a single number means `min = max`), or as a TOML array `[min, max]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RangeRepr", into = "String")]
pub struct Range {
    /// Lower bound.
    pub min: f64,
    /// Upper bound (>= `min`).
    pub max: f64,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RangeRepr {
    Text(String),
    Pair([f64; 2]),
    One(f64),
}

impl TryFrom<RangeRepr> for Range {
    type Error = Error;
    fn try_from(r: RangeRepr) -> Result<Self> {
        match r {
            RangeRepr::Text(s) => s.parse(),
            RangeRepr::Pair([a, b]) => Range::new(a, b),
            RangeRepr::One(a) => Range::new(a, a),
        }
    }
}

impl From<Range> for String {
    fn from(r: Range) -> String {
        r.to_string()
    }
}

impl Range {
    /// Builds a range, checking that both ends are finite and `min <= max`.
    pub fn new(min: f64, max: f64) -> Result<Self> {
        if !min.is_finite() || !max.is_finite() || min > max {
            return Err(Error::arg(
                "range",
                "min..max",
                format!("need finite min <= max, got {min}..{max}"),
            ));
        }
        Ok(Range { min, max })
    }

    /// Uniform draw in `[min, max]`.
    pub fn sample(&self, rng: &mut impl Rng) -> f64 {
        if self.max > self.min {
            rng.random_range(self.min..=self.max)
        } else {
            self.min
        }
    }

    /// Log-uniform draw in `[min, max]` (both > 0).
    pub fn sample_log(&self, rng: &mut impl Rng) -> f64 {
        if self.max > self.min {
            (rng.random_range(self.min.ln()..=self.max.ln())).exp()
        } else {
            self.min
        }
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.min, self.max)
    }
}

impl FromStr for Range {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::arg("range", "min..max", format!("cannot parse `{s}`"));
        match s.split_once("..") {
            Some((a, b)) => Range::new(
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            ),
            None => {
                let v: f64 = s.trim().parse().map_err(|_| bad())?;
                Range::new(v, v)
            }
        }
    }
}

/// Parameters of the realism model (brief section 3); defaults follow the brief.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Realism {
    /// Number of random points whose convex hull is the object.
    pub hull_points: Range,
    /// Gaussian smoothing of the modulus, sigma in pixels.
    pub modulus_sigma: Range,
    /// Modulus below `threshold * max` is set to zero after smoothing.
    pub threshold: f64,
    /// Amplitude of the correlated modulus noise, in units of the modulus maximum, applied to
    /// white noise before the Gaussian correlation filter.
    pub modulus_noise: Range,
    /// Correlation length of the modulus noise, as a fraction of the array size.
    pub modulus_noise_corr: Range,
    /// Peak-to-peak range of the correlated random phase field, radians.
    pub phase_range: Range,
    /// Correlation length of the phase field, as a fraction of the object size.
    pub phase_corr: Range,
    /// Probability of adding a linear strain gradient (quadratic phase).
    pub p_gradient: f64,
    /// Maximum phase of the strain gradient over the object, radians.
    pub gradient_phase: Range,
    /// Probability of adding an edge dislocation inside the object.
    pub p_dislocation: f64,
    /// Optional Gaussian blur of the intensity (partial coherence), sigma in pixels.
    pub intensity_blur: Option<Range>,
}

impl Default for Realism {
    fn default() -> Self {
        use std::f64::consts::PI;
        Realism {
            hull_points: Range {
                min: 6.0,
                max: 20.0,
            },
            modulus_sigma: Range {
                min: 0.45,
                max: 0.75,
            },
            threshold: 0.1,
            modulus_noise: Range { min: 0.5, max: 3.0 },
            modulus_noise_corr: Range {
                min: 0.01,
                max: 0.1,
            },
            phase_range: Range {
                min: PI / 3.0,
                max: 3.0 * PI,
            },
            phase_corr: Range {
                min: 0.05,
                max: 0.3,
            },
            p_gradient: 0.3,
            gradient_phase: Range {
                min: 0.5 * PI,
                max: 2.0 * PI,
            },
            p_dislocation: 0.2,
            intensity_blur: None,
        }
    }
}

/// Arrays a dataset can store; `params` (oversampling, photons, gap position and width) are
/// always stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Field {
    /// Noisy intensity with gap voxels set to 0 (f32).
    Intensity,
    /// Noisy intensity without gaps (f32).
    Truth,
    /// Scaled |F|^2 before noise (f32).
    Noiseless,
    /// Gap mask, 1 = gap (u8).
    Mask,
    /// Complex real-space object at array size (complex64).
    Object,
    /// Reciprocal-space phase of F (f32).
    Phase,
}

impl Field {
    /// All fields, in storage order.
    pub const ALL: [Field; 6] = [
        Field::Intensity,
        Field::Truth,
        Field::Noiseless,
        Field::Mask,
        Field::Object,
        Field::Phase,
    ];

    /// The npz key.
    pub fn key(&self) -> &'static str {
        match self {
            Field::Intensity => "intensity",
            Field::Truth => "truth",
            Field::Noiseless => "noiseless",
            Field::Mask => "mask",
            Field::Object => "object",
            Field::Phase => "phase",
        }
    }
}

/// Settings of a simulated dataset: the `bragg simulate` flags, or a recipe TOML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// 2 or 3 dimensions (in 3D axis 0 is the rocking axis).
    pub dim: usize,
    /// Array size along every axis.
    pub size: usize,
    /// Number of patterns.
    pub count: usize,
    /// Base seed; sample `i` uses ChaCha8 stream `i` of this seed.
    pub seed: u64,
    /// Gap layout.
    pub gap: GapSpec,
    /// Maximum photon count of a pattern, drawn log-uniformly.
    pub photons: Range,
    /// Linear oversampling ratio per axis (array size / object extent).
    pub oversampling: Range,
    /// Store float arrays as f16.
    pub half: bool,
    /// Output file (recipes may set it; the command line overrides it).
    pub out: Option<std::path::PathBuf>,
    /// Arrays to store (default: all).
    pub fields: Vec<Field>,
    /// Realism model.
    pub realism: Realism,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            dim: 2,
            size: 128,
            count: 16,
            seed: 0,
            gap: GapSpec::Line(6),
            photons: Range { min: 1e4, max: 1e8 },
            oversampling: Range { min: 2.0, max: 4.0 },
            half: false,
            out: None,
            fields: Field::ALL.to_vec(),
            realism: Realism::default(),
        }
    }
}

impl SimConfig {
    /// Reads a recipe TOML file.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self> {
        let text =
            crate::data::io::read_text_bounded(path, crate::data::io::MAX_RECIPE_BYTES, "recipe")?;
        let cfg: SimConfig =
            toml::from_str(&text).map_err(|e| Error::data(path, format!("recipe: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every setting; errors name the setting.
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "simulate";
        if self.dim != 2 && self.dim != 3 {
            return Err(Error::arg(
                OP,
                "dim",
                format!("must be 2 or 3, got {}", self.dim),
            ));
        }
        if self.size < 8 || self.size > 2048 || !self.size.is_multiple_of(2) {
            return Err(Error::arg(
                OP,
                "size",
                format!("must be even and in 8..=2048, got {}", self.size),
            ));
        }
        if self.dim == 3 && self.size > 512 {
            return Err(Error::arg(OP, "size", "3D arrays are limited to 512^3"));
        }
        let os = self.oversampling;
        if os.min < 2.0 || os.max > self.size as f64 / 4.0 {
            return Err(Error::arg(
                OP,
                "oversampling",
                format!(
                    "must lie in 2..{} (object at least 4 px) got {os}",
                    self.size / 4
                ),
            ));
        }
        let (lo, hi) = extent_bounds(self.size, os);
        if lo > hi {
            return Err(Error::arg(
                OP,
                "oversampling",
                format!(
                    "no integer object size gives a ratio in {os} at size {}",
                    self.size
                ),
            ));
        }
        if self.photons.min < 1.0 {
            return Err(Error::arg(OP, "photons", "must be >= 1"));
        }
        if self.fields.is_empty() {
            return Err(Error::arg(
                OP,
                "fields",
                "at least one array must be stored",
            ));
        }
        self.gap.validate(self.size)?;
        let r = &self.realism;
        for (name, p) in [
            ("p_gradient", r.p_gradient),
            ("p_dislocation", r.p_dislocation),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::arg(OP, "realism", format!("{name} must be in 0..1")));
            }
        }
        if r.hull_points.min < (self.dim + 1) as f64 {
            return Err(Error::arg(OP, "realism", "hull_points must be > dim"));
        }
        if r.modulus_sigma.min < 0.0 || r.modulus_noise.min < 0.0 {
            return Err(Error::arg(
                OP,
                "realism",
                "sigmas and amplitudes must be >= 0",
            ));
        }
        Ok(())
    }

    /// Shape of one pattern.
    pub fn shape(&self) -> Vec<usize> {
        vec![self.size; self.dim]
    }
}

/// Integer object extents whose ratio `size / extent` lies in `os`.
fn extent_bounds(size: usize, os: Range) -> (usize, usize) {
    let lo = (size as f64 / os.max).ceil() as usize;
    let hi = (size as f64 / os.min).floor() as usize;
    (lo.max(2), hi)
}

/// Per-sample parameters stored beside the arrays.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleParams {
    /// Achieved oversampling ratio per axis: size / extent of the object support.
    pub oversampling: Vec<f32>,
    /// Maximum of the noiseless intensity (photon budget).
    pub photons: f64,
    /// First row / column of the gap bands (detector axes), -1 where there is none.
    pub gap_pos: [i32; 2],
    /// Width of the gap bands along rows / columns, 0 where there is none.
    pub gap_width: [i32; 2],
    /// Peak-to-peak range of the (unwrapped) object phase over the crystal, radians: how
    /// strained the crystal is (several pi = "highly strained").
    pub phase_span: f32,
}

/// One simulated pattern.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Noisy intensity, gap voxels 0.
    pub intensity: ArrayD<f32>,
    /// Noisy intensity without gaps.
    pub truth: ArrayD<f32>,
    /// Scaled |F|^2 (max = photons), before noise.
    pub noiseless: ArrayD<f32>,
    /// Gap mask, 1 = gap.
    pub mask: ArrayD<u8>,
    /// Real-space object at array size, centred.
    pub object: ArrayD<Complex32>,
    /// Reciprocal-space phase of F (Bragg peak at the centre).
    pub phase: ArrayD<f32>,
    /// Parameters.
    pub params: SampleParams,
}

/// The random generator of sample `index`: ChaCha8 seeded by `seed`, stream `index`.
pub fn sample_rng(seed: u64, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index);
    rng
}

/// Simulates sample `index` of the dataset described by `cfg`.
pub fn simulate_sample(cfg: &SimConfig, index: u64) -> Result<Sample> {
    cfg.validate()?;
    let mut rng = sample_rng(cfg.seed, index);
    let n = cfg.size;
    let dim = cfg.dim;
    let r = &cfg.realism;

    // 1. Object extent per axis from the oversampling range.
    let (lo, hi) = extent_bounds(n, cfg.oversampling);
    let extents: Vec<usize> = (0..dim)
        .map(|_| {
            let target = cfg.oversampling.sample(&mut rng);
            ((n as f64 / target).round() as usize).clamp(lo, hi)
        })
        .collect();

    // 2. Convex support, 3. phase, 4. modulus realism.
    let npts = r.hull_points.sample(&mut rng).round() as usize;
    let support = objects::random_convex_support(&extents, npts, &mut rng)?;
    let phase_field = phase::random_phase(&extents, r, &mut rng);
    let modulus = phase::realistic_modulus(&support, n, r, &mut rng);
    let phase_span = {
        let (lo, hi) = ndarray::Zip::from(&modulus).and(&phase_field).fold(
            (f32::INFINITY, f32::NEG_INFINITY),
            |(lo, hi), &m, &p| {
                if m > 0.0 {
                    (lo.min(p), hi.max(p))
                } else {
                    (lo, hi)
                }
            },
        );
        if hi >= lo {
            hi - lo
        } else {
            0.0
        }
    };
    let object_box = ndarray::Zip::from(&modulus)
        .and(&phase_field)
        .map_collect(|&m, &p| Complex32::from_polar(m, p));
    let object = diffraction::embed_centred(&object_box, n);

    // 5. Diffraction.
    let f = diffraction::diffract(&object);
    let mut intensity = f.mapv(|c| c.norm_sqr());
    if let Some(blur) = r.intensity_blur {
        let s = blur.sample(&mut rng);
        intensity = phase::gaussian_filter(&intensity, s);
    }
    let phase = f.mapv(|c| c.arg());
    let photons = cfg.photons.sample_log(&mut rng);
    let noiseless = noise::scale_to_max(&intensity, photons as f32);
    let truth = noise::poisson(&noiseless, &mut rng);

    // 6. Gaps.
    let gap = gaps::make_mask(&cfg.gap, dim, n, &mut rng)?;
    let intensity = ndarray::Zip::from(&truth)
        .and(&gap.mask)
        .map_collect(|&t, &m| if m != 0 { 0.0 } else { t });

    let oversampling = diffraction::support_extent(&object)
        .iter()
        .map(|&e| n as f32 / e.max(1) as f32)
        .collect();
    Ok(Sample {
        intensity,
        truth,
        noiseless,
        mask: gap.mask,
        object,
        phase,
        params: SampleParams {
            oversampling,
            photons,
            gap_pos: gap.pos,
            gap_width: gap.width,
            phase_span,
        },
    })
}

/// Simulates samples `start..start + count` in parallel (rayon, order preserved).
/// `progress` is called once per finished sample, from any thread.
pub fn simulate_range(
    cfg: &SimConfig,
    start: u64,
    count: usize,
    progress: &(dyn Fn() + Sync),
) -> Result<Vec<Sample>> {
    cfg.validate()?;
    (0..count as u64)
        .into_par_iter()
        .map(|i| {
            let s = simulate_sample(cfg, start + i);
            progress();
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipes_in_datasets_parse_and_validate() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().and_then(|x| x.to_str()) == Some("toml") {
                let c = SimConfig::from_toml_file(&p).unwrap();
                assert!(c.out.is_some() && c.count > 0, "{}", p.display());
                n += 1;
            }
        }
        assert_eq!(n, 4);
    }

    #[test]
    fn ranges_and_gaps_parse() {
        assert_eq!(
            "2..4".parse::<Range>().unwrap(),
            Range { min: 2.0, max: 4.0 }
        );
        assert!("4..2".parse::<Range>().is_err());
        assert_eq!("cross:9".parse::<GapSpec>().unwrap(), GapSpec::Cross(9));
        assert!("line:x".parse::<GapSpec>().is_err());
        let c: SimConfig = toml::from_str("photons = [1e3, 1e5]\ngap = \"eiger2\"").unwrap();
        assert_eq!(c.photons.max, 1e5);
        assert!(toml::from_str::<SimConfig>("bogus = 1").is_err());
        let bad = SimConfig {
            oversampling: Range { min: 1.0, max: 3.0 },
            ..SimConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
