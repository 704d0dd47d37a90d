//! End-to-end phase retrieval on small simulated objects (2D 64^2, 3D 32^3), noiseless, with
//! and without a 6-px gap, plus Parseval, LLK and determinism checks.

use bragg::fft::{fftshift, Direction, FftPlan};
use bragg::phasing::{self, kernels, post, Chain, Options, Problem, Start};
use ndarray::{ArrayD, IxDyn};
use num_complex::Complex32;
use rand::{Rng, SeedableRng};

#[path = "common/phasing_objects.rs"]
mod phasing_objects;
use phasing_objects::{intensity, object};

fn options(chain: &str, runs: usize) -> Options {
    Options {
        chain: Chain::parse(chain).unwrap(),
        runs,
        keep: 1,
        seed: 7,
        ..Options::default()
    }
}

/// Aligns every run on the truth and asserts that the best one is below the thresholds.
/// (On these small objects some random starts stagnate in a twin mixture, and the free LLK
/// does not always rank the correct solution first, so the assertion is over the kept runs.)
fn check(truth: &ArrayD<Complex32>, runs: &[phasing::Run], max_mod: f64, max_phase: f64) {
    let shape = truth.shape();
    let t: Vec<Complex32> = truth.iter().copied().collect();
    let best = runs
        .iter()
        .map(|r| {
            let o: Vec<Complex32> = r.object.iter().copied().collect();
            let m = post::align(&o, &t, shape).metrics;
            eprintln!(
                "{shape:?} run {}: llk {:.3e} free {:.3e} {m:?}",
                r.index, r.llk, r.free_llk
            );
            m
        })
        .min_by(|a, b| a.complex_error.total_cmp(&b.complex_error))
        .unwrap();
    assert!(best.modulus_error < max_mod, "{best:?}");
    assert!(best.phase_rms_error < max_phase, "{best:?}");
    assert!(best.support_jaccard > 0.8, "{best:?}");
}

fn opts_keep_all(chain: &str, runs: usize) -> Options {
    Options {
        keep: runs,
        ..options(chain, runs)
    }
}

#[test]
fn recovers_2d_object_noiseless() {
    let truth = object(&[64, 64], &[11.0, 8.0]);
    let problem = Problem::from_centred(&intensity(&truth), None).unwrap();
    let o = opts_keep_all("RAAR**600,ER**200", 6);
    let runs = phasing::phase(&problem, &o, &Start::Random, &mut |_, _, _| {}).unwrap();
    check(&truth, &runs, 0.1, 0.1);
}

#[test]
fn recovers_2d_object_with_6px_gap() {
    let truth = object(&[64, 64], &[11.0, 8.0]);
    let mask = ArrayD::from_shape_fn(IxDyn(&[64, 64]), |i| u8::from((35..41).contains(&i[1])));
    let problem = Problem::from_centred(&intensity(&truth), Some(&mask)).unwrap();
    let o = opts_keep_all("RAAR**600,ER**200", 6);
    let runs = phasing::phase(&problem, &o, &Start::Random, &mut |_, _, _| {}).unwrap();
    check(&truth, &runs, 0.12, 0.12);
}

#[test]
fn recovers_3d_object_noiseless_and_with_gap() {
    let truth = object(&[32, 32, 32], &[6.0, 5.0, 4.5]);
    let i = intensity(&truth);
    let problem = Problem::from_centred(&i, None).unwrap();
    let o = opts_keep_all("RAAR**300,ER**100", 3);
    let runs = phasing::phase(&problem, &o, &Start::Random, &mut |_, _, _| {}).unwrap();
    check(&truth, &runs, 0.2, 0.2);
    let mask = ArrayD::from_shape_fn(IxDyn(&[32, 32, 32]), |i| u8::from((24..30).contains(&i[2])));
    let problem = Problem::from_centred(&i, Some(&mask)).unwrap();
    let runs = phasing::phase(&problem, &o, &Start::Random, &mut |_, _, _| {}).unwrap();
    check(&truth, &runs, 0.3, 0.3);
}

#[test]
fn start_from_true_reciprocal_phase_converges_fast() {
    let truth = object(&[64, 64], &[11.0, 8.0]);
    let mut f = truth.clone();
    FftPlan::new(&[64, 64]).process(f.as_slice_mut().unwrap(), Direction::Forward);
    let phase = fftshift(&f.mapv(|v| v.arg()));
    let problem = Problem::from_centred(&intensity(&truth), None).unwrap();
    let runs = phasing::phase(
        &problem,
        &options("ER**20", 1),
        &Start::ReciprocalPhase(phase),
        &mut |_, _, _| {},
    )
    .unwrap();
    check(&truth, &runs, 0.05, 0.05);
    // The reciprocal-phase start also goes through a full `phase` call with several runs.
}

