//! `bragg eval`: scores a model and the classical baselines on a test set.

use crate::data::Dataset;
use crate::inpaint::{evaluate, figures, Baseline, Evaluation, Predictions};
use crate::models::load_model;
use crate::train::Prepared;
use crate::{Device, Error, Result};
use clap::Args;
use ndarray::{ArrayD, Axis};
use std::path::{Path, PathBuf};

/// Flags of `bragg eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Model file written by `bragg train`; repeat to compare several models (rows named
    /// after the file stems).
    #[arg(long, required = true)]
    pub model: Vec<PathBuf>,
    /// Test set (.npz with intensity, truth, mask).
    #[arg(long)]
    pub data: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write PNG panels (truth, input, model, baselines) into this folder.
    #[arg(long)]
    pub figures: Option<PathBuf>,
    /// Use only the first N patterns.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// Writes `examples.png`: one row per pattern (up to `n`): truth, input, then every method.
pub fn write_figures(
    dir: &Path,
    data: &Prepared,
    preds: &Predictions,
    n: usize,
) -> Result<PathBuf> {
    let mut rows = vec![];
    for k in 0..n.min(data.len()) {
        let mut row: Vec<ArrayD<f32>> = vec![
            data.y.index_axis(Axis(0), k).to_owned(),
            data.x.index_axis(Axis(0), k).to_owned(),
        ];
        for (name, p) in &preds.methods {
            if name != "zero" {
                row.push(p.index_axis(Axis(0), k).to_owned());
            }
        }
        rows.push(row);
    }
    let path = dir.join("examples.png");
    let mut columns = vec!["truth".to_string(), "input (gap 0)".to_string()];
    let mut legend = String::from("columns: truth, input (gap at 0)");
    for (name, _) in &preds.methods {
        if name != "zero" {
            legend.push_str(", ");
            legend.push_str(name);
            columns.push(name.clone());
        }
    }
    let title = format!("gap inpainting: {} test patterns, one per row", rows.len());
    figures::write_labelled_grid(&path, &title, &columns, &rows)?;
    legend.push_str("\ncolour: normalised log(I+1), viridis-like map, 0 dark to 1 yellow\n");
    crate::nn::io::write_atomic(&dir.join("examples.txt"), legend.as_bytes())?;
    Ok(path)
}

/// Evaluates every model file (rows named by the model kind for one file, by the file stems
/// for several) and then the baselines.
pub fn eval_files(
    model_paths: &[PathBuf],
    data: &Prepared,
    device: &Device,
) -> Result<(Evaluation, Predictions)> {
    let mut ev = Evaluation {
        patterns: data.len(),
        rows: vec![],
    };
    let mut preds = Predictions { methods: vec![] };
    for p in model_paths {
        let m = load_model(p, device)?;
        let name = if model_paths.len() == 1 {
            m.config.kind.name().to_string()
        } else {
            p.file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_else(|| m.config.kind.name().to_string())
        };
        let (e, pr) = evaluate(
            Some((m.model.as_ref(), &m.config, &name)),
            data,
            &[],
            device,
        )?;
        ev.rows.extend(e.rows);
        preds.methods.extend(pr.methods);
    }
    let (e, pr) = evaluate(None, data, &Baseline::ALL, device)?;
    ev.rows.extend(e.rows);
    preds.methods.extend(pr.methods);
    Ok((ev, preds))
}

/// Runs the subcommand.
pub fn run(args: &EvalArgs, device: &Device) -> Result<()> {
    let ds = Dataset::load(&args.data)?;
    ds.require_gaps()?;
    let mut data = Prepared::from_dataset(&ds)?;
    if let Some(n) = args.limit {
        if n == 0 {
            return Err(Error::arg("eval", "limit", "must be >= 1"));
        }
        data = data.head(n);
    }
    let (ev, preds) = eval_files(&args.model, &data, device)?;
    if args.json {
        // An object keyed by method (rows keep their table order in `order`).
        let methods: serde_json::Map<String, serde_json::Value> = ev
            .rows
            .iter()
            .map(|(name, s)| (name.clone(), serde_json::to_value(s).unwrap_or_default()))
            .collect();
        let order: Vec<&str> = ev.rows.iter().map(|(n, _)| n.as_str()).collect();
        let doc = serde_json::json!({
            "patterns": ev.patterns,
            "methods": methods,
            "order": order,
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        println!("{} patterns of {:?}\n", ev.patterns, data.pattern_shape());
        print!("{}", ev.markdown());
    }
    if let Some(dir) = &args.figures {
        let p = write_figures(dir, &data, &preds, 4)?;
        eprintln!("figures: {}", p.display());
    }
    Ok(())
}
