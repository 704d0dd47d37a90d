//! The residual 3-D gap model, its windows, training, fine-tuning, the classical fills on
//! counts, the gap scores and the physics refinement.

use bragg::inpaint::fill::{FillMethod, Filler};
use bragg::inpaint::gap3d::{
    band_windows, inpaint_volume, inpaint_volume_flips, log_linear_fill, window_input,
    MIN_LOG_RANGE,
};
use bragg::inpaint::physics::{blend_two_runs, physics_fill, PhysicsOptions};
use bragg::inpaint::study::{score_gap, GapScores};
use bragg::inpaint::{baselines::biharmonic_fill, GapBand};
use bragg::models::{build, ModelConfig, ModelKind};
use bragg::train::gap3d::{
    batch_tensors, finetune, gap_model, simulate_volume, train_gap3d, volume_examples,
    Gap3dTrainConfig, GapRecipe,
};
use bragg::{Device, Tensor};
use ndarray::{Array3, ArrayD, IxDyn};

fn plane_mask(shape: [usize; 3], axis: usize, start: usize, width: usize) -> Array3<f32> {
    let mut m = Array3::<f32>::zeros(shape);
    for i in start..start + width {
        m.index_axis_mut(ndarray::Axis(axis), i).fill(1.0);
    }
    m
}

fn small_cfg() -> ModelConfig {
    ModelConfig {
        width: 4,
        depth: 2,
        ..ModelConfig::thesis(ModelKind::GapUnet3d)
    }
}

#[test]
fn fresh_gap_model_is_the_log_linear_fill_and_keeps_measured_voxels() {
    let dev = Device::cpu();
    let model = build(&small_cfg(), &dev, 3).unwrap();
    let (counts, _) = simulate_volume(
        &GapRecipe {
            size: 32,
            ..GapRecipe::default()
        },
        1,
        0,
    )
    .unwrap();
    let counts = counts.into_dyn();
    let mask = plane_mask([32, 32, 32], 2, 13, 5).into_dyn();
    let gapped = ndarray::Zip::from(&counts)
        .and(&mask)
        .map_collect(|&c, &m| if m != 0.0 { 0.0 } else { c });
    let linear = log_linear_fill(&gapped, &mask);
    // One window orientation, then all 8 mirrorings: an untrained model returns its input's
    // pre-fill, so the mirrored predictions must land back on the right voxels.
    for flips in [1, 8] {
        let filled = inpaint_volume_flips(
            model.as_ref(),
            &gapped,
            &mask,
            [16, 8, 8],
            4,
            8,
            flips,
            &dev,
        )
        .unwrap();
        for ((f, l), (&g, &m)) in filled
            .iter()
            .zip(linear.iter())
            .zip(gapped.iter().zip(mask.iter()))
        {
            if m == 0.0 {
                assert_eq!(f.to_bits(), g.to_bits(), "measured voxel changed");
            } else {
                assert!(
                    (f - l).abs() <= 1e-3 * l.abs().max(1.0),
                    "{flips}: {f} vs {l}"
                );
            }
        }
    }
    assert!(
        inpaint_volume_flips(model.as_ref(), &gapped, &mask, [16, 8, 8], 4, 8, 9, &dev).is_err()
    );
    assert!(inpaint_volume(model.as_ref(), &gapped, &mask, [16, 8, 8], 4, 8, &dev).is_ok());
}

#[test]
fn gap_model_rejects_wrong_inputs() {
    let dev = Device::cpu();
    let model = build(&small_cfg(), &dev, 0).unwrap();
    let x = Tensor::zeros(&[1, 1, 16, 8, 8], &dev).unwrap();
    assert!(model.forward(&x).is_err(), "one channel must be refused");
    let x = Tensor::zeros(&[1, 2, 15, 8, 8], &dev).unwrap();
    assert!(model.forward(&x).is_err(), "odd size must be refused");
    let x = Tensor::zeros(&[2, 2, 16, 8, 8], &dev).unwrap();
    assert_eq!(model.forward(&x).unwrap().shape(), &[2, 1, 16, 8, 8]);
}

