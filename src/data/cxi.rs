//! CXI and plain HDF5 files (the format PyNX and the beamline pipelines exchange), read and
//! written with the pure-Rust `rust-hdf5` crate (no libhdf5 needed to build or run).
//!
//! Paths: a file ending in `.cxi`, `.h5`, `.hdf5`, `.hdf` or `.nxs` is HDF5; `FILE.h5:/a/b`
//! names the dataset `/a/b` inside it (the intensity; a `mask` dataset beside it is its mask).
//!
//! Keys (the `.npz` key names of `bragg`) map to CXI locations:
//! - `intensity` (also `data`, `I`): `/entry_1/instrument_1/detector_1/data`, else
//!   `/entry_1/data_1/data` (usually a soft link to it), else a root dataset `data` /
//!   `intensity`;
//! - `mask`: `/entry_1/instrument_1/detector_1/mask` (or `/entry_1/data_1/mask`, or a root
//!   `mask`); any non-zero value (CXI masks carry bit flags) reads as 1 = masked;
//! - `object` / `support` of a phasing result: `/entry_1/image_N/data` / `/entry_1/image_N/mask`
//!   for N = 1, 2, ... stacked into `[runs, ...]` (image_1 is the best run, as in PyNX);
//! - `llk`, `free_llk`, `run`: `/entry_1/image_N/process_1/results/*`, stacked;
//! - any other key: `/entry_1/bragg_1/KEY` (the arrays CXI has no place for, such as the
//!   simulator's `truth`), else a root dataset `KEY`; a key starting with `/` is a dataset path.
//!
//! Reading is bounded like the `.npy` readers: only regular files, and the size a dataset
//! claims is checked against [`super::io::max_array_bytes`] and the free memory before it is
//! read. Chunked datasets with the gzip (deflate) and shuffle filters are read; other filters
//! give an error naming the dataset. Complex data are the h5py compound `{r, i}` (any two
//! float fields are accepted when reading). Writing is atomic like every other output.

use super::io::{check_allocation, open_regular, AtomicFile};
use super::npy::{NpyArray, NpyData, NpyElement};
use crate::{Error, Result};
use half::f16;
use ndarray::ArrayD;
use num_complex::{Complex32, Complex64};
use rust_hdf5::{ByteOrder, DatatypeMessage, H5File, H5Group};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// File name extensions read and written as HDF5.
pub const EXTENSIONS: [&str; 5] = ["cxi", "h5", "hdf5", "hdf", "nxs"];

/// CXI version written in `/cxi_version`.
pub const CXI_VERSION: i64 = 150;

/// Detector data of a CXI file.
pub const DETECTOR_DATA: &str = "entry_1/instrument_1/detector_1/data";
/// Detector mask of a CXI file.
pub const DETECTOR_MASK: &str = "entry_1/instrument_1/detector_1/mask";
/// The NXdata view of the detector data (a soft link in files written here and by PyNX).
pub const DATA_LINK: &str = "entry_1/data_1/data";
/// Group of the arrays that CXI has no place for.
pub const EXTRA_GROUP: &str = "entry_1/bragg_1";

fn has_hdf5_extension(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    EXTENSIONS.iter().any(|e| lower.ends_with(&format!(".{e}")))
}

/// Splits `FILE.h5:/path/to/data` into the file and the dataset path; `None` when `path` does
/// not name an HDF5 file by its extension.
pub fn split_spec(path: &Path) -> Option<(PathBuf, Option<String>)> {
    let s = path.to_str()?;
    if has_hdf5_extension(s) {
        return Some((path.to_path_buf(), None));
    }
    // The first `:` after which the part before it ends with an HDF5 extension.
    for (i, _) in s.match_indices(':') {
        let (file, rest) = (&s[..i], &s[i + 1..]);
        if has_hdf5_extension(file) && !rest.is_empty() {
            return Some((PathBuf::from(file), Some(rest.to_string())));
        }
    }
    None
}

/// Whether `path` names an HDF5 file (by extension, with or without `:/dataset`).
pub fn is_hdf5(path: &Path) -> bool {
    split_spec(path).is_some()
}

