//! `bragg phase`: iterative phase retrieval of an intensity read from .npz/.npy, and the small
//! npz/npy helpers it shares with `bragg compare`.

use crate::data::arrays::ArrayFile;
use crate::data::npy::{NpyArray, NpzWriter};
use crate::phasing::{self, Chain, Options, Problem, ShrinkWrap, Start, ThresholdMethod};
use crate::{Error, Result};
use clap::Args;
use ndarray::{ArrayD, Axis, IxDyn};
use num_complex::Complex32;
use std::path::{Path, PathBuf};

/// Where phasing runs start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StartKind {
    /// Observed amplitudes with random phases.
    Random,
    /// The phasing network's prediction.
    Net,
}

/// Whether the kept runs are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CombineKind {
    /// Average and first mode of the kept runs (when at least two are kept).
    Average,
    /// Only the runs.
    None,
}

/// Arguments of `bragg phase`.
#[derive(Debug, Args)]
pub struct PhaseArgs {
    /// Input .npz, .npy, or CXI/HDF5 (`.cxi`, `.h5`, `FILE.h5:/path/to/data`) holding the
    /// intensity, Bragg peak at the array centre. A 2D array is
    /// one pattern; a 3D array is one volume (or, with --index, a batch of 2D patterns); a 4D
    /// array is a batch of volumes.
    #[arg(long)]
    pub input: PathBuf,
    /// Key of the intensity in the .npz.
    #[arg(long, default_value = "intensity")]
    pub key: String,
    /// Key of the mask (non-zero = gap/masked pixel, left free in phasing). Default: `mask`
    /// when present; `none` (or an empty key) phases every voxel as data, e.g. a file written
    /// by `bragg inpaint`, whose filled region is stored under `gap`.
    #[arg(long)]
    pub mask_key: Option<String>,
    /// Key of a reciprocal-space phase (same layout as the intensity) to start from, e.g. a
    /// network prediction; default: random starts.
    #[arg(long)]
    pub phase_key: Option<String>,
    /// Where runs start: `random` (observed amplitudes, random phases) or `net` (the phase
    /// predicted by the phasing network on the central part of the pattern, random phases
    /// outside it; the initial support from the predicted object).
    #[arg(long, value_enum, default_value_t = StartKind::Random)]
    pub start: StartKind,
    /// Phasing-network weights for `--start net` (default: the shipped network for the data's
    /// dimension).
    #[arg(long)]
    pub start_model: Option<PathBuf>,
    /// `--start net`: initial support threshold on the predicted object's blurred modulus,
    /// relative to its max (0: the autocorrelation support).
    #[arg(long, default_value_t = phasing::PREDICTED_SUPPORT_THRESHOLD)]
    pub start_support_threshold: f32,
    /// Network starts on every run. By default every other run (the odd-numbered ones)
    /// starts from random phases instead, a hedge against a wrong prediction: the free LLK
    /// chooses (REPORT section 7.6).
    #[arg(long)]
    pub no_hedge: bool,
    /// Index in the batch (first axis).
    #[arg(long)]
    pub index: Option<usize>,
    /// Algorithm chain, PyNX notation: `RAAR**600,ER**200`, `HIO**300`, `(Sup*RAAR**50)**12`.
    /// `,` runs left to right, `A*B` runs B then A, `Sup` is one shrink-wrap.
    #[arg(long, default_value = phasing::DEFAULT_CHAIN)]
    pub algorithm: String,
    /// Automatic shrink-wrap every N cycles of HIO/RAAR (0: only explicit `Sup`).
    #[arg(long, default_value_t = 50)]
    pub support_period: usize,
    /// Shrink-wrap threshold, relative to the RMS (or max) of the blurred modulus.
    #[arg(long, default_value_t = 0.25)]
    pub support_threshold: f32,
    /// Reference of the shrink-wrap threshold: `rms` (inside the support) or `max`.
    #[arg(long, default_value = "rms")]
    pub support_method: String,
    /// Initial support threshold on the autocorrelation, relative to its max; 0: automatic
    /// (0.2 for 3-D data with a chain that has HIO cycles, else 0.1).
    #[arg(long, default_value_t = 0.0)]
    pub autocorrelation_threshold: f32,
    /// HIO/RAAR beta.
    #[arg(long, default_value_t = 0.9)]
    pub beta: f32,
    /// Poisson confidence interval of the projection (in amplitude standard deviations; 0 off).
    #[arg(long, default_value_t = 0.0)]
    pub confidence: f32,
    /// Share (0..1) of the cycles, at the start of each run, during which the masked voxels
    /// are constrained to a gap-filled copy of the data (log-linear fill) instead of left
    /// free; 0: free throughout. Used when the gap holds signal; CPU only.
    #[arg(long, default_value_t = 0.0)]
    pub gap_prior: f32,
    /// Confidence interval of the masked voxels, `LOW,HIGH`: their calculated intensity is
    /// kept within these factors of the gap-filled copy of the data (see `--gap-fill`) in
    /// every cycle; `none` leaves them free. Used when the gap holds signal; CPU only.
    #[arg(long, default_value = "none")]
    pub gap_interval: String,
    /// Where the gap-filled copy of the data (initial support, `--gap-prior`, `--gap-interval`)
    /// comes from: `loglinear` (a log-linear fill of the masked data) or `input` (the input's
    /// own values in the masked voxels, e.g. a `bragg inpaint` output phased with
    /// `--mask-key gap`).
    #[arg(long, default_value = "loglinear")]
    pub gap_fill: String,
    /// Partial coherence: estimate a point-spread function of the intensity, starting from a
    /// Gaussian of this FWHM (voxels), refined by Richardson-Lucy steps; written as `psf`.
    /// Advised for measured synchrotron data. The cycles then run on the CPU.
    #[arg(long)]
    pub psf: Option<f32>,
    /// Share of the cycles run before the PSF is switched on (with `--psf`).
    #[arg(long, default_value_t = 0.0)]
    pub psf_start: f32,
    /// Cycles between two updates of the PSF (with `--psf`; 0 keeps it fixed).
    #[arg(long, default_value_t = 20)]
    pub psf_period: usize,
    /// Richardson-Lucy steps per update of the PSF (with `--psf`).
    #[arg(long, default_value_t = 10)]
    pub psf_steps: usize,
    /// Fraction of pixels withheld for the free LLK.
    #[arg(long, default_value_t = 0.05)]
    pub free_fraction: f32,
    /// Number of runs from random starts.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Number of runs kept (best free LLK first).
    #[arg(long, default_value_t = 1)]
    pub keep: usize,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// With `--keep` >= 2, also write the combination of the kept (aligned) runs: `average`
    /// (the mean of those within a complex error of 0.15 of the best) and `average_support`
    /// (voxels in at least half of their supports), `mode`
    /// (their first mode), `mode_fraction` (its share of the runs' power) and
    /// `error_to_average`. `none` writes only the runs.
    #[arg(long, value_enum, default_value_t = CombineKind::Average)]
    pub combine: CombineKind,
    /// Output .npz: `object` (complex64, [keep, ...]), `support` (u8), `llk`, `free_llk`; or
    /// .cxi / .h5: PyNX layout, run i in `/entry_1/image_{i+1}` (`data`, `mask` = support).
    #[arg(long)]
    pub out: PathBuf,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write `slices.png` into this folder: labelled central slices of the best run's modulus
    /// and phase, with colour bars.
    #[arg(long)]
    pub figures: Option<PathBuf>,
}

