//! Complex FFTs on an OpenCL device: mixed-radix Stockham passes (`kernels/fft.cl`, radices 2,
//! 3, 4, 5, 7 and 8) along each axis of a C-ordered array of interleaved `(re, im)` f32.
//!
//! A [`ClFftPlan`] is made once per shape: for each transformed axis it stores the array viewed
//! as `[outer, n, inner]` and the radix list of `n` (greedily 8, then 4, 2, 3, 5, 7). Sizes with
//! a prime factor above 7 are rejected with an error naming the size. Every pass reads one buffer
//! and writes the other, so a transform needs one scratch buffer of the same size; the routing
//! is chosen so that the result always ends in the buffer the caller asked for.
//!
//! Conventions follow [`crate::fft`]: the forward transform is unscaled; the inverse is scaled
//! by 1/N when `scaled` (numpy's `ifftn`), the scale being folded into the last pass.

use super::{i32_len, Arg, ClBuffer, Family, OpenClBackend};
use crate::fft::Direction;
use crate::{Error, Result};

/// The radices `fft_pass_R` exists for, in the order they are tried.
const RADICES: [usize; 6] = [8, 4, 2, 3, 5, 7];

/// Splits `n` into radices of `RADICES` (greedily, largest power-of-two radix first), or
/// `None` when `n` has a prime factor above 7. `n = 1` gives an empty list.
pub fn radices(n: usize) -> Option<Vec<usize>> {
    if n == 0 {
        return None;
    }
    let mut rest = n;
    let mut out = Vec::new();
    for r in RADICES {
        while rest.is_multiple_of(r) {
            out.push(r);
            rest /= r;
        }
    }
    (rest == 1).then_some(out)
}

/// One transformed axis: the array viewed as `[outer, n, inner]` and the radices of `n`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AxisPass {
    outer: usize,
    n: usize,
    inner: usize,
    radices: Vec<usize>,
}

/// A planned N-d complex FFT of one shape on an OpenCL device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClFftPlan {
    shape: Vec<usize>,
    axes: Vec<AxisPass>,
    len: usize,
}

/// Which of the two ping-pong buffers holds a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landing {
    /// The first buffer given.
    First,
    /// The second buffer given.
    Second,
}

impl ClFftPlan {
    /// Plans a transform over every axis of `shape` (C order).
    pub fn new(shape: &[usize]) -> Result<Self> {
        Self::batched(shape, shape.len())
    }

    /// Plans a transform over the last `k` axes of `shape`; the leading axes are a batch of
    /// independent arrays (e.g. `[batch, ny, nx]` with `k = 2`).
    pub fn batched(shape: &[usize], k: usize) -> Result<Self> {
        if k > shape.len() {
            return Err(Error::arg(
                "opencl fft",
                "axes",
                format!("{k} transformed axes for a rank-{} shape", shape.len()),
            ));
        }
        let len: usize = shape.iter().product();
        i32_len(2 * len, "opencl fft")?;
        let mut axes = Vec::new();
        for axis in shape.len() - k..shape.len() {
            let n = shape[axis];
            if n <= 1 {
                continue;
            }
            let radices = radices(n).ok_or_else(|| {
                Error::arg(
                    "opencl fft",
                    "shape",
                    format!(
                        "size {n} (axis {axis} of {shape:?}) has a prime factor above 7; the \
                         OpenCL FFT supports sizes 2^a 3^b 5^c 7^d (the CPU, `--device cpu`, \
                         takes any size)"
                    ),
                )
            })?;
            axes.push(AxisPass {
                outer: shape[..axis].iter().product(),
                n,
                inner: shape[axis + 1..].iter().product(),
                radices,
            });
        }
        Ok(ClFftPlan {
            shape: shape.to_vec(),
            axes,
            len,
        })
    }

    /// The planned shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of complex elements of one array (batch included).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty shape.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of kernel launches (passes) of one transform.
    pub fn passes(&self) -> usize {
        self.axes.iter().map(|a| a.radices.len()).sum()
    }

    /// Product of the transformed sizes (the N of the 1/N scale).
    fn transformed_len(&self) -> usize {
        self.axes.iter().map(|a| a.n).product()
    }

    fn check(&self, b: &ClBuffer, what: &str) -> Result<()> {
        if b.len() != 2 * self.len {
            return Err(Error::shape(
                "opencl fft",
                format!(
                    "{what} holds {} f32, expected {} (2 x {:?})",
                    b.len(),
                    2 * self.len,
                    self.shape
                ),
            ));
        }
        Ok(())
    }

