//! Times the sum all-reduce of `f32` buffers over the ranks of an MPI job (the collective of
//! data-parallel training): `mpirun -np 2 target/release/examples/allreduce` after
//! `cargo build --release --features mpi --example allreduce`.

fn main() -> bragg::Result<()> {
    let w = bragg::dist::init()?;
    for n in [4_096usize, 1 << 20, 1 << 22, 19_433_089] {
        let mut buf = vec![1.0f32; n];
        w.all_reduce_sum(&mut buf)?; // warm-up
        let reps = if n > 1 << 21 { 5 } else { 20 };
        w.barrier()?;
        let t0 = std::time::Instant::now();
        for _ in 0..reps {
            w.all_reduce_sum(&mut buf)?;
        }
        let ms = 1e3 * t0.elapsed().as_secs_f64() / reps as f64;
        if w.is_root() {
            println!(
                "{} ranks, {n} numbers ({:.1} MB): {ms:.2} ms per all-reduce, {:.2} GB/s",
                w.size(),
                n as f64 * 4e-6,
                n as f64 * 4e-6 / ms
            );
        }
    }
    bragg::dist::finish(true, 0);
    Ok(())
}