#[test]
fn band_windows_centre_on_the_band_and_tile_the_plane() {
    let band = GapBand {
        axis: 1,
        start: 40,
        width: 6,
    };
    let wins = band_windows([48, 64, 40], &band, [32, 16, 16], 8).unwrap();
    // Normal: centred at 43 -> corner 27, in-plane axes 0 and 2.
    for w in &wins {
        assert_eq!(w.axes, [1, 0, 2]);
        assert_eq!(w.corner[1], 27);
        assert!(w.corner[0] + 16 <= 48 && w.corner[2] + 16 <= 40);
    }
    let mut covered = Array3::<u8>::zeros((48, 1, 40));
    for w in &wins {
        for i in 0..16 {
            for k in 0..16 {
                covered[[w.corner[0] + i, 0, w.corner[2] + k]] = 1;
            }
        }
    }
    assert!(
        covered.iter().all(|&c| c == 1),
        "the gap plane is not covered"
    );
    // Near the far edge the window is clamped.
    let edge = GapBand {
        axis: 2,
        start: 38,
        width: 2,
    };
    let wins = band_windows([48, 64, 40], &edge, [32, 16, 16], 8).unwrap();
    assert!(wins.iter().all(|w| w.corner[2] == 8));
    // Too small a volume is an error naming the sizes.
    let err = band_windows([48, 20, 40], &band, [32, 16, 16], 8).unwrap_err();
    assert!(err.to_string().contains("window"), "{err}");
}

#[test]
fn window_scaling_has_a_floor_on_flat_windows() {
    let shape = [16, 8, 8];
    let pre = Array3::<f32>::from_elem(shape, 0.5);
    let mask = plane_mask(shape, 0, 6, 3);
    let w = band_windows(
        shape,
        &GapBand {
            axis: 0,
            start: 6,
            width: 3,
        },
        [16, 8, 8],
        8,
    )
    .unwrap()[0];
    let wi = window_input(&pre, &mask, &w);
    assert!((wi.hi - wi.lo - MIN_LOG_RANGE).abs() < 1e-6);
    assert!(wi.x.iter().all(|v| v.abs() < 1e-6));
    assert_eq!(wi.m.iter().filter(|&&m| m != 0.0).count(), 3 * 64);
}

#[test]
fn biharmonic_fill_is_exact_on_a_ramp_across_the_gap_and_fills_log_domain() {
    let shape = [12, 20, 10];
    let truth = ArrayD::from_shape_fn(IxDyn(&shape), |i| (1.0 + 0.5 * i[1] as f32) * 10.0);
    let mask = plane_mask([12, 20, 10], 1, 8, 4).into_dyn();
    let gapped = ndarray::Zip::from(&truth)
        .and(&mask)
        .map_collect(|&t, &m| if m != 0.0 { 0.0 } else { t });
    let f = biharmonic_fill(&gapped, &mask, 1e-10, 5000);
    for (a, b) in f.iter().zip(truth.iter()) {
        assert!((a - b).abs() < 1e-3 * b.abs(), "{a} vs {b}");
    }
    for name in ["log-biharmonic", "log-linear", "laplace", "nearest"] {
        let m: FillMethod = name.parse().unwrap();
        assert_eq!(m.to_string(), name);
        let out = m.classical_fill(&gapped, &mask).unwrap().unwrap();
        for ((o, g), mm) in out.iter().zip(gapped.iter()).zip(mask.iter()) {
            if *mm == 0.0 {
                assert_eq!(o, g);
            } else {
                assert!(*o > 0.0 && o.is_finite());
            }
        }
    }
    assert!("cubic".parse::<FillMethod>().is_err());
}

#[test]
fn gap_scores_of_perfect_and_bad_fills() {
    let truth = ArrayD::from_shape_fn(IxDyn(&[8, 8, 8]), |i| (1 + i[0] * i[1] + i[2]) as f32);
    let mask = plane_mask([8, 8, 8], 2, 3, 2).into_dyn();
    let s: GapScores = score_gap(&truth, &truth, &mask).unwrap();
    assert!(
        (s.pcc_log - 1.0).abs() < 1e-12 && s.rel_l2 == 0.0 && (s.sum_ratio - 1.0).abs() < 1e-12
    );
    let bright = truth.mapv(|v| v * 24.0);
    let s = score_gap(&bright, &truth, &mask).unwrap();
    assert!((s.sum_ratio - 24.0).abs() < 1e-9 && s.rel_l2 > 20.0);
}

