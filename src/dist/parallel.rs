//! Data-parallel training: every rank holds a replica of the model, takes a contiguous part of
//! each global batch, and the ranks' gradients are summed in buckets before the optimiser step.
//! Each rank's loss is its *share* of the global batch's loss (see
//! [`crate::loss::GlobalBatch`]), so the sum of the ranks' gradients is the gradient of the
//! global batch, and every replica takes the same step as one process would.

use super::Comm;
use crate::autograd::Gradients;
use crate::nn::Param;
use crate::{Result, Tensor};
use std::ops::Range;
use std::time::Instant;

/// The part of `0..n` that `rank` of `size` takes when `n` items are split in contiguous parts
/// whose sizes differ by at most one (the first ranks take the larger ones).
pub fn share(n: usize, rank: usize, size: usize) -> Range<usize> {
    let size = size.max(1);
    let (base, extra) = (n / size, n % size);
    let start = rank * base + rank.min(extra);
    let len = base + usize::from(rank < extra);
    start.min(n)..(start + len).min(n)
}

/// What the gradient all-reduce has cost so far.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct ReduceStats {
    /// All-reduces done (one per training step).
    pub steps: usize,
    /// Wall time spent in them (copies to and from the device included).
    pub seconds: f64,
    /// The part of `seconds` spent in the first, small collective of each step: mostly
    /// waiting for the slowest rank to finish its backward pass.
    pub wait_seconds: f64,
    /// Numbers summed per step (gradients and scalars).
    pub floats_per_step: usize,
    /// Buckets per step.
    pub buckets_per_step: usize,
}

impl ReduceStats {
    /// Mean milliseconds per step.
    pub fn ms_per_step(&self) -> f64 {
        1e3 * self.seconds / self.steps.max(1) as f64
    }

    /// Mean milliseconds per step spent waiting for the slowest rank.
    pub fn wait_ms_per_step(&self) -> f64 {
        1e3 * self.wait_seconds / self.steps.max(1) as f64
    }
}

/// Default bucket: 4 Mi numbers (16 MiB), large enough to reach the network's bandwidth and
/// small enough to keep the extra host memory modest.
pub const DEFAULT_BUCKET: usize = 1 << 22;

/// Gradient synchronisation of one data-parallel training run.
pub struct DataParallel<'a> {
    comm: &'a dyn Comm,
    bucket: usize,
    stats: ReduceStats,
}

impl<'a> DataParallel<'a> {
    /// Synchronises over `comm` with buckets of `BRAGG_BUCKET_MB` MiB when set, else
    /// [`DEFAULT_BUCKET`] numbers.
    pub fn new(comm: &'a dyn Comm) -> DataParallel<'a> {
        let bucket = std::env::var("BRAGG_BUCKET_MB")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .filter(|&mb| mb > 0)
            .map_or(DEFAULT_BUCKET, |mb| mb.saturating_mul(1 << 18));
        DataParallel {
            comm,
            bucket,
            stats: ReduceStats::default(),
        }
    }

    /// Sets the bucket size in numbers (at least 1).
    pub fn with_bucket(mut self, numbers: usize) -> DataParallel<'a> {
        self.bucket = numbers.max(1);
        self
    }

