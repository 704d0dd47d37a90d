//! The examples' core logic, run by the test suite on the CPU and on OpenCL (`opencl:0`, skipped
//! without one unless `BRAGG_REQUIRE_OPENCL=1`). `cargo test` also builds the example binaries.

#[path = "../examples/custom_op.rs"]
mod custom_op;
#[path = "../examples/fourier_loss.rs"]
mod fourier_loss;

use bragg::Device;

fn devices() -> Vec<Device> {
    let require = std::env::var("BRAGG_REQUIRE_OPENCL").is_ok_and(|v| v == "1");
    let mut v = vec![Device::cpu()];
    match Device::from_spec("opencl:0") {
        Ok(d) => v.push(d),
        Err(e) => {
            assert!(!require, "BRAGG_REQUIRE_OPENCL=1 but opencl:0 failed: {e}");
            eprintln!("examples: OpenCL part SKIPPED ({e})");
        }
    }
    v
}

#[test]
fn custom_op_example_passes_its_checks() {
    for d in devices() {
        custom_op::run(&d).unwrap_or_else(|e| panic!("custom_op on {}: {e}", d.name()));
    }
}

#[test]
fn fourier_loss_example_loss_falls() {
    for d in devices() {
        let (first, last) = fourier_loss::run(&d, 40)
            .unwrap_or_else(|e| panic!("fourier_loss on {}: {e}", d.name()));
        assert!(
            last < 0.7 * first,
            "fourier_loss on {}: {first} -> {last}",
            d.name()
        );
    }
}