/// Whether `key` exists in the .npz or CXI/HDF5 file at `path` (always false for a .npy).
pub fn has_key(path: &Path, key: &str) -> Result<bool> {
    Ok(ArrayFile::open(path)?.has(key))
}

/// Reads array `key` of an .npz or CXI/HDF5 file (or the array of an .npy) through the
/// hardened readers: sizes checked before allocating, only regular files.
fn read_any(path: &Path, key: &str) -> Result<NpyArray> {
    ArrayFile::open(path)?.read(key)
}

/// Reads a real array (any float, integer or bool dtype, float16 included) as f32.
pub fn read_real(path: &Path, key: &str) -> Result<ArrayD<f32>> {
    let a = read_any(path, key)?;
    a.into_f32()
        .map_err(|m| Error::data(path, format!("key `{key}`: {m}")))
}

/// Reads a complex array (complex64 or complex128; a real array is taken as real) as complex64.
pub fn read_complex(path: &Path, key: &str) -> Result<ArrayD<Complex32>> {
    let a = read_any(path, key)?;
    a.into_complex()
        .map_err(|m| Error::data(path, format!("key `{key}`: {m}")))
}

/// Selects one item of a batch: `index` given -> the first axis is the batch; without it a 4D
/// array is a batch (item 0) and a 2D/3D array is the item itself.
pub fn select<T: Clone>(
    a: ArrayD<T>,
    index: Option<usize>,
    path: &Path,
    key: &str,
) -> Result<ArrayD<T>> {
    let nd = a.ndim();
    let batched = index.is_some() || nd == 4;
    if !batched {
        if !(2..=3).contains(&nd) {
            return Err(Error::data(
                path,
                format!(
                    "key `{key}`: expected a 2D or 3D array, got shape {:?}",
                    a.shape()
                ),
            ));
        }
        return Ok(a);
    }
    let i = index.unwrap_or(0);
    if !(3..=4).contains(&nd) {
        return Err(Error::data(
            path,
            format!(
                "key `{key}`: expected a batch of 2D or 3D arrays, got shape {:?}",
                a.shape()
            ),
        ));
    }
    if i >= a.shape()[0] {
        return Err(Error::data(
            path,
            format!(
                "key `{key}`: index {i} out of range (batch of {})",
                a.shape()[0]
            ),
        ));
    }
    Ok(a.index_axis(Axis(0), i).to_owned())
}

