//! Partial coherence: a point-spread function (PSF) that blurs the calculated intensity,
//! estimated during phasing by Richardson-Lucy updates (the practice for measured synchrotron
//! data, as in PyNX).
//!
//! A partially coherent beam measures `I_obs ~ |Psi|^2 (*) P`, the coherent intensity convolved
//! with a normalised kernel `P`. Ignoring `P` forces the object to explain the blur, which it
//! does with spurious high-frequency structure. With a PSF the Fourier projection scales `Psi`
//! by `sqrt(I_obs / (|Psi|^2 (*) P))` on observed voxels, the log-likelihood compares `I_obs` with
//! the convolved intensity, and every few cycles one Richardson-Lucy step refines `P`:
//! `P <- P * ((I_obs / I_calc) (x) |Psi|^2) / sum |Psi|^2` (`(x)` a cross-correlation), then
//! `P` is renormalised to a sum of 1. All arrays are in FFT layout (zero frequency, and the PSF
//! centre, at index 0); the convolutions run through the phaser's FFT plan.

use super::kernels::{self, OBSERVED};
use crate::fft::{Direction, FftPlan};
use crate::{Error, Result};
use num_complex::Complex32;
use rayon::prelude::*;

/// Settings of the PSF estimation.
#[derive(Debug, Clone, PartialEq)]
pub struct PsfOptions {
    /// Full width at half maximum (voxels) of the initial Gaussian PSF.
    pub fwhm: f32,
    /// Share of the cycles (0..1) run before the PSF is used. From the first cycle is best in
    /// our tests: cycles without it shrink the support to explain the blur, and the run rarely
    /// recovers from that.
    pub start: f32,
    /// Cycles between two updates of the PSF (0: the initial PSF stays fixed).
    pub period: usize,
    /// Richardson-Lucy steps per update.
    pub steps: usize,
}

impl Default for PsfOptions {
    fn default() -> Self {
        PsfOptions {
            fwhm: 1.0,
            start: 0.0,
            period: 20,
            steps: 10,
        }
    }
}

impl PsfOptions {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if !(self.fwhm > 0.0 && self.fwhm <= 32.0) {
            return Err(Error::arg(
                "phasing",
                "psf fwhm",
                format!("{} voxels: must be in (0, 32]", self.fwhm),
            ));
        }
        if !(0.0..1.0).contains(&self.start) {
            return Err(Error::arg(
                "phasing",
                "psf start",
                format!("{}: must be a share of the cycles in [0, 1)", self.start),
            ));
        }
        Ok(())
    }
}

/// The current PSF and its work arrays (allocated once per phaser).
#[derive(Debug, Clone)]
pub struct Psf {
    shape: Vec<usize>,
    /// The kernel in FFT layout (sum 1, non-negative).
    kernel: Vec<f32>,
    /// Its unscaled forward FFT.
    kernel_hat: Vec<Complex32>,
    /// `|Psi|^2`, then its FFT (kept for the update).
    intensity_hat: Vec<Complex32>,
    /// The convolved (calculated) intensity.
    calc: Vec<f32>,
    work: Vec<Complex32>,
    initial: Vec<f32>,
}