#[test]
fn parseval_holds_for_the_planned_fft() {
    let truth = object(&[16, 12, 10], &[4.0, 3.0, 3.0]);
    let mut f: Vec<Complex32> = truth.iter().copied().collect();
    FftPlan::new(truth.shape()).process(&mut f, Direction::Forward);
    let e_real: f64 = truth.iter().map(|v| v.norm_sqr() as f64).sum();
    let e_rec: f64 = f.iter().map(|v| v.norm_sqr() as f64).sum::<f64>() / f.len() as f64;
    assert!(
        (e_real - e_rec).abs() < 1e-4 * e_real,
        "{e_real} vs {e_rec}"
    );
}

#[test]
fn llk_of_truth_is_lower_than_of_a_random_object() {
    let truth = object(&[64, 64], &[11.0, 8.0]);
    // Poisson-noisy data with a max of 1e4 photons.
    let i = intensity(&truth);
    let max = i.iter().copied().fold(0.0f32, f32::max);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let noisy = i.mapv(|v| {
        let lambda = (v / max * 1e4) as f64;
        rand_distr::Distribution::sample(
            &rand_distr::Poisson::new(lambda.max(1e-9)).unwrap(),
            &mut rng,
        ) as f32
    });
    let scale = (1e4 / max).sqrt();
    let problem = Problem::from_centred(&noisy, None).unwrap();
    let plan = FftPlan::new(&[64, 64]);
    let llk_of = |obj: &ArrayD<Complex32>| {
        let mut f: Vec<Complex32> = obj.iter().map(|v| v * scale).collect();
        plan.process(&mut f, Direction::Forward);
        let f = bragg::fft::ifftshift(&fftshift(
            &ArrayD::from_shape_vec(IxDyn(&[64, 64]), f).unwrap(),
        ));
        kernels::poisson_llk(f.as_slice().unwrap(), problem.iobs(), problem.mask()).llk()
    };
    let random = truth
        .mapv(|v| Complex32::from_polar(v.norm(), rng.random_range(0.0..std::f32::consts::TAU)));
    let (lt, lr) = (llk_of(&truth), llk_of(&random));
    eprintln!("LLK truth {lt:.3} random {lr:.3}");
    assert!(lt < 2.0 && lt < lr / 10.0, "truth {lt} random {lr}");
}

#[test]
fn runs_are_deterministic_for_a_seed() {
    let truth = object(&[32, 32], &[6.0, 5.0]);
    let problem = Problem::from_centred(&intensity(&truth), None).unwrap();
    let opts = Options {
        runs: 2,
        keep: 2,
        ..options("RAAR**30,ER**10", 2)
    };
    let a = phasing::phase(&problem, &opts, &Start::Random, &mut |_, _, _| {}).unwrap();
    let b = phasing::phase(&problem, &opts, &Start::Random, &mut |_, _, _| {}).unwrap();
    assert_eq!(a.len(), 2);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.object, y.object);
        assert_eq!(x.llk, y.llk);
    }
    assert!(a[0].free_llk <= a[1].free_llk);
}

#[test]
fn bad_inputs_are_errors() {
    let i = ArrayD::from_elem(IxDyn(&[8]), 1.0f32);
    assert!(Problem::from_centred(&i, None).is_err());
    let i = ArrayD::from_elem(IxDyn(&[8, 8]), 0.0f32);
    assert!(Problem::from_centred(&i, None).is_err());
    let mut i = ArrayD::from_elem(IxDyn(&[8, 8]), 1.0f32);
    let m = ArrayD::from_elem(IxDyn(&[8, 4]), 0u8);
    assert!(Problem::from_centred(&i, Some(&m)).is_err());
    i[[1, 1]] = f32::NAN;
    assert!(Problem::from_centred(&i, None).is_err());
    assert!(Chain::parse("RAAR**600,XX**3").is_err());
}

