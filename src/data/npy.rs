//! The `.npy` format (versions 1-3) and `.npz` archives, read and written without panics.
//!
//! Reading never trusts the header: before anything is allocated, the size an array claims
//! is checked against the bytes the file (or the zip member) really holds, against
//! [`super::io::max_array_bytes`] and against the available memory. Only regular files are
//! opened. In `.npz` archives every member's CRC-32 is verified, a member name present twice
//! is an error (numpy and zip readers disagree on which copy wins), and deflated members may
//! not claim more than deflate can expand to. `float16` arrays are widened to f32 with an
//! error when a value is infinite (float16 overflows above 65,504). Writes are atomic
//! (unique temporary name, fsync, rename, folder fsync).

use super::io::{create_temp, human_bytes, max_array_bytes, open_regular};
use crate::{Error, Result};
use half::f16;
use ndarray::{ArrayD, IxDyn, ShapeBuilder};
use num_complex::{Complex32, Complex64};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Default largest array accepted when reading (bytes of data); see
/// [`super::io::max_array_bytes`] for the limit in force.
pub const MAX_BYTES: u64 = super::io::DEFAULT_MAX_ARRAY_BYTES;

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
    /// `<u8`
    U64(Vec<u64>),
    /// `|i1`
    I8(Vec<i8>),
    /// `<i2`
    I16(Vec<i16>),
    /// `<i4`
    I32(Vec<i32>),
    /// `<i8`
    I64(Vec<i64>),
    /// `<c8`
    C64(Vec<Complex32>),
    /// `<c16`
    C128(Vec<Complex64>),
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
npy_elem!(u64, "<u8");
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
    if shape.len() > MAX_NDIM {
        return Err(format!(
            "{} axes, more than the {MAX_NDIM} accepted",
            shape.len()
        ));
    }
    Ok((descr, fortran, shape))
}

/// Most axes accepted in an array header.
pub const MAX_NDIM: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Float,
    Int,
    Uint,
    Bool,
    Complex,
}

/// A numeric dtype descriptor: kind, item size and byte order.
#[derive(Debug, Clone, Copy)]
struct Dtype {
    kind: Kind,
    size: usize,
    big: bool,
}

fn parse_descr(d: &str) -> std::result::Result<Dtype, String> {
    let unsupported = || {
        format!("unsupported dtype `{d}` (expected f2/f4/f8, i1/i2/i4/i8, u1/u2/u4/u8, b1, c8/c16)")
    };
    let (order, rest) = match d.as_bytes().first() {
        Some(b'<') | Some(b'>') | Some(b'|') | Some(b'=') => (d.as_bytes()[0], &d[1..]),
        _ => (b'=', d),
    };
    let mut chars = rest.chars();
    let kind = match chars.next() {
        Some('f') => Kind::Float,
        Some('i') => Kind::Int,
        Some('u') => Kind::Uint,
        Some('b') => Kind::Bool,
        Some('c') => Kind::Complex,
        _ => return Err(unsupported()),
    };
    let size: usize = chars.as_str().parse().map_err(|_| unsupported())?;
    let ok = match kind {
        Kind::Float => matches!(size, 2 | 4 | 8),
        Kind::Int | Kind::Uint => matches!(size, 1 | 2 | 4 | 8),
        Kind::Bool => size == 1,
        Kind::Complex => matches!(size, 8 | 16),
    };
    if !ok {
        return Err(unsupported());
    }
    let big = match order {
        b'>' => true,
        b'<' => false,
        _ => cfg!(target_endian = "big"),
    };
    Ok(Dtype { kind, size, big })
}

/// Grows a buffer chunk by chunk so that a source shorter than it claims costs only what it
/// really holds.
const READ_CHUNK: usize = 64 << 20;

fn read_exact_limited<R: Read>(
    r: &mut R,
    n: u64,
    exact: bool,
) -> std::result::Result<Vec<u8>, String> {
    let n_usize = usize::try_from(n).map_err(|_| format!("{n} bytes do not fit in memory"))?;
    let mut buf: Vec<u8> = Vec::new();
    buf.try_reserve_exact(if exact {
        n_usize
    } else {
        n_usize.min(READ_CHUNK)
    })
    .map_err(|_| format!("cannot allocate {}", human_bytes(n)))?;
    let mut chunk = vec![0u8; (1 << 16).min(n_usize.max(1))];
    while buf.len() < n_usize {
        let want = (n_usize - buf.len()).min(chunk.len());
        let got = match r.read(&mut chunk[..want]) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(&e)),
        };
        if buf.len() + got > buf.capacity() {
            let grow = (n_usize - buf.len()).min(buf.capacity().max(READ_CHUNK));
            buf.try_reserve_exact(grow)
                .map_err(|_| format!("cannot allocate {}", human_bytes(n)))?;
        }
        buf.extend_from_slice(&chunk[..got]);
    }
    if (buf.len() as u64) < n {
        return Err(format!(
            "truncated: expected {n} bytes of data, found {}",
            buf.len()
        ));
    }
    Ok(buf)
}

