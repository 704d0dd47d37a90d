//! Losses of the reciprocal-space phasing network (BRIEF section 6).
//!
//! The phase of a diffracted wave is defined only up to the symmetries of the phase problem: a
//! global offset (the object times `exp(i c)` has the same intensity) and the twin (the object
//! `conj(rho(-r))` has the conjugate wave, phase `-phi`). [`coherent_phase_loss`] is invariant to
//! both, so a network is never punished for picking the other member of a class of equally
//! valid answers; [`phase_mse`] is the plain loss it is compared with.

use super::{check_finite_by_policy, check_pair};
use crate::{Error, Result, Tensor};

/// Added under square roots so their gradient stays finite at zero.
const EPS: f32 = 1e-8;

fn check_phase_args(
    op: &'static str,
    pred: &Tensor,
    target: &Tensor,
    weight: &Tensor,
) -> Result<()> {
    check_pair(op, pred, target, None)?;
    let s = pred.shape();
    if s.len() < 3 || s[1] != 2 {
        return Err(Error::shape(
            op,
            format!("prediction {s:?} must be [N, 2, ...] (cos, sin components)"),
        ));
    }
    let mut ws = s.to_vec();
    ws[1] = 1;
    if weight.shape() != ws.as_slice() {
        return Err(Error::shape(
            op,
            format!("weight {:?} must be {ws:?}", weight.shape()),
        ));
    }
    Ok(())
}

/// Splits `[N, 2, ...]` into its two channels.
fn components(t: &Tensor) -> Result<(Tensor, Tensor)> {
    Ok((t.narrow(1, 0, 1)?, t.narrow(1, 1, 1)?))
}

/// `1 - |sum_v w_v exp(i (phi_pred_v - phi_true_v))| / sum_v w_v` per pattern, minimised over
/// the prediction and its twin (`phi_pred -> -phi_pred`), averaged over the batch.
///
/// `pred` is `[N, 2, ...]`: an unnormalised direction `(c, s)` per voxel, `phi_pred =
/// atan2(s, c)`; `target` is `[N, 2, ...]` holding `(cos phi_true, sin phi_true)`; `weight` is
/// `[N, 1, ...]`, non-negative (e.g. the scaled log intensity, so that the strong voxels, where
/// the phase matters, count most). The magnitude of a sum of unit phasors is unchanged by a
/// constant phase offset, so the loss is invariant to the global phase: this is the weighted
/// coherent average `1 - |<exp(i (dphi - <dphi>))>_w|`. 0 for a perfect prediction (up to offset
/// and twin), about 1 for unrelated phases.
pub fn coherent_phase_loss(pred: &Tensor, target: &Tensor, weight: &Tensor) -> Result<Tensor> {
    const OP: &str = "coherent_phase_loss";
    check_phase_args(OP, pred, target, weight)?;
    let (p0, p1) = components(pred)?;
    let norm = p0.square()?.add(&p1.square()?)?.add_scalar(EPS)?.sqrt()?;
    let (u0, u1) = (p0.div(&norm)?, p1.div(&norm)?);
    let (c, s) = components(target)?;
    let axes: Vec<usize> = (1..pred.rank()).collect();
    let wsum = |t: &Tensor| t.mul(weight)?.sum_axes(&axes, false);
    let total = weight.sum_axes(&axes, false)?.add_scalar(EPS)?;
    let (u0c, u1s, u1c, u0s) = (u0.mul(&c)?, u1.mul(&s)?, u1.mul(&c)?, u0.mul(&s)?);
    // exp(i phi_p) * exp(-i phi_t) and, for the twin, exp(-i phi_p) * exp(-i phi_t).
    let direct = (wsum(&u0c.add(&u1s)?)?, wsum(&u1c.sub(&u0s)?)?);
    let twin = (wsum(&u0c.sub(&u1s)?)?, wsum(&u1c.add(&u0s)?)?);
    let coherence = |(re, im): (Tensor, Tensor)| -> Result<Tensor> {
        re.square()?
            .add(&im.square()?)?
            .add_scalar(EPS)?
            .sqrt()?
            .div(&total)
    };
    let best = coherence(direct)?.maximum(&coherence(twin)?)?;
    check_finite_by_policy(OP, best.neg()?.add_scalar(1.0)?.mean()?)
}

