//! Runs spread over MPI ranks: each rank does the runs [`crate::dist::runs_of_rank`] deals it
//! (each seeded by its index, as in one process) and keeps its best; rank 0 gathers those and
//! keeps the best overall, ordered by score and then index as one process would.

use super::Run;
use crate::dist::Comm;
use crate::{Error, Result};
use ndarray::{ArrayD, IxDyn};
use num_complex::Complex32;

/// Orders runs as [`super::phase_on`] keeps them: best score first, ties by run index.
pub(super) fn rank_runs(runs: &mut [Run]) {
    runs.sort_by(|a, b| a.score().total_cmp(&b.score()).then(a.index.cmp(&b.index)));
}

/// On rank 0: the best `keep` of every rank's `runs`; on the other ranks: nothing. In one
/// process: `runs` as they are.
pub(super) fn gather_best(
    runs: Vec<Run>,
    keep: usize,
    shape: &[usize],
    comm: &dyn Comm,
) -> Result<Vec<Run>> {
    if comm.size() == 1 {
        return Ok(runs);
    }
    let mut bytes = vec![];
    for r in &runs {
        encode(r, &mut bytes);
    }
    let parts = comm.gather_bytes(&bytes, 0)?;
    if !comm.is_root() {
        return Ok(vec![]);
    }
    let mut all = vec![];
    for (rank, part) in parts.iter().enumerate() {
        let mut at = 0;
        while at < part.len() {
            all.push(decode(part, &mut at, shape).map_err(|e| {
                Error::Msg(format!("runs received from rank {rank} are malformed: {e}"))
            })?);
        }
    }
    rank_runs(&mut all);
    all.truncate(keep);
    Ok(all)
}

fn encode(r: &Run, out: &mut Vec<u8>) {
    out.extend((r.index as u64).to_le_bytes());
    out.extend(r.llk.to_le_bytes());
    out.extend(r.free_llk.to_le_bytes());
    out.extend((r.support_size as u64).to_le_bytes());
    for c in r.object.iter() {
        out.extend(c.re.to_le_bytes());
        out.extend(c.im.to_le_bytes());
    }
    out.extend(r.support.iter().copied());
    match &r.psf {
        Some(psf) => {
            out.push(1);
            for v in psf.iter() {
                out.extend(v.to_le_bytes());
            }
        }
        None => out.push(0),
    }
}

fn take<'a>(b: &'a [u8], at: &mut usize, n: usize) -> std::result::Result<&'a [u8], String> {
    let s = b
        .get(*at..*at + n)
        .ok_or_else(|| format!("{} bytes end inside a run at byte {}", b.len(), *at))?;
    *at += n;
    Ok(s)
}

fn word(b: &[u8], at: &mut usize) -> std::result::Result<[u8; 8], String> {
    let mut w = [0u8; 8];
    w.copy_from_slice(take(b, at, 8)?);
    Ok(w)
}

fn decode(b: &[u8], at: &mut usize, shape: &[usize]) -> std::result::Result<Run, String> {
    let n: usize = shape.iter().product();
    let index = u64::from_le_bytes(word(b, at)?) as usize;
    let llk = f64::from_le_bytes(word(b, at)?);
    let free_llk = f64::from_le_bytes(word(b, at)?);
    let support_size = u64::from_le_bytes(word(b, at)?) as usize;
    let obj: Vec<Complex32> = take(b, at, n * 8)?
        .chunks_exact(8)
        .map(|c| {
            let f = |i: usize| f32::from_le_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
            Complex32::new(f(0), f(4))
        })
        .collect();
    let sup = take(b, at, n)?.to_vec();
    let arr = |e: ndarray::ShapeError| e.to_string();
    let psf = match take(b, at, 1)?[0] {
        0 => None,
        _ => {
            let v: Vec<f32> = take(b, at, n * 4)?
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            Some(ArrayD::from_shape_vec(IxDyn(shape), v).map_err(arr)?)
        }
    };
    Ok(Run {
        index,
        object: ArrayD::from_shape_vec(IxDyn(shape), obj).map_err(arr)?,
        support: ArrayD::from_shape_vec(IxDyn(shape), sup).map_err(arr)?,
        llk,
        free_llk,
        support_size,
        psf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(index: usize, llk: f64, free_llk: f64) -> Run {
        let shape = IxDyn(&[2, 3]);
        Run {
            index,
            object: ArrayD::from_shape_fn(shape.clone(), |d| {
                Complex32::new(d[0] as f32 + index as f32, -(d[1] as f32))
            }),
            support: ArrayD::from_shape_fn(shape, |d| (d[0] + d[1]) as u8 % 2),
            llk,
            free_llk,
            support_size: 3,
            psf: (index % 2 == 1).then(|| ArrayD::from_elem(IxDyn(&[2, 3]), index as f32)),
        }
    }

    #[test]
    fn runs_survive_the_byte_encoding() {
        let runs = [run(4, 1.5, f64::NAN), run(7, 0.25, 0.5)];
        let mut b = vec![];
        runs.iter().for_each(|r| encode(r, &mut b));
        let mut at = 0;
        for r in &runs {
            let d = decode(&b, &mut at, &[2, 3]).unwrap();
            assert_eq!((d.index, d.llk, d.support_size), (r.index, r.llk, 3));
            assert_eq!(d.free_llk.is_nan(), r.free_llk.is_nan());
            assert_eq!(d.object, r.object);
            assert_eq!(d.support, r.support);
            assert_eq!(d.psf, r.psf);
        }
        assert_eq!(at, b.len());
        let err = decode(&b[..20], &mut 0, &[2, 3]).unwrap_err();
        assert!(err.contains("end inside a run"), "{err}");
    }

    #[test]
    fn ranking_breaks_ties_by_index_like_one_process() {
        let mut runs = vec![run(3, 2.0, 1.0), run(1, 9.0, 1.0), run(2, 0.1, f64::NAN)];
        rank_runs(&mut runs);
        // Free LLK ranks when finite, else the LLK; equal scores keep the index order.
        let order: Vec<usize> = runs.iter().map(|r| r.index).collect();
        assert_eq!(order, vec![2, 1, 3]);
    }
}
