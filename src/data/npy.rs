//! The `.npy` format (versions 1-3) and `.npz` archives, read and written without panics.
//!
//! Reading never trusts the header: the element count is checked against a size limit and
//! data is read incrementally, so a corrupt or truncated file gives an error message, not a
//! huge allocation or a panic.

use crate::{Error, Result};
use half::f16;
use ndarray::{ArrayD, IxDyn, ShapeBuilder};
use num_complex::Complex32;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Largest array accepted when reading (bytes of data).
pub const MAX_BYTES: u64 = 8 << 30;

/// The element data of an `.npy` array.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    /// `<f2`
    F16(Vec<f16>),
    /// `<f4`
    F32(Vec<f32>),
    /// `<f8`
    F64(Vec<f64>),
    /// `|u1`
    U8(Vec<u8>),
    /// `|b1`
    Bool(Vec<u8>),
    /// `<u2`
    U16(Vec<u16>),
    /// `<u4`
    U32(Vec<u32>),
    /// `<i4`
    I32(Vec<i32>),
    /// `<i8`
    I64(Vec<i64>),
    /// `<c8`
    C64(Vec<Complex32>),
}

/// An array read from an `.npy` file, in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// Shape.
    pub shape: Vec<usize>,
    /// Elements, C order.
    pub data: NpyData,
}

/// Element types that can be written to `.npy`.
pub trait NpyElement: Copy {
    /// numpy dtype descriptor (`<f4`, ...).
    const DESCR: &'static str;
    /// Size in bytes.
    const SIZE: usize;
    /// Appends the little-endian bytes of `self`.
    fn put(self, out: &mut Vec<u8>);
}

macro_rules! npy_elem {
    ($t:ty, $d:expr) => {
        impl NpyElement for $t {
            const DESCR: &'static str = $d;
            const SIZE: usize = std::mem::size_of::<$t>();
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    };
}
npy_elem!(f32, "<f4");
npy_elem!(f64, "<f8");
npy_elem!(u8, "|u1");
npy_elem!(u16, "<u2");
npy_elem!(u32, "<u4");
npy_elem!(i32, "<i4");
npy_elem!(i64, "<i8");
npy_elem!(f16, "<f2");

impl NpyElement for Complex32 {
    const DESCR: &'static str = "<c8";
    const SIZE: usize = 8;
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.re.to_le_bytes());
        out.extend_from_slice(&self.im.to_le_bytes());
    }
}

/// The `.npy` header (magic, version 1.0, dict padded to a multiple of 64 bytes).
pub fn npy_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let shape_txt = match shape.len() {
        0 => "()".to_string(),
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_txt}, }}");
    let total = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat((64 - total % 64) % 64));
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// Writes the elements of `data` (any iterator, C order) as little-endian bytes.
pub fn write_elements<T: NpyElement, W: Write>(
    w: &mut W,
    data: impl Iterator<Item = T>,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1 << 16);
    for v in data {
        v.put(&mut buf);
        if buf.len() >= (1 << 16) - 16 {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    w.write_all(&buf)
}

/// Writes a whole `.npy` array to `w`.
pub fn write_npy_to<T: NpyElement, W: Write>(w: &mut W, a: &ArrayD<T>) -> std::io::Result<()> {
    w.write_all(&npy_header(T::DESCR, a.shape()))?;
    write_elements(w, a.iter().copied())
}

fn parse_header(text: &str) -> std::result::Result<(String, bool, Vec<usize>), String> {
    let value_after = |key: &str| -> std::result::Result<&str, String> {
        let k = text
            .find(&format!("'{key}'"))
            .ok_or_else(|| format!("header has no `{key}`"))?;
        let rest = &text[k + key.len() + 2..];
        let colon = rest.find(':').ok_or("malformed header")?;
        Ok(rest[colon + 1..].trim_start())
    };
    let d = value_after("descr")?;
    let quote = d.chars().next().filter(|c| *c == '\'' || *c == '"');
    let descr = match quote {
        Some(q) => {
            let end = d[1..].find(q).ok_or("malformed descr")?;
            d[1..1 + end].to_string()
        }
        None => return Err("structured dtypes are not supported".into()),
    };
    let f = value_after("fortran_order")?;
    let fortran = if f.starts_with("True") {
        true
    } else if f.starts_with("False") {
        false
    } else {
        return Err("malformed fortran_order".into());
    };
    let s = value_after("shape")?;
    if !s.starts_with('(') {
        return Err("malformed shape".into());
    }
    let end = s.find(')').ok_or("malformed shape")?;
    let shape = s[1..end]
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.trim_end_matches('L').parse::<usize>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| format!("malformed shape `{}`", &s[..=end]))?;
    Ok((descr, fortran, shape))
}

