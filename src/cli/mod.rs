//! The `bragg` command line: one file per subcommand, parsed with clap.

pub mod demo;
pub mod eval;
pub mod inpaint;
pub mod simulate;
pub mod train;

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
    /// Train a gap-inpainting model.
    Train(train::TrainArgs),
    /// Score a model and the classical baselines on a test set.
    Eval(eval::EvalArgs),
    /// Fill the gaps of patterns with a trained model.
    Inpaint(inpaint::InpaintArgs),
    /// Simulate, train, evaluate and plot in a few minutes on a CPU.
    Demo(demo::DemoArgs),
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
        Command::Train(args) => train::run(&args, &crate::Device::cpu()),
        Command::Eval(args) => eval::run(&args, &crate::Device::cpu()),
        Command::Inpaint(args) => inpaint::run(&args, &crate::Device::cpu()),
        Command::Demo(args) => demo::run(&args, &crate::Device::cpu()),
    }
}
