//! Deep-learning phase retrieval (BRIEF section 6): a network predicts the phase of the
//! diffracted wave from the intensity ("reciprocal-space phasing"), and the object built from
//! the measured amplitudes and that phase starts the iterative algorithms.
//!
//! - [`data`]: strained crystals simulated on the fly, inputs and centred phase labels.
//! - [`train`]: the training loop (checkpoints, resume, validation against a flat phase).
//! - [`start`]: a trained network applied to an intensity of any size (central crop or padding
//!   to the network's grid) and the starting point of [`crate::phasing`] built from it.
//! - [`study`]: random starts against network starts on held-out strained crystals.

pub mod data;
pub mod start;
pub mod study;
pub mod train;

pub use data::{strained_realism, PhaseRecipe};
pub use start::{load_phasenet, shipped_phasenet, PhaseNet};
pub use train::{train_phasenet, PhaseLoss, PhaseTrainConfig};
