//! Pooling composed from other ops: average pooling and ceil-mode max-pooling, both with a
//! window equal to the stride. Sizes that the window does not divide are padded at the end
//! (ceil mode): average pooling divides by the number of real elements in each window, and
//! max-pooling pads with `f32::MIN`, which never wins.

use crate::tensor::Tensor;
use crate::{Error, Result};

/// The spatial window per axis of an NCHW / NCDHW tensor (`[w]` for every axis or one each).
fn windows(op: &'static str, x: &Tensor, window: &[usize]) -> Result<Vec<usize>> {
    let sr = x.rank().checked_sub(2).filter(|r| (2..=3).contains(r));
    let Some(sr) = sr else {
        return Err(Error::shape(
            op,
            format!(
                "expected an NCHW (rank 4) or NCDHW (rank 5) tensor, got {:?}",
                x.shape()
            ),
        ));
    };
    let w = match window.len() {
        1 => vec![window[0]; sr],
        n if n == sr => window.to_vec(),
        n => {
            return Err(Error::arg(
                op,
                "window",
                format!("needs 1 or {sr} values, got {n}: {window:?}"),
            ))
        }
    };
    if w.contains(&0) {
        return Err(Error::arg(op, "window", format!("must be >= 1, got {w:?}")));
    }
    Ok(w)
}

/// Block sums of `x` (spatial sizes multiples of `w`): `[N, C, s...] -> [N, C, s/w...]`.
fn block_sums(x: &Tensor, w: &[usize]) -> Result<Tensor> {
    let s = x.shape();
    let mut split = vec![s[0], s[1]];
    let mut axes = Vec::new();
    let mut out = vec![s[0], s[1]];
    for (i, &k) in w.iter().enumerate() {
        split.extend([s[2 + i] / k, k]);
        axes.push(3 + 2 * i);
        out.push(s[2 + i] / k);
    }
    x.reshape(&split)?.sum_axes(&axes, false)?.reshape(&out)
}

/// The end padding that makes every spatial size a multiple of its window.
fn ceil_pads(x: &Tensor, w: &[usize]) -> Vec<(usize, usize)> {
    x.shape()[2..]
        .iter()
        .zip(w)
        .map(|(&n, &k)| (0, n.div_ceil(k) * k - n))
        .collect()
}

impl Tensor {
    /// Average pooling with window = stride (one value or one per spatial axis); sizes the
    /// window does not divide keep their last partial window, averaged over its real elements
    /// (ceil mode).
    pub fn avg_pool(&self, window: &[usize]) -> Result<Tensor> {
        let w = windows("avg_pool", self, window)?;
        let pads = ceil_pads(self, &w);
        if pads.iter().all(|p| p.1 == 0) {
            let k: usize = w.iter().product();
            return block_sums(self, &w)?.mul_scalar(1.0 / k as f32);
        }
        let sums = block_sums(&self.pad(&pads, 0.0)?, &w)?;
        let mut ones_shape = vec![1, 1];
        ones_shape.extend_from_slice(&self.shape()[2..]);
        let ones = Tensor::ones(&ones_shape, self.device())?;
        let counts = block_sums(&ones.pad(&pads, 0.0)?, &w)?;
        sums.div(&counts)
    }

    /// Max-pooling with window = stride in ceil mode: sizes the window does not divide keep
    /// their last partial window.
    pub fn max_pool_ceil(&self, window: &[usize]) -> Result<Tensor> {
        let w = windows("max_pool_ceil", self, window)?;
        let pads = ceil_pads(self, &w);
        if pads.iter().all(|p| p.1 == 0) {
            return self.max_pool(&w);
        }
        self.pad(&pads, f32::MIN)?.max_pool(&w)
    }
}