/// Tuning aid: `CHAIN=... RUNS=.. SHAPE=64,64 cargo test --release --test phasing_recovery tune -- --ignored --nocapture`.
#[test]
#[ignore]
fn tune() {
    let chain = std::env::var("CHAIN").unwrap_or("RAAR**300,ER**100".into());
    let runs: usize = std::env::var("RUNS")
        .map(|v| v.parse().unwrap())
        .unwrap_or(3);
    let shape: Vec<usize> = std::env::var("SHAPE")
        .unwrap_or("64,64".into())
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    let gap: usize = std::env::var("GAP")
        .map(|v| v.parse().unwrap())
        .unwrap_or(0);
    let semi: Vec<f64> = if shape.len() == 2 {
        vec![11.0, 8.0]
    } else {
        vec![7.0, 6.0, 5.0]
    };
    let truth = object(&shape, &semi);
    let n = *shape.last().unwrap();
    let mask = ArrayD::from_shape_fn(IxDyn(&shape), |i| {
        u8::from(gap > 0 && (n / 2 + 3..n / 2 + 3 + gap).contains(&i[shape.len() - 1]))
    });
    let problem = Problem::from_centred(&intensity(&truth), Some(&mask)).unwrap();
    let mut o = options(&chain, runs);
    o.keep = runs;
    if let Ok(t) = std::env::var("THR") {
        o.shrink_wrap.threshold = t.parse().unwrap();
    }
    if let Ok(t) = std::env::var("PERIOD") {
        o.shrink_wrap.period = t.parse().unwrap();
    }
    let t0 = std::time::Instant::now();
    let res = phasing::phase(&problem, &o, &Start::Random, &mut |_, _, _| {}).unwrap();
    eprintln!("{:?}", t0.elapsed());
    let t: Vec<Complex32> = truth.iter().copied().collect();
    for r in &res {
        let al = post::align(&r.object.iter().copied().collect::<Vec<_>>(), &t, &shape);
        eprintln!(
            "run {} llk {:.3e} free {:.3e} sup {} err {:.3} mod {:.3} ph {:.3} jac {:.3} twin {}",
            r.index,
            r.llk,
            r.free_llk,
            r.support_size,
            al.metrics.complex_error,
            al.metrics.modulus_error,
            al.metrics.phase_rms_error,
            al.metrics.support_jaccard,
            al.metrics.twin
        );
    }
}

#[test]
fn gap_prior_recovers_and_frees_the_gap_again() {
    let truth = object(&[64, 64], &[11.0, 8.0]);
    // A gap next to the peak (columns 35..41 with the peak at 32), holding signal.
    let mask = ArrayD::from_shape_fn(IxDyn(&[64, 64]), |i| u8::from((35..41).contains(&i[1])));
    let problem = Problem::from_centred(&intensity(&truth), Some(&mask)).unwrap();
    let o = Options {
        gap_prior: 0.3,
        ..opts_keep_all("RAAR**600,ER**200", 4)
    };
    let mut phaser = phasing::Phaser::new(&problem, &o).unwrap();
    let run = phaser.run(0, &Start::Random, 3, &mut |_, _| {}).unwrap();
    // After the run the gap is free again, so the final LLK ignores the prior.
    assert!(phaser.mask().contains(&kernels::MASKED));
    assert!(run.llk.is_finite());
    let runs = phasing::phase(&problem, &o, &Start::Random, &mut |_, _, _| {}).unwrap();
    check(&truth, &runs, 0.15, 0.3);
    let bad = Options {
        gap_prior: 1.5,
        ..o.clone()
    };
    assert!(phasing::Phaser::new(&problem, &bad).is_err());
}

#[test]
fn automatic_autocorrelation_threshold_follows_dimension_and_chain() {
    let default = Options::default();
    assert_eq!(default.autocorrelation_threshold, 0.0);
    assert_eq!(
        default.autocorrelation_threshold_for(3),
        phasing::AUTOCORRELATION_THRESHOLD_HIO_3D
    );
    assert_eq!(
        default.autocorrelation_threshold_for(2),
        phasing::AUTOCORRELATION_THRESHOLD
    );
    let raar = options("RAAR**600,ER**200", 1);
    assert_eq!(
        raar.autocorrelation_threshold_for(3),
        phasing::AUTOCORRELATION_THRESHOLD
    );
    let explicit = Options {
        autocorrelation_threshold: 0.3,
        ..Options::default()
    };
    assert_eq!(explicit.autocorrelation_threshold_for(3), 0.3);
    let problem = Problem::from_centred(&intensity(&object(&[32, 32], &[6.0, 5.0])), None).unwrap();
    for bad in [-0.1, 1.0, f32::NAN] {
        let o = Options {
            autocorrelation_threshold: bad,
            ..Options::default()
        };
        assert!(
            phasing::Phaser::new(&problem, &o).is_err(),
            "{bad} accepted"
        );
    }
}

