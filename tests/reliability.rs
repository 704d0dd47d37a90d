//! Regression tests of the bad-input and fault campaign (issue 13, `checks/12-reliability`):
//! every case ends in a clean error naming the file or argument and the limit, or in a
//! correct result. Command-line cases run the `bragg` binary.

use bragg::cli::demo::{demo_sim, simulate_prepared};
use bragg::data::npy::{npy_header, write_npy, NpzFile, NpzWriter};
use bragg::data::{write_dataset, Dataset, DatasetWriter};
use bragg::models::{build, load_model, save_model, ModelConfig, ModelKind};
use bragg::sim::{simulate_sample, Field, GapSpec, Range, SimConfig};
use bragg::train::{train, TrainConfig};
use bragg::Device;
use ndarray::{ArrayD, Axis, IxDyn};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn bragg(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bragg"))
        .args(args)
        .current_dir(dir)
        .env("BRAGG_DEVICE", "cpu")
        .output()
        .unwrap()
}

/// Runs `bragg` and expects a clean failure whose stderr contains every word of `want`.
fn fails_with(args: &[&str], dir: &Path, want: &[&str]) -> String {
    let t0 = Instant::now();
    let out = bragg(args, dir);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{args:?} succeeded: {err}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?}: not a clean error: {err}"
    );
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    for w in want {
        assert!(err.contains(w), "{args:?}: `{w}` not in: {err}");
    }
    assert!(
        t0.elapsed() < Duration::from_secs(60),
        "{args:?} took too long"
    );
    err
}

fn raw_npy(shape: &[usize], descr: &str, data: &[u8]) -> Vec<u8> {
    let mut b = npy_header(descr, shape);
    b.extend_from_slice(data);
    b
}

fn small_sim(seed: u64, count: usize) -> SimConfig {
    SimConfig {
        dim: 2,
        size: 32,
        count,
        seed,
        gap: GapSpec::Line(4),
        photons: Range::new(1e2, 1e4).unwrap(),
        oversampling: Range::new(2.0, 4.0).unwrap(),
        ..SimConfig::default()
    }
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            n.contains(".bragg-") || n.ends_with(".tmp") || n.ends_with(".part")
        })
        .collect()
}

#[test]
fn headers_claiming_more_than_the_file_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("huge1d.npy"), raw_npy(&[1 << 40], "<f4", &[0; 64])).unwrap();
    std::fs::write(
        d.join("huge2d.npy"),
        raw_npy(&[32768, 32768], "<f4", &[0; 64]),
    )
    .unwrap();
    let e = bragg::data::npy::read_npy(&d.join("huge1d.npy"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("huge1d.npy") && e.contains("claims"), "{e}");
    fails_with(
        &["phase", "--input", "huge1d.npy", "--out", "r.npz"],
        d,
        &["huge1d.npy", "truncated", "4.0 TiB"],
    );
    fails_with(
        &["compare", "--result", "huge2d.npy", "--truth", "huge2d.npy"],
        d,
        &["huge2d.npy", "truncated"],
    );
    // A member over the array limit (BRAGG_MAX_ARRAY_BYTES) is refused by size.
    let a = ArrayD::<f32>::ones(IxDyn(&[4, 32, 32]));
    let mut w = NpzWriter::create(&d.join("big.npz")).unwrap();
    w.add("intensity", &a).unwrap();
    w.finish().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bragg"))
        .args([
            "phase", "--input", "big.npz", "--index", "0", "--out", "r.npz",
        ])
        .current_dir(d)
        .env("BRAGG_MAX_ARRAY_BYTES", "4096")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("limit") && err.contains("BRAGG_MAX_ARRAY_BYTES"),
        "{err}"
    );
}