#[test]
fn training_writes_a_model_that_resumes_and_refuses_changed_settings() {
    let dev = Device::cpu();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("g.safetensors");
    let mut cfg = Gap3dTrainConfig::new(&out);
    cfg.model = small_cfg();
    cfg.window = [16, 8, 8];
    cfg.recipe = GapRecipe {
        size: 32,
        widths: [2, 6],
        windows_per_volume: 4,
        ..GapRecipe::default()
    };
    cfg.steps = 4;
    cfg.batch = 2;
    cfg.checkpoint_every = 2;
    cfg.progress = false;
    let log = train_gap3d(&cfg, &dev).unwrap();
    assert_eq!(log.last().unwrap().step, 4);
    assert!(log
        .iter()
        .all(|l| l.loss.is_finite() && l.linear_loss > 0.0));
    let g = gap_model(bragg::models::load_model(&out, &dev).unwrap(), &out).unwrap();
    assert_eq!(g.window, [16, 8, 8]);
    // Resume to 6 steps.
    cfg.steps = 6;
    cfg.resume = true;
    let log = train_gap3d(&cfg, &dev).unwrap();
    assert_eq!(log.last().unwrap().step, 6);
    // A changed seed is refused with the reason.
    cfg.seed = 9;
    let err = train_gap3d(&cfg, &dev).unwrap_err().to_string();
    assert!(err.contains("seed"), "{err}");
}

#[test]
fn training_examples_are_finite_and_scaled() {
    let recipe = GapRecipe {
        size: 32,
        widths: [3, 9],
        windows_per_volume: 6,
        ..GapRecipe::default()
    };
    let (counts, peak) = simulate_volume(&recipe, 5, 2).unwrap();
    assert!(counts.iter().all(|v| v.is_finite() && *v >= 0.0));
    let mut rng = bragg::sim::sample_rng(1, 1);
    let ex = volume_examples(&counts, peak, &recipe, [16, 8, 8], &mut rng);
    assert_eq!(ex.len(), 6);
    let dev = Device::cpu();
    let (x, y, m, base) = batch_tensors(&ex, [16, 8, 8], &dev).unwrap();
    assert_eq!(x.shape(), &[6, 2, 16, 8, 8]);
    assert_eq!(y.shape(), &[6, 1, 16, 8, 8]);
    assert!(m.to_vec().unwrap().iter().any(|&v| v != 0.0));
    assert!(base.is_finite() && base > 0.0);
    assert!(x
        .to_vec()
        .unwrap()
        .iter()
        .chain(y.to_vec().unwrap().iter())
        .all(|v| v.is_finite() && *v > -1.0 && *v < 2.0));
}

#[test]
fn finetune_never_reads_the_real_gap() {
    let dev = Device::cpu();
    let recipe = GapRecipe {
        size: 32,
        ..GapRecipe::default()
    };
    let (counts, _) = simulate_volume(&recipe, 8, 0).unwrap();
    let mask = plane_mask([32, 32, 32], 1, 14, 4).into_dyn();
    // Poison the real gap: any read of it would make the loss or the weights non-finite.
    let poisoned = ndarray::Zip::from(&counts.into_dyn())
        .and(&mask)
        .map_collect(|&c, &m| if m != 0.0 { f32::NAN } else { c });
    let model = build(&small_cfg(), &dev, 1).unwrap();
    let mut meta = std::collections::HashMap::new();
    meta.insert(bragg::models::META_MODEL.to_string(), small_cfg().to_json());
    let g = bragg::train::gap3d::GapModel {
        model,
        window: [16, 8, 8],
        metadata: meta,
    };
    let tuned = finetune(&g, &poisoned, &mask, 1.0, &dev).unwrap();
    let steps: usize = tuned.metadata["bragg.finetune_steps"].parse().unwrap();
    assert!(steps >= 1);
    for p in tuned.model.parameters() {
        assert!(
            p.tensor.to_vec().unwrap().iter().all(|v| v.is_finite()),
            "{}",
            p.name
        );
    }
    let filled = inpaint_volume(
        tuned.model.as_ref(),
        &poisoned,
        &mask,
        [16, 8, 8],
        8,
        8,
        &dev,
    )
    .unwrap();
    assert!(filled
        .iter()
        .zip(mask.iter())
        .all(|(v, &m)| m == 0.0 || v.is_finite()));
}