/// Selects the item matching `shape`: the array itself if it already has that shape, else the
/// batch item `index` (default 0).
fn select_like<T: Clone>(
    a: ArrayD<T>,
    shape: &[usize],
    index: Option<usize>,
    path: &Path,
    key: &str,
) -> Result<ArrayD<T>> {
    let a = if a.shape() == shape {
        a
    } else {
        select(a, Some(index.unwrap_or(0)), path, key)?
    };
    if a.shape() != shape {
        return Err(Error::data(
            path,
            format!(
                "key `{key}`: shape {:?} does not match the intensity {shape:?}",
                a.shape()
            ),
        ));
    }
    Ok(a)
}

/// Writes arrays into `path` atomically (a unique temporary file in the same folder, fsync,
/// rename, folder fsync; removed on error).
pub fn write_npz_atomic(
    path: &Path,
    write: impl FnOnce(&mut NpzWriter) -> Result<()>,
) -> Result<()> {
    let mut npz = NpzWriter::create(path)?;
    write(&mut npz)?;
    npz.finish()
}

/// Most runs `bragg phase` accepts.
pub const MAX_RUNS: usize = 10_000;

/// Checks the numeric flags before any file is read.
fn check_args(args: &PhaseArgs) -> Result<()> {
    if args.runs == 0 || args.runs > MAX_RUNS {
        return Err(Error::arg(
            "phase",
            "--runs",
            format!("{} asked, allowed 1..={MAX_RUNS}", args.runs),
        ));
    }
    if args.keep == 0 {
        return Err(Error::arg("phase", "--keep", "must be >= 1"));
    }
    for (name, v) in [
        ("--support-threshold", args.support_threshold),
        (
            "--autocorrelation-threshold",
            args.autocorrelation_threshold,
        ),
        ("--beta", args.beta),
        ("--confidence", args.confidence),
        ("--free-fraction", args.free_fraction),
        ("--start-support-threshold", args.start_support_threshold),
    ] {
        if !v.is_finite() || v < 0.0 {
            return Err(Error::arg(
                "phase",
                "value",
                format!("{name} {v}: must be finite and >= 0"),
            ));
        }
    }
    Ok(())
}