#[test]
fn gap_interval_keeps_masked_intensities_near_the_fill() {
    let truth = object(&[64, 64], &[11.0, 8.0]);
    let full = intensity(&truth);
    let mask = ArrayD::from_shape_fn(IxDyn(&[64, 64]), |i| u8::from((35..41).contains(&i[1])));
    // the exact intensity as the fill: a narrow interval makes the gap nearly observed
    let problem = Problem::from_centred(&full, Some(&mask))
        .unwrap()
        .with_support_hint(&full)
        .unwrap();
    let o = Options {
        gap_interval: Some([0.9, 1.1]),
        ..opts_keep_all("RAAR**600,ER**200", 4)
    };
    let runs = phasing::phase(&problem, &o, &Start::Random, &mut |_, _, _| {}).unwrap();
    check(&truth, &runs, 0.15, 0.3);
    for bad in [[1.2, 1.0], [-0.1, 1.0], [0.5, f32::INFINITY]] {
        let o = Options {
            gap_interval: Some(bad),
            ..o.clone()
        };
        assert!(
            phasing::Phaser::new(&problem, &o).is_err(),
            "{bad:?} accepted"
        );
    }
}

/// Partial coherence: a 2-D intensity blurred by a Gaussian PSF (sigma 0.6 px) is phased
/// without and with the PSF model; the estimated PSF explains the blur (a lower LLK) and gives
/// a good object where the coherent model fails.
#[test]
fn psf_model_recovers_a_blurred_pattern() {
    let truth = object(&[64, 64], &[11.0, 8.0]);
    let blurred = bragg::sim::phase::gaussian_filter(&intensity(&truth), 0.6);
    let problem = Problem::from_centred(&blurred, None).unwrap();
    let t: Vec<Complex32> = truth.iter().copied().collect();
    let mut results = vec![];
    let variants = [None, Some(phasing::PsfOptions::default())];
    for psf in variants {
        let o = Options {
            psf: psf.clone(),
            ..opts_keep_all("RAAR**600,ER**200", 4)
        };
        let runs = phasing::phase(&problem, &o, &Start::Random, &mut |_, _, _| {}).unwrap();
        let best = &runs[0];
        let obj: Vec<Complex32> = best.object.iter().copied().collect();
        let m = post::align(&obj, &t, &[64, 64]).metrics;
        eprintln!("psf {psf:?}: llk {:.3e} {m:?}", best.llk);
        assert_eq!(best.psf.is_some(), psf.is_some());
        results.push((best.llk, m.complex_error, best.psf.clone()));
    }
    let (coherent, with_psf) = (&results[0], &results[1]);
    assert!(
        with_psf.0 < 0.5 * coherent.0,
        "llk {} vs {}",
        with_psf.0,
        coherent.0
    );
    assert!(with_psf.1 < 0.12, "error with the PSF {}", with_psf.1);
    assert!(with_psf.1 < coherent.1, "{} vs {}", with_psf.1, coherent.1);
    // the estimated kernel is centred, normalised and about as wide as the true one
    let k = with_psf.2.as_ref().unwrap();
    let sum: f32 = k.iter().sum();
    assert!((sum - 1.0).abs() < 1e-3);
    let ratio = k[[32, 33]] / k[[32, 32]];
    let want = (-0.5f32 / 0.36).exp();
    assert!((ratio - want).abs() < 0.15, "side/centre {ratio} vs {want}");
}

/// A predicted start known on the whole array gives identical runs; hedged (the default), the
/// odd-numbered runs start from random phases instead and differ.
#[test]
fn hedged_predicted_starts_alternate_with_random_ones() {
    let truth = object(&[32, 32], &[6.0, 5.0]);
    let problem = Problem::from_centred(&intensity(&truth), None).unwrap();
    let start = Start::Predicted {
        phase: ArrayD::zeros(IxDyn(&[32, 32])),
        known: ArrayD::from_elem(IxDyn(&[32, 32]), 1u8),
    };
    let mut llk = vec![];
    for hedge in [false, true] {
        let o = Options {
            hedge_predicted: hedge,
            ..opts_keep_all("RAAR**20,ER**10", 2)
        };
        let mut runs = phasing::phase(&problem, &o, &start, &mut |_, _, _| {}).unwrap();
        runs.sort_by_key(|r| r.index);
        llk.push((runs[0].llk, runs[1].llk));
    }
    assert_eq!(
        llk[0].0, llk[0].1,
        "unhedged runs from one prediction must agree"
    );
    assert_eq!(llk[1].0, llk[0].0, "run 0 always uses the prediction");
    assert_ne!(llk[1].1, llk[1].0, "hedged run 1 starts from random phases");
    assert!(Options::default().hedge_predicted);
}
