//! `bragg strain` end to end on a reconstruction laid out as `bragg phase` writes it: a batch
//! of runs (`object`, `support`, `llk`) of a crystal with a known displacement field.

use ndarray::{ArrayD, Dimension, IxDyn};
use ndarray_npy::{NpzReader, NpzWriter};
use num_complex::Complex32;
use std::f64::consts::TAU;
use std::fs::File;
use std::path::Path;
use std::process::Command;

const N: usize = 32;
const VOXEL: f64 = 5.0;
/// |q| = 2 pi / 0.25 nm along axis 1.
const QY: f64 = TAU / 0.25;
/// Uniform strain along q plus a quadratic term: u_y = E y + A y^2 (nm).
const E: f64 = 3e-3;
const A: f64 = 2e-5;

fn write_reconstruction(path: &Path, support_shape: &[usize]) {
    let mut objects = ArrayD::<Complex32>::zeros(IxDyn(&[2, N, N, N]));
    let mut support = ArrayD::<u8>::zeros(IxDyn(support_shape));
    for ((r, z, y, x), v) in objects
        .view_mut()
        .into_dimensionality::<ndarray::Ix4>()
        .unwrap()
        .indexed_iter_mut()
    {
        let c = [z, y, x].map(|i| i as f64 - (N / 2) as f64);
        if c.iter().map(|v| v * v).sum::<f64>() <= 12.0 * 12.0 {
            let yn = c[1] * VOXEL;
            let u = E * yn + A * yn * yn;
            // Run 0 is the strained crystal; run 1 a flat one.
            let phi = if r == 0 { QY * u + 0.7 } else { 0.0 };
            *v = Complex32::from_polar(1.0, phi as f32);
            if x < support_shape[3] {
                support[[r, z, y, x]] = 1;
            }
        }
    }
    let mut w = NpzWriter::new(File::create(path).unwrap());
    w.add_array("object", &objects).unwrap();
    w.add_array("support", &support).unwrap();
    w.add_array("llk", &ndarray::arr1(&[1.0f64, 2.0])).unwrap();
    w.finish().unwrap();
}

fn strain(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bragg"))
        .arg("strain")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn strain_of_a_reconstruction_with_known_displacement() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("recon.npz");
    write_reconstruction(&input, &[2, N, N, N]);
    let out = dir.path().join("strain.npz");
    let figs = dir.path().join("figs");
    let q = format!("0,{QY},0");
    let o = strain(&[
        "--input",
        input.to_str().unwrap(),
        "--voxel-size",
        "5",
        "--q",
        &q,
        "--json",
        "--out",
        out.to_str().unwrap(),
        "--figures",
        figs.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["parts"], 1, "{summary}");
    let mut r = NpzReader::new(File::open(&out).unwrap()).unwrap();
    let s: ArrayD<f32> = r.by_name("strain").unwrap();
    let u: ArrayD<f32> = r.by_name("displacement").unwrap();
    let sup: ArrayD<u8> = r.by_name("support").unwrap();
    let _: ArrayD<f32> = r.by_name("phase").unwrap();
    let _: ArrayD<f32> = r.by_name("modulus").unwrap();
    assert_eq!(s.shape(), &[N, N, N]);
    // Strain = E + 2 A y; displacement = E y + A y^2 up to a constant.
    let mut du = vec![];
    for (ix, &m) in sup.indexed_iter() {
        if m == 0 {
            continue;
        }
        let yn = (ix[1] as f64 - (N / 2) as f64) * VOXEL;
        let inner = (1..N - 1).contains(&ix[1])
            && sup[[ix[0], ix[1] + 1, ix[2]]] != 0
            && sup[[ix[0], ix[1] - 1, ix[2]]] != 0;
        if inner {
            let want = E + 2.0 * A * yn;
            assert!(
                (s[ix.slice()] as f64 - want).abs() < 1e-5,
                "strain {} vs {want}",
                s[ix.slice()]
            );
        }
        du.push(u[ix.slice()] as f64 - (E * yn + A * yn * yn));
    }
    let mean = du.iter().sum::<f64>() / du.len() as f64;
    assert!(
        du.iter().all(|d| (d - mean).abs() < 1e-4),
        "displacement off"
    );
    let png = figs.join("strain.png");
    let img = image::open(&png).unwrap();
    assert!(img.width() >= 512, "{png:?}");

    // Run 1 is flat: no strain. The same with --d-spacing and a CXI output.
    let cxi = dir.path().join("strain.cxi");
    let o = strain(&[
        "--input",
        input.to_str().unwrap(),
        "--index",
        "1",
        "--voxel-size",
        "5,5,5",
        "--d-spacing",
        "0.25",
        "--q-direction",
        "0,1,0",
        "--json",
        "--out",
        cxi.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(summary["strain_std"].as_f64().unwrap() < 1e-6, "{summary}");
    assert!(
        (summary["q"][1].as_f64().unwrap() - QY).abs() < 1e-9,
        "{summary}"
    );
    assert!(cxi.exists());
}

#[test]
fn strain_errors_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("recon.npz");
    write_reconstruction(&input, &[2, N, N, N]);
    let out = dir.path().join("o.npz");
    let run = |extra: &[&str]| {
        let mut a = vec![
            "--input",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        let o = strain(&a);
        assert!(!o.status.success(), "{extra:?} should fail");
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let e = run(&["--voxel-size", "5"]);
    assert!(e.contains("--q"), "{e}");
    let e = run(&["--voxel-size", "5", "--q", "0,0,0"]);
    assert!(e.contains("non-zero"), "{e}");
    let e = run(&["--voxel-size", "5", "--q", "1,0"]);
    assert!(e.contains("components"), "{e}");
    let e = run(&["--voxel-size", "5,5", "--q", "1,0,0"]);
    assert!(e.contains("voxel"), "{e}");
    let e = run(&[
        "--voxel-size",
        "5",
        "--q",
        "1,0,0",
        "--object-key",
        "nothing",
    ]);
    assert!(e.contains("nothing"), "{e}");
    // A support of another shape.
    let bad = dir.path().join("bad.npz");
    write_reconstruction(&bad, &[2, N, N, N / 2]);
    let o = strain(&[
        "--input",
        bad.to_str().unwrap(),
        "--voxel-size",
        "5",
        "--q",
        "1,0,0",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("support") && e.contains("shape"), "{e}");
    assert!(!out.exists());
}
