//! Devices: where tensors live and which backend runs their ops.

use crate::backend::cpu::CpuBackend;
use crate::backend::Backend;
use std::sync::{Arc, OnceLock};

/// A handle to a compute device (cheap to clone). Two handles are the same device when they
/// share the same backend instance.
#[derive(Clone, Debug)]
pub struct Device(Arc<dyn Backend>);

impl Device {
    /// The native CPU backend (one shared instance per process).
    pub fn cpu() -> Device {
        static CPU: OnceLock<Device> = OnceLock::new();
        CPU.get_or_init(|| Device(Arc::new(CpuBackend))).clone()
    }

    /// Wraps a backend (for example a user's own, or an OpenCL device).
    pub fn from_backend(backend: Arc<dyn Backend>) -> Device {
        Device(backend)
    }

    /// The backend that runs this device's ops.
    pub fn backend(&self) -> &dyn Backend {
        self.0.as_ref()
    }

    /// Human-readable name of the device.
    pub fn name(&self) -> String {
        self.0.name()
    }

    /// True when both handles point at the same backend instance.
    pub fn same(&self, other: &Device) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl PartialEq for Device {
    fn eq(&self, other: &Self) -> bool {
        self.same(other)
    }
}

use crate::backend::opencl::OpenClBackend;
use crate::{Error, Result};
use std::collections::HashMap;
use std::sync::Mutex;

/// The OpenCL devices opened so far: one backend (and program cache) per device per process.
type Registry = Mutex<HashMap<usize, (Arc<OpenClBackend>, Device)>>;

fn opencl_registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The spec of the device [`Device::default_device`] picks: `BRAGG_DEVICE` when set, else
/// `opencl:N` of the first OpenCL GPU, else `cpu`.
pub fn default_spec() -> String {
    if let Ok(s) = std::env::var("BRAGG_DEVICE") {
        if !s.trim().is_empty() {
            return s.trim().to_string();
        }
    }
    first_opencl_gpu().map_or_else(|| "cpu".to_string(), |i| format!("opencl:{i}"))
}

/// The numbers (as in `bragg devices`) of the OpenCL devices that are GPUs.
pub fn opencl_gpus() -> Vec<usize> {
    let Ok(devs) = crate::backend::opencl::devices_enumerate() else {
        return vec![];
    };
    devs.iter()
        .enumerate()
        .filter(|(_, (id, _))| crate::backend::opencl::device_is_gpu(*id))
        .map(|(i, _)| i)
        .collect()
}

fn first_opencl_gpu() -> Option<usize> {
    let devs = crate::backend::opencl::devices_enumerate().ok()?;
    devs.iter()
        .position(|(id, _)| crate::backend::opencl::device_is_gpu(*id))
}

impl Device {
    /// The OpenCL device number `index` (counting the devices of every platform in order, as
    /// `bragg devices` lists them). Opened once per process; later calls share it.
    pub fn opencl(index: usize) -> Result<Device> {
        let mut reg = opencl_registry()
            .lock()
            .map_err(|_| Error::Device("OpenCL device registry poisoned".into()))?;
        if let Some((_, d)) = reg.get(&index) {
            return Ok(d.clone());
        }
        let be = Arc::new(OpenClBackend::new(index)?);
        let dev = Device(be.clone());
        reg.insert(index, (be, dev.clone()));
        Ok(dev)
    }

    /// A device from its spec: `cpu`, `opencl` (the first OpenCL device) or `opencl:N`.
    pub fn from_spec(spec: &str) -> Result<Device> {
        let s = spec.trim().to_ascii_lowercase();
        match s.as_str() {
            "cpu" => Ok(Device::cpu()),
            "opencl" => Device::opencl(0),
            _ => {
                if let Some(n) = s.strip_prefix("opencl:") {
                    let i = n.parse::<usize>().map_err(|_| {
                        Error::Device(format!(
                            "invalid device `{spec}`: expected `opencl:N` with N a device number"
                        ))
                    })?;
                    Device::opencl(i)
                } else {
                    Err(Error::Device(format!(
                        "unknown device `{spec}`: expected `cpu`, `opencl` or `opencl:N` \
                         (see `bragg devices`)"
                    )))
                }
            }
        }
    }

    /// The default device: `BRAGG_DEVICE` when set, else the first OpenCL GPU, else the native
    /// CPU. An invalid `BRAGG_DEVICE` is an error; a GPU that fails to open falls back to the CPU.
    pub fn default_device() -> Result<Device> {
        if let Ok(s) = std::env::var("BRAGG_DEVICE") {
            if !s.trim().is_empty() {
                return Device::from_spec(&s);
            }
        }
        match first_opencl_gpu() {
            Some(i) => Ok(Device::opencl(i).unwrap_or_else(|_| Device::cpu())),
            None => Ok(Device::cpu()),
        }
    }

    /// The OpenCL backend behind this device, when it is one.
    pub fn opencl_backend(&self) -> Option<Arc<OpenClBackend>> {
        let reg = opencl_registry().lock().ok()?;
        let me = Arc::as_ptr(&self.0) as *const u8;
        reg.values()
            .find(|(be, _)| std::ptr::eq(Arc::as_ptr(be) as *const u8, me))
            .map(|(be, _)| be.clone())
    }

    /// True for an OpenCL device.
    pub fn is_opencl(&self) -> bool {
        self.opencl_backend().is_some()
    }
}
