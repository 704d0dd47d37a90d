//! CPU code of nearest upsampling (rayon over output rows).

use super::UpsampleGeometry;
use rayon::prelude::*;

/// Each input element repeated `factor` times per axis.
pub fn forward(x: &[f32], g: &UpsampleGeometry) -> Vec<f32> {
    let [id, ih, iw] = g.input;
    let [od, oh, ow] = g.output();
    let [fd, fh, fw] = g.factor;
    let mut y = vec![0.0f32; g.output_len()];
    y.par_chunks_mut(ow).enumerate().for_each(|(row, yr)| {
        let r = row % oh;
        let z = (row / oh) % od;
        let p = row / (oh * od);
        let src = ((p * id + z / fd) * ih + r / fh) * iw;
        for (c, v) in yr.iter_mut().enumerate() {
            *v = x[src + c / fw];
        }
    });
    y
}

/// Sum of the output gradients of each block.
pub fn backward(gy: &[f32], g: &UpsampleGeometry) -> Vec<f32> {
    let [id, ih, iw] = g.input;
    let [od, oh, ow] = g.output();
    let [fd, fh, fw] = g.factor;
    let mut gx = vec![0.0f32; g.input_len()];
    gx.par_chunks_mut(iw).enumerate().for_each(|(row, gr)| {
        let r = row % ih;
        let z = (row / ih) % id;
        let p = row / (ih * id);
        for a in 0..fd {
            for b in 0..fh {
                let src = ((p * od + z * fd + a) * oh + r * fh + b) * ow;
                for (c, v) in gr.iter_mut().enumerate() {
                    for e in 0..fw {
                        *v += gy[src + c * fw + e];
                    }
                }
            }
        }
    });
    gx
}
