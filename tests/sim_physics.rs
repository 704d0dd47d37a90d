//! Physics checks of the simulator: scale, Parseval, Friedel symmetry, oversampling, gaps,
//! determinism across thread counts.

use bragg::sim::diffraction::{autocorrelation, diffract, extent_where};
use bragg::sim::gaps::{make_mask, Detector};
use bragg::sim::{simulate_sample, GapSpec, Range, SimConfig};
use ndarray::{ArrayD, Axis, IxDyn};
use num_complex::Complex32;
use rand::SeedableRng;

fn cfg(dim: usize, size: usize, gap: GapSpec) -> SimConfig {
    SimConfig {
        dim,
        size,
        gap,
        seed: 42,
        ..SimConfig::default()
    }
}

#[test]
fn noiseless_is_scaled_fft_of_object_and_phase_is_its_argument() {
    for (dim, n) in [(2, 64), (3, 32)] {
        let s = simulate_sample(&cfg(dim, n, GapSpec::Line(3)), 3).unwrap();
        let f = diffract(&s.object);
        let i = f.mapv(|c| c.norm_sqr());
        let max = i.iter().copied().fold(0.0f32, f32::max);
        // Documented scale: noiseless = |F|^2 * photons / max |F|^2.
        let scale = s.params.photons as f32 / max;
        let nmax = s.noiseless.iter().copied().fold(0.0f32, f32::max);
        assert!((nmax as f64 / s.params.photons - 1.0).abs() < 1e-6);
        for ((a, b), c) in i.iter().zip(s.noiseless.iter()).zip(f.iter()) {
            assert!((a * scale - b).abs() <= 1e-5 * nmax);
            let _ = c;
        }
        // Phase of F where the amplitude is meaningful.
        for (c, p) in f.iter().zip(s.phase.iter()) {
            if c.norm_sqr() > 1e-6 * max {
                let d = (c.arg() - p + std::f32::consts::PI).rem_euclid(2.0 * std::f32::consts::PI)
                    - std::f32::consts::PI;
                assert!(d.abs() < 1e-4);
            }
        }
        // The Bragg peak (zero frequency) is at the array centre.
        let centre = IxDyn(&vec![n / 2; dim]);
        let dc: Complex32 = s.object.iter().sum();
        assert!((f[&centre] - dc).norm() <= 1e-4 * dc.norm());
    }
}

#[test]
fn parseval_holds() {
    let s = simulate_sample(&cfg(3, 32, GapSpec::None), 1).unwrap();
    let f = diffract(&s.object);
    let e_real: f64 = s.object.iter().map(|c| c.norm_sqr() as f64).sum();
    let e_recip: f64 = f.iter().map(|c| c.norm_sqr() as f64).sum();
    let n = s.object.len() as f64;
    assert!(
        (e_recip / (n * e_real) - 1.0).abs() < 1e-5,
        "{e_recip} vs {}",
        n * e_real
    );
}

#[test]
fn real_object_gives_friedel_symmetric_intensity() {
    let s = simulate_sample(&cfg(2, 64, GapSpec::None), 5).unwrap();
    let real = s.object.mapv(|c| Complex32::new(c.norm(), 0.0));
    let i = diffract(&real).mapv(|c| c.norm_sqr());
    let n = 64;
    let max = i.iter().copied().fold(0.0f32, f32::max);
    for r in 1..n {
        for c in 1..n {
            // q <-> -q about the centre n/2: index i <-> n - i.
            assert!((i[[r, c]] - i[[n - r, n - c]]).abs() <= 1e-5 * max);
        }
    }
    // The strained, complex object is not symmetric.
    let ic = diffract(&s.object).mapv(|c| c.norm_sqr());
    let asym: f32 = (1..n)
        .flat_map(|r| (1..n).map(move |c| (r, c)))
        .map(|(r, c)| (ic[[r, c]] - ic[[n - r, n - c]]).abs())
        .sum();
    assert!(asym > 1e-3 * ic.sum());
}

#[test]
fn oversampling_is_recovered_from_the_autocorrelation_support() {
    for (dim, n) in [(2, 128), (3, 32)] {
        let mut c = cfg(dim, n, GapSpec::None);
        c.realism.modulus_noise = Range::new(0.0, 0.0).unwrap();
        for idx in 0..4 {
            let s = simulate_sample(&c, idx).unwrap();
            let a = autocorrelation(&s.noiseless).mapv(f32::abs);
            let max = a.iter().copied().fold(0.0f32, f32::max);
            let ext = extent_where(&a, |&v| v > 2e-6 * max);
            for (d, &e) in ext.iter().enumerate().take(dim) {
                // Autocorrelation extent = 2 e - 1 for an object of extent e.
                let os = n as f32 / ((e + 1) as f32 / 2.0);
                assert!(
                    (os - s.params.oversampling[d]).abs() < 1e-4,
                    "axis {d}: {os} vs {}",
                    s.params.oversampling[d]
                );
                assert!((2.0..=4.0).contains(&os), "{os}");
            }
        }
    }
}

