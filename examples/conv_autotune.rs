//! Heuristic against autotuned conv tiles on an OpenCL device, interleaved in one process.
//!
//! `cargo run --release --example conv_autotune -- [--device N] [--small] [--rounds R]
//! [--peak-gflops P]`
//!
//! Two backends are opened on the same device: one with the heuristic tile shapes
//! (`ConvTiles::for_gemm`) and one that times shapes at first use (`bragg::backend::opencl::
//! autotune`; the tile cache goes to `BRAGG_CACHE_DIR`, default `~/.cache/bragg`). For each conv
//! case of the BCDI models the example prints the tuning time, the shapes chosen per pass and the
//! forward + backward time of both (median of R interleaved rounds), with GFLOP/s and, given
//! `--peak-gflops`, the fraction of the device's FP32 peak. `--small` shrinks the cases (batch 1,
//! 16^3 / 64^2) for CPU OpenCL devices.

use bragg::backend::opencl::{list_devices, ConvPass, OpenClBackend};
use bragg::backend::{Backend, Storage};
use bragg::ops::conv::ConvGeometry;
use std::time::Instant;

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

fn cases(small: bool) -> Vec<(String, ConvGeometry)> {
    let (n3, s3, n2, s2, np) = if small {
        (1, 16, 1, 64, 2)
    } else {
        (8, 32, 32, 128, 32)
    };
    // (batch, C, O, input, kernel, dilation)
    type Case = (usize, usize, usize, [usize; 3], [usize; 3], usize);
    let list: [Case; 7] = [
        (n3, 32, 32, [s3; 3], [3; 3], 1),
        (n3, 32, 32, [s3; 3], [3; 3], 4),
        (n2, 48, 48, [1, s2, s2], [1, 3, 3], 1),
        (n2, 1, 48, [1, s2, s2], [1, 3, 3], 1),
        (n2, 50, 1, [1, s2, s2], [1, 3, 3], 10),
        (np, 33, 16, [16; 3], [2; 3], 3),
        (np, 32, 24, [16; 3], [4; 3], 1),
    ];
    list.iter()
        .map(|&(n, c, o, input, k, d)| {
            let two = input[0] == 1;
            let dil = if two { [1, d, d] } else { [d; 3] };
            let dims = if two {
                format!("{}^2", input[1])
            } else {
                format!("{}^3", input[0])
            };
            let name = format!(
                "conv{}d n{n} {c}->{o} {dims} k{} d{d}",
                if two { 2 } else { 3 },
                k[2]
            );
            let g = ConvGeometry::same("conv_autotune", n, c, o, input, k, dil, [1; 3])
                .expect("valid geometry");
            (name, g)
        })
        .collect()
}

/// Forward, data gradient and weight gradient once, waiting for the device.
fn step(be: &OpenClBackend, x: &Storage, w: &Storage, gy: &Storage, g: &ConvGeometry) {
    be.conv_forward(x, w, None, g).expect("forward");
    be.conv_backward_data(gy, w, g).expect("backward data");
    be.conv_backward_weight(x, gy, g).expect("backward weight");
    be.finish().expect("finish");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let small = args.iter().any(|a| a == "--small");
    let rounds: usize = arg(&args, "--rounds").unwrap_or(7);
    let peak: Option<f64> = arg(&args, "--peak-gflops");
    let (rows, note) = list_devices();
    let index = arg::<usize>(&args, "--device").or_else(|| {
        let cl = rows.iter().filter(|r| r.spec.starts_with("opencl:"));
        cl.min_by_key(|r| r.kind != "GPU")
            .and_then(|r| r.spec.strip_prefix("opencl:")?.parse().ok())
    });
    let Some(index) = index else {
        eprintln!(
            "conv_autotune: no OpenCL device ({})",
            note.unwrap_or_default()
        );
        return;
    };
    let heuristic = OpenClBackend::new(index).expect("open device");
    let tuned = OpenClBackend::new(index).expect("open device");
    heuristic.set_conv_autotune(false);
    tuned.set_conv_autotune(true);
    println!(
        "device opencl:{index} {} ({} compute units); median of {rounds} interleaved rounds, \
         forward + both gradients",
        heuristic.device_name().trim(),
        heuristic.limits().compute_units
    );
    let mut ratios = Vec::new();
    for (name, g) in cases(small) {
        let fill = |n: usize, seed: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (((i + seed) * 7919) % 1000) as f32 / 1000.0 - 0.5)
                .collect()
        };
        let (xv, wv, gv) = (
            fill(g.input_len(), 1),
            fill(g.weight_len(), 2),
            fill(g.output_len(), 3),
        );
        let data = |be: &OpenClBackend| {
            (
                be.upload(&xv).expect("upload"),
                be.upload(&wv).expect("upload"),
                be.upload(&gv).expect("upload"),
            )
        };
        let (hx, hw, hg) = data(&heuristic);
        let (tx, tw, tg) = data(&tuned);
        step(&heuristic, &hx, &hw, &hg, &g);
        let t0 = Instant::now();
        step(&tuned, &tx, &tw, &tg, &g);
        let tuning = t0.elapsed().as_secs_f64();
        let (mut th, mut tt) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let s = Instant::now();
            step(&heuristic, &hx, &hw, &hg, &g);
            th.push(s.elapsed().as_secs_f64());
            let s = Instant::now();
            step(&tuned, &tx, &tw, &tg, &g);
            tt.push(s.elapsed().as_secs_f64());
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (mh, mt) = (median(&mut th), median(&mut tt));
        let flops = 3.0 * g.forward_flops();
        let pct = |s: f64| match peak {
            Some(p) => format!(" ({:.0}% of peak)", flops / s / 1e9 / p * 100.0),
            None => String::new(),
        };
        println!(
            "{name:32} heuristic {:8.2} ms {:7.1} GFLOP/s{} | tuned {:8.2} ms {:7.1} GFLOP/s{} | \
             x{:.2} | first use {:.1} s",
            mh * 1e3,
            flops / mh / 1e9,
            pct(mh),
            mt * 1e3,
            flops / mt / 1e9,
            pct(mt),
            mh / mt,
            tuning
        );
        for pass in [
            ConvPass::Forward,
            ConvPass::BackwardData,
            ConvPass::BackwardWeight,
        ] {
            let h = heuristic.conv_tiles_of(pass, &g);
            let t = tuned.conv_tiles_of(pass, &g);
            if h.is_some() || t.is_some() {
                println!("    {pass:?}: heuristic {h:?}, tuned {t:?}");
            }
        }
        ratios.push(mh / mt);
    }
    let geo = ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len().max(1) as f64;
    println!(
        "geometric mean speed-up of the tuned tiles: x{:.2}",
        geo.exp()
    );
}