fn read_error(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::InvalidData && e.to_string().contains("checksum") {
        "CRC-32 checksum mismatch: the archive is corrupt".to_string()
    } else {
        format!("read error: {e}")
    }
}

fn decode<const K: usize, T>(bytes: &[u8], big: bool, f: impl Fn([u8; K]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(K)
        .map(|c| {
            let mut a = [0u8; K];
            a.copy_from_slice(c);
            if big {
                a.reverse();
            }
            f(a)
        })
        .collect()
}

fn pairs<T: Copy, C>(v: Vec<T>, f: impl Fn(T, T) -> C) -> Vec<C> {
    v.chunks_exact(2).map(|c| f(c[0], c[1])).collect()
}

fn decode_data(dt: Dtype, bytes: Vec<u8>) -> NpyData {
    let b = dt.big;
    match (dt.kind, dt.size) {
        (Kind::Float, 2) => NpyData::F16(decode(&bytes, b, f16::from_le_bytes)),
        (Kind::Float, 4) => NpyData::F32(decode(&bytes, b, f32::from_le_bytes)),
        (Kind::Float, _) => NpyData::F64(decode(&bytes, b, f64::from_le_bytes)),
        (Kind::Bool, _) => NpyData::Bool(bytes),
        (Kind::Uint, 1) => NpyData::U8(bytes),
        (Kind::Uint, 2) => NpyData::U16(decode(&bytes, b, u16::from_le_bytes)),
        (Kind::Uint, 4) => NpyData::U32(decode(&bytes, b, u32::from_le_bytes)),
        (Kind::Uint, _) => NpyData::U64(decode(&bytes, b, u64::from_le_bytes)),
        (Kind::Int, 1) => NpyData::I8(bytes.iter().map(|&v| v as i8).collect()),
        (Kind::Int, 2) => NpyData::I16(decode(&bytes, b, i16::from_le_bytes)),
        (Kind::Int, 4) => NpyData::I32(decode(&bytes, b, i32::from_le_bytes)),
        (Kind::Int, _) => NpyData::I64(decode(&bytes, b, i64::from_le_bytes)),
        (Kind::Complex, 8) => {
            NpyData::C64(pairs(decode(&bytes, b, f32::from_le_bytes), Complex32::new))
        }
        (Kind::Complex, _) => {
            NpyData::C128(pairs(decode(&bytes, b, f64::from_le_bytes), Complex64::new))
        }
    }
}

/// Reads one `.npy` array from `r`. Errors are plain messages (the caller adds file and key).
/// The source size is unknown, so data is read incrementally (a header that claims more than
/// is there costs only what is there).
pub fn read_npy_from<R: Read>(r: &mut R) -> std::result::Result<NpyArray, String> {
    read_npy_limited(r, None, false)
}

/// Reads one `.npy` array from `r`, which holds `available` bytes in all (magic included) when
/// known: a header claiming more data than that is refused before anything is allocated.
/// `exact`: `available` is certain (a regular file), so the data buffer is allocated at once.
pub fn read_npy_limited<R: Read>(
    r: &mut R,
    available: Option<u64>,
    exact: bool,
) -> std::result::Result<NpyArray, String> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            "truncated: not an .npy array (file too short)".to_string()
        } else {
            read_error(&e)
        }
    })?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err("not an .npy array (bad magic)".into());
    }
    let (hlen, prefix) = match magic[6] {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).map_err(|_| "truncated header")?;
            (u16::from_le_bytes(b) as u64, 10u64)
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b).map_err(|_| "truncated header")?;
            (u32::from_le_bytes(b) as u64, 12u64)
        }
        v => return Err(format!("unsupported .npy version {v}")),
    };
    if hlen > 1 << 20 {
        return Err(format!("header length {hlen} is implausible"));
    }
    if let Some(avail) = available {
        if prefix + hlen > avail {
            return Err(format!(
                "truncated header: {hlen} bytes claimed, {} present",
                avail.saturating_sub(prefix)
            ));
        }
    }
    let header = read_exact_limited(r, hlen, true).map_err(|e| format!("header: {e}"))?;
    let text = String::from_utf8_lossy(&header);
    let (descr, fortran, shape) = parse_header(&text)?;
    let dt = parse_descr(&descr)?;
    let count = shape
        .iter()
        .try_fold(1u64, |acc, &s| acc.checked_mul(s as u64))
        .ok_or_else(|| format!("shape {shape:?} overflows"))?;
    let nbytes = count
        .checked_mul(dt.size as u64)
        .ok_or_else(|| format!("shape {shape:?} overflows"))?;
    if let Some(avail) = available {
        let left = avail.saturating_sub(prefix + hlen);
        if nbytes > left {
            return Err(format!(
                "truncated: the header claims {shape:?} `{descr}` ({}) but only {left} bytes of data follow",
                human_bytes(nbytes)
            ));
        }
    }
    if let Some(m) = super::io::allocation_problem(&format!("array {shape:?} `{descr}`"), nbytes) {
        return Err(m);
    }
    // Decoding holds the raw bytes and the typed copy at once.
    let bytes = read_exact_limited(r, nbytes, exact && available.is_some())?;
    let mut data = decode_data(dt, bytes);
    if fortran && shape.len() > 1 {
        data = to_c_order(data, &shape)?;
    }
    Ok(NpyArray { shape, data })
}