    /// The group of processes.
    pub fn comm(&self) -> &'a dyn Comm {
        self.comm
    }

    /// Number of replicas.
    pub fn size(&self) -> usize {
        self.comm.size()
    }

    /// True on the rank that writes logs and checkpoints.
    pub fn is_root(&self) -> bool {
        self.comm.is_root()
    }

    /// The positions of a global batch of `n` examples that this rank computes.
    pub fn share(&self, n: usize) -> Range<usize> {
        share(n, self.comm.rank(), self.comm.size())
    }

    /// The all-reduce cost so far.
    pub fn stats(&self) -> ReduceStats {
        self.stats
    }

    /// Gives every replica rank 0's parameter values (a no-op in one process).
    pub fn broadcast_parameters(&self, params: &[Param]) -> Result<()> {
        if self.size() == 1 {
            return Ok(());
        }
        for p in params {
            let mut v = p.tensor.to_vec()?;
            self.comm.broadcast(&mut v, 0)?;
            if !self.is_root() {
                let fresh = p.tensor.device().backend().upload(&v)?;
                *p.tensor.update_storage() = fresh;
            }
        }
        Ok(())
    }

    /// Sums over the ranks the gradients of `params` (`None`, or a missing entry, counts as
    /// zeros: a rank with no example in this batch) and the numbers in `scalars` (summed in
    /// place). A parameter gets a gradient when some rank had one for it. In one process the
    /// gradients are returned as they are.
    pub fn all_reduce(
        &mut self,
        params: &[Param],
        grads: Option<Gradients>,
        scalars: &mut [f64],
    ) -> Result<Gradients> {
        if self.size() == 1 {
            return Ok(grads.unwrap_or_default());
        }
        let t0 = Instant::now();
        let local = grads.unwrap_or_default();
        // Which parameters have a gradient on some rank, summed with the caller's scalars.
        let mut small: Vec<f64> = params
            .iter()
            .map(|p| f64::from(u8::from(local.get(&p.tensor).is_some())))
            .collect();
        small.extend_from_slice(scalars);
        self.comm.all_reduce_sum_f64(&mut small)?;
        self.stats.wait_seconds += t0.elapsed().as_secs_f64();
        scalars.copy_from_slice(&small[params.len()..]);

        let mut out = Gradients::default();
        let mut bucket: Vec<f32> = Vec::with_capacity(self.bucket.min(1 << 24));
        let mut members: Vec<&Param> = vec![];
        let (mut floats, mut buckets) = (small.len(), 0usize);
        let mut flush = |bucket: &mut Vec<f32>, members: &mut Vec<&Param>| -> Result<()> {
            if members.is_empty() {
                return Ok(());
            }
            self.comm.all_reduce_sum(bucket)?;
            floats += bucket.len();
            buckets += 1;
            let mut at = 0;
            for p in members.drain(..) {
                let n = p.tensor.numel();
                let g =
                    Tensor::from_slice(&bucket[at..at + n], p.tensor.shape(), p.tensor.device())?;
                out.insert(&p.tensor, g);
                at += n;
            }
            bucket.clear();
            Ok(())
        };
        for (p, &present) in params.iter().zip(&small) {
            if present == 0.0 {
                continue;
            }
            match local.get(&p.tensor) {
                Some(g) => bucket.extend(g.to_vec()?),
                None => bucket.resize(bucket.len() + p.tensor.numel(), 0.0),
            }
            members.push(p);
            if bucket.len() >= self.bucket {
                flush(&mut bucket, &mut members)?;
            }
        }
        flush(&mut bucket, &mut members)?;
        self.stats.steps += 1;
        self.stats.seconds += t0.elapsed().as_secs_f64();
        self.stats.floats_per_step = floats;
        self.stats.buckets_per_step = buckets;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Device;
    use std::sync::Mutex;

    #[test]
    fn shares_are_contiguous_balanced_and_cover_the_batch() {
        for n in 0..12 {
            for size in 1..5 {
                let parts: Vec<Range<usize>> = (0..size).map(|r| share(n, r, size)).collect();
                let mut next = 0;
                for p in &parts {
                    assert_eq!(p.start, next, "n {n} size {size}: {parts:?}");
                    next = p.end;
                }
                assert_eq!(next, n);
                let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
                assert!(lens.iter().max().unwrap() - lens.iter().min().unwrap() <= 1);
            }
        }
        assert_eq!(share(5, 0, 2), 0..3);
        assert_eq!(share(5, 1, 2), 3..5);
    }

    /// A pretend world of `size` ranks whose other ranks all hold the same numbers as this
    /// one: a sum is `size` times the input. Records the length of every call.
    struct Mirror {
        size: usize,
        calls: Mutex<Vec<usize>>,
    }

    impl Comm for Mirror {
        fn rank(&self) -> usize {
            0
        }
        fn size(&self) -> usize {
            self.size
        }
        fn local_rank(&self) -> usize {
            0
        }
        fn local_size(&self) -> usize {
            1
        }
        fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
            self.calls.lock().unwrap().push(buf.len());
            buf.iter_mut().for_each(|v| *v *= self.size as f32);
            Ok(())
        }
        fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
            buf.iter_mut().for_each(|v| *v *= self.size as f64);
            Ok(())
        }
        fn broadcast(&self, _buf: &mut [f32], _root: usize) -> Result<()> {
            Ok(())
        }
        fn gather_bytes(&self, data: &[u8], _root: usize) -> Result<Vec<Vec<u8>>> {
            Ok(vec![data.to_vec(); self.size])
        }
        fn barrier(&self) -> Result<()> {
            Ok(())
        }
        fn describe(&self) -> String {
            format!("mirror of {}", self.size)
        }
    }

    #[test]
    fn gradients_are_summed_in_buckets_and_put_back_in_place() {
        let dev = Device::cpu();
        let a = Tensor::from_vec(vec![0.0; 3], &[3], &dev).unwrap();
        let b = Tensor::from_vec(vec![0.0; 4], &[2, 2], &dev).unwrap();
        let c = Tensor::from_vec(vec![0.0; 2], &[2], &dev).unwrap();
        let params = vec![
            Param::new("a", &a),
            Param::new("b", &b),
            Param::new("c", &c),
        ];
        let mut g = Gradients::default();
        g.insert(
            &a,
            Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3], &dev).unwrap(),
        );
        g.insert(
            &b,
            Tensor::from_vec(vec![4.0, 5.0, 6.0, 7.0], &[2, 2], &dev).unwrap(),
        );
        let world = Mirror {
            size: 2,
            calls: Mutex::new(vec![]),
        };
        let mut dp = DataParallel::new(&world).with_bucket(5);
        let mut scalars = [0.25];
        let out = dp.all_reduce(&params, Some(g), &mut scalars).unwrap();
        assert_eq!(scalars, [0.5]);
        assert_eq!(out.get(&a).unwrap().to_vec().unwrap(), vec![2.0, 4.0, 6.0]);
        assert_eq!(out.get(&b).unwrap().shape(), &[2, 2]);
        assert_eq!(
            out.get(&b).unwrap().to_vec().unwrap(),
            vec![8.0, 10.0, 12.0, 14.0]
        );
        // `c` had no gradient on any rank: it gets none.
        assert!(out.get(&c).is_none());
        // 3 + 4 numbers with buckets of 5: one bucket holds a and b (it fills past 5 at b).
        assert_eq!(*world.calls.lock().unwrap(), vec![7]);
        let s = dp.stats();
        assert_eq!((s.steps, s.buckets_per_step), (1, 1));

        let mut dp = DataParallel::new(&world).with_bucket(3);
        let mut g = Gradients::default();
        g.insert(
            &a,
            Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3], &dev).unwrap(),
        );
        g.insert(&b, Tensor::from_vec(vec![1.0; 4], &[2, 2], &dev).unwrap());
        world.calls.lock().unwrap().clear();
        dp.all_reduce(&params, Some(g), &mut []).unwrap();
        assert_eq!(*world.calls.lock().unwrap(), vec![3, 4]);
    }

    #[test]
    fn a_rank_without_examples_contributes_zeros() {
        let dev = Device::cpu();
        let a = Tensor::from_vec(vec![0.0; 2], &[2], &dev).unwrap();
        let params = vec![Param::new("a", &a)];
        // No gradient here, so none on the mirrored ranks either: the parameter gets none
        // (and the optimiser skips it, as one process would).
        let world = Mirror {
            size: 3,
            calls: Mutex::new(vec![]),
        };
        let mut dp = DataParallel::new(&world);
        let out = dp.all_reduce(&params, None, &mut []).unwrap();
        assert!(out.get(&a).is_none());
        let one = super::super::SingleProcess;
        let mut dp = DataParallel::new(&one);
        let mut g = Gradients::default();
        g.insert(&a, Tensor::from_vec(vec![1.0, 2.0], &[2], &dev).unwrap());
        let out = dp.all_reduce(&params, Some(g), &mut []).unwrap();
        assert_eq!(out.get(&a).unwrap().to_vec().unwrap(), vec![1.0, 2.0]);
        assert_eq!(dp.stats().steps, 0);
    }
}
