//! Iterative phase retrieval for BCDI, 2D and 3D, following the PyNX conventions.
//!
//! # Layout
//! The measured intensity has the Bragg peak at the array centre (numpy `fftshift` layout, as
//! the simulator writes it). [`Problem::from_centred`] applies `ifftshift` **once**, so every
//! cycle works in FFT layout (zero frequency at index 0) with no shift per iteration. The
//! object then lives around index 0 (wrapping around the edges); the results are centred in the
//! array by post-processing ([`post::normalise`]). Reciprocal-space phases given as a start use
//! the same centred layout as the intensity.
//!
//! # Cycle
//! One cycle is `psi = FFT(rho)` (unscaled), the Fourier-magnitude projection (which also
//! applies the 1/N of the inverse), `psi = IFFT(psi)` (unscaled), and the real-space update
//! ([`kernels`]). The FFT plans and all work arrays are allocated once per [`Phaser`].
//!
//! # Likelihood
//! `llk = 2/n * sum(calc - obs + obs ln(obs/calc))` over the observed pixels (~1 for a perfect
//! model of Poisson data, ~0 for noiseless data); `free_llk` is the same over ~5% of the pixels,
//! withheld in small islands and left free by the projection.
//!
//! # Devices
//! [`Phaser::on_device`] / [`phase_on`] run the cycles on an OpenCL device ([`opencl`]): the
//! data, iterate, support and work waves live in device buffers and a cycle makes no host
//! transfer; the starting object and the autocorrelation support are computed on the host as on
//! the CPU, shrink-wrap downloads `|rho|` every period and uploads the new support, and the object
//! comes back when the run ends. On the CPU device the code path is the native one.

pub mod chain;
pub mod combine;
pub mod kernels;
pub mod opencl;
pub mod post;
pub mod psf;
mod spread;
pub mod strain;
pub mod support;

pub use chain::{Chain, Op};
pub use combine::{combine, Combined};
pub use kernels::{Algorithm, LlkSums};
pub use post::{align, Aligned, Comparison};
pub use psf::PsfOptions;
pub use support::{ShrinkWrap, ThresholdMethod};

use crate::fft::{ifftshift, Direction, FftPlan};
use crate::{Device, Error, Result};
use ndarray::{ArrayD, IxDyn};
use num_complex::Complex32;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Share of the (gap-filled) intensity a masked region must hold for the initial support to
/// come from the autocorrelation of the gap-filled copy rather than of the zero-filled data.
pub const SUPPORT_HINT_SHARE: f64 = 0.005;

/// A phase-retrieval problem: observed intensity and mask, stored in FFT layout.
#[derive(Debug, Clone)]
pub struct Problem {
    shape: Vec<usize>,
    iobs: Vec<f32>,
    mask: Vec<u8>,
    /// A gap-filled copy of `iobs` (FFT layout) that the initial (autocorrelation) support is
    /// computed from when pixels are masked: a missing plane otherwise prints a stripe into
    /// the autocorrelation and the support.
    support_hint: Option<Vec<f32>>,
}

