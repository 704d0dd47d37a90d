//! Max-pooling with a window equal to its stride (2 for the BCDI models), floor output size;
//! average pooling and ceil-mode max-pooling composed from it in `extra.rs`.

pub mod cpu;
pub mod extra;
pub mod opencl;

use crate::{Error, Result};

/// Shapes of a max-pool: `planes` = N*C independent spatial volumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolGeometry {
    /// N * C.
    pub planes: usize,
    /// Input spatial size (D, H, W); 2-D uses D = 1.
    pub input: [usize; 3],
    /// Window (= stride) per axis.
    pub window: [usize; 3],
    /// Output spatial size, `floor(input / window)`.
    pub output: [usize; 3],
}

impl PoolGeometry {
    /// Validates and builds the geometry.
    pub fn new(planes: usize, input: [usize; 3], window: [usize; 3]) -> Result<Self> {
        let mut output = [0; 3];
        for a in 0..3 {
            if window[a] == 0 {
                return Err(Error::arg(
                    "max_pool",
                    "window",
                    format!("must be >= 1, got {window:?}"),
                ));
            }
            output[a] = input[a] / window[a];
            if output[a] == 0 {
                return Err(Error::shape(
                    "max_pool",
                    format!("input spatial size {input:?} is smaller than the window {window:?}"),
                ));
            }
        }
        Ok(PoolGeometry {
            planes,
            input,
            window,
            output,
        })
    }

    /// Number of output elements.
    pub fn output_len(&self) -> usize {
        self.planes * self.output.iter().product::<usize>()
    }

    /// Number of input elements.
    pub fn input_len(&self) -> usize {
        self.planes * self.input.iter().product::<usize>()
    }
}