/// Runs `f`, turning a panic inside the HDF5 decoder (a malformed file it did not foresee)
/// into an error naming the file.
fn guarded<T>(path: &Path, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => Err(Error::data(
            path,
            format!("{what}: the HDF5 decoder failed on a malformed file"),
        )),
    }
}

/// An HDF5 / CXI file open for reading arrays by key.
pub struct Hdf5File {
    path: PathBuf,
    dataset: Option<String>,
    file: H5File,
    names: Vec<String>,
}

fn norm(p: &str) -> String {
    p.trim_start_matches('/').to_string()
}

impl Hdf5File {
    /// Opens `path` (`FILE.h5` or `FILE.h5:/dataset`): a regular file that HDF5 can parse.
    pub fn open(path: &Path) -> Result<Hdf5File> {
        let (file_path, dataset) = split_spec(path).unwrap_or_else(|| (path.to_path_buf(), None));
        drop(open_regular(&file_path)?);
        let p = file_path.clone();
        let file = guarded(&p, "opening", || {
            H5File::options()
                .best_effort_locking()
                .open(&file_path)
                .map_err(|e| Error::data(&file_path, format!("not a readable HDF5 file: {e}")))
        })?;
        let names = guarded(&p, "listing datasets", || Ok(file.dataset_names()))?;
        let names = names.iter().map(|n| norm(n)).collect();
        let f = Hdf5File {
            path: p,
            dataset: dataset.map(|d| norm(&d)),
            file,
            names,
        };
        if let Some(d) = &f.dataset {
            if !f.exists(d) {
                return Err(Error::data(
                    &f.path,
                    format!("no dataset `/{d}` (datasets: {})", f.listing()),
                ));
            }
        }
        Ok(f)
    }