#[test]
fn intensity_equals_truth_outside_the_gap_and_zero_inside() {
    for gap in [
        GapSpec::Line(6),
        GapSpec::Cross(3),
        GapSpec::Maxipix,
        GapSpec::Eiger2,
    ] {
        let s = simulate_sample(&cfg(3, 32, gap), 2).unwrap();
        let mut gaps = 0;
        for ((i, t), m) in s.intensity.iter().zip(&s.truth).zip(&s.mask) {
            if *m == 1 {
                assert_eq!(*i, 0.0);
                gaps += 1;
            } else {
                assert_eq!(i, t);
            }
        }
        assert!(gaps > 0, "{gap}");
        assert!(s.truth.iter().all(|v| *v >= 0.0 && v.fract() == 0.0));
    }
}

/// Columns / rows of a 2D mask that are entirely gap.
fn full_bands(m: &ArrayD<u8>, axis: usize) -> Vec<usize> {
    m.axis_iter(Axis(axis))
        .enumerate()
        .filter(|(_, l)| l.iter().all(|&v| v == 1))
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn gap_layouts_have_the_documented_geometry() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let n = 128;
    for w in [3usize, 6, 9, 12] {
        let g = make_mask(&GapSpec::Line(w), 2, n, &mut rng).unwrap();
        let cols = full_bands(&g.mask, 1);
        assert_eq!(cols.len(), w);
        assert_eq!(cols[0] as i32, g.pos[1]);
        assert_eq!(cols[w - 1] - cols[0], w - 1);
        assert_eq!(g.mask.iter().map(|&v| v as usize).sum::<usize>(), w * n);
        assert!(
            (cols[0] as i64 + w as i64 / 2 - 64).abs() <= 16,
            "near the peak"
        );
        let g = make_mask(&GapSpec::Cross(w), 2, n, &mut rng).unwrap();
        assert_eq!(full_bands(&g.mask, 0).len(), w);
        assert_eq!(full_bands(&g.mask, 1).len(), w);
        assert_eq!(
            g.mask.iter().filter(|&&v| v == 1).count(),
            2 * w * n - w * w
        );
    }
    // Detector frames.
    let mx = Detector::maxipix();
    assert!(mx.is_gap(255, 10) && mx.is_gap(260, 10) && !mx.is_gap(254, 10) && !mx.is_gap(261, 10));
    assert!(mx.is_gap(10, 258) && !mx.is_gap(10, 261));
    let e = Detector::eiger2();
    assert_eq!(e.frame, [2162, 2068]);
    assert_eq!(e.row_gaps, vec![(512, 550), (1062, 1100), (1612, 1650)]);
    assert!(e.is_gap(600, 1028) && e.is_gap(600, 1039) && !e.is_gap(600, 1040));
    for (spec, widths) in [(GapSpec::Maxipix, [6, 6]), (GapSpec::Eiger2, [38, 12])] {
        for _ in 0..10 {
            let g = make_mask(&spec, 2, n, &mut rng).unwrap();
            assert_eq!(g.width, widths);
            let rows = full_bands(&g.mask, 0);
            let cols = full_bands(&g.mask, 1);
            assert_eq!(rows.len(), widths[0] as usize, "{spec}");
            assert_eq!(cols.len(), widths[1] as usize, "{spec}");
            assert_eq!(rows[0] as i32, g.pos[0]);
            assert_eq!(cols[0] as i32, g.pos[1]);
            // The gap crossing lies within size/4 of the peak.
            let rc = g.pos[0] + widths[0] / 2;
            assert!((rc - 64).abs() <= 33, "{rc}");
        }
    }
    // 3D: planes constant along the rocking axis 0.
    for spec in [
        GapSpec::Line(6),
        GapSpec::Cross(6),
        GapSpec::Maxipix,
        GapSpec::Eiger2,
    ] {
        let g = make_mask(&spec, 3, 32, &mut rng).unwrap();
        assert_eq!(g.mask.shape(), &[32, 32, 32]);
        let first = g.mask.index_axis(Axis(0), 0).to_owned();
        for sl in g.mask.axis_iter(Axis(0)) {
            assert_eq!(sl, first);
        }
        assert!(first.iter().any(|&v| v == 1));
    }
}

#[test]
fn same_seed_same_output_whatever_the_thread_count() {
    let c = SimConfig {
        count: 6,
        ..cfg(3, 32, GapSpec::Cross(3))
    };
    let run = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| bragg::sim::simulate_range(&c, 0, c.count, &|| {}).unwrap())
    };
    let a = run(1);
    let b = run(2);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.truth, y.truth);
        assert_eq!(x.object, y.object);
        assert_eq!(x.mask, y.mask);
        assert_eq!(x.params, y.params);
    }
    // Different samples differ, and a different seed changes the output.
    assert_ne!(a[0].truth, a[1].truth);
    let other = simulate_sample(
        &SimConfig {
            seed: 43,
            ..c.clone()
        },
        0,
    )
    .unwrap();
    assert_ne!(other.truth, a[0].truth);
}
