//! The `bragg` command line: one file per subcommand, parsed with clap.

pub mod devices;
pub mod simulate;

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
    /// Iterative phase retrieval (ER/HIO/RAAR chains, shrink-wrap, several runs).
    Phase(phase::PhaseArgs),
    /// Compare a reconstruction with the true object after removing the ambiguities.
    Compare(compare::CompareArgs),
    /// Simulate a BCDI dataset (.npz).
    Simulate(simulate::SimulateArgs),
    /// List the native CPU and every OpenCL device, marking the default.
    Devices,
}

impl Cli {
    /// The device chosen by `--device` / `BRAGG_DEVICE`, else the default device.
    pub fn device(&self) -> crate::Result<crate::Device> {
        match &self.device {
            Some(spec) => crate::Device::from_spec(spec),
            None => crate::Device::default_device(),
        }
    }
}

/// Parses the process arguments and runs the chosen subcommand.
pub fn run() -> crate::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Command::Info => {
            println!(
                "bragg {} ({} CPU threads)",
                env!("CARGO_PKG_VERSION"),
                rayon::current_num_threads()
            );
            Ok(())
        }
        Command::Phase(args) => phase::run(args, &cli.device()?),
        Command::Compare(args) => compare::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Devices => devices::run(cli.device.as_deref()),
    }
}
