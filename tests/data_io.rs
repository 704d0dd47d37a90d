//! Dataset round trip and rejection of bad files.

use bragg::data::npy::{npy_header, write_npy, NpzWriter};
use bragg::data::{read_measured, write_dataset, Dataset};
use bragg::sim::{simulate_sample, GapSpec, SimConfig};
use ndarray::{ArrayD, IxDyn};
use std::path::Path;

fn small_cfg() -> SimConfig {
    SimConfig {
        dim: 2,
        size: 32,
        count: 5,
        seed: 11,
        gap: GapSpec::Cross(3),
        ..SimConfig::default()
    }
}

#[test]
fn dataset_write_then_load_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.npz");
    let cfg = small_cfg();
    write_dataset(&cfg, &path, &|| {}).unwrap();
    // Atomic write: only the final file remains.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    let d = Dataset::load(&path).unwrap();
    assert_eq!(d.len(), 5);
    assert_eq!(d.require("truth").unwrap().shape(), &[5, 32, 32]);
    for k in 0..5 {
        let s = simulate_sample(&cfg, k as u64).unwrap();
        let idx = ndarray::Axis(0);
        assert_eq!(d.truth.as_ref().unwrap().index_axis(idx, k), s.truth.view());
        assert_eq!(
            d.intensity.as_ref().unwrap().index_axis(idx, k),
            s.intensity.view()
        );
        assert_eq!(
            d.noiseless.as_ref().unwrap().index_axis(idx, k),
            s.noiseless.view()
        );
        assert_eq!(d.phase.as_ref().unwrap().index_axis(idx, k), s.phase.view());
        assert_eq!(
            d.object.as_ref().unwrap().index_axis(idx, k),
            s.object.view()
        );
        assert_eq!(
            d.mask.as_ref().unwrap().index_axis(idx, k),
            s.mask.mapv(f32::from).view()
        );
        assert_eq!(d.photons.as_ref().unwrap()[[k]], s.params.photons as f32);
        assert_eq!(
            d.oversampling.as_ref().unwrap()[[k, 1]],
            s.params.oversampling[1]
        );
        assert_eq!(
            d.gap_pos.as_ref().unwrap()[[k, 0]],
            s.params.gap_pos[0] as f32
        );
        assert_eq!(d.gap_width.as_ref().unwrap()[[k, 1]], 3.0);
    }
}

#[test]
fn half_precision_dataset_stores_f16() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.npz");
    let cfg = SimConfig {
        half: true,
        photons: bragg::sim::Range::new(1e3, 1e4).unwrap(),
        fields: vec![bragg::sim::Field::Truth, bragg::sim::Field::Mask],
        ..small_cfg()
    };
    write_dataset(&cfg, &path, &|| {}).unwrap();
    let mut z = bragg::data::npy::NpzFile::open(&path).unwrap();
    assert_eq!(z.read("truth").unwrap().dtype(), "float16");
    assert!(!z.has("intensity"));
    let d = Dataset::load(&path).unwrap();
    let s = simulate_sample(&cfg, 0).unwrap();
    // Counts up to 2048 are exact in f16; above, relative error <= 2^-11.
    for (a, b) in d
        .truth
        .unwrap()
        .index_axis(ndarray::Axis(0), 0)
        .iter()
        .zip(s.truth.iter())
    {
        assert!((a - b).abs() <= b * 4.9e-4);
    }
}

fn arr(shape: &[usize], v: Vec<f32>) -> ArrayD<f32> {
    ArrayD::from_shape_vec(IxDyn(shape), v).unwrap()
}

