//! Output buffers of the CPU kernels.
//!
//! A fresh large `Vec` is backed by newly mapped pages, and on this kind of (virtualised)
//! machine the 4 KiB page faults of its first touch cost more than the kernel that writes it:
//! a max-pool or upsample pass spent over half its CPU time in the kernel. [`zeroed`] keeps
//! the calloc fast path (pages stay untouched until the parallel kernel writes them) and asks
//! for transparent huge pages on large buffers, cutting the faults 512-fold where THP is in
//! `madvise` (or `always`) mode; elsewhere the advice is a no-op.

/// Buffers from this size (bytes) on get the huge-page advice.
const HUGE_MIN_BYTES: usize = 4 << 20;

/// A zero-filled vector of `len` floats.
pub(crate) fn zeroed(len: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; len];
    advise_huge(&mut v);
    v
}

#[cfg(target_os = "linux")]
fn advise_huge(v: &mut [f32]) {
    let bytes = std::mem::size_of_val(v);
    if bytes < HUGE_MIN_BYTES {
        return;
    }
    const PAGE: usize = 4096;
    let start = v.as_mut_ptr() as usize;
    let (lo, hi) = (start.next_multiple_of(PAGE), (start + bytes) & !(PAGE - 1));
    if hi > lo {
        // SAFETY: the range lies inside `v`'s allocation; MADV_HUGEPAGE only changes how the
        // kernel backs the pages, never their contents. Failure (no THP) is harmless.
        unsafe {
            libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_: &mut [f32]) {}
