//! `bragg demo` (3-D, the default): one simulated crystal with a detector cross gap, filled by
//! the shipped gap network and by every classical fill, then phased four ways (gap-free, gap
//! masked, network-filled, best classical fill) and compared with the true object. Prints and
//! writes the comparison (markdown + JSON), the volumes, and labelled figures.

use super::demo::DemoArgs;
use crate::inpaint::batch::{fill_batch, BatchOptions};
use crate::inpaint::fill::FillMethod;
use crate::inpaint::study::{noise_ceiling, score_gap, GapScores};
use crate::phasing::{self, Chain, Options, Problem, Start};
use crate::sim::{simulate_sample, GapSpec, Range, SimConfig};
use crate::{Device, Error, Result};
use ndarray::{ArrayD, Axis, IxDyn};
use num_complex::Complex32;
use serde::Serialize;
use std::time::Instant;

/// Phasing chain of the demo (the one issue 10 measures with).
pub const DEMO_CHAIN: &str = "RAAR**300,ER**100";

/// Scores of one way of handling the gap.
#[derive(Debug, Clone, Serialize)]
pub struct DemoRow {
    /// What was phased.
    pub data: String,
    /// Gap scores of the fill (none for the gap-free and masked data).
    pub gap: Option<GapScores>,
    /// Complex error of the best run against the true object after registration.
    pub complex_error: f64,
    /// RMS phase error (rad) inside the true support.
    pub phase_rms_error: f64,
    /// Jaccard index of the supports.
    pub support_jaccard: f64,
    /// Seconds spent filling (0 for gap-free / masked).
    pub fill_seconds: f64,
    /// Seconds spent phasing.
    pub phase_seconds: f64,
}

/// A reconstruction kept for the figures.
pub struct Reconstruction {
    /// Label.
    pub label: String,
    /// Object aligned onto the truth.
    pub object: Vec<Complex32>,
}

/// Everything the 3-D demo computed.
pub struct DemoResult {
    /// Shape of the volume.
    pub shape: Vec<usize>,
    /// Noisy intensity without gap.
    pub truth: ArrayD<f32>,
    /// The gap mask (1 = gap).
    pub mask: ArrayD<f32>,
    /// Network fill (with the physics refinement).
    pub network_fill: ArrayD<f32>,
    /// Best classical fill by gap PCC.
    pub classical_fill: ArrayD<f32>,
    /// Name of the best classical fill.
    pub classical_name: String,
    /// Gap scores of every classical fill.
    pub classical_scores: Vec<(String, GapScores)>,
    /// Noise ceiling of the gap PCC.
    pub ceiling: f64,
    /// Rows of the comparison, in order: gap-free, masked, network + physics, network alone,
    /// best classical fill, best classical fill + physics.
    pub rows: Vec<DemoRow>,
    /// True object and the reconstructions (aligned onto it).
    pub true_object: Vec<Complex32>,
    /// Reconstructions in the order of `rows`.
    pub reconstructions: Vec<Reconstruction>,
}

/// The demo's gap: for `line:W` one band, for `cross:W` a row and a column band of the
/// detector plane (constant along the rocking axis 0), each starting `offset` voxels past the
/// Bragg peak (the array centre), i.e. next to the peak as real gaps often fall; other layouts
/// are refused.
pub fn gap_next_to_peak(gap: &GapSpec, size: usize, offset: usize) -> Result<ndarray::ArrayD<u8>> {
    let (w, cross) = match *gap {
        GapSpec::Line(w) => (w, false),
        GapSpec::Cross(w) => (w, true),
        other => {
            return Err(Error::arg(
                "demo",
                "--gap",
                format!("`{other}`: the 3-D demo takes line:W or cross:W"),
            ))
        }
    };
    let start = size / 2 + offset;
    if start + w > size {
        return Err(Error::arg(
            "demo",
            "--gap-offset",
            format!("a {w}-px band {offset} px past the centre leaves a {size}^3 array"),
        ));
    }
    let band = start..start + w;
    Ok(
        ndarray::Array3::from_shape_fn((size, size, size), |(_, r, c)| {
            (band.contains(&c) || (cross && band.contains(&r))) as u8
        })
        .into_dyn(),
    )
}

