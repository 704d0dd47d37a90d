//! Seeded weight initialisers.

use rand::Rng;
use rand_distr::{Distribution, Normal, Uniform};

/// How to draw initial weights of a layer with the given fan-in and fan-out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// He (Kaiming) normal: `N(0, 2 / fan_in)`, for ReLU-like activations.
    HeNormal,
    /// He uniform: `U(-sqrt(6/fan_in), sqrt(6/fan_in))`.
    HeUniform,
    /// Glorot (Xavier) uniform: `U(-sqrt(6/(fan_in+fan_out)), ...)`, the Keras default.
    GlorotUniform,
    /// Glorot normal: `N(0, 2/(fan_in+fan_out))`.
    GlorotNormal,
    /// Every weight equal to the value.
    Constant(f32),
}

impl Init {
    /// Draws `n` weights.
    pub fn sample(self, n: usize, fan_in: usize, fan_out: usize, rng: &mut impl Rng) -> Vec<f32> {
        let (fi, fo) = (fan_in.max(1) as f32, fan_out.max(1) as f32);
        match self {
            Init::HeNormal => normal(n, (2.0 / fi).sqrt(), rng),
            Init::GlorotNormal => normal(n, (2.0 / (fi + fo)).sqrt(), rng),
            Init::HeUniform => uniform(n, (6.0 / fi).sqrt(), rng),
            Init::GlorotUniform => uniform(n, (6.0 / (fi + fo)).sqrt(), rng),
            Init::Constant(v) => vec![v; n],
        }
    }
}

fn normal(n: usize, std: f32, rng: &mut impl Rng) -> Vec<f32> {
    let d = Normal::new(0.0f32, std).expect("finite std");
    (0..n).map(|_| d.sample(rng)).collect()
}

fn uniform(n: usize, limit: f32, rng: &mut impl Rng) -> Vec<f32> {
    let d = Uniform::new_inclusive(-limit, limit).expect("finite limit");
    (0..n).map(|_| d.sample(rng)).collect()
}