    /// The file path (without a `:/dataset` suffix).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn exists(&self, name: &str) -> bool {
        let name = norm(name);
        self.names.contains(&name) || self.file.dataset(&name).is_ok()
    }

    fn listing(&self) -> String {
        let mut v: Vec<String> = self
            .names
            .iter()
            .take(20)
            .map(|n| format!("/{n}"))
            .collect();
        if self.names.len() > 20 {
            v.push(format!("... {} more", self.names.len() - 20));
        }
        if v.is_empty() {
            "none".into()
        } else {
            v.join(", ")
        }
    }

    fn first(&self, candidates: &[String]) -> Option<String> {
        candidates.iter().find(|c| self.exists(c)).cloned()
    }

    fn images(&self, leaf: &str) -> Vec<String> {
        (1..)
            .map(|n| format!("entry_1/image_{n}/{leaf}"))
            .take_while(|p| self.exists(p))
            .collect()
    }

    /// The dataset paths that hold `key` (several for a stack of phasing runs), empty when
    /// absent.
    pub fn locate(&self, key: &str) -> Vec<String> {
        let sibling = |leaf: &str| -> Option<String> {
            let d = self.dataset.as_ref()?;
            let dir = d.rsplit_once('/').map(|(a, _)| a).unwrap_or("");
            Some(if dir.is_empty() {
                leaf.to_string()
            } else {
                format!("{dir}/{leaf}")
            })
        };
        let one = |c: Vec<String>| self.first(&c).into_iter().collect::<Vec<_>>();
        if key.starts_with('/') {
            return one(vec![norm(key)]);
        }
        match key {
            "intensity" | "data" | "I" => match &self.dataset {
                Some(d) => vec![d.clone()],
                None => one(vec![
                    DETECTOR_DATA.into(),
                    DATA_LINK.into(),
                    format!("{EXTRA_GROUP}/intensity"),
                    "data".into(),
                    "intensity".into(),
                ]),
            },
            "mask" => match sibling("mask") {
                Some(s) => one(vec![s]),
                None => one(vec![
                    DETECTOR_MASK.into(),
                    "entry_1/data_1/mask".into(),
                    "mask".into(),
                ]),
            },
            "object" | "support" => {
                let v = self.images(if key == "object" { "data" } else { "mask" });
                if v.is_empty() {
                    one(vec![format!("{EXTRA_GROUP}/{key}"), key.into()])
                } else {
                    v
                }
            }
            "llk" | "free_llk" | "run" => {
                let v: Vec<String> = self
                    .images("data")
                    .iter()
                    .enumerate()
                    .map(|(i, _)| format!("entry_1/image_{}/process_1/results/{key}", i + 1))
                    .collect();
                if !v.is_empty() && v.iter().all(|p| self.exists(p)) {
                    v
                } else {
                    one(vec![format!("{EXTRA_GROUP}/{key}"), key.into()])
                }
            }
            _ => one(vec![format!("{EXTRA_GROUP}/{key}"), key.into()]),
        }
    }

    /// Whether `key` is present.
    pub fn has(&self, key: &str) -> bool {
        !self.locate(key).is_empty()
    }

    /// The keys present among the known ones, plus every dataset of the extra group.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = ["intensity", "mask", "object", "support", "llk", "free_llk"]
            .iter()
            .filter(|k| self.has(k))
            .map(|k| k.to_string())
            .collect();
        for n in &self.names {
            if let Some(k) = n.strip_prefix(&format!("{EXTRA_GROUP}/")) {
                if !keys.iter().any(|x| x == k) {
                    keys.push(k.to_string());
                }
            }
        }
        keys
    }

    /// Reads array `key` (see the module doc for the locations); a stack of phasing runs comes
    /// back with the runs as the first axis, and a `mask` as 0/1 bytes.
    pub fn read(&self, key: &str) -> Result<NpyArray> {
        let paths = self.locate(key);
        if paths.is_empty() {
            return Err(Error::data(
                &self.path,
                format!(
                    "no `{key}` array (keys: {}; datasets: {}); name a dataset as FILE:/path/to/data",
                    self.keys().join(", "),
                    self.listing()
                ),
            ));
        }
        let stacked = paths.len() > 1 || paths[0].starts_with("entry_1/image_");
        let mut parts = Vec::with_capacity(paths.len());
        for p in &paths {
            parts.push(self.read_dataset(p)?);
        }
        let mut a = if stacked {
            stack(&self.path, key, parts)?
        } else {
            parts.remove(0)
        };
        if key == "mask" {
            a = binary_mask(&self.path, key, a)?;
        }
        Ok(a)
    }

    /// Reads the dataset at `name` with its stored type (integers, floats, float16, complex
    /// compounds, enumerations such as h5py's bool).
    pub fn read_dataset(&self, name: &str) -> Result<NpyArray> {
        let path = self.path.clone();
        let bad = |m: String| Error::data(&path, format!("dataset `/{name}`: {m}"));
        guarded(&self.path, &format!("dataset `/{name}`"), || {
            let ds = self.file.dataset(name).map_err(|e| bad(e.to_string()))?;
            let shape = ds.shape();
            let dt = ds.datatype().map_err(|e| bad(e.to_string()))?;
            let item = dt.element_size() as u64;
            let n = shape
                .iter()
                .try_fold(1u64, |a, &s| a.checked_mul(s as u64))
                .ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
            check_allocation(
                &self.path,
                &format!("dataset `/{name}` of shape {shape:?}"),
                n.saturating_mul(item).saturating_mul(2),
            )?;
            let data = read_typed(&ds, &dt).map_err(&bad)?;
            let a = NpyArray { shape, data };
            let got = npy_len(&a.data);
            if got as u64 != n {
                return Err(bad(format!("holds {got} values for {n} elements")));
            }
            Ok(a)
        })
    }
}

fn npy_len(d: &NpyData) -> usize {
    match d {
        NpyData::F16(v) => v.len(),
        NpyData::F32(v) => v.len(),
        NpyData::F64(v) => v.len(),
        NpyData::U8(v) | NpyData::Bool(v) => v.len(),
        NpyData::U16(v) => v.len(),
        NpyData::U32(v) => v.len(),
        NpyData::U64(v) => v.len(),
        NpyData::I8(v) => v.len(),
        NpyData::I16(v) => v.len(),
        NpyData::I32(v) => v.len(),
        NpyData::I64(v) => v.len(),
        NpyData::C64(v) => v.len(),
        NpyData::C128(v) => v.len(),
    }
}

