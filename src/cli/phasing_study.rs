//! `bragg phasing-study`: random starts against the phasing network (alone and as a start for
//! iterative phasing) on held-out simulated crystals of a chosen strain range.

use crate::phasenet::study::{high_strain_test_realism, run_study, summarise, StudyConfig};
use crate::phasing::{self, Chain, Options};
use crate::sim::{Range, Realism, SimConfig};
use crate::{Device, Error, Result};
use clap::Args;
use std::f64::consts::PI;
use std::path::PathBuf;

/// Strain presets of the test crystals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StrainLevel {
    /// Phase spans of 2.5-4.5 pi over the crystal (strain gradient, dislocations).
    High,
    /// Phase spans up to 1.5 pi (the simulator's default realism).
    Low,
}

/// Flags of `bragg phasing-study`.
#[derive(Debug, Args)]
pub struct PhasingStudyArgs {
    /// 2 or 3 dimensions.
    #[arg(long, default_value_t = 3)]
    pub dim: usize,
    /// Array side of the test patterns.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Crystals to test.
    #[arg(long, default_value_t = 8)]
    pub count: usize,
    /// Strain preset.
    #[arg(long, value_enum, default_value_t = StrainLevel::High)]
    pub strain: StrainLevel,
    /// Accepted phase span over the crystal, in units of pi, `MIN..MAX` (default from the
    /// preset: high 2.5..4.5, low 0..1.5).
    #[arg(long)]
    pub span: Option<Range>,
    /// Maximum photon count of the patterns.
    #[arg(long, default_value_t = 1e8)]
    pub photons: f64,
    /// Oversampling of the crystals, `MIN..MAX`.
    #[arg(long, default_value = "2.5..3.5")]
    pub oversampling: Range,
    /// Seed of the test crystals (keep it away from the training seeds).
    #[arg(long, default_value_t = 1000)]
    pub seed: u64,
    /// Algorithm chain, the same for every start.
    #[arg(long, default_value = "RAAR**600,ER**200")]
    pub algorithm: String,
    /// Runs per start (the best by free LLK is scored).
    #[arg(long, default_value_t = 4)]
    pub runs: usize,
    /// Phasing-network weights (default: the shipped network).
    #[arg(long)]
    pub start_model: Option<PathBuf>,
    /// Skip the network methods.
    #[arg(long)]
    pub no_net: bool,
    /// Skip the random starts (e.g. when they were scored in an earlier run on the same seed).
    #[arg(long)]
    pub no_random: bool,
    /// Initial support threshold of network starts (see `bragg phase`).
    #[arg(long, default_value_t = phasing::PREDICTED_SUPPORT_THRESHOLD)]
    pub start_support_threshold: f32,
    /// Network starts on every run. By default every other run (the odd-numbered ones)
    /// starts from random phases instead, a hedge against a wrong prediction: the free LLK
    /// chooses (REPORT section 7.6).
    #[arg(long)]
    pub no_hedge: bool,
    /// Also start from the true phase on the central grid of this side (an upper bound of
    /// what a network of that grid can give).
    #[arg(long)]
    pub oracle_grid: Option<usize>,
    /// Complex error below which a crystal counts as recovered.
    #[arg(long, default_value_t = 0.2)]
    pub success: f64,
    /// Write every crystal's results and the summary here (JSON).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Runs `bragg phasing-study`.
pub fn run(args: &PhasingStudyArgs, device: &Device) -> Result<()> {
    if args.count == 0 || args.count > 1000 || args.runs == 0 || args.runs > 100 {
        return Err(Error::arg(
            "phasing-study",
            "--count/--runs",
            "count must be in 1..=1000 and runs in 1..=100",
        ));
    }
    let (realism, span) = match args.strain {
        StrainLevel::High => (high_strain_test_realism(), Range { min: 2.5, max: 4.5 }),
        StrainLevel::Low => (Realism::default(), Range { min: 0.0, max: 1.5 }),
    };
    let span = args.span.unwrap_or(span);
    let cfg = StudyConfig {
        sim: SimConfig {
            dim: args.dim,
            size: args.size,
            count: 1,
            seed: args.seed,
            gap: crate::sim::gaps::GapSpec::None,
            photons: Range::new(args.photons, args.photons)?,
            oversampling: args.oversampling,
            realism,
            ..SimConfig::default()
        },
        count: args.count,
        span: Range::new(span.min * PI, span.max * PI)?,
        options: Options {
            chain: Chain::parse(&args.algorithm)?,
            runs: args.runs,
            keep: 1,
            predicted_support: args.start_support_threshold,
            hedge_predicted: !args.no_hedge,
            // the initial support of the studies in REPORT.md section 7
            autocorrelation_threshold: 0.1,
            ..Options::default()
        },
        success: args.success,
        oracle_grid: args.oracle_grid,
        random: !args.no_random,
    };
    cfg.sim.validate()?;
    let net = if args.no_net {
        None
    } else {
        Some(match &args.start_model {
            Some(p) => crate::phasenet::load_phasenet(p, device)?,
            None => crate::phasenet::shipped_phasenet(args.dim, device)?,
        })
    };
    let bar = indicatif::ProgressBar::new(args.count as u64).with_style(
        indicatif::ProgressStyle::with_template("crystal {pos}/{len} {msg} [{elapsed}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let results = run_study(&cfg, net.as_ref(), device, &mut |c, m| {
        bar.set_position(c as u64);
        bar.set_message(m.to_string());
    })?;
    bar.finish_and_clear();
    let summary = summarise(&results, args.success);
    println!(
        "{} crystals, phase span {:.1}..{:.1} pi, {}^{} at {:.0e} photons, {} x {}",
        results.len(),
        span.min,
        span.max,
        args.size,
        args.dim,
        args.photons,
        args.runs,
        args.algorithm
    );
    println!(
        "{:<12} {:>10} {:>13} {:>10}",
        "method", "recovered", "median error", "seconds"
    );
    for (k, s) in &summary {
        println!(
            "{k:<12} {:>6}/{:<3} {:>13.3} {:>10.1}",
            s.recovered, s.tested, s.median_error, s.mean_seconds
        );
    }
    if let Some(path) = &args.json {
        let doc = serde_json::json!({
            "dim": args.dim, "size": args.size, "strain": format!("{:?}", args.strain).to_lowercase(),
            "span_pi": [span.min, span.max], "photons": args.photons,
            "oversampling": args.oversampling.to_string(), "seed": args.seed,
            "algorithm": args.algorithm, "runs": args.runs, "success": args.success,
            "start_model": args.start_model, "start_support_threshold": args.start_support_threshold,
            "summary": summary, "crystals": results,
        });
        crate::data::io::write_atomic(
            path,
            serde_json::to_string_pretty(&doc)
                .map_err(|e| Error::Msg(e.to_string()))?
                .as_bytes(),
        )?;
    }
    Ok(())
}
