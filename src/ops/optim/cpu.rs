//! CPU code of the optimiser updates.

use super::{AdamHyper, SgdHyper};
use rayon::prelude::*;

/// Bias-corrected Adam, in place.
pub fn adam_step(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], h: &AdamHyper) {
    let c1 = 1.0 - h.beta1.powi(h.step as i32);
    let c2 = 1.0 - h.beta2.powi(h.step as i32);
    let step = h.lr / c1;
    let c2s = c2.sqrt();
    p.par_iter_mut()
        .zip(g.par_iter())
        .zip(m.par_iter_mut().zip(v.par_iter_mut()))
        .with_min_len(4096)
        .for_each(|((p, &g), (m, v))| {
            let g = g + h.weight_decay * *p;
            *m = h.beta1 * *m + (1.0 - h.beta1) * g;
            *v = h.beta2 * *v + (1.0 - h.beta2) * g * g;
            *p -= step * *m / (v.sqrt() / c2s + h.eps);
        });
}

/// SGD with momentum, in place: `v = momentum*v + g; p -= lr*v`.
pub fn sgd_step(p: &mut [f32], g: &[f32], vel: &mut [f32], h: &SgdHyper) {
    p.par_iter_mut()
        .zip(g.par_iter())
        .zip(vel.par_iter_mut())
        .with_min_len(4096)
        .for_each(|((p, &g), v)| {
            let g = g + h.weight_decay * *p;
            *v = h.momentum * *v + g;
            *p -= h.lr * *v;
        });
}