fn read_typed(
    ds: &rust_hdf5::H5Dataset,
    dt: &DatatypeMessage,
) -> std::result::Result<NpyData, String> {
    let e = |e: rust_hdf5::Hdf5Error| e.to_string();
    Ok(match dt {
        DatatypeMessage::FloatingPoint { size: 2, .. } => {
            NpyData::F32(ds.read_numeric_as::<f32>().map_err(e)?)
        }
        DatatypeMessage::FloatingPoint { size: 4, .. } => {
            NpyData::F32(ds.read_numeric_as::<f32>().map_err(e)?)
        }
        DatatypeMessage::FloatingPoint { size: 8, .. } => {
            NpyData::F64(ds.read_numeric_as::<f64>().map_err(e)?)
        }
        DatatypeMessage::FixedPoint { size, signed, .. } => match (size, signed) {
            (1, false) => NpyData::U8(ds.read_numeric_as::<u8>().map_err(e)?),
            (1, true) => NpyData::I8(ds.read_numeric_as::<i8>().map_err(e)?),
            (2, false) => NpyData::U16(ds.read_numeric_as::<u16>().map_err(e)?),
            (2, true) => NpyData::I16(ds.read_numeric_as::<i16>().map_err(e)?),
            (4, false) => NpyData::U32(ds.read_numeric_as::<u32>().map_err(e)?),
            (4, true) => NpyData::I32(ds.read_numeric_as::<i32>().map_err(e)?),
            (8, false) => NpyData::U64(ds.read_numeric_as::<u64>().map_err(e)?),
            (8, true) => NpyData::I64(ds.read_numeric_as::<i64>().map_err(e)?),
            _ => return Err(format!("unsupported {size}-byte integer type")),
        },
        DatatypeMessage::BitField { size: 1, .. } => NpyData::U8(ds.read_raw_bytes().map_err(e)?),
        DatatypeMessage::Enum { base, .. } if base.element_size() == 1 => {
            // h5py's bool (an int8 enumeration FALSE/TRUE) and other byte enumerations.
            NpyData::U8(ds.read_raw_bytes().map_err(e)?)
        }
        DatatypeMessage::Compound { size, members } => {
            let (re, im) = complex_members(members).ok_or_else(|| {
                let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
                format!("compound type with fields {names:?} is not a complex number (two float fields)")
            })?;
            let raw = ds.read_raw_bytes().map_err(e)?;
            decode_complex(&raw, *size as usize, re, im)?
        }
        other => return Err(format!("unsupported datatype {}", type_name(other))),
    })
}

fn type_name(dt: &DatatypeMessage) -> &'static str {
    match dt {
        DatatypeMessage::FixedPoint { .. } => "integer",
        DatatypeMessage::FloatingPoint { .. } => "float",
        DatatypeMessage::BitField { .. } => "bit field",
        DatatypeMessage::Opaque { .. } => "opaque",
        DatatypeMessage::FixedString { .. } | DatatypeMessage::VarLenString { .. } => "string",
        DatatypeMessage::Compound { .. } => "compound",
        DatatypeMessage::Enum { .. } => "enumeration",
        DatatypeMessage::VarLenSequence { .. } => "variable-length sequence",
        DatatypeMessage::Array { .. } => "array",
        DatatypeMessage::Reference { .. } => "reference",
    }
}

/// A float component of a complex compound: offset, width (4 or 8) and byte order.
#[derive(Clone, Copy)]
struct Component {
    offset: usize,
    width: usize,
    big: bool,
}

fn complex_members(
    members: &[rust_hdf5::format::messages::datatype::CompoundMember],
) -> Option<(Component, Component)> {
    if members.len() != 2 {
        return None;
    }
    let comp = |m: &rust_hdf5::format::messages::datatype::CompoundMember| match &m.datatype {
        DatatypeMessage::FloatingPoint {
            size, byte_order, ..
        } if *size == 4 || *size == 8 => Some(Component {
            offset: m.offset as usize,
            width: *size as usize,
            big: *byte_order == ByteOrder::BigEndian,
        }),
        _ => None,
    };
    let (a, b) = (comp(&members[0])?, comp(&members[1])?);
    (a.width == b.width).then_some((a, b))
}