fn read_exact_limited<R: Read>(r: &mut R, n: u64) -> std::result::Result<Vec<u8>, String> {
    let mut buf = Vec::with_capacity(n.min(64 << 20) as usize);
    r.take(n)
        .read_to_end(&mut buf)
        .map_err(|e| format!("read error: {e}"))?;
    if (buf.len() as u64) < n {
        return Err(format!(
            "truncated: expected {n} bytes of data, found {}",
            buf.len()
        ));
    }
    Ok(buf)
}

fn le<const K: usize, T>(bytes: &[u8], f: impl Fn([u8; K]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(K)
        .map(|c| {
            let mut a = [0u8; K];
            a.copy_from_slice(c);
            f(a)
        })
        .collect()
}

/// Reads one `.npy` array from `r`. Errors are plain messages (the caller adds file and key).
pub fn read_npy_from<R: Read>(r: &mut R) -> std::result::Result<NpyArray, String> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)
        .map_err(|_| "truncated: not an .npy array (file too short)".to_string())?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err("not an .npy array (bad magic)".into());
    }
    let hlen = match magic[6] {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).map_err(|_| "truncated header")?;
            u16::from_le_bytes(b) as usize
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b).map_err(|_| "truncated header")?;
            u32::from_le_bytes(b) as usize
        }
        v => return Err(format!("unsupported .npy version {v}")),
    };
    if hlen > 1 << 20 {
        return Err(format!("header length {hlen} is implausible"));
    }
    let header = read_exact_limited(r, hlen as u64).map_err(|e| format!("header: {e}"))?;
    let text = String::from_utf8_lossy(&header);
    let (descr, fortran, shape) = parse_header(&text)?;
    let count = shape
        .iter()
        .try_fold(1u64, |acc, &s| acc.checked_mul(s as u64))
        .ok_or("shape overflows")?;
    let item = match descr.as_str() {
        "<f2" => 2,
        "<f4" => 4,
        "<f8" => 8,
        "|u1" | "<u1" | "|b1" => 1,
        "<u2" => 2,
        "<u4" | "<i4" => 4,
        "<i8" | "<c8" => 8,
        other => {
            return Err(format!(
                "unsupported dtype `{other}` (expected little-endian f2/f4/f8/u1/b1/u2/u4/i4/i8/c8)"
            ))
        }
    };
    let nbytes = count
        .checked_mul(item)
        .filter(|&b| b <= MAX_BYTES)
        .ok_or_else(|| format!("array {shape:?} exceeds the {} GiB limit", MAX_BYTES >> 30))?;
    let bytes = read_exact_limited(r, nbytes)?;
    let mut data = match descr.as_str() {
        "<f2" => NpyData::F16(le(&bytes, f16::from_le_bytes)),
        "<f4" => NpyData::F32(le(&bytes, f32::from_le_bytes)),
        "<f8" => NpyData::F64(le(&bytes, f64::from_le_bytes)),
        "|b1" => NpyData::Bool(bytes),
        "<u2" => NpyData::U16(le(&bytes, u16::from_le_bytes)),
        "<u4" => NpyData::U32(le(&bytes, u32::from_le_bytes)),
        "<i4" => NpyData::I32(le(&bytes, i32::from_le_bytes)),
        "<i8" => NpyData::I64(le(&bytes, i64::from_le_bytes)),
        "<c8" => NpyData::C64(le(&bytes, |b: [u8; 8]| {
            Complex32::new(
                f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                f32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            )
        })),
        _ => NpyData::U8(bytes),
    };
    if fortran && shape.len() > 1 {
        data = to_c_order(data, &shape);
    }
    Ok(NpyArray { shape, data })
}

