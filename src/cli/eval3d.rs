//! `bragg eval3d`: scores the gap model and the classical fills on raw 3-D (or 2-D) counts,
//! with the metrics the field reports (PCC of log(1 + I) in the gap against the measured
//! counts, relative L2, total gap intensity) and the noise ceiling.

use crate::data::npy::NpzFile;
use crate::inpaint::fill::{FillMethod, Filler};
use crate::inpaint::metrics::Stat;
use crate::inpaint::physics::{physics_fill, PhysicsOptions};
use crate::inpaint::study::{noise_ceiling, score_gap, GapSummary};
use crate::inpaint::DEFAULT_STRIDE;
use crate::{Device, Error, Result};
use clap::Args;
use ndarray::{ArrayD, Axis};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Flags of `bragg eval3d`.
#[derive(Debug, Args)]
pub struct Eval3dArgs {
    /// Test set (.npz, batch first) with `intensity`, `truth` (the measured counts to score
    /// against), a gap mask (`mask` or `gap`) and optionally `noiseless` (noise ceiling).
    #[arg(long)]
    pub data: PathBuf,
    /// Model files to score (default: the shipped gap model for 3-D data).
    #[arg(long)]
    pub model: Vec<PathBuf>,
    /// Methods, comma-separated [default: model and every linear/Laplace/biharmonic fill on
    /// the intensity and on its log]; `NAME+physics` adds the physics refinement.
    #[arg(long, value_delimiter = ',')]
    pub methods: Vec<String>,
    /// Fine-tuning seconds per volume for the gap model (0: none).
    #[arg(long, default_value_t = 0.0)]
    pub finetune: f64,
    /// In-plane window stride of the gap model.
    #[arg(long, default_value_t = DEFAULT_STRIDE)]
    pub stride: usize,
    /// Use only the first N volumes.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print JSON (an object keyed by method) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Results: the ceiling and one summary per method.
#[derive(Debug, Clone, Serialize)]
pub struct Eval3dReport {
    /// Volumes scored.
    pub volumes: usize,
    /// Noise ceiling of the PCC (when `noiseless` is present).
    pub ceiling: Option<Stat>,
    /// Summary by method.
    pub methods: BTreeMap<String, GapSummary>,
    /// Method names in table order.
    pub order: Vec<String>,
}

/// Runs the subcommand.
pub fn run(args: &Eval3dArgs, device: &Device) -> Result<()> {
    let mut z = NpzFile::open(&args.data)?;
    let mut read = |k: &str| -> Result<Option<ArrayD<f32>>> {
        if !z.has(k) {
            return Ok(None);
        }
        z.read(k)?
            .to_f32()
            .map(Some)
            .map_err(|m| Error::data(&args.data, format!("key `{k}`: {m}")))
    };
    let need = |a: Option<ArrayD<f32>>, k: &str| {
        a.ok_or_else(|| Error::data(&args.data, format!("no `{k}` array")))
    };
    let intensity = need(read("intensity")?, "intensity")?;
    let truth = need(read("truth")?, "truth")?;
    let mask = match read("mask")? {
        Some(m) => m,
        None => need(read("gap")?, "mask")?,
    };
    let noiseless = read("noiseless")?;
    if intensity.shape() != truth.shape() || intensity.shape() != mask.shape() {
        return Err(Error::data(
            &args.data,
            format!(
                "intensity {:?}, truth {:?} and mask {:?} differ",
                intensity.shape(),
                truth.shape(),
                mask.shape()
            ),
        ));
    }
    let dims = intensity.ndim().saturating_sub(1);
    let n = args.limit.unwrap_or(usize::MAX).min(intensity.shape()[0]);
    if n == 0 {
        return Err(Error::arg("eval3d", "--limit", "no volume to score"));
    }
    let mut fillers: Vec<(String, Filler)> = vec![];
    let names: Vec<String> = if args.methods.is_empty() {
        let mut v = vec!["model".to_string()];
        v.extend(FillMethod::CLASSICAL.iter().map(|m| m.to_string()));
        v
    } else {
        args.methods.clone()
    };
    for full in &names {
        let (name, physics) = match full.strip_suffix("+physics") {
            Some(n) => (n.to_string(), true),
            None => (full.clone(), false),
        };
        let m: FillMethod = name.parse()?;
        let suffix = if physics { "+physics" } else { "" };
        if m == FillMethod::Model {
            if args.model.is_empty() {
                fillers.push((
                    format!("model{suffix}"),
                    Filler::new(m, None, dims, device)?,
                ));
            }
            for p in &args.model {
                let label = p
                    .file_stem()
                    .map(|s| s.to_string_lossy().to_string())
                    .unwrap_or_else(|| "model".into());
                fillers.push((
                    format!("{label}{suffix}"),
                    Filler::new(m, Some(p), dims, device)?,
                ));
            }
        } else {
            fillers.push((format!("{m}{suffix}"), Filler::new(m, None, dims, device)?));
        }
    }
    let mut report = Eval3dReport {
        volumes: n,
        ceiling: None,
        methods: BTreeMap::new(),
        order: vec![],
    };
    if let Some(nl) = &noiseless {
        let c = (0..n)
            .map(|k| {
                noise_ceiling(
                    &nl.index_axis(Axis(0), k).to_owned(),
                    &truth.index_axis(Axis(0), k).to_owned(),
                    &mask.index_axis(Axis(0), k).to_owned(),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        report.ceiling = Some(Stat::of(&c));
    }
    let bar = crate::cli::progress_bar((n * fillers.len()) as u64, "eval3d");
    for (label, filler) in &fillers {
        let t0 = std::time::Instant::now();
        let mut scores = vec![];
        for k in 0..n {
            let ik = intensity.index_axis(Axis(0), k).to_owned();
            let mk = mask.index_axis(Axis(0), k).to_owned();
            let mut f = filler.fill(&ik, &mk, args.stride, args.finetune, device)?;
            if label.ends_with("+physics") && mk.iter().any(|&v| v != 0.0) {
                let (refined, rep) = physics_fill(&ik, &mk, &f, &PhysicsOptions::default())?;
                bar.suspend(|| {
                    eprintln!(
                        "{label} volume {k}: R next to the gap {:.3}, agreement of the best runs {:.3}, weight {:.2}",
                        rep.r_near_gap, rep.agreement, rep.weight
                    )
                });
                f = refined;
            }
            scores.push(score_gap(
                &f,
                &truth.index_axis(Axis(0), k).to_owned(),
                &mk,
            )?);
            bar.inc(1);
        }
        let label = if label.starts_with("model") && args.finetune > 0.0 {
            format!("{label} (finetune {} s)", args.finetune)
        } else {
            label.clone()
        };
        report.methods.insert(
            label.clone(),
            GapSummary::of(&scores, t0.elapsed().as_secs_f64()),
        );
        report.order.push(label);
    }
    bar.finish_and_clear();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return Ok(());
    }
    println!(
        "{n} volumes of {:?}{}\n",
        &intensity.shape()[1..],
        report.ceiling.map_or(String::new(), |c| format!(
            "; noise ceiling of the PCC {:.4} ± {:.4}",
            c.mean, c.std
        ))
    );
    println!("| method | PCC log(1+I), gap | rel. L2 (gap) | gap sum / true | s per volume |");
    println!("|---|---|---|---|---|");
    for label in &report.order {
        let s = &report.methods[label];
        println!(
            "| {label} | {:.4} ± {:.4} | {:.3} ± {:.3} | {:.2} ± {:.2} | {:.2} |",
            s.pcc_log.mean,
            s.pcc_log.std,
            s.rel_l2.mean,
            s.rel_l2.std,
            s.sum_ratio.mean,
            s.sum_ratio.std,
            s.seconds
        );
    }
    Ok(())
}
