//! The reciprocal-space phasing network: training on simulated strained crystals, prediction on
//! arrays of any size, the network start of iterative phasing, and the shipped weights.

use bragg::models::{ModelConfig, ModelKind};
use bragg::phasenet::data::{reciprocal_phase_label, simulate_example, PhaseRecipe};
use bragg::phasenet::start::{load_phasenet, shipped_phasenet};
use bragg::phasenet::train::{batch_tensors, validation_losses};
use bragg::phasenet::{train_phasenet, PhaseLoss, PhaseTrainConfig};
use bragg::phasing::{self, post, Chain, Options, Problem, Start};
use bragg::sim::{self, SimConfig};
use bragg::Device;
use ndarray::ArrayD;
use num_complex::Complex32;
use std::path::Path;

fn tiny_cfg(out: &Path, steps: usize) -> PhaseTrainConfig {
    let mut cfg = PhaseTrainConfig::new(out);
    cfg.model = ModelConfig {
        dims: 2,
        width: 4,
        depth: 3,
        ..ModelConfig::thesis(ModelKind::PhaseUnet)
    };
    cfg.recipe = PhaseRecipe {
        dim: 2,
        size: 32,
        ..PhaseRecipe::default()
    };
    cfg.steps = steps;
    cfg.batch = 4;
    cfg.validation = 8;
    cfg.checkpoint_every = 5;
    cfg.progress = false;
    cfg
}

#[test]
fn training_lowers_the_loss_checkpoints_and_refuses_changed_resume() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.safetensors");
    let dev = Device::cpu();
    let cfg = tiny_cfg(&out, 60);
    let log = train_phasenet(&cfg, &dev).unwrap();
    let first = log.first().unwrap().loss;
    let last = log.last().unwrap();
    assert!(last.loss < first, "loss {first} -> {}", last.loss);
    // The trained network beats a flat phase on held-out crystals.
    let (val, flat) = (last.val_loss.unwrap(), last.val_flat.unwrap());
    assert!(val < flat, "validation {val} vs flat phase {flat}");
    assert!(out.exists() && bragg::train::checkpoint_path(&out).exists());
    // Resuming to a longer schedule continues from the checkpoint.
    let mut more = tiny_cfg(&out, 65);
    more.resume = true;
    let log2 = train_phasenet(&more, &dev).unwrap();
    assert_eq!(log2.last().unwrap().step, 65);
    assert!(log2.len() > log.len());
    // Changed settings are refused, naming what changed.
    let mut changed = tiny_cfg(&out, 70);
    changed.resume = true;
    changed.loss = PhaseLoss::Mse;
    let err = train_phasenet(&changed, &dev).unwrap_err().to_string();
    assert!(err.contains("loss"), "{err}");
}

#[test]
fn prediction_crops_or_pads_any_size_to_the_grid() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.safetensors");
    let dev = Device::cpu();
    train_phasenet(&tiny_cfg(&out, 2), &dev).unwrap();
    let net = load_phasenet(&out, &dev).unwrap();
    assert_eq!(net.grid, 32);
    for (n, known) in [(64usize, 32 * 32), (32, 32 * 32), (20, 20 * 20)] {
        let i = ArrayD::from_shape_fn(ndarray::IxDyn(&[n, n]), |ix| {
            let r2 =
                (ix[0] as f32 - (n / 2) as f32).powi(2) + (ix[1] as f32 - (n / 2) as f32).powi(2);
            1e6 * (-r2 / 20.0).exp()
        });
        let p = net.predict(&i, None, &dev).unwrap();
        assert_eq!(p.phase.shape(), &[n, n]);
        assert_eq!(p.known.iter().filter(|&&k| k != 0).count(), known);
        assert_eq!(p.known[[n / 2, n / 2]], 1);
        assert!(p
            .phase
            .iter()
            .all(|v| v.is_finite() && v.abs() <= std::f32::consts::PI + 1e-5));
    }
    // A 3-D intensity is refused by a 2-D network, with the reason.
    let err = net
        .predict(&ArrayD::zeros(ndarray::IxDyn(&[32, 32, 32])), None, &dev)
        .unwrap_err()
        .to_string();
    assert!(err.contains("2-D"), "{err}");
}

