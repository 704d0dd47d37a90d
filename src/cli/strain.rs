//! `bragg strain`: displacement and strain along the Bragg vector `q` from a reconstruction
//! (see [`crate::phasing::strain`]), written as .npz or CXI, with an optional figure.

use super::phase::{read_complex, read_real, select};
use crate::data::arrays::{ArrayFile, ArrayWriter};
use crate::phasing::strain::{self, StrainOptions, DEFAULT_MODULUS_THRESHOLD};
use crate::{Error, Result};
use clap::Args;
use ndarray::{Array1, ArrayD};
use std::path::PathBuf;

/// Arguments of `bragg strain`.
#[derive(Debug, Args)]
pub struct StrainArgs {
    /// Reconstruction: the .npz or CXI/HDF5 file written by `bragg phase` (`object`, `support`;
    /// run 0, the best, unless --index), or an .npy of the complex object.
    #[arg(long)]
    pub input: PathBuf,
    /// Key of the complex object.
    #[arg(long, default_value = "object")]
    pub object_key: String,
    /// Key of the support (non-zero inside). Default: `support` when present; `none` uses the
    /// whole array, limited by --modulus-threshold.
    #[arg(long)]
    pub support_key: Option<String>,
    /// Which run when the file holds several (first axis); default 0.
    #[arg(long)]
    pub index: Option<usize>,
    /// Voxel size in nm: one value, or one per axis in array order (`SZ,SY,SX`).
    #[arg(long, value_delimiter = ',', required = true)]
    pub voxel_size: Vec<f64>,
    /// Bragg scattering vector in 1/nm, one component per array axis (axis 0 first), 2 pi
    /// included (|q| = 2 pi / d).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub q: Option<Vec<f64>>,
    /// Instead of --q: the lattice spacing d of the reflection in nm (|q| = 2 pi / d) ...
    #[arg(long)]
    pub d_spacing: Option<f64>,
    /// ... and the direction of q in array axis order (default: along axis 0).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub q_direction: Option<Vec<f64>>,
    /// Remove the best-fitting linear phase ramp (uniform strain, off-centre peak) besides the
    /// offset.
    #[arg(long)]
    pub remove_ramp: bool,
    /// Leave out support voxels whose modulus is below this fraction of the maximum.
    #[arg(long, default_value_t = DEFAULT_MODULUS_THRESHOLD)]
    pub modulus_threshold: f32,
    /// Output .npz (or .cxi/.h5): `displacement` (nm), `strain`, `phase` (unwrapped, rad),
    /// `modulus`, `support`, `q`, `voxel_size`, `ramp`.
    #[arg(long)]
    pub out: PathBuf,
    /// Write `strain.png` (central slices of modulus, phase, displacement, strain) here.
    #[arg(long)]
    pub figures: Option<PathBuf>,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
}

/// The q vector from `--q`, or `--d-spacing` with `--q-direction`.
fn q_vector(args: &StrainArgs, ndim: usize) -> Result<Vec<f64>> {
    match (&args.q, args.d_spacing) {
        (Some(_), Some(_)) => Err(Error::arg(
            "strain",
            "--q",
            "give either --q or --d-spacing (with --q-direction), not both",
        )),
        (Some(q), None) => {
            if args.q_direction.is_some() {
                return Err(Error::arg(
                    "strain",
                    "--q-direction",
                    "only used with --d-spacing",
                ));
            }
            Ok(q.clone())
        }
        (None, Some(d)) => {
            if !d.is_finite() || d <= 0.0 {
                return Err(Error::arg(
                    "strain",
                    "--d-spacing",
                    format!("{d} nm: must be finite and > 0"),
                ));
            }
            let dir = args.q_direction.clone().unwrap_or_else(|| {
                let mut v = vec![0.0; ndim];
                v[0] = 1.0;
                v
            });
            let n = dir.iter().map(|v| v * v).sum::<f64>().sqrt();
            if !n.is_finite() || n == 0.0 {
                return Err(Error::arg(
                    "strain",
                    "--q-direction",
                    format!("{dir:?}: must be finite and non-zero"),
                ));
            }
            let qn = std::f64::consts::TAU / d;
            Ok(dir.iter().map(|v| v / n * qn).collect())
        }
        (None, None) => Err(Error::arg(
            "strain",
            "--q",
            "the Bragg vector is needed: --q QZ,QY,QX (1/nm) or --d-spacing D",
        )),
    }
}

