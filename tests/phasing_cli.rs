//! `bragg phase` and `bragg compare` end to end on a small 2D object written to an .npz.

use bragg::fft::{fftshift, Direction, FftPlan};
use ndarray::{ArrayD, IxDyn};
use ndarray_npy::{NpzReader, NpzWriter};
use num_complex::Complex32;
use std::fs::File;
use std::process::Command;

fn object() -> ArrayD<Complex32> {
    ArrayD::from_shape_fn(IxDyn(&[48, 48]), |i| {
        let (y, x) = (i[0] as f64 - 24.0, i[1] as f64 - 24.0);
        let inside = (y / 9.0).powi(2) + (x / 7.0).powi(2) < 1.0 && 0.8 * y + 0.6 * x < 4.0;
        Complex32::from_polar(f32::from(u8::from(inside)), (0.05 * x + 0.03 * y) as f32)
    })
}

#[test]
fn phase_then_compare_on_an_npz_batch() {
    let dir = tempfile::tempdir().unwrap();
    let obj = object();
    let mut f = obj.clone();
    FftPlan::new(&[48, 48]).process(f.as_slice_mut().unwrap(), Direction::Forward);
    let i = fftshift(&f.mapv(|v| v.norm_sqr()));
    // A batch of two: the second one is ours.
    let batch = ndarray::stack(ndarray::Axis(0), &[i.mapv(|_| 1.0f32).view(), i.view()]).unwrap();
    let objs = ndarray::stack(ndarray::Axis(0), &[obj.view(), obj.view()]).unwrap();
    let input = dir.path().join("sim.npz");
    let mut w = NpzWriter::new(File::create(&input).unwrap());
    w.add_array("intensity", &batch).unwrap();
    w.add_array("object", &objs).unwrap();
    w.finish().unwrap();
    let out = dir.path().join("res.npz");
    let figs = dir.path().join("figs");
    let exe = env!("CARGO_BIN_EXE_bragg");
    let o = Command::new(exe)
        .args(["phase", "--input"])
        .arg(&input)
        .args([
            "--index",
            "1",
            "--algorithm",
            "RAAR**400,ER**100",
            "--runs",
            "4",
            "--keep",
            "2",
            "--seed",
            "1",
            "--json",
            "--out",
        ])
        .arg(&out)
        .arg("--figures")
        .arg(&figs)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["kept"].as_array().unwrap().len(), 2);
    let mut r = NpzReader::new(File::open(&out).unwrap()).unwrap();
    let o_arr: ArrayD<Complex32> = r.by_name("object").unwrap();
    assert_eq!(o_arr.shape(), &[2, 48, 48]);
    let s: ArrayD<u8> = r.by_name("support").unwrap();
    assert_eq!(s.shape(), &[2, 48, 48]);
    let llk: ArrayD<f64> = r.by_name("free_llk").unwrap();
    assert_eq!(llk.len(), 2);
    let fig = image::open(figs.join("slices.png")).unwrap();
    assert!(fig.width() >= 512, "{}x{}", fig.width(), fig.height());
    let c = Command::new(exe)
        .args(["compare", "--result"])
        .arg(&out)
        .arg("--truth")
        .arg(&input)
        .args(["--index", "1", "--json"])
        .output()
        .unwrap();
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    let m: serde_json::Value = serde_json::from_slice(&c.stdout).unwrap();
    eprintln!("{m}");
    assert!(m["support_jaccard"].as_f64().unwrap() > 0.5, "{m}");
    assert!(m["complex_error"].as_f64().unwrap() < 0.6, "{m}");
    // Displacement and strain of the reconstruction: its phase is a ramp, so with the ramp
    // removed almost no strain is left.
    let strain = dir.path().join("strain.npz");
    let s = Command::new(exe)
        .args(["strain", "--input"])
        .arg(&out)
        .args([
            "--voxel-size",
            "10",
            "--q",
            "0,0.5",
            "--remove-ramp",
            "--json",
            "--out",
        ])
        .arg(&strain)
        .arg("--figures")
        .arg(&figs)
        .output()
        .unwrap();
    assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    let mut r = NpzReader::new(File::open(&strain).unwrap()).unwrap();
    let e: ArrayD<f32> = r.by_name("strain").unwrap();
    let sup: ArrayD<u8> = r.by_name("support").unwrap();
    let mut inside: Vec<f32> = e
        .iter()
        .zip(sup.iter())
        .filter(|(_, &m)| m != 0)
        .map(|(v, _)| v.abs())
        .collect();
    inside.sort_by(f32::total_cmp);
    // The support's edge is noisy; its bulk is not strained.
    let median = inside[inside.len() / 2];
    assert!(median < 0.1, "median |strain| {median}");
    assert!(figs.join("strain.png").exists());
}

#[test]
fn errors_name_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("x.npz");
    let mut w = NpzWriter::new(File::create(&input).unwrap());
    w.add_array("data", &ArrayD::<f32>::zeros(IxDyn(&[8, 8])))
        .unwrap();
    w.finish().unwrap();
    let exe = env!("CARGO_BIN_EXE_bragg");
    let o = Command::new(exe)
        .args(["phase", "--input"])
        .arg(&input)
        .args(["--out", "/nonexistent/never.npz"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("x.npz") && err.contains("`intensity`") && err.contains("data"),
        "{err}"
    );
    let o = Command::new(exe)
        .args(["phase", "--input"])
        .arg(&input)
        .args(["--key", "data", "--algorithm", "RAAR**", "--out"])
        .arg(dir.path().join("o.npz"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("RAAR**"), "{err}");
}
