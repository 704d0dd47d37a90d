//! `bragg demo`: the end-to-end showcase on a CPU in a few minutes. By default (`--dim 3`) it
//! runs the 3-D gap-to-reconstruction comparison of [`super::demo3d`]; `--dim 2` simulates a
//! small 2-D dataset, trains a small UNet, evaluates it on held-out patterns against the
//! classical baselines and writes the metrics (markdown + JSON) and figures.

use crate::inpaint::{evaluate, Baseline};
use crate::models::{ModelConfig, ModelKind};
use crate::sim::{simulate_range, GapSpec, SimConfig};
use crate::train::{train, Prepared, TrainConfig};
use crate::{Device, Error, Result};
use clap::Args;
use ndarray::{ArrayD, Axis, IxDyn};
use std::path::PathBuf;
use std::time::Instant;

/// Flags of `bragg demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Output folder.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    /// 3: one 3-D crystal, gap filled by the shipped network and the classical fills, then
    /// phased and compared; 2: train a small 2-D UNet and score it against the classical fills.
    #[arg(long, default_value_t = 3)]
    pub dim: usize,
    /// Photons (maximum of the noiseless intensity) of the 3-D crystal.
    #[arg(long, default_value_t = 1e8)]
    pub photons: f64,
    /// 3-D demo: distance (voxels) from the Bragg peak to the gap bands.
    #[arg(long, default_value_t = 3)]
    pub gap_offset: usize,
    /// Phasing runs per data set in the 3-D demo (the best by free LLK is kept).
    #[arg(long, default_value_t = 2)]
    pub runs: usize,
    /// Pattern size (pixels per side).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Training patterns.
    #[arg(long, default_value_t = 1024)]
    pub train: usize,
    /// Validation patterns.
    #[arg(long, default_value_t = 64)]
    pub val: usize,
    /// Held-out test patterns.
    #[arg(long, default_value_t = 64)]
    pub test: usize,
    /// Gap layout (line:W or cross:W).
    #[arg(long, default_value = "cross:6")]
    pub gap: GapSpec,
    /// Training epochs.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// UNet base width.
    #[arg(long, default_value_t = 8)]
    pub width: usize,
    /// UNet depth.
    #[arg(long, default_value_t = 4)]
    pub depth: usize,
    /// Batch size.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Learning rate (higher than the thesis' 1e-4 so that a short run converges).
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f32,
    /// Loss.
    #[arg(long, default_value = "mse+ssim+grad")]
    pub loss: String,
    /// Seed (the 3-D crystal and its phasing runs; in 2-D the training set, validation and
    /// test use seed + 1 and seed + 2).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Simulates `count` 2-D or 3-D patterns (intensity, truth, mask only) in memory and
/// preprocesses them.
pub fn simulate_prepared(cfg: &SimConfig) -> Result<Prepared> {
    let samples = simulate_range(cfg, 0, cfg.count, &|| {})?;
    let mut shape = vec![cfg.count];
    shape.extend(cfg.shape());
    let mut i = ArrayD::<f32>::zeros(IxDyn(&shape));
    let mut t = ArrayD::<f32>::zeros(IxDyn(&shape));
    let mut m = ArrayD::<f32>::zeros(IxDyn(&shape));
    for (k, s) in samples.iter().enumerate() {
        i.index_axis_mut(Axis(0), k).assign(&s.intensity);
        t.index_axis_mut(Axis(0), k).assign(&s.truth);
        m.index_axis_mut(Axis(0), k).assign(&s.mask.mapv(f32::from));
    }
    Prepared::new(&i, &t, &m)
}

/// The simulation settings of the demo.
pub fn demo_sim(size: usize, count: usize, gap: GapSpec, seed: u64) -> Result<SimConfig> {
    let cfg = SimConfig {
        dim: 2,
        size,
        count,
        seed,
        gap,
        ..SimConfig::default()
    };
    // Small arrays cannot reach the default oversampling range's upper end.
    let cfg = SimConfig {
        oversampling: crate::sim::Range::new(2.0, (size as f64 / 8.0).clamp(2.0, 4.0))?,
        ..cfg
    };
    cfg.validate()?;
    Ok(cfg)
}

