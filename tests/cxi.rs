//! CXI / HDF5 files: the command-line round trip `simulate --out x.cxi` -> `phase --input x.cxi
//! --out r.cxi` -> `compare`, `inpaint` on CXI, reading chunked gzip data and soft links, and the
//! errors for what is not HDF5 or not there.

use bragg::data::arrays::{ArrayFile, ArrayWriter};
use bragg::data::cxi::{split_spec, Hdf5File};
use bragg::data::npy::NpyData;
use ndarray::{ArrayD, IxDyn};
use num_complex::Complex32;
use std::path::Path;
use std::process::Command;

fn bragg(args: &[&str], dir: &Path) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_bragg"))
        .args(args)
        .current_dir(dir)
        .env("BRAGG_DEVICE", "cpu")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "bragg {args:?} failed: {text}");
    text
}

#[test]
fn simulate_phase_compare_round_trip_through_cxi() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    bragg(
        &[
            "simulate", "--dim", "3", "--size", "32", "--count", "1", "--gap", "line:4", "--seed",
            "3", "--out", "s.cxi",
        ],
        d,
    );
    let s = Hdf5File::open(&d.join("s.cxi")).unwrap();
    let i = s.read("intensity").unwrap();
    let m = s.read("mask").unwrap();
    let truth = s.read("truth").unwrap();
    assert_eq!(i.shape, vec![32, 32, 32], "one pattern has no batch axis");
    assert_eq!(m.shape, i.shape);
    // The same data as the .npz the simulator writes with the same flags.
    bragg(
        &[
            "simulate", "--dim", "3", "--size", "32", "--count", "1", "--gap", "line:4", "--seed",
            "3", "--out", "s.npz",
        ],
        d,
    );
    let mut z = ArrayFile::open(&d.join("s.npz")).unwrap();
    let zi = z.read("intensity").unwrap().into_f32().unwrap();
    let ci = i.clone().into_f32().unwrap();
    assert_eq!(zi.as_slice().unwrap(), ci.as_slice().unwrap());
    let (NpyData::U8(mv), NpyData::F32(tv)) = (&m.data, &truth.data) else {
        panic!("mask {} truth {}", m.dtype(), truth.dtype());
    };
    let gaps = mv.iter().filter(|&&v| v == 1).count();
    assert!(gaps > 0 && mv.iter().all(|&v| v <= 1));
    let NpyData::F32(iv) = &i.data else { panic!() };
    assert!(mv.iter().zip(iv).all(|(&g, &v)| g == 0 || v == 0.0));
    assert!(mv
        .iter()
        .zip(iv)
        .zip(tv)
        .all(|((&g, &v), &t)| g == 1 || v == t));

    let text = bragg(
        &[
            "phase",
            "--input",
            "s.cxi",
            "--algorithm",
            "HIO**50,ER**20",
            "--runs",
            "2",
            "--keep",
            "2",
            "--out",
            "r.cxi",
        ],
        d,
    );
    assert!(text.contains("wrote r.cxi"), "{text}");
    let r = Hdf5File::open(&d.join("r.cxi")).unwrap();
    let obj = r.read("object").unwrap();
    assert_eq!(
        obj.shape,
        vec![2, 32, 32, 32],
        "two kept runs, image_1 and image_2"
    );
    assert!(obj.is_complex());
    let sup = r.read("support").unwrap();
    assert_eq!(sup.shape, obj.shape);
    let llk = r.read("free_llk").unwrap().into_f32().unwrap();
    assert_eq!(llk.shape(), [2]);
    assert!(llk[0] <= llk[1], "best run first: {llk:?}");
    let beta = r
        .read_dataset("entry_1/image_1/process_1/configuration/beta")
        .unwrap()
        .into_f32()
        .unwrap();
    assert!((beta.iter().next().unwrap() - 0.9).abs() < 1e-6);
    let text = bragg(
        &["compare", "--result", "r.cxi", "--truth", "s.cxi", "--json"],
        d,
    );
    assert!(text.contains("complex_error"), "{text}");
}

#[test]
fn inpaint_reads_and_writes_cxi_and_keeps_measured_voxels() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    bragg(
        &[
            "simulate", "--dim", "3", "--size", "32", "--count", "1", "--gap", "line:3", "--seed",
            "5", "--out", "s.h5",
        ],
        d,
    );
    bragg(
        &[
            "inpaint", "--input", "s.h5", "--method", "linear", "--out", "f.cxi",
        ],
        d,
    );
    let s = Hdf5File::open(&d.join("s.h5")).unwrap();
    let f = Hdf5File::open(&d.join("f.cxi")).unwrap();
    let i = s.read("intensity").unwrap().into_f32().unwrap();
    let m = s.read("mask").unwrap().into_f32().unwrap();
    let filled = f.read("intensity").unwrap().into_f32().unwrap();
    let gap = f.read("gap").unwrap().into_f32().unwrap();
    assert_eq!(gap, m);
    assert!(filled
        .iter()
        .zip(&i)
        .zip(&m)
        .all(|((&a, &b), &g)| g == 1.0 || a == b));
    assert!(filled.iter().zip(&m).any(|(&a, &g)| g == 1.0 && a > 0.0));
    // The filled file phases every voxel as data (no `mask`), like the .npz output.
    assert!(!f.has("mask"));
}

