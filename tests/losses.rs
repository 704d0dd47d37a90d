//! Losses: gradient checks (with and without masks, 2-D and 3-D) and known values, SSIM
#![allow(clippy::cloned_ref_to_slice_refs)]
//! against a plain nested-loop reference.

use bragg::autograd::gradcheck::check_gradients;
use bragg::loss::{self, GradientNorm, LossSpec, SsimConfig};
use bragg::{Device, Error, Result, Tensor};
use rand::{Rng, SeedableRng};

fn rand_t(shape: &[usize], seed: u64, lo: f32, hi: f32) -> Tensor {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    Tensor::from_vec(
        (0..n).map(|_| rng.random_range(lo..hi)).collect(),
        shape,
        &Device::cpu(),
    )
    .unwrap()
}

/// A gap mask: a band of columns set to 1 along the last axis.
fn band_mask(shape: &[usize], from: usize, to: usize) -> Tensor {
    let w = *shape.last().unwrap();
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|i| {
            if (from..to).contains(&(i % w)) {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    Tensor::from_vec(data, shape, &Device::cpu()).unwrap()
}

fn assert_grads(name: &str, f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) {
    let r = check_gradients(f, inputs, 1e-3, 3e-2, 1e-3).unwrap();
    assert!(r.worst_ratio <= 1.0, "{name}: {r:?}");
}

fn small_ssim() -> SsimConfig {
    SsimConfig {
        window: 3,
        sigma: 1.0,
        ..SsimConfig::default()
    }
}

#[test]
fn every_loss_has_correct_gradients_2d_and_3d_with_and_without_mask() {
    for shape in [vec![2, 1, 6, 7], vec![1, 1, 4, 5, 6]] {
        let p = rand_t(&shape, 1, 0.1, 0.9).into_param();
        let t = rand_t(&shape, 2, 0.1, 0.9);
        let m = band_mask(&shape, 2, 4);
        for mask in [None, Some(&m)] {
            let tag = format!("{shape:?} mask={}", mask.is_some());
            assert_grads(
                &format!("mse {tag}"),
                |i| loss::mse(&i[0], &t, mask),
                &[p.clone()],
            );
            assert_grads(
                &format!("mae {tag}"),
                |i| loss::mae(&i[0], &t, mask),
                &[p.clone()],
            );
            assert_grads(
                &format!("grad-l2 {tag}"),
                |i| loss::gradient_loss(&i[0], &t, mask, GradientNorm::L2),
                &[p.clone()],
            );
            assert_grads(
                &format!("grad-l1 {tag}"),
                |i| loss::gradient_loss(&i[0], &t, mask, GradientNorm::L1),
                &[p.clone()],
            );
            let mut spec: LossSpec = "mse+0.5*ssim+grad".parse().unwrap();
            spec.ssim = small_ssim();
            assert_grads(
                &format!("composite {tag}"),
                |i| spec.eval(&i[0], &t, mask),
                &[p.clone()],
            );
        }
        assert_grads(
            &format!("ssim {shape:?}"),
            |i| loss::ssim(&i[0], &t, &small_ssim()),
            &[p.clone()],
        );
        if shape.len() == 5 {
            assert_grads(
                "slice ssim",
                |i| loss::slice_ssim_loss(&i[0], &t, &small_ssim()),
                &[p.clone()],
            );
        }
    }
}

/// SSIM by explicit loops over every window position (Gaussian weights, valid extent).
fn ssim_reference(x: &[f32], y: &[f32], h: usize, w: usize, cfg: &SsimConfig) -> f64 {
    let k = cfg.window;
    let g = bragg::ops::filter::gaussian_taps(k, cfg.sigma);
    let (c1, c2) = (
        (cfg.k1 * cfg.data_range).powi(2) as f64,
        (cfg.k2 * cfg.data_range).powi(2) as f64,
    );
    let mut total = 0.0;
    let mut count = 0;
    for i in 0..=h - k {
        for j in 0..=w - k {
            let (mut mx, mut my, mut sxx, mut syy, mut sxy) = (0.0f64, 0.0, 0.0, 0.0, 0.0);
            for a in 0..k {
                for b in 0..k {
                    let wt = (g[a] * g[b]) as f64;
                    let (xv, yv) = (x[(i + a) * w + j + b] as f64, y[(i + a) * w + j + b] as f64);
                    mx += wt * xv;
                    my += wt * yv;
                    sxx += wt * xv * xv;
                    syy += wt * yv * yv;
                    sxy += wt * xv * yv;
                }
            }
            let (vx, vy, cxy) = (sxx - mx * mx, syy - my * my, sxy - mx * my);
            total += ((2.0 * mx * my + c1) * (2.0 * cxy + c2))
                / ((mx * mx + my * my + c1) * (vx + vy + c2));
            count += 1;
        }
    }
    total / count as f64
}

#[test]
fn ssim_matches_nested_loop_reference_and_is_one_on_identical_inputs() {
    let (h, w) = (16, 13);
    let x = rand_t(&[1, 1, h, w], 5, 0.0, 1.0);
    let y = x.add(&rand_t(&[1, 1, h, w], 6, -0.2, 0.2)).unwrap();
    let cfg = SsimConfig::default();
    let got = loss::ssim2d(&x, &y, &cfg).unwrap().item().unwrap() as f64;
    let want = ssim_reference(&x.to_vec().unwrap(), &y.to_vec().unwrap(), h, w, &cfg);
    assert!((got - want).abs() < 1e-4, "ssim {got} vs reference {want}");
    assert!(got < 0.99);
    let same = loss::ssim2d(&x, &x, &cfg).unwrap().item().unwrap();
    assert!((same - 1.0).abs() < 1e-5, "SSIM(x, x) = {same}");
    let v = rand_t(&[1, 1, 12, 12, 12], 7, 0.0, 1.0);
    let s3 = loss::ssim3d(&v, &v, &cfg).unwrap().item().unwrap();
    assert!((s3 - 1.0).abs() < 1e-5);
    // Slice-wise SSIM of a volume equals the mean of the per-slice 2-D SSIMs.
    let a = rand_t(&[1, 1, 3, 12, 12], 8, 0.0, 1.0);
    let b = rand_t(&[1, 1, 3, 12, 12], 9, 0.0, 1.0);
    let sw = loss::ssim_slicewise(&a, &b, &cfg).unwrap().item().unwrap() as f64;
    let (av, bv) = (a.to_vec().unwrap(), b.to_vec().unwrap());
    let per: f64 = (0..3)
        .map(|d| {
            ssim_reference(
                &av[d * 144..(d + 1) * 144],
                &bv[d * 144..(d + 1) * 144],
                12,
                12,
                &cfg,
            )
        })
        .sum::<f64>()
        / 3.0;
    assert!((sw - per).abs() < 1e-4, "{sw} vs {per}");
}

#[test]
fn masked_losses_ignore_errors_outside_the_gap() {
    let shape = [1, 1, 4, 6];
    let t = rand_t(&shape, 10, 0.0, 1.0);
    let m = band_mask(&shape, 2, 3);
    // Perturb only outside the gap: masked MSE stays 0, unmasked does not.
    let noise = rand_t(&shape, 11, 0.5, 1.0)
        .mul(&m.neg().unwrap().add_scalar(1.0).unwrap())
        .unwrap();
    let p = t.add(&noise).unwrap();
    assert!(loss::mse(&p, &t, Some(&m)).unwrap().item().unwrap().abs() < 1e-12);
    assert!(loss::mse(&p, &t, None).unwrap().item().unwrap() > 0.05);
    assert!(loss::mae(&p, &t, Some(&m)).unwrap().item().unwrap().abs() < 1e-12);
}

#[test]
fn bad_inputs_are_named_errors() {
    let dev = Device::cpu();
    let a = Tensor::zeros(&[1, 1, 4, 4], &dev).unwrap();
    let b = Tensor::zeros(&[1, 1, 4, 5], &dev).unwrap();
    let err = loss::mse(&a, &b, None).unwrap_err();
    assert!(matches!(err, Error::Shape { op: "mse", .. }), "{err}");
    let m = Tensor::zeros(&[1, 1, 4, 3], &dev).unwrap();
    let err = loss::mae(&a, &a, Some(&m)).unwrap_err();
    assert!(err.to_string().contains("mask"), "{err}");
    let nan = Tensor::from_vec(vec![f32::NAN; 16], &[1, 1, 4, 4], &dev).unwrap();
    let err = loss::mse(&nan, &a, None).unwrap_err();
    assert!(matches!(err, Error::NonFinite { op: "mse", .. }), "{err}");
    let err = loss::ssim2d(&a, &a, &SsimConfig::default()).unwrap_err();
    assert!(err.to_string().contains("window"), "{err}");
    assert!("mse+foo"
        .parse::<LossSpec>()
        .unwrap_err()
        .to_string()
        .contains("foo"));
}

/// Gap masks of varying width per example (one example without any gap).
fn varied_masks(shape: &[usize]) -> Tensor {
    let b = shape[0];
    let per: usize = shape[1..].iter().product();
    let w = *shape.last().unwrap();
    let data: Vec<f32> = (0..b * per)
        .map(|i| {
            let (k, col) = (i / per, i % w);
            f32::from(k > 0 && col >= 2 && col < 2 + k)
        })
        .collect();
    Tensor::from_vec(data, shape, &Device::cpu()).unwrap()
}

fn rows(t: &Tensor, from: usize, to: usize) -> Vec<f32> {
    t.narrow(0, from, to - from).unwrap().to_vec().unwrap()
}

#[test]
fn parts_of_a_global_batch_add_up_to_its_loss_and_gradient() {
    let dev = Device::cpu();
    for (shape, spec) in [
        (vec![5, 1, 12, 12], "mse+0.5*ssim+grad+mae+grad-l1"),
        (vec![4, 1, 4, 8, 8], "mse+slice-ssim+grad"),
    ] {
        let mut spec: LossSpec = spec.parse().unwrap();
        spec.ssim = small_ssim();
        let b = shape[0];
        let target = rand_t(&shape, 21, 0.0, 1.0);
        let mask = varied_masks(&shape);
        let pred_data = rand_t(&shape, 22, 0.0, 1.0).to_vec().unwrap();
        let whole = Tensor::param(&pred_data, &shape, &dev).unwrap();
        let l = spec.eval(&whole, &target, Some(&mask)).unwrap();
        let g = l.backward().unwrap();
        let g_whole = g.get(&whole).unwrap().clone();
        let counts = spec.mask_counts(Some(&mask)).unwrap();
        let (mut sum, mut grads) = (0.0f64, vec![]);
        for (from, to) in [(0, 2), (2, b)] {
            let mut part_shape = shape.clone();
            part_shape[0] = to - from;
            let per = pred_data.len() / b;
            let p = Tensor::param(&pred_data[from * per..to * per], &part_shape, &dev).unwrap();
            let global = bragg::loss::GlobalBatch {
                fraction: (to - from) as f64 / b as f64,
                counts: counts.clone(),
            };
            let t = target.narrow(0, from, to - from).unwrap();
            let m = mask.narrow(0, from, to - from).unwrap();
            let lp = spec.eval_part(&p, &t, Some(&m), &global).unwrap();
            sum += lp.item().unwrap() as f64;
            grads.extend(lp.backward().unwrap().get(&p).unwrap().to_vec().unwrap());
        }
        let whole_value = l.item().unwrap() as f64;
        assert!(
            (sum - whole_value).abs() < 1e-5 * whole_value.abs().max(1.0),
            "{shape:?}: parts {sum} vs whole {whole_value}"
        );
        let gw = g_whole.to_vec().unwrap();
        let scale = gw.iter().fold(0f32, |a, v| a.max(v.abs()));
        let worst = gw
            .iter()
            .zip(&grads)
            .fold(0f32, |a, (x, y)| a.max((x - y).abs()));
        assert!(
            worst <= 1e-5 * scale,
            "{shape:?}: gradient differs by {worst} (scale {scale})"
        );
        assert_eq!(rows(&mask, 0, 1).iter().sum::<f32>(), 0.0);
    }
}

#[test]
fn a_global_batch_with_the_wrong_counts_is_refused() {
    let shape = [2, 1, 12, 12];
    let spec: LossSpec = "mse+grad".parse().unwrap();
    let t = rand_t(&shape, 1, 0.0, 1.0);
    let m = varied_masks(&shape);
    let counts = spec.mask_counts(Some(&m)).unwrap();
    assert_eq!(counts.len(), 3, "one for mse, one per axis for grad");
    let global = bragg::loss::GlobalBatch {
        fraction: 1.0,
        counts: counts[..1].to_vec(),
    };
    let err = spec
        .eval_part(&t, &t, Some(&m), &global)
        .unwrap_err()
        .to_string();
    assert!(err.contains("mask counts"), "{err}");
}
