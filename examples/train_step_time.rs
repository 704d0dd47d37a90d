//! Times full training steps (forward, loss, backward, Adam, loss read back) of the 3-D patch
//! model or of the 3-D phasing network on one device, for comparison with
//! `scripts/train_step_torch.py` (the same models, losses and batches in PyTorch).
//!
//! `cargo run --release --example train_step_time -- patch|phase [--device SPEC] [--steps N]
//! [--batch B] [--width W] [--size S]`
//!
//! - `patch`: the thesis patch model (2.77 M parameters), batch 8 of 32^3 patches with a
//!   6-plane gap, loss `mae+grad-l1` over the gap (what `bragg-speed train` runs).
//! - `phase`: `phase-unet` 3-D depth 4, width 24 (the GPU recipe of `scripts/gpu_phasenet.sh`),
//!   batch 16 of 32^3, coherent phase loss with intensity weights.
//!
//! The first 3 steps are warm-up (kernel builds, conv tile autotuning on GPUs). Prints one line
//! per step and `RESULT case=.. device=.. median_ms=.. min_ms=..`.

use bragg::loss::{coherent_phase_loss, LossSpec};
use bragg::models::{build, ModelConfig, ModelKind};
use bragg::nn::{Adam, Optimizer};
use bragg::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

fn uniform(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random::<f32>()).collect()
}

fn main() -> bragg::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let case = args.get(1).cloned().unwrap_or_else(|| "patch".into());
    let device = match arg::<String>(&args, "--device") {
        Some(spec) => Device::from_spec(&spec)?,
        None => Device::default_device()?,
    };
    let steps: usize = arg(&args, "--steps").unwrap_or(10).max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (cfg, batch, size) = match case.as_str() {
        "patch" => (
            ModelConfig::thesis(ModelKind::PatchUnet3d),
            arg(&args, "--batch").unwrap_or(8),
            32,
        ),
        "phase" => {
            let mut c = ModelConfig::thesis(ModelKind::PhaseUnet);
            c.width = arg(&args, "--width").unwrap_or(24);
            (c, arg(&args, "--batch").unwrap_or(16), 32)
        }
        other => {
            eprintln!("unknown case {other:?}: use patch or phase");
            std::process::exit(2);
        }
    };
    let size: usize = arg(&args, "--size").unwrap_or(size);
    let model = build(&cfg, &device, 0)?;
    let params = model.parameters();
    let mut opt = Adam::new(1e-4);
    let vox = batch * size * size * size;
    let one = [batch, 1, size, size, size];
    // (input, loss of the prediction)
    type LossFn = Box<dyn Fn(&Tensor) -> bragg::Result<Tensor>>;
    let (x, loss): (Tensor, LossFn) = if case == "patch" {
        let y = uniform(&mut rng, vox);
        let m: Vec<f32> = (0..vox)
            .map(|i| ((13..19).contains(&(i % size)) as u8) as f32)
            .collect();
        let x: Vec<f32> = y.iter().zip(&m).map(|(a, b)| a * (1.0 - b)).collect();
        let spec: LossSpec = "mae+grad-l1".parse()?;
        let (y, m) = (
            Tensor::from_vec(y, &one, &device)?,
            Tensor::from_vec(m, &one, &device)?,
        );
        let x = Tensor::from_vec(x, &one, &device)?;
        (x, Box::new(move |p| spec.eval(p, &y, Some(&m))))
    } else {
        let phase: Vec<f32> = uniform(&mut rng, vox)
            .iter()
            .map(|u| (u - 0.5) * 6.0)
            .collect();
        let mut t: Vec<f32> = phase.iter().map(|p| p.cos()).collect();
        t.extend(phase.iter().map(|p| p.sin()));
        // [2, B, ...] -> [B, 2, ...]
        let two = [2, batch, size, size, size];
        let target = Tensor::from_vec(t, &two, &device)?.permute(&[1, 0, 2, 3, 4])?;
        let weight = Tensor::from_vec(uniform(&mut rng, vox), &one, &device)?;
        let x = Tensor::from_vec(uniform(&mut rng, vox), &one, &device)?;
        (
            x,
            Box::new(move |p| coherent_phase_loss(p, &target, &weight)),
        )
    };
    println!(
        "case {case} on {} : {} parameters, batch {batch} of {size}^3",
        device.name(),
        model.num_parameters()
    );
    let mut times = Vec::new();
    for step in 0..steps + 3 {
        let t0 = Instant::now();
        let l = loss(&model.forward(&x)?)?;
        let g = l.backward()?;
        opt.step(&params, &g)?;
        let v = l.item()?;
        let s = t0.elapsed().as_secs_f64();
        println!(
            "step {step} {:.2} ms loss {v:.6}{}",
            s * 1e3,
            if step < 3 { " (warm-up)" } else { "" }
        );
        if step >= 3 {
            times.push(s);
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "RESULT case={case} device={:?} median_ms={:.2} min_ms={:.2}",
        device.name(),
        times[times.len() / 2] * 1e3,
        times[0] * 1e3
    );
    Ok(())
}
