//! Finite-difference gradient checks: the test behind every op's backward rule.

use crate::autograd::no_grad;
use crate::tensor::Tensor;
use crate::{Error, Result};

/// The worst disagreement found by [`check_gradients`].
#[derive(Debug, Clone)]
pub struct GradCheckReport {
    /// Largest `|analytic - numeric| / (atol + rtol * max(|analytic|, |numeric|))`; <= 1 passes.
    pub worst_ratio: f64,
    /// Where the worst ratio was found: (input index, element index, analytic, numeric).
    pub worst_at: (usize, usize, f64, f64),
    /// Number of elements checked.
    pub checked: usize,
}

/// Compares the autograd gradients of the scalar `f(inputs)` with central differences.
///
/// `inputs` must be trainable leaves ([`Tensor::param`]). Each element is perturbed by `eps`;
/// a check passes when `|a - n| <= atol + rtol * max(|a|, |n|)` everywhere.
pub fn check_gradients(
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
    inputs: &[Tensor],
    eps: f32,
    rtol: f64,
    atol: f64,
) -> Result<GradCheckReport> {
    let loss = f(inputs)?;
    let grads = loss.backward()?;
    let mut report = GradCheckReport {
        worst_ratio: 0.0,
        worst_at: (0, 0, 0.0, 0.0),
        checked: 0,
    };
    let host: Vec<Vec<f32>> = inputs.iter().map(|t| t.to_vec()).collect::<Result<_>>()?;
    for (i, input) in inputs.iter().enumerate() {
        let analytic = match grads.get(input) {
            Some(g) => g.to_vec()?,
            None => vec![0.0; input.numel()],
        };
        for j in 0..input.numel() {
            let eval = |delta: f32| -> Result<f64> {
                let mut perturbed = host[i].clone();
                perturbed[j] += delta;
                let moved: Vec<Tensor> = inputs
                    .iter()
                    .enumerate()
                    .map(|(k, t)| {
                        if k == i {
                            Tensor::from_slice(&perturbed, t.shape(), t.device())
                        } else {
                            Ok(t.detach())
                        }
                    })
                    .collect::<Result<_>>()?;
                Ok(no_grad(|| f(&moved))?.item()? as f64)
            };
            let numeric = (eval(eps)? - eval(-eps)?) / (2.0 * eps as f64);
            let a = analytic[j] as f64;
            if !numeric.is_finite() || !a.is_finite() {
                return Err(Error::NonFinite {
                    op: "check_gradients",
                    detail: format!("input {i} element {j}: analytic {a}, numeric {numeric}"),
                });
            }
            let ratio = (a - numeric).abs() / (atol + rtol * a.abs().max(numeric.abs()));
            if ratio > report.worst_ratio {
                report.worst_ratio = ratio;
                report.worst_at = (i, j, a, numeric);
            }
            report.checked += 1;
        }
    }
    Ok(report)
}
