//! Plain nested-loop convolutions: the ground truth the fast code is tested against.

use super::ConvGeometry;

#[inline]
fn source_index(o: usize, k: usize, g: &ConvGeometry, a: usize) -> Option<usize> {
    let pos = (o * g.stride[a] + k * g.dilation[a]) as isize - g.pad_before[a] as isize;
    (pos >= 0 && (pos as usize) < g.input[a]).then_some(pos as usize)
}

/// Forward convolution by direct summation.
pub fn forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &ConvGeometry) -> Vec<f32> {
    let mut y = vec![0.0f64; g.output_len()];
    for_each_tap(g, |xi, wi, yi| y[yi] += (x[xi] * w[wi]) as f64);
    let plane: usize = g.output.iter().product();
    y.iter()
        .enumerate()
        .map(|(i, &v)| {
            (v + bias.map_or(0.0, |b| b[(i / plane.max(1)) % g.out_channels]) as f64) as f32
        })
        .collect()
}

/// Visits every (input index, weight index, output index) triple that the convolution couples.
fn for_each_tap(g: &ConvGeometry, mut f: impl FnMut(usize, usize, usize)) {
    let [id, ih, iw] = g.input;
    let [od, oh, ow] = g.output;
    let [kd, kh, kw] = g.kernel;
    for n in 0..g.batch {
        for o in 0..g.out_channels {
            for z in 0..od {
                for yy in 0..oh {
                    for xx in 0..ow {
                        let yi = (((n * g.out_channels + o) * od + z) * oh + yy) * ow + xx;
                        for c in 0..g.in_channels {
                            for a in 0..kd {
                                let Some(sz) = source_index(z, a, g, 0) else {
                                    continue;
                                };
                                for b in 0..kh {
                                    let Some(sy) = source_index(yy, b, g, 1) else {
                                        continue;
                                    };
                                    for e in 0..kw {
                                        let Some(sx) = source_index(xx, e, g, 2) else {
                                            continue;
                                        };
                                        let xi = (((n * g.in_channels + c) * id + sz) * ih + sy)
                                            * iw
                                            + sx;
                                        let wi =
                                            (((o * g.in_channels + c) * kd + a) * kh + b) * kw + e;
                                        f(xi, wi, yi);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Gradient with respect to the input by direct summation.
pub fn backward_data(gy: &[f32], w: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let mut gx = vec![0.0f64; g.input_len()];
    for_each_tap(g, |xi, wi, yi| gx[xi] += (gy[yi] * w[wi]) as f64);
    gx.into_iter().map(|v| v as f32).collect()
}

/// Gradient with respect to the weights by direct summation.
pub fn backward_weight(x: &[f32], gy: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let mut gw = vec![0.0f64; g.weight_len()];
    for_each_tap(g, |xi, wi, yi| gw[wi] += (gy[yi] * x[xi]) as f64);
    gw.into_iter().map(|v| v as f32).collect()
}
