//! Nearest-neighbour upsampling by integer factors per axis.

pub mod cpu;
pub mod opencl;

use crate::{Error, Result};

/// Shapes of an upsampling: `planes` = N*C spatial volumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpsampleGeometry {
    /// N * C.
    pub planes: usize,
    /// Input spatial size (D, H, W).
    pub input: [usize; 3],
    /// Integer factor per axis.
    pub factor: [usize; 3],
}

impl UpsampleGeometry {
    /// Validates and builds the geometry.
    pub fn new(planes: usize, input: [usize; 3], factor: [usize; 3]) -> Result<Self> {
        if factor.contains(&0) {
            return Err(Error::arg(
                "upsample",
                "factor",
                format!("must be >= 1, got {factor:?}"),
            ));
        }
        Ok(UpsampleGeometry {
            planes,
            input,
            factor,
        })
    }

    /// Output spatial size.
    pub fn output(&self) -> [usize; 3] {
        [0, 1, 2].map(|a| self.input[a] * self.factor[a])
    }

    /// Number of input elements.
    pub fn input_len(&self) -> usize {
        self.planes * self.input.iter().product::<usize>()
    }

    /// Number of output elements.
    pub fn output_len(&self) -> usize {
        self.planes * self.output().iter().product::<usize>()
    }
}
