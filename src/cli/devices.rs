//! `bragg devices`: lists the native CPU and every OpenCL device, marking the default.

use crate::backend::opencl::list_devices;

/// Prints the device table (and why OpenCL devices are missing, when they are). `selected` is
/// the `--device` choice, marked as the default when given.
pub fn run(selected: Option<&str>) -> crate::Result<()> {
    let (mut rows, note) = list_devices();
    if let Some(s) = selected {
        let s = s.trim().to_ascii_lowercase();
        let s = if s == "opencl" {
            "opencl:0".to_string()
        } else {
            s
        };
        if !rows.iter().any(|r| r.spec == s) {
            return Err(crate::Error::Device(format!(
                "unknown device `{s}`: expected `cpu`, `opencl` or `opencl:N` listed by \
                 `bragg devices` (without --device)"
            )));
        }
        for r in &mut rows {
            r.is_default = r.spec == s;
        }
    }
    println!(
        "{:<3} {:<10} {:<12} {:<40} {:<24} {:>5} {:>10} {:>6} {:>5}",
        "", "device", "type", "name", "vendor / platform", "CUs", "memory", "max wg", "fp16"
    );
    for r in &rows {
        let mem = if r.global_mem_bytes == 0 {
            "-".to_string()
        } else {
            format!("{:.1} GiB", r.global_mem_bytes as f64 / (1u64 << 30) as f64)
        };
        let vendor = if r.platform == "native" {
            "native".to_string()
        } else {
            format!("{} / {}", r.vendor, r.platform)
        };
        println!(
            "{:<3} {:<10} {:<12} {:<40} {:<24} {:>5} {:>10} {:>6} {:>5}",
            if r.is_default { "*" } else { "" },
            r.spec,
            r.kind,
            truncate(&r.name, 40),
            truncate(&vendor, 24),
            r.compute_units,
            mem,
            r.max_work_group_size,
            if r.fp16 { "yes" } else { "no" }
        );
    }
    if let Some(n) = note {
        println!("\nOpenCL: {n}");
    }
    println!(
        "\n* = default (BRAGG_DEVICE or --device override it; else the first OpenCL GPU, else cpu)"
    );
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('~');
        t
    }
}
