//! The vectorised CPU max-pool and nearest-upsample kernels against naive per-element loops:
//! odd windows and factors, inputs that the window does not divide, ties and NaNs (which must
//! win the max and keep their first slot). Results must match bit for bit.

use bragg::ops::pool::{cpu as pool_cpu, PoolGeometry};
use bragg::ops::resample::{cpu as up_cpu, UpsampleGeometry};

fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            match s % 23 {
                0 => f32::NAN,
                1 | 2 => 0.5, // ties
                3 => f32::NEG_INFINITY,
                _ => ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5,
            }
        })
        .collect()
}

fn naive_pool(x: &[f32], g: &PoolGeometry) -> (Vec<f32>, Vec<f32>) {
    let [id, ih, iw] = g.input;
    let [od, oh, ow] = g.output;
    let [wd, wh, ww] = g.window;
    let (mut y, mut arg) = (vec![], vec![]);
    for p in 0..g.planes {
        for z in 0..od {
            for r in 0..oh {
                for c in 0..ow {
                    let (mut best, mut slot, mut s) = (f32::NEG_INFINITY, 0usize, 0usize);
                    for a in 0..wd {
                        for b in 0..wh {
                            for e in 0..ww {
                                let v =
                                    x[((p * id + z * wd + a) * ih + r * wh + b) * iw + c * ww + e];
                                if v > best || v.is_nan() && !best.is_nan() {
                                    best = v;
                                    slot = s;
                                }
                                s += 1;
                            }
                        }
                    }
                    y.push(best);
                    arg.push(slot as f32);
                }
            }
        }
    }
    (y, arg)
}

fn naive_pool_backward(gy: &[f32], arg: &[f32], g: &PoolGeometry) -> Vec<f32> {
    let [id, ih, iw] = g.input;
    let [od, oh, ow] = g.output;
    let [_, wh, ww] = g.window;
    let wd = g.window[0];
    let mut gx = vec![0.0f32; g.input_len()];
    let mut o = 0;
    for p in 0..g.planes {
        for z in 0..od {
            for r in 0..oh {
                for c in 0..ow {
                    let s = arg[o] as usize;
                    let (a, b, e) = (s / (wh * ww), (s / ww) % wh, s % ww);
                    gx[((p * id + z * wd + a) * ih + r * wh + b) * iw + c * ww + e] += gy[o];
                    o += 1;
                }
            }
        }
    }
    gx
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn max_pool_matches_naive() {
    for (planes, input, window) in [
        (3, [1, 8, 8], [1, 2, 2]),
        (2, [4, 6, 8], [2, 2, 2]),
        (5, [1, 7, 11], [1, 3, 3]),
        (2, [5, 7, 9], [2, 3, 2]),
        (1, [3, 5, 10], [3, 1, 4]),
        (40, [1, 9, 5], [1, 2, 1]),
    ] {
        let g = PoolGeometry::new(planes, input, window).unwrap();
        let x = data(g.input_len(), planes as u64 + 7);
        let (y, arg) = pool_cpu::forward(&x, &g);
        let (ry, rarg) = naive_pool(&x, &g);
        assert_eq!(bits(&y), bits(&ry), "values {input:?} {window:?}");
        assert_eq!(arg, rarg, "argmax {input:?} {window:?}");
        let gy = data(g.output_len(), 99)
            .into_iter()
            .map(|v| if v.is_nan() { 1.5 } else { v })
            .collect::<Vec<_>>();
        let gx = pool_cpu::backward(&gy, &arg, &g);
        let rgx = naive_pool_backward(&gy, &arg, &g);
        assert_eq!(bits(&gx), bits(&rgx), "backward {input:?} {window:?}");
    }
}

#[test]
fn upsample_matches_naive() {
    for (planes, input, factor) in [
        (3, [1, 4, 5], [1, 2, 2]),
        (2, [3, 4, 5], [2, 2, 2]),
        (2, [2, 3, 4], [1, 3, 1]),
        (4, [2, 3, 3], [2, 1, 3]),
        (1, [1, 1, 1], [1, 1, 1]),
    ] {
        let g = UpsampleGeometry::new(planes, input, factor).unwrap();
        let [id, ih, iw] = input;
        let [fd, fh, fw] = factor;
        let [od, oh, ow] = g.output();
        let x = data(g.input_len(), 3);
        let y = up_cpu::forward(&x, &g);
        let gy: Vec<f32> = data(g.output_len(), 5)
            .into_iter()
            .map(|v| if v.is_finite() { v } else { 0.25 })
            .collect();
        let gx = up_cpu::backward(&gy, &g);
        let mut ry = vec![0.0f32; g.output_len()];
        let mut rgx = vec![0.0f32; g.input_len()];
        for p in 0..planes {
            for z in 0..od {
                for r in 0..oh {
                    for c in 0..ow {
                        let o = ((p * od + z) * oh + r) * ow + c;
                        ry[o] = x[((p * id + z / fd) * ih + r / fh) * iw + c / fw];
                    }
                }
            }
            // Same accumulation order as the kernel: block rows (a, b), then e along W.
            for z in 0..id {
                for r in 0..ih {
                    for c in 0..iw {
                        let i = ((p * id + z) * ih + r) * iw + c;
                        for a in 0..fd {
                            for b in 0..fh {
                                for e in 0..fw {
                                    rgx[i] += gy[((p * od + z * fd + a) * oh + r * fh + b) * ow
                                        + c * fw
                                        + e];
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(bits(&y), bits(&ry), "forward {input:?} {factor:?}");
        assert_eq!(bits(&gx), bits(&rgx), "backward {input:?} {factor:?}");
    }
}
