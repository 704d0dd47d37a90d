//! The fast CPU convolutions (`ops::conv::cpu`) against the nested-loop ground truth
//! (`ops::conv::reference`) on many small random geometries, and their independence of the
//! thread count.

use bragg::ops::conv::{cpu, reference, ConvGeometry};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn rand_vec(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

fn assert_close(what: &str, g: &ConvGeometry, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length, {g:?}");
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * scale,
            "{what}: element {i}: fast {a} vs reference {b} (scale {scale}), {g:?}"
        );
    }
}

/// Checks the three primitives of one geometry against the reference.
fn check(g: &ConvGeometry, rng: &mut ChaCha8Rng) {
    let x = rand_vec(rng, g.input_len());
    let w = rand_vec(rng, g.weight_len());
    let b = rand_vec(rng, g.out_channels);
    let gy = rand_vec(rng, g.output_len());
    assert_close(
        "forward",
        g,
        &cpu::forward(&x, &w, Some(&b), g),
        &reference::forward(&x, &w, Some(&b), g),
    );
    assert_close(
        "forward (no bias)",
        g,
        &cpu::forward(&x, &w, None, g),
        &reference::forward(&x, &w, None, g),
    );
    assert_close(
        "backward_data",
        g,
        &cpu::backward_data(&gy, &w, g),
        &reference::backward_data(&gy, &w, g),
    );
    assert_close(
        "backward_weight",
        g,
        &cpu::backward_weight(&x, &gy, g),
        &reference::backward_weight(&x, &gy, g),
    );
}

/// A random geometry: "same" padding, "valid" padding when it fits, or an arbitrary padding.
fn random_geometry(rng: &mut ChaCha8Rng, three_d: bool, max_side: usize) -> ConvGeometry {
    let axes = if three_d { 0..3 } else { 1..3 };
    let mut input = [1; 3];
    let mut kernel = [1; 3];
    let mut dilation = [1; 3];
    let mut stride = [1; 3];
    for a in axes.clone() {
        input[a] = rng.random_range(1..=max_side);
        kernel[a] = rng.random_range(1..=5);
        dilation[a] = rng.random_range(1..=4);
        stride[a] = rng.random_range(1..=2);
    }
    let batch = rng.random_range(1..=3);
    let (c, o) = (rng.random_range(1..=5), rng.random_range(1..=5));
    let mut g = ConvGeometry::same("test", batch, c, o, input, kernel, dilation, stride).unwrap();
    match rng.random_range(0..3) {
        0 => {}
        1 => {
            if let Ok(v) = ConvGeometry::valid("test", batch, c, o, input, kernel, dilation, stride)
            {
                g = v;
            }
        }
        _ => {
            // Arbitrary padding and output size, outputs reading only padding included.
            for a in axes {
                let extent = dilation[a] * (kernel[a] - 1) + 1;
                g.pad_before[a] = rng.random_range(0..=extent);
                g.output[a] = rng.random_range(1..=max_side + 2);
            }
        }
    }
    g
}

#[test]
fn random_2d_geometries_match_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for _ in 0..1500 {
        let g = random_geometry(&mut rng, false, 10);
        check(&g, &mut rng);
    }
}

#[test]
fn random_3d_geometries_match_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for _ in 0..800 {
        let g = random_geometry(&mut rng, true, 6);
        check(&g, &mut rng);
    }
}

#[test]
fn exhaustive_kernel_dilation_stride_grid() {
    // Every kernel 1..5 x dilation 1..4 x stride 1..2 on a few small inputs, including inputs
    // smaller than the dilated kernel.
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for k in 1..=5 {
        for d in 1..=4 {
            for s in 1..=2 {
                for (input, three_d) in [([1, 7, 5], false), ([1, 2, 3], false), ([3, 4, 5], true)]
                {
                    let (kernel, dilation, stride) = if three_d {
                        ([k; 3], [d; 3], [s; 3])
                    } else {
                        ([1, k, k], [1, d, d], [1, s, s])
                    };
                    let g = ConvGeometry::same("test", 2, 3, 2, input, kernel, dilation, stride)
                        .unwrap();
                    check(&g, &mut rng);
                }
            }
        }
    }
}

#[test]
fn larger_geometries_use_several_tiles() {
    // Big enough that the tiled paths split samples into several tiles.
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for (input, kernel, dilation, stride, c, o) in [
        ([1, 40, 37], [1, 3, 3], [1, 1, 2], [1, 1, 1], 8, 6),
        ([1, 33, 30], [1, 4, 4], [1, 2, 2], [1, 2, 2], 7, 5),
        ([10, 12, 11], [3, 3, 3], [2, 1, 1], [1, 1, 1], 6, 4),
        ([9, 10, 12], [2, 3, 2], [1, 2, 3], [2, 2, 1], 5, 3),
        ([8, 8, 8], [1, 1, 1], [1, 1, 1], [1, 1, 1], 9, 7),
    ] {
        let g = ConvGeometry::same("test", 2, c, o, input, kernel, dilation, stride).unwrap();
        check(&g, &mut rng);
    }
}

#[test]
fn results_do_not_depend_on_thread_count() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let geometries = [
        ConvGeometry::same("test", 3, 6, 5, [9, 10, 11], [3; 3], [1; 3], [1; 3]).unwrap(),
        ConvGeometry::same(
            "test",
            2,
            5,
            4,
            [1, 40, 36],
            [1, 4, 4],
            [1, 2, 3],
            [1, 2, 2],
        )
        .unwrap(),
    ];
    for g in &geometries {
        let x = rand_vec(&mut rng, g.input_len());
        let w = rand_vec(&mut rng, g.weight_len());
        let gy = rand_vec(&mut rng, g.output_len());
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                (
                    cpu::forward(&x, &w, None, g),
                    cpu::backward_data(&gy, &w, g),
                    cpu::backward_weight(&x, &gy, g),
                )
            })
        };
        let one = run(1);
        for threads in [2, 3, 5] {
            assert!(run(threads) == one, "thread count {threads} changed {g:?}");
        }
    }
}