fn reorder<T: Clone>(v: Vec<T>, shape: &[usize]) -> std::result::Result<Vec<T>, String> {
    let a = ArrayD::from_shape_vec(IxDyn(shape).f(), v)
        .map_err(|e| format!("Fortran-order data does not match shape {shape:?}: {e}"))?;
    Ok(a.as_standard_layout().iter().cloned().collect())
}

fn to_c_order(d: NpyData, shape: &[usize]) -> std::result::Result<NpyData, String> {
    Ok(match d {
        NpyData::F16(v) => NpyData::F16(reorder(v, shape)?),
        NpyData::F32(v) => NpyData::F32(reorder(v, shape)?),
        NpyData::F64(v) => NpyData::F64(reorder(v, shape)?),
        NpyData::U8(v) => NpyData::U8(reorder(v, shape)?),
        NpyData::Bool(v) => NpyData::Bool(reorder(v, shape)?),
        NpyData::U16(v) => NpyData::U16(reorder(v, shape)?),
        NpyData::U32(v) => NpyData::U32(reorder(v, shape)?),
        NpyData::U64(v) => NpyData::U64(reorder(v, shape)?),
        NpyData::I8(v) => NpyData::I8(reorder(v, shape)?),
        NpyData::I16(v) => NpyData::I16(reorder(v, shape)?),
        NpyData::I32(v) => NpyData::I32(reorder(v, shape)?),
        NpyData::I64(v) => NpyData::I64(reorder(v, shape)?),
        NpyData::C64(v) => NpyData::C64(reorder(v, shape)?),
        NpyData::C128(v) => NpyData::C128(reorder(v, shape)?),
    })
}

