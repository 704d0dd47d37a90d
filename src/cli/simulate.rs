//! `bragg simulate`: writes a simulated BCDI dataset (`.npz` or CXI).

use crate::sim::{Field, GapSpec, Range, SimConfig};
use crate::{Error, Result};
use clap::Args;
use std::path::PathBuf;

/// Flags of `bragg simulate`; given flags override the recipe.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Recipe TOML with the same settings (flags given on the command line win).
    #[arg(long)]
    pub recipe: Option<PathBuf>,
    /// 2 or 3 dimensions.
    #[arg(long)]
    pub dim: Option<usize>,
    /// Array size per axis.
    #[arg(long)]
    pub size: Option<usize>,
    /// Number of patterns.
    #[arg(long)]
    pub count: Option<usize>,
    /// Gap layout: none, line:W, cross:W, maxipix, eiger2.
    #[arg(long)]
    pub gap: Option<GapSpec>,
    /// Maximum photon count range, MIN..MAX (drawn log-uniformly).
    #[arg(long)]
    pub photons: Option<Range>,
    /// Oversampling ratio range per axis, MIN..MAX.
    #[arg(long)]
    pub oversampling: Option<Range>,
    /// Base seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output `.npz`, or `.cxi` / `.h5` (CXI layout: the gapped intensity and its mask as the
    /// detector data and mask, the other arrays in `/entry_1/bragg_1`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Store float arrays as float16.
    #[arg(long)]
    pub half: bool,
}

impl SimulateArgs {
    /// The configuration: recipe (or defaults) overridden by the given flags.
    pub fn config(&self) -> Result<SimConfig> {
        let mut c = match &self.recipe {
            Some(p) => SimConfig::from_toml_file(p)?,
            None => SimConfig::default(),
        };
        if let Some(v) = self.dim {
            c.dim = v;
        }
        if let Some(v) = self.size {
            c.size = v;
        }
        if let Some(v) = self.count {
            c.count = v;
        }
        if let Some(v) = self.gap {
            c.gap = v;
        }
        if let Some(v) = self.photons {
            c.photons = v;
        }
        if let Some(v) = self.oversampling {
            c.oversampling = v;
        }
        if let Some(v) = self.seed {
            c.seed = v;
        }
        if let Some(v) = &self.out {
            c.out = Some(v.clone());
        }
        c.half |= self.half;
        c.validate()?;
        if c.count == 0 || c.count > MAX_COUNT {
            return Err(Error::arg(
                "simulate",
                "count",
                format!("{} asked, allowed 1..={MAX_COUNT}", c.count),
            ));
        }
        Ok(c)
    }
}

/// Most patterns one `bragg simulate` writes.
pub const MAX_COUNT: usize = 10_000_000;

/// Bytes of the arrays of a dataset (the archive; staging needs as much again).
pub fn dataset_bytes(c: &SimConfig) -> u64 {
    let voxels = (c.size as u64).saturating_pow(c.dim as u32);
    let float = if c.half { 2 } else { 4 };
    let mut fields = c.fields.clone();
    fields.sort_by_key(|f| f.key());
    fields.dedup();
    let per: u64 = fields
        .iter()
        .map(|f| match f {
            Field::Mask => 1,
            Field::Object => 8,
            _ => float,
        })
        .sum();
    voxels.saturating_mul(per).saturating_mul(c.count as u64)
}

/// Runs the subcommand.
pub fn run(args: &SimulateArgs) -> Result<()> {
    let cfg = args.config()?;
    let out = cfg.out.clone().ok_or_else(|| {
        Error::arg(
            "simulate",
            "out",
            "give --out FILE.npz or `out` in the recipe",
        )
    })?;
    let need = dataset_bytes(&cfg).saturating_mul(2);
    if let Some(free) = crate::data::io::free_space(&out) {
        if need > free {
            return Err(Error::arg(
                "simulate",
                "count",
                format!(
                    "{} patterns of {}^{} need about {} while writing {} (staging files and the archive), only {} is free there",
                    cfg.count,
                    cfg.size,
                    cfg.dim,
                    crate::data::io::human_bytes(need),
                    out.display(),
                    crate::data::io::human_bytes(free)
                ),
            ));
        }
    }
    let bar = indicatif::ProgressBar::new(cfg.count as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} patterns ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let t0 = std::time::Instant::now();
    crate::data::write_dataset(&cfg, &out, &|| bar.inc(1))?;
    bar.finish();
    let dt = t0.elapsed().as_secs_f64();
    eprintln!(
        "wrote {} ({} x {}^{}, gap {}) in {:.1} s ({:.2} patterns/s)",
        out.display(),
        cfg.count,
        cfg.size,
        cfg.dim,
        cfg.gap,
        dt,
        cfg.count as f64 / dt.max(1e-9)
    );
    Ok(())
}
