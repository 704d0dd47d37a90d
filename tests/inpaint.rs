//! Inpainting tests: baselines on functions they must reproduce, measured pixels kept
//! bit-identical, gap detection and the 3-D patch-sliding scheme.

use bragg::inpaint::{detect_bands, inpaint_pattern, metrics, slide_patches, Baseline, GapBand};
use bragg::models::{build, ModelConfig, ModelKind};
use bragg::Device;
use ndarray::{Array2, Array3, ArrayD};

fn vertical_gap(h: usize, w: usize, c0: usize, width: usize) -> ArrayD<f32> {
    Array2::from_shape_fn((h, w), |(_, c)| (c >= c0 && c < c0 + width) as u8 as f32).into_dyn()
}

fn cross_gap(n: usize, c0: usize, width: usize) -> ArrayD<f32> {
    Array2::from_shape_fn((n, n), |(r, c)| {
        ((c >= c0 && c < c0 + width) || (r >= c0 && r < c0 + width)) as u8 as f32
    })
    .into_dyn()
}

fn gapped(truth: &ArrayD<f32>, mask: &ArrayD<f32>) -> ArrayD<f32> {
    ndarray::Zip::from(truth)
        .and(mask)
        .map_collect(|&t, &m| if m != 0.0 { 0.0 } else { t })
}