    /// Enqueues every pass, the first reading `src`, alternating between `bufs[first]` and
    /// `bufs[1 - first]` for the writes.
    fn enqueue(
        &self,
        be: &OpenClBackend,
        src: &ClBuffer,
        bufs: [&ClBuffer; 2],
        first: usize,
        direction: Direction,
        scaled: bool,
    ) -> Result<()> {
        let sign = match direction {
            Direction::Forward => -1.0f32,
            Direction::Inverse => 1.0,
        };
        let total = self.passes();
        let last_scale = if scaled && direction == Direction::Inverse {
            1.0 / self.transformed_len().max(1) as f32
        } else {
            1.0
        };
        let mut from = src;
        let mut to = first;
        let mut done = 0usize;
        for a in &self.axes {
            let mut ns = 1usize;
            for &r in &a.radices {
                done += 1;
                let scale = if done == total { last_scale } else { 1.0 };
                let count = a.outer * (a.n / r) * a.inner;
                let name = match r {
                    2 => "fft_pass_2",
                    3 => "fft_pass_3",
                    4 => "fft_pass_4",
                    5 => "fft_pass_5",
                    7 => "fft_pass_7",
                    _ => "fft_pass_8",
                };
                let dst = bufs[to];
                be.launch1(
                    Family::Fft,
                    name,
                    &[
                        Arg::Buf(from),
                        Arg::Buf(dst),
                        Arg::I32(a.n as i32),
                        Arg::I32(a.inner as i32),
                        Arg::I32(ns as i32),
                        Arg::F32(sign),
                        Arg::F32(scale),
                        Arg::I32(i32_len(count, "opencl fft")?),
                    ],
                    count,
                )?;
                ns *= r;
                from = dst;
                to = 1 - to;
            }
        }
        Ok(())
    }

    /// Transforms `src` into `dst` (both `2 * len` f32), using `scratch` as work space. `src` is
    /// left unchanged when it is a third buffer; `src` and `dst` may be the same buffer (in
    /// place; one extra copy when the number of passes is odd). `scratch` must differ from both.
    pub fn execute(
        &self,
        be: &OpenClBackend,
        src: &ClBuffer,
        dst: &ClBuffer,
        scratch: &ClBuffer,
        direction: Direction,
        scaled: bool,
    ) -> Result<()> {
        self.check(src, "source")?;
        self.check(dst, "destination")?;
        self.check(scratch, "scratch")?;
        if scratch.mem() == dst.mem() || scratch.mem() == src.mem() {
            return Err(Error::arg(
                "opencl fft",
                "scratch",
                "must be a buffer distinct from the source and destination",
            ));
        }
        let p = self.passes();
        let n = i32_len(self.len, "opencl fft")?;
        if p == 0 {
            // Every transformed axis has length 1: the transform (and its 1/N) is the identity.
            if src.mem() != dst.mem() {
                copy_complex(be, src, dst, n, self.len)?;
            }
            return Ok(());
        }
        if src.mem() != dst.mem() {
            // Pass p (the last) must write dst: with p odd the first pass writes dst too.
            let first = if p % 2 == 1 { 0 } else { 1 };
            return self.enqueue(be, src, [dst, scratch], first, direction, scaled);
        }
        if p.is_multiple_of(2) {
            // In place, even: data -> scratch -> data ...
            return self.enqueue(be, src, [scratch, dst], 0, direction, scaled);
        }
        // In place, odd: copy to scratch, then scratch -> data -> scratch ... -> data.
        copy_complex(be, src, scratch, n, self.len)?;
        self.enqueue(be, scratch, [dst, scratch], 0, direction, scaled)
    }

    /// Transforms `data` in place with `scratch` as work space.
    pub fn process(
        &self,
        be: &OpenClBackend,
        data: &ClBuffer,
        scratch: &ClBuffer,
        direction: Direction,
        scaled: bool,
    ) -> Result<()> {
        self.execute(be, data, data, scratch, direction, scaled)
    }

    /// Transforms `a` without the final copy of an odd pass count: the passes ping-pong between
    /// `a` and `b` and the returned [`Landing`] says which one holds the result (the other holds
    /// garbage).
    pub fn process_ping_pong(
        &self,
        be: &OpenClBackend,
        a: &ClBuffer,
        b: &ClBuffer,
        direction: Direction,
        scaled: bool,
    ) -> Result<Landing> {
        self.check(a, "first buffer")?;
        self.check(b, "second buffer")?;
        if a.mem() == b.mem() {
            return Err(Error::arg(
                "opencl fft",
                "buffers",
                "the two ping-pong buffers must differ",
            ));
        }
        self.enqueue(be, a, [b, a], 0, direction, scaled)?;
        Ok(if self.passes() % 2 == 1 {
            Landing::Second
        } else {
            Landing::First
        })
    }
}

/// `dst <- src` for `len` complex values.
pub(crate) fn copy_complex(
    be: &OpenClBackend,
    src: &ClBuffer,
    dst: &ClBuffer,
    n: i32,
    len: usize,
) -> Result<()> {
    be.launch1(
        Family::Phasing,
        "copy_complex",
        &[Arg::Buf(src), Arg::Buf(dst), Arg::I32(n)],
        len,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radix_lists() {
        assert_eq!(radices(1), Some(vec![]));
        assert_eq!(radices(12), Some(vec![4, 3]));
        assert_eq!(radices(96), Some(vec![8, 4, 3]));
        assert_eq!(radices(128), Some(vec![8, 8, 2]));
        assert_eq!(radices(49), Some(vec![7, 7]));
        assert_eq!(radices(100), Some(vec![4, 5, 5]));
        assert_eq!(radices(11), None);
        assert_eq!(radices(26), None);
        assert_eq!(radices(0), None);
    }

    #[test]
    fn unsupported_size_names_it() {
        let e = ClFftPlan::new(&[8, 13]).unwrap_err().to_string();
        assert!(e.contains("13") && e.contains("axis 1"), "{e}");
        assert_eq!(ClFftPlan::new(&[4, 1, 6]).unwrap().passes(), 3);
        assert_eq!(ClFftPlan::batched(&[11, 8], 1).unwrap().passes(), 1);
    }
}
