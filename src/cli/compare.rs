//! `bragg compare`: errors of a reconstruction against the true object after removing the
//! phase-retrieval ambiguities (translation, global phase, phase ramp, twin).

use super::phase::{read_complex, select};
use crate::phasing::post;
use crate::{Error, Result};
use clap::Args;
use ndarray::Axis;
use std::path::PathBuf;

/// Arguments of `bragg compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Result .npz of `bragg phase` (key `object`, [runs, ...]).
    #[arg(long)]
    pub result: PathBuf,
    /// Which kept run of the result (0 = best).
    #[arg(long, default_value_t = 0)]
    pub run: usize,
    /// Key of the object in the result.
    #[arg(long, default_value = "object")]
    pub result_key: String,
    /// File (.npz/.npy) holding the true object.
    #[arg(long)]
    pub truth: PathBuf,
    /// Key of the true object (complex; a real array is taken as a real object).
    #[arg(long, default_value = "object")]
    pub truth_key: String,
    /// Index in the truth batch (first axis).
    #[arg(long)]
    pub index: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `bragg compare`.
pub fn run(args: &CompareArgs) -> Result<()> {
    let res = read_complex(&args.result, &args.result_key)?;
    let truth = select(
        read_complex(&args.truth, &args.truth_key)?,
        args.index,
        &args.truth,
        &args.truth_key,
    )?;
    let obj = if res.ndim() == truth.ndim() + 1 {
        if args.run >= res.shape()[0] {
            return Err(Error::data(
                &args.result,
                format!(
                    "key `{}`: run {} out of range ({} kept)",
                    args.result_key,
                    args.run,
                    res.shape()[0]
                ),
            ));
        }
        res.index_axis(Axis(0), args.run).to_owned()
    } else {
        res
    };
    if obj.shape() != truth.shape() {
        return Err(Error::data(
            &args.result,
            format!(
                "key `{}`: shape {:?} differs from the truth {:?} ({}, key `{}`)",
                args.result_key,
                obj.shape(),
                truth.shape(),
                args.truth.display(),
                args.truth_key
            ),
        ));
    }
    let o: Vec<_> = obj.iter().copied().collect();
    let t: Vec<_> = truth.iter().copied().collect();
    let m = post::align(&o, &t, truth.shape()).metrics;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&m).map_err(|e| Error::Msg(e.to_string()))?
        );
    } else {
        println!(
            "complex error {:.4}  modulus error {:.4}  phase RMS {:.4} rad  support Jaccard {:.3}  twin {}  shift {:?}",
            m.complex_error, m.modulus_error, m.phase_rms_error, m.support_jaccard, m.twin, m.shift
        );
    }
    Ok(())
}