#[test]
fn linear_fill_is_exact_on_a_linear_ramp() {
    let truth = Array2::from_shape_fn((20, 24), |(r, c)| 0.5 + 0.03 * c as f32 - 0.01 * r as f32)
        .into_dyn();
    let mask = vertical_gap(20, 24, 9, 6);
    let filled = Baseline::Linear
        .fill(&gapped(&truth, &mask), &mask)
        .unwrap();
    for (a, b) in filled.iter().zip(truth.iter()) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn nearest_fill_takes_the_closest_side() {
    let truth = Array2::from_shape_fn((4, 10), |(_, c)| c as f32).into_dyn();
    let mask = vertical_gap(4, 10, 3, 4); // columns 3..7, ends at 2 and 7
    let f = Baseline::Nearest
        .fill(&gapped(&truth, &mask), &mask)
        .unwrap();
    let row: Vec<f32> = (0..10).map(|c| f[[1, c]]).collect();
    assert_eq!(row, vec![0.0, 1.0, 2.0, 2.0, 2.0, 7.0, 7.0, 7.0, 8.0, 9.0]);
}

#[test]
fn laplace_fill_reproduces_a_harmonic_function() {
    // x^2 - y^2 is harmonic, also for the 5-point discrete Laplacian.
    let n = 24;
    let truth = Array2::from_shape_fn((n, n), |(r, c)| {
        let (x, y) = (c as f32 / 8.0 - 1.5, r as f32 / 8.0 - 1.5);
        x * x - y * y + 0.3 * x
    })
    .into_dyn();
    // An interior gap (a cross that does not touch the border).
    let mask = Array2::from_shape_fn((n, n), |(r, c)| {
        let inside = (3..n - 3).contains(&r) && (3..n - 3).contains(&c);
        (inside && ((10..14).contains(&r) || (10..14).contains(&c))) as u8 as f32
    })
    .into_dyn();
    let f = Baseline::Laplace
        .fill(&gapped(&truth, &mask), &mask)
        .unwrap();
    let err = f
        .iter()
        .zip(truth.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(err < 2e-3, "max error {err}");
    // The linear fill is not exact there (curvature), so the test is meaningful.
    let l = Baseline::Linear
        .fill(&gapped(&truth, &mask), &mask)
        .unwrap();
    let lerr = l
        .iter()
        .zip(truth.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(lerr > 10.0 * err, "linear {lerr} vs laplace {err}");
}

#[test]
fn every_baseline_fills_a_cross_and_keeps_measured_pixels() {
    let truth =
        Array2::from_shape_fn((32, 32), |(r, c)| ((r * 31 + c * 17) % 13) as f32 + 1.0).into_dyn();
    let mask = cross_gap(32, 14, 6);
    let input = gapped(&truth, &mask);
    for b in Baseline::ALL {
        let f = b.fill(&input, &mask).unwrap();
        for ((&v, &i), &m) in f.iter().zip(input.iter()).zip(mask.iter()) {
            if m == 0.0 {
                assert_eq!(v.to_bits(), i.to_bits(), "{b}");
            } else if b == Baseline::Biharmonic {
                // A smooth continuation may overshoot the data range, within half of it.
                assert!(
                    v != 0.0 && (-5.5..=19.5).contains(&v),
                    "{b}: bad gap value {v}"
                );
            } else if b != Baseline::Zero {
                assert!(v > 0.5, "{b}: gap pixel left unfilled ({v})");
            }
        }
    }
    assert!(Baseline::Linear
        .fill(&input, &vertical_gap(32, 31, 3, 2))
        .is_err());
    assert!("cubic".parse::<Baseline>().is_err());
}

#[test]
fn model_inpainting_keeps_measured_pixels_bit_identical() {
    let dev = Device::cpu();
    let cfg = ModelConfig {
        width: 4,
        depth: 2,
        ..ModelConfig::thesis(ModelKind::Unet)
    };
    let model = build(&cfg, &dev, 5).unwrap();
    // Awkward values (subnormal, huge, fractional) must come back unchanged; 30x30 is padded.
    let intensity = Array2::from_shape_fn((30, 30), |(r, c)| match (r + c) % 4 {
        0 => 1e-40,
        1 => 123456.79,
        2 => 0.1 + r as f32,
        _ => 3.0e7 / (1.0 + c as f32),
    })
    .into_dyn();
    let mask = cross_gap(30, 12, 5);
    let input = gapped(&intensity, &mask);
    let out = inpaint_pattern(model.as_ref(), &cfg, &input, &mask, 8, &dev).unwrap();
    assert_eq!(out.shape(), input.shape());
    for ((&o, &i), &m) in out.iter().zip(input.iter()).zip(mask.iter()) {
        if m == 0.0 {
            assert_eq!(o.to_bits(), i.to_bits());
        } else {
            assert!(o.is_finite() && o >= 0.0);
        }
    }
}

#[test]
fn bands_are_detected_and_patch_sliding_covers_the_gap() {
    let (d, h, w) = (32, 40, 48);
    let mask = Array3::from_shape_fn((d, h, w), |(_, r, c)| {
        ((20..23).contains(&c) || (17..19).contains(&r)) as u8 as f32
    });
    assert_eq!(
        detect_bands(&mask),
        vec![
            GapBand {
                axis: 1,
                start: 17,
                width: 2
            },
            GapBand {
                axis: 2,
                start: 20,
                width: 3
            }
        ]
    );
    let dev = Device::cpu();
    let cfg = ModelConfig::thesis(ModelKind::PatchUnet3d);
    let model = build(&cfg, &dev, 0).unwrap();
    let intensity = Array3::from_shape_fn((d, h, w), |(a, b, c)| {
        (1 + (a * 3 + b * 5 + c * 7) % 50) as f32
    })
    .into_dyn();
    let mask = mask.into_dyn();
    let input = gapped(&intensity, &mask);
    let pred = slide_patches(model.as_ref(), &input, &mask, 32, 16, &dev).unwrap();
    for (&p, &m) in pred.iter().zip(mask.iter()) {
        if m != 0.0 {
            assert!(p.is_finite() && p > 0.0, "gap voxel not predicted: {p}");
        }
    }
    let out = inpaint_pattern(model.as_ref(), &cfg, &input, &mask, 16, &dev).unwrap();
    for ((&o, &i), &m) in out.iter().zip(input.iter()).zip(mask.iter()) {
        if m == 0.0 {
            assert_eq!(o.to_bits(), i.to_bits());
        }
    }
}

#[test]
fn metrics_of_a_perfect_and_a_flipped_prediction() {
    let truth = Array2::from_shape_fn((16, 16), |(r, c)| ((r * c) % 7) as f32 / 7.0).into_dyn();
    let mask = vertical_gap(16, 16, 6, 3);
    let s = metrics::score(&truth, &truth, &mask).unwrap();
    assert!((s.pcc - 1.0).abs() < 1e-9 && s.mse == 0.0 && s.mae == 0.0);
    let flipped = truth.mapv(|v| 1.0 - v);
    assert!((metrics::score(&flipped, &truth, &mask).unwrap().pcc + 1.0).abs() < 1e-6);
    let st = metrics::Stat::of(&[1.0, 3.0]);
    assert_eq!((st.mean, st.std), (2.0, 1.0));
}