#[test]
fn corrupt_archives_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.npz");
    write_dataset(&small_sim(1, 2), &p, &|| {}).unwrap();
    let good = std::fs::read(&p).unwrap();
    // One flipped byte in the middle of `truth`'s data: the CRC-32 no longer matches.
    let pos = good.windows(9).position(|w| w == b"truth.npy").unwrap() + 9 + 30 + 128 + 200;
    let mut bad = good.clone();
    bad[pos] ^= 0x40;
    std::fs::write(&p, &bad).unwrap();
    let e = Dataset::load(&p).unwrap_err().to_string();
    assert!(e.contains("d.npz") && e.contains("CRC"), "{e}");
    // Two members with one name (numpy and zip readers disagree on which one wins).
    std::fs::write(&p, &good).unwrap();
    // `photons.npy` and `gap_pos.npy` have the same length: renaming the first (local and
    // central headers) gives two members called `gap_pos.npy` with intact CRCs.
    let mut dup = good.clone();
    for i in 0..dup.len() - 11 {
        if &dup[i..i + 11] == b"photons.npy" {
            dup[i..i + 11].copy_from_slice(b"gap_pos.npy");
        }
    }
    std::fs::write(&p, &dup).unwrap();
    let e = NpzFile::open(&p)
        .err()
        .expect("duplicates accepted")
        .to_string();
    assert!(e.contains("more than once"), "{e}");
    // Truncations and garbage.
    for cut in [0, 10, good.len() / 2, good.len() - 1] {
        std::fs::write(&p, &good[..cut]).unwrap();
        assert!(Dataset::load(&p).is_err(), "cut {cut}");
    }
}

#[test]
fn special_files_are_refused_not_read_forever() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_dataset(&small_sim(1, 4), &d.join("ok.npz"), &|| {}).unwrap();
    fails_with(
        &["eval", "--model", "/dev/zero", "--data", "ok.npz"],
        d,
        &["/dev/zero", "not a regular file"],
    );
    fails_with(
        &["simulate", "--recipe", "/dev/zero", "--out", "x.npz"],
        d,
        &["/dev/zero", "not a regular file"],
    );
    let fifo = d.join("fifo.npz");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    fails_with(
        &["phase", "--input", "fifo.npz", "--out", "r.npz"],
        d,
        &["fifo.npz", "FIFO"],
    );
    fails_with(
        &[
            "train",
            "--model",
            "msd",
            "--data",
            ".",
            "--out",
            "m.safetensors",
        ],
        d,
        &["directory"],
    );
}

#[test]
fn float16_is_read_everywhere_and_overflow_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // phase on a float16 intensity
    let cfg = SimConfig {
        half: true,
        ..small_sim(3, 2)
    };
    write_dataset(&cfg, &d.join("h.npz"), &|| {}).unwrap();
    let out = bragg(
        &[
            "phase",
            "--input",
            "h.npz",
            "--index",
            "1",
            "--algorithm",
            "ER**5",
            "--out",
            "r.npz",
        ],
        d,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // compare with a float16 truth (a real array is a real object)
    let obj = ArrayD::from_shape_fn(IxDyn(&[32, 32]), |i| {
        half::f16::from_f32(((i[0] + i[1]) % 7) as f32)
    });
    write_npy(&d.join("t16.npy"), &obj).unwrap();
    let out = bragg(&["compare", "--result", "r.npz", "--truth", "t16.npy"], d);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // a float16 value that overflowed is refused with the reason
    let mut inf = obj.clone();
    inf[[3, 4]] = half::f16::INFINITY;
    write_npy(&d.join("inf16.npy"), &inf).unwrap();
    fails_with(
        &["phase", "--input", "inf16.npy", "--out", "r2.npz"],
        d,
        &["inf16.npy", "float16", "65504"],
    );
    // the simulator refuses to write counts that float16 cannot hold
    let cfg = SimConfig {
        half: true,
        photons: Range::new(1e6, 1e7).unwrap(),
        ..small_sim(3, 2)
    };
    let e = write_dataset(&cfg, &d.join("over.npz"), &|| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("float16") && e.contains("65504"), "{e}");
    assert!(!d.join("over.npz").exists());
    assert!(temp_files(d).is_empty(), "{:?}", temp_files(d));
}

#[test]
fn shipped_recipes_store_only_finite_values() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets");
    let mut n = 0;
    for e in std::fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let mut c = SimConfig::from_toml_file(&p).unwrap();
        assert!(
            !c.half,
            "{}: float16 cannot hold its photon counts",
            p.display()
        );
        c.count = 1;
        let out = dir.path().join("rec.npz");
        write_dataset(&c, &out, &|| {}).unwrap();
        // Dataset::load refuses non-finite values.
        Dataset::load(&out).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        n += 1;
    }
    assert_eq!(n, 4);
}

fn write_arrays(p: &Path, i: &ArrayD<f32>, t: &ArrayD<f32>, m: &ArrayD<f32>) {
    let mut w = NpzWriter::create(p).unwrap();
    w.add("intensity", i).unwrap();
    w.add("truth", t).unwrap();
    w.add("mask", &m.mapv(|v| v as u8)).unwrap();
    w.finish().unwrap();
}

