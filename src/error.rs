//! The single error type of `bragg`: every fallible library call returns [`Result`].

use std::path::PathBuf;

/// Errors of the `bragg` library. Messages name the operation, the argument and the shapes,
/// files or devices involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Tensor shapes (or channel counts) that an operation cannot combine.
    #[error("{op}: shape mismatch: {detail}")]
    Shape { op: &'static str, detail: String },
    /// An argument outside its allowed range (dilation 0, kernel larger than the input, ...).
    #[error("{op}: invalid argument `{arg}`: {detail}")]
    InvalidArgument {
        op: &'static str,
        arg: &'static str,
        detail: String,
    },
    /// Non-finite values (NaN or infinity) where finite numbers are required.
    #[error("{op}: {detail}")]
    NonFinite { op: &'static str, detail: String },
    /// A file that could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file whose content is not what was expected (missing key, wrong dtype, corrupt data).
    #[error("{path}: {detail}")]
    Data { path: PathBuf, detail: String },
    /// A failure of the OpenCL runtime: device, kernel file and build log where known.
    #[error("OpenCL: {0}")]
    OpenCl(String),
    /// A device that was asked for but does not exist or cannot be used.
    #[error("device: {0}")]
    Device(String),
    /// Anything else, described in words.
    #[error("{0}")]
    Msg(String),
}

/// Result alias used throughout `bragg`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds a [`Error::Shape`].
    pub fn shape(op: &'static str, detail: impl Into<String>) -> Self {
        Error::Shape {
            op,
            detail: detail.into(),
        }
    }

    /// Builds an [`Error::InvalidArgument`].
    pub fn arg(op: &'static str, arg: &'static str, detail: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op,
            arg,
            detail: detail.into(),
        }
    }

    /// Builds an [`Error::Data`] for a file.
    pub fn data(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            detail: detail.into(),
        }
    }

    /// Builds an [`Error::Io`] for a file.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