fn decode_complex(
    raw: &[u8],
    size: usize,
    re: Component,
    im: Component,
) -> std::result::Result<NpyData, String> {
    if size == 0
        || !raw.len().is_multiple_of(size)
        || re.offset + re.width > size
        || im.offset + im.width > size
    {
        return Err(format!(
            "complex compound of {size} bytes does not fit its data"
        ));
    }
    let get = |rec: &[u8], c: Component| -> f64 {
        let b = &rec[c.offset..c.offset + c.width];
        match (c.width, c.big) {
            (4, false) => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            (4, true) => f32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f64,
            (_, big) => {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                if big {
                    f64::from_be_bytes(a)
                } else {
                    f64::from_le_bytes(a)
                }
            }
        }
    };
    let recs = raw.chunks_exact(size);
    Ok(if re.width == 4 {
        NpyData::C64(
            recs.map(|r| Complex32::new(get(r, re) as f32, get(r, im) as f32))
                .collect(),
        )
    } else {
        NpyData::C128(
            recs.map(|r| Complex64::new(get(r, re), get(r, im)))
                .collect(),
        )
    })
}

/// Stacks same-shaped arrays of one type along a new first axis.
fn stack(path: &Path, key: &str, parts: Vec<NpyArray>) -> Result<NpyArray> {
    let shape0 = parts[0].shape.clone();
    let mut shape = vec![parts.len()];
    shape.extend(&shape0);
    macro_rules! cat {
        ($($v:ident),*) => {{
            let mut it = parts.into_iter();
            match it.next().map(|a| a.data) {
                $(Some(NpyData::$v(mut acc)) => {
                    for a in it {
                        match a.data {
                            NpyData::$v(v) if a.shape == shape0 => acc.extend(v),
                            _ => return Err(Error::data(path, format!(
                                "key `{key}`: the runs differ in shape or type (first {shape0:?}, then {:?})", a.shape))),
                        }
                    }
                    NpyData::$v(acc)
                })*
                _ => return Err(Error::data(path, format!("key `{key}`: nothing to stack"))),
            }
        }};
    }
    let data = cat!(F16, F32, F64, U8, Bool, U16, U32, U64, I8, I16, I32, I64, C64, C128);
    Ok(NpyArray { shape, data })
}

/// A mask as 0/1 bytes (any non-zero value is masked); complex or non-finite values are errors.
fn binary_mask(path: &Path, key: &str, a: NpyArray) -> Result<NpyArray> {
    let shape = a.shape.clone();
    let m = a
        .into_f32()
        .map_err(|m| Error::data(path, format!("key `{key}`: {m}")))?;
    if let Some(v) = m.iter().find(|v| !v.is_finite()) {
        return Err(Error::data(
            path,
            format!("key `{key}`: non-finite mask value {v}"),
        ));
    }
    Ok(NpyArray {
        shape,
        data: NpyData::U8(m.iter().map(|&v| u8::from(v != 0.0)).collect()),
    })
}

/// Element data staged for writing.
#[derive(Debug, Clone)]
pub enum Column {
    /// float32.
    F32(Vec<f32>),
    /// float64.
    F64(Vec<f64>),
    /// uint8.
    U8(Vec<u8>),
    /// int32.
    I32(Vec<i32>),
    /// int64.
    I64(Vec<i64>),
    /// uint64.
    U64(Vec<u64>),
    /// complex64 (h5py's compound `{r, i}` of float32).
    C64(Vec<Complex32>),
    /// A string (a scalar dataset).
    Text(String),
}

/// Converts an array of any `.npy` element type to a [`Column`] (float16 widened to f32).
pub fn column<T: NpyElement>(a: &ArrayD<T>) -> Result<Column> {
    let mut bytes = Vec::with_capacity(a.len() * T::SIZE);
    for &v in a.iter() {
        v.put(&mut bytes);
    }
    let f4 = |b: &[u8]| f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let take8 = |b: &[u8]| {
        let mut x = [0u8; 8];
        x.copy_from_slice(b);
        x
    };
    Ok(match T::DESCR {
        "<f4" => Column::F32(bytes.chunks_exact(4).map(f4).collect()),
        "<f2" => Column::F32(
            bytes
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        ),
        "<f8" => Column::F64(
            bytes
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(take8(b)))
                .collect(),
        ),
        "|u1" => Column::U8(bytes),
        "<i4" => Column::I32(
            bytes
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ),
        "<i8" => Column::I64(
            bytes
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(take8(b)))
                .collect(),
        ),
        "<u8" => Column::U64(
            bytes
                .chunks_exact(8)
                .map(|b| u64::from_le_bytes(take8(b)))
                .collect(),
        ),
        "<c8" => Column::C64(
            bytes
                .chunks_exact(8)
                .map(|b| Complex32::new(f4(&b[..4]), f4(&b[4..])))
                .collect(),
        ),
        d => {
            return Err(Error::arg(
                "cxi",
                "dtype",
                format!("no HDF5 writer for dtype {d}"),
            ))
        }
    })
}

