//! CPU code of the axis range copy.

use super::AxisCopy;
use rayon::prelude::*;

/// Copies the range described by `c` from `src` into `dst`.
pub fn copy_axis(src: &[f32], dst: &mut [f32], c: &AxisCopy) {
    let run = c.count * c.inner;
    let dst_block = c.dst_len * c.inner;
    let src_block = c.src_len * c.inner;
    if dst_block == 0 || run == 0 {
        return;
    }
    dst.par_chunks_mut(dst_block)
        .enumerate()
        .for_each(|(o, d)| {
            let s = &src[o * src_block + c.src_start * c.inner..][..run];
            d[c.dst_start * c.inner..][..run].copy_from_slice(s);
        });
}
