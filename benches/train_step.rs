//! One training step (forward, loss, backward, Adam) of a small 2-D UNet on every device:
//! time per step and peak memory. On the CPU the peak is the high-water mark of heap bytes
//! allocated during the step (a counting global allocator); on OpenCL devices it is the peak of
//! device buffers reported by the backend's pool.
//!
//! Run: `cargo bench --bench train_step`

use bragg::backend::opencl::list_devices;
use bragg::loss::LossSpec;
use bragg::nn::{prefixed, Adam, Conv, Init, Module, Optimizer, Param};
use bragg::{concat, Device, Result, Tensor};
use rand::SeedableRng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

struct Counting;
static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Two-level UNet: conv-pool-conv-pool-conv, upsample + skip concat twice, 1x1 + sigmoid.
struct SmallUnet {
    convs: Vec<Conv>,
}

impl SmallUnet {
    fn new(width: usize, device: &Device) -> Result<Self> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let w = width;
        let shapes = [
            (1, w),
            (w, 2 * w),
            (2 * w, 4 * w),
            (6 * w, 2 * w),
            (3 * w, w),
            (w, 1),
        ];
        let convs = shapes
            .iter()
            .enumerate()
            .map(|(i, &(c, o))| {
                let k = if i == 5 { 1 } else { 3 };
                Conv::new(c, o, &[k, k], &[1], Init::HeNormal, &mut rng, device)
            })
            .collect::<Result<_>>()?;
        Ok(SmallUnet { convs })
    }
}

impl Module for SmallUnet {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = &self.convs;
        let e1 = c[0].forward(x)?.leaky_relu(0.2)?;
        let e2 = c[1].forward(&e1.max_pool(&[2])?)?.leaky_relu(0.2)?;
        let b = c[2].forward(&e2.max_pool(&[2])?)?.leaky_relu(0.2)?;
        let d2 = c[3]
            .forward(&concat(&[&b.upsample(&[2])?, &e2], 1)?)?
            .leaky_relu(0.2)?;
        let d1 = c[4]
            .forward(&concat(&[&d2.upsample(&[2])?, &e1], 1)?)?
            .leaky_relu(0.2)?;
        c[5].forward(&d1)?.sigmoid()
    }
    fn parameters(&self) -> Vec<Param> {
        self.convs
            .iter()
            .enumerate()
            .flat_map(|(i, c)| prefixed(&format!("conv{i}"), c.parameters()))
            .collect()
    }
}

fn run(device: &Device, batch: usize, size: usize, width: usize, steps: usize) -> Result<()> {
    let model = SmallUnet::new(width, device)?;
    let params = model.parameters();
    let n = batch * size * size;
    let x: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
        .collect();
    let mask: Vec<f32> = (0..n).map(|i| f32::from((i % size) / 6 == 5)).collect();
    let shape = [batch, 1, size, size];
    let x = Tensor::from_vec(x, &shape, device)?;
    let target = x.mul_scalar(0.9)?;
    let mask = Tensor::from_vec(mask, &shape, device)?;
    let loss_spec: LossSpec = "mse+ssim+grad".parse()?;
    let mut adam = Adam::new(1e-4);
    let mut step = || -> Result<f32> {
        let loss = loss_spec.eval(&model.forward(&x)?, &target, Some(&mask))?;
        let grads = loss.backward()?;
        adam.step(&params, &grads)?;
        device.backend().synchronize()?;
        loss.item()
    };
    step()?; // warm-up: kernels compiled, pools filled
    let base = IN_USE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let t0 = Instant::now();
    for _ in 0..steps {
        step()?;
    }
    let per_step = t0.elapsed().as_secs_f64() / steps as f64;
    let host_peak = PEAK.load(Ordering::Relaxed) - base;
    let device_peak = device.backend().peak_memory();
    println!(
        "{:<40} batch {batch:>2} {size}^2 width {width:>2} ({} params): {:>8.1} ms/step, {:>6.1} images/s, host peak above baseline {:.1} MiB{}",
        device.name(),
        model.num_parameters(),
        per_step * 1e3,
        batch as f64 / per_step,
        host_peak as f64 / (1 << 20) as f64,
        device_peak.map_or(String::new(), |b| format!(", device peak {:.1} MiB", b as f64 / (1 << 20) as f64))
    );
    Ok(())
}

fn main() {
    let quick = std::env::args().any(|a| a == "--test");
    let (batch, size, width, steps) = if quick {
        (2, 32, 4, 1)
    } else {
        (8, 128, 16, 5)
    };
    let mut devices = vec![Device::cpu()];
    let (rows, _) = list_devices();
    for r in rows.iter().filter(|r| r.spec.starts_with("opencl")) {
        if let Ok(d) = Device::from_spec(&r.spec) {
            devices.push(d);
        }
    }
    for d in &devices {
        if let Err(e) = run(d, batch, size, width, steps) {
            eprintln!("{}: {e}", d.name());
        }
    }
}
