//! Discovery of OpenCL platforms and devices, and the device listing behind `bragg devices`.

use crate::{Error, Result};
use opencl3::device::{
    Device as ClDevice, CL_DEVICE_TYPE_ACCELERATOR, CL_DEVICE_TYPE_ALL, CL_DEVICE_TYPE_CPU,
    CL_DEVICE_TYPE_GPU,
};
use opencl3::platform::get_platforms;
use opencl3::types::cl_device_id;

/// Serialises platform and device discovery: the ICD loader's first-call initialisation is not
/// thread-safe in every ocl-icd release.
pub(crate) fn loader_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// True when an OpenCL runtime library (libOpenCL) could be loaded.
pub fn opencl_available() -> bool {
    cl3::is_opencl_runtime_available()
}

/// Every OpenCL device of every platform, in the order of `opencl:N`, with its platform name.
/// An error when no OpenCL runtime library is installed; an empty list when no ICD is registered.
pub(crate) fn enumerate() -> Result<Vec<(cl_device_id, String)>> {
    let _guard = loader_lock();
    if !opencl_available() {
        return Err(Error::Device(
            "no OpenCL runtime found (libOpenCL.so.1 could not be loaded); install an ICD loader \
             and a driver, e.g. `apt-get install ocl-icd-libopencl1 pocl-opencl-icd`"
                .into(),
        ));
    }
    let platforms = match get_platforms() {
        Ok(p) => p,
        // CL_PLATFORM_NOT_FOUND_KHR: a loader without any registered driver.
        Err(e) if e.0 == -1001 => Vec::new(),
        Err(e) => {
            return Err(Error::OpenCl(format!(
                "listing OpenCL platforms failed: error {}",
                e.0
            )))
        }
    };
    let mut out = Vec::new();
    for p in platforms {
        let pname = p.name().unwrap_or_else(|_| "unknown platform".into());
        // A platform without devices reports CL_DEVICE_NOT_FOUND: skip it.
        for id in p.get_devices(CL_DEVICE_TYPE_ALL).unwrap_or_default() {
            out.push((id, pname.clone()));
        }
    }
    Ok(out)
}

/// True when `id` is a GPU.
pub(crate) fn is_gpu(id: cl_device_id) -> bool {
    ClDevice::new(id)
        .dev_type()
        .is_ok_and(|t| t & CL_DEVICE_TYPE_GPU != 0)
}

/// One row of the device listing.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceInfo {
    /// The spec that selects it: `cpu` or `opencl:N`.
    pub spec: String,
    /// Device name.
    pub name: String,
    /// Vendor.
    pub vendor: String,
    /// Platform (driver) name; `native` for the CPU backend.
    pub platform: String,
    /// `CPU`, `GPU`, `accelerator` or `other`.
    pub kind: String,
    /// Compute units (CPU threads for the native backend).
    pub compute_units: usize,
    /// Global memory in bytes (0 when unknown).
    pub global_mem_bytes: u64,
    /// Largest work-group (1 for the native backend).
    pub max_work_group_size: usize,
    /// Native f16 arithmetic (cl_khr_fp16).
    pub fp16: bool,
    /// True for the device `Device::default_device()` picks.
    pub is_default: bool,
}

/// The native CPU and every OpenCL device, plus a note when the OpenCL runtime is missing or
/// has no devices (the CPU is always listed).
pub fn list_devices() -> (Vec<DeviceInfo>, Option<String>) {
    let mut rows = vec![DeviceInfo {
        spec: "cpu".into(),
        name: "native CPU backend (ndarray + rayon)".into(),
        vendor: "-".into(),
        platform: "native".into(),
        kind: "CPU".into(),
        compute_units: rayon::current_num_threads(),
        global_mem_bytes: 0,
        max_work_group_size: 1,
        fp16: false,
        is_default: false,
    }];
    let mut note = None;
    match enumerate() {
        Err(e) => note = Some(e.to_string()),
        Ok(devs) if devs.is_empty() => {
            note = Some(
                "an OpenCL runtime is installed but reports no device (no ICD registered in \
                 /etc/OpenCL/vendors?)"
                    .into(),
            )
        }
        Ok(devs) => {
            let _guard = loader_lock();
            for (i, (id, platform)) in devs.into_iter().enumerate() {
                let d = ClDevice::new(id);
                let t = d.dev_type().unwrap_or(0);
                let kind = if t & CL_DEVICE_TYPE_GPU != 0 {
                    "GPU"
                } else if t & CL_DEVICE_TYPE_CPU != 0 {
                    "CPU"
                } else if t & CL_DEVICE_TYPE_ACCELERATOR != 0 {
                    "accelerator"
                } else {
                    "other"
                };
                rows.push(DeviceInfo {
                    spec: format!("opencl:{i}"),
                    name: d.name().unwrap_or_default().trim().to_string(),
                    vendor: d.vendor().unwrap_or_default().trim().to_string(),
                    platform,
                    kind: kind.into(),
                    compute_units: d.max_compute_units().unwrap_or(0) as usize,
                    global_mem_bytes: d.global_mem_size().unwrap_or(0),
                    max_work_group_size: d.max_work_group_size().unwrap_or(0),
                    fp16: d
                        .extensions()
                        .is_ok_and(|e| e.split_whitespace().any(|x| x == "cl_khr_fp16")),
                    is_default: false,
                });
            }
        }
    }
    let default = crate::device::default_spec();
    for r in &mut rows {
        r.is_default = r.spec == default;
    }
    (rows, note)
}