/// The start plumbing, with an oracle in place of the network: the true phase on the central
/// grid of a strained crystal, random phases outside, the support from the predicted object.
#[test]
fn a_correct_phase_on_the_central_grid_starts_phasing_in_the_right_basin() {
    let cfg = SimConfig {
        dim: 2,
        size: 64,
        count: 1,
        seed: 11,
        gap: sim::gaps::GapSpec::None,
        photons: sim::Range { min: 1e8, max: 1e8 },
        oversampling: sim::Range { min: 2.5, max: 3.0 },
        realism: bragg::phasenet::study::high_strain_test_realism(),
        ..SimConfig::default()
    };
    let s = sim::simulate_sample(&cfg, 0).unwrap();
    let label = reciprocal_phase_label(&s.object);
    let known = ArrayD::from_shape_fn(label.raw_dim(), |ix| {
        u8::from((16..48).contains(&ix[0]) && (16..48).contains(&ix[1]))
    });
    let problem = Problem::from_centred(&s.truth, None).unwrap();
    let options = Options {
        chain: Chain::parse("RAAR**150,ER**50").unwrap(),
        ..Options::default()
    };
    let start = Start::Predicted {
        phase: label,
        known,
    };
    let runs = phasing::phase(&problem, &options, &start, &mut |_, _, _| {}).unwrap();
    let a: Vec<Complex32> = runs[0].object.iter().copied().collect();
    let t: Vec<Complex32> = s.object.iter().copied().collect();
    let m = post::align(&a, &t, &[64, 64]).metrics;
    assert!(m.complex_error < 0.2, "{m:?}");
}

#[test]
fn shipped_networks_load_and_beat_a_flat_phase_on_held_out_crystals() {
    let dev = Device::cpu();
    for dims in [2usize, 3] {
        let net = shipped_phasenet(dims, &dev).unwrap();
        assert_eq!(net.config.dims, dims);
        let mut cfg = PhaseTrainConfig::new("unused.safetensors");
        cfg.model = net.config.clone();
        // the network's own training recipe (grid, simulation size, oversampling)
        cfg.recipe = net
            .metadata
            .get(bragg::phasenet::train::META_RECIPE)
            .map(|r| serde_json::from_str(r).unwrap())
            .unwrap_or_else(|| PhaseRecipe {
                dim: dims,
                size: net.grid,
                ..PhaseRecipe::default()
            });
        assert_eq!((cfg.recipe.dim, cfg.recipe.size), (dims, net.grid));
        cfg.batch = 2;
        let held_out: Vec<_> = (0..4)
            .map(|k| simulate_example(&cfg.recipe, 0xdead_beef, k).unwrap())
            .collect();
        let (val, flat) = validation_losses(net.model.as_ref(), &held_out, &cfg, &dev).unwrap();
        assert!(
            val < flat,
            "{dims}-D: validation {val} vs flat phase {flat}"
        );
        let (x, y, w) = batch_tensors(&held_out[..2], &cfg, &dev).unwrap();
        assert_eq!(x.shape()[0], 2);
        assert_eq!(y.shape()[1], 2);
        assert_eq!(w.shape(), x.shape());
    }
}

#[test]
fn phase_cli_starts_from_a_network_and_refuses_conflicting_starts() {
    let dir = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_bragg");
    let data = dir.path().join("d.npz");
    let o = std::process::Command::new(exe)
        .args([
            "simulate", "--dim", "2", "--size", "64", "--count", "1", "--gap", "line:3",
        ])
        .args(["--seed", "4", "--out"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let model = dir.path().join("p.safetensors");
    train_phasenet(&tiny_cfg(&model, 2), &Device::cpu()).unwrap();
    let run = |extra: &[&str]| {
        std::process::Command::new(exe)
            .args(["--device", "cpu", "phase", "--input"])
            .arg(&data)
            .args([
                "--index",
                "0",
                "--algorithm",
                "RAAR**40,ER**10",
                "--runs",
                "2",
                "--out",
            ])
            .arg(dir.path().join("r.npz"))
            .args(extra)
            .output()
            .unwrap()
    };
    let m = model.to_str().unwrap();
    let o = run(&["--start", "net", "--start-model", m]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(dir.path().join("r.npz").exists());
    // The shipped 2-D network is used when no model is named.
    let o = run(&["--start", "net"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["--start", "net", "--phase-key", "phase"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("choose one"));
    let o = run(&["--start-model", m]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--start net"));
}