/// Plain weighted mean squared error of the phase angle, `sum w (phi_pred - phi_true)^2 /
/// sum w`, with `phi_pred = atan2(s, c)` and `phi_true = atan2(sin, cos)` both in `(-pi, pi]`:
/// no offset or twin invariance, and a jump of `2 pi` where either phase wraps. Kept to show why
/// [`coherent_phase_loss`] is needed; same argument layout.
pub fn phase_mse(pred: &Tensor, target: &Tensor, weight: &Tensor) -> Result<Tensor> {
    const OP: &str = "phase_mse";
    check_phase_args(OP, pred, target, weight)?;
    let (p0, p1) = components(pred)?;
    let (c, s) = components(target)?;
    let diff = p1.atan2(&p0)?.sub(&s.atan2(&c)?.detach())?;
    let num = diff.square()?.mul(weight)?.sum()?;
    check_finite_by_policy(OP, num.div(&weight.sum()?.add_scalar(EPS)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autograd::gradcheck::check_gradients;
    use crate::Device;
    use rand::{Rng, SeedableRng};

    fn phasors(phi: &[f32], shape: &[usize]) -> Tensor {
        let mut v: Vec<f32> = phi.iter().map(|p| p.cos()).collect();
        v.extend(phi.iter().map(|p| p.sin()));
        Tensor::from_vec(v, shape, &Device::cpu()).unwrap()
    }

    #[test]
    fn coherent_loss_ignores_offset_and_twin_but_not_noise() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let n = 64;
        let phi: Vec<f32> = (0..n).map(|_| rng.random_range(-3.1..3.1)).collect();
        let w = Tensor::from_vec(
            (0..n).map(|_| rng.random_range(0.1..1.0)).collect(),
            &[1, 1, 8, 8],
            &Device::cpu(),
        )
        .unwrap();
        let target = phasors(&phi, &[1, 2, 8, 8]);
        let loss = |p: &[f32], scale: f32| {
            let pred = phasors(p, &[1, 2, 8, 8]).mul_scalar(scale).unwrap();
            coherent_phase_loss(&pred, &target, &w)
                .unwrap()
                .item()
                .unwrap()
        };
        assert!(loss(&phi, 3.0) < 1e-5);
        let shifted: Vec<f32> = phi.iter().map(|p| p + 1.3).collect();
        assert!(loss(&shifted, 0.5) < 1e-5);
        let twin: Vec<f32> = phi.iter().map(|p| 0.7 - p).collect();
        assert!(loss(&twin, 1.0) < 1e-5);
        let noisy: Vec<f32> = phi
            .iter()
            .map(|p| p + rng.random_range(-1.5f32..1.5))
            .collect();
        let l = loss(&noisy, 1.0);
        assert!(l > 0.05 && l < 0.6, "{l}");
        let random: Vec<f32> = (0..n).map(|_| rng.random_range(-3.1..3.1)).collect();
        assert!(loss(&random, 1.0) > 0.6);
        // The plain MSE punishes the equally valid offset and twin answers.
        let mse = |p: &[f32]| {
            phase_mse(&phasors(p, &[1, 2, 8, 8]), &target, &w)
                .unwrap()
                .item()
                .unwrap()
        };
        assert!(mse(&phi) < 1e-8);
        assert!(mse(&twin) > 1.0 && mse(&shifted) > 0.5);
    }

    #[test]
    fn coherent_loss_gradient_matches_finite_differences() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let dev = Device::cpu();
        let shape = [2, 2, 3, 4];
        let n: usize = shape.iter().product();
        let pred: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let phi: Vec<f32> = (0..n / 2).map(|_| rng.random_range(-3.0..3.0)).collect();
        let mut t = vec![];
        for b in 0..2 {
            let p = &phi[b * 12..(b + 1) * 12];
            t.extend(p.iter().map(|v| v.cos()));
            t.extend(p.iter().map(|v| v.sin()));
        }
        let target = Tensor::from_vec(t, &shape, &dev).unwrap();
        let w = Tensor::from_vec(
            (0..n / 2).map(|_| rng.random_range(0.2..1.0)).collect(),
            &[2, 1, 3, 4],
            &dev,
        )
        .unwrap();
        let x = Tensor::param(&pred, &shape, &dev).unwrap();
        let rep = check_gradients(
            |i| coherent_phase_loss(&i[0], &target, &w),
            &[x],
            1e-3,
            2e-2,
            2e-4,
        )
        .unwrap();
        assert!(rep.worst_ratio <= 1.0, "{rep:?}");
    }

    #[test]
    fn phase_losses_refuse_bad_shapes() {
        let dev = Device::cpu();
        let p = Tensor::zeros(&[1, 2, 4, 4], &dev).unwrap();
        let w = Tensor::ones(&[1, 2, 4, 4], &dev).unwrap();
        assert!(coherent_phase_loss(&p, &p, &w).is_err());
        let p3 = Tensor::zeros(&[1, 3, 4, 4], &dev).unwrap();
        let w1 = Tensor::ones(&[1, 1, 4, 4], &dev).unwrap();
        assert!(phase_mse(&p3, &p3, &w1).is_err());
    }
}
