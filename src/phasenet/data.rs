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
    /// The network's grid: side of the training patterns.
    pub size: usize,
    /// Side of the simulated patterns when larger than `size`: crystals are simulated on this
    /// grid and the central `size` grid of their intensity and label is kept, exactly as a
    /// larger measured array is cropped at inference (0: simulate on `size` directly).
    pub simulate_size: usize,
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
            simulate_size: 0,
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
        if self.simulate_size != 0 && self.simulate_size < self.size {
            return Err(Error::arg(
                "phasenet recipe",
                "simulate_size",
                format!(
                    "must be 0 or at least the grid {} (got {})",
                    self.size, self.simulate_size
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.p_blur) {
            return Err(Error::arg("phasenet recipe", "p_blur", "must be in 0..1"));
        }
        Ok(())
    }

    /// Side of the simulated patterns (`simulate_size`, or `size` when it is 0).
    pub fn simulated_side(&self) -> usize {
        if self.simulate_size == 0 {
            self.size
        } else {
            self.simulate_size
        }
    }

    fn sim_config(&self, seed: u64) -> SimConfig {
        SimConfig {
            dim: self.dim,
            size: self.simulated_side(),
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

/// The central `g^d` block of a centred array (the array itself when its side is `g`); the
/// array centre `n/2` lands on the block centre `g/2`, as in the network's inference.
pub fn central_crop(a: &ArrayD<f32>, g: usize) -> ArrayD<f32> {
    if a.shape().iter().all(|&n| n == g) {
        return a.clone();
    }
    let offsets: Vec<usize> = a.shape().iter().map(|&n| n / 2 - g / 2).collect();
    ArrayD::from_shape_fn(IxDyn(&vec![g; a.ndim()]), |idx| {
        let src: Vec<usize> = offsets
            .iter()
            .enumerate()
            .map(|(d, o)| idx[d] + o)
            .collect();
        a[IxDyn(&src)]
    })
}

/// Simulates example `index` of the stream seeded by `seed`: a strained crystal on the recipe's
/// simulation grid, its Poisson-noisy intensity (with background, sometimes blurred) and its
/// label, both cut to the network's grid.
pub fn simulate_example(recipe: &PhaseRecipe, seed: u64, index: u64) -> Result<Example> {
    let mut rng = sim::sample_rng(seed ^ 0x3c6e_f372_fe94_f82b, index);
    let mut cfg = recipe.sim_config(seed);
    if rng.random_bool(recipe.p_blur.clamp(0.0, 1.0)) {
        cfg.realism.intensity_blur = Some(recipe.blur);
    }
    let s = sim::simulate_sample(&cfg, index)?;
    let bg = recipe.background.sample_log(&mut rng) as f32;
    let counts = sim::noise::poisson(&s.noiseless.mapv(|v| v + bg), &mut rng);
    let label = central_crop(&reciprocal_phase_label(&s.object), recipe.size);
    let counts = central_crop(&counts, recipe.size);
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

    #[test]
    fn cropped_examples_keep_the_centre_of_the_larger_simulation() {
        let a = ArrayD::from_shape_fn(IxDyn(&[8, 8]), |i| (10 * i[0] + i[1]) as f32);
        let c = central_crop(&a, 4);
        assert_eq!(c.shape(), &[4, 4]);
        assert_eq!(c[[2, 2]], a[[4, 4]]);
        assert_eq!(c[[0, 3]], a[[2, 5]]);

        let recipe = PhaseRecipe {
            dim: 2,
            size: 16,
            simulate_size: 32,
            oversampling: Range { min: 2.5, max: 3.5 },
            ..PhaseRecipe::default()
        };
        recipe.validate().unwrap();
        let e = simulate_example(&recipe, 2, 9).unwrap();
        assert_eq!(e.input.len(), 16 * 16);
        assert_eq!(e.target.len(), 2 * 16 * 16);
        // Referenced to the Bragg peak, which is the centre of the crop.
        let centre = 8 * 16 + 8;
        assert!((e.target[centre] - 1.0).abs() < 1e-6);
        assert!(e.target[centre + 16 * 16].abs() < 1e-6);
        let too_small = PhaseRecipe {
            simulate_size: 8,
            ..recipe
        };
        assert!(too_small.validate().is_err());
    }
}
