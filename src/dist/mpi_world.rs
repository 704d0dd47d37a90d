//! The MPI world (feature `mpi`): the system MPI through the `mpi` crate. MPI is started with
//! the "funneled" threading level: only the main thread calls it, while the rayon pool and the
//! OpenCL queues work as usual.

use super::{check_root, Comm};
use crate::{Error, Result};
use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Count;
use std::sync::Mutex;

/// Held until [`finish`]: dropping it finalises MPI.
static UNIVERSE: Mutex<Option<Universe>> = Mutex::new(None);

/// Largest number of elements in one MPI call (counts are C ints).
const CHUNK: usize = 1 << 26;

/// This process's place in `MPI_COMM_WORLD`.
pub(super) struct MpiWorld {
    rank: usize,
    size: usize,
    local_rank: usize,
    local_size: usize,
}

fn comm() -> SimpleCommunicator {
    SimpleCommunicator::world()
}

impl MpiWorld {
    /// Initialises MPI (once per process) and finds the ranks that share this node.
    pub(super) fn start() -> Result<MpiWorld> {
        let (universe, _level) = mpi::initialize_with_threading(mpi::Threading::Funneled)
            .ok_or_else(|| {
                Error::Msg("MPI was already initialised by something else in this process".into())
            })?;
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        let node = world.split_shared(world.rank());
        let (local_rank, local_size) = (node.rank() as usize, node.size() as usize);
        *UNIVERSE.lock().unwrap_or_else(|e| e.into_inner()) = Some(universe);
        Ok(MpiWorld {
            rank,
            size,
            local_rank,
            local_size,
        })
    }
}

/// Finalises MPI after success; after a failure with other ranks running, aborts the job.
pub(super) fn finish(ok: bool, code: i32) {
    let universe = UNIVERSE.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(u) = universe {
        if !ok && u.world().size() > 1 {
            u.world().abort(code);
        }
        drop(u);
    }
}

impl Comm for MpiWorld {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn local_rank(&self) -> usize {
        self.local_rank
    }
    fn local_size(&self) -> usize {
        self.local_size
    }

    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
        let w = comm();
        let mut send = vec![0f32; buf.len().min(CHUNK)];
        for part in buf.chunks_mut(CHUNK) {
            let s = &mut send[..part.len()];
            s.copy_from_slice(part);
            w.all_reduce_into(&s[..], part, SystemOperation::sum());
        }
        Ok(())
    }

    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        let w = comm();
        for part in buf.chunks_mut(CHUNK) {
            let send = part.to_vec();
            w.all_reduce_into(&send[..], part, SystemOperation::sum());
        }
        Ok(())
    }

    fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<()> {
        check_root(root, self.size)?;
        let w = comm();
        let p = w.process_at_rank(root as i32);
        for part in buf.chunks_mut(CHUNK) {
            p.broadcast_into(part);
        }
        Ok(())
    }

    fn gather_bytes(&self, data: &[u8], root: usize) -> Result<Vec<Vec<u8>>> {
        check_root(root, self.size)?;
        let too_big = |n: usize| {
            Error::arg(
                "dist",
                "gather",
                format!("{n} bytes to gather, at most {} in one call", Count::MAX),
            )
        };
        let len = Count::try_from(data.len()).map_err(|_| too_big(data.len()))?;
        let w = comm();
        let p = w.process_at_rank(root as i32);
        if self.rank != root {
            // The length goes first so that the root can size its buffer. (An error on any
            // rank ends the job through `finish`, so no rank is left waiting.)
            p.gather_into(&len);
            p.gather_varcount_into(data);
            return Ok(vec![]);
        }
        let mut counts = vec![0 as Count; self.size];
        p.gather_into_root(&len, &mut counts[..]);
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        if Count::try_from(total).is_err() {
            return Err(too_big(total));
        }
        let displs: Vec<Count> = counts
            .iter()
            .scan(0 as Count, |acc, &c| {
                let d = *acc;
                *acc += c;
                Some(d)
            })
            .collect();
        let mut all = vec![0u8; total];
        {
            let mut part = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
            p.gather_varcount_into_root(data, &mut part);
        }
        Ok(counts
            .iter()
            .zip(&displs)
            .map(|(&c, &d)| all[d as usize..(d + c) as usize].to_vec())
            .collect())
    }

    fn barrier(&self) -> Result<()> {
        comm().barrier();
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "MPI rank {} of {} ({} of {} on this node)",
            self.rank, self.size, self.local_rank, self.local_size
        )
    }
}
