//! Training data of the phasing network, simulated on the fly: strained crystals, their noisy
//! intensity (the input) and the phase of their diffracted wave (the label).
//!
//! Labels follow the conventions that make the phase a function of the intensity alone, up to
//! the symmetries the loss ignores: the object is centred on its centre of mass (exactly, with a
//! sub-voxel phase ramp), so the translation ambiguity (a linear phase ramp in reciprocal space)
//! is fixed, and the phase is referenced to the central voxel (the Bragg peak).

use crate::sim::diffraction::diffract;
use crate::sim::{self, Range, Realism, SimConfig};
use crate::{Error, Result};
use ndarray::{ArrayD, IxDyn};
use num_complex::Complex32;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// How training crystals are drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PhaseRecipe {
    /// 2 or 3 dimensions.
    pub dim: usize,
    /// Array side of the simulated patterns (the network's grid).
    pub size: usize,
    /// Maximum photon count per pattern (drawn log-uniformly).
    pub photons: Range,
    /// Linear oversampling per axis.
    pub oversampling: Range,
    /// Probability of a partial-coherence blur of the intensity.
    pub p_blur: f64,
    /// Blur sigma (voxels) when blurred.
    pub blur: Range,
    /// Mean background counts per voxel before Poisson noise (drawn log-uniformly).
    pub background: Range,
    /// Shapes and strain fields.
    pub realism: Realism,
}

/// A realism model with strong strain: a correlated phase field of up to 3 pi, a strain
/// gradient of up to 4 pi in 70% of the crystals and an edge dislocation in half of them, so
/// that phase ranges from under 1 pi to about 6 pi are all seen.
pub fn strained_realism() -> Realism {
    Realism {
        phase_range: Range {
            min: 0.2 * PI,
            max: 3.0 * PI,
        },
        p_gradient: 0.7,
        gradient_phase: Range {
            min: 0.5 * PI,
            max: 4.0 * PI,
        },
        p_dislocation: 0.5,
        ..Realism::default()
    }
}

impl Default for PhaseRecipe {
    fn default() -> Self {
        PhaseRecipe {
            dim: 3,
            size: 32,
            photons: Range { min: 1e5, max: 1e9 },
            oversampling: Range { min: 2.0, max: 4.5 },
            p_blur: 0.2,
            blur: Range { min: 0.3, max: 0.8 },
            background: Range {
                min: 1e-3,
                max: 1.0,
            },
            realism: strained_realism(),
        }
    }
}

impl PhaseRecipe {
    /// Checks the settings (through the simulator's own validation).
    pub fn validate(&self) -> Result<()> {
        self.sim_config(0).validate()?;
        if !(0.0..=1.0).contains(&self.p_blur) {
            return Err(Error::arg("phasenet recipe", "p_blur", "must be in 0..1"));
        }
        Ok(())
    }

    fn sim_config(&self, seed: u64) -> SimConfig {
        SimConfig {
            dim: self.dim,
            size: self.size,
            count: 1,
            seed,
            gap: sim::gaps::GapSpec::None,
            photons: self.photons,
            oversampling: self.oversampling,
            realism: self.realism.clone(),
            ..SimConfig::default()
        }
    }
}

/// One training example.
#[derive(Debug, Clone)]
pub struct Example {
    /// Network input: `log(1 + I)` min-max scaled, `n` values.
    pub input: Vec<f32>,
    /// Label: `cos(phi)` for the `n` voxels, then `sin(phi)`.
    pub target: Vec<f32>,
    /// Peak-to-peak object phase over the crystal, radians.
    pub phase_span: f32,
}

/// `log(1 + max(I, 0))` scaled to `[0, 1]` over the array (all zeros for a flat array).
pub fn network_input(intensity: &ArrayD<f32>) -> Vec<f32> {
    let mut v: Vec<f32> = intensity.iter().map(|&i| i.max(0.0).ln_1p()).collect();
    let (lo, hi) = v
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let span = hi - lo;
    if span > 0.0 && span.is_finite() {
        v.iter_mut().for_each(|x| *x = (*x - lo) / span);
    } else {
        v.iter_mut().for_each(|x| *x = 0.0);
    }
    v
}

/// Centre of mass of `|a|^2` per axis, in voxel coordinates.
pub fn centre_of_mass(a: &ArrayD<Complex32>) -> Vec<f64> {
    let mut c = vec![0.0f64; a.ndim()];
    let mut total = 0.0f64;
    for (idx, v) in a.indexed_iter() {
        let w = v.norm_sqr() as f64;
        total += w;
        for (d, cd) in c.iter_mut().enumerate() {
            *cd += w * idx[d] as f64;
        }
    }
    if total > 0.0 {
        c.iter_mut().for_each(|v| *v /= total);
    } else {
        c.iter_mut()
            .zip(a.shape())
            .for_each(|(v, &n)| *v = (n / 2) as f64);
    }
    c
}