impl Problem {
    /// Builds a problem from an intensity with the Bragg peak at the array centre and an
    /// optional mask of the same shape (non-zero = masked/gap pixel, left free). Negative
    /// intensities are set to 0; non-finite ones are an error.
    pub fn from_centred(intensity: &ArrayD<f32>, mask: Option<&ArrayD<u8>>) -> Result<Self> {
        let shape = intensity.shape().to_vec();
        if !(2..=3).contains(&shape.len()) || shape.iter().any(|&n| n < 2) {
            return Err(Error::shape(
                "phasing",
                format!("intensity must be 2D or 3D with every axis >= 2, got {shape:?}"),
            ));
        }
        if let Some(bad) = intensity.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                op: "phasing",
                detail: format!("intensity has a non-finite value at flat index {bad}"),
            });
        }
        if let Some(m) = mask {
            if m.shape() != shape.as_slice() {
                return Err(Error::shape(
                    "phasing",
                    format!("mask {:?} vs intensity {:?}", m.shape(), shape),
                ));
            }
        }
        let support_hint = match mask {
            Some(m) if m.iter().any(|&v| v != 0) => {
                let mf = m.mapv(|v| f32::from(v != 0));
                let filled = crate::inpaint::gap3d::log_linear_fill(intensity, &mf);
                // Only a gap that holds a noticeable share of the signal (near the Bragg peak)
                // distorts the autocorrelation; elsewhere the measured data are left to speak.
                let (mut gap, mut all) = (0.0f64, 0.0f64);
                ndarray::Zip::from(&filled).and(&mf).for_each(|&v, &g| {
                    let v = v.max(0.0) as f64;
                    all += v;
                    if g != 0.0 {
                        gap += v;
                    }
                });
                (gap > SUPPORT_HINT_SHARE * all)
                    .then(|| ifftshift(&filled).iter().map(|v| v.max(0.0)).collect())
            }
            _ => None,
        };
        let iobs: Vec<f32> = ifftshift(intensity).iter().map(|v| v.max(0.0)).collect();
        let mask: Vec<u8> = match mask {
            Some(m) => ifftshift(m)
                .iter()
                .map(|&v| {
                    if v != 0 {
                        kernels::MASKED
                    } else {
                        kernels::OBSERVED
                    }
                })
                .collect(),
            None => vec![kernels::OBSERVED; iobs.len()],
        };
        if iobs
            .iter()
            .zip(&mask)
            .all(|(&i, &m)| i <= 0.0 || m != kernels::OBSERVED)
        {
            return Err(Error::arg(
                "phasing",
                "intensity",
                "no positive observed intensity",
            ));
        }
        Ok(Problem {
            shape,
            iobs,
            mask,
            support_hint,
        })
    }

    /// Replaces the gap-filled copy that the initial support is computed from (centred layout,
    /// same shape; e.g. a network's fill). By default a masked problem uses the log-linear fill.
    pub fn with_support_hint(mut self, filled: &ArrayD<f32>) -> Result<Self> {
        if filled.shape() != self.shape.as_slice() {
            return Err(Error::shape(
                "phasing",
                format!(
                    "support hint {:?} vs intensity {:?}",
                    filled.shape(),
                    self.shape
                ),
            ));
        }
        if filled.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                op: "phasing",
                detail: "the gap-filled support hint has non-finite values".into(),
            });
        }
        self.support_hint = Some(ifftshift(filled).iter().map(|v| v.max(0.0)).collect());
        Ok(self)
    }

    /// The array shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Observed intensity, flat, FFT layout.
    pub fn iobs(&self) -> &[f32] {
        &self.iobs
    }

    /// Mask ([`kernels::OBSERVED`] or [`kernels::MASKED`]), flat, FFT layout.
    pub fn mask(&self) -> &[u8] {
        &self.mask
    }
}

/// Options of a phasing job.
#[derive(Debug, Clone)]
pub struct Options {
    /// The algorithm chain.
    pub chain: Chain,
    /// HIO / RAAR relaxation (0.9).
    pub beta: f32,
    /// Shrink-wrap parameters (including the automatic period).
    pub shrink_wrap: ShrinkWrap,
    /// Threshold of the initial autocorrelation support, relative to its max; 0 chooses
    /// automatically (see [`Options::autocorrelation_threshold_for`]).
    pub autocorrelation_threshold: f32,

    /// Poisson confidence interval of the projection, in units of the amplitude's standard
    /// deviation (0: exact projection).
    pub confidence: f32,
    /// Fraction of the observed pixels withheld for the free LLK (0 disables it).
    pub free_fraction: f32,
    /// Half-width (px) of the withheld islands.
    pub free_island_radius: usize,
    /// Number of runs from random starts.
    pub runs: usize,
    /// Number of runs kept (best free LLK first).
    pub keep: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Initial support of a [`Start::Predicted`] run: the object of the predicted part of the
    /// wave, blurred (1 px) and thresholded at this fraction of its maximum; 0 keeps the
    /// autocorrelation support.
    pub predicted_support: f32,
    /// With a [`Start::Predicted`] start, every other run (the odd-numbered ones) starts from
    /// random phases instead: a hedge against a wrong prediction, the free LLK choosing
    /// between the two kinds of runs (on by default; run 0 always uses the prediction).
    pub hedge_predicted: bool,
    /// Share (0..1) of the cycles at the start of each run during which masked voxels are
    /// constrained to the gap-filled copy of the data (the support hint: a log-linear fill, or
    /// the fill given with [`Problem::with_support_hint`]) instead of being free; 0 leaves them
    /// free throughout. Only used when the problem has a hint (a gap holding signal) and on
    /// the CPU.
    pub gap_prior: f32,
    /// Confidence interval of the masked voxels, as factors `[low, high]` of the gap-filled
    /// copy of the data (the support hint): in every cycle the calculated intensity of a masked
    /// voxel is kept inside `[low, high] x filled` (its amplitude clamped, its phase kept)
    /// instead of being free, so the gap cannot drift to zero or swallow the peak while the
    /// fill's errors stay correctable. `None` leaves masked voxels free. Only used when the
    /// problem has a hint (a gap holding signal); with it the cycles run on the CPU.
    pub gap_interval: Option<[f32; 2]>,
    /// Partial coherence: estimate a point-spread function of the intensity during the run
    /// (see [`psf`]); `None` assumes a fully coherent beam. Runs on the CPU; the projection
    /// is then exact ([`Options::confidence`] is not applied while the PSF is on).
    pub psf: Option<PsfOptions>,
}

