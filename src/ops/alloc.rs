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

/// A zero-filled vector of `len` floats: a recycled buffer of that exact size when the pool
/// holds one (zeroed with a memset), else a fresh one.
pub(crate) fn zeroed(len: usize) -> Vec<f32> {
    filled(len, 0.0)
}

/// A vector of `len` floats for a kernel that writes every element before anything reads
/// it: a recycled buffer keeps its old contents (no memset), a fresh one is zero-filled
/// (untouched calloc pages, so no cost either).
pub(crate) fn for_overwrite(len: usize) -> Vec<f32> {
    reuse(len).unwrap_or_else(|| fresh(len, 0.0))
}

/// A vector of `len` copies of `value`, recycled (and filled) when the pool holds one.
pub(crate) fn filled(len: usize, value: f32) -> Vec<f32> {
    match reuse(len) {
        Some(mut v) => {
            v.fill(value);
            v
        }
        None => fresh(len, value),
    }
}

/// A newly allocated vector of `len` copies of `value` (zeros come from calloc, untouched
/// until written), with the huge-page advice for large buffers.
fn fresh(len: usize, value: f32) -> Vec<f32> {
    let mut v = vec![value; len];
    advise_huge(&mut v);
    v
}

/// Smallest buffer (floats) the output pool keeps: 1 MiB.
const RECYCLE_MIN: usize = 1 << 18;

/// Bounds of the default size of the output pool, MiB: an eighth of the physical memory,
/// within these (`BRAGG_CPU_POOL_MB` overrides; 0 turns it off). A training step of the 3-D
/// patch model at batch 8 frees about 2 GiB of activations and gradients per step; with a
/// smaller pool its buffers miss and come back as fresh pages (kernel page clears were ~10%
/// of the step's CPU time at 768 MiB).
const RECYCLE_MIN_MB: usize = 768;
const RECYCLE_MAX_MB: usize = 4096;

/// Physical memory in MiB (Linux `/proc/meminfo`), if known.
fn physical_memory_mb() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

/// Freed CPU tensor buffers by exact length, oldest first, and their total size in floats.
///
/// glibc hands blocks over its mmap threshold back to the kernel on free, so a training step
/// that frees and reallocates its activations paid a page fault and a kernel page clear per
/// 4 KiB every step (about 15-20% of the CPU time of the conv3d and patch-model cases).
/// Buffers of a step have the same sizes every step, so exact-length reuse hits.
static RECYCLED: std::sync::Mutex<(Vec<Vec<f32>>, usize)> = std::sync::Mutex::new((Vec::new(), 0));

fn recycle_limit() -> usize {
    static LIMIT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        let mb = std::env::var("BRAGG_CPU_POOL_MB")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or_else(|| {
                physical_memory_mb()
                    .map_or(RECYCLE_MIN_MB, |m| m / 8)
                    .clamp(RECYCLE_MIN_MB, RECYCLE_MAX_MB)
            });
        mb << 18
    })
}

/// Keeps a freed tensor buffer for reuse by [`zeroed`] (large buffers only, within the bound;
/// the oldest buffers are dropped first).
pub(crate) fn recycle(v: Vec<f32>) {
    let len = v.len();
    let limit = recycle_limit();
    if len < RECYCLE_MIN || len > limit || v.capacity() != len {
        return;
    }
    let mut pool = RECYCLED.lock().unwrap_or_else(|e| e.into_inner());
    pool.1 += len;
    pool.0.push(v);
    while pool.1 > limit {
        let old = pool.0.remove(0);
        pool.1 -= old.len();
    }
}

fn reuse(len: usize) -> Option<Vec<f32>> {
    if len < RECYCLE_MIN {
        return None;
    }
    let mut pool = RECYCLED.lock().unwrap_or_else(|e| e.into_inner());
    let i = pool.0.iter().rposition(|v| v.len() == len)?;
    let v = pool.0.remove(i);
    pool.1 -= v.len();
    Some(v)
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

/// Most buffers the scratch pool keeps.
const POOL_BUFFERS: usize = 64;

static POOL: std::sync::Mutex<Vec<Vec<f32>>> = std::sync::Mutex::new(Vec::new());

/// A reusable temporary buffer of a CPU kernel (padded inputs and the like), returned to a
/// small process-wide pool on drop so that the next call skips the allocation and its page
/// faults. Its contents are unspecified (left over from earlier use): callers write every
/// element they later read.
pub(crate) struct Scratch(Vec<f32>);

impl Scratch {
    /// A buffer of exactly `len` floats.
    pub(crate) fn take(len: usize) -> Scratch {
        let found = {
            let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
            let best = pool
                .iter()
                .enumerate()
                .filter(|(_, v)| v.capacity() >= len)
                .min_by_key(|(_, v)| v.capacity())
                .map(|(i, _)| i);
            best.map(|i| pool.swap_remove(i))
        };
        let mut v = found.unwrap_or_else(|| {
            let mut v = Vec::new();
            v.reserve_exact(len);
            v
        });
        if v.len() >= len {
            v.truncate(len);
        } else {
            v.resize(len, 0.0);
        }
        Scratch(v)
    }
}

impl std::ops::Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        pool.push(v);
        if pool.len() > POOL_BUFFERS {
            // drop the smallest
            if let Some(i) = pool
                .iter()
                .enumerate()
                .min_by_key(|(_, v)| v.capacity())
                .map(|(i, _)| i)
            {
                pool.swap_remove(i);
            }
        }
    }
}
