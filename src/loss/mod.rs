//! Losses for gap inpainting, each optionally restricted to a mask (1 = gap): MSE, MAE, SSIM
//! (2-D, 3-D and slice-wise), gradient-difference, and weighted sums of these.
//!
//! Every loss returns a one-element tensor (which stays on the device) and fails with
//! [`Error::NonFinite`], naming the loss, when its value is NaN or infinite (a NaN anywhere in
//! its inputs) and the [`FiniteCheck`] policy asks for the check: by default on the CPU (where
//! it costs nothing) but not on OpenCL, where reading the value back would wait for the device
//! on every call. Check the value where you read it anyway (the trainer does), or
//! [`set_finite_check`]`(FiniteCheck::Always)` / `BRAGG_CHECK_FINITE=1` while debugging.

mod gradient;
mod phase;
mod ssim;

pub use gradient::{gradient_loss, GradientNorm};
pub use phase::{coherent_phase_loss, phase_mse};

use gradient::{gradient_loss_in, pair_mask};
pub use ssim::{slice_ssim_loss, ssim, ssim2d, ssim3d, ssim_slicewise, SsimConfig};

use crate::backend::Storage;
use crate::tensor::Tensor;
use crate::{Error, Result};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};

pub(crate) fn check_pair(
    op: &'static str,
    pred: &Tensor,
    target: &Tensor,
    mask: Option<&Tensor>,
) -> Result<()> {
    if pred.shape() != target.shape() {
        return Err(Error::shape(
            op,
            format!(
                "prediction {:?} and target {:?} differ",
                pred.shape(),
                target.shape()
            ),
        ));
    }
    if pred.numel() == 0 {
        return Err(Error::shape(
            op,
            format!("empty input of shape {:?}", pred.shape()),
        ));
    }
    if let Some(m) = mask {
        if m.shape() != pred.shape() {
            return Err(Error::shape(
                op,
                format!(
                    "mask {:?} does not match the prediction {:?}",
                    m.shape(),
                    pred.shape()
                ),
            ));
        }
    }
    Ok(())
}

/// When the built-in losses check that their value is finite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FiniteCheck {
    /// Every loss reads its value back (a device sync per loss on OpenCL).
    Always,
    /// Only losses on the CPU, where the check is free (the default).
    CpuOnly,
    /// Never: the caller checks the values it reads.
    Never,
}

static FINITE_CHECK: AtomicU8 = AtomicU8::new(u8::MAX);

/// Sets the [`FiniteCheck`] policy of the built-in losses (process-wide).
pub fn set_finite_check(mode: FiniteCheck) {
    FINITE_CHECK.store(mode as u8, Ordering::Relaxed);
}

/// The current [`FiniteCheck`] policy: the last [`set_finite_check`], else `Always` when the
/// environment sets `BRAGG_CHECK_FINITE=1`, else `CpuOnly`.
pub fn finite_check() -> FiniteCheck {
    match FINITE_CHECK.load(Ordering::Relaxed) {
        0 => FiniteCheck::Always,
        1 => FiniteCheck::CpuOnly,
        2 => FiniteCheck::Never,
        _ => {
            let always = std::env::var("BRAGG_CHECK_FINITE").is_ok_and(|v| v == "1");
            let mode = if always {
                FiniteCheck::Always
            } else {
                FiniteCheck::CpuOnly
            };
            set_finite_check(mode);
            mode
        }
    }
}

/// [`ensure_finite`] when the [`FiniteCheck`] policy asks for it, else `loss` unchanged.
pub(crate) fn check_finite_by_policy(op: &'static str, loss: Tensor) -> Result<Tensor> {
    let check = match finite_check() {
        FiniteCheck::Always => true,
        FiniteCheck::CpuOnly => matches!(*loss.storage(), Storage::Cpu(_)),
        FiniteCheck::Never => false,
    };
    if check {
        ensure_finite(op, loss)
    } else {
        Ok(loss)
    }
}

/// Fails with [`Error::NonFinite`] when the one-element `loss` is NaN or infinite (always
/// reads the value: one device sync on OpenCL).
pub fn ensure_finite(op: &'static str, loss: Tensor) -> Result<Tensor> {
    let v = loss.item()?;
    if v.is_finite() {
        Ok(loss)
    } else {
        Err(Error::NonFinite {
            op,
            detail: format!("the loss is {v}: an input holds NaN or infinite values"),
        })
    }
}

/// Mean of `values` over the mask (weights 0/1), or over everything without a mask.
/// An empty mask gives 0.
pub(crate) fn masked_mean(values: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    match mask {
        None => values.mean(),
        Some(m) => {
            let count = m.sum()?.add_scalar(1e-12)?;
            values.mul(m)?.sum()?.div(&count)
        }
    }
}

/// Where a batch sits in a global batch that is split over processes (data-parallel
/// training). The loss of such a part ([`LossSpec::eval_part`]) is its share of the global
/// batch's loss: sums over the part divided by the global batch's normalisers. The shares add
/// up to the global loss, and their gradients to its gradient.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalBatch {
    /// Examples in this part divided by examples in the global batch (weights the plain means,
    /// such as SSIM's).
    pub fraction: f64,
    /// Sums over the global batch of the masks the loss averages over, in the order of
    /// [`LossSpec::mask_counts`].
    pub counts: Vec<f64>,
}