#[test]
fn bad_datasets_are_refused_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let shape = [6, 16, 16];
    let t = ArrayD::from_shape_fn(IxDyn(&shape), |i| (1 + i[1] + i[2]) as f32);
    let mut m = ArrayD::<f32>::zeros(IxDyn(&shape));
    for k in 0..6 {
        for y in 0..16 {
            for x in 6..9 {
                m[[k, y, x]] = 1.0;
            }
        }
    }
    let i = &t * &m.mapv(|v| 1.0 - v);
    let case = |name: &str, i: &ArrayD<f32>, t: &ArrayD<f32>, m: &ArrayD<f32>, want: &[&str]| {
        let p = d.join(name);
        write_arrays(&p, i, t, m);
        let out = d.join(format!("{name}.safetensors"));
        let args = [
            "train",
            "--model",
            "msd",
            "--data",
            name,
            "--epochs",
            "1",
            "--batch",
            "3",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ];
        let mut all = vec![name];
        all.extend_from_slice(want);
        fails_with(&args, d, &all);
        assert!(!out.exists());
    };
    let mut tn = t.clone();
    tn[[3, 5, 5]] = f32::NAN;
    case(
        "nan.npz",
        &i,
        &tn,
        &m,
        &["`truth`", "non-finite", "[3, 5, 5]"],
    );
    let mut ti = t.clone();
    ti[[2, 1, 1]] = f32::INFINITY;
    case("inf.npz", &i, &ti, &m, &["`truth`", "non-finite"]);
    case(
        "neg.npz",
        &i.mapv(|v| v - 500.0),
        &t.mapv(|v| v - 500.0),
        &m,
        &["`intensity`", "negative"],
    );
    let mut empty = m.clone();
    empty.index_axis_mut(Axis(0), 2).fill(0.0);
    case(
        "nogap.npz",
        &i,
        &t,
        &empty,
        &["`mask`", "pattern 2", "no gap"],
    );
    let mut full = m.clone();
    full.index_axis_mut(Axis(0), 4).fill(1.0);
    case(
        "full.npz",
        &i,
        &t,
        &full,
        &["`mask`", "pattern 4", "entirely"],
    );
    let mut two = m.clone();
    two[[1, 0, 7]] = 2.0;
    case("twos.npz", &i, &t, &two, &["`mask`", "only 0"]);
    // The good one trains.
    write_arrays(&d.join("good.npz"), &i, &t, &m);
    let out = bragg(
        &[
            "train",
            "--model",
            "msd",
            "--data",
            "good.npz",
            "--epochs",
            "1",
            "--batch",
            "3",
            "--quiet",
            "--out",
            "g.safetensors",
        ],
        d,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn msd() -> ModelConfig {
    ModelConfig {
        kind: ModelKind::Msd,
        dims: 2,
        width: 1,
        depth: 3,
        max_dilation: 3,
        slope: 0.2,
    }
}

/// Rewrites the model-config metadata of a safetensors file (keeping the weights).
fn with_config(src: &Path, dst: &Path, edit: impl Fn(&mut serde_json::Value)) {
    let b = std::fs::read(src).unwrap();
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let mut h: serde_json::Value = serde_json::from_slice(&b[8..8 + n]).unwrap();
    let meta = h["__metadata__"].as_object_mut().unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(meta["bragg.model"].as_str().unwrap()).unwrap();
    edit(&mut cfg);
    meta.insert("bragg.model".into(), cfg.to_string().into());
    let hb = serde_json::to_vec(&h).unwrap();
    let mut out = (hb.len() as u64).to_le_bytes().to_vec();
    out.extend(hb);
    out.extend(&b[8 + n..]);
    std::fs::write(dst, out).unwrap();
}

#[test]
fn model_files_are_checked_before_building_and_before_use() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let dev = Device::cpu();
    let m = build(&msd(), &dev, 0).unwrap();
    let good = d.join("m.safetensors");
    save_model(&good, m.as_ref(), &msd(), &[]).unwrap();
    assert!(load_model(&good, &dev).is_ok());
    // 9 KB asking for a UNet of width 512, depth 5: refused by its parameter count.
    with_config(&good, &d.join("bomb.safetensors"), |c| {
        c["kind"] = "unet".into();
        c["width"] = 512.into();
        c["depth"] = 5.into();
    });
    let e = load_model(&d.join("bomb.safetensors"), &dev)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("bomb.safetensors") && e.contains("parameters") && e.contains("at most"),
        "{e}"
    );
    // Within the limit but far more than the file holds: refused before building.
    with_config(&good, &d.join("big.safetensors"), |c| {
        c["kind"] = "unet".into();
        c["width"] = 64.into();
        c["depth"] = 4.into();
    });
    let e = load_model(&d.join("big.safetensors"), &dev)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("holds only"), "{e}");
    // NaN weights: refused before use, by `inpaint` too.
    let mut bytes = std::fs::read(&good).unwrap();
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(d.join("nan.safetensors"), &bytes).unwrap();
    write_dataset(&small_sim(2, 2), &d.join("in.npz"), &|| {}).unwrap();
    fails_with(
        &[
            "inpaint",
            "--model",
            "nan.safetensors",
            "--input",
            "in.npz",
            "--out",
            "o.npz",
        ],
        d,
        &["nan.safetensors", "non-finite"],
    );
    assert!(!d.join("o.npz").exists());
    fails_with(
        &["eval", "--model", "bomb.safetensors", "--data", "in.npz"],
        d,
        &["bomb.safetensors", "parameters"],
    );
}

