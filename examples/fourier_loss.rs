//! A small network trained through the differentiable FFT, on the public `bragg::` API only.
//!
//! A 2-D crystal (a disc with a smooth strain phase) gives the "measured" diffraction
//! intensity `I = |FFT(object)|^2` (centred with `fftshift`). A three-layer CNN maps a fixed
//! noise image to the amplitude and phase of an object inside the known support; the loss
//! compares the modelled intensity `|FFT(amplitude * exp(i phase))|^2` with `I` (on amplitudes,
//! `mean((sqrt(|F|^2 + eps) - sqrt(I + eps))^2) / mean(I)`), and its gradient flows back
//! through the FFT, the complex product and `exp(i phase)` into the network. This is the
//! physics-aware loss of deep-learning phase retrieval. The loss must fall; the example exits
//! non-zero otherwise.
//!
//! ```text
//! BRAGG_DEVICE=cpu      cargo run --release --example fourier_loss
//! BRAGG_DEVICE=opencl:0 cargo run --release --example fourier_loss
//! ```

use bragg::autograd::no_grad;
use bragg::nn::{Adam, Conv, Init, Module, Optimizer, Param};
use bragg::rand::{Rng, SeedableRng};
use bragg::{ComplexTensor, Device, Error, Result, Tensor};

const N: usize = 32;

/// The support (disc of radius 9) and the true object's amplitude and phase, as host vectors.
fn truth() -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut support = vec![0.0; N * N];
    let mut amp = vec![0.0; N * N];
    let mut phase = vec![0.0; N * N];
    for y in 0..N {
        for x in 0..N {
            let (dy, dx) = (y as f32 - 15.5, x as f32 - 15.5);
            let r = (dx * dx + dy * dy).sqrt();
            if r < 9.0 {
                let i = y * N + x;
                support[i] = 1.0;
                amp[i] = 1.0 - 0.3 * (r / 9.0).powi(2);
                phase[i] = 0.8 * (dx / 9.0) * (dy / 9.0) + 0.4 * (dx / 9.0);
            }
        }
    }
    (support, amp, phase)
}

/// The network: three "same" convolutions with tanh in between, 2 output channels.
struct Net {
    layers: Vec<Conv>,
}

impl Net {
    fn new(device: &Device) -> Result<Net> {
        let mut rng = bragg::rand_chacha::ChaCha8Rng::seed_from_u64(7);
        Ok(Net {
            layers: vec![
                Conv::new(4, 16, &[3, 3], &[1], Init::GlorotUniform, &mut rng, device)?,
                Conv::new(16, 16, &[3, 3], &[1], Init::GlorotUniform, &mut rng, device)?,
                Conv::new(16, 2, &[3, 3], &[1], Init::GlorotUniform, &mut rng, device)?,
            ],
        })
    }
}

impl Module for Net {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            h = l.forward(&h)?;
            if i + 1 < self.layers.len() {
                h = h.tanh()?;
            }
        }
        Ok(h)
    }

    fn parameters(&self) -> Vec<Param> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| bragg::nn::prefixed(&format!("conv{i}"), l.parameters()))
            .collect()
    }
}

/// The centred intensity `|FFT(amp * exp(i phase))|^2` of a `[N, N]` object.
fn intensity(amp: &Tensor, phase: &Tensor) -> Result<Tensor> {
    ComplexTensor::from_polar(amp, phase)?
        .fftn()?
        .norm_sqr()?
        .fftshift(&[0, 1])
}

/// Trains for `steps` steps on `device`; returns the first and the last loss.
pub fn run(device: &Device, steps: usize) -> Result<(f32, f32)> {
    let (support, amp, phase) = truth();
    let support = Tensor::from_vec(support, &[N, N], device)?;
    let measured = no_grad(|| {
        intensity(
            &Tensor::from_vec(amp, &[N, N], device)?,
            &Tensor::from_vec(phase, &[N, N], device)?,
        )
    })?;
    let eps = 1e-3;
    let measured_amp = measured.add_scalar(eps)?.sqrt()?;
    let scale = 1.0 / measured.mean()?.item()?;

    let mut rng = bragg::rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let noise: Vec<f32> = (0..4 * N * N)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let z = Tensor::from_vec(noise, &[1, 4, N, N], device)?;
    let net = Net::new(device)?;
    let params = net.parameters();
    let mut opt = Adam::new(0.01);

    let (mut first, mut last) = (f32::NAN, f32::NAN);
    for step in 0..steps {
        let out = net.forward(&z)?;
        let a = out
            .narrow(1, 0, 1)?
            .reshape(&[N, N])?
            .sigmoid()?
            .mul(&support)?;
        let p = out
            .narrow(1, 1, 1)?
            .reshape(&[N, N])?
            .tanh()?
            .mul_scalar(std::f32::consts::PI)?;
        let model = intensity(&a, &p)?;
        let loss = model
            .add_scalar(eps)?
            .sqrt()?
            .sub(&measured_amp)?
            .square()?
            .mean()?
            .mul_scalar(scale)?;
        let grads = loss.backward()?;
        opt.step(&params, &grads)?;
        let v = loss.item()?;
        if !v.is_finite() {
            return Err(Error::Msg(format!("loss is {v} at step {step}")));
        }
        if step == 0 {
            first = v;
        }
        last = v;
        if step % 20 == 0 || step + 1 == steps {
            println!("  step {step:3}  loss {v:.5}");
        }
    }
    Ok((first, last))
}

#[allow(dead_code)]
fn main() {
    let steps = 120;
    let result = Device::default_device().and_then(|d| {
        println!("fourier_loss on {}", d.name());
        run(&d, steps)
    });
    match result {
        Ok((first, last)) if last < 0.5 * first => {
            println!("fourier_loss: OK, loss {first:.5} -> {last:.5}");
        }
        Ok((first, last)) => {
            eprintln!("fourier_loss: FAILED: the loss did not fall enough ({first} -> {last})");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("fourier_loss: FAILED: {e}");
            std::process::exit(1);
        }
    }
}