impl Psf {
    /// A Gaussian PSF of `fwhm` voxels for arrays of `shape`.
    pub fn gaussian(shape: &[usize], fwhm: f32, plan: &FftPlan) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n == 0 {
            return Err(Error::arg("phasing", "psf", "empty array"));
        }
        let sigma = f64::from(fwhm) / (8.0 * std::f64::consts::LN_2).sqrt();
        // distances from index 0 with wrap-around (FFT layout)
        let kernel: Vec<f32> = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(shape), |idx| {
            let r2: f64 = (0..shape.len())
                .map(|d| {
                    let (i, s) = (idx[d] as f64, shape[d]);
                    let x = if idx[d] <= s / 2 { i } else { i - s as f64 };
                    x * x
                })
                .sum();
            (-0.5 * r2 / (sigma * sigma)).exp() as f32
        })
        .into_iter()
        .collect();
        let mut psf = Psf {
            shape: shape.to_vec(),
            initial: Vec::new(),
            kernel,
            kernel_hat: vec![Complex32::default(); n],
            intensity_hat: vec![Complex32::default(); n],
            calc: vec![0.0; n],
            work: vec![Complex32::default(); n],
        };
        psf.normalise_and_transform(plan);
        psf.initial = psf.kernel.clone();
        Ok(psf)
    }

    /// Back to the initial kernel (at the start of each run).
    pub fn reset(&mut self, plan: &FftPlan) {
        self.kernel.copy_from_slice(&self.initial);
        self.normalise_and_transform(plan);
    }

    /// The kernel in FFT layout (centre at index 0), sum 1.
    pub fn kernel(&self) -> &[f32] {
        &self.kernel
    }

    /// The kernel with its centre moved to the array centre (the layout of the data files).
    pub fn centred_kernel(&self) -> Result<ndarray::ArrayD<f32>> {
        let a = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&self.shape), self.kernel.clone())
            .map_err(|e| Error::Msg(e.to_string()))?;
        Ok(crate::fft::fftshift(&a))
    }

    /// The calculated intensity of the last [`Psf::convolve`] call.
    pub fn calculated(&self) -> &[f32] {
        &self.calc
    }

    fn normalise_and_transform(&mut self, plan: &FftPlan) {
        let sum: f64 = self.kernel.iter().map(|&v| f64::from(v.max(0.0))).sum();
        let scale = if sum > 0.0 { (1.0 / sum) as f32 } else { 0.0 };
        for v in self.kernel.iter_mut() {
            *v = v.max(0.0) * scale;
        }
        for (h, &k) in self.kernel_hat.iter_mut().zip(&self.kernel) {
            *h = Complex32::new(k, 0.0);
        }
        plan.process_unscaled(&mut self.kernel_hat, Direction::Forward);
    }

    /// `calc <- |psi|^2 (*) P` for the forward-transformed wave `psi` (same scale as the data).
    pub fn convolve(&mut self, psi: &[Complex32], plan: &FftPlan) {
        self.intensity_hat
            .par_iter_mut()
            .zip(psi.par_iter())
            .for_each(|(h, p)| *h = Complex32::new(p.norm_sqr(), 0.0));
        plan.process_unscaled(&mut self.intensity_hat, Direction::Forward);
        self.reconvolve(plan);
    }

    /// `calc <- |psi|^2 (*) P` from the stored transform of `|psi|^2` (after a kernel update).
    fn reconvolve(&mut self, plan: &FftPlan) {
        let n = self.calc.len() as f32;
        self.work
            .par_iter_mut()
            .zip(
                self.intensity_hat
                    .par_iter()
                    .zip(self.kernel_hat.par_iter()),
            )
            .for_each(|(w, (a, b))| *w = a * b);
        plan.process_unscaled(&mut self.work, Direction::Inverse);
        self.calc
            .par_iter_mut()
            .zip(self.work.par_iter())
            .for_each(|(c, w)| *c = (w.re / n).max(0.0));
    }

    /// The Fourier projection with partial coherence: observed voxels of `psi` are scaled by
    /// `sqrt(iobs / calc)` (`calc` from [`Psf::convolve`] of the same `psi`), the others kept;
    /// every voxel is then multiplied by `scale`.
    pub fn project(&self, psi: &mut [Complex32], iobs: &[f32], mask: &[u8], scale: f32) {
        psi.par_iter_mut()
            .zip(iobs.par_iter().zip(mask.par_iter()))
            .zip(self.calc.par_iter())
            .for_each(|((p, (&i, &m)), &c)| {
                if m != OBSERVED {
                    *p *= scale;
                    return;
                }
                let obs = i.max(0.0);
                if c > 1e-20 {
                    *p *= scale * (obs / c).sqrt();
                } else {
                    *p = Complex32::new(scale * obs.sqrt(), 0.0);
                }
            });
    }

    /// `steps` Richardson-Lucy steps of the kernel from the data and the `|psi|^2` of the last
    /// [`Psf::convolve`]; the calculated intensity is then that of the new kernel. Voxels
    /// that are not observed weigh 1 (neutral).
    pub fn update(&mut self, iobs: &[f32], mask: &[u8], plan: &FftPlan, steps: usize) {
        for _ in 0..steps {
            self.step(iobs, mask, plan);
            self.reconvolve(plan);
        }
    }

    fn step(&mut self, iobs: &[f32], mask: &[u8], plan: &FftPlan) {
        let n = iobs.len() as f32;
        let total: f64 = self.intensity_hat[0].re as f64;
        if total <= 0.0 {
            return;
        }
        self.work
            .par_iter_mut()
            .zip(iobs.par_iter().zip(mask.par_iter()))
            .zip(self.calc.par_iter())
            .for_each(|((w, (&i, &m)), &c)| {
                let r = if m == OBSERVED && c > 1e-20 {
                    i.max(0.0) / c
                } else {
                    1.0
                };
                *w = Complex32::new(r, 0.0);
            });
        plan.process_unscaled(&mut self.work, Direction::Forward);
        // correlation: IFFT(R conj(I_hat)) = sum_y r(y) I(y - x)
        self.work
            .par_iter_mut()
            .zip(self.intensity_hat.par_iter())
            .for_each(|(w, h)| *w *= h.conj());
        plan.process_unscaled(&mut self.work, Direction::Inverse);
        let scale = 1.0 / (n as f64 * total);
        self.kernel
            .par_iter_mut()
            .zip(self.work.par_iter())
            .for_each(|(k, w)| *k *= (w.re as f64 * scale).max(0.0) as f32);
        self.normalise_and_transform(plan);
    }

    /// Poisson LLK sums of the last calculated intensity against the data.
    pub fn llk(&self, iobs: &[f32], mask: &[u8]) -> kernels::LlkSums {
        kernels::poisson_llk_intensity(&self.calc, iobs, mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(shape: &[usize], seed: u32) -> Vec<Complex32> {
        // a smooth, non-symmetric wave with its energy near index 0
        let n: usize = shape.iter().product();
        let mut out = vec![Complex32::default(); n];
        let mut idx = vec![0usize; shape.len()];
        for v in out.iter_mut() {
            let mut r2 = 0.0f32;
            let mut ph = seed as f32 * 0.1;
            for (d, (&i, &s)) in idx.iter().zip(shape).enumerate() {
                let x = if i <= s / 2 {
                    i as f32
                } else {
                    i as f32 - s as f32
                };
                r2 += x * x;
                ph += 0.3 * (d as f32 + 1.0) * x;
            }
            *v = Complex32::from_polar(100.0 * (-r2 / 18.0).exp() + 1.0, ph);
            for (i, &s) in idx.iter_mut().zip(shape).rev() {
                *i += 1;
                if *i < s {
                    break;
                }
                *i = 0;
            }
        }
        out
    }

    #[test]
    fn gaussian_kernel_is_normalised_and_conserves_intensity() {
        let shape = [16, 12];
        let plan = FftPlan::new(&shape);
        let mut psf = Psf::gaussian(&shape, 2.0, &plan).unwrap();
        let sum: f32 = psf.kernel().iter().sum();
        assert!((sum - 1.0).abs() < 1e-5);
        // the maximum sits at index 0 and the kernel is symmetric
        assert!(psf.kernel()[0] >= psf.kernel().iter().copied().fold(0.0, f32::max));
        assert!((psf.kernel()[1] - psf.kernel()[11]).abs() < 1e-7);
        let psi = blob(&shape, 1);
        psf.convolve(&psi, &plan);
        let before: f64 = psi.iter().map(|p| p.norm_sqr() as f64).sum();
        let after: f64 = psf.calculated().iter().map(|&v| v as f64).sum();
        assert!((before - after).abs() / before < 1e-4, "{before} {after}");
        // and blurs: the peak drops
        assert!(psf.calculated()[0] < psi[0].norm_sqr());
    }

    #[test]
    fn projection_matches_the_data_through_the_blur() {
        let shape = [8, 8, 8];
        let plan = FftPlan::new(&shape);
        let mut psf = Psf::gaussian(&shape, 1.5, &plan).unwrap();
        let mut psi = blob(&shape, 2);
        psf.convolve(&psi, &plan);
        // data = twice the blurred intensity: the projection scales psi by sqrt(2) everywhere
        let iobs: Vec<f32> = psf.calculated().iter().map(|&c| 2.0 * c).collect();
        let mut mask = vec![OBSERVED; iobs.len()];
        mask[5] = kernels::MASKED;
        let orig = psi.clone();
        psf.project(&mut psi, &iobs, &mask, 1.0);
        for (k, (a, b)) in psi.iter().zip(&orig).enumerate() {
            let want = if k == 5 { 1.0 } else { 2f32.sqrt() };
            assert!((a.norm() / b.norm() - want).abs() < 1e-3, "{k}");
            assert!((a.arg() - b.arg()).abs() < 1e-4);
        }
    }

    #[test]
    fn richardson_lucy_recovers_the_true_width() {
        let shape = [24, 24];
        let plan = FftPlan::new(&shape);
        let psi = blob(&shape, 3);
        let mut truth = Psf::gaussian(&shape, 2.5, &plan).unwrap();
        truth.convolve(&psi, &plan);
        let iobs = truth.calculated().to_vec();
        let mask = vec![OBSERVED; iobs.len()];
        let mut psf = Psf::gaussian(&shape, 1.0, &plan).unwrap();
        let dist = |p: &Psf| -> f32 {
            p.kernel()
                .iter()
                .zip(truth.kernel())
                .map(|(a, b)| (a - b).abs())
                .sum()
        };
        let first = dist(&psf);
        let mut llk0 = None;
        psf.convolve(&psi, &plan);
        for _ in 0..60 {
            llk0.get_or_insert(psf.llk(&iobs, &mask).llk());
            psf.update(&iobs, &mask, &plan, 5);
        }
        psf.convolve(&psi, &plan);
        let llk1 = psf.llk(&iobs, &mask).llk();
        assert!(dist(&psf) < 0.5 * first, "{} vs {first}", dist(&psf));
        assert!(llk1 < 0.2 * llk0.unwrap(), "{llk1} vs {llk0:?}");
        psf.reset(&plan);
        assert!((dist(&psf) - first).abs() < 1e-6);
    }

    #[test]
    fn bad_settings_are_errors() {
        for o in [
            PsfOptions {
                fwhm: 0.0,
                ..Default::default()
            },
            PsfOptions {
                start: 1.0,
                ..Default::default()
            },
        ] {
            assert!(o.validate().is_err());
        }
        assert!(PsfOptions::default().validate().is_ok());
    }
}
