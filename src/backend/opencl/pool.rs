//! The device buffer pool: freed buffers are kept by size class and handed out again, so a
//! training loop stops allocating after its first step. Tracks the bytes held by live tensors
//! and their peak.

use crate::{Error, Result};
use opencl3::context::Context;
use opencl3::memory::{Buffer, ClMem, CL_MEM_READ_WRITE};
use opencl3::types::cl_mem;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Size class of a request of `len` f32: powers of two up to 64 Ki elements, then multiples of
/// 16 Ki elements (64 KiB), so similar sizes share buffers without wasting much.
fn class(len: usize) -> usize {
    let len = len.max(1);
    if len <= 1 << 16 {
        len.next_power_of_two().max(64)
    } else {
        len.div_ceil(1 << 14) << 14
    }
}

pub(crate) struct Pool {
    context: Arc<Context>,
    device: String,
    global_mem: usize,
    max_alloc: usize,
    free: Mutex<HashMap<usize, Vec<Buffer<f32>>>>,
    cached: AtomicUsize,
    in_use: AtomicUsize,
    peak: AtomicUsize,
}

impl Pool {
    pub(crate) fn new(
        context: Arc<Context>,
        device: String,
        global_mem: usize,
        max_alloc: usize,
    ) -> Self {
        Pool {
            context,
            device,
            global_mem,
            max_alloc,
            free: Mutex::new(HashMap::new()),
            cached: AtomicUsize::new(0),
            in_use: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    pub(crate) fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Relaxed)
    }

    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    pub(crate) fn reset_peak(&self) {
        self.peak.store(self.in_use(), Ordering::Relaxed);
    }

    pub(crate) fn trim(&self) {
        if let Ok(mut f) = self.free.lock() {
            f.clear();
            self.cached.store(0, Ordering::Relaxed);
        }
    }

    fn oom(&self, bytes: usize, detail: &str) -> Error {
        Error::OpenCl(format!(
            "out of device memory on {}: cannot allocate {:.1} MiB ({detail}); {:.1} MiB held by \
             tensors, device total {:.1} MiB. Use smaller batches or patches.",
            self.device,
            bytes as f64 / 1048576.0,
            self.in_use() as f64 / 1048576.0,
            self.global_mem as f64 / 1048576.0
        ))
    }

    /// A buffer of at least `len` f32 (contents undefined).
    pub(crate) fn alloc(self: &Arc<Self>, len: usize) -> Result<ClBuffer> {
        let cap = class(len);
        let bytes = cap * 4;
        let reused = self
            .free
            .lock()
            .ok()
            .and_then(|mut f| f.get_mut(&cap).and_then(|v| v.pop()));
        let buf = match reused {
            Some(b) => {
                self.cached.fetch_sub(bytes, Ordering::Relaxed);
                b
            }
            None => {
                if bytes > self.max_alloc {
                    return Err(self.oom(
                        bytes,
                        &format!(
                            "larger than the device's largest single allocation of {:.1} MiB",
                            self.max_alloc as f64 / 1048576.0
                        ),
                    ));
                }
                if self.in_use() + bytes > self.global_mem {
                    return Err(self.oom(bytes, "the device memory is exhausted"));
                }
                if self.in_use() + self.cached.load(Ordering::Relaxed) + bytes > self.global_mem {
                    self.trim();
                }
                match self.create(cap) {
                    Ok(b) => b,
                    Err(_) => {
                        // Free the cache and try once more before giving up.
                        self.trim();
                        self.create(cap).map_err(|c| {
                            self.oom(bytes, &format!("clCreateBuffer returned error {c}"))
                        })?
                    }
                }
            }
        };
        let now = self.in_use.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
        Ok(ClBuffer {
            buf: Some(buf),
            len,
            cap,
            pool: self.clone(),
        })
    }

    fn create(&self, cap: usize) -> std::result::Result<Buffer<f32>, i32> {
        unsafe {
            Buffer::<f32>::create(&self.context, CL_MEM_READ_WRITE, cap, std::ptr::null_mut())
        }
        .map_err(|e| e.0)
    }

    fn release(&self, buf: Buffer<f32>, cap: usize) {
        let bytes = cap * 4;
        self.in_use.fetch_sub(bytes, Ordering::Relaxed);
        if let Ok(mut f) = self.free.lock() {
            f.entry(cap).or_default().push(buf);
            self.cached.fetch_add(bytes, Ordering::Relaxed);
        }
    }
}

/// A pooled device buffer of `len` f32; returns to its pool when dropped.
pub struct ClBuffer {
    buf: Option<Buffer<f32>>,
    len: usize,
    cap: usize,
    pool: Arc<Pool>,
}

impl ClBuffer {
    /// Number of f32 elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the buffer holds no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The raw OpenCL memory object.
    pub fn mem(&self) -> cl_mem {
        self.buffer().get()
    }

    pub(crate) fn buffer(&self) -> &Buffer<f32> {
        self.buf.as_ref().expect("ClBuffer used after release")
    }

    pub(crate) fn buffer_mut(&mut self) -> &mut Buffer<f32> {
        self.buf.as_mut().expect("ClBuffer used after release")
    }
}

impl Drop for ClBuffer {
    fn drop(&mut self) {
        if let Some(b) = self.buf.take() {
            self.pool.release(b, self.cap);
        }
    }
}

impl std::fmt::Debug for ClBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClBuffer(len={}, device={})", self.len, self.pool.device)
    }
}
