//! The beamline pipeline end to end through the CLI: combining phasing runs, cutting training
//! patches, and the 3-D demo.

use bragg::fft::{fftshift, Direction, FftPlan};
use ndarray::{ArrayD, IxDyn};
use ndarray_npy::{NpzReader, NpzWriter};
use num_complex::Complex32;
use std::fs::File;
use std::path::Path;
use std::process::Command;

const EXE: &str = env!("CARGO_BIN_EXE_bragg");

fn bragg(args: &[&str], dir: &Path) -> std::process::Output {
    let o = Command::new(EXE)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "bragg {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn strained_object(n: usize) -> ArrayD<Complex32> {
    let c = n as f64 / 2.0;
    ArrayD::from_shape_fn(IxDyn(&[n, n]), |i| {
        let (y, x) = (i[0] as f64 - c, i[1] as f64 - c);
        let inside = (y / 9.0).powi(2) + (x / 7.0).powi(2) < 1.0 && 0.8 * y + 0.6 * x < 4.0;
        Complex32::from_polar(f32::from(u8::from(inside)), (0.04 * x * y / 4.0) as f32)
    })
}

#[test]
fn phase_writes_the_average_of_the_runs_that_agree() {
    let dir = tempfile::tempdir().unwrap();
    let n = 48;
    let obj = strained_object(n);
    let mut f = obj.clone();
    FftPlan::new(&[n, n]).process(f.as_slice_mut().unwrap(), Direction::Forward);
    let i = fftshift(&f.mapv(|v| v.norm_sqr()));
    let mut w = NpzWriter::new(File::create(dir.path().join("sim.npz")).unwrap());
    w.add_array("intensity", &i).unwrap();
    w.add_array("object", &obj).unwrap();
    w.finish().unwrap();
    let o = bragg(
        &[
            "phase",
            "--input",
            "sim.npz",
            "--algorithm",
            "RAAR**400,ER**100",
            "--runs",
            "6",
            "--keep",
            "4",
            "--json",
            "--out",
            "res.npz",
        ],
        dir.path(),
    );
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let c = &summary["combined"];
    let frac = c["mode_fraction"].as_f64().unwrap();
    assert!(frac > 0.0 && frac <= 1.0 + 1e-9, "{summary}");
    let averaged = c["averaged_runs"].as_array().unwrap();
    assert!(!averaged.is_empty() && averaged.len() <= 4);
    // The best run is always in the average, and every member agrees with it.
    assert_eq!(averaged[0], summary["kept"][0]["run"]);
    let mut r = NpzReader::new(File::open(dir.path().join("res.npz")).unwrap()).unwrap();
    let avg: ArrayD<Complex32> = r.by_name("average").unwrap();
    assert_eq!(avg.shape(), &[n, n]);
    let sup: ArrayD<u8> = r.by_name("average_support").unwrap();
    assert!(sup.iter().any(|&s| s == 1));
    let m = |key: &str| -> serde_json::Value {
        let o = bragg(
            &[
                "compare",
                "--result",
                "res.npz",
                "--result-key",
                key,
                "--truth",
                "sim.npz",
                "--json",
            ],
            dir.path(),
        );
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let best = m("object")["complex_error"].as_f64().unwrap();
    let average = m("average")["complex_error"].as_f64().unwrap();
    // Runs that agree within 0.3 of the best average to something no worse than that.
    assert!(average < best + 0.3, "average {average} vs best run {best}");
    // `--combine none` writes the runs only.
    bragg(
        &[
            "phase",
            "--input",
            "sim.npz",
            "--algorithm",
            "ER**20",
            "--runs",
            "2",
            "--keep",
            "2",
            "--combine",
            "none",
            "--out",
            "plain.npz",
        ],
        dir.path(),
    );
    let mut r = NpzReader::new(File::open(dir.path().join("plain.npz")).unwrap()).unwrap();
    let names = r.names().unwrap();
    assert!(names.iter().all(|n| !n.starts_with("average")), "{names:?}");
}

#[test]
fn patches_avoid_the_real_gap_and_train_sets_read_back() {
    let dir = tempfile::tempdir().unwrap();
    bragg(
        &[
            "simulate", "--dim", "3", "--size", "48", "--count", "1", "--gap", "line:4", "--seed",
            "3", "--out", "vol.npz",
        ],
        dir.path(),
    );
    let o = bragg(
        &[
            "patches", "--input", "vol.npz", "--size", "16", "--count", "20", "--width", "3",
            "--out", "p.npz",
        ],
        dir.path(),
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("avoiding the real gap"));
    let mut r = NpzReader::new(File::open(dir.path().join("p.npz")).unwrap()).unwrap();
    let truth: ArrayD<f32> = r.by_name("truth").unwrap();
    let inten: ArrayD<f32> = r.by_name("intensity").unwrap();
    let mask: ArrayD<u8> = r.by_name("mask").unwrap();
    let origin: ArrayD<u64> = r.by_name("origin").unwrap();
    assert_eq!(truth.shape(), &[20, 16, 16, 16]);
    assert_eq!(origin.shape(), &[20, 3]);
    // The gap of each patch is zeroed in `intensity`, the rest equals `truth`.
    for ((t, i), m) in truth.iter().zip(&inten).zip(&mask) {
        assert_eq!(*i, if *m != 0 { 0.0 } else { *t });
    }
    // No patch overlaps the real gap of the input.
    let mut v = NpzReader::new(File::open(dir.path().join("vol.npz")).unwrap()).unwrap();
    let real: ArrayD<u8> = v.by_name("mask").unwrap();
    let real = real.index_axis(ndarray::Axis(0), 0).to_owned();
    for k in 0..20 {
        let o: Vec<usize> = (0..3).map(|d| origin[[k, d]] as usize).collect();
        let touched = real
            .indexed_iter()
            .filter(|(ix, &g)| g != 0 && (0..3).all(|d| ix[d] >= o[d] && ix[d] < o[d] + 16))
            .count();
        assert_eq!(touched, 0, "patch {k} at {o:?} touches the real gap");
    }
    // Bad requests are errors that name the flag.
    let o = Command::new(EXE)
        .args([
            "patches", "--input", "vol.npz", "--count", "0", "--out", "x.npz",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--count"));
}

#[test]
fn the_3d_demo_runs_and_reports_every_method() {
    let dir = tempfile::tempdir().unwrap();
    let o = bragg(
        &[
            "demo", "--size", "32", "--gap", "line:3", "--runs", "1", "--out", "demo",
        ],
        dir.path(),
    );
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("gap-free") && table.contains("network"),
        "{table}"
    );
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("demo/metrics.json")).unwrap())
            .unwrap();
    let rows = j["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    for r in rows {
        let e = r["complex_error"].as_f64().unwrap();
        assert!((0.0..=1.5).contains(&e), "{r}");
    }
    // The gap-free and masked data have no fill; the four fills are scored in the gap.
    assert!(rows[0]["gap"].is_null() && rows[1]["gap"].is_null());
    for r in &rows[2..] {
        let p = r["gap"]["pcc_log"].as_f64().unwrap();
        assert!(p > 0.5 && p <= 1.0, "{r}");
    }
    assert!(dir.path().join("demo/volumes.npz").exists());
    assert!(dir.path().join("demo/metrics.md").exists());
}