fn write_npz(path: &Path, items: &[(&str, &ArrayD<f32>)]) {
    let mut w = NpzWriter::create(path).unwrap();
    for (k, a) in items {
        w.add(k, *a).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn measured_files_of_every_dtype_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.npy");
    let a = ArrayD::from_shape_fn(IxDyn(&[4, 5, 6]), |i| (i[0] * 30 + i[1] * 6 + i[2]) as u16);
    write_npy(&p, &a).unwrap();
    let m = read_measured(&p, None, None).unwrap();
    assert_eq!(m.intensity, a.mapv(f32::from));
    let q = dir.path().join("b.npy");
    write_npy(&q, &a.mapv(f64::from)).unwrap();
    assert_eq!(
        read_measured(&q, None, None).unwrap().intensity,
        a.mapv(f32::from)
    );
    let q = dir.path().join("c.npy");
    write_npy(&q, &a.mapv(u32::from)).unwrap();
    assert_eq!(
        read_measured(&q, None, None).unwrap().intensity,
        a.mapv(f32::from)
    );
    let q = dir.path().join("d.npy");
    write_npy(&q, &a.mapv(i32::from)).unwrap();
    assert_eq!(
        read_measured(&q, None, None).unwrap().intensity,
        a.mapv(f32::from)
    );
    // npz with data + mask keys.
    let q = dir.path().join("e.npz");
    let data = a.mapv(f32::from);
    let mask = data.mapv(|v| (v < 10.0) as u8 as f32);
    write_npz(&q, &[("data", &data), ("mask", &mask)]);
    let m = read_measured(&q, None, None).unwrap();
    assert_eq!(m.mask.unwrap().iter().filter(|&&v| v == 1).count(), 10);
    // Fortran-order arrays are reordered.
    let q = dir.path().join("f.npy");
    let mut bytes = npy_header("<f4", &[2, 3]);
    let hdr = String::from_utf8(bytes[10..].to_vec())
        .unwrap()
        .replace("False", "True ");
    bytes.truncate(10);
    bytes.extend(hdr.as_bytes());
    for v in [0f32, 3., 1., 4., 2., 5.] {
        bytes.extend(v.to_le_bytes());
    }
    std::fs::write(&q, bytes).unwrap();
    let m = read_measured(&q, None, None).unwrap();
    assert_eq!(m.intensity, arr(&[2, 3], vec![0., 1., 2., 3., 4., 5.]));
}

fn err_of(r: bragg::Result<impl std::fmt::Debug>) -> String {
    r.expect_err("must be rejected").to_string()
}

#[test]
fn bad_files_are_rejected_with_messages_naming_file_key_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let good = arr(&[4, 4], (0..16).map(|v| v as f32).collect());
    // NaN, negative.
    let p = dir.path().join("nan.npz");
    let mut bad = good.clone();
    bad[[1, 2]] = f32::NAN;
    write_npz(&p, &[("data", &bad)]);
    let e = err_of(read_measured(&p, None, None));
    assert!(
        e.contains("nan.npz") && e.contains("`data`") && e.contains("non-finite"),
        "{e}"
    );
    let p = dir.path().join("neg.npy");
    let mut bad = good.clone();
    bad[[0, 1]] = -1.0;
    write_npy(&p, &bad).unwrap();
    let e = err_of(read_measured(&p, None, None));
    assert!(e.contains("neg.npy") && e.contains("negative"), "{e}");
    // Mask of the wrong shape.
    let p = dir.path().join("mask.npz");
    write_npz(
        &p,
        &[("data", &good), ("mask", &arr(&[2, 8], vec![0.0; 16]))],
    );
    let e = err_of(read_measured(&p, None, None));
    assert!(e.contains("`mask`") && e.contains("shape"), "{e}");
    // Wrong key.
    let p = dir.path().join("key.npz");
    write_npz(&p, &[("data", &good), ("other", &good)]);
    let e = err_of(read_measured(&p, Some("intensity"), None));
    assert!(
        e.contains("no array `intensity`") && e.contains("data"),
        "{e}"
    );
    // 1-D data.
    let p = dir.path().join("flat.npy");
    write_npy(&p, &arr(&[16], vec![1.0; 16])).unwrap();
    assert!(err_of(read_measured(&p, None, None)).contains("2D or 3D"));
    // Not a numpy file at all.
    let p = dir.path().join("junk.npy");
    std::fs::write(&p, b"hello world, not numpy").unwrap();
    assert!(err_of(read_measured(&p, None, None)).contains("bad magic"));
}

#[test]
fn truncated_files_give_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("t.npy");
    write_npy(&npy, &arr(&[8, 8], vec![1.0; 64])).unwrap();
    let bytes = std::fs::read(&npy).unwrap();
    for cut in [3, 20, 100, bytes.len() - 1] {
        std::fs::write(&npy, &bytes[..cut]).unwrap();
        let e = err_of(read_measured(&npy, None, None));
        assert!(e.contains("t.npy") && e.contains("truncated"), "{cut}: {e}");
    }
    let npz = dir.path().join("t.npz");
    write_dataset(&small_cfg(), &npz, &|| {}).unwrap();
    let bytes = std::fs::read(&npz).unwrap();
    for cut in [10, bytes.len() / 3, bytes.len() / 2, bytes.len() - 30] {
        std::fs::write(&npz, &bytes[..cut]).unwrap();
        assert!(Dataset::load(&npz).is_err(), "cut {cut}");
        assert!(read_measured(&npz, Some("truth"), None).is_err());
    }
    // Corrupt payload inside an intact archive: header claims more data than stored.
    let mut b = bytes.clone();
    let pos = b.windows(7).position(|w| w == b"'shape'").unwrap();
    b[pos + 10] = b'9';
    std::fs::write(&npz, &b).unwrap();
    assert!(Dataset::load(&npz).is_err());
    assert!(Dataset::load(&dir.path().join("missing.npz")).is_err());
}