/// A CXI file assembled in memory: datasets by path (with their shapes), group attributes;
/// [`CxiWriter::finish`] writes it atomically.
pub struct CxiWriter {
    path: PathBuf,
    datasets: BTreeMap<String, (Vec<usize>, Column)>,
    links: Vec<(String, String)>,
    classes: BTreeMap<String, &'static str>,
}

impl CxiWriter {
    /// Starts a CXI file at `path` with `/cxi_version` and `/entry_1` (NXentry).
    pub fn create(path: &Path) -> Result<CxiWriter> {
        let (file, dataset) = split_spec(path).unwrap_or_else(|| (path.to_path_buf(), None));
        if let Some(d) = dataset {
            return Err(Error::arg(
                "cxi",
                "out",
                format!(
                    "{}: an output is a whole file (give {} without `:{d}`)",
                    path.display(),
                    file.display()
                ),
            ));
        }
        let mut w = CxiWriter {
            path: file,
            datasets: BTreeMap::new(),
            links: vec![],
            classes: BTreeMap::new(),
        };
        w.put("cxi_version", vec![], Column::I64(vec![CXI_VERSION]))?;
        w.put(
            "entry_1/program_name",
            vec![],
            Column::Text(format!("bragg {}", env!("CARGO_PKG_VERSION"))),
        )?;
        w.class("entry_1", "NXentry");
        Ok(w)
    }

    /// Sets the `NX_class` attribute of group `group`.
    pub fn class(&mut self, group: &str, class: &'static str) {
        self.classes.insert(norm(group), class);
    }

    /// Adds the dataset `name` (a path below the root) of `shape`.
    pub fn put(&mut self, name: &str, shape: Vec<usize>, data: Column) -> Result<()> {
        let n: usize = shape.iter().product();
        let len = match &data {
            Column::F32(v) => v.len(),
            Column::F64(v) => v.len(),
            Column::U8(v) => v.len(),
            Column::I32(v) => v.len(),
            Column::I64(v) => v.len(),
            Column::U64(v) => v.len(),
            Column::C64(v) => v.len(),
            Column::Text(_) => 1,
        };
        if len != n {
            return Err(Error::shape(
                "cxi",
                format!("dataset `{name}`: {len} values for shape {shape:?}"),
            ));
        }
        self.datasets.insert(norm(name), (shape, data));
        Ok(())
    }

    /// Adds array `key` at its CXI location (see the module doc): `intensity` as the detector
    /// data (with the `/entry_1/data_1/data` link), `mask` as the detector mask, anything else
    /// in `/entry_1/bragg_1`.
    pub fn add<T: NpyElement>(&mut self, key: &str, a: &ArrayD<T>) -> Result<()> {
        let col = column(a)?;
        let shape = a.shape().to_vec();
        match key {
            "intensity" => {
                self.detector();
                self.put(DETECTOR_DATA, shape, col)?;
                self.links
                    .push((DATA_LINK.into(), format!("/{DETECTOR_DATA}")));
                self.class("entry_1/data_1", "NXdata");
                Ok(())
            }
            "mask" => {
                self.detector();
                self.put(DETECTOR_MASK, shape, col)
            }
            _ => {
                self.class(EXTRA_GROUP, "NXcollection");
                self.put(&format!("{EXTRA_GROUP}/{key}"), shape, col)
            }
        }
    }

    fn detector(&mut self) {
        self.class("entry_1/instrument_1", "NXinstrument");
        self.class("entry_1/instrument_1/detector_1", "NXdetector");
    }

