//! The `bragg` command line: one file per subcommand, parsed with clap.

pub mod simulate;

use clap::{Parser, Subcommand};

/// Command-line entry of `bragg`.
#[derive(Debug, Parser)]
#[command(
    name = "bragg",
    version,
    about = "Deep learning for Bragg Coherent Diffraction Imaging"
)]
pub struct Cli {
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
}

/// Parses the process arguments and runs the chosen subcommand.
pub fn run() -> crate::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Info => {
            println!(
                "bragg {} ({} CPU threads)",
                env!("CARGO_PKG_VERSION"),
                rayon::current_num_threads()
            );
            Ok(())
        }
        Command::Simulate(args) => simulate::run(&args),
    }
}