#[test]
fn physics_refinement_keeps_measured_voxels_and_reports_its_fit() {
    let recipe = GapRecipe {
        size: 32,
        oversampling: bragg::sim::Range { min: 2.9, max: 3.3 },
        photons: bragg::sim::Range { min: 1e8, max: 1e8 },
        p_blur: 0.0,
        ..GapRecipe::default()
    };
    let (counts, peak) = simulate_volume(&recipe, 2, 0).unwrap();
    let mask = plane_mask([32, 32, 32], 2, peak[2] + 2, 3).into_dyn();
    let counts = counts.into_dyn();
    let gapped = ndarray::Zip::from(&counts)
        .and(&mask)
        .map_collect(|&c, &m| if m != 0.0 { 0.0 } else { c });
    let start = log_linear_fill(&gapped, &mask);
    let (refined, rep) = physics_fill(&gapped, &mask, &start, &PhysicsOptions::default()).unwrap();
    assert!(rep.r_near_gap.is_finite() && (0.0..=1.0).contains(&rep.weight));
    assert!((-1.0..=1.0).contains(&rep.agreement), "{rep:?}");
    let one_run = PhysicsOptions {
        runs: 1,
        ..PhysicsOptions::default()
    };
    assert!(physics_fill(&gapped, &mask, &start, &one_run).is_err());
    for ((r, g), &m) in refined.iter().zip(gapped.iter()).zip(mask.iter()) {
        if m == 0.0 {
            assert_eq!(r, g);
        } else {
            assert!(r.is_finite() && *r >= 0.0);
        }
    }
    assert!(physics_fill(
        &gapped,
        &mask,
        &start.slice_move(ndarray::s![.., .., 0..4]).into_dyn(),
        &PhysicsOptions::default()
    )
    .is_err());
}

#[test]
fn shipped_filler_loads_and_two_d_falls_back_with_a_note() {
    let dev = Device::cpu();
    let f3 = Filler::new(FillMethod::Model, None, 3, &dev).unwrap();
    assert!(f3.gap_model().is_some() && f3.note().is_none());
    let f2 = Filler::new(FillMethod::Model, None, 2, &dev).unwrap();
    assert!(f2.gap_model().is_none() && f2.note().is_some());
    let err = Filler::new(
        "linear".parse().unwrap(),
        Some(std::path::Path::new("x.safetensors")),
        3,
        &dev,
    );
    assert!(err.is_err());
}