    /// Writes the file under a temporary name and renames it into place.
    pub fn finish(self) -> Result<()> {
        let staged = AtomicFile::create(&self.path)?;
        let tmp = staged.temp_path().to_path_buf();
        let bad = |what: &str, e: rust_hdf5::Hdf5Error| {
            Error::data(&tmp, format!("writing HDF5 ({what}): {e}"))
        };
        let file = H5File::options()
            .best_effort_locking()
            .create(&tmp)
            .map_err(|e| bad("create", e))?;
        let mut made: std::collections::BTreeSet<String> = Default::default();
        let mut group = |name: &str| -> Result<H5Group> {
            let mut cur = file.root_group();
            let mut so_far = String::new();
            for part in name.split('/').filter(|p| !p.is_empty()) {
                so_far = if so_far.is_empty() {
                    part.to_string()
                } else {
                    format!("{so_far}/{part}")
                };
                cur = if made.contains(&so_far) {
                    cur.group(part)
                } else {
                    made.insert(so_far.clone());
                    cur.create_group(part)
                }
                .map_err(|e| bad(&so_far, e))?;
            }
            Ok(cur)
        };
        for (name, class) in &self.classes {
            group(name)?
                .set_attr_string("NX_class", class)
                .map_err(|e| bad(name, e))?;
        }
        for (name, (shape, col)) in &self.datasets {
            let (dir, leaf) = name.rsplit_once('/').unwrap_or(("", name));
            let g = group(dir)?;
            let e = |e| bad(name, e);
            macro_rules! put {
                ($t:ty, $v:expr) => {{
                    let b = g.new_dataset::<$t>();
                    let b = if shape.is_empty() {
                        b.scalar()
                    } else {
                        b.shape(shape)
                    };
                    b.create(leaf).map_err(e)?.write_raw($v).map_err(e)?;
                }};
            }
            match col {
                Column::F32(v) => put!(f32, v),
                Column::F64(v) => put!(f64, v),
                Column::U8(v) => put!(u8, v),
                Column::I32(v) => put!(i32, v),
                Column::I64(v) => put!(i64, v),
                Column::U64(v) => put!(u64, v),
                Column::C64(v) => {
                    let v: Vec<rust_hdf5::Complex32> = v
                        .iter()
                        .map(|c| rust_hdf5::Complex32 { re: c.re, im: c.im })
                        .collect();
                    put!(rust_hdf5::Complex32, &v)
                }
                Column::Text(s) => {
                    let ds = g
                        .new_dataset::<u8>()
                        .datatype(DatatypeMessage::fixed_string(s.len().max(1) as u32))
                        .scalar()
                        .create(leaf)
                        .map_err(e)?;
                    let mut bytes = s.as_bytes().to_vec();
                    if bytes.is_empty() {
                        bytes.push(0);
                    }
                    ds.write_raw_bytes(&bytes).map_err(e)?;
                }
            }
        }
        for (link, target) in &self.links {
            let (dir, leaf) = link.rsplit_once('/').unwrap_or(("", link));
            group(dir)?
                .create_soft_link(leaf, target)
                .map_err(|e| bad(link, e))?;
        }
        file.close().map_err(|e| bad("close", e))?;
        staged.commit()
    }
}

