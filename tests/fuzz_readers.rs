//! Deterministic fuzzing of every reader of untrusted input: `.npy`, `.npz` (stored and
//! deflated, through `NpzFile`, `Dataset::load` and `read_measured`), safetensors model files
//! (`nn::io::read_host`, `models::load_model`), recipe TOML (`SimConfig`, `TrainRecipe`) and
//! algorithm-chain strings.
//!
//! Valid files are mutated (bit flips, byte overwrites with 0x00/0xFF/random, large integers
//! written over 2/4/8-byte fields, insertions, deletions, truncation, digit runs in text
//! headers). Every reader must return (`Ok` or an error) without panicking, and the largest
//! single allocation it makes must stay proportional to the input size: a header that claims
//! a huge array must never turn into a huge allocation.
//!
//! Iterations per target: 300 by default with a fixed seed (CI); set `BRAGG_FUZZ_ITERS` for a
//! longer campaign and `BRAGG_FUZZ_SEED` for another sequence.

use bragg::data::npy::{npy_header, read_npy, write_npy, NpzFile};
use bragg::data::{read_measured, write_dataset, Dataset};
use bragg::phasing::Chain;
use bragg::sim::SimConfig;
use ndarray::{ArrayD, Dimension, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// Records the largest single allocation of the current thread.
struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(n: usize) {
    let _ = LARGEST.try_with(|c| {
        if n > c.get() {
            c.set(n)
        }
    });
}

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note(l.size());
        System.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note(l.size());
        System.alloc_zeroed(l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        note(new);
        System.realloc(p, l, new)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

fn iterations() -> usize {
    std::env::var("BRAGG_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

fn rng(target: u64) -> ChaCha8Rng {
    let seed: u64 = std::env::var("BRAGG_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20261130);
    ChaCha8Rng::seed_from_u64(seed ^ (target.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
}

/// One random mutation of `b` (a few of them stacked by [`mutate`]).
fn mutate_once(b: &mut Vec<u8>, r: &mut ChaCha8Rng) {
    if b.is_empty() {
        b.push(r.random());
        return;
    }
    let i = r.random_range(0..b.len());
    match r.random_range(0..10) {
        0 => b[i] ^= 1 << r.random_range(0..8),
        1 => b[i] = r.random(),
        2 => b[i] = if r.random() { 0xFF } else { 0x00 },
        3 => {
            // a large little-endian integer over a 2/4/8-byte field
            let w = [2usize, 4, 8][r.random_range(0..3)];
            let v: u64 =
                [u64::MAX, u32::MAX as u64, 1 << 31, 1 << 40, r.random()][r.random_range(0..5)];
            for (k, byte) in v.to_le_bytes().iter().take(w).enumerate() {
                if i + k < b.len() {
                    b[i + k] = *byte;
                }
            }
        }
        4 => {
            let n = r.random_range(1..16);
            for _ in 0..n {
                b.insert(i, r.random());
            }
        }
        5 => {
            let n = r.random_range(1..16).min(b.len() - i);
            b.drain(i..i + n);
        }
        6 => b.truncate(i),
        7 => {
            // digits in a text header: shapes such as (99999999, 99999)
            if let Some(p) = b.iter().position(|&c| c.is_ascii_digit()) {
                let run: Vec<u8> = (0..r.random_range(1..20))
                    .map(|_| b'0' + r.random_range(0..10u8))
                    .collect();
                b.splice(p..p + 1, run);
            } else {
                b[i] = b'9';
            }
        }
        8 => {
            // duplicate a chunk
            let n = r.random_range(1..64).min(b.len() - i);
            let chunk = b[i..i + n].to_vec();
            let at = r.random_range(0..b.len());
            b.splice(at..at, chunk);
        }
        _ => {
            let j = r.random_range(0..b.len());
            b.swap(i, j)
        }
    }
}

fn mutate(b: &[u8], r: &mut ChaCha8Rng) -> Vec<u8> {
    let mut out = b.to_vec();
    for _ in 0..r.random_range(1..4) {
        mutate_once(&mut out, r);
    }
    out
}

/// Runs `f` on each mutated input written to `path`; fails on a panic or on an allocation
/// larger than `bound(len)`.
fn fuzz(
    target: u64,
    name: &str,
    seeds: &[Vec<u8>],
    path: &Path,
    bound: impl Fn(usize) -> usize,
    f: impl Fn(&Path) -> bool,
) {
    let mut r = rng(target);
    let n = iterations();
    let (mut ok, mut err) = (0usize, 0usize);
    for it in 0..n {
        let seed = &seeds[it % seeds.len()];
        let bytes = mutate(seed, &mut r);
        std::fs::write(path, &bytes).unwrap();
        LARGEST.with(|c| c.set(0));
        let res = catch_unwind(AssertUnwindSafe(|| f(path)));
        let largest = LARGEST.with(|c| c.get());
        if res.is_err() {
            let keep = path.with_extension("crash");
            let _ = std::fs::write(&keep, &bytes);
            panic!(
                "{name}: iteration {it} panicked (input kept in {})",
                keep.display()
            );
        }
        assert!(
            largest <= bound(bytes.len()),
            "{name}: iteration {it}: a {}-byte input made a {largest}-byte allocation",
            bytes.len()
        );
        if res.unwrap_or(false) {
            ok += 1;
        } else {
            err += 1;
        }
    }
    // The mutations must exercise both paths: some inputs still read, others are refused.
    if n >= 100 {
        assert!(ok > 0 && err > 0, "{name}: {ok} read, {err} refused");
    }
}

#[test]
fn tracking_allocator_sees_large_allocations() {
    LARGEST.with(|c| c.set(0));
    let v = std::hint::black_box(vec![1u8; 10 << 20]);
    assert!(LARGEST.with(|c| c.get()) >= 10 << 20);
    drop(v);
}

/// Readers may allocate a few times the file size (decoding, widening to f32) plus fixed
/// buffers, never what a header claims.
fn proportional(len: usize) -> usize {
    16 * len + (4 << 20)
}

fn arr(shape: &[usize]) -> ArrayD<f32> {
    ArrayD::from_shape_fn(IxDyn(shape), |i| {
        i.as_array_view().iter().sum::<usize>() as f32
    })
}

#[test]
fn fuzz_npy() {
    let dir = tempfile::tempdir().unwrap();
    let mut seeds = vec![];
    let p = dir.path().join("s.npy");
    write_npy(&p, &arr(&[6, 7])).unwrap();
    seeds.push(std::fs::read(&p).unwrap());
    write_npy(&p, &arr(&[3, 4, 5]).mapv(half::f16::from_f32)).unwrap();
    seeds.push(std::fs::read(&p).unwrap());
    write_npy(&p, &arr(&[4, 4]).mapv(|v| v as u8)).unwrap();
    seeds.push(std::fs::read(&p).unwrap());
    write_npy(
        &p,
        &arr(&[4, 4]).mapv(|v| num_complex::Complex32::new(v, -v)),
    )
    .unwrap();
    seeds.push(std::fs::read(&p).unwrap());
    let mut fortran = npy_header("<f8", &[3, 2]);
    let hdr = String::from_utf8(fortran[10..].to_vec())
        .unwrap()
        .replace("False", "True ");
    fortran.truncate(10);
    fortran.extend(hdr.as_bytes());
    for v in 0..6 {
        fortran.extend((v as f64).to_le_bytes());
    }
    seeds.push(fortran);
    let target = dir.path().join("f.npy");
    fuzz(1, "npy", &seeds, &target, proportional, |p| {
        let _ = read_measured(p, None, None);
        match read_npy(p) {
            Ok(a) => {
                let _ = a.to_f32();
                let _ = a.clone().into_complex();
                true
            }
            Err(_) => false,
        }
    });
}

fn small_dataset(dir: &Path, half: bool) -> Vec<u8> {
    let cfg = SimConfig {
        dim: 2,
        size: 16,
        count: 2,
        half,
        photons: bragg::sim::Range::new(1e2, 1e3).unwrap(),
        gap: "line:2".parse().unwrap(),
        ..SimConfig::default()
    };
    let p = dir.join(if half { "h.npz" } else { "d.npz" });
    write_dataset(&cfg, &p, &|| {}).unwrap();
    std::fs::read(&p).unwrap()
}

fn deflated_npz(dir: &Path) -> Vec<u8> {
    use std::io::Write;
    let p = dir.join("z.npz");
    let f = std::fs::File::create(&p).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (k, shape) in [("data", [8usize, 8]), ("mask", [8, 8])] {
        z.start_file(format!("{k}.npy"), opts).unwrap();
        let mut b = npy_header("<f4", &shape);
        for v in arr(&shape).iter() {
            b.extend(if k == "mask" { 0f32 } else { *v }.to_le_bytes());
        }
        z.write_all(&b).unwrap();
    }
    z.finish().unwrap();
    std::fs::read(&p).unwrap()
}

/// Reads every array; true when all of them read.
fn read_every_key(p: &Path) -> bool {
    let Ok(mut z) = NpzFile::open(p) else {
        return false;
    };
    let mut all = true;
    for k in z.keys() {
        match z.read(&k) {
            Ok(a) => {
                let _ = a.into_f32();
            }
            Err(_) => all = false,
        }
    }
    all
}

#[test]
fn fuzz_npz() {
    let dir = tempfile::tempdir().unwrap();
    let seeds = vec![
        small_dataset(dir.path(), false),
        small_dataset(dir.path(), true),
    ];
    let target = dir.path().join("f.npz");
    fuzz(2, "npz", &seeds, &target, proportional, |p| {
        let _ = read_measured(p, Some("truth"), None);
        let _ = Dataset::load(p);
        read_every_key(p)
    });
}

#[test]
fn fuzz_npz_deflated() {
    let dir = tempfile::tempdir().unwrap();
    let seeds = vec![deflated_npz(dir.path())];
    let target = dir.path().join("f.npz");
    // Deflate may legitimately expand ~1000x; never more than that.
    fuzz(
        3,
        "npz (deflated)",
        &seeds,
        &target,
        |len| 1100 * 16 * len + (4 << 20),
        |p| {
            let _ = read_measured(p, None, None);
            read_every_key(p)
        },
    );
}

fn model_file(dir: &Path) -> Vec<u8> {
    use bragg::models::{build, save_model, ModelConfig, ModelKind};
    let cfg = ModelConfig {
        kind: ModelKind::Msd,
        dims: 2,
        width: 1,
        depth: 3,
        max_dilation: 3,
        slope: 0.2,
    };
    let dev = bragg::Device::cpu();
    let m = build(&cfg, &dev, 0).unwrap();
    let p = dir.join("m.safetensors");
    save_model(&p, m.as_ref(), &cfg, &[]).unwrap();
    std::fs::read(&p).unwrap()
}

#[test]
fn fuzz_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let seeds = vec![model_file(dir.path())];
    let target = dir.path().join("f.safetensors");
    let dev = bragg::Device::cpu();
    fuzz(4, "safetensors", &seeds, &target, proportional, |p| {
        let _ = bragg::nn::io::read_host(p);
        bragg::models::load_model(p, &dev).is_ok()
    });
}

#[test]
fn fuzz_recipe_toml() {
    let dir = tempfile::tempdir().unwrap();
    let mut seeds = vec![];
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets");
    for e in std::fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            seeds.push(std::fs::read(&p).unwrap());
        }
    }
    seeds.push(
        b"epochs = 3\nbatch = 8\nlr = 1e-3\nloss = \"mse+ssim\"\nseed = 1\n[model]\nkind = \"unet\"\ndims = 2\nwidth = 8\ndepth = 3\n"
            .to_vec(),
    );
    let target = dir.path().join("f.toml");
    fuzz(5, "recipe", &seeds, &target, proportional, |p| {
        let sim = SimConfig::from_toml_file(p);
        if let Ok(c) = &sim {
            // A recipe that validates must describe a bounded dataset.
            assert!(c.size <= 2048 && (c.dim == 2 || c.dim == 3));
        }
        let text = std::fs::read_to_string(p).unwrap_or_default();
        let train = toml::from_str::<bragg::cli::train::TrainRecipe>(&text);
        if let Ok(r) = &train {
            if let Some(m) = &r.model {
                if m.validate().is_ok() {
                    assert!(m.parameter_count() <= bragg::models::MAX_PARAMETERS);
                }
            }
        }
        sim.is_ok() || train.is_ok()
    });
}

#[test]
fn fuzz_algorithm_chains() {
    const PIECES: [&str; 18] = [
        "ER",
        "HIO",
        "RAAR",
        "Sup",
        "sup",
        "(",
        "(",
        ")",
        ")",
        "*",
        "**",
        ",",
        "0",
        "1",
        "50",
        "99999999999",
        "x",
        " ",
    ];
    let mut r = rng(6);
    let n = iterations() * 10;
    for it in 0..n {
        let len = r.random_range(0..40);
        let mut s: String = (0..len)
            .map(|_| PIECES[r.random_range(0..PIECES.len())])
            .collect();
        if it % 50 == 0 {
            let depth = r.random_range(10..5000);
            s = format!("{}{s}{}", "(".repeat(depth), ")".repeat(depth));
        }
        let t0 = std::time::Instant::now();
        let res = catch_unwind(|| Chain::parse(&s));
        let res = res.unwrap_or_else(|_| panic!("chain {s:?} panicked"));
        assert!(
            t0.elapsed().as_secs_f64() < 2.0,
            "chain {s:?} took too long"
        );
        match res {
            Ok(c) => {
                assert!(
                    c.total_cycles() >= 1 && c.total_cycles() <= 10_000_000,
                    "{s:?}"
                );
                assert!(c.ops.len() <= 100_000, "{s:?}");
            }
            Err(e) => {
                let m = e.to_string();
                assert!(m.contains("algorithm") && m.len() < 1000, "{s:?}: {m}");
            }
        }
    }
}