#[test]
fn parameter_count_matches_the_built_networks() {
    let dev = Device::cpu();
    for kind in [ModelKind::Unet, ModelKind::DilatedUnet, ModelKind::Msd] {
        for dims in [2, 3] {
            for (width, depth) in [(2, 2), (4, 3), (3, 4)] {
                let cfg = ModelConfig {
                    kind,
                    dims,
                    width,
                    depth,
                    max_dilation: 5,
                    slope: 0.2,
                };
                let m = build(&cfg, &dev, 0).unwrap();
                assert_eq!(cfg.parameter_count(), m.num_parameters() as u64, "{cfg:?}");
            }
        }
    }
    for thesis in [
        ModelConfig::thesis(ModelKind::PatchUnet3d),
        ModelConfig::thesis(ModelKind::GapUnet3d),
        ModelConfig {
            width: 5,
            depth: 2,
            ..ModelConfig::thesis(ModelKind::GapUnet3d)
        },
    ] {
        let m = build(&thesis, &dev, 0).unwrap();
        assert_eq!(
            thesis.parameter_count(),
            m.num_parameters() as u64,
            "{thesis:?}"
        );
    }
    assert!(ModelConfig::thesis(ModelKind::Unet).validate().is_ok());
}

#[test]
fn command_line_values_have_limits() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_dataset(&small_sim(1, 4), &d.join("ok.npz"), &|| {}).unwrap();
    fails_with(
        &[
            "phase",
            "--input",
            "ok.npz",
            "--index",
            "0",
            "--runs",
            "18446744073709551615",
            "--out",
            "r.npz",
        ],
        d,
        &["--runs", "10000"],
    );
    let deep = format!("{}ER**1{}", "(".repeat(10_000), ")".repeat(10_000));
    let e = fails_with(
        &[
            "phase",
            "--input",
            "ok.npz",
            "--index",
            "0",
            "--algorithm",
            &deep,
            "--out",
            "r.npz",
        ],
        d,
        &["algorithm"],
    );
    assert!(e.len() < 1000, "{e}");
    let deep = format!("{}ER**1{}", "(".repeat(100), ")".repeat(100));
    fails_with(
        &[
            "phase",
            "--input",
            "ok.npz",
            "--index",
            "0",
            "--algorithm",
            &deep,
            "--out",
            "r.npz",
        ],
        d,
        &["nested deeper than 32"],
    );
    fails_with(
        &[
            "train",
            "--model",
            "unet",
            "--width",
            "256",
            "--depth",
            "5",
            "--data",
            "ok.npz",
            "--out",
            "w.safetensors",
        ],
        d,
        &["width 256 depth 5", "parameters", "at most"],
    );
    fails_with(
        &[
            "train",
            "--model",
            "msd",
            "--data",
            "ok.npz",
            "--batch",
            "0",
            "--out",
            "w.safetensors",
        ],
        d,
        &["--batch", "1..="],
    );
    fails_with(
        &[
            "simulate", "--dim", "2", "--size", "32", "--count", "0", "--out", "z.npz",
        ],
        d,
        &["count", "1..="],
    );
    fails_with(
        &[
            "simulate", "--dim", "3", "--size", "512", "--count", "9000000", "--out", "z.npz",
        ],
        d,
        &["free"],
    );
}