fn reorder<T: Clone>(v: Vec<T>, shape: &[usize]) -> Vec<T> {
    match ArrayD::from_shape_vec(IxDyn(shape).f(), v) {
        Ok(a) => a.as_standard_layout().iter().cloned().collect(),
        Err(_) => Vec::new(),
    }
}

fn to_c_order(d: NpyData, shape: &[usize]) -> NpyData {
    match d {
        NpyData::F16(v) => NpyData::F16(reorder(v, shape)),
        NpyData::F32(v) => NpyData::F32(reorder(v, shape)),
        NpyData::F64(v) => NpyData::F64(reorder(v, shape)),
        NpyData::U8(v) => NpyData::U8(reorder(v, shape)),
        NpyData::Bool(v) => NpyData::Bool(reorder(v, shape)),
        NpyData::U16(v) => NpyData::U16(reorder(v, shape)),
        NpyData::U32(v) => NpyData::U32(reorder(v, shape)),
        NpyData::I32(v) => NpyData::I32(reorder(v, shape)),
        NpyData::I64(v) => NpyData::I64(reorder(v, shape)),
        NpyData::C64(v) => NpyData::C64(reorder(v, shape)),
    }
}

impl NpyArray {
    /// numpy name of the dtype.
    pub fn dtype(&self) -> &'static str {
        match &self.data {
            NpyData::F16(_) => "float16",
            NpyData::F32(_) => "float32",
            NpyData::F64(_) => "float64",
            NpyData::U8(_) => "uint8",
            NpyData::Bool(_) => "bool",
            NpyData::U16(_) => "uint16",
            NpyData::U32(_) => "uint32",
            NpyData::I32(_) => "int32",
            NpyData::I64(_) => "int64",
            NpyData::C64(_) => "complex64",
        }
    }

    /// Converts a real array to f32 (complex arrays are an error message).
    pub fn to_f32(&self) -> std::result::Result<ArrayD<f32>, String> {
        let v: Vec<f32> = match &self.data {
            NpyData::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            NpyData::F32(v) => v.clone(),
            NpyData::F64(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::U8(v) | NpyData::Bool(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::U16(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::U32(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::I32(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::I64(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::C64(_) => return Err("complex array where a real one is expected".into()),
        };
        ArrayD::from_shape_vec(IxDyn(&self.shape), v).map_err(|e| e.to_string())
    }

    /// Converts a complex64 array.
    pub fn to_c64(&self) -> std::result::Result<ArrayD<Complex32>, String> {
        match &self.data {
            NpyData::C64(v) => {
                ArrayD::from_shape_vec(IxDyn(&self.shape), v.clone()).map_err(|e| e.to_string())
            }
            _ => Err(format!("expected complex64, found {}", self.dtype())),
        }
    }
}

/// Reads a `.npy` file.
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    read_npy_from(&mut BufReader::new(f)).map_err(|m| Error::data(path, m))
}

/// An open `.npz` archive.
pub struct NpzFile {
    path: PathBuf,
    zip: zip::ZipArchive<BufReader<File>>,
}

impl NpzFile {
    /// Opens an `.npz` archive.
    pub fn open(path: &Path) -> Result<Self> {
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        let zip = zip::ZipArchive::new(BufReader::new(f))
            .map_err(|e| Error::data(path, format!("not a valid .npz archive: {e}")))?;
        Ok(NpzFile {
            path: path.to_path_buf(),
            zip,
        })
    }

    /// Array names (member names without `.npy`).
    pub fn keys(&self) -> Vec<String> {
        self.zip
            .file_names()
            .map(|n| n.strip_suffix(".npy").unwrap_or(n).to_string())
            .collect()
    }

    /// Whether `key` is present.
    pub fn has(&self, key: &str) -> bool {
        self.keys().iter().any(|k| k == key)
    }

    /// Reads array `key`.
    pub fn read(&mut self, key: &str) -> Result<NpyArray> {
        let keys = self.keys();
        let mut member = self.zip.by_name(&format!("{key}.npy")).map_err(|_| {
            Error::data(
                &self.path,
                format!("no array `{key}` (has: {})", keys.join(", ")),
            )
        })?;
        read_npy_from(&mut member).map_err(|m| Error::data(&self.path, format!("key `{key}`: {m}")))
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Writes `.npz` archives member by member (stored, no compression: what `numpy.savez` does),
/// to `<path>.tmp`, renamed to `path` by [`NpzWriter::finish`]. Dropping an unfinished writer
/// deletes the temporary file.
pub struct NpzWriter {
    path: PathBuf,
    tmp: PathBuf,
    zip: Option<zip::ZipWriter<BufWriter<File>>>,
}

impl NpzWriter {
    /// Starts a new archive.
    pub fn create(path: &Path) -> Result<Self> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(NpzWriter {
            path: path.to_path_buf(),
            tmp,
            zip: Some(zip::ZipWriter::new(BufWriter::new(f))),
        })
    }

    fn zip_err(&self, e: impl std::fmt::Display) -> Error {
        Error::data(&self.tmp, format!("writing npz: {e}"))
    }

    /// Starts member `key` with the header of an array of `descr` and `shape`; the caller
    /// writes the data through [`NpzWriter::writer`].
    pub fn start(&mut self, key: &str, descr: &str, shape: &[usize], item: usize) -> Result<()> {
        let bytes = shape.iter().product::<usize>() as u64 * item as u64;
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(bytes >= (1u64 << 32) - (1 << 20));
        let res = {
            let zip = self
                .zip
                .as_mut()
                .ok_or_else(|| Error::Msg("npz finished".into()))?;
            zip.start_file(format!("{key}.npy"), opts)
                .map_err(|e| e.to_string())
                .and_then(|_| {
                    zip.write_all(&npy_header(descr, shape))
                        .map_err(|e| e.to_string())
                })
        };
        res.map_err(|e| self.zip_err(e))
    }

    /// The writer of the current member.
    pub fn writer(&mut self) -> &mut impl Write {
        self.zip.as_mut().expect("NpzWriter used after finish")
    }

    /// Adds a whole array.
    pub fn add<T: NpyElement>(&mut self, key: &str, a: &ArrayD<T>) -> Result<()> {
        self.start(key, T::DESCR, a.shape(), T::SIZE)?;
        let r = write_elements(self.writer(), a.iter().copied());
        r.map_err(|e| Error::io(self.tmp.clone(), e))
    }

    /// Finishes the archive and renames it into place.
    pub fn finish(mut self) -> Result<()> {
        let zip = self
            .zip
            .take()
            .ok_or_else(|| Error::Msg("npz finished".into()))?;
        let w = zip.finish().map_err(|e| self.zip_err(e))?;
        let f = w
            .into_inner()
            .map_err(|e| Error::io(self.tmp.clone(), e.into_error()))?;
        f.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))
    }
}

impl Drop for NpzWriter {
    fn drop(&mut self) {
        if self.zip.is_some() {
            self.zip = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes one array as `.npy` atomically (temporary file then rename).
pub fn write_npy<T: NpyElement>(path: &Path, a: &ArrayD<T>) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let res = (|| {
        let mut w = BufWriter::new(File::create(&tmp)?);
        write_npy_to(&mut w, a)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
