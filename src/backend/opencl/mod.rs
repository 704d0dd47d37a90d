//! The OpenCL backend: one context and in-order queue per device, a program cache (each
//! `kernels/*.cl` compiled once per device on first use), a buffer pool that reuses freed device
//! buffers across steps, and peak-memory tracking.
//!
//! The launchers of each op live next to its CPU code in `ops/<op>/opencl.rs`; this module
//! provides what they share: [`ClBuffer`], [`OpenClBackend::launch`] and the device limits.

pub mod autotune;
mod devices;
pub mod fft;
mod pool;

pub(crate) use devices::{enumerate as devices_enumerate, is_gpu as device_is_gpu};
pub use devices::{list_devices, opencl_available, DeviceInfo};
pub use pool::ClBuffer;

use super::{Backend, Storage};
use crate::ops::conv::ConvGeometry;
use crate::ops::copy::AxisCopy;
use crate::ops::elementwise::{BinaryOp, UnaryOp};
use crate::ops::filter::AxisFilter;
use crate::ops::optim::{AdamHyper, SgdHyper};
use crate::ops::pool::PoolGeometry;
use crate::ops::resample::UpsampleGeometry;
use crate::ops::{conv, copy, elementwise, filter, optim, pool as pool_op, reduce, resample};
use crate::{Error, Result};
use opencl3::command_queue::CommandQueue;
use opencl3::context::Context;
use opencl3::device::Device as ClDevice;
use opencl3::kernel::Kernel;
use opencl3::memory::{Buffer, ClMem, CL_MEM_READ_ONLY};
use opencl3::program::Program;
use opencl3::types::{cl_device_id, cl_mem, CL_BLOCKING};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A kernel family: one `kernels/<file>.cl` source, compiled once per device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Unary, unary backward and broadcasting binary ops.
    Elementwise,
    /// Sums over axes and the full parallel sum.
    Reduce,
    /// Tiled implicit-GEMM convolutions.
    Conv,
    /// Max-pooling.
    Pool,
    /// Nearest upsampling.
    Resample,
    /// Axis range copies.
    Copy,
    /// Axis filters.
    Filter,
    /// Adam and SGD updates.
    Optim,
    /// f16 -> f32 conversion.
    Half,
    /// Mixed-radix Stockham FFT passes.
    Fft,
    /// Element-wise pieces of a phase-retrieval cycle.
    Phasing,
}

impl Family {
    /// The kernel file name and its source.
    fn source(self) -> (&'static str, &'static str) {
        match self {
            Family::Elementwise => (
                "kernels/elementwise.cl",
                include_str!("../../../kernels/elementwise.cl"),
            ),
            Family::Reduce => (
                "kernels/reduce.cl",
                include_str!("../../../kernels/reduce.cl"),
            ),
            Family::Conv => ("kernels/conv.cl", include_str!("../../../kernels/conv.cl")),
            Family::Pool => ("kernels/pool.cl", include_str!("../../../kernels/pool.cl")),
            Family::Resample => (
                "kernels/resample.cl",
                include_str!("../../../kernels/resample.cl"),
            ),
            Family::Copy => ("kernels/copy.cl", include_str!("../../../kernels/copy.cl")),
            Family::Filter => (
                "kernels/filter.cl",
                include_str!("../../../kernels/filter.cl"),
            ),
            Family::Optim => (
                "kernels/optim.cl",
                include_str!("../../../kernels/optim.cl"),
            ),
            Family::Half => ("kernels/half.cl", include_str!("../../../kernels/half.cl")),
            Family::Fft => ("kernels/fft.cl", include_str!("../../../kernels/fft.cl")),
            Family::Phasing => (
                "kernels/phasing.cl",
                include_str!("../../../kernels/phasing.cl"),
            ),
        }
    }
}

/// One kernel argument.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    /// A pooled device buffer.
    Buf(&'a ClBuffer),
    /// A raw memory object (tables, temporaries).
    Mem(cl_mem),
    /// An `int`.
    I32(i32),
    /// A `float`.
    F32(f32),
    /// An `int4`.
    Int4([i32; 4]),
    /// An `int8` (shapes and strides up to rank 8).
    Int8([i32; 8]),
    /// `__local` scratch of this many bytes.
    Local(usize),
}

/// Tile sizes of the implicit-GEMM convolution kernels: the device default (`Limits::tiles`)
/// and the per-layer shapes of [`ConvTiles::for_gemm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConvTiles {
    /// Rows (output channels) per work-group tile.
    pub tm: usize,
    /// Columns (voxels) per work-group tile.
    pub tn: usize,
    /// Reduction depth per tile.
    pub tk: usize,
    /// Register block rows per work-item.
    pub rm: usize,
    /// Register block columns per work-item.
    pub rn: usize,
    /// Load the next reduction slice into registers while the current one is multiplied
    /// (register double buffering).
    pub prefetch: bool,
}

impl ConvTiles {
    /// Square `side x side` tiles, TK 16, 4x4 register blocks, no prefetch: the device defaults
    /// (64 where the device holds 256 work-items, else 32).
    pub fn square(side: usize) -> ConvTiles {
        ConvTiles {
            tm: side,
            tn: side,
            tk: 16,
            rm: 4,
            rn: 4,
            prefetch: false,
        }
    }

