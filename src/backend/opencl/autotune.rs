//! Per-device autotuning of the implicit-GEMM convolution tiles.
//!
//! The first time a layer shape runs on a device with autotuning on, a few tile shapes around
//! the heuristic one ([`ConvTiles::for_gemm`]) are timed on the real operands by coordinate
//! descent (columns per tile, reduction depth, register block, register prefetch) and the
//! fastest is kept: in memory for the process, and in a small text file
//! (`<cache dir>/conv-tiles-v1.tsv`) keyed by device, driver and kernel source, so later runs
//! skip the timing.
//!
//! Autotuning is on by default for GPUs and accelerators and off for CPU OpenCL devices;
//! `BRAGG_CONV_AUTOTUNE=1` / `0` forces it, and `BRAGG_CACHE_DIR` moves the cache (default
//! `$XDG_CACHE_HOME/bragg`, else `$HOME/.cache/bragg`).

use super::{ConvTiles, Limits};
use crate::ops::conv::ConvGeometry;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

/// Name of the cache file inside the cache directory.
const CACHE_FILE: &str = "conv-tiles-v1.tsv";

/// Whether autotuning is on for a device of OpenCL type `is_gpu`, after `BRAGG_CONV_AUTOTUNE`.
pub(crate) fn enabled_by_default(is_gpu: bool) -> bool {
    match std::env::var("BRAGG_CONV_AUTOTUNE").as_deref() {
        Ok("1") | Ok("on") | Ok("true") => true,
        Ok("0") | Ok("off") | Ok("false") => false,
        _ => is_gpu,
    }
}

/// The directory of bragg's caches, if one can be named.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("BRAGG_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("bragg"));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|h| PathBuf::from(h).join(".cache").join("bragg"))
}

/// Whether `t` can run on a device with `limits`.
pub(crate) fn fits(t: &ConvTiles, limits: &Limits) -> bool {
    t.tm.is_multiple_of(t.rm)
        && t.tn.is_multiple_of(t.rn)
        && t.tn.is_multiple_of(4)
        && t.threads() <= limits.max_work_group
        && t.local_bytes() <= limits.local_mem
}

/// The variations of `t` along one tuning axis (0: columns per tile, 1: reduction depth,
/// 2: register block, 3: register prefetch), `t` itself excluded, those that fit `limits` only.
pub(crate) fn neighbours(t: ConvTiles, axis: usize, limits: &Limits) -> Vec<ConvTiles> {
    let mut out = Vec::new();
    match axis {
        0 => {
            for tn in [32, 64, 128, 256] {
                out.push(ConvTiles { tn, ..t });
            }
        }
        1 => {
            for tk in [8, 16, 32] {
                out.push(ConvTiles { tk, ..t });
            }
        }
        2 => {
            for (rm, rn) in [(1, 2), (2, 4), (2, 8), (4, 4), (4, 8), (8, 4), (8, 8)] {
                if rm <= t.tm {
                    out.push(ConvTiles { rm, rn, ..t });
                }
            }
        }
        _ => out.push(ConvTiles {
            prefetch: !t.prefetch,
            ..t
        }),
    }
    out.retain(|c| *c != t && fits(c, limits));
    out
}

/// Times the tile shapes around `start` with `time` (seconds of one run, `None` when the shape
/// fails to build or launch on this device) by coordinate descent over the tuning axes, and
/// returns the fastest shape with its time. `start` is returned when nothing could be timed.
pub(crate) fn tune(
    start: ConvTiles,
    limits: &Limits,
    mut time: impl FnMut(ConvTiles) -> Option<f64>,
) -> (ConvTiles, Option<f64>) {
    let mut timed: HashMap<ConvTiles, Option<f64>> = HashMap::new();
    let mut measure = |t: ConvTiles| *timed.entry(t).or_insert_with(|| time(t));
    let mut best = start;
    let mut best_time = measure(start);
    for axis in 0..4 {
        for c in neighbours(best, axis, limits) {
            if let Some(s) = measure(c) {
                if best_time.is_none_or(|b| s < b) {
                    best = c;
                    best_time = Some(s);
                }
            }
        }
    }
    (best, best_time)
}

/// The key of one layer shape in the cache: GEMM kind and geometry.
pub(crate) fn geometry_key(kind: u8, g: &ConvGeometry) -> String {
    let v = |a: [usize; 3]| format!("{}x{}x{}", a[0], a[1], a[2]);
    format!(
        "k{kind} n{} c{} o{} i{} k{} d{} s{} p{}",
        g.batch,
        g.in_channels,
        g.out_channels,
        v(g.input),
        v(g.kernel),
        v(g.dilation),
        v(g.stride),
        v(g.pad_before)
    )
}

/// One line of the cache file: device key, geometry key and tile shape, tab-separated.
pub(crate) fn format_entry(device: &str, geometry: &str, t: &ConvTiles) -> String {
    format!(
        "{device}\t{geometry}\t{} {} {} {} {} {}",
        t.tm, t.tn, t.tk, t.rm, t.rn, t.prefetch as u8
    )
}