/// Runs `bragg strain`.
pub fn run(args: &StrainArgs) -> Result<()> {
    let path = &args.input;
    let file = ArrayFile::open(path)?;
    // Files written by `bragg phase` stack runs along the first axis.
    let runs_stacked = file.has("llk") || file.has("free_llk");
    let has_support = file.has("support");
    drop(file);
    let raw = read_complex(path, &args.object_key)?;
    let index = match (args.index, runs_stacked) {
        (Some(i), _) => Some(i),
        (None, true) => Some(0),
        (None, false) => None,
    };
    let object = select(raw, index, path, &args.object_key)?;
    let shape = object.shape().to_vec();
    let support_key = match &args.support_key {
        Some(k) if k.is_empty() || k.eq_ignore_ascii_case("none") => None,
        Some(k) => Some(k.clone()),
        None if has_support => Some("support".to_string()),
        None => None,
    };
    let support: ArrayD<u8> = match &support_key {
        Some(k) => {
            let s = read_real(path, k)?;
            let s = if s.shape() == shape.as_slice() {
                s
            } else {
                select(s, Some(index.unwrap_or(0)), path, k)?
            };
            if s.shape() != shape.as_slice() {
                return Err(Error::data(
                    path,
                    format!(
                        "key `{k}`: support shape {:?} does not match the object {shape:?}",
                        s.shape()
                    ),
                ));
            }
            s.mapv(|v| u8::from(v != 0.0))
        }
        None => ArrayD::ones(shape.clone()),
    };
    let q = q_vector(args, shape.len())?;
    let opts = StrainOptions {
        remove_ramp: args.remove_ramp,
        modulus_threshold: args.modulus_threshold,
    };
    let field =
        strain::displacement_and_strain_with(&object, &support, &args.voxel_size, &q, &opts)
            .map_err(|e| Error::data(path, e.to_string()))?;
    let mut w = ArrayWriter::create(&args.out)?;
    w.add("displacement", &field.displacement)?;
    w.add("strain", &field.strain)?;
    w.add("phase", &field.phase)?;
    w.add("modulus", &field.modulus)?;
    w.add("support", &field.support)?;
    w.add("q", &Array1::from(field.q.clone()).into_dyn())?;
    w.add(
        "voxel_size",
        &Array1::from(field.voxel_nm.clone()).into_dyn(),
    )?;
    w.add("ramp", &Array1::from(field.ramp.clone()).into_dyn())?;
    w.finish()?;
    let figure = match &args.figures {
        Some(dir) => {
            let p = dir.join("strain.png");
            let qn = field.q.iter().map(|v| v * v).sum::<f64>().sqrt();
            let title = format!(
                "{}: |q| = {qn:.2} 1/nm (d = {:.4} nm)",
                path.file_name().unwrap_or_default().to_string_lossy(),
                std::f64::consts::TAU / qn
            );
            strain::write_figure(&p, &field, &title)?;
            Some(p)
        }
        None => None,
    };
    let inside: Vec<f32> = field
        .strain
        .iter()
        .zip(field.support.iter())
        .filter(|(_, &m)| m != 0)
        .map(|(&s, _)| s)
        .collect();
    let n = inside.len().max(1) as f64;
    let mean = inside.iter().map(|&v| v as f64).sum::<f64>() / n;
    let rms = (inside
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    let (umin, umax) = crate::plot::figure::finite_range(
        field
            .displacement
            .iter()
            .zip(field.support.iter())
            .filter(|(_, &m)| m != 0)
            .map(|(&v, _)| v),
    );
    if args.json {
        let summary = serde_json::json!({
            "input": path, "shape": shape, "q": field.q, "voxel_size": field.voxel_nm,
            "support_key": support_key, "voxels": inside.len(), "parts": field.parts,
            "strain_mean": mean, "strain_std": rms, "displacement_range": [umin, umax],
            "ramp": field.ramp, "offset": field.offset, "out": args.out, "figure": figure,
        });
        println!("{summary}");
    } else {
        println!(
            "{} voxels in {} part(s): strain {mean:.3e} ± {rms:.3e}, displacement {umin:.4}..{umax:.4} nm",
            inside.len(),
            field.parts
        );
        println!("wrote {}", args.out.display());
        if let Some(p) = figure {
            println!("figure {}", p.display());
        }
    }
    Ok(())
}
