//! Dilated UNet (thesis 4.3.2): a [`UNet`] whose first two encoder blocks return the input
//! concatenated with four dilated 3x3 convolutions of it, dilations (6,4,2,1) then (5,3,2,1).

use super::unet::UNet;
use super::ModelConfig;
use crate::{Device, Result};
use rand_chacha::ChaCha8Rng;

/// Dilation rates of the first and second encoder blocks.
pub const DILATIONS: [[usize; 4]; 2] = [[6, 4, 2, 1], [5, 3, 2, 1]];

/// Builds the dilated UNet.
pub fn new(cfg: &ModelConfig, rng: &mut ChaCha8Rng, device: &Device) -> Result<UNet> {
    UNet::with_dilations(cfg, &[&DILATIONS[0], &DILATIONS[1]], rng, device)
}
