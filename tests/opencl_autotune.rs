//! Autotuning of the OpenCL conv tiles (its own test binary: it turns autotuning on for the
//! device and points the tile cache at a temporary directory, which must not leak into the
//! other OpenCL tests).
//!
//! Skips without an OpenCL device unless `BRAGG_REQUIRE_OPENCL=1`.

use bragg::backend::opencl::{list_devices, ConvPass, ConvTiles, OpenClBackend};
use bragg::backend::{Backend, Storage};
use bragg::ops::conv::ConvGeometry;
use bragg::Device;
use rand::{Rng, SeedableRng};

fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| r.random_range(-1.0..1.0)).collect()
}

fn close(what: &str, got: &[f32], want: &[f32]) {
    let scale = 1.0 + want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = got
        .iter()
        .zip(want)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(d <= 2e-4 * scale, "{what}: max diff {d} (scale {scale})");
}

#[test]
fn autotuned_tiles_are_correct_and_cached_across_processes() {
    let require = std::env::var("BRAGG_REQUIRE_OPENCL").is_ok_and(|v| v == "1");
    let (rows, _) = list_devices();
    let Some(index) = rows
        .iter()
        .filter_map(|r| r.spec.strip_prefix("opencl:"))
        .filter_map(|i| i.parse::<usize>().ok())
        .next()
    else {
        assert!(!require, "BRAGG_REQUIRE_OPENCL=1 but no OpenCL device");
        eprintln!("opencl_autotune: SKIPPED, no OpenCL device");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("BRAGG_CACHE_DIR", dir.path());
    let be = OpenClBackend::new(index).unwrap();
    be.set_conv_autotune(true);
    assert!(be.conv_autotune());
    let g = ConvGeometry::same("conv", 2, 12, 20, [6, 10, 9], [3, 3, 3], [1; 3], [1; 3]).unwrap();
    let cpu = Device::cpu();
    let (x, w, gy) = (
        rand_vec(g.input_len(), 1),
        rand_vec(g.weight_len(), 2),
        rand_vec(g.output_len(), 3),
    );
    let up = |v: &[f32]| be.upload(v).unwrap();
    let down = |s: &Storage| be.download(s).unwrap();
    let cb = cpu.backend();
    let cu = |v: &[f32]| cb.upload(v).unwrap();
    let cd = |s: &Storage| cb.download(s).unwrap();
    let y = be.conv_forward(&up(&x), &up(&w), None, &g).unwrap();
    close(
        "forward",
        &down(&y),
        &cd(&cb.conv_forward(&cu(&x), &cu(&w), None, &g).unwrap()),
    );
    let gx = be.conv_backward_data(&up(&gy), &up(&w), &g).unwrap();
    close(
        "backward_data",
        &down(&gx),
        &cd(&cb.conv_backward_data(&cu(&gy), &cu(&w), &g).unwrap()),
    );
    let gw = be.conv_backward_weight(&up(&x), &up(&gy), &g).unwrap();
    close(
        "backward_weight",
        &down(&gw),
        &cd(&cb.conv_backward_weight(&cu(&x), &cu(&gy), &g).unwrap()),
    );
    let passes = [
        ConvPass::Forward,
        ConvPass::BackwardData,
        ConvPass::BackwardWeight,
    ];
    let chosen: Vec<ConvTiles> = passes
        .iter()
        .map(|p| be.conv_tiles_of(*p, &g).unwrap())
        .collect();
    // Each pass left one line in the cache file.
    let file = std::fs::read_to_string(dir.path().join("conv-tiles-v1.tsv")).unwrap();
    assert_eq!(file.lines().count(), 3, "{file}");
    // A second backend (as in a new process) takes the shapes from the file without timing:
    // edit the file to a different valid shape and check that it is the one used.
    let other = ConvTiles {
        tm: 32,
        tn: 32,
        tk: 8,
        rm: 4,
        rn: 4,
        prefetch: !chosen[0].prefetch,
    };
    let edited: String = file
        .lines()
        .map(|l| {
            if l.contains("\tk0 ") {
                let (head, _) = l.rsplit_once('\t').unwrap();
                format!("{head}\t32 32 8 4 4 {}\n", other.prefetch as u8)
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(dir.path().join("conv-tiles-v1.tsv"), edited).unwrap();
    let fresh = OpenClBackend::new(index).unwrap();
    fresh.set_conv_autotune(true);
    let y2 = fresh
        .conv_forward(
            &fresh.upload(&x).unwrap(),
            &fresh.upload(&w).unwrap(),
            None,
            &g,
        )
        .unwrap();
    close(
        "forward from the cached shape",
        &fresh.download(&y2).unwrap(),
        &down(&y),
    );
    assert_eq!(fresh.conv_tiles_of(ConvPass::Forward, &g), Some(other));
    // Autotuning off: the heuristic shape, whatever the file says.
    let plain = OpenClBackend::new(index).unwrap();
    plain.set_conv_autotune(false);
    plain
        .conv_forward(
            &plain.upload(&x).unwrap(),
            &plain.upload(&w).unwrap(),
            None,
            &g,
        )
        .unwrap();
    let heuristic = ConvTiles::for_gemm(20, 2 * 6 * 10 * 9, plain.limits());
    assert_eq!(plain.conv_tiles_of(ConvPass::Forward, &g), Some(heuristic));
}
