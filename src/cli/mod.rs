//! The `bragg` command line: one file per subcommand, parsed with clap.

pub mod demo;
pub mod demo3d;
pub mod devices;
pub mod eval;
pub mod eval3d;
pub mod inpaint;
pub mod patches;
pub mod phasing_study;
pub mod simulate;
pub mod strain;
pub mod train;
pub mod train_gap3d;
pub mod train_phasenet;

use clap::{Parser, Subcommand};

pub mod compare;
pub mod figures;
pub mod phase;

/// Command-line entry of `bragg`.
#[derive(Debug, Parser)]
#[command(
    name = "bragg",
    version,
    about = "Deep learning for Bragg Coherent Diffraction Imaging"
)]
pub struct Cli {
    /// Compute device: `cpu`, `opencl` or `opencl:N` (see `bragg devices`). Default: the first
    /// OpenCL GPU, else the CPU.
    #[arg(long, global = true, env = "BRAGG_DEVICE")]
    pub device: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the version and the number of CPU threads used.
    Info,
    /// Simulate a BCDI dataset (.npz).
    Simulate(simulate::SimulateArgs),
    /// Train a gap-inpainting model.
    Train(train::TrainArgs),
    /// Train the residual 3-D gap model on crystals simulated on the fly.
    TrainGap3d(train_gap3d::TrainGap3dArgs),
    /// Train the reciprocal-space phasing network on strained crystals simulated on the fly.
    TrainPhasenet(train_phasenet::TrainPhasenetArgs),
    /// Score a model and the classical baselines on a test set.
    Eval(eval::EvalArgs),
    /// Score the gap model and the classical fills on raw counts (PCC of log(1+I) in the gap).
    Eval3d(eval3d::Eval3dArgs),
    /// Fill the gaps of patterns with a trained model.
    Inpaint(inpaint::InpaintArgs),
    /// Simulate, train, evaluate and plot in a few minutes on a CPU.
    Demo(demo::DemoArgs),
    /// Iterative phase retrieval (ER/HIO/RAAR chains, shrink-wrap, several runs).
    Phase(phase::PhaseArgs),
    /// Displacement and strain along the Bragg vector from a reconstruction.
    Strain(strain::StrainArgs),
    /// Compare a reconstruction with the true object after removing the ambiguities.
    Compare(compare::CompareArgs),
    /// Random starts against phasing-network starts on held-out strained crystals.
    PhasingStudy(phasing_study::PhasingStudyArgs),
    /// Cut 3-D training patches with artificial centred gaps from a volume.
    Patches(patches::PatchesArgs),
    /// List the native CPU and every OpenCL device, marking the default.
    Devices,
}

impl Cli {
    /// The device chosen by `--device` / `BRAGG_DEVICE`, else the default device.
    pub fn device(&self) -> crate::Result<crate::Device> {
        device_from(self.device.as_deref())
    }
}

fn device_from(spec: Option<&str>) -> crate::Result<crate::Device> {
    if let Some(d) = crate::dist::device_of_local_rank(spec)? {
        return Ok(d);
    }
    match spec {
        Some(spec) => crate::Device::from_spec(spec),
        None => crate::Device::default_device(),
    }
}

/// Parses the process arguments and runs the chosen subcommand.
pub fn run() -> crate::Result<()> {
    let Cli { device, command } = Cli::parse();
    let spec = device.as_deref();
    match command {
        Command::Info => {
            println!(
                "bragg {} ({} CPU threads)",
                env!("CARGO_PKG_VERSION"),
                rayon::current_num_threads()
            );
            Ok(())
        }
        Command::Simulate(args) => simulate::run(&args),
        Command::Train(args) => train::run(&args, &device_from(spec)?),
        Command::TrainGap3d(args) => train_gap3d::run(&args, &device_from(spec)?),
        Command::TrainPhasenet(args) => train_phasenet::run(&args, &device_from(spec)?),
        Command::Eval(args) => eval::run(&args, &device_from(spec)?),
        Command::Eval3d(args) => eval3d::run(&args, &device_from(spec)?),
        Command::Inpaint(args) => inpaint::run(&args, &device_from(spec)?),
        Command::Demo(args) => demo::run(&args, &device_from(spec)?),
        Command::Phase(args) => phase::run(&args, &device_from(spec)?),
        Command::Strain(args) => strain::run(&args),
        Command::Compare(args) => compare::run(&args),
        Command::PhasingStudy(args) => phasing_study::run(&args, &device_from(spec)?),
        Command::Patches(args) => patches::run(&args),
        Command::Devices => devices::run(spec),
    }
}

/// A progress bar for `len` items of long work, labelled `what`, drawn on stderr (hidden when
/// stderr is not a terminal).
pub fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} (eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_prefix(what.to_string());
    bar
}
