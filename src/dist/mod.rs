//! Running on several processes. With the `mpi` feature, a `bragg` started by `mpirun` or
//! `srun` joins the MPI world of its job: training splits every global batch over the ranks
//! ([`DataParallel`]) and `bragg phase` spreads its runs over them ([`runs_of_rank`]). Without
//! the feature, or when the process was not launched by an MPI starter, the world is this one
//! process ([`SingleProcess`]), so the callers have a single code path.
//!
//! Call [`init`] first thing in `main` (it starts MPI on the main thread and sizes the CPU
//! thread pool to the ranks sharing the node) and [`finish`] last (it shuts MPI down, or aborts
//! the whole job when the process ends with an error, so that no rank waits forever).

#[cfg(feature = "mpi")]
mod mpi_world;
mod parallel;

pub use parallel::{share, DataParallel, ReduceStats, DEFAULT_BUCKET};

use crate::{Error, Result};
use std::sync::OnceLock;

/// The collective operations the rest of `bragg` needs from a group of processes.
pub trait Comm: Send + Sync {
    /// This process's number, from 0.
    fn rank(&self) -> usize;
    /// Number of processes.
    fn size(&self) -> usize;
    /// This process's number among those on the same node.
    fn local_rank(&self) -> usize;
    /// Number of processes on this node.
    fn local_size(&self) -> usize;
    /// Replaces `buf` on every rank by the element-wise sum over the ranks.
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()>;
    /// [`Comm::all_reduce_sum`] of `f64` values.
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()>;
    /// Copies `buf` of rank `root` into `buf` of every rank (same length everywhere).
    fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<()>;
    /// Collects every rank's bytes on `root` (in rank order); other ranks get an empty list.
    fn gather_bytes(&self, data: &[u8], root: usize) -> Result<Vec<Vec<u8>>>;
    /// Waits until every rank arrives.
    fn barrier(&self) -> Result<()>;
    /// What this world is, for logs (`1 process`, `MPI rank 0 of 4`).
    fn describe(&self) -> String;
    /// True on rank 0, the one that writes logs, checkpoints and results.
    fn is_root(&self) -> bool {
        self.rank() == 0
    }
}

/// The world of one process: every collective is the identity.
#[derive(Debug, Default, Clone, Copy)]
pub struct SingleProcess;

impl Comm for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn local_rank(&self) -> usize {
        0
    }
    fn local_size(&self) -> usize {
        1
    }
    fn all_reduce_sum(&self, _buf: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn all_reduce_sum_f64(&self, _buf: &mut [f64]) -> Result<()> {
        Ok(())
    }
    fn broadcast(&self, _buf: &mut [f32], root: usize) -> Result<()> {
        check_root(root, 1)
    }
    fn gather_bytes(&self, data: &[u8], root: usize) -> Result<Vec<Vec<u8>>> {
        check_root(root, 1)?;
        Ok(vec![data.to_vec()])
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
    fn describe(&self) -> String {
        "1 process".into()
    }
}

pub(crate) fn check_root(root: usize, size: usize) -> Result<()> {
    if root < size {
        Ok(())
    } else {
        Err(Error::arg(
            "dist",
            "root",
            format!("rank {root} asked as root of a world of {size}"),
        ))
    }
}

static WORLD: OnceLock<Box<dyn Comm>> = OnceLock::new();

/// Environment variables that MPI starters set in the processes they launch (Open MPI's
/// `mpirun`, PMI/PMIx as used by `srun` and MPICH's Hydra).
const STARTER_VARS: [&str; 5] = [
    "OMPI_COMM_WORLD_SIZE",
    "PMIX_RANK",
    "PMI_RANK",
    "PMI_SIZE",
    "MPI_LOCALNRANKS",
];

/// True when an MPI starter launched this process, or `BRAGG_MPI=1` asks for MPI anyway;
/// `BRAGG_MPI=0` keeps a launched process out of MPI (each rank then runs alone).
pub fn launched_by_mpi() -> bool {
    match std::env::var("BRAGG_MPI").ok().as_deref().map(str::trim) {
        Some("1") => return true,
        Some("0") => return false,
        _ => {}
    }
    STARTER_VARS.iter().any(|v| std::env::var_os(v).is_some())
}

/// True when this build has the `mpi` feature.
pub const fn mpi_compiled() -> bool {
    cfg!(feature = "mpi")
}

/// Joins the MPI world when launched by an MPI starter and built with the `mpi` feature,
/// else sets up the one-process world; then, when several ranks share this node and
/// `RAYON_NUM_THREADS` is unset, gives each rank its share of the CPU cores. Call it from the
/// main thread before anything else (later calls return the same world).
pub fn init() -> Result<&'static dyn Comm> {
    if let Some(w) = WORLD.get() {
        return Ok(w.as_ref());
    }
    let world: Box<dyn Comm> = make_world()?;
    let w = WORLD.get_or_init(|| world).as_ref();
    if w.local_size() > 1 && std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = (cores / w.local_size()).max(1);
        // Fails only when the pool was already built (then it keeps its size).
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global();
    }
    Ok(w)
}

