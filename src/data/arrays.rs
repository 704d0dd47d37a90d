//! One reader and one writer for every array file `bragg` takes: `.npy`, `.npz` and HDF5 / CXI
//! (by extension, see [`super::cxi`]). The subcommands open their inputs and outputs through
//! these, so every format goes through the same hardened readers and atomic writers.

use super::cxi::{is_hdf5, CxiWriter, Hdf5File};
use super::npy::{read_npy, NpyArray, NpyElement, NpzFile, NpzWriter};
use crate::Result;
use ndarray::ArrayD;
use std::path::{Path, PathBuf};

/// An input file of arrays addressed by key.
pub enum ArrayFile {
    /// A single `.npy` array (every key reads it).
    Npy(PathBuf),
    /// An `.npz` archive.
    Npz(NpzFile),
    /// An HDF5 / CXI file (keys mapped to CXI locations).
    Hdf5(Hdf5File),
}

fn is_npy(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

impl ArrayFile {
    /// Opens `path`: `.npy`, HDF5 (`.cxi`, `.h5`, ..., optionally `FILE.h5:/dataset`), else
    /// `.npz`.
    pub fn open(path: &Path) -> Result<ArrayFile> {
        Ok(if is_npy(path) {
            drop(super::io::open_regular(path)?);
            ArrayFile::Npy(path.to_path_buf())
        } else if is_hdf5(path) {
            ArrayFile::Hdf5(Hdf5File::open(path)?)
        } else {
            ArrayFile::Npz(NpzFile::open(path)?)
        })
    }

    /// Whether array `key` is present (always false for a `.npy`, whose one array has no key).
    pub fn has(&self, key: &str) -> bool {
        match self {
            ArrayFile::Npy(_) => false,
            ArrayFile::Npz(z) => z.has(key),
            ArrayFile::Hdf5(h) => h.has(key),
        }
    }

    /// The keys present.
    pub fn keys(&self) -> Vec<String> {
        match self {
            ArrayFile::Npy(_) => vec![],
            ArrayFile::Npz(z) => z.keys(),
            ArrayFile::Hdf5(h) => h.keys(),
        }
    }

    /// Reads array `key` (a `.npy` ignores the key).
    pub fn read(&mut self, key: &str) -> Result<NpyArray> {
        match self {
            ArrayFile::Npy(p) => read_npy(p),
            ArrayFile::Npz(z) => z.read(key),
            ArrayFile::Hdf5(h) => h.read(key),
        }
    }

    /// The file read.
    pub fn path(&self) -> &Path {
        match self {
            ArrayFile::Npy(p) => p,
            ArrayFile::Npz(z) => z.path(),
            ArrayFile::Hdf5(h) => h.path(),
        }
    }
}

/// An output file of arrays by key, written atomically by [`ArrayWriter::finish`]: `.npz`, or
/// CXI for an HDF5 extension (`intensity` as the detector data, `mask` as its mask, other keys
/// in `/entry_1/bragg_1`).
pub enum ArrayWriter {
    /// An `.npz` archive (boxed: its zip writer is large).
    Npz(Box<NpzWriter>),
    /// A CXI file.
    Cxi(CxiWriter),
}

impl ArrayWriter {
    /// Starts the output `path`.
    pub fn create(path: &Path) -> Result<ArrayWriter> {
        Ok(if is_hdf5(path) {
            ArrayWriter::Cxi(CxiWriter::create(path)?)
        } else {
            ArrayWriter::Npz(Box::new(NpzWriter::create(path)?))
        })
    }

    /// Adds array `key`.
    pub fn add<T: NpyElement>(&mut self, key: &str, a: &ArrayD<T>) -> Result<()> {
        match self {
            ArrayWriter::Npz(w) => w.add(key, a),
            ArrayWriter::Cxi(w) => w.add(key, a),
        }
    }

    /// Writes the file and renames it into place.
    pub fn finish(self) -> Result<()> {
        match self {
            ArrayWriter::Npz(w) => w.finish(),
            ArrayWriter::Cxi(w) => w.finish(),
        }
    }
}
