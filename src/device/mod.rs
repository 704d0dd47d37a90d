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