/// Writes phasing runs (best first) in the PyNX layout: run `i` in `/entry_1/image_{i+1}`
/// (`data` the complex object, `mask` the support, `process_1/configuration` the parameters,
/// `process_1/results` its LLK).
pub fn write_phase_result(
    path: &Path,
    runs: &[crate::phasing::Run],
    options: &crate::phasing::Options,
    input: &str,
) -> Result<()> {
    let mut w = CxiWriter::create(path)?;
    for (i, r) in runs.iter().enumerate() {
        let img = format!("entry_1/image_{}", i + 1);
        w.class(&img, "NXdata");
        w.put(
            &format!("{img}/data"),
            r.object.shape().to_vec(),
            Column::C64(r.object.iter().copied().collect()),
        )?;
        w.put(
            &format!("{img}/mask"),
            r.support.shape().to_vec(),
            Column::U8(r.support.iter().copied().collect()),
        )?;
        w.put(
            &format!("{img}/data_space"),
            vec![],
            Column::Text("real".into()),
        )?;
        w.put(
            &format!("{img}/data_type"),
            vec![],
            Column::Text("electron density".into()),
        )?;
        let proc = format!("{img}/process_1");
        w.class(&proc, "NXprocess");
        w.put(
            &format!("{proc}/program"),
            vec![],
            Column::Text("bragg phase".into()),
        )?;
        let conf = format!("{proc}/configuration");
        w.class(&conf, "NXcollection");
        let sw = &options.shrink_wrap;
        let text = [
            ("algorithm", options.chain.to_string()),
            ("input", input.to_string()),
            ("support_method", format!("{:?}", sw.method).to_lowercase()),
        ];
        for (k, v) in text {
            w.put(&format!("{conf}/{k}"), vec![], Column::Text(v))?;
        }
        let nums = [
            ("beta", options.beta as f64),
            ("support_threshold", sw.threshold as f64),
            ("support_period", sw.period as f64),
            ("support_sigma_start", sw.sigma_start as f64),
            ("support_sigma_end", sw.sigma_end as f64),
            (
                "autocorrelation_threshold",
                // the value used (0 asks for the automatic choice)
                options.autocorrelation_threshold_for(runs.first().map_or(3, |r| r.object.ndim()))
                    as f64,
            ),
            ("confidence_interval", options.confidence as f64),
            ("free_fraction", options.free_fraction as f64),
        ];
        for (k, v) in nums {
            w.put(&format!("{conf}/{k}"), vec![], Column::F64(vec![v]))?;
        }
        let ints = [
            ("nb_run", options.runs as i64),
            ("nb_run_keep", options.keep as i64),
            ("seed", options.seed as i64),
        ];
        for (k, v) in ints {
            w.put(&format!("{conf}/{k}"), vec![], Column::I64(vec![v]))?;
        }
        let res = format!("{proc}/results");
        w.class(&res, "NXcollection");
        w.put(&format!("{res}/llk"), vec![], Column::F64(vec![r.llk]))?;
        w.put(
            &format!("{res}/free_llk"),
            vec![],
            Column::F64(vec![r.free_llk]),
        )?;
        w.put(
            &format!("{res}/run"),
            vec![],
            Column::I64(vec![r.index as i64]),
        )?;
        w.put(
            &format!("{res}/nb_point_support"),
            vec![],
            Column::I64(vec![r.support_size as i64]),
        )?;
    }
    w.finish()
}

/// Simulates the dataset of `cfg` in memory and writes it as CXI: the noisy gapped
/// `intensity` as the detector data, the gap `mask` as the detector mask, every other array
/// under `/entry_1/bragg_1` with its `.npz` key. One pattern (`count` 1) is stored without the
/// batch axis (a 3-D dataset is one volume, as PyNX expects); more keep the batch first.
pub fn write_simulation(
    cfg: &crate::sim::SimConfig,
    path: &Path,
    progress: &(dyn Fn() + Sync),
) -> Result<()> {
    use super::dataset::SimArray;
    let mut w = CxiWriter::create(path)?;
    let arrays = super::dataset::simulate_arrays(cfg, progress)?;
    let squeeze = cfg.count == 1;
    fn one<T: Clone>(a: ArrayD<T>, squeeze: bool, pattern: bool) -> ArrayD<T> {
        if squeeze && pattern {
            a.index_axis_move(ndarray::Axis(0), 0)
        } else {
            a
        }
    }
    for (key, a) in arrays {
        let pattern = crate::sim::Field::ALL.iter().any(|f| f.key() == key);
        match a {
            SimArray::F32(a) => w.add(key, &one(a, squeeze, pattern))?,
            SimArray::F64(a) => w.add(key, &one(a, squeeze, pattern))?,
            SimArray::U8(a) => w.add(key, &one(a, squeeze, pattern))?,
            SimArray::I32(a) => w.add(key, &one(a, squeeze, pattern))?,
            SimArray::C64(a) => w.add(key, &one(a, squeeze, pattern))?,
        }
    }
    let g = EXTRA_GROUP;
    w.put(
        &format!("{g}/config"),
        vec![],
        Column::Text(toml::to_string(cfg).unwrap_or_default()),
    )?;
    w.finish()
}