#[test]
fn cli_inpaint_writes_a_phase_ready_file() {
    let exe = env!("CARGO_BIN_EXE_bragg");
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_string_lossy().to_string();
    let run = |args: &[&str]| {
        let o = std::process::Command::new(exe)
            .args(args)
            .env("BRAGG_DEVICE", "cpu")
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let (ok, err) = run(&[
        "simulate",
        "--dim",
        "3",
        "--size",
        "32",
        "--count",
        "1",
        "--gap",
        "line:4",
        "--seed",
        "3",
        "--out",
        &p("s.npz"),
    ]);
    assert!(ok, "{err}");
    for method in ["model", "log-biharmonic"] {
        let (ok, err) = run(&[
            "inpaint",
            "--input",
            &p("s.npz"),
            "--out",
            &p("f.npz"),
            "--method",
            method,
        ]);
        assert!(ok, "{method}: {err}");
        let mut z = bragg::data::npy::NpzFile::open(std::path::Path::new(&p("f.npz"))).unwrap();
        assert!(z.has("intensity") && z.has("gap") && !z.has("mask"));
        let gap = z.read("gap").unwrap().to_f32().unwrap();
        assert!(gap.iter().any(|&g| g != 0.0));
    }
    // A file holding one volume without a batch axis (as measured data usually is) is read as
    // one volume, and the output keeps its layout.
    {
        let path = std::path::Path::new(&p("s.npz")).to_path_buf();
        let mut z = bragg::data::npy::NpzFile::open(&path).unwrap();
        let i = z.read("intensity").unwrap().to_f32().unwrap();
        let m = z.read("mask").unwrap().to_f32().unwrap();
        let one = std::path::Path::new(&p("one.npz")).to_path_buf();
        let mut w = bragg::data::npy::NpzWriter::create(&one).unwrap();
        w.add("intensity", &i.index_axis(ndarray::Axis(0), 0).to_owned())
            .unwrap();
        w.add("mask", &m.index_axis(ndarray::Axis(0), 0).to_owned())
            .unwrap();
        w.finish().unwrap();
        let (ok, err) = run(&[
            "inpaint",
            "--input",
            &p("one.npz"),
            "--out",
            &p("f1.npz"),
            "--physics",
            "off",
        ]);
        assert!(ok && err.contains("one 3-D pattern"), "{err}");
        let mut z = bragg::data::npy::NpzFile::open(std::path::Path::new(&p("f1.npz"))).unwrap();
        assert_eq!(
            z.read("intensity").unwrap().to_f32().unwrap().shape(),
            &[32, 32, 32]
        );
        let (ok, err) = run(&[
            "inpaint",
            "--input",
            &p("one.npz"),
            "--out",
            &p("f1.npz"),
            "--batch",
        ]);
        assert!(ok && err.contains("a batch of 32 2-D patterns"), "{err}");
    }
    // `--physics auto` refines plane gaps up to 13 px only.
    let (ok, err) = run(&["inpaint", "--input", &p("s.npz"), "--out", &p("f2.npz")]);
    assert!(ok && err.contains("physics refinement"), "{err}");
    let (ok, err) = run(&[
        "simulate",
        "--dim",
        "3",
        "--size",
        "64",
        "--count",
        "1",
        "--gap",
        "line:16",
        "--seed",
        "4",
        "--out",
        &p("w.npz"),
    ]);
    assert!(ok, "{err}");
    let (ok, err) = run(&["inpaint", "--input", &p("w.npz"), "--out", &p("f3.npz")]);
    assert!(ok && !err.contains("physics refinement"), "{err}");
    // The filled file phases with every voxel as data, and `--mask-key none` is accepted.
    for extra in [&[][..], &["--mask-key", "none"][..]] {
        let (input, out) = (p("f.npz"), p("r.npz"));
        let mut args = vec![
            "phase",
            "--input",
            &input,
            "--algorithm",
            "ER**10",
            "--runs",
            "1",
            "--out",
            &out,
        ];
        args.extend_from_slice(extra);
        let (ok, err) = run(&args);
        assert!(ok, "{err}");
    }
    // A model file with a classical method is a clear error.
    let (ok, err) = run(&[
        "inpaint",
        "--input",
        &p("s.npz"),
        "--out",
        &p("g.npz"),
        "--method",
        "nope",
    ]);
    assert!(!ok && err.contains("unknown method"), "{err}");
}

/// A bright peak at the centre of a 16^3 array, gap = planes 6..10 along axis 0.
fn peak_and_gap(centre: [f64; 3]) -> (ArrayD<f32>, ArrayD<f32>) {
    let peak = ArrayD::from_shape_fn(IxDyn(&[16, 16, 16]), |i| {
        let r2: f64 = (0..3).map(|a| (i[a] as f64 - centre[a]).powi(2)).sum();
        (1e6 * (-r2 / 6.0).exp() + 1.0) as f32
    });
    let mask = ArrayD::from_shape_fn(IxDyn(&[16, 16, 16]), |i| f32::from((6..10).contains(&i[0])));
    (peak, mask)
}

#[test]
fn physics_blend_trusts_agreeing_runs_and_keeps_the_start_where_they_disagree() {
    let (truth, mask) = peak_and_gap([8.0, 8.0, 8.0]);
    let measured =
        ndarray::Zip::from(&truth)
            .and(&mask)
            .map_collect(|&t, &m| if m != 0.0 { 0.0 } else { t });
    let start =
        ndarray::Zip::from(&truth)
            .and(&mask)
            .map_collect(|&t, &m| if m != 0.0 { 0.3 * t } else { t });
    // Two runs that predict the same gap: trusted where the signal is strong.
    let (out, agreement, weight) =
        blend_two_runs(&measured, &mask, &start, &truth, &truth).unwrap();
    assert!(agreement > 0.999 && weight == 1.0, "{agreement} {weight}");
    let centre = IxDyn(&[8, 8, 8]);
    assert!(
        (out[&centre] / truth[&centre] - 1.0).abs() < 1e-3,
        "{}",
        out[&centre]
    );
    for ((o, m), i) in out.iter().zip(mask.iter()).zip(measured.iter()) {
        if *m == 0.0 {
            assert_eq!(o, i, "a measured voxel changed");
        }
    }
    // A weak gap voxel keeps the start fill.
    let weak = IxDyn(&[7, 0, 0]);
    assert!((out[&weak] / start[&weak] - 1.0).abs() < 1e-3);
    // Two runs that disagree (peaks in different places): the start fill is kept.
    let (other, _) = peak_and_gap([8.0, 3.0, 12.0]);
    let (out, agreement, weight) =
        blend_two_runs(&measured, &mask, &start, &truth, &other).unwrap();
    assert!(agreement < 0.75 && weight == 0.0, "{agreement} {weight}");
    for ((o, s), m) in out.iter().zip(start.iter()).zip(mask.iter()) {
        if *m != 0.0 {
            assert!((o / s - 1.0).abs() < 1e-3, "{o} vs start {s}");
        }
    }
    assert!(blend_two_runs(
        &measured,
        &mask,
        &start,
        &truth,
        &other.slice_move(ndarray::s![0..8, .., ..]).into_dyn()
    )
    .is_err());
}