/// Runs the subcommand.
pub fn run(args: &DemoArgs, device: &Device) -> Result<()> {
    match args.dim {
        3 => return super::demo3d::run(args, device),
        2 => {}
        d => {
            return Err(Error::arg(
                "demo",
                "--dim",
                format!("{d} (expected 2 or 3)"),
            ))
        }
    }
    if args.train == 0 || args.test == 0 {
        return Err(Error::arg(
            "demo",
            "train/test",
            "need at least one pattern each",
        ));
    }
    let t0 = Instant::now();
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    eprintln!(
        "[1/4] simulating {}+{}+{} patterns of {}x{} with {} gaps",
        args.train, args.val, args.test, args.size, args.size, args.gap
    );
    let train_set = simulate_prepared(&demo_sim(args.size, args.train, args.gap, args.seed)?)?;
    let val = if args.val > 0 {
        Some(simulate_prepared(&demo_sim(
            args.size,
            args.val,
            args.gap,
            args.seed + 1,
        )?)?)
    } else {
        None
    };
    let test = simulate_prepared(&demo_sim(args.size, args.test, args.gap, args.seed + 2)?)?;
    let t_sim = t0.elapsed().as_secs_f64();

    let model = ModelConfig {
        width: args.width,
        depth: args.depth,
        ..ModelConfig::thesis(ModelKind::Unet)
    };
    let model_path = args.out.join("model.safetensors");
    let cfg = TrainConfig {
        epochs: args.epochs,
        batch: args.batch,
        lr: args.lr,
        loss: args.loss.clone(),
        seed: args.seed,
        ..TrainConfig::new(model.clone(), model_path.clone())
    };
    let n_params = crate::models::build(&model, device, 0)?.num_parameters();
    eprintln!(
        "[2/4] training a UNet (width {}, depth {}, {} parameters) for {} epochs, loss {}",
        args.width, args.depth, n_params, args.epochs, args.loss
    );
    let t1 = Instant::now();
    let trained = train(&cfg, &train_set, val.as_ref(), device)?;
    let t_train = t1.elapsed().as_secs_f64();

    eprintln!("[3/4] evaluating on {} held-out patterns", args.test);
    let (ev, preds) = evaluate(
        Some((trained.model.as_ref(), &model, "unet")),
        &test,
        &Baseline::ALL,
        device,
    )?;
    let fig_dir = args.out.join("figures");
    let fig = super::eval::write_figures(&fig_dir, &test, &preds, 4)?;

    let total = t0.elapsed().as_secs_f64();
    let mut md = format!(
        "# bragg demo\n\n{} test patterns {}x{}, gap {}; UNet width {} depth {} ({} parameters) \
         trained on {} patterns for {} epochs (loss {}, Adam lr {}, batch {}).\n\
         Metrics in the gap on log(I+1) min-max normalised patterns (mean ± std over patterns).\n\n",
        args.test, args.size, args.size, args.gap, args.width, args.depth, n_params, args.train,
        args.epochs, args.loss, args.lr, args.batch
    );
    md.push_str(&ev.markdown());
    md.push_str(&format!(
        "\nTimes: simulation {t_sim:.1} s, training {t_train:.1} s, total {total:.1} s \
         ({} CPU threads).\n",
        rayon::current_num_threads()
    ));
    crate::nn::io::write_atomic(&args.out.join("metrics.md"), md.as_bytes())?;
    let json = serde_json::json!({
        "evaluation": ev,
        "size": args.size, "gap": args.gap.to_string(), "train": args.train, "test": args.test,
        "epochs": args.epochs, "model": model, "parameters": n_params,
        "history": trained.history,
        "seconds": {"simulation": t_sim, "training": t_train, "total": total},
    });
    crate::nn::io::write_atomic(
        &args.out.join("metrics.json"),
        serde_json::to_string_pretty(&json)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    eprintln!("[4/4] done in {total:.1} s\n");
    print!("{}", ev.markdown());
    println!(
        "\nmetrics: {}\n         {}\nfigures: {}\nmodel:   {}\nlog:     {}",
        args.out.join("metrics.md").display(),
        args.out.join("metrics.json").display(),
        fig.display(),
        model_path.display(),
        crate::train::log_path(&model_path, "csv").display()
    );
    Ok(())
}
