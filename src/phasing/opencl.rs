//! Phase retrieval on an OpenCL device: the state of one [`super::Phaser`] kept in device
//! buffers, and the cycle, LLK and modulus launches over them.
//!
//! One cycle is `psi = FFT(rho)` (out of place, so no copy), the Fourier projection (with the
//! 1/N of the inverse folded in), the inverse FFT of `psi` (ping-ponging with a scratch buffer,
//! the update reads whichever buffer holds the result) and the real-space update of `rho`: all
//! enqueued on the device's in-order queue with no host transfer. The LLK is reduced to
//! per-work-group partial sums on the device, of which only 4 floats per group come back.
//!
//! Shrink-wrap downloads `|rho|` (one f32 per voxel) every period, blurs and thresholds it on the
//! host with the CPU code ([`super::support`]), and uploads the new support (one byte per voxel)
//! when it is accepted; the object comes back to the host only when a run ends.

use super::kernels::{Algorithm, LlkSums};
use crate::backend::opencl::fft::{ClFftPlan, Landing};
use crate::backend::opencl::{i32_len, Arg, ClBuffer, Family, OpenClBackend};
use crate::fft::Direction;
use crate::Result;
use num_complex::Complex32;
use std::sync::Arc;

/// Complex values as interleaved f32.
fn to_interleaved(data: &[Complex32]) -> Vec<f32> {
    data.iter().flat_map(|c| [c.re, c.im]).collect()
}

/// The device state of a phaser.
pub struct DevicePhaser {
    be: Arc<OpenClBackend>,
    plan: ClFftPlan,
    n: usize,
    n_i32: i32,
    iobs: ClBuffer,
    mask: ClBuffer,
    support: ClBuffer,
    rho: ClBuffer,
    psi: ClBuffer,
    tmp: ClBuffer,
    amp: ClBuffer,
    partial: ClBuffer,
    groups: usize,
    wg: usize,
    half: f32,
    beta: f32,
}

impl std::fmt::Debug for DevicePhaser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevicePhaser")
            .field("device", &self.be.device_name())
            .field("shape", &self.plan.shape())
            .finish()
    }
}

impl DevicePhaser {
    /// Uploads the data (`iobs`, `mask` with the free pixels marked, FFT layout) and allocates the
    /// work buffers. Fails for shapes the device FFT does not support (prime factors above 7).
    pub fn new(
        be: Arc<OpenClBackend>,
        shape: &[usize],
        iobs: &[f32],
        mask: &[u8],
        support: &[u8],
        confidence: f32,
        beta: f32,
    ) -> Result<Self> {
        let plan = ClFftPlan::new(shape)?;
        let n = plan.len();
        let n_i32 = i32_len(2 * n, "opencl phasing")? / 2;
        let wg = {
            let cap = be.limits().wg1.clamp(1, 256);
            1usize << (usize::BITS - 1 - cap.leading_zeros())
        };
        let groups = n.div_ceil(wg).clamp(1, 1024);
        Ok(DevicePhaser {
            iobs: be.upload_slice(iobs)?,
            mask: be.upload_bytes(mask)?,
            support: be.upload_bytes(support)?,
            rho: be.fill(2 * n, 0.0)?,
            psi: be.fill(2 * n, 0.0)?,
            tmp: be.alloc(2 * n)?,
            amp: be.alloc(n)?,
            partial: be.alloc(4 * groups)?,
            groups,
            wg,
            half: 0.5 * confidence.max(0.0),
            beta,
            plan,
            n,
            n_i32,
            be,
        })
    }

    /// The device's name.
    pub fn device_name(&self) -> &str {
        self.be.device_name()
    }

    /// Uploads a new iterate.
    pub fn set_object(&mut self, rho: &[Complex32]) -> Result<()> {
        let data = to_interleaved(rho);
        let be = self.be.clone();
        be.finish()?;
        self.rho = be.upload_slice(&data)?;
        Ok(())
    }

    /// Uploads a new support (one byte per voxel, non-zero inside).
    pub fn set_support(&mut self, support: &[u8]) -> Result<()> {
        let be = self.be.clone();
        be.finish()?;
        be.write_bytes(&mut self.support, support)
    }

    /// Enqueues one cycle of `algorithm` (no host transfer, no wait).
    pub fn cycle(&self, algorithm: Algorithm) -> Result<()> {
        let be = &*self.be;
        self.plan.execute(
            be,
            &self.rho,
            &self.psi,
            &self.tmp,
            Direction::Forward,
            false,
        )?;
        be.launch1(
            Family::Phasing,
            "fourier_projection",
            &[
                Arg::Buf(&self.psi),
                Arg::Buf(&self.iobs),
                Arg::Buf(&self.mask),
                Arg::F32(1.0 / self.n as f32),
                Arg::F32(self.half),
                Arg::I32(self.n_i32),
            ],
            self.n,
        )?;
        let proj = match self.plan.process_ping_pong(
            be,
            &self.psi,
            &self.tmp,
            Direction::Inverse,
            false,
        )? {
            Landing::First => &self.psi,
            Landing::Second => &self.tmp,
        };
        let code = match algorithm {
            Algorithm::Er => 0,
            Algorithm::Hio => 1,
            Algorithm::Raar => 2,
        };
        be.launch1(
            Family::Phasing,
            "real_space_update",
            &[
                Arg::Buf(&self.rho),
                Arg::Buf(proj),
                Arg::Buf(&self.support),
                Arg::I32(code),
                Arg::F32(self.beta),
                Arg::I32(self.n_i32),
            ],
            self.n,
        )
    }

    /// Waits for the enqueued work.
    pub fn finish(&self) -> Result<()> {
        self.be.finish()
    }

    /// Poisson LLK sums of the current iterate (reads back 4 floats per work-group).
    pub fn llk(&self) -> Result<LlkSums> {
        let be = &*self.be;
        self.plan.execute(
            be,
            &self.rho,
            &self.psi,
            &self.tmp,
            Direction::Forward,
            false,
        )?;
        be.launch(
            Family::Phasing,
            "poisson_llk_partial",
            &[
                Arg::Buf(&self.psi),
                Arg::Buf(&self.iobs),
                Arg::Buf(&self.mask),
                Arg::I32(self.n_i32),
                Arg::Buf(&self.partial),
                Arg::Local(16 * self.wg),
            ],
            &[self.groups * self.wg],
            Some(&[self.wg]),
        )?;
        let p = be.read(&self.partial)?;
        let mut s = LlkSums::default();
        for g in p.chunks_exact(4) {
            s.observed += g[0] as f64;
            s.n_observed += g[1].round() as usize;
            s.free += g[2] as f64;
            s.n_free += g[3].round() as usize;
        }
        Ok(s)
    }

    /// Downloads `|rho|` into `out` (length n).
    pub fn modulus(&self, out: &mut [f32]) -> Result<()> {
        let be = &*self.be;
        be.launch1(
            Family::Phasing,
            "modulus",
            &[
                Arg::Buf(&self.rho),
                Arg::Buf(&self.amp),
                Arg::I32(self.n_i32),
            ],
            self.n,
        )?;
        let v = be.read(&self.amp)?;
        for (o, a) in out.iter_mut().zip(&v) {
            *o = *a;
        }
        Ok(())
    }

    /// Downloads the iterate into `out` (length n).
    pub fn object(&self, out: &mut [Complex32]) -> Result<()> {
        let v = self.be.read(&self.rho)?;
        for (o, c) in out.iter_mut().zip(v.chunks_exact(2)) {
            *o = Complex32::new(c[0], c[1]);
        }
        Ok(())
    }
}