#[cfg(feature = "mpi")]
fn make_world() -> Result<Box<dyn Comm>> {
    if launched_by_mpi() {
        Ok(Box::new(mpi_world::MpiWorld::start()?))
    } else {
        Ok(Box::new(SingleProcess))
    }
}

#[cfg(not(feature = "mpi"))]
fn make_world() -> Result<Box<dyn Comm>> {
    if launched_by_mpi() && std::env::var_os("BRAGG_MPI").is_none() {
        let size = std::env::var("OMPI_COMM_WORLD_SIZE")
            .or_else(|_| std::env::var("PMI_SIZE"))
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(1);
        if size > 1 {
            return Err(Error::Msg(format!(
                "launched as one of {size} MPI processes, but this bragg was built without \
                 MPI: rebuild with `cargo build --release --features mpi` (needs Open MPI and \
                 libclang, see README \"Many machines\"), or set BRAGG_MPI=0 to run every \
                 process alone"
            )));
        }
    }
    Ok(Box::new(SingleProcess))
}

/// The world of this process ([`init`] on first use).
pub fn world() -> &'static dyn Comm {
    static SINGLE: SingleProcess = SingleProcess;
    match init() {
        Ok(w) => w,
        Err(_) => &SINGLE,
    }
}

/// Ends the process's part in the world: with `ok`, shuts MPI down cleanly (when it was
/// started); after an error in a world of several ranks, aborts the whole job with `code`
/// so that the other ranks do not wait forever in a collective. Returns when there is
/// nothing to shut down.
pub fn finish(ok: bool, code: i32) {
    #[cfg(feature = "mpi")]
    mpi_world::finish(ok, code);
    #[cfg(not(feature = "mpi"))]
    let _ = (ok, code);
}

/// The device of this rank when several ranks share the node and `spec` leaves the choice
/// open (`opencl` without a number, or no `--device` / `BRAGG_DEVICE` at all): the node's
/// OpenCL GPUs are dealt to its ranks in turn (local rank modulo the number of GPUs). `None`
/// when the spec names a device or `cpu`, when this rank is alone on its node, or when the
/// node has no GPU (then the usual choice applies).
pub fn device_of_local_rank(spec: Option<&str>) -> Result<Option<crate::Device>> {
    let w = world();
    if w.local_size() <= 1 {
        return Ok(None);
    }
    let open = spec.is_none_or(|s| s.trim().eq_ignore_ascii_case("opencl"));
    if !open {
        return Ok(None);
    }
    let gpus = crate::device::opencl_gpus();
    if gpus.is_empty() {
        return Ok(None);
    }
    crate::Device::opencl(gpus[w.local_rank() % gpus.len()]).map(Some)
}

/// The run indices of `0..runs` that rank `rank` of `size` does: every `size`-th from
/// `rank` on, so that ranks get equal counts within one and each run keeps its own seed.
pub fn runs_of_rank(runs: usize, rank: usize, size: usize) -> impl Iterator<Item = usize> {
    (rank.min(runs)..runs).step_by(size.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_dealt_round_robin_and_cover_everything_once() {
        for size in 1..5 {
            let mut all: Vec<usize> = (0..size).flat_map(|r| runs_of_rank(7, r, size)).collect();
            all.sort();
            assert_eq!(all, (0..7).collect::<Vec<_>>(), "size {size}");
        }
        assert_eq!(runs_of_rank(5, 1, 2).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(runs_of_rank(2, 3, 4).count(), 0);
    }

    #[test]
    fn single_process_collectives_are_identities() {
        let w = SingleProcess;
        let mut v = vec![1.0f32, -2.0];
        w.all_reduce_sum(&mut v).unwrap();
        w.broadcast(&mut v, 0).unwrap();
        assert_eq!(v, vec![1.0, -2.0]);
        assert_eq!(w.gather_bytes(b"ab", 0).unwrap(), vec![b"ab".to_vec()]);
        let e = w.broadcast(&mut v, 1).unwrap_err().to_string();
        assert!(e.contains("rank 1"), "{e}");
        assert!(w.is_root());
    }
}