    /// Work-items per work-group.
    pub fn threads(&self) -> usize {
        (self.tm / self.rm) * (self.tn / self.rn)
    }

    /// Bytes of local memory `conv_gemm` declares with these tiles.
    pub fn local_bytes(&self) -> usize {
        4 * (self.tk * (self.tm + 1) + self.tk * (self.tn + 4) + 4 * self.tn)
    }

    /// The tile shape of `conv_gemm` for an `m x n` output: TM follows M (the smallest of 1, 2,
    /// 4, 8, 16, 32, 48, 64, 96, 128 that holds it) so small-M layers (O = 1..32) don't leave
    /// most rows of a tile idle, and the tile widens along N instead (TN = 256, or 128 from
    /// TM = 96); TN shrinks to 128 / 64 when that pads N by more than ~6%. Register blocks are
    /// 8x8 (float4 reads of B from local memory) from TM = 32 up, 4x8 / 2x8 for TM = 16 / 8 and
    /// 1x2 below. Devices that can't
    /// hold a shape (work-group size, local memory) keep the device default `fallback`.
    pub fn for_gemm(m: usize, n: usize, limits: &Limits) -> ConvTiles {
        let fallback = limits.tiles;
        if limits.max_work_group < 256 || limits.local_mem < 24 * 1024 {
            return fallback;
        }
        let tm = [1, 2, 4, 8, 16, 32, 48, 64, 96, 128]
            .into_iter()
            .find(|&t| t >= m)
            .unwrap_or(128);
        let (rm, rn) = match tm {
            32.. => (8, 8),
            16 => (4, 8),
            8 => (2, 8),
            _ => (1, 2),
        };
        let mut tn = if tm >= 96 { 128 } else { 256 };
        while tn > 64 && n.div_ceil(tn) * tn * 16 > n * 17 {
            tn /= 2;
        }
        let t = ConvTiles {
            tm,
            tn,
            tk: 16,
            rm,
            rn,
            prefetch: false,
        };
        if t.threads() > limits.max_work_group || t.local_bytes() > limits.local_mem {
            fallback
        } else {
            t
        }
    }
}

/// The three GEMMs of a convolution, each with its own tile plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConvPass {
    /// `y = w * x + b`.
    Forward = 0,
    /// The gradient with respect to the input.
    BackwardData = 1,
    /// The gradient with respect to the weights.
    BackwardWeight = 2,
}

/// Limits of the device that launchers size their work-groups with.
#[derive(Debug, Clone)]
pub struct Limits {
    /// CL_DEVICE_MAX_WORK_GROUP_SIZE.
    pub max_work_group: usize,
    /// CL_DEVICE_LOCAL_MEM_SIZE in bytes.
    pub local_mem: usize,
    /// CL_DEVICE_MAX_COMPUTE_UNITS.
    pub compute_units: usize,
    /// Work-group size of the 1-D kernels.
    pub wg1: usize,
    /// Conv tiles.
    pub tiles: ConvTiles,
}

/// Cached conv index tables, by (kind, geometry).
type TableCache = HashMap<(u8, ConvGeometry), Arc<Buffer<i32>>>;

/// An OpenCL device with its context, queue, programs and buffer pool.
pub struct OpenClBackend {
    index: usize,
    device_name: String,
    device_id: cl_device_id,
    context: Arc<Context>,
    queue: CommandQueue,
    limits: Limits,
    programs: Mutex<HashMap<(Family, ConvTiles), Arc<Program>>>,
    kernels: Mutex<HashMap<(Family, ConvTiles, &'static str), Kernel>>,
    tables: Mutex<TableCache>,
    plans: Mutex<HashMap<(u8, ConvGeometry), ConvTiles>>,
    /// Whether conv tiles are timed on this device at first use ([`autotune`]).
    autotune: AtomicBool,
    /// Device, driver and kernel-source key of the tile cache file.
    tune_key: String,
    /// The tile cache file's shapes for this device, read on first use.
    tuned: Mutex<Option<HashMap<String, ConvTiles>>>,
    user: Mutex<UserPrograms>,
    pool: Arc<pool::Pool>,
}

/// Programs built from sources given at run time (custom ops), by hash of source and options;
/// each entry keeps its source and options to rule out hash collisions, and its kernels by name.
type UserPrograms = HashMap<u64, Vec<UserProgram>>;

struct UserProgram {
    source: String,
    options: String,
    program: Program,
    kernels: HashMap<String, Kernel>,
}

// SAFETY: `cl_device_id` is an opaque handle that OpenCL allows using from any thread; every
// other field is Send + Sync (kernels sit behind a mutex).
unsafe impl Send for OpenClBackend {}
unsafe impl Sync for OpenClBackend {}

impl std::fmt::Debug for OpenClBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenClBackend")
            .field("index", &self.index)
            .field("device", &self.device_name)
            .finish()
    }
}

/// Maps an OpenCL error code to a [`Error::OpenCl`] naming the operation and device.
pub(crate) fn cl_error(what: &str, device: &str, code: i32) -> Error {
    let hint = match code {
        -6..=-4 => " (out of device memory or resources)",
        -1001 => " (no OpenCL platform: is an ICD installed?)",
        -2000..=-1999 => " (OpenCL runtime library could not be loaded)",
        -46 => " (invalid kernel name: no __kernel of that name in the program)",
        -51..=-49 => " (invalid kernel argument: check its index, type and size)",
        -52 => " (kernel arguments not all set: compare the argument list with the signature)",
        -54 => " (invalid work-group size: the local size must divide the global size)",
        _ => "",
    };
    Error::OpenCl(format!("{what} on {device}: error {code}{hint}"))
}