fn log_step(step: usize, total: usize, msg: &str, t0: &Instant) {
    eprintln!(
        "[{step}/{total}] {msg} ({:.0} s elapsed)",
        t0.elapsed().as_secs_f64()
    );
}

/// Phases `problem` with the demo chain; returns the best run aligned onto `truth` and its
/// metrics.
fn phase_and_compare(
    problem: &Problem,
    truth: &[Complex32],
    shape: &[usize],
    runs: usize,
    seed: u64,
    device: &Device,
) -> Result<(phasing::Aligned, f64)> {
    let t = Instant::now();
    let options = Options {
        chain: Chain::parse(DEMO_CHAIN)?,
        runs,
        keep: 1,
        seed,
        // the short chain and the initial support it was measured with
        autocorrelation_threshold: 0.1,
        ..Options::default()
    };
    let total = options.chain.total_cycles() as u64 * runs as u64;
    let bar = indicatif::ProgressBar::new(total).with_style(
        indicatif::ProgressStyle::with_template("      [{bar:30}] {pos}/{len} cycles eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let per = options.chain.total_cycles() as u64;
    let best = phasing::phase_on(problem, &options, &Start::Random, device, &mut |r, d, _| {
        bar.set_position(r as u64 * per + d as u64)
    })?;
    bar.finish_and_clear();
    let obj: Vec<Complex32> = best[0].object.iter().copied().collect();
    Ok((
        phasing::align(&obj, truth, shape),
        t.elapsed().as_secs_f64(),
    ))
}

/// Runs the 3-D demo computation (no files written).
pub fn compute(args: &DemoArgs, device: &Device) -> Result<DemoResult> {
    let t0 = Instant::now();
    let steps = 4;
    let cfg = SimConfig {
        dim: 3,
        size: args.size,
        count: 1,
        seed: args.seed,
        gap: GapSpec::None,
        photons: Range::new(args.photons, args.photons)?,
        ..SimConfig::default()
    };
    cfg.validate()?;
    args.gap.validate(args.size)?;
    log_step(
        1,
        steps,
        &format!(
            "simulating a {0}^3 crystal ({1:.0e} photons) with a {2} detector gap {3} px past \
             the Bragg peak",
            args.size, args.photons, args.gap, args.gap_offset
        ),
        &t0,
    );
    let mut sample = simulate_sample(&cfg, 0)?;
    let shape = sample.intensity.shape().to_vec();
    sample.mask = gap_next_to_peak(&args.gap, args.size, args.gap_offset)?;
    ndarray::Zip::from(&mut sample.intensity)
        .and(&sample.truth)
        .and(&sample.mask)
        .for_each(|i, &t, &m| *i = if m != 0 { 0.0 } else { t });
    let mask = sample.mask.mapv(f32::from);
    let ceiling = noise_ceiling(&sample.noiseless, &sample.truth, &mask)?;

    log_step(
        2,
        steps,
        "filling the gap: shipped network + physics refinement, and every classical fill",
        &t0,
    );
    let batch = |a: &ArrayD<f32>| a.clone().insert_axis(Axis(0));
    let (ib, mb) = (batch(&sample.intensity), batch(&mask));
    let fill = |method: &str, physics: bool| -> Result<(ArrayD<f32>, f64)> {
        let t = Instant::now();
        let opts = BatchOptions {
            method: method.to_string(),
            physics: if physics { "on" } else { "off" }.into(),
            ..BatchOptions::default()
        };
        let (filled, _) = fill_batch(&ib, &mb, &opts, device, &mut |_, note| {
            if let Some(n) = note {
                eprintln!("      {method}: {n}");
            }
        })?;
        Ok((
            filled.index_axis(Axis(0), 0).to_owned(),
            t.elapsed().as_secs_f64(),
        ))
    };
    let (network_fill, t_net) = fill("model", true)?;
    let net_scores = score_gap(&network_fill, &sample.truth, &mask)?;
    let (network_only, t_net_only) = fill("model", false)?;
    let net_only_scores = score_gap(&network_only, &sample.truth, &mask)?;
    let mut classical = vec![];
    for m in FillMethod::CLASSICAL {
        let name = m.to_string();
        let (f, t) = fill(&name, false)?;
        let s = score_gap(&f, &sample.truth, &mask)?;
        classical.push((name, f, s, t));
    }
    let best = classical
        .iter()
        .enumerate()
        .max_by(|a, b| a.1 .2.pcc_log.total_cmp(&b.1 .2.pcc_log))
        .map(|(i, _)| i)
        .unwrap_or(0);
    let classical_scores: Vec<(String, GapScores)> =
        classical.iter().map(|c| (c.0.clone(), c.2)).collect();
    let (classical_name, classical_fill, classical_gap, t_cls) = classical.swap_remove(best);
    let (classical_physics, t_cls_phys) = fill(&classical_name, true)?;
    let classical_physics_scores = score_gap(&classical_physics, &sample.truth, &mask)?;

    log_step(
        3,
        steps,
        &format!(
            "phasing the gap-free, gap-masked and four filled data sets ({DEMO_CHAIN}, best of \
             {} runs each)",
            args.runs
        ),
        &t0,
    );
    let truth_obj: Vec<Complex32> = sample.object.iter().copied().collect();
    let mask_u8 = sample.mask.clone();
    let problems: Vec<(String, Problem, Option<GapScores>, f64)> = vec![
        (
            "gap-free".into(),
            Problem::from_centred(&sample.truth, None)?,
            None,
            0.0,
        ),
        (
            "gap masked (free)".into(),
            Problem::from_centred(&sample.intensity, Some(&mask_u8))?,
            None,
            0.0,
        ),
        (
            "network + physics (`bragg inpaint` default)".into(),
            Problem::from_centred(&network_fill, None)?,
            Some(net_scores),
            t_net,
        ),
        (
            "network alone".into(),
            Problem::from_centred(&network_only, None)?,
            Some(net_only_scores),
            t_net_only,
        ),
        (
            format!("{classical_name} (best classical fill)"),
            Problem::from_centred(&classical_fill, None)?,
            Some(classical_gap),
            t_cls,
        ),
        (
            format!("{classical_name} + physics"),
            Problem::from_centred(&classical_physics, None)?,
            Some(classical_physics_scores),
            t_cls_phys,
        ),
    ];
    let mut rows = vec![];
    let mut reconstructions = vec![];
    for (label, problem, gap, fill_seconds) in problems {
        eprintln!("      {label}");
        let (al, secs) =
            phase_and_compare(&problem, &truth_obj, &shape, args.runs, args.seed, device)?;
        rows.push(DemoRow {
            data: label.clone(),
            gap,
            complex_error: al.metrics.complex_error,
            phase_rms_error: al.metrics.phase_rms_error,
            support_jaccard: al.metrics.support_jaccard,
            fill_seconds,
            phase_seconds: secs,
        });
        reconstructions.push(Reconstruction {
            label,
            object: al.object,
        });
    }
    log_step(4, steps, "writing the report", &t0);
    Ok(DemoResult {
        shape,
        truth: sample.truth,
        mask,
        network_fill,
        classical_fill,
        classical_name,
        classical_scores,
        ceiling,
        rows,
        true_object: truth_obj,
        reconstructions,
    })
}

/// The comparison as a markdown table.
pub fn markdown(r: &DemoResult) -> String {
    let mut md = String::from(
        "| data phased | gap PCC log(1+I) | gap rel. L2 | complex error | phase RMS (rad) | support Jaccard |\n\
         |---|---|---|---|---|---|\n",
    );
    for row in &r.rows {
        let (p, l) = match &row.gap {
            Some(g) => (format!("{:.4}", g.pcc_log), format!("{:.3}", g.rel_l2)),
            None => ("-".into(), "-".into()),
        };
        md.push_str(&format!(
            "| {} | {p} | {l} | {:.3} | {:.3} | {:.3} |\n",
            row.data, row.complex_error, row.phase_rms_error, row.support_jaccard
        ));
    }
    md.push_str(&format!(
        "\nNoise ceiling of the gap PCC: {:.4}. Classical fills (gap PCC): {}.\n",
        r.ceiling,
        r.classical_scores
            .iter()
            .map(|(n, s)| format!("{n} {:.4}", s.pcc_log))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    md
}

/// Writes the volumes of the demo (`volumes.npz`): intensities, mask, fills, true object and
/// reconstructions.
pub fn write_volumes(path: &std::path::Path, r: &DemoResult) -> Result<()> {
    let shape = IxDyn(&r.shape);
    let complex = |v: &[Complex32]| {
        ArrayD::from_shape_vec(shape.clone(), v.to_vec()).map_err(|e| Error::Msg(e.to_string()))
    };
    let mut objects = vec![("true_object".to_string(), complex(&r.true_object)?)];
    for (i, rec) in r.reconstructions.iter().enumerate() {
        objects.push((format!("reconstruction_{i}"), complex(&rec.object)?));
    }
    super::phase::write_npz_atomic(path, |npz| {
        npz.add("intensity_gap_free", &r.truth)?;
        npz.add("gap", &r.mask)?;
        npz.add("network_fill", &r.network_fill)?;
        npz.add("classical_fill", &r.classical_fill)?;
        for (k, o) in &objects {
            npz.add(k, o)?;
        }
        Ok(())
    })
}

/// Runs `bragg demo --dim 3`: computes, prints and writes `metrics.md`, `metrics.json`,
/// `volumes.npz` and the figures into `args.out`.
pub fn run(args: &DemoArgs, device: &Device) -> Result<()> {
    if args.runs == 0 || args.runs > 64 {
        return Err(Error::arg(
            "demo",
            "--runs",
            format!("{} asked, allowed 1..=64", args.runs),
        ));
    }
    let t0 = Instant::now();
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    let r = compute(args, device)?;
    let total = t0.elapsed().as_secs_f64();
    let mut md = format!(
        "# bragg demo (3-D)\n\nOne simulated {0}^3 crystal at {1:.0e} photons with a {2} detector \
         gap {5} px past the Bragg peak (seed {3}). The gap is filled by the shipped 3-D gap network (with the physics \
         refinement `bragg inpaint` applies by default) and by every classical fill (the best by \
         gap PCC is phased); each data set is phased with `{DEMO_CHAIN}`, best of {4} runs, and \
         compared with the true object after registration (shift, phase ramp and offset, twin).\n\n",
        args.size, args.photons, args.gap, args.seed, args.runs, args.gap_offset
    );
    md.push_str(&markdown(&r));
    md.push_str(&format!(
        "\nTotal time {total:.0} s ({} CPU threads).\n",
        rayon::current_num_threads()
    ));
    crate::nn::io::write_atomic(&args.out.join("metrics.md"), md.as_bytes())?;
    let json = serde_json::json!({
        "size": args.size, "gap": args.gap.to_string(), "photons": args.photons,
        "seed": args.seed, "gap_offset": args.gap_offset, "chain": DEMO_CHAIN, "runs": args.runs,
        "noise_ceiling": r.ceiling,
        "classical": r.classical_scores.iter().map(|(n, s)| (n.clone(), *s)).collect::<std::collections::BTreeMap<_, _>>(),
        "best_classical": r.classical_name,
        "rows": r.rows,
        "seconds": total,
    });
    crate::nn::io::write_atomic(
        &args.out.join("metrics.json"),
        serde_json::to_string_pretty(&json)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    write_volumes(&args.out.join("volumes.npz"), &r)?;
    let figures = write_figures(&args.out.join("figures"), &r)?;
    eprintln!("done in {total:.0} s\n");
    print!("{}", markdown(&r));
    println!(
        "\nmetrics: {}\nvolumes: {}",
        args.out.join("metrics.md").display(),
        args.out.join("volumes.npz").display(),
    );
    for f in figures {
        println!("figure:  {}", f.display());
    }
    Ok(())
}

/// Nominal voxel size (nm) and scattering vector (1/nm, along axis 0: Pt 111, d = 0.2265 nm)
/// the demo's strain figure assumes; the simulated crystal has no physical scale of its own.
const DEMO_VOXEL_NM: f64 = 5.0;
const DEMO_D_SPACING_NM: f64 = 0.2265;

/// The slice of a volume through its centre across axis `axis`.
fn centre_slice(a: &ArrayD<f32>, axis: usize) -> Result<ndarray::Array2<f32>> {
    let n = a.shape()[axis];
    a.index_axis(Axis(axis), n / 2)
        .to_owned()
        .into_dimensionality::<ndarray::Ix2>()
        .map_err(|e| Error::shape("demo", e.to_string()))
}

/// The central half of a square slice (the object fills less than half of the array).
fn central_half(a: ndarray::Array2<f32>) -> ndarray::Array2<f32> {
    let (h, w) = a.dim();
    a.slice(ndarray::s![h / 4..h / 4 + h / 2, w / 4..w / 4 + w / 2])
        .to_owned()
}

/// Writes the demo's three figures into `dir`: `intensity.png` (log intensity of every data
/// set in the detector plane through the peak and across the rocking axis), `objects.png`
/// (modulus and phase of the truth and of every reconstruction) and `strain.png` (strain
/// along q of the truth and the reconstructions, nominal 5-nm voxels). Returns their paths.
pub fn write_figures(dir: &std::path::Path, r: &DemoResult) -> Result<Vec<std::path::PathBuf>> {
    use crate::plot::{Colormap, Figure, Panel};
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let n = r.shape[0] as f64;
    let extent = [-n / 2.0 - 0.5, n / 2.0 - 0.5, -n / 2.0 - 0.5, n / 2.0 - 0.5];
    // 1. Intensities.
    let log = |a: &ArrayD<f32>| a.mapv(|v| (1.0 + v.max(0.0)).log10());
    let gapped = ndarray::Zip::from(&r.truth)
        .and(&r.mask)
        .map_collect(|&v, &m| if m != 0.0 { f32::NAN } else { v });
    let named: Vec<(String, ArrayD<f32>)> = vec![
        ("measured, no gap".into(), log(&r.truth)),
        ("with the gap".into(), log(&gapped)),
        ("network + physics".into(), log(&r.network_fill)),
        (format!("{} fill", r.classical_name), log(&r.classical_fill)),
    ];
    let hi = named[0].1.iter().fold(0.0f32, |m, &v| m.max(v));
    let mut fig = Figure::new(
        "Diffracted intensity log10(1 + I): the detector plane through the Bragg peak (top) and a plane across the rocking axis (bottom)",
        named.len(),
    );
    for (axis, (xl, yl)) in [(0usize, ("x (px)", "y (px)")), (2, ("y (px)", "z (px)"))] {
        for (name, a) in &named {
            fig.push(
                Panel::new(name.clone(), centre_slice(a, axis)?, Colormap::Sequential)
                    .range(0.0, hi)
                    .axes(extent, xl, yl)
                    .bar_label("log10(1 + I)"),
            );
        }
    }
    let p_int = dir.join("intensity.png");
    fig.save(&p_int)?;

    // 2. Objects: truth and reconstructions, modulus and phase of the central plane z = 0.
    let truth = ArrayD::from_shape_vec(IxDyn(&r.shape), r.true_object.clone())
        .map_err(|e| Error::Msg(e.to_string()))?;
    let mut objects = vec![("true object".to_string(), truth)];
    for (rec, row) in r.reconstructions.iter().zip(&r.rows) {
        let o = ArrayD::from_shape_vec(IxDyn(&r.shape), rec.object.clone())
            .map_err(|e| Error::Msg(e.to_string()))?;
        objects.push((format!("{} (error {:.2})", rec.label, row.complex_error), o));
    }
    let mut fig = Figure::new(
        "Reconstructions after registration onto the true object: modulus (top) and phase (bottom) of the central plane z = 0",
        objects.len(),
    );
    let short = |s: &str| s.replace(" (`bragg inpaint` default)", "");
    let q4 = (r.shape[0] / 4) as f64;
    let half_extent = [-q4 - 0.5, q4 - 0.5, -q4 - 0.5, q4 - 0.5];
    for part in 0..2 {
        for (name, o) in &objects {
            let max = o.iter().fold(0.0f32, |m, v| m.max(v.norm())).max(1e-30);
            let a = if part == 0 {
                o.mapv(|v| v.norm() / max)
            } else {
                o.mapv(|v| {
                    if v.norm() > 0.2 * max {
                        v.arg()
                    } else {
                        f32::NAN
                    }
                })
            };
            let (map, lo, hi, bar) = if part == 0 {
                (Colormap::Sequential, 0.0, 1.0, "modulus / max")
            } else {
                (
                    Colormap::Cyclic,
                    -std::f32::consts::PI,
                    std::f32::consts::PI,
                    "phase (rad)",
                )
            };
            let mut p = Panel::new(short(name), central_half(centre_slice(&a, 0)?), map)
                .range(lo, hi)
                .axes(half_extent, "x (voxels)", "y (voxels)")
                .bar_label(bar);
            if part == 1 {
                p = p.bar_ticks(Panel::phase_ticks());
            }
            fig.push(p);
        }
    }
    let p_obj = dir.join("objects.png");
    fig.save(&p_obj)?;

    // 3. Strain along q (axis 0) of the truth and the reconstructions, plane z = 0.
    let q = [2.0 * std::f64::consts::PI / DEMO_D_SPACING_NM, 0.0, 0.0];
    let mut fields = vec![];
    for (name, o) in &objects {
        let max = o.iter().fold(0.0f32, |m, v| m.max(v.norm()));
        let support = o.mapv(|v| u8::from(v.norm() > 0.2 * max));
        match crate::phasing::strain::displacement_and_strain(o, &support, &[DEMO_VOXEL_NM], &q) {
            Ok(f) => fields.push((short(name), f)),
            Err(e) => eprintln!("      strain of {name}: {e}"),
        }
    }
    let lim = fields
        .first()
        .map(|(_, f)| {
            let mut v: Vec<f32> = f
                .strain
                .iter()
                .zip(&f.support)
                .filter(|(_, &s)| s != 0)
                .map(|(e, _)| e.abs())
                .collect();
            v.sort_by(f32::total_cmp);
            v.get(v.len() * 99 / 100).copied().unwrap_or(1e-3)
        })
        .unwrap_or(1e-3)
        .max(1e-5);
    let h = q4 * DEMO_VOXEL_NM;
    let mut fig = Figure::new(
        "Strain along q (axis 0; nominal 5-nm voxels, Pt 111) in the central plane z = 0",
        fields.len().max(1),
    );
    for (name, f) in &fields {
        let e = ndarray::Zip::from(&f.strain)
            .and(&f.support)
            .map_collect(|&v, &s| if s != 0 { v } else { f32::NAN });
        fig.push(
            Panel::new(
                name.clone(),
                central_half(centre_slice(&e, 0)?),
                Colormap::Diverging,
            )
            .range(-lim, lim)
            .axes([-h, h, -h, h], "x (nm)", "y (nm)")
            .bar_label("strain"),
        );
    }
    let p_str = dir.join("strain.png");
    fig.save(&p_str)?;
    Ok(vec![p_int, p_obj, p_str])
}