fn f16_overflow(v: &[f16]) -> Option<String> {
    v.iter().position(|x| x.is_infinite()).map(|i| {
        format!(
            "float16 value {} at flat index {i}: float16 overflows above 65504 (store the data as float32)",
            v[i]
        )
    })
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
            NpyData::U64(_) => "uint64",
            NpyData::I8(_) => "int8",
            NpyData::I16(_) => "int16",
            NpyData::I32(_) => "int32",
            NpyData::I64(_) => "int64",
            NpyData::C64(_) => "complex64",
            NpyData::C128(_) => "complex128",
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the array has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the dtype is complex.
    pub fn is_complex(&self) -> bool {
        matches!(self.data, NpyData::C64(_) | NpyData::C128(_))
    }

    /// Converts a real array to f32 (complex arrays are an error message, and so is a float16
    /// value that overflowed to infinity).
    pub fn to_f32(&self) -> std::result::Result<ArrayD<f32>, String> {
        self.clone().into_f32()
    }

    /// [`NpyArray::to_f32`] without copying f32 data.
    pub fn into_f32(self) -> std::result::Result<ArrayD<f32>, String> {
        let v: Vec<f32> = match self.data {
            NpyData::F16(v) => {
                if let Some(m) = f16_overflow(&v) {
                    return Err(m);
                }
                v.iter().map(|x| x.to_f32()).collect()
            }
            NpyData::F32(v) => v,
            NpyData::F64(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::U8(v) | NpyData::Bool(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::U16(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::U32(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::U64(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::I8(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::I16(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::I32(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::I64(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::C64(_) | NpyData::C128(_) => {
                return Err(format!(
                    "{} array where a real one is expected",
                    self.dtype()
                ))
            }
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

    /// Converts any numeric array to complex64 (complex128 narrowed, real arrays taken as
    /// real parts).
    pub fn into_complex(self) -> std::result::Result<ArrayD<Complex32>, String> {
        let shape = self.shape.clone();
        let v: Vec<Complex32> = match self.data {
            NpyData::C64(v) => v,
            NpyData::C128(v) => v
                .iter()
                .map(|c| Complex32::new(c.re as f32, c.im as f32))
                .collect(),
            _ => return self.into_f32().map(|a| a.mapv(|v| Complex32::new(v, 0.0))),
        };
        ArrayD::from_shape_vec(IxDyn(&shape), v).map_err(|e| e.to_string())
    }
}

/// Reads a `.npy` file (a regular file; the header is checked against the file size).
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    let (f, len) = open_regular(path)?;
    read_npy_limited(&mut BufReader::new(f), Some(len), true).map_err(|m| Error::data(path, m))
}

/// A reader that counts the bytes it passed on.
struct Counting<'a, R> {
    inner: &'a mut R,
    n: u64,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        Ok(k)
    }
}

/// Largest ratio of uncompressed to compressed size that deflate can produce (1032:1), with
/// slack for headers.
const DEFLATE_MAX_RATIO: u64 = 1100;

/// Reads the number of central-directory entries recorded in the end-of-central-directory
/// record (zip64 aware); `None` when the record cannot be found (the zip reader then reports
/// the problem).
fn central_directory_entries(f: &mut File, len: u64) -> std::io::Result<Option<u64>> {
    let tail_len = len.min(22 + 65_535);
    let base = len - tail_len;
    f.seek(SeekFrom::Start(base))?;
    let mut tail = vec![0u8; tail_len as usize];
    f.read_exact(&mut tail)?;
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let Some(i) = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| tail[i..i + 4] == [0x50, 0x4b, 0x05, 0x06])
    else {
        return Ok(None);
    };
    let total = u16_at(&tail, i + 10) as u64;
    if total != 0xFFFF {
        return Ok(Some(total));
    }
    // zip64: the locator sits 20 bytes before the record and points at the zip64 record.
    if i < 20 || tail[i - 20..i - 16] != [0x50, 0x4b, 0x06, 0x07] {
        return Ok(None);
    }
    let loc = base + i as u64 - 20;
    let mut off = [0u8; 8];
    off.copy_from_slice(&tail[i - 12..i - 4]);
    let stated = u64::from_le_bytes(off);
    for pos in [stated, loc.saturating_sub(56)] {
        if pos.checked_add(56).is_none_or(|end| end > len) {
            continue;
        }
        let mut rec = [0u8; 56];
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(&mut rec)?;
        if rec[..4] == [0x50, 0x4b, 0x06, 0x06] {
            let mut n = [0u8; 8];
            n.copy_from_slice(&rec[32..40]);
            return Ok(Some(u64::from_le_bytes(n)));
        }
    }
    Ok(None)
}

/// An open `.npz` archive.
pub struct NpzFile {
    path: PathBuf,
    zip: zip::ZipArchive<BufReader<File>>,
}

impl NpzFile {
    /// Opens an `.npz` archive (a regular file whose member names are all distinct).
    pub fn open(path: &Path) -> Result<Self> {
        let (mut f, len) = open_regular(path)?;
        let entries = central_directory_entries(&mut f, len).map_err(|e| Error::io(path, e))?;
        f.seek(SeekFrom::Start(0)).map_err(|e| Error::io(path, e))?;
        let zip = zip::ZipArchive::new(BufReader::new(f))
            .map_err(|e| Error::data(path, format!("not a valid .npz archive: {e}")))?;
        if let Some(n) = entries {
            if n > zip.len() as u64 {
                return Err(Error::data(
                    path,
                    format!(
                        "the archive lists {n} members but only {} distinct names: a member name appears more than once (refused: readers disagree on which copy is used)",
                        zip.len()
                    ),
                ));
            }
        }
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

    /// Reads array `key`, checking its size against the member's, the member's against the
    /// limits, and the member's CRC-32.
    pub fn read(&mut self, key: &str) -> Result<NpyArray> {
        let keys = self.keys();
        let path = self.path.clone();
        let bad = |m: String| Error::data(&path, format!("key `{key}`: {m}"));
        let name = format!("{key}.npy");
        if !self.zip.file_names().any(|n| n == name) {
            return Err(Error::data(
                &self.path,
                format!("no array `{key}` (has: {})", keys.join(", ")),
            ));
        }
        let mut member = self
            .zip
            .by_name(&name)
            .map_err(|e| bad(format!("cannot open the member: {e}")))?;
        let size = member.size();
        let csize = member.compressed_size();
        let exact = match member.compression() {
            zip::CompressionMethod::Stored => {
                if size != csize {
                    return Err(bad(format!(
                        "stored member with size {size} but compressed size {csize}: corrupt archive"
                    )));
                }
                true
            }
            zip::CompressionMethod::Deflated => {
                if size > csize.saturating_mul(DEFLATE_MAX_RATIO).saturating_add(1024) {
                    return Err(bad(format!(
                        "member claims {size} bytes from {csize} compressed, more than deflate can produce: corrupt archive"
                    )));
                }
                false
            }
            m => return Err(bad(format!("unsupported compression {m:?}"))),
        };
        let limit = max_array_bytes().saturating_add(1 << 21);
        if size > limit {
            return Err(bad(format!(
                "member is {} uncompressed, over the {} limit (set BRAGG_MAX_ARRAY_BYTES to raise it)",
                human_bytes(size),
                human_bytes(limit)
            )));
        }
        let mut counted = Counting {
            inner: &mut member,
            n: 0,
        };
        let a = read_npy_limited(&mut counted, Some(size), exact).map_err(&bad)?;
        let used = counted.n;
        // Read what is left (normally nothing) up to the end: the zip reader verifies the
        // CRC-32 when it reaches the end of the member.
        let left = size.saturating_sub(used);
        let rest = std::io::copy(&mut (&mut member).take(left + 1), &mut std::io::sink())
            .map_err(|e| bad(read_error(&e)))?;
        if rest > left {
            return Err(bad("member holds more data than its declared size".into()));
        }
        Ok(a)
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Writes `.npz` archives member by member (stored, no compression: what `numpy.savez` does)
/// to a unique temporary file beside `path`, fsynced and renamed to `path` by
/// [`NpzWriter::finish`]. Dropping an unfinished writer deletes the temporary file.
pub struct NpzWriter {
    path: PathBuf,
    tmp: PathBuf,
    zip: Option<zip::ZipWriter<BufWriter<File>>>,
}

impl NpzWriter {
    /// Starts a new archive.
    pub fn create(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let (f, tmp) = create_temp(path, "")?;
        Ok(NpzWriter {
            path: path.to_path_buf(),
            tmp,
            zip: Some(zip::ZipWriter::new(BufWriter::with_capacity(1 << 16, f))),
        })
    }

    fn zip_err(&self, e: impl std::fmt::Display) -> Error {
        Error::data(&self.tmp, format!("writing npz: {e}"))
    }

    /// Starts member `key` with the header of an array of `descr` and `shape`; the caller
    /// writes the data through [`NpzWriter::writer`].
    pub fn start(&mut self, key: &str, descr: &str, shape: &[usize], item: usize) -> Result<()> {
        let bytes = shape
            .iter()
            .fold(item as u64, |a, &s| a.saturating_mul(s as u64));
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

    /// Finishes the archive, fsyncs it, renames it into place and fsyncs the folder.
    pub fn finish(mut self) -> Result<()> {
        let zip = self
            .zip
            .take()
            .ok_or_else(|| Error::Msg("npz finished".into()))?;
        let res = (|| -> Result<()> {
            let w = zip.finish().map_err(|e| self.zip_err(e))?;
            let f = w
                .into_inner()
                .map_err(|e| Error::io(self.tmp.clone(), e.into_error()))?;
            f.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
            drop(f);
            std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))?;
            super::io::sync_dir(&self.path)
        })();
        if res.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        res
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

/// Writes one array as `.npy` atomically (unique temporary file, fsync, rename).
pub fn write_npy<T: NpyElement>(path: &Path, a: &ArrayD<T>) -> Result<()> {
    let mut f = super::io::AtomicFile::create(path)?;
    write_npy_to(&mut f, a).map_err(|e| Error::io(path, e))?;
    f.commit()
}