impl Options {
    /// The autocorrelation threshold used for data of `rank` dimensions (resolves 0, the
    /// automatic choice: [`AUTOCORRELATION_THRESHOLD_HIO_3D`] for 3-D data phased with a
    /// chain that has HIO cycles, else [`AUTOCORRELATION_THRESHOLD`]).
    pub fn autocorrelation_threshold_for(&self, rank: usize) -> f32 {
        let has_hio = self.chain.ops.iter().any(|op| {
            matches!(
                op,
                Op::Cycles {
                    algorithm: Algorithm::Hio,
                    ..
                }
            )
        });
        match self.autocorrelation_threshold {
            t if t > 0.0 => t,
            _ if rank == 3 && has_hio => AUTOCORRELATION_THRESHOLD_HIO_3D,
            _ => AUTOCORRELATION_THRESHOLD,
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            chain: Chain::parse(DEFAULT_CHAIN).expect("valid chain"),
            beta: 0.9,
            shrink_wrap: ShrinkWrap::default(),
            autocorrelation_threshold: 0.0,
            confidence: 0.0,
            free_fraction: 0.05,
            free_island_radius: 1,
            runs: 1,
            keep: 1,
            seed: 0,
            predicted_support: PREDICTED_SUPPORT_THRESHOLD,
            hedge_predicted: true,
            gap_prior: 0.0,
            gap_interval: None,
            psf: None,
        }
    }
}

/// Default algorithm chain: RAAR, then HIO, then ER, one of the chains used at BCDI beamlines.
/// On 20 simulated 64^3 crystals at 1e8 photons (3 random starts each; REPORT.md section 8.8)
/// it recovered the crystal from 49/60 starts without a gap and 43/60 with a 6-px gap next to
/// the peak, against 21/60 and 10/60 for `RAAR**600,ER**200` with the autocorrelation
/// threshold 0.1.
pub const DEFAULT_CHAIN: &str = "RAAR**500,HIO**300,ER**200";

/// Threshold of the initial autocorrelation support (relative to its maximum) chosen when
/// [`Options::autocorrelation_threshold`] is 0 (automatic) for 3-D data and a chain with HIO
/// cycles: with [`DEFAULT_CHAIN`] it recovered 49/60 starts without a gap and 43/60 with one,
/// against 44/60 and 37/60 at 0.1 (REPORT.md section 8.8).
pub const AUTOCORRELATION_THRESHOLD_HIO_3D: f32 = 0.2;

/// The automatic threshold otherwise: with RAAR-only chains 0.2 was not better (8/20 vs 8/20
/// starts without a gap, `RAAR**300,ER**100`), and a blurred 2-D pattern failed with it.
pub const AUTOCORRELATION_THRESHOLD: f32 = 0.1;

/// Default of [`Options::predicted_support`].
pub const PREDICTED_SUPPORT_THRESHOLD: f32 = 0.1;

/// Where a run starts.
#[derive(Debug, Clone)]
pub enum Start {
    /// Observed amplitudes with uniformly random phases (PyNX default).
    Random,
    /// Observed amplitudes with this reciprocal-space phase (same centred layout and shape as the
    /// intensity), e.g. predicted by a network. The resulting object is rolled onto the initial
    /// support, so the phase's real-space origin convention does not matter.
    ReciprocalPhase(ArrayD<f32>),
    /// A real-space object (any position; rolled onto the initial support).
    Object(ArrayD<Complex32>),
    /// A reciprocal-space phase predicted on part of the array (a phasing network's central
    /// grid, see [`crate::phasenet`]): observed amplitudes with that phase where `known` is
    /// non-zero and random phases (drawn per run) elsewhere. With
    /// [`Options::predicted_support`] > 0 the initial support is the thresholded modulus of the
    /// object the known part alone gives, instead of the autocorrelation support.
    Predicted {
        /// Phase, same centred layout and shape as the intensity.
        phase: ArrayD<f32>,
        /// 1 where `phase` holds a prediction.
        known: ArrayD<u8>,
    },
}

/// One finished run.
#[derive(Debug, Clone)]
pub struct Run {
    /// Index of the run (0-based) among all runs.
    pub index: usize,
    /// The object (centred, ramp and offset removed once post-processed).
    pub object: ArrayD<Complex32>,
    /// The final support (1 inside).
    pub support: ArrayD<u8>,
    /// Normalised Poisson LLK of the observed pixels.
    pub llk: f64,
    /// Normalised Poisson LLK of the free pixels (NaN without free pixels).
    pub free_llk: f64,
    /// Size of the final support (pixels).
    pub support_size: usize,
    /// The estimated point-spread function (centred, sum 1) when [`Options::psf`] is set.
    pub psf: Option<ArrayD<f32>>,
}

impl Run {
    fn score(&self) -> f64 {
        if self.free_llk.is_finite() {
            self.free_llk
        } else {
            self.llk
        }
    }
}