/// How a loss turns sums into means: over the batch at hand, or as its share of a
/// [`GlobalBatch`].
pub(crate) struct Means<'a> {
    global: Option<&'a GlobalBatch>,
    next: std::cell::Cell<usize>,
}

impl<'a> Means<'a> {
    /// Means over the batch at hand.
    pub(crate) fn local() -> Means<'static> {
        Means {
            global: None,
            next: std::cell::Cell::new(0),
        }
    }

    fn of(global: &'a GlobalBatch) -> Means<'a> {
        Means {
            global: Some(global),
            next: std::cell::Cell::new(0),
        }
    }

    /// [`masked_mean`], or this part's share of the global one.
    pub(crate) fn masked(&self, values: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let Some(g) = self.global else {
            return masked_mean(values, mask);
        };
        match mask {
            None => values.mean()?.mul_scalar(g.fraction as f32),
            Some(m) => {
                let i = self.next.get();
                self.next.set(i + 1);
                let count = g.counts.get(i).ok_or_else(|| {
                    Error::arg(
                        "loss",
                        "global batch",
                        format!(
                            "{} mask counts given, the loss averages over more masks",
                            g.counts.len()
                        ),
                    )
                })?;
                values
                    .mul(m)?
                    .sum()?
                    .mul_scalar((1.0 / (count + 1e-12)) as f32)
            }
        }
    }

    /// A mean over the examples of the batch (such as `1 - SSIM`), or this part's share.
    pub(crate) fn share(&self, mean: Tensor) -> Result<Tensor> {
        match self.global {
            None => Ok(mean),
            Some(g) => mean.mul_scalar(g.fraction as f32),
        }
    }
}

fn mask_sum(m: &Tensor) -> Result<f64> {
    Ok(m.to_vec()?.iter().map(|&v| v as f64).sum())
}

/// Mean squared error, restricted to `mask` when given.
pub fn mse(pred: &Tensor, target: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    mse_in(pred, target, mask, &Means::local())
}

fn mse_in(pred: &Tensor, target: &Tensor, mask: Option<&Tensor>, means: &Means) -> Result<Tensor> {
    check_pair("mse", pred, target, mask)?;
    check_finite_by_policy("mse", means.masked(&pred.sub(target)?.square()?, mask)?)
}

/// Mean absolute error, restricted to `mask` when given.
pub fn mae(pred: &Tensor, target: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    mae_in(pred, target, mask, &Means::local())
}

fn mae_in(pred: &Tensor, target: &Tensor, mask: Option<&Tensor>, means: &Means) -> Result<Tensor> {
    check_pair("mae", pred, target, mask)?;
    check_finite_by_policy("mae", means.masked(&pred.sub(target)?.abs()?, mask)?)
}

/// `mask * pred + (1 - mask) * target`: the prediction inside the gap, the truth outside.
pub fn composite(pred: &Tensor, target: &Tensor, mask: &Tensor) -> Result<Tensor> {
    target.add(&pred.sub(target)?.mul(mask)?)
}

/// One term of a [`LossSpec`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LossTerm {
    /// Mean squared error in the gap.
    Mse,
    /// Mean absolute error in the gap.
    Mae,
    /// `1 - SSIM` of the composite (prediction in the gap) against the truth; 2-D SSIM for
    /// images, 3-D SSIM for volumes.
    Ssim,
    /// Sum over depth slices of `1 - 2-D SSIM` on the composite (the 3-D patch model's term).
    SliceSsim,
    /// L2 gradient-difference loss in the gap.
    Grad,
    /// L1 gradient-difference loss in the gap.
    GradL1,
}

impl LossTerm {
    fn name(self) -> &'static str {
        match self {
            LossTerm::Mse => "mse",
            LossTerm::Mae => "mae",
            LossTerm::Ssim => "ssim",
            LossTerm::SliceSsim => "slice-ssim",
            LossTerm::Grad => "grad",
            LossTerm::GradL1 => "grad-l1",
        }
    }

    /// Evaluates this term.
    pub fn eval(
        self,
        pred: &Tensor,
        target: &Tensor,
        mask: Option<&Tensor>,
        cfg: &SsimConfig,
    ) -> Result<Tensor> {
        self.eval_in(pred, target, mask, cfg, &Means::local())
    }

    fn eval_in(
        self,
        pred: &Tensor,
        target: &Tensor,
        mask: Option<&Tensor>,
        cfg: &SsimConfig,
        means: &Means,
    ) -> Result<Tensor> {
        let comp = |p: &Tensor| match mask {
            Some(m) => composite(p, target, m),
            None => Ok(p.clone()),
        };
        match self {
            LossTerm::Mse => mse_in(pred, target, mask, means),
            LossTerm::Mae => mae_in(pred, target, mask, means),
            LossTerm::Ssim => {
                check_pair("ssim", pred, target, mask)?;
                means.share(ssim(&comp(pred)?, target, cfg)?.neg()?.add_scalar(1.0)?)
            }
            LossTerm::SliceSsim => {
                check_pair("slice-ssim", pred, target, mask)?;
                means.share(slice_ssim_loss(&comp(pred)?, target, cfg)?)
            }
            LossTerm::Grad => gradient_loss_in(pred, target, mask, GradientNorm::L2, means),
            LossTerm::GradL1 => gradient_loss_in(pred, target, mask, GradientNorm::L1, means),
        }
    }

    /// Sums of the masks this term averages over (none for the SSIM terms or without a mask).
    fn mask_counts(self, mask: Option<&Tensor>, out: &mut Vec<f64>) -> Result<()> {
        let Some(m) = mask else {
            return Ok(());
        };
        match self {
            LossTerm::Mse | LossTerm::Mae => out.push(mask_sum(m)?),
            LossTerm::Grad | LossTerm::GradL1 => {
                for axis in 2..m.rank() {
                    if m.shape()[axis] >= 2 {
                        out.push(mask_sum(&pair_mask(m, axis)?)?);
                    }
                }
            }
            LossTerm::Ssim | LossTerm::SliceSsim => {}
        }
        Ok(())
    }
}

