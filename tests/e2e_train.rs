//! End-to-end: simulate a tiny dataset in-process, train a tiny UNet, evaluate it against the
//! zero-fill baseline; and checkpoint/resume reproduces an uninterrupted run.

use bragg::cli::demo::{demo_sim, simulate_prepared};
use bragg::inpaint::{evaluate, Baseline};
use bragg::models::{load_model, ModelConfig, ModelKind};
use bragg::sim::GapSpec;
use bragg::train::{checkpoint_path, log_path, train, TrainConfig};
use bragg::Device;

fn tiny() -> ModelConfig {
    ModelConfig {
        width: 4,
        depth: 3,
        ..ModelConfig::thesis(ModelKind::Unet)
    }
}

#[test]
fn simulate_train_evaluate_beats_zero_fill() {
    let dev = Device::cpu();
    let data = simulate_prepared(&demo_sim(32, 96, GapSpec::Cross(4), 11).unwrap()).unwrap();
    let test = simulate_prepared(&demo_sim(32, 16, GapSpec::Cross(4), 12).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.safetensors");
    let cfg = TrainConfig {
        epochs: 6,
        batch: 8,
        lr: 3e-3,
        loss: "mse+grad".into(),
        progress: false,
        ..TrainConfig::new(tiny(), &out)
    };
    let t = train(&cfg, &data, Some(&test), &dev).unwrap();
    let first = t.history[0].train_loss;
    let last = t.history.last().unwrap().train_loss;
    assert!(
        last < 0.7 * first,
        "training loss did not fall: {first} -> {last}"
    );
    assert!(log_path(&out, "csv").exists() && log_path(&out, "json").exists());

    let loaded = load_model(&out, &dev).unwrap();
    let (ev, _) = evaluate(
        Some((loaded.model.as_ref(), &loaded.config, "unet")),
        &test,
        &[Baseline::Zero],
        &dev,
    )
    .unwrap();
    let (model, zero) = (&ev.rows[0].1, &ev.rows[1].1);
    assert!(
        model.mse.mean < 0.5 * zero.mse.mean,
        "model {model:?} vs zero {zero:?}"
    );
    assert!(model.ssim.mean > zero.ssim.mean);
    assert!(model.pcc.mean > 0.3, "pcc {}", model.pcc.mean);
}

#[test]
fn resume_gives_the_same_weights_as_an_uninterrupted_run() {
    let dev = Device::cpu();
    let data = simulate_prepared(&demo_sim(16, 24, GapSpec::Line(3), 3).unwrap()).unwrap();
    let model = ModelConfig {
        width: 2,
        depth: 2,
        ..tiny()
    };
    let dir = tempfile::tempdir().unwrap();
    let base = |name: &str, epochs: usize, resume: bool| TrainConfig {
        epochs,
        batch: 5,
        lr: 1e-3,
        loss: "mse+ssim+grad".into(),
        progress: false,
        resume,
        plateau_patience: 1,
        seed: 9,
        ..TrainConfig::new(model.clone(), dir.path().join(name))
    };
    let full = train(&base("a.safetensors", 3, false), &data, Some(&data), &dev).unwrap();
    let first = train(&base("b.safetensors", 1, false), &data, Some(&data), &dev).unwrap();
    assert!(checkpoint_path(&dir.path().join("b.safetensors")).exists());
    let resumed = train(&base("b.safetensors", 3, true), &data, Some(&data), &dev).unwrap();
    assert_eq!(resumed.history.len(), 3);
    // Epoch 1 comes from the checkpoint (same wall time), not from a rerun.
    assert_eq!(resumed.history[0].seconds, first.history[0].seconds);
    for (a, b) in full.history.iter().zip(&resumed.history) {
        // (epoch 1 went through the JSON history of the checkpoint: last-bit rounding)
        assert!((a.train_loss - b.train_loss).abs() <= 1e-12 * a.train_loss.abs());
        assert_eq!(a.lr, b.lr);
    }
    let pa = full.model.parameters();
    let pb = resumed.model.parameters();
    for (a, b) in pa.iter().zip(&pb) {
        assert_eq!(a.name, b.name);
        assert_eq!(
            a.tensor.to_vec().unwrap(),
            b.tensor.to_vec().unwrap(),
            "{}",
            a.name
        );
    }
    // A checkpoint of another architecture is refused with a clear error.
    let mut other = base("b.safetensors", 4, true);
    other.model.width = 3;
    let err = train(&other, &data, None, &dev).err().unwrap().to_string();
    assert!(err.contains("differs"), "{err}");
}