fn derive_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The state of phase retrieval on one problem: FFT plan, data in FFT layout (with the free
/// pixels marked), the iterate, the work wave, the support and the shrink-wrap buffers, all
/// allocated once.
#[derive(Debug)]
pub struct Phaser {
    shape: Vec<usize>,
    plan: FftPlan,
    iobs: Vec<f32>,
    mask: Vec<u8>,
    rho: Vec<Complex32>,
    psi: Vec<Complex32>,
    support: Vec<u8>,
    initial_support: Vec<u8>,
    sw: support::ShrinkWrapBuffers,
    options: Options,
    device: Option<Box<opencl::DevicePhaser>>,
    /// Data and mask with the masked voxels replaced by the gap-filled copy (see
    /// [`Options::gap_prior`]).
    prior: Option<(Vec<f32>, Vec<u8>)>,
    /// Amplitude bounds of the masked voxels (see [`Options::gap_interval`]); empty without.
    gap_bounds: Vec<kernels::AmplitudeBound>,
    /// The partial-coherence model (see [`Options::psf`]).
    psf: Option<psf::Psf>,
    /// Whether the PSF is used by the current cycles, and the cycles since it was switched on.
    psf_on: bool,
    psf_cycles: usize,
}

impl Phaser {
    /// Prepares `problem` for `options`: plans the FFT, withholds the free pixels and computes
    /// the autocorrelation support.
    pub fn new(problem: &Problem, options: &Options) -> Result<Self> {
        if !(0.0..=1.0).contains(&options.beta) {
            return Err(Error::arg(
                "phasing",
                "beta",
                format!("{} not in [0, 1]", options.beta),
            ));
        }
        if !(0.0..0.5).contains(&options.free_fraction) {
            return Err(Error::arg(
                "phasing",
                "free_fraction",
                format!("{} not in [0, 0.5)", options.free_fraction),
            ));
        }
        let sw = &options.shrink_wrap;
        if !(sw.threshold > 0.0 && sw.threshold.is_finite()) {
            return Err(Error::arg(
                "phasing",
                "support threshold",
                format!("{} <= 0", sw.threshold),
            ));
        }
        if !(0.0..1.0).contains(&options.autocorrelation_threshold) {
            return Err(Error::arg(
                "phasing",
                "autocorrelation threshold",
                format!(
                    "{} not in [0, 1) (0: automatic)",
                    options.autocorrelation_threshold
                ),
            ));
        }
        let ac_threshold = options.autocorrelation_threshold_for(problem.shape.len());
        if !(0.0..=1.0).contains(&options.gap_prior) {
            return Err(Error::arg(
                "phasing",
                "gap prior",
                format!("{} not in [0, 1]", options.gap_prior),
            ));
        }
        if let Some([lo, hi]) = options.gap_interval {
            if !(lo >= 0.0 && hi >= lo && hi.is_finite()) {
                return Err(Error::arg(
                    "phasing",
                    "gap interval",
                    format!("[{lo}, {hi}] is not 0 <= low <= high < inf"),
                ));
            }
        }
        if !(0.0..1.0).contains(&options.predicted_support) {
            return Err(Error::arg(
                "phasing",
                "predicted support threshold",
                format!("{} not in [0, 1)", options.predicted_support),
            ));
        }
        if let Some(p) = &options.psf {
            p.validate()?;
        }
        let shape = problem.shape.clone();
        let n = problem.iobs.len();
        let plan = FftPlan::new(&shape);
        let psf = match &options.psf {
            Some(p) => Some(psf::Psf::gaussian(&shape, p.fwhm, &plan)?),
            None => None,
        };
        let mut mask = problem.mask.clone();
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(options.seed, u64::MAX));
        support::add_free_pixels(
            &mut mask,
            &shape,
            options.free_fraction,
            options.free_island_radius,
            &mut rng,
        );
        let measured =
            support::autocorrelation_support(&problem.iobs, &problem.mask, &plan, ac_threshold);
        // With masked pixels, the autocorrelation of the zero-filled data is smeared along the
        // gap normal (a missing plane); keep only what the gap-filled copy's autocorrelation
        // supports too (the hint alone when the two do not overlap).
        let initial_support = match &problem.support_hint {
            Some(filled) => {
                let hinted = support::autocorrelation_support(
                    filled,
                    &vec![kernels::OBSERVED; filled.len()],
                    &plan,
                    ac_threshold,
                );
                let both: Vec<u8> = hinted
                    .iter()
                    .zip(&measured)
                    .map(|(&a, &b)| u8::from(a != 0 && b != 0))
                    .collect();
                if both.iter().any(|&v| v != 0) {
                    both
                } else {
                    hinted
                }
            }
            None => measured,
        };
        let prior = match &problem.support_hint {
            Some(filled) if options.gap_prior > 0.0 => {
                let mut iobs = problem.iobs.clone();
                let mut pmask = mask.clone();
                for ((i, m), &f) in iobs.iter_mut().zip(pmask.iter_mut()).zip(filled) {
                    if *m == kernels::MASKED {
                        *i = f;
                        *m = kernels::OBSERVED;
                    }
                }
                Some((iobs, pmask))
            }
            _ => None,
        };
        let gap_bounds = match (&problem.support_hint, options.gap_interval) {
            (Some(filled), Some([lo, hi])) => mask
                .iter()
                .zip(filled)
                .enumerate()
                .filter(|(_, (&m, _))| m == kernels::MASKED)
                .map(|(i, (_, &f))| kernels::AmplitudeBound {
                    index: i,
                    low: (lo * f.max(0.0)).sqrt(),
                    high: (hi * f.max(0.0)).sqrt(),
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(Phaser {
            prior,
            gap_bounds,
            psf,
            psf_on: false,
            psf_cycles: 0,
            shape,
            plan,
            iobs: problem.iobs.clone(),
            mask,
            rho: vec![Complex32::default(); n],
            psi: vec![Complex32::default(); n],
            support: initial_support.clone(),
            initial_support,
            sw: support::ShrinkWrapBuffers::new(n),
            options: options.clone(),
            device: None,
        })
    }

    /// Like [`Phaser::new`], running the cycles on `device`: the native code on the CPU, the
    /// [`opencl`] kernels on an OpenCL device (shapes must then have no prime factor above 7).
    /// With a PSF ([`Options::psf`]) the cycles run on the CPU whatever the device.
    pub fn on_device(problem: &Problem, options: &Options, device: &Device) -> Result<Self> {
        let mut p = Phaser::new(problem, options)?;
        if p.psf.is_some() || !p.gap_bounds.is_empty() {
            return Ok(p);
        }
        if let Some(be) = device.opencl_backend() {
            p.device = Some(Box::new(opencl::DevicePhaser::new(
                be,
                &p.shape,
                &p.iobs,
                &p.mask,
                &p.support,
                options.confidence,
                options.beta,
            )?));
        }
        Ok(p)
    }

    /// The OpenCL device the cycles run on (`None`: the CPU).
    pub fn device_name(&self) -> Option<&str> {
        self.device.as_ref().map(|d| d.device_name())
    }

    /// Brings the iterate back from the device (a no-op on the CPU), so that
    /// [`Phaser::object`] is current. [`Phaser::run`] does it at the end of each run.
    pub fn sync(&mut self) -> Result<()> {
        if let Some(d) = &self.device {
            d.object(&mut self.rho)?;
        }
        Ok(())
    }

    /// The array shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The mask in FFT layout, with the free pixels marked [`kernels::FREE`].
    pub fn mask(&self) -> &[u8] {
        &self.mask
    }

    /// The current iterate (FFT-layout real space: the object around index 0). On an OpenCL
    /// device, as of the last [`Phaser::sync`] (or the end of the last run).
    pub fn object(&self) -> &[Complex32] {
        &self.rho
    }

    /// The current support.
    pub fn support(&self) -> &[u8] {
        &self.support
    }

    /// Initialises the iterate from `start` (the randomness from `seed`) and resets the support
    /// to the autocorrelation support.
    pub fn initialise(&mut self, start: &Start, seed: u64) -> Result<()> {
        kernels_copy_u8(&self.initial_support, &mut self.support);
        match start {
            Start::Random | Start::ReciprocalPhase(_) => {
                let phase: Option<Vec<f32>> = match start {
                    Start::ReciprocalPhase(p) => {
                        if p.shape() != self.shape.as_slice() {
                            return Err(Error::shape(
                                "phasing start",
                                format!("phase {:?} vs intensity {:?}", p.shape(), self.shape),
                            ));
                        }
                        Some(ifftshift(p).iter().copied().collect())
                    }
                    _ => None,
                };
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                for (i, p) in self.psi.iter_mut().enumerate() {
                    let ph = match &phase {
                        Some(ph) => ph[i],
                        None => rng.random_range(0.0..std::f32::consts::TAU),
                    };
                    let a = if self.mask[i] == kernels::OBSERVED {
                        self.iobs[i].sqrt()
                    } else {
                        0.0
                    };
                    *p = Complex32::from_polar(a, ph);
                }
                self.plan.process(&mut self.psi, Direction::Inverse);
                if phase.is_some() {
                    self.roll_psi_to_origin();
                }
            }
            Start::Predicted { phase, known } => self.start_predicted(phase, known, seed)?,
            Start::Object(o) => {
                if o.shape() != self.shape.as_slice() {
                    return Err(Error::shape(
                        "phasing start",
                        format!("object {:?} vs intensity {:?}", o.shape(), self.shape),
                    ));
                }
                for (d, s) in self.psi.iter_mut().zip(o.iter()) {
                    *d = *s;
                }
                self.roll_psi_to_origin();
            }
        }
        if self
            .psi
            .iter()
            .any(|v| !v.re.is_finite() || !v.im.is_finite())
        {
            return Err(Error::NonFinite {
                op: "phasing start",
                detail: "the starting object has non-finite values".into(),
            });
        }
        let (rho, psi, sup) = (&mut self.rho, &self.psi, &self.support);
        rho.par_iter_mut()
            .zip(psi.par_iter())
            .zip(sup.par_iter())
            .for_each(|((r, &p), &s)| *r = if s != 0 { p } else { Complex32::default() });
        if let Some(d) = &mut self.device {
            d.set_object(&self.rho)?;
            d.set_support(&self.support)?;
        }
        Ok(())
    }

    /// Initialises `psi` (and, when asked, the support) from a partly predicted phase.
    fn start_predicted(
        &mut self,
        phase: &ArrayD<f32>,
        known: &ArrayD<u8>,
        seed: u64,
    ) -> Result<()> {
        if phase.shape() != self.shape.as_slice() || known.shape() != self.shape.as_slice() {
            return Err(Error::shape(
                "phasing start",
                format!(
                    "predicted phase {:?} / known {:?} vs intensity {:?}",
                    phase.shape(),
                    known.shape(),
                    self.shape
                ),
            ));
        }
        let ph: Vec<f32> = ifftshift(phase).iter().copied().collect();
        let kn: Vec<u8> = ifftshift(known).iter().copied().collect();
        let amp = |i: usize| {
            if self.mask[i] == kernels::OBSERVED {
                self.iobs[i].sqrt()
            } else {
                0.0
            }
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut lowpass = vec![Complex32::default(); self.psi.len()];
        for (i, (p, l)) in self.psi.iter_mut().zip(lowpass.iter_mut()).enumerate() {
            let random: f32 = rng.random_range(0.0..std::f32::consts::TAU);
            if kn[i] != 0 {
                *p = Complex32::from_polar(amp(i), ph[i]);
                *l = *p;
            } else {
                *p = Complex32::from_polar(amp(i), random);
            }
        }
        self.plan.process(&mut self.psi, Direction::Inverse);
        self.plan.process(&mut lowpass, Direction::Inverse);
        let shift: Vec<i64> = post::centring_shift(&lowpass, &self.shape)
            .iter()
            .zip(&self.shape)
            .map(|(&s, &n)| s - (n / 2) as i64)
            .collect();
        self.psi = post::roll(&self.psi, &self.shape, &shift);
        if self.options.predicted_support > 0.0 {
            let lowpass = post::roll(&lowpass, &self.shape, &shift);
            let support = support::support_from_object(
                &lowpass,
                &self.shape,
                1.0,
                self.options.predicted_support,
            );
            if support.iter().any(|&v| v != 0) {
                self.support = support;
            }
        }
        Ok(())
    }

    fn roll_psi_to_origin(&mut self) {
        let shift: Vec<i64> = post::centring_shift(&self.psi, &self.shape)
            .iter()
            .zip(&self.shape)
            .map(|(&s, &n)| s - (n / 2) as i64)
            .collect();
        self.psi = post::roll(&self.psi, &self.shape, &shift);
    }

    /// One cycle: FFT, Fourier-magnitude projection, inverse FFT, real-space update. On an
    /// OpenCL device the cycle is only enqueued; errors are the device's.
    pub fn cycle(&mut self, algorithm: Algorithm) -> Result<()> {
        if let Some(d) = &self.device {
            return d.cycle(algorithm);
        }
        let n = self.rho.len();
        kernels::copy(&self.rho, &mut self.psi);
        self.plan
            .process_unscaled(&mut self.psi, Direction::Forward);
        match (&mut self.psf, self.psf_on) {
            (Some(psf), true) => {
                psf.convolve(&self.psi, &self.plan);
                let (period, steps) = self
                    .options
                    .psf
                    .as_ref()
                    .map_or((0, 0), |p| (p.period, p.steps));
                self.psf_cycles += 1;
                if period > 0 && self.psf_cycles.is_multiple_of(period) {
                    psf.update(&self.iobs, &self.mask, &self.plan, steps);
                }
                psf.project(&mut self.psi, &self.iobs, &self.mask, 1.0 / n as f32);
            }
            _ => kernels::fourier_projection(
                &mut self.psi,
                &self.iobs,
                &self.mask,
                1.0 / n as f32,
                self.options.confidence,
            ),
        }
        kernels::clamp_amplitudes(&mut self.psi, &self.gap_bounds, 1.0 / n as f32);
        self.plan
            .process_unscaled(&mut self.psi, Direction::Inverse);
        kernels::real_space_update(
            &mut self.rho,
            &self.psi,
            &self.support,
            algorithm,
            self.options.beta,
        );
        Ok(())
    }

    /// Poisson LLK sums of the current iterate.
    pub fn llk(&mut self) -> Result<LlkSums> {
        if let Some(d) = &self.device {
            return d.llk();
        }
        kernels::copy(&self.rho, &mut self.psi);
        self.plan
            .process_unscaled(&mut self.psi, Direction::Forward);
        if let (Some(psf), true) = (&mut self.psf, self.psf_on) {
            psf.convolve(&self.psi, &self.plan);
            return Ok(psf.llk(&self.iobs, &self.mask));
        }
        Ok(kernels::poisson_llk(&self.psi, &self.iobs, &self.mask))
    }

    /// One shrink-wrap update of the support from the current iterate. On an OpenCL device
    /// `|rho|` is downloaded, blurred and thresholded on the host, and the support uploaded when
    /// the update is accepted.
    pub fn shrink_wrap(&mut self, sigma: f32) -> Result<support::ShrinkWrapOutcome> {
        if let Some(d) = &mut self.device {
            d.modulus(self.sw.amplitude_mut())?;
            let out = support::shrink_wrap_from_modulus(
                &mut self.support,
                &self.shape,
                &self.options.shrink_wrap,
                sigma,
                &mut self.sw,
            );
            if out.accepted {
                d.set_support(&self.support)?;
            }
            return Ok(out);
        }
        Ok(support::shrink_wrap(
            &self.rho,
            &mut self.support,
            &self.shape,
            &self.options.shrink_wrap,
            sigma,
            &mut self.sw,
        ))
    }

    /// Number of shrink-wrap updates the chain performs (explicit `Sup` plus automatic ones).
    pub fn shrink_wrap_count(&self) -> usize {
        let mut count = 0;
        self.walk(|_, sup| count += usize::from(sup));
        count
    }

    /// Calls `f(algorithm, shrink_wrap_after)` for each cycle of the chain, and
    /// `f(None, true)` for each explicit `Sup`.
    fn walk(&self, mut f: impl FnMut(Option<Algorithm>, bool)) {
        let period = self.options.shrink_wrap.period;
        let mut global = 0usize;
        for op in &self.options.chain.ops {
            match *op {
                Op::ShrinkWrap => f(None, true),
                Op::Cycles { algorithm, count } => {
                    for _ in 0..count {
                        global += 1;
                        let auto = period > 0
                            && algorithm != Algorithm::Er
                            && global.is_multiple_of(period);
                        f(Some(algorithm), auto);
                    }
                }
            }
        }
    }

    /// Puts the measured data and mask back after cycles on the gap prior (no-op otherwise).
    fn restore_data(&mut self) {
        if let Some(prior) = &mut self.prior {
            if self.mask.iter().all(|&m| m != kernels::MASKED) && prior.1.contains(&kernels::MASKED)
            {
                std::mem::swap(&mut self.iobs, &mut prior.0);
                std::mem::swap(&mut self.mask, &mut prior.1);
            }
        }
    }

    /// Runs the whole chain from `start`; `progress(done, total)` is called after each cycle.
    pub fn run(
        &mut self,
        index: usize,
        start: &Start,
        seed: u64,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Run> {
        self.initialise(start, seed)?;
        let total_sw = self.shrink_wrap_count();
        let total = self.options.chain.total_cycles();
        let mut plan: Vec<(Option<Algorithm>, bool)> = Vec::with_capacity(total + 16);
        self.walk(|a, s| plan.push((a, s)));
        let mut done = 0usize;
        let mut sw_done = 0usize;
        // Early cycles on the gap-filled data (CPU only), then the gap is freed.
        let prior_cycles = match (&mut self.prior, &self.device) {
            (Some(prior), None) => {
                std::mem::swap(&mut self.iobs, &mut prior.0);
                std::mem::swap(&mut self.mask, &mut prior.1);
                (self.options.gap_prior as f64 * total as f64).round() as usize
            }
            _ => 0,
        };
        let mut prior_on = prior_cycles > 0;
        if !prior_on {
            self.restore_data();
        }
        // The PSF starts from its initial shape in every run and is switched on late.
        let psf_start = match (&mut self.psf, &self.options.psf) {
            (Some(psf), Some(o)) => {
                psf.reset(&self.plan);
                (f64::from(o.start) * total as f64).round() as usize
            }
            _ => usize::MAX,
        };
        self.psf_on = false;
        self.psf_cycles = 0;
        for (algorithm, sup) in plan {
            if done >= psf_start {
                self.psf_on = true;
            }
            if prior_on && done >= prior_cycles {
                self.restore_data();
                prior_on = false;
            }
            if let Some(a) = algorithm {
                self.cycle(a)?;
                done += 1;
                if let Some(d) = &self.device {
                    // Keep the progress report within a few cycles of the device.
                    if done.is_multiple_of(8) {
                        d.finish()?;
                    }
                }
                progress(done, total);
            }
            if sup {
                let sigma = self.options.shrink_wrap.sigma(sw_done, total_sw);
                self.shrink_wrap(sigma)?;
                sw_done += 1;
            }
        }
        if prior_on {
            self.restore_data();
        }
        let sums = self.llk()?;
        self.sync()?;
        let shape = IxDyn(&self.shape);
        let psf = match (&self.psf, self.psf_on) {
            (Some(p), true) => Some(p.centred_kernel()?),
            _ => None,
        };
        Ok(Run {
            index,
            object: ArrayD::from_shape_vec(shape.clone(), self.rho.clone())
                .map_err(|e| Error::Msg(e.to_string()))?,
            support: ArrayD::from_shape_vec(shape, self.support.clone())
                .map_err(|e| Error::Msg(e.to_string()))?,
            llk: sums.llk(),
            free_llk: sums.free_llk(),
            support_size: self.support.iter().filter(|&&s| s != 0).count(),
            psf,
        })
    }
}

fn kernels_copy_u8(src: &[u8], dst: &mut [u8]) {
    dst.copy_from_slice(src);
}

/// Runs `options.runs` independent runs (run `r` seeded from `(options.seed, r)`), keeps the
/// best `options.keep` by free LLK (LLK without free pixels), and post-processes them: centred,
/// phase ramp and offset removed, and each aligned on the best one (translation, twin, ramp,
/// global phase). `progress(run, done, total)` reports the cycles. Returns best first.
/// Runs on the CPU; see [`phase_on`].
pub fn phase(
    problem: &Problem,
    options: &Options,
    start: &Start,
    progress: &mut dyn FnMut(usize, usize, usize),
) -> Result<Vec<Run>> {
    phase_on(problem, options, start, &Device::cpu(), progress)
}

/// Most runs of one [`phase_on`] call.
pub const MAX_RUNS: usize = 100_000;

/// [`phase`] with the cycles on `device` (see [`Phaser::on_device`]); the post-processing runs on
/// the host. Launched as several MPI ranks ([`crate::dist`]), the runs are dealt over the ranks
/// and rank 0 returns the same kept runs as one process; the other ranks return none.
pub fn phase_on(
    problem: &Problem,
    options: &Options,
    start: &Start,
    device: &Device,
    progress: &mut dyn FnMut(usize, usize, usize),
) -> Result<Vec<Run>> {
    if options.runs == 0 || options.keep == 0 {
        return Err(Error::arg("phasing", "runs/keep", "must be >= 1"));
    }
    if options.runs > MAX_RUNS {
        return Err(Error::arg(
            "phasing",
            "runs",
            format!("{} runs asked, at most {MAX_RUNS} allowed", options.runs),
        ));
    }
    let mut phaser = Phaser::on_device(problem, options, device)?;
    // Only the best `keep` runs are held (a stable sort of each prefix keeps the same runs as
    // one sort of all of them).
    let mut runs = Vec::with_capacity(options.keep.min(options.runs) + 1);
    let comm = crate::dist::world();
    for r in crate::dist::runs_of_rank(options.runs, comm.rank(), comm.size()) {
        let seed = derive_seed(options.seed, r as u64);
        let hedged =
            options.hedge_predicted && r % 2 == 1 && matches!(start, Start::Predicted { .. });
        let run_start = if hedged { &Start::Random } else { start };
        let run = phaser.run(r, run_start, seed, &mut |d, t| progress(r, d, t))?;
        runs.push(run);
        runs.sort_by(|a, b| a.score().total_cmp(&b.score()));
        runs.truncate(options.keep);
    }
    let shape = problem.shape.clone();
    let mut runs = spread::gather_best(runs, options.keep, &shape, comm)?;
    let mut best: Option<Vec<Complex32>> = None;
    for run in runs.iter_mut() {
        let mut obj: Vec<Complex32> = run.object.iter().copied().collect();
        let mut sup: Vec<u8> = run.support.iter().copied().collect();
        post::normalise(&mut obj, &mut sup, &shape);
        if let Some(reference) = &best {
            let al = post::align(&obj, reference, &shape);
            if al.metrics.twin {
                sup = post::flip(&sup, &shape);
            }
            sup = post::roll(&sup, &shape, &al.metrics.shift);
            obj = al.object;
        } else {
            best = Some(obj.clone());
        }
        run.object =
            ArrayD::from_shape_vec(IxDyn(&shape), obj).map_err(|e| Error::Msg(e.to_string()))?;
        run.support =
            ArrayD::from_shape_vec(IxDyn(&shape), sup).map_err(|e| Error::Msg(e.to_string()))?;
    }
    Ok(runs)
}