#[test]
fn chunked_gzip_data_soft_links_and_dataset_paths_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("scan.h5");
    let data: Vec<u16> = (0..6 * 8 * 10).map(|v| (v % 97) as u16).collect();
    {
        let f = rust_hdf5::H5File::create(&p).unwrap();
        let g = f.create_group("scan").unwrap();
        let ds = g
            .new_dataset::<u16>()
            .shape([6usize, 8, 10])
            .chunk(&[2, 8, 10])
            .shuffle_deflate(4)
            .create("frames")
            .unwrap();
        ds.write_raw(&data).unwrap();
        let mask: Vec<i8> = data.iter().map(|&v| if v == 5 { 8 } else { 0 }).collect();
        g.new_dataset::<i8>()
            .shape([6usize, 8, 10])
            .create("mask")
            .unwrap()
            .write_raw(&mask)
            .unwrap();
        f.create_group("alias")
            .unwrap()
            .create_soft_link("data", "/scan/frames")
            .unwrap();
        f.close().unwrap();
    }
    let spec = format!("{}:/scan/frames", p.display());
    let (file, ds) = split_spec(Path::new(&spec)).unwrap();
    assert_eq!(
        (file.as_path(), ds.as_deref()),
        (p.as_path(), Some("/scan/frames"))
    );
    let mut a = ArrayFile::open(Path::new(&spec)).unwrap();
    let got = a.read("intensity").unwrap();
    assert_eq!(got.shape, vec![6, 8, 10]);
    assert_eq!(got.data, NpyData::U16(data.clone()));
    let m = a.read("mask").unwrap();
    let NpyData::U8(mv) = &m.data else {
        panic!("{}", m.dtype())
    };
    assert_eq!(
        mv.iter().filter(|&&v| v == 1).count(),
        data.iter().filter(|&&v| v == 5).count()
    );
    let h = Hdf5File::open(&p).unwrap();
    assert_eq!(h.read("/alias/data").unwrap().data, NpyData::U16(data));
}

#[test]
fn complex_arrays_round_trip_as_h5py_compounds() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("o.cxi");
    let obj = ArrayD::from_shape_fn(IxDyn(&[3, 4]), |i| {
        Complex32::new(i[0] as f32, -(i[1] as f32) * 0.5)
    });
    let mut w = ArrayWriter::create(&p).unwrap();
    w.add("object", &obj).unwrap();
    w.finish().unwrap();
    let f = rust_hdf5::H5File::open(&p).unwrap();
    let dt = f
        .dataset("entry_1/bragg_1/object")
        .unwrap()
        .datatype()
        .unwrap();
    let rust_hdf5::DatatypeMessage::Compound { members, .. } = dt else {
        panic!("{dt:?}")
    };
    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["r", "i"]);
    let back = Hdf5File::open(&p).unwrap().read("object").unwrap();
    assert_eq!(back.to_c64().unwrap(), obj);
}

#[test]
fn what_is_not_hdf5_or_not_there_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("fake.cxi");
    std::fs::write(&fake, b"plain text, not HDF5").unwrap();
    let e = Hdf5File::open(&fake).err().unwrap().to_string();
    assert!(
        e.contains("fake.cxi") && e.contains("not a readable HDF5 file"),
        "{e}"
    );
    let e = Hdf5File::open(&dir.path().join("none.h5"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("none.h5"), "{e}");
    let e = Hdf5File::open(dir.path()).err().unwrap().to_string();
    assert!(e.contains("directory"), "{e}");
    let p = dir.path().join("x.cxi");
    let mut w = ArrayWriter::create(&p).unwrap();
    w.add("intensity", &ArrayD::<f32>::ones(IxDyn(&[4, 4])))
        .unwrap();
    w.finish().unwrap();
    let e = Hdf5File::open(Path::new(&format!("{}:/nope", p.display())))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("no dataset `/nope`") && e.contains("detector_1/data"),
        "{e}"
    );
    let e = Hdf5File::open(&p)
        .unwrap()
        .read("truth")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no `truth` array") && e.contains("FILE:/path"),
        "{e}"
    );
    assert!(ArrayWriter::create(Path::new(&format!("{}:/a", p.display()))).is_err());
    let o = Command::new(env!("CARGO_BIN_EXE_bragg"))
        .args(["phase", "--input"])
        .arg(&fake)
        .args(["--out"])
        .arg(dir.path().join("r.cxi"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not a readable HDF5 file"), "{err}");
}