/// Wraps an angle into `(-pi, pi]`.
pub fn wrap(phi: f64) -> f64 {
    let w = (phi + PI).rem_euclid(2.0 * PI) - PI;
    if w <= -PI {
        w + 2.0 * PI
    } else {
        w
    }
}

/// The label of an object (centred layout, as the simulator stores it): the phase of its
/// diffracted wave (Bragg peak at index `n/2`) after moving the object's centre of mass exactly
/// onto the array centre, referenced to the central voxel.
pub fn reciprocal_phase_label(object: &ArrayD<Complex32>) -> ArrayD<f32> {
    let shape = object.shape().to_vec();
    let com = centre_of_mass(object);
    let delta: Vec<f64> = com
        .iter()
        .zip(&shape)
        .map(|(&c, &n)| (c - (n / 2) as f64) / n as f64)
        .collect();
    let f = diffract(object);
    // Shift theorem: an object displaced by delta has its wave times exp(-2 pi i k.delta/n);
    // undo it.
    let phase = ArrayD::from_shape_fn(IxDyn(&shape), |idx| {
        let mut ramp = 0.0;
        for (d, &dd) in delta.iter().enumerate() {
            ramp += (idx[d] as f64 - (shape[d] / 2) as f64) * dd;
        }
        f[&idx].arg() as f64 + 2.0 * PI * ramp
    });
    let centre: Vec<usize> = shape.iter().map(|&n| n / 2).collect();
    let reference = phase[IxDyn(&centre)];
    phase.mapv(|p| wrap(p - reference) as f32)
}

/// Simulates example `index` of the stream seeded by `seed`: a strained crystal on the recipe's
/// grid, its Poisson-noisy intensity (with background, sometimes blurred) and its label.
pub fn simulate_example(recipe: &PhaseRecipe, seed: u64, index: u64) -> Result<Example> {
    let mut rng = sim::sample_rng(seed ^ 0x3c6e_f372_fe94_f82b, index);
    let mut cfg = recipe.sim_config(seed);
    if rng.random_bool(recipe.p_blur.clamp(0.0, 1.0)) {
        cfg.realism.intensity_blur = Some(recipe.blur);
    }
    let s = sim::simulate_sample(&cfg, index)?;
    let bg = recipe.background.sample_log(&mut rng) as f32;
    let counts = sim::noise::poisson(&s.noiseless.mapv(|v| v + bg), &mut rng);
    let label = reciprocal_phase_label(&s.object);
    let mut target: Vec<f32> = label.iter().map(|p| p.cos()).collect();
    target.extend(label.iter().map(|p| p.sin()));
    Ok(Example {
        input: network_input(&counts),
        target,
        phase_span: s.params.phase_span,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::diffraction::centred_ifft;
    use ndarray::Zip;

    #[test]
    fn label_phase_rebuilds_the_object_centred_on_its_mass() {
        let recipe = PhaseRecipe {
            dim: 2,
            size: 32,
            ..PhaseRecipe::default()
        };
        let cfg = recipe.sim_config(7);
        let s = sim::simulate_sample(&cfg, 3).unwrap();
        let label = reciprocal_phase_label(&s.object);
        let amp = diffract(&s.object).mapv(|v| v.norm());
        let wave = Zip::from(&amp)
            .and(&label)
            .map_collect(|&a, &p| Complex32::from_polar(a, p));
        let rebuilt = centred_ifft(&wave);
        let com = centre_of_mass(&rebuilt);
        for c in com {
            assert!((c - 16.0).abs() < 0.05, "{c}");
        }
        // The same object (same energy), only moved by a sub-voxel shift.
        let (m0, m1): (f32, f32) = (
            s.object.iter().map(|v| v.norm_sqr()).sum(),
            rebuilt.iter().map(|v| v.norm_sqr()).sum(),
        );
        assert!((m0 - m1).abs() / m0 < 1e-3, "{m0} {m1}");
        assert!(label[[16, 16]].abs() < 1e-6);
    }

    #[test]
    fn examples_are_reproducible_and_scaled() {
        let recipe = PhaseRecipe {
            dim: 2,
            size: 32,
            ..PhaseRecipe::default()
        };
        let a = simulate_example(&recipe, 1, 5).unwrap();
        let b = simulate_example(&recipe, 1, 5).unwrap();
        assert_eq!(a.input, b.input);
        assert_eq!(a.input.len(), 32 * 32);
        assert_eq!(a.target.len(), 2 * 32 * 32);
        let max = a.input.iter().copied().fold(0.0f32, f32::max);
        assert!((max - 1.0).abs() < 1e-6);
        assert!(a.phase_span > 0.0);
        for i in 0..32 * 32 {
            let r = a.target[i].hypot(a.target[i + 32 * 32]);
            assert!((r - 1.0).abs() < 1e-5);
        }
    }
}