impl OpenClBackend {
    /// Opens the OpenCL device number `index` (counting every device of every platform).
    pub fn new(index: usize) -> Result<Self> {
        let all = devices::enumerate()?;
        let Some(&(device_id, _)) = all.get(index) else {
            return Err(Error::Device(format!(
                "opencl:{index} does not exist: {} OpenCL device(s) found (see `bragg devices`)",
                all.len()
            )));
        };
        let _guard = devices::loader_lock();
        let dev = ClDevice::new(device_id);
        let device_name = dev.name().unwrap_or_else(|_| "unknown".into());
        let e = |what: &str, code: i32| cl_error(what, &device_name, code);
        let context = Context::from_device(&dev).map_err(|c| e("creating a context", c.0))?;
        #[allow(deprecated)]
        let queue = unsafe { CommandQueue::create(&context, device_id, 0) }
            .map_err(|c| e("creating a command queue", c.0))?;
        let max_wg = dev.max_work_group_size().unwrap_or(64).max(1);
        let local_mem = dev.local_mem_size().unwrap_or(16 * 1024) as usize;
        let compute_units = dev.max_compute_units().unwrap_or(1).max(1) as usize;
        let global = dev.global_mem_size().unwrap_or(u64::MAX) as usize;
        let max_alloc = dev.max_mem_alloc_size().unwrap_or(u64::MAX) as usize;
        let is_gpu = dev.dev_type().unwrap_or(0) & opencl3::device::CL_DEVICE_TYPE_CPU == 0;
        let tune_key = format!(
            "{}|{}|{:016x}",
            device_name.trim(),
            dev.driver_version().unwrap_or_default().trim(),
            autotune::fnv1a(Family::Conv.source().1.as_bytes())
        );
        // 64x64 tiles need 256 work-items and ~8.5 KiB of local memory; smaller devices get 32x32.
        let tiles = if max_wg >= 256 && local_mem >= 16 * 1024 {
            ConvTiles::square(64)
        } else {
            ConvTiles::square(32)
        };
        let limits = Limits {
            max_work_group: max_wg,
            local_mem,
            compute_units,
            wg1: max_wg.clamp(1, 256),
            tiles,
        };
        let context = Arc::new(context);
        let pool = Arc::new(pool::Pool::new(
            context.clone(),
            device_name.clone(),
            global,
            max_alloc,
        ));
        Ok(OpenClBackend {
            index,
            device_name,
            device_id,
            context,
            queue,
            limits,
            programs: Mutex::new(HashMap::new()),
            kernels: Mutex::new(HashMap::new()),
            tables: Mutex::new(HashMap::new()),
            plans: Mutex::new(HashMap::new()),
            autotune: AtomicBool::new(autotune::enabled_by_default(is_gpu)),
            tune_key,
            tuned: Mutex::new(None),
            user: Mutex::new(HashMap::new()),
            pool,
        })
    }

    /// The device's name as the driver reports it.
    pub fn device_name(&self) -> &str {
        &self.device_name
    }

    /// The limits used to size work-groups.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Bytes currently held by live tensors on this device.
    pub fn memory_in_use(&self) -> usize {
        self.pool.in_use()
    }

    /// Starts a new peak-memory measurement.
    pub fn reset_peak_memory(&self) {
        self.pool.reset_peak();
    }

    /// Frees every cached (unused) buffer of the pool.
    pub fn trim_pool(&self) {
        self.pool.trim();
    }

    fn err(&self, what: &str, code: i32) -> Error {
        cl_error(what, &self.device_name, code)
    }

    /// Whether conv tile shapes are timed on this device at first use (see [`autotune`]).
    pub fn conv_autotune(&self) -> bool {
        self.autotune.load(Ordering::Relaxed)
    }

    /// Turns the timing of conv tile shapes at first use on or off; shapes already chosen for
    /// this process stay as they are.
    pub fn set_conv_autotune(&self, on: bool) {
        self.autotune.store(on, Ordering::Relaxed);
    }

    /// Pins the tile shape of one convolution pass of geometry `g` for this process (instead
    /// of the heuristic or timed one), e.g. to compare shapes by hand. Pinning a shape the
    /// device cannot hold is an error.
    pub fn pin_conv_tiles(&self, pass: ConvPass, g: &ConvGeometry, t: ConvTiles) -> Result<()> {
        if !autotune::fits(&t, &self.limits) {
            return Err(Error::arg(
                "pin_conv_tiles",
                "tiles",
                format!(
                    "{t:?} does not fit {} (work-group <= {}, local memory <= {} bytes, \
                     tm % rm == 0, tn % rn == 0, tn % 4 == 0)",
                    self.device_name, self.limits.max_work_group, self.limits.local_mem
                ),
            ));
        }
        let mut plans = self.plans.lock().map_err(|_| poisoned())?;
        plans.insert((pass as u8, *g), t);
        Ok(())
    }