/// Parses one cache line; `None` for malformed lines (they are skipped).
pub(crate) fn parse_entry(line: &str) -> Option<(String, String, ConvTiles)> {
    let mut parts = line.split('\t');
    let (device, geometry, tiles) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let v: Vec<usize> = tiles
        .split_whitespace()
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [tm, tn, tk, rm, rn, pf] = v[..] else {
        return None;
    };
    if tm == 0 || tn == 0 || tk == 0 || rm == 0 || rn == 0 || pf > 1 {
        return None;
    }
    Some((
        device.to_string(),
        geometry.to_string(),
        ConvTiles {
            tm,
            tn,
            tk,
            rm,
            rn,
            prefetch: pf == 1,
        },
    ))
}

/// The tuned shapes of the cache file for `device` (empty when there is no file).
pub(crate) fn load(device: &str) -> HashMap<String, ConvTiles> {
    let Some(path) = cache_dir().map(|d| d.join(CACHE_FILE)) else {
        return HashMap::new();
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    text.lines()
        .filter_map(parse_entry)
        .filter(|(d, _, _)| d == device)
        .map(|(_, g, t)| (g, t))
        .collect()
}

/// Appends one tuned shape to the cache file. A cache that cannot be written only costs the
/// timing again next time, so failures are reported as a returned message, not an error.
pub(crate) fn store(device: &str, geometry: &str, t: &ConvTiles) -> Option<String> {
    let dir = cache_dir()?;
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(CACHE_FILE))?;
        writeln!(f, "{}", format_entry(device, geometry, t))
    };
    write()
        .err()
        .map(|e| format!("cannot write the conv tile cache in {}: {e}", dir.display()))
}

/// A stable 64-bit FNV-1a hash (the device key must not change between runs, which rules out
/// the std hasher's random keys).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_work_group: 1024,
            local_mem: 48 * 1024,
            compute_units: 16,
            wg1: 256,
            tiles: ConvTiles::square(64),
        }
    }

    #[test]
    fn cache_lines_round_trip_and_reject_garbage() {
        let t = ConvTiles {
            tm: 32,
            tn: 128,
            tk: 8,
            rm: 4,
            rn: 8,
            prefetch: true,
        };
        let line = format_entry("dev 1|drv|abc", "k0 n8 c32", &t);
        let (d, g, back) = parse_entry(&line).unwrap();
        assert_eq!(
            (d.as_str(), g.as_str(), back),
            ("dev 1|drv|abc", "k0 n8 c32", t)
        );
        for bad in [
            "",
            "dev\tgeom",
            "dev\tgeom\t32 128 8 4 8",
            "dev\tgeom\t32 128 8 4 8 2",
            "dev\tgeom\t32 128 0 4 8 1",
            "dev\tgeom\t32 x 8 4 8 1",
            "dev\tgeom\t32 128 8 4 8 1\textra",
        ] {
            assert!(parse_entry(bad).is_none(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn neighbours_differ_along_one_axis_and_fit() {
        let l = limits();
        let t = ConvTiles::for_gemm(32, 1 << 16, &l);
        for axis in 0..4 {
            let ns = neighbours(t, axis, &l);
            assert!(!ns.is_empty(), "axis {axis}");
            for n in ns {
                assert_ne!(n, t);
                assert!(fits(&n, &l), "{n:?}");
                let same = [
                    n.tn == t.tn,
                    n.tk == t.tk,
                    (n.rm, n.rn) == (t.rm, t.rn),
                    n.prefetch == t.prefetch,
                ];
                assert_eq!(same.iter().filter(|s| !**s).count(), 1, "{n:?}");
                assert!(!same[axis], "{n:?} varies another axis than {axis}");
            }
        }
    }

    #[test]
    fn tuning_finds_the_fastest_shape_by_coordinate_descent() {
        let l = limits();
        let start = ConvTiles::for_gemm(32, 1 << 16, &l);
        // A made-up cost with its minimum at tn 128, tk 32, 4x8 blocks, prefetch on; shapes
        // with 8x4 blocks "fail to build".
        let mut calls = 0;
        let (best, time) = tune(start, &l, |t| {
            calls += 1;
            if (t.rm, t.rn) == (8, 4) {
                return None;
            }
            let mut c = 10.0;
            c += (t.tn as f64 / 128.0).log2().abs();
            c += (t.tk as f64 / 32.0).log2().abs();
            c += if (t.rm, t.rn) == (4, 8) { 0.0 } else { 0.5 };
            c += if t.prefetch { 0.0 } else { 0.25 };
            Some(c)
        });
        assert_eq!((best.tn, best.tk, best.rm, best.rn), (128, 32, 4, 8));
        assert!(best.prefetch);
        assert_eq!(time, Some(10.0));
        assert!(calls <= 16, "{calls} shapes timed");
        // Nothing timed: the start shape comes back.
        let (t, s) = tune(start, &l, |_| None);
        assert_eq!((t, s), (start, None));
    }

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
