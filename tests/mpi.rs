//! Data-parallel training and spread phasing under `mpirun -np 2` give what one process gives.
//! Built only with the `mpi` feature (`cargo test --release --features mpi --test mpi`); every
//! test says so and passes when `mpirun` is not installed.
#![cfg(feature = "mpi")]

use bragg::nn::io;
use bragg::Device;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXE: &str = env!("CARGO_BIN_EXE_bragg");

fn have_mpirun() -> bool {
    let ok = Command::new("mpirun")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: no mpirun on PATH (install openmpi-bin libopenmpi-dev)");
    }
    ok
}

fn check(o: Output, what: &str) -> Output {
    assert!(
        o.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// `bragg ARGS` in one process (no MPI starter variables, so the one-process world).
fn alone(dir: &Path, args: &[&str]) -> Output {
    let o = Command::new(EXE)
        .current_dir(dir)
        .env("RAYON_NUM_THREADS", "1")
        .args(args)
        .output()
        .unwrap();
    check(o, &format!("bragg {}", args.join(" ")))
}

/// `mpirun -np N bragg ARGS`.
fn ranks(n: usize, dir: &Path, args: &[&str]) -> Output {
    let o = Command::new("mpirun")
        .current_dir(dir)
        .args([
            "--allow-run-as-root",
            "--oversubscribe",
            "-np",
            &n.to_string(),
        ])
        .args(["-x", "RAYON_NUM_THREADS=1", EXE])
        .args(args)
        .output()
        .unwrap();
    check(o, &format!("mpirun -np {n} bragg {}", args.join(" ")))
}

fn weights(path: &Path) -> HashMap<String, Vec<f32>> {
    io::load(path, &Device::cpu())
        .unwrap()
        .tensors
        .into_iter()
        .filter(|(k, _)| !k.starts_with("adam."))
        .map(|(k, t)| (k, t.to_vec().unwrap()))
        .collect()
}

/// Largest difference over all weights relative to the largest weight of its tensor.
fn worst_relative(a: &Path, b: &Path) -> f32 {
    let (a, b) = (weights(a), weights(b));
    assert_eq!(
        a.keys().collect::<std::collections::BTreeSet<_>>(),
        b.keys().collect()
    );
    a.iter()
        .map(|(k, x)| {
            let y = &b[k];
            let scale = x.iter().fold(1e-12f32, |m, v| m.max(v.abs()));
            x.iter().zip(y).fold(0f32, |m, (p, q)| m.max((p - q).abs())) / scale
        })
        .fold(0f32, f32::max)
}

fn dataset(dir: &Path) -> PathBuf {
    alone(
        dir,
        &[
            "simulate", "--dim", "2", "--size", "32", "--count", "40", "--gap", "line:4", "--seed",
            "5", "--out", "d.npz",
        ],
    );
    dir.join("d.npz")
}

fn train_args<'a>(out: &'a str, batch: &'a str, epochs: &'a str) -> Vec<&'a str> {
    vec![
        "--device", "cpu", "train", "--model", "msd", "--data", "d.npz", "--epochs", epochs,
        "--batch", batch, "--seed", "1", "--quiet", "--out", out,
    ]
}

#[test]
fn two_ranks_train_the_weights_of_one_process() {
    if !have_mpirun() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d);
    // Batch 16: 8 + 8 per step, last step 8 = 4 + 4.
    alone(d, &train_args("one.safetensors", "16", "1"));
    ranks(2, d, &train_args("two.safetensors", "16", "1"));
    let w = worst_relative(&d.join("one.safetensors"), &d.join("two.safetensors"));
    assert!(
        w < 1e-4,
        "2 ranks vs 1 process: relative weight difference {w}"
    );
    // Batch 13 over 3 ranks: uneven parts (5, 4, 4), and the last batch of 1 leaves two
    // ranks without an example.
    alone(d, &train_args("one13.safetensors", "13", "1"));
    let o = ranks(3, d, &train_args("three13.safetensors", "13", "1"));
    let w = worst_relative(&d.join("one13.safetensors"), &d.join("three13.safetensors"));
    assert!(
        w < 1e-4,
        "3 ranks vs 1 process: relative weight difference {w}"
    );
    // Rank 0 alone speaks and writes.
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("trained in").count(), 1, "{err}");
    assert!(err.contains("gradient all-reduce"), "{err}");
    assert!(d.join("three13.log.csv").exists());
}

#[test]
fn training_resumes_on_another_number_of_ranks() {
    if !have_mpirun() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d);
    alone(d, &train_args("one.safetensors", "8", "2"));
    ranks(2, d, &train_args("mix.safetensors", "8", "1"));
    let mut resume = train_args("mix.safetensors", "8", "2");
    resume.push("--resume");
    alone(d, &resume);
    let w = worst_relative(&d.join("one.safetensors"), &d.join("mix.safetensors"));
    assert!(
        w < 1e-4,
        "1 epoch on 2 ranks + 1 resumed alone vs 2 alone: {w}"
    );
    let log = std::fs::read_to_string(d.join("mix.log.csv")).unwrap();
    assert_eq!(log.lines().count(), 3, "{log}");
}

#[test]
fn gap_model_training_on_two_ranks_matches_one_process() {
    if !have_mpirun() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let args = |out: &'static str| {
        vec![
            "--device",
            "cpu",
            "train-gap3d",
            "--steps",
            "3",
            "--batch",
            "3",
            "--width",
            "4",
            "--depth",
            "2",
            "--checkpoint-every",
            "2",
            "--out",
            out,
        ]
    };
    alone(d, &args("g1.safetensors"));
    ranks(2, d, &args("g2.safetensors"));
    let w = worst_relative(&d.join("g1.safetensors"), &d.join("g2.safetensors"));
    assert!(w < 1e-4, "gap model, 2 ranks vs 1 process: {w}");
}

#[test]
fn phasing_runs_spread_over_ranks_keep_the_same_runs() {
    if !have_mpirun() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    alone(
        d,
        &[
            "simulate", "--dim", "2", "--size", "64", "--count", "1", "--seed", "3", "--out",
            "p.npz",
        ],
    );
    let args = |out: &'static str| {
        vec![
            "--device",
            "cpu",
            "phase",
            "--input",
            "p.npz",
            "--key",
            "truth",
            "--mask-key",
            "none",
            "--index",
            "0",
            "--algorithm",
            "HIO**40,ER**20",
            "--runs",
            "5",
            "--keep",
            "3",
            "--out",
            out,
        ]
    };
    let one = alone(d, &args("p1.npz"));
    let two = ranks(2, d, &args("p2.npz"));
    // The same kept runs, in the same order, with the same numbers and arrays.
    assert_eq!(
        String::from_utf8_lossy(&one.stdout).replace("p1.npz", "OUT"),
        String::from_utf8_lossy(&two.stdout).replace("p2.npz", "OUT")
    );
    let read = |p: &str| std::fs::read(d.join(p)).unwrap();
    assert!(read("p1.npz") == read("p2.npz"), "the result files differ");
}