    /// The tile shape this process uses for one pass of geometry `g`, once the pass has run
    /// (or been pinned); `None` before, and for layers on the small-M kernel.
    pub fn conv_tiles_of(&self, pass: ConvPass, g: &ConvGeometry) -> Option<ConvTiles> {
        let plans = self.plans.lock().ok()?;
        plans.get(&(pass as u8, *g)).copied()
    }

    /// The conv tile shape for a GEMM of kind `kind` (0 forward, 1 backward data, 2 backward
    /// weight) of geometry `g`, chosen once per geometry and cached: `heuristic` when
    /// autotuning is off, else the tile cache file's shape, else the fastest of the shapes
    /// [`autotune::tune`] times with `trial` (one full run of the op with the given tiles).
    pub(crate) fn conv_plan(
        &self,
        kind: u8,
        g: &ConvGeometry,
        heuristic: ConvTiles,
        mut trial: impl FnMut(ConvTiles) -> Result<()>,
    ) -> Result<ConvTiles> {
        if let Some(t) = self.plans.lock().map_err(|_| poisoned())?.get(&(kind, *g)) {
            return Ok(*t);
        }
        let t = if self.conv_autotune() {
            self.tuned_tiles(kind, g, heuristic, &mut trial)?
        } else {
            heuristic
        };
        let mut plans = self.plans.lock().map_err(|_| poisoned())?;
        if plans.len() > 1024 {
            plans.clear();
        }
        plans.insert((kind, *g), t);
        Ok(t)
    }

    /// The tile cache file's shape for (kind, g), or the fastest shape timed now (then
    /// recorded in the file).
    fn tuned_tiles(
        &self,
        kind: u8,
        g: &ConvGeometry,
        heuristic: ConvTiles,
        trial: &mut impl FnMut(ConvTiles) -> Result<()>,
    ) -> Result<ConvTiles> {
        let key = autotune::geometry_key(kind, g);
        {
            let mut tuned = self.tuned.lock().map_err(|_| poisoned())?;
            let known = tuned.get_or_insert_with(|| autotune::load(&self.tune_key));
            if let Some(t) = known.get(&key).filter(|t| autotune::fits(t, &self.limits)) {
                return Ok(*t);
            }
        }
        self.finish()?;
        let (best, time) =
            autotune::tune(heuristic, &self.limits, |t| self.time_trial(t, &mut *trial));
        if time.is_some() {
            let mut tuned = self.tuned.lock().map_err(|_| poisoned())?;
            tuned
                .get_or_insert_with(HashMap::new)
                .insert(key.clone(), best);
            if let Some(why) = autotune::store(&self.tune_key, &key, &best) {
                static WARNED: AtomicBool = AtomicBool::new(false);
                if !WARNED.swap(true, Ordering::Relaxed) {
                    eprintln!("bragg: {why} (tiles are re-timed in every process)");
                }
            }
        }
        Ok(best)
    }

    /// Seconds of one run of `trial` with tiles `t` (after a warm-up that builds the program,
    /// the best of 3 runs, of fewer when they pass 0.3 s, of up to 20 while under 20 ms), or
    /// `None` when the shape fails to build or run here.
    fn time_trial(
        &self,
        t: ConvTiles,
        trial: &mut impl FnMut(ConvTiles) -> Result<()>,
    ) -> Option<f64> {
        trial(t).ok()?;
        self.finish().ok()?;
        let (mut best, mut total, mut runs) = (f64::INFINITY, 0.0, 0);
        while (runs < 3 && total < 0.3) || (total < 0.02 && runs < 20) {
            let start = std::time::Instant::now();
            trial(t).ok()?;
            self.finish().ok()?;
            let s = start.elapsed().as_secs_f64();
            best = best.min(s);
            total += s;
            runs += 1;
        }
        Some(best)
    }

    /// The compiled program of a family with the conv tile options `t`, built on first use.
    fn program(&self, family: Family, t: ConvTiles) -> Result<Arc<Program>> {
        let mut progs = self.programs.lock().map_err(|_| poisoned())?;
        if let Some(p) = progs.get(&(family, t)) {
            return Ok(p.clone());
        }
        let (file, src) = family.source();
        let options = format!(
            "-cl-std=CL1.2 -cl-mad-enable -DTM={} -DTN={} -DTK={} -DRM={} -DRN={} -DPF={}",
            t.tm, t.tn, t.tk, t.rm, t.rn, t.prefetch as u8
        );
        let program = self.build_program(file, src, &options)?;
        let p = Arc::new(program);
        progs.insert((family, t), p.clone());
        Ok(p)
    }

    /// Compiles `src` (named `label` in errors) for this device with build `options`; a failed
    /// build returns the build log.
    fn build_program(&self, label: &str, src: &str, options: &str) -> Result<Program> {
        let mut program = Program::create_from_source(&self.context, src)
            .map_err(|c| self.err(&format!("creating the program of {label}"), c.0))?;
        if let Err(c) = program.build(&[self.device_id], options) {
            let log = program
                .get_build_log(self.device_id)
                .unwrap_or_else(|_| "(no build log)".into());
            return Err(Error::OpenCl(format!(
                "building {label} for {} failed (error {}):\n{log}",
                self.device_name, c.0
            )));
        }
        Ok(program)
    }

