//! Data input/output: `.npy`/`.npz` and CXI / HDF5 files, simulated datasets, measured patterns,
//! normalisation and 3D patches.

pub mod arrays;
pub mod cxi;
pub mod dataset;
pub mod io;
pub mod measured;
pub mod normalize;
pub mod npy;
pub mod patches;
pub mod validate;

pub use dataset::{write_dataset, Dataset, DatasetWriter};
pub use measured::{read_measured, Measured};
pub use normalize::LogMinMax;