#[test]
fn concurrent_writers_leave_one_complete_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = small_sim(1, 24);
    let b = small_sim(2, 24);
    write_dataset(&a, &d.join("a.npz"), &|| {}).unwrap();
    write_dataset(&b, &d.join("b.npz"), &|| {}).unwrap();
    let ta = Dataset::load(&d.join("a.npz")).unwrap().truth.unwrap();
    let tb = Dataset::load(&d.join("b.npz")).unwrap().truth.unwrap();
    let same = d.join("same.npz");
    for _ in 0..3 {
        std::thread::scope(|s| {
            s.spawn(|| write_dataset(&a, &same, &|| {}).unwrap());
            s.spawn(|| write_dataset(&b, &same, &|| {}).unwrap());
        });
        let t = Dataset::load(&same).unwrap().truth.unwrap();
        assert!(t == ta || t == tb, "a mix of two runs");
    }
    // Two processes as well.
    let args = |seed: &str| {
        vec![
            "simulate", "--dim", "2", "--size", "32", "--count", "40", "--gap", "line:4", "--seed",
            seed, "--out", "same.npz",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>()
    };
    let p1 = Command::new(env!("CARGO_BIN_EXE_bragg"))
        .args(args("1"))
        .current_dir(d)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let p2 = Command::new(env!("CARGO_BIN_EXE_bragg"))
        .args(args("2"))
        .current_dir(d)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(p1.wait_with_output().unwrap().status.success());
    assert!(p2.wait_with_output().unwrap().status.success());
    assert!(Dataset::load(&same).is_ok());
    assert!(temp_files(d).is_empty(), "{:?}", temp_files(d));
}

#[test]
fn failed_or_abandoned_writes_leave_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = small_sim(1, 2);
    let out = d.join("x.npz");
    {
        let mut w = DatasetWriter::create(&out, &cfg.shape(), &Field::ALL, false).unwrap();
        w.push(&simulate_sample(&cfg, 0).unwrap()).unwrap();
        // dropped unfinished
    }
    {
        let mut w = NpzWriter::create(&out).unwrap();
        w.add("a", &ArrayD::<f32>::zeros(IxDyn(&[3]))).unwrap();
    }
    assert!(!out.exists());
    assert!(temp_files(d).is_empty(), "{:?}", temp_files(d));
    // A figure replaced atomically keeps a valid PNG.
    let img = image::RgbImage::from_pixel(4, 4, image::Rgb([1, 2, 3]));
    let png = d.join("f.png");
    bragg::data::io::write_png(&png, &img).unwrap();
    bragg::data::io::write_png(&png, &img).unwrap();
    assert!(image::open(&png).is_ok());
    assert!(temp_files(d).is_empty());
}

#[test]
fn resume_refuses_a_changed_configuration() {
    let dev = Device::cpu();
    let data = simulate_prepared(&demo_sim(16, 12, GapSpec::Line(3), 3).unwrap()).unwrap();
    let other = simulate_prepared(&demo_sim(16, 12, GapSpec::Line(3), 4).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = |epochs: usize, resume: bool| TrainConfig {
        epochs,
        batch: 4,
        lr: 1e-3,
        loss: "mse".into(),
        progress: false,
        resume,
        seed: 1,
        ..TrainConfig::new(msd(), dir.path().join("m.safetensors"))
    };
    train(&cfg(1, false), &data, None, &dev).unwrap();
    let refused = |c: TrainConfig, d: &bragg::train::Prepared, want: &str| {
        let e = train(&c, d, None, &dev).err().expect("resumed").to_string();
        assert!(e.contains("--resume refused") && e.contains(want), "{e}");
    };
    refused(
        TrainConfig {
            seed: 2,
            ..cfg(2, true)
        },
        &data,
        "seed 1 -> 2",
    );
    refused(
        TrainConfig {
            batch: 6,
            ..cfg(2, true)
        },
        &data,
        "batch 4 -> 6",
    );
    refused(
        TrainConfig {
            loss: "mae".into(),
            ..cfg(2, true)
        },
        &data,
        "loss mse -> mae",
    );
    refused(cfg(2, true), &other, "training data");
    // Unchanged settings resume.
    let r = train(&cfg(2, true), &data, None, &dev).unwrap();
    assert_eq!(r.history.len(), 2);
}