/// Runs `bragg phase` with the cycles on `device` (see [`phasing::phase_on`]).
pub fn run(args: &PhaseArgs, device: &crate::Device) -> Result<()> {
    let t0 = std::time::Instant::now();
    check_args(args)?;
    let chain = Chain::parse(&args.algorithm)?;
    let path = &args.input;
    let intensity = select(read_real(path, &args.key)?, args.index, path, &args.key)?;
    let shape = intensity.shape().to_vec();
    let kept_bytes = (args.keep.min(args.runs) as u64 + 1)
        .saturating_mul(intensity.len() as u64)
        .saturating_mul(9);
    crate::data::io::check_allocation(
        path,
        &format!("keeping {} runs of {shape:?}", args.keep.min(args.runs)),
        kept_bytes,
    )?;
    let mask_key = match &args.mask_key {
        Some(k) if k.is_empty() || k.eq_ignore_ascii_case("none") => None,
        Some(k) => Some(k.clone()),
        None if has_key(path, "mask")? => Some("mask".to_string()),
        None => None,
    };
    let mask = match &mask_key {
        Some(k) => Some(
            select_like(read_real(path, k)?, &shape, args.index, path, k)?
                .mapv(|v| u8::from(v != 0.0)),
        ),
        None => None,
    };
    let start = match (&args.phase_key, args.start) {
        (Some(_), StartKind::Net) => {
            return Err(Error::arg(
                "phase",
                "--start",
                "--phase-key and --start net both give the starting phase; choose one",
            ))
        }
        (Some(k), StartKind::Random) => Start::ReciprocalPhase(select_like(
            read_real(path, k)?,
            &shape,
            args.index,
            path,
            k,
        )?),
        (None, StartKind::Net) => {
            let net = match &args.start_model {
                Some(p) => crate::phasenet::load_phasenet(p, device)?,
                None => crate::phasenet::shipped_phasenet(shape.len(), device)?,
            };
            let p = net.predict(&intensity, mask.as_ref(), device)?;
            Start::Predicted {
                phase: p.phase,
                known: p.known,
            }
        }
        (None, StartKind::Random) => {
            if args.start_model.is_some() {
                return Err(Error::arg(
                    "phase",
                    "--start-model",
                    "only used with --start net",
                ));
            }
            Start::Random
        }
    };
    let mut problem = Problem::from_centred(&intensity, mask.as_ref())
        .map_err(|e| Error::data(path, format!("key `{}`: {e}", args.key)))?;
    match args.gap_fill.to_ascii_lowercase().as_str() {
        "loglinear" => {}
        "input" => {
            if mask.as_ref().is_some_and(|m| m.iter().any(|&v| v != 0)) {
                problem = problem.with_support_hint(&intensity)?;
            }
        }
        other => {
            return Err(Error::arg(
                "phase",
                "--gap-fill",
                format!("`{other}` (expected loglinear or input)"),
            ))
        }
    }
    let method = match args.support_method.to_ascii_lowercase().as_str() {
        "rms" => ThresholdMethod::Rms,
        "max" => ThresholdMethod::Max,
        other => {
            return Err(Error::arg(
                "phase",
                "--support-method",
                format!("`{other}` (expected rms or max)"),
            ))
        }
    };
    let options = Options {
        chain,
        beta: args.beta,
        shrink_wrap: ShrinkWrap {
            threshold: args.support_threshold,
            method,
            period: args.support_period,
            ..ShrinkWrap::default()
        },
        autocorrelation_threshold: args.autocorrelation_threshold,
        confidence: args.confidence,
        free_fraction: args.free_fraction,
        runs: args.runs,
        keep: args.keep.min(args.runs),
        seed: args.seed,
        predicted_support: args.start_support_threshold,
        hedge_predicted: !args.no_hedge,
        gap_prior: args.gap_prior,
        gap_interval: parse_gap_interval(&args.gap_interval)?,
        psf: args.psf.map(|fwhm| phasing::PsfOptions {
            fwhm,
            start: args.psf_start,
            period: args.psf_period,
            steps: args.psf_steps,
        }),
        ..Options::default()
    };
    if options.psf.is_some() && device.opencl_backend().is_some() {
        eprintln!("note: phasing with a PSF runs on the CPU");
    }
    let total = options.chain.total_cycles() as u64;
    let mut bar: Option<(usize, indicatif::ProgressBar)> = None;
    let style = indicatif::ProgressStyle::with_template(
        "run {msg} [{bar:30}] {pos}/{len} cycles {per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    let runs = phasing::phase_on(&problem, &options, &start, device, &mut |r, done, _| {
        if bar.as_ref().map(|b| b.0) != Some(r) {
            if let Some((_, b)) = bar.take() {
                b.finish();
            }
            let b = indicatif::ProgressBar::new(total).with_style(style.clone());
            b.set_message(format!("{}/{}", r + 1, options.runs));
            bar = Some((r, b));
        }
        if let Some((_, b)) = &bar {
            b.set_position(done as u64);
        }
    })?;
    if let Some((_, b)) = bar.take() {
        b.finish();
    }
    if !crate::dist::world().is_root() {
        return Ok(()); // rank 0 writes the runs gathered from every rank
    }
    let k = runs.len();
    let mut obj_shape = vec![k];
    obj_shape.extend_from_slice(&shape);
    let objects = ArrayD::from_shape_vec(
        IxDyn(&obj_shape),
        runs.iter().flat_map(|r| r.object.iter().copied()).collect(),
    )
    .map_err(|e| Error::Msg(e.to_string()))?;
    let supports = ArrayD::from_shape_vec(
        IxDyn(&obj_shape),
        runs.iter()
            .flat_map(|r| r.support.iter().copied())
            .collect(),
    )
    .map_err(|e| Error::Msg(e.to_string()))?;
    let llk = ndarray::Array1::from_iter(runs.iter().map(|r| r.llk));
    let free_llk = ndarray::Array1::from_iter(runs.iter().map(|r| r.free_llk));
    let run_index = ndarray::Array1::from_iter(runs.iter().map(|r| r.index as u64));
    let combined = if args.combine == CombineKind::Average && runs.len() >= 2 {
        Some(phasing::combine(&runs)?)
    } else {
        None
    };
    if crate::data::cxi::is_hdf5(&args.out) {
        if combined.is_some() {
            eprintln!(
                "note: the CXI output holds the kept runs only; write an .npz for their average"
            );
        }
        crate::data::cxi::write_phase_result(&args.out, &runs, &options, &path.to_string_lossy())?;
    } else {
        let to_array = |v: &[Complex32]| {
            ArrayD::from_shape_vec(IxDyn(&shape), v.to_vec()).map_err(|e| Error::Msg(e.to_string()))
        };
        let combined_arrays = match &combined {
            Some(c) => Some((
                to_array(&c.average)?,
                ArrayD::from_shape_vec(IxDyn(&shape), c.support.clone())
                    .map_err(|e| Error::Msg(e.to_string()))?,
                to_array(&c.mode)?,
            )),
            None => None,
        };
        write_npz_atomic(&args.out, |npz| {
            npz.add("object", &objects)?;
            npz.add("support", &supports)?;
            npz.add("llk", &llk.into_dyn())?;
            npz.add("free_llk", &free_llk.into_dyn())?;
            npz.add("run", &run_index.into_dyn())?;
            if let Some(psf) = &runs[0].psf {
                npz.add("psf", psf)?;
            }
            if let (Some(c), Some((average, support, mode))) = (&combined, &combined_arrays) {
                npz.add("average", average)?;
                npz.add("average_support", support)?;
                npz.add("mode", mode)?;
                npz.add(
                    "mode_fraction",
                    &ndarray::arr1(&[c.mode_fraction]).into_dyn(),
                )?;
                npz.add(
                    "error_to_average",
                    &ndarray::Array1::from(c.error_to_average.clone()).into_dyn(),
                )?;
            }
            Ok(())
        })?;
    }
    if let Some(dir) = &args.figures {
        super::figures::write_slices(dir, &runs[0].object)?;
    }
    if args.json {
        let kept: Vec<serde_json::Value> = runs
            .iter()
            .map(|r| serde_json::json!({"run": r.index, "llk": r.llk, "free_llk": r.free_llk, "support_size": r.support_size}))
            .collect();
        let summary = serde_json::json!({
            "input": path, "key": args.key, "index": args.index, "mask_key": mask_key,
            "shape": shape, "chain": options.chain.to_string(), "runs": options.runs,
            "autocorrelation_threshold": (f64::from(options.autocorrelation_threshold_for(shape.len())) * 1e6).round() / 1e6,
            "kept": kept, "out": args.out, "seconds": t0.elapsed().as_secs_f64(),
            "combined": combined.as_ref().map(|c| serde_json::json!({
                "mode_fraction": c.mode_fraction,
                "averaged_runs": c.members.iter().map(|&i| runs[i].index).collect::<Vec<_>>(),
                "error_to_best": c.error_to_best,
                "error_to_average": c.error_to_average,
                "pairwise_median_error": c.pairwise_median,
            })),
        });
        println!("{summary}");
    } else {
        for r in &runs {
            println!(
                "run {}: llk {:.4e} free_llk {:.4e} support {}",
                r.index, r.llk, r.free_llk, r.support_size
            );
        }
        if let Some(c) = &combined {
            println!(
                "combined {} runs: {} agree with the best (complex error < {}) and are averaged; \
                 first mode holds {:.1}% of their power; complex error between runs (median over \
                 pairs) {:.3}",
                runs.len(),
                c.members.len(),
                phasing::combine::AGREEMENT,
                100.0 * c.mode_fraction,
                c.pairwise_median
            );
        }
        println!("wrote {}", args.out.display());
    }
    Ok(())
}

/// Parses `--gap-interval`: `none`, or `LOW,HIGH` (factors of the gap fill).
fn parse_gap_interval(text: &str) -> Result<Option<[f32; 2]>> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("none") || t.is_empty() {
        return Ok(None);
    }
    let bad = || {
        Error::arg(
            "phase",
            "--gap-interval",
            format!("{text:?}: expected `none` or LOW,HIGH with 0 <= LOW <= HIGH (e.g. 0.5,1.2)"),
        )
    };
    let parts: Vec<f32> = t
        .split(',')
        .map(|v| v.trim().parse::<f32>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad())?;
    match parts[..] {
        [lo, hi] if lo >= 0.0 && hi >= lo && hi.is_finite() => Ok(Some([lo, hi])),
        _ => Err(bad()),
    }
}