    /// Enqueues kernel `entry` of an OpenCL C `source` given at run time (a custom op's
    /// kernel), like [`OpenClBackend::launch`] does for the built-in kernels: the program is
    /// compiled once per device (with `-cl-std=CL1.2` and `options`) and cached with its kernel
    /// objects; the launch goes on this device's queue and returns without waiting. `global` is
    /// rounded up to a multiple of `local` when `local` is given, so kernels must guard their
    /// index. A launch with zero work-items does nothing.
    pub fn launch_source(
        &self,
        source: &str,
        entry: &str,
        options: &str,
        args: &[Arg<'_>],
        global: &[usize],
        local: Option<&[usize]>,
    ) -> Result<()> {
        use std::hash::{Hash, Hasher};
        if global.is_empty() || global.len() > 3 || local.is_some_and(|l| l.len() != global.len()) {
            return Err(Error::arg(
                "launch_source",
                "global",
                format!(
                    "kernel {entry}: needs 1 to 3 global sizes and as many local sizes, got \
                     global {global:?}, local {local:?}"
                ),
            ));
        }
        if local.is_some_and(|l| l.contains(&0)) {
            return Err(Error::arg(
                "launch_source",
                "local",
                format!("kernel {entry}: local sizes must be positive, got {local:?}"),
            ));
        }
        if global.contains(&0) {
            return Ok(());
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        source.hash(&mut h);
        options.hash(&mut h);
        let key = h.finish();
        let mut user = self.user.lock().map_err(|_| poisoned())?;
        if !user.contains_key(&key) && user.len() >= 512 {
            // Sources generated per call (options baked into the text) must not grow the cache
            // without bound; recompiling the few live ones is cheap by comparison.
            user.clear();
        }
        let slot = user.entry(key).or_default();
        let idx = match slot
            .iter()
            .position(|p| p.source == source && p.options == options)
        {
            Some(i) => i,
            None => {
                let label = format!("the custom kernel source of `{entry}`");
                let program =
                    self.build_program(&label, source, &format!("-cl-std=CL1.2 {options}"))?;
                slot.push(UserProgram {
                    source: source.to_string(),
                    options: options.to_string(),
                    program,
                    kernels: HashMap::new(),
                });
                slot.len() - 1
            }
        };
        let up = &mut slot[idx];
        if !up.kernels.contains_key(entry) {
            let k = Kernel::create(&up.program, entry).map_err(|c| {
                self.err(
                    &format!("creating kernel `{entry}` (is it a __kernel of the source?)"),
                    c.0,
                )
            })?;
            up.kernels.insert(entry.to_string(), k);
        }
        let kernel = &up.kernels[entry];
        // Arguments stay set on a cached kernel object, so a short list would silently reuse
        // the previous launch's values: compare with the signature first.
        if let Ok(n) = kernel.num_args() {
            if n as usize != args.len() {
                return Err(Error::arg(
                    "launch_source",
                    "args",
                    format!(
                        "kernel `{entry}` takes {n} argument(s), the launch gives {}",
                        args.len()
                    ),
                ));
            }
        }
        self.enqueue(kernel, entry, args, global, local)
    }

    /// The OpenCL context of this device (for interop: creating extra buffers or programs).
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The in-order command queue every op of this device runs on.
    pub fn queue(&self) -> &CommandQueue {
        &self.queue
    }

    /// The raw OpenCL device id.
    pub fn device_id(&self) -> cl_device_id {
        self.device_id
    }

    /// Allocates an uninitialised pooled buffer of `len` f32.
    pub fn alloc(&self, len: usize) -> Result<ClBuffer> {
        self.pool.alloc(len)
    }

    /// A read-only device table of i32 (conv index tables), cached per geometry and kind.
    pub(crate) fn table(
        &self,
        kind: u8,
        g: &ConvGeometry,
        make: impl FnOnce() -> Vec<i32>,
    ) -> Result<Arc<Buffer<i32>>> {
        let mut tables = self.tables.lock().map_err(|_| poisoned())?;
        if let Some(t) = tables.get(&(kind, *g)) {
            return Ok(t.clone());
        }
        let data = make();
        let n = data.len().max(1);
        let mut buf = unsafe {
            Buffer::<i32>::create(&self.context, CL_MEM_READ_ONLY, n, std::ptr::null_mut())
        }
        .map_err(|c| self.err("allocating an index table", c.0))?;
        if !data.is_empty() {
            unsafe {
                self.queue
                    .enqueue_write_buffer(&mut buf, CL_BLOCKING, 0, &data, &[])
            }
            .map_err(|c| self.err("writing an index table", c.0))?;
        }
        let buf = Arc::new(buf);
        if tables.len() > 256 {
            tables.clear();
        }
        tables.insert((kind, *g), buf.clone());
        Ok(buf)
    }

    /// Enqueues `family::name` over `global` work-items (rounded up to multiples of `local`).
    /// A launch with zero work-items does nothing.
    pub fn launch(
        &self,
        family: Family,
        name: &'static str,
        args: &[Arg<'_>],
        global: &[usize],
        local: Option<&[usize]>,
    ) -> Result<()> {
        self.launch_tiled(family, self.limits.tiles, name, args, global, local)
    }

    /// [`OpenClBackend::launch`] from the program compiled with the conv tiles `tiles`.
    pub fn launch_tiled(
        &self,
        family: Family,
        tiles: ConvTiles,
        name: &'static str,
        args: &[Arg<'_>],
        global: &[usize],
        local: Option<&[usize]>,
    ) -> Result<()> {
        if global.contains(&0) {
            return Ok(());
        }
        let program = self.program(family, tiles)?;
        let mut kernels = self.kernels.lock().map_err(|_| poisoned())?;
        let kernel = match kernels.entry((family, tiles, name)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let k = Kernel::create(&program, name).map_err(|c| {
                    self.err(
                        &format!("creating kernel {name} of {}", family.source().0),
                        c.0,
                    )
                })?;
                v.insert(k)
            }
        };
        self.enqueue(kernel, name, args, global, local)
    }

    /// Sets the arguments of `kernel` and enqueues it over `global` (rounded up to multiples of
    /// `local`). The caller holds the lock of the kernel's cache.
    fn enqueue(
        &self,
        kernel: &Kernel,
        name: &str,
        args: &[Arg<'_>],
        global: &[usize],
        local: Option<&[usize]>,
    ) -> Result<()> {
        for (i, a) in args.iter().enumerate() {
            let i = i as u32;
            let r = unsafe {
                match *a {
                    Arg::Buf(b) => kernel.set_arg(i, &b.mem()),
                    Arg::Mem(m) => kernel.set_arg(i, &m),
                    Arg::I32(v) => kernel.set_arg(i, &v),
                    Arg::F32(v) => kernel.set_arg(i, &v),
                    Arg::Int4(v) => kernel.set_arg(i, &v),
                    Arg::Int8(v) => kernel.set_arg(i, &v),
                    Arg::Local(bytes) => kernel.set_arg_local_buffer(i, bytes.max(4)),
                }
            };
            r.map_err(|c| self.err(&format!("setting argument {i} of kernel {name}"), c.0))?;
        }
        let global: Vec<usize> = match local {
            Some(l) => global
                .iter()
                .zip(l)
                .map(|(&g, &l)| g.div_ceil(l) * l)
                .collect(),
            None => global.to_vec(),
        };
        let local_ptr = local.map_or(std::ptr::null(), |l| l.as_ptr());
        unsafe {
            self.queue.enqueue_nd_range_kernel(
                kernel.get(),
                global.len() as u32,
                std::ptr::null(),
                global.as_ptr(),
                local_ptr,
                &[],
            )
        }
        .map_err(|c| self.err(&format!("launching kernel {name}"), c.0))?;
        Ok(())
    }

    /// A 1-D launch over `n` work-items with the device's 1-D work-group size.
    pub fn launch1(
        &self,
        family: Family,
        name: &'static str,
        args: &[Arg<'_>],
        n: usize,
    ) -> Result<()> {
        let wg = self.limits.wg1;
        self.launch(family, name, args, &[n], Some(&[wg]))
    }

    /// Copies host f32 data into a new pooled buffer.
    pub fn upload_slice(&self, data: &[f32]) -> Result<ClBuffer> {
        let mut b = self.alloc(data.len())?;
        if !data.is_empty() {
            unsafe {
                self.queue
                    .enqueue_write_buffer(b.buffer_mut(), CL_BLOCKING, 0, data, &[])
            }
            .map_err(|c| self.err("uploading", c.0))?;
        }
        Ok(b)
    }

    /// Reads a buffer back to the host.
    pub fn read(&self, b: &ClBuffer) -> Result<Vec<f32>> {
        let mut out = vec![0.0f32; b.len()];
        if !out.is_empty() {
            unsafe {
                self.queue
                    .enqueue_read_buffer(b.buffer(), CL_BLOCKING, 0, &mut out, &[])
            }
            .map_err(|c| self.err("downloading", c.0))?;
        }
        Ok(out)
    }

    /// A new buffer of `len` copies of `value`.
    pub fn fill(&self, len: usize, value: f32) -> Result<ClBuffer> {
        let mut b = self.alloc(len)?;
        if len > 0 {
            unsafe {
                self.queue
                    .enqueue_fill_buffer(b.buffer_mut(), &[value], 0, len * 4, &[])
            }
            .map_err(|c| self.err("filling a buffer", c.0))?;
        }
        Ok(b)
    }

    /// Uploads bytes (masks, supports) into a new pooled buffer of `ceil(len / 4)` f32 holding
    /// them in order, for kernels that read it as `uchar*`.
    pub fn upload_bytes(&self, data: &[u8]) -> Result<ClBuffer> {
        let words: Vec<f32> = data
            .chunks(4)
            .map(|c| {
                let mut w = [0u8; 4];
                w[..c.len()].copy_from_slice(c);
                f32::from_bits(u32::from_le_bytes(w))
            })
            .collect();
        self.upload_slice(&words)
    }

    /// Overwrites the start of `b` with `data` (bytes), as [`OpenClBackend::upload_bytes`] lays
    /// them out.
    pub fn write_bytes(&self, b: &mut ClBuffer, data: &[u8]) -> Result<()> {
        if data.len().div_ceil(4) > b.len() {
            return Err(Error::OpenCl(format!(
                "write_bytes: {} bytes into a buffer of {} f32",
                data.len(),
                b.len()
            )));
        }
        let words: Vec<f32> = data
            .chunks(4)
            .map(|c| {
                let mut w = [0u8; 4];
                w[..c.len()].copy_from_slice(c);
                f32::from_bits(u32::from_le_bytes(w))
            })
            .collect();
        if !words.is_empty() {
            unsafe {
                self.queue
                    .enqueue_write_buffer(b.buffer_mut(), CL_BLOCKING, 0, &words, &[])
            }
            .map_err(|c| self.err("uploading bytes", c.0))?;
        }
        Ok(())
    }

    /// Reads the first `len` bytes of a buffer written by byte kernels or
    /// [`OpenClBackend::upload_bytes`].
    pub fn read_bytes(&self, b: &ClBuffer, len: usize) -> Result<Vec<u8>> {
        let words = self.read(b)?;
        let mut out: Vec<u8> = words
            .iter()
            .flat_map(|w| w.to_bits().to_le_bytes())
            .collect();
        if out.len() < len {
            return Err(Error::OpenCl(format!(
                "read_bytes: {len} bytes from a buffer of {} f32",
                b.len()
            )));
        }
        out.truncate(len);
        Ok(out)
    }

    /// Reads the first `len` f32 of a buffer.
    pub fn read_prefix(&self, b: &ClBuffer, len: usize) -> Result<Vec<f32>> {
        let len = len.min(b.len());
        let mut out = vec![0.0f32; len];
        if len > 0 {
            unsafe {
                self.queue
                    .enqueue_read_buffer(b.buffer(), CL_BLOCKING, 0, &mut out, &[])
            }
            .map_err(|c| self.err("downloading", c.0))?;
        }
        Ok(out)
    }

    /// Waits until every enqueued command has finished.
    pub fn finish(&self) -> Result<()> {
        self.queue
            .finish()
            .map_err(|c| self.err("finishing the queue", c.0))
    }

    /// Uploads f16 host data and converts it to f32 on the device with `vload_half` (works on
    /// devices without cl_khr_fp16).
    pub fn upload_f16(&self, data: &[half::f16]) -> Result<ClBuffer> {
        let out = self.alloc(data.len())?;
        if data.is_empty() {
            return Ok(out);
        }
        let bits: &[u16] = bytemuck::cast_slice(data);
        let mut tmp = unsafe {
            Buffer::<u16>::create(
                &self.context,
                CL_MEM_READ_ONLY,
                bits.len(),
                std::ptr::null_mut(),
            )
        }
        .map_err(|c| self.err("allocating an f16 staging buffer", c.0))?;
        unsafe {
            self.queue
                .enqueue_write_buffer(&mut tmp, CL_BLOCKING, 0, bits, &[])
        }
        .map_err(|c| self.err("uploading f16 data", c.0))?;
        let n = i32_len(data.len(), "upload_f16")?;
        self.launch1(
            Family::Half,
            "f16_to_f32",
            &[Arg::Mem(tmp.get()), Arg::Buf(&out), Arg::I32(n)],
            data.len(),
        )?;
        // The staging buffer is released on drop; finish first so the kernel has read it.
        self.queue
            .finish()
            .map_err(|c| self.err("finishing", c.0))?;
        Ok(out)
    }
}

fn poisoned() -> Error {
    Error::OpenCl("internal lock poisoned by a panic in another thread".into())
}

/// `n` as an OpenCL `int`, or an error naming `op` for tensors beyond 2^31 elements.
pub(crate) fn i32_len(n: usize, op: &str) -> Result<i32> {
    i32::try_from(n).map_err(|_| {
        Error::OpenCl(format!(
            "{op}: {n} elements exceed the 2^31 limit of the OpenCL kernels"
        ))
    })
}

/// The OpenCL buffer of a storage, or an error naming `op`.
pub(crate) fn cl<'a>(s: &'a Storage, op: &str) -> Result<&'a ClBuffer> {
    match s {
        Storage::OpenCl(b) => Ok(b),
        _ => Err(Error::Device(format!(
            "{op}: expected an OpenCL tensor, got one on another device"
        ))),
    }
}

/// Uploads f16 host data to an OpenCL device as an f32 storage, converting on the device.
pub fn upload_f16(device: &crate::Device, data: &[half::f16]) -> Result<Storage> {
    let be = device.opencl_backend().ok_or_else(|| {
        Error::Device(format!(
            "upload_f16: {} is not an OpenCL device",
            device.name()
        ))
    })?;
    Ok(Storage::OpenCl(be.upload_f16(data)?))
}

impl Backend for OpenClBackend {
    fn name(&self) -> String {
        format!("opencl:{} ({})", self.index, self.device_name)
    }

    fn upload(&self, data: &[f32]) -> Result<Storage> {
        Ok(Storage::OpenCl(self.upload_slice(data)?))
    }

    fn download(&self, s: &Storage) -> Result<Vec<f32>> {
        self.read(cl(s, "download")?)
    }

    fn full(&self, len: usize, value: f32) -> Result<Storage> {
        Ok(Storage::OpenCl(self.fill(len, value)?))
    }

    fn unary(&self, op: UnaryOp, x: &Storage) -> Result<Storage> {
        elementwise::opencl::unary(self, op, cl(x, "unary")?).map(Storage::OpenCl)
    }

    fn unary_backward(&self, op: UnaryOp, x: &Storage, gy: &Storage) -> Result<Storage> {
        elementwise::opencl::unary_backward(
            self,
            op,
            cl(x, "unary_backward")?,
            cl(gy, "unary_backward")?,
        )
        .map(Storage::OpenCl)
    }

    fn binary(
        &self,
        op: BinaryOp,
        a: &Storage,
        a_shape: &[usize],
        b: &Storage,
        b_shape: &[usize],
        out_shape: &[usize],
    ) -> Result<Storage> {
        elementwise::opencl::binary(
            self,
            op,
            cl(a, "binary")?,
            a_shape,
            cl(b, "binary")?,
            b_shape,
            out_shape,
        )
        .map(Storage::OpenCl)
    }

    fn sum_axes(&self, x: &Storage, shape: &[usize], axes: &[usize]) -> Result<Storage> {
        reduce::opencl::sum_axes(self, cl(x, "sum")?, shape, axes).map(Storage::OpenCl)
    }

    fn conv_forward(
        &self,
        x: &Storage,
        w: &Storage,
        bias: Option<&Storage>,
        g: &ConvGeometry,
    ) -> Result<Storage> {
        let bias = bias.map(|b| cl(b, "conv")).transpose()?;
        conv::opencl::forward(self, cl(x, "conv")?, cl(w, "conv")?, bias, g).map(Storage::OpenCl)
    }

    fn conv_forward_leaky_relu(
        &self,
        x: &Storage,
        w: &Storage,
        bias: Option<&Storage>,
        slope: f32,
        g: &ConvGeometry,
    ) -> Result<Storage> {
        const OP: &str = "conv_leaky_relu";
        let bias = bias.map(|b| cl(b, OP)).transpose()?;
        let (x, w) = (cl(x, OP)?, cl(w, OP)?);
        conv::opencl::forward_leaky_relu(self, x, w, bias, Some(slope), g).map(Storage::OpenCl)
    }

    fn conv_backward_data(&self, gy: &Storage, w: &Storage, g: &ConvGeometry) -> Result<Storage> {
        conv::opencl::backward_data(
            self,
            cl(gy, "conv_backward_data")?,
            cl(w, "conv_backward_data")?,
            g,
        )
        .map(Storage::OpenCl)
    }

    fn conv_backward_weight(&self, x: &Storage, gy: &Storage, g: &ConvGeometry) -> Result<Storage> {
        conv::opencl::backward_weight(
            self,
            cl(x, "conv_backward_weight")?,
            cl(gy, "conv_backward_weight")?,
            g,
        )
        .map(Storage::OpenCl)
    }

    fn maxpool_forward(&self, x: &Storage, g: &PoolGeometry) -> Result<(Storage, Storage)> {
        let (y, a) = pool_op::opencl::forward(self, cl(x, "max_pool")?, g)?;
        Ok((Storage::OpenCl(y), Storage::OpenCl(a)))
    }

    fn maxpool_backward(
        &self,
        gy: &Storage,
        argmax: &Storage,
        g: &PoolGeometry,
    ) -> Result<Storage> {
        pool_op::opencl::backward(
            self,
            cl(gy, "max_pool_backward")?,
            cl(argmax, "max_pool_backward")?,
            g,
        )
        .map(Storage::OpenCl)
    }

    fn upsample_forward(&self, x: &Storage, g: &UpsampleGeometry) -> Result<Storage> {
        resample::opencl::forward(self, cl(x, "upsample")?, g).map(Storage::OpenCl)
    }

    fn upsample_backward(&self, gy: &Storage, g: &UpsampleGeometry) -> Result<Storage> {
        resample::opencl::backward(self, cl(gy, "upsample_backward")?, g).map(Storage::OpenCl)
    }

    fn copy_axis(&self, src: &Storage, dst: &mut Storage, c: &AxisCopy) -> Result<()> {
        let src = cl(src, "copy_axis")?;
        let dst = match dst {
            Storage::OpenCl(b) => b,
            _ => {
                return Err(Error::Device(
                    "copy_axis: expected an OpenCL destination tensor".into(),
                ))
            }
        };
        copy::opencl::copy_axis(self, src, dst, c)
    }

    fn filter_axis(&self, x: &Storage, f: &AxisFilter) -> Result<Storage> {
        filter::opencl::filter_axis(self, cl(x, "filter_axis")?, f).map(Storage::OpenCl)
    }

    fn adam_step(
        &self,
        param: &mut Storage,
        grad: &Storage,
        m: &mut Storage,
        v: &mut Storage,
        h: &AdamHyper,
    ) -> Result<()> {
        optim::opencl::adam_step(
            self,
            cl(param, "adam")?,
            cl(grad, "adam")?,
            cl(m, "adam")?,
            cl(v, "adam")?,
            h,
        )
    }

    fn sgd_step(
        &self,
        param: &mut Storage,
        grad: &Storage,
        velocity: &mut Storage,
        h: &SgdHyper,
    ) -> Result<()> {
        optim::opencl::sgd_step(
            self,
            cl(param, "sgd")?,
            cl(grad, "sgd")?,
            cl(velocity, "sgd")?,
            h,
        )
    }

    fn synchronize(&self) -> Result<()> {
        self.queue
            .finish()
            .map_err(|c| self.err("finishing the queue", c.0))
    }

    fn peak_memory(&self) -> Option<usize> {
        Some(self.pool.peak())
    }
}