/// A weighted sum of loss terms, written like `mse+ssim+grad` or `1.0*mse+0.5*ssim`.
#[derive(Debug, Clone, PartialEq)]
pub struct LossSpec {
    /// (weight, term) pairs.
    pub terms: Vec<(f32, LossTerm)>,
    /// SSIM settings shared by the SSIM terms.
    pub ssim: SsimConfig,
}

impl LossSpec {
    /// Evaluates the weighted sum.
    pub fn eval(&self, pred: &Tensor, target: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        self.eval_in(pred, target, mask, &Means::local())
    }

    /// The share of this part of a [`GlobalBatch`] in the global batch's loss: summed over
    /// the parts, these give [`LossSpec::eval`] of the global batch (and their gradients its
    /// gradient). `global.counts` are the sums over the ranks of [`LossSpec::mask_counts`].
    pub fn eval_part(
        &self,
        pred: &Tensor,
        target: &Tensor,
        mask: Option<&Tensor>,
        global: &GlobalBatch,
    ) -> Result<Tensor> {
        let means = Means::of(global);
        let loss = self.eval_in(pred, target, mask, &means)?;
        if means.next.get() != global.counts.len() {
            return Err(Error::arg(
                "loss",
                "global batch",
                format!(
                    "{} mask counts given, the loss `{self}` averages over {}",
                    global.counts.len(),
                    means.next.get()
                ),
            ));
        }
        Ok(loss)
    }

    /// The sums of the masks that the terms average over, in order: one for each MSE or MAE
    /// term, one per spatial axis of length >= 2 for each gradient term (pairs of neighbours
    /// with a voxel in the gap), none for SSIM terms or without a mask.
    pub fn mask_counts(&self, mask: Option<&Tensor>) -> Result<Vec<f64>> {
        let mut out = vec![];
        for &(_, term) in &self.terms {
            term.mask_counts(mask, &mut out)?;
        }
        Ok(out)
    }

    fn eval_in(
        &self,
        pred: &Tensor,
        target: &Tensor,
        mask: Option<&Tensor>,
        means: &Means,
    ) -> Result<Tensor> {
        let mut total: Option<Tensor> = None;
        for &(w, term) in &self.terms {
            let v = term
                .eval_in(pred, target, mask, &self.ssim, means)?
                .mul_scalar(w)?;
            total = Some(match total {
                None => v,
                Some(t) => t.add(&v)?,
            });
        }
        total.ok_or_else(|| Error::arg("loss", "terms", "the loss has no term"))
    }
}

impl FromStr for LossSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let mut terms = Vec::new();
        for part in s.split('+').map(str::trim) {
            let (w, name) = match part.split_once('*') {
                Some((w, n)) => (
                    w.trim().parse::<f32>().map_err(|_| {
                        Error::arg("loss", "spec", format!("bad weight `{w}` in `{s}`"))
                    })?,
                    n.trim(),
                ),
                None => (1.0, part),
            };
            let term = match name {
                "mse" => LossTerm::Mse,
                "mae" => LossTerm::Mae,
                "ssim" => LossTerm::Ssim,
                "slice-ssim" => LossTerm::SliceSsim,
                "grad" => LossTerm::Grad,
                "grad-l1" => LossTerm::GradL1,
                other => {
                    return Err(Error::arg(
                        "loss",
                        "spec",
                        format!("unknown term `{other}` in `{s}` (known: mse, mae, ssim, slice-ssim, grad, grad-l1)"),
                    ))
                }
            };
            terms.push((w, term));
        }
        Ok(LossSpec {
            terms,
            ssim: SsimConfig::default(),
        })
    }
}

impl fmt::Display for LossSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .terms
            .iter()
            .map(|(w, t)| {
                if *w == 1.0 {
                    t.name().to_string()
                } else {
                    format!("{w}*{}", t.name())
                }
            })
            .collect();
        write!(f, "{}", parts.join("+"))
    }
}
