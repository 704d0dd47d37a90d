//! Mixed-scale dense network (Pelt & Sethian 2018). Layer `i` (of `depth`) adds `width`
//! channels; channel `j` is `LeakyReLU(conv3_d(concat(all previous maps)))` with dilation
//! `d = ((i*width + j) mod max_dilation) + 1`. A 1x1 convolution over every accumulated channel
//! and a sigmoid give the output. Thesis configuration: 2-D, width 2, depth 15, max dilation 25,
//! i.e. 4,112 parameters ("about 4,000").

use super::{check_input, conv, head, ModelConfig};
use crate::nn::{prefixed, Conv, Module, Param};
use crate::{concat, Device, Result, Tensor};
use rand_chacha::ChaCha8Rng;

/// The MSD-Net.
pub struct MsdNet {
    cfg: ModelConfig,
    /// `layers[i][j]`: channel `j` of layer `i` (one output channel each).
    layers: Vec<Vec<Conv>>,
    out: Conv,
}

impl MsdNet {
    /// Builds the network.
    pub fn new(cfg: &ModelConfig, rng: &mut ChaCha8Rng, device: &Device) -> Result<MsdNet> {
        cfg.validate()?;
        let mut layers = vec![];
        let mut cin = 1;
        for i in 0..cfg.depth {
            let mut row = vec![];
            for j in 0..cfg.width {
                let d = (i * cfg.width + j) % cfg.max_dilation + 1;
                row.push(conv(cfg.dims, cin, 1, 3, d, rng, device)?);
            }
            cin += cfg.width;
            layers.push(row);
        }
        let out = head(cfg.dims, cin, rng, device)?;
        Ok(MsdNet {
            cfg: cfg.clone(),
            layers,
            out,
        })
    }
}

impl Module for MsdNet {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_input("msd", x, self.cfg.dims, 1)?;
        let mut h = x.clone();
        for row in &self.layers {
            let outs: Vec<Tensor> = row
                .iter()
                .map(|c| c.forward_leaky_relu(&h, self.cfg.slope))
                .collect::<Result<_>>()?;
            let mut all: Vec<&Tensor> = vec![&h];
            all.extend(outs.iter());
            h = concat(&all, 1)?;
        }
        self.out.forward(&h)?.sigmoid()
    }

    fn parameters(&self) -> Vec<Param> {
        let mut p = vec![];
        for (i, row) in self.layers.iter().enumerate() {
            for (j, c) in row.iter().enumerate() {
                p.extend(prefixed(&format!("layer{i}.ch{j}"), c.parameters()));
            }
        }
        p.extend(prefixed("out", self.out.parameters()));
        p
    }
}
