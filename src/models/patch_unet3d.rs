//! The 3-D patch model of BRIEF section 5 (J. Appl. Cryst. 57(4), 2024), on 32^3 patches with
//! LeakyReLU(0.2) and "same" padding everywhere, no batch norm:
//!
//! - encoder 1: `concat(x, 4 x conv3d(8, k3, dilation 4,3,2,1))` (33 ch), maxpool -> 16^3;
//! - encoder 2: `concat(h, 4 x conv3d(16, k2, dilation 3,2,2,1))` (97 ch), maxpool -> 8^3;
//! - conv3d(128, k2), maxpool -> 4^3; conv3d(256, k2), maxpool -> 2^3;
//! - bottleneck: transposed conv (stride 1, k2) 478 + upsample -> 4^3;
//! - decoder: concat with the pooled encoder output of the same size, transposed conv (stride 1,
//!   k2) 222 / 96 / 32, upsample x2 each (4 -> 8 -> 16 -> 32);
//! - head: conv3d 24 (k4), 12 (k3), 6 (k2), then 1x1 conv and `1/(1+exp(-1.5 x))`.
//!
//! This wiring gives 2,771,309 parameters and 4.8 GFLOP per patch, the published figures.

use super::check_input;
use crate::nn::{prefixed, Conv, ConvTranspose, Init, Module, Param};
use crate::{concat, Device, Result, Tensor};
use rand_chacha::ChaCha8Rng;

/// Side of the input patch.
pub const PATCH: usize = 32;
/// Slope of the output sigmoid.
pub const SIGMOID_SCALE: f32 = 1.5;

/// The patch model.
pub struct PatchUNet3d {
    slope: f32,
    enc1: Vec<Conv>,
    enc2: Vec<Conv>,
    enc3: Conv,
    enc4: Conv,
    bottleneck: ConvTranspose,
    dec: Vec<ConvTranspose>,
    head: Vec<Conv>,
    out: Conv,
}

fn c3(
    cin: usize,
    cout: usize,
    k: usize,
    d: usize,
    rng: &mut ChaCha8Rng,
    dev: &Device,
) -> Result<Conv> {
    Conv::new(cin, cout, &[k; 3], &[d; 3], Init::HeUniform, rng, dev)
}

fn t3(cin: usize, cout: usize, rng: &mut ChaCha8Rng, dev: &Device) -> Result<ConvTranspose> {
    ConvTranspose::new(cin, cout, &[2; 3], &[1], Init::HeUniform, rng, dev)
}

impl PatchUNet3d {
    /// Builds the model with LeakyReLU slope `slope` (0.2 in the paper).
    pub fn new(slope: f32, rng: &mut ChaCha8Rng, dev: &Device) -> Result<PatchUNet3d> {
        let enc1 = [4, 3, 2, 1]
            .iter()
            .map(|&d| c3(1, 8, 3, d, rng, dev))
            .collect::<Result<Vec<_>>>()?;
        let enc2 = [3, 2, 2, 1]
            .iter()
            .map(|&d| c3(33, 16, 2, d, rng, dev))
            .collect::<Result<Vec<_>>>()?;
        let enc3 = c3(97, 128, 2, 1, rng, dev)?;
        let enc4 = c3(128, 256, 2, 1, rng, dev)?;
        let bottleneck = t3(256, 478, rng, dev)?;
        let dec = vec![
            t3(478 + 128, 222, rng, dev)?,
            t3(222 + 97, 96, rng, dev)?,
            t3(96 + 33, 32, rng, dev)?,
        ];
        let head = vec![
            c3(32, 24, 4, 1, rng, dev)?,
            c3(24, 12, 3, 1, rng, dev)?,
            c3(12, 6, 2, 1, rng, dev)?,
        ];
        let out = Conv::new(6, 1, &[1; 3], &[1; 3], Init::GlorotUniform, rng, dev)?;
        Ok(PatchUNet3d {
            slope,
            enc1,
            enc2,
            enc3,
            enc4,
            bottleneck,
            dec,
            head,
            out,
        })
    }

    fn parallel(&self, x: &Tensor, convs: &[Conv]) -> Result<Tensor> {
        let outs: Vec<Tensor> = convs
            .iter()
            .map(|c| c.forward_leaky_relu(x, self.slope))
            .collect::<Result<_>>()?;
        let mut all: Vec<&Tensor> = vec![x];
        all.extend(outs.iter());
        concat(&all, 1)
    }
}

impl Module for PatchUNet3d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_input("patch-unet3d", x, 3, 16)?;
        let s = self.slope;
        let p1 = self.parallel(x, &self.enc1)?.max_pool(&[2])?; // 33 @ n/2
        let p2 = self.parallel(&p1, &self.enc2)?.max_pool(&[2])?; // 97 @ n/4
        let p3 = self.enc3.forward_leaky_relu(&p2, s)?.max_pool(&[2])?; // 128 @ n/8
        let p4 = self.enc4.forward_leaky_relu(&p3, s)?.max_pool(&[2])?; // 256 @ n/16
        let mut h = self
            .bottleneck
            .forward(&p4)?
            .leaky_relu(s)?
            .upsample(&[2])?;
        for (t, skip) in self.dec.iter().zip([&p3, &p2, &p1]) {
            let c = concat(&[&h, skip], 1)?;
            h = t.forward(&c)?.leaky_relu(s)?.upsample(&[2])?;
        }
        for c in &self.head {
            h = c.forward_leaky_relu(&h, s)?;
        }
        self.out.forward(&h)?.scaled_sigmoid(SIGMOID_SCALE)
    }

    fn parameters(&self) -> Vec<Param> {
        let mut p = vec![];
        for (i, c) in self.enc1.iter().enumerate() {
            p.extend(prefixed(&format!("enc1.dil{i}"), c.parameters()));
        }
        for (i, c) in self.enc2.iter().enumerate() {
            p.extend(prefixed(&format!("enc2.dil{i}"), c.parameters()));
        }
        p.extend(prefixed("enc3", self.enc3.parameters()));
        p.extend(prefixed("enc4", self.enc4.parameters()));
        p.extend(prefixed("bottleneck", self.bottleneck.parameters()));
        for (i, c) in self.dec.iter().enumerate() {
            p.extend(prefixed(&format!("dec{i}"), c.parameters()));
        }
        for (i, c) in self.head.iter().enumerate() {
            p.extend(prefixed(&format!("head{i}"), c.parameters()));
        }
        p.extend(prefixed("out", self.out.parameters()));
        p
    }
}
