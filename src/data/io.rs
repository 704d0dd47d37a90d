//! Hardened file input/output shared by every reader and writer of `bragg`.
//!
//! Reading: [`open_regular`] opens only regular files (a FIFO, a device such as `/dev/zero`
//! or a directory is an error, never a hang or an unbounded read) and returns the file size
//! that readers check header claims against; [`read_bounded`] / [`read_text_bounded`] read a
//! whole small file (model, recipe) under a size limit.
//!
//! Writing: [`AtomicFile`] stages a file under a unique temporary name next to its final path
//! (`.NAME.bragg-PID-N.tmp`), and [`AtomicFile::commit`] flushes, fsyncs the file, renames it
//! into place and fsyncs the folder; an uncommitted one is removed on drop, so an error path
//! never leaves a partial file under the final name. [`write_atomic`] and [`write_png`] are the
//! one-call forms.
//!
//! Limits: [`max_array_bytes`] (one array read from `.npy`/`.npz`, `BRAGG_MAX_ARRAY_BYTES`,
//! default 8 GiB) and [`available_memory`] (Linux `MemAvailable`) bound what a file may make
//! the process allocate.

use crate::{Error, Result};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Default largest array read from `.npy`/`.npz` (bytes of data).
pub const DEFAULT_MAX_ARRAY_BYTES: u64 = 8 << 30;
/// Largest model / checkpoint file read (bytes).
pub const MAX_MODEL_BYTES: u64 = 4 << 30;
/// Largest recipe (TOML) file read (bytes).
pub const MAX_RECIPE_BYTES: u64 = 1 << 20;

/// The largest array (bytes of data) a reader accepts: `BRAGG_MAX_ARRAY_BYTES` when set to a
/// positive integer, else [`DEFAULT_MAX_ARRAY_BYTES`].
pub fn max_array_bytes() -> u64 {
    std::env::var("BRAGG_MAX_ARRAY_BYTES")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&v| v > 0)
        .unwrap_or(DEFAULT_MAX_ARRAY_BYTES)
}

/// Memory the system can still give (Linux `MemAvailable`), `None` where unknown.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Free space (bytes available to this user) on the filesystem holding `path`'s folder,
/// `None` where unknown.
pub fn free_space(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let dir = parent_dir(path);
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: a valid NUL-terminated path and a zeroed out-struct of the right type.
        if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
            return None;
        }
        (st.f_bavail as u64).checked_mul(st.f_frsize as u64)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Human-readable byte count (`1.5 GiB`).
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Why allocating `bytes` for `what` is refused (the array limit or the available memory),
/// `None` when it fits.
pub fn allocation_problem(what: &str, bytes: u64) -> Option<String> {
    let limit = max_array_bytes();
    if bytes > limit {
        return Some(format!(
            "{what} needs {} but the limit is {} (set BRAGG_MAX_ARRAY_BYTES to raise it)",
            human_bytes(bytes),
            human_bytes(limit)
        ));
    }
    match available_memory() {
        Some(avail) if bytes > avail => Some(format!(
            "{what} needs {} but only {} of memory is available",
            human_bytes(bytes),
            human_bytes(avail)
        )),
        _ => None,
    }
}

/// Checks that allocating `bytes` for `what` fits the array limit and the available memory.
pub fn check_allocation(path: &Path, what: &str, bytes: u64) -> Result<()> {
    match allocation_problem(what, bytes) {
        Some(m) => Err(Error::data(path, m)),
        None => Ok(()),
    }
}

/// Opens `path` for reading if it is a regular file; returns the file and its size.
///
/// The open does not block (a FIFO without a writer would otherwise hang), and anything but
/// a regular file (FIFO, socket, character or block device, directory) is an error.
pub fn open_regular(path: &Path) -> Result<(File, u64)> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NONBLOCK);
    }
    let f = opts.open(path).map_err(|e| Error::io(path, e))?;
    let meta = f.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        let kind = file_kind(&meta);
        return Err(Error::data(
            path,
            format!("is {kind}, not a regular file (only regular files are read)"),
        ));
    }
    #[cfg(unix)]
    {
        // Back to blocking reads (no effect on regular files, but keep the usual semantics).
        use std::os::unix::io::AsRawFd;
        let fd = f.as_raw_fd();
        // SAFETY: fcntl on a file descriptor we own; failure only leaves O_NONBLOCK set.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
            }
        }
    }
    Ok((f, meta.len()))
}

fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    if meta.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
    }
    "not a regular file"
}

/// Reads the whole regular file `path` if it is at most `limit` bytes (`what` names the kind
/// of file in the error).
pub fn read_bounded(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    let (f, len) = open_regular(path)?;
    if len > limit {
        return Err(Error::data(
            path,
            format!(
                "{what} file of {} exceeds the {} limit",
                human_bytes(len),
                human_bytes(limit)
            ),
        ));
    }
    let mut buf = Vec::with_capacity(len as usize);
    // One byte more than the limit tells a file that grew while being read.
    f.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(path, e))?;
    if buf.len() as u64 > limit {
        return Err(Error::data(
            path,
            format!("{what} file grew beyond the {} limit", human_bytes(limit)),
        ));
    }
    Ok(buf)
}

/// Reads a UTF-8 text file (recipe) of at most `limit` bytes.
pub fn read_text_bounded(path: &Path, limit: u64, what: &str) -> Result<String> {
    let bytes = read_bounded(path, limit, what)?;
    String::from_utf8(bytes).map_err(|e| Error::data(path, format!("{what} is not UTF-8: {e}")))
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary path next to `path`, unique to this process and call:
/// `.NAME.bragg-PID-N[-TAG].tmp` in the same folder (so the final rename stays on one
/// filesystem).
pub fn unique_temp_path(path: &Path, tag: &str) -> PathBuf {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "out".into());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tag = if tag.is_empty() {
        String::new()
    } else {
        format!("-{tag}")
    };
    dir.join(format!(
        ".{name}.bragg-{}-{n}-{nanos:08x}{tag}.tmp",
        std::process::id()
    ))
}

fn parent_dir(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Creates a new file at a unique temporary path (never overwriting an existing one).
pub fn create_temp(path: &Path, tag: &str) -> Result<(File, PathBuf)> {
    for _ in 0..16 {
        let tmp = unique_temp_path(path, tag);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(f) => return Ok((f, tmp)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(&tmp, e)),
        }
    }
    Err(Error::data(path, "cannot create a unique temporary file"))
}

/// Fsyncs the folder holding `path` so that a rename into it survives a crash.
pub fn sync_dir(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let dir = parent_dir(path);
        let d = File::open(&dir).map_err(|e| Error::io(&dir, e))?;
        d.sync_all().map_err(|e| Error::io(&dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// A file written under a unique temporary name and renamed into place by
/// [`AtomicFile::commit`]; removed on drop if never committed.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    w: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Starts writing `path` (its folder is created if missing).
    pub fn create(path: &Path) -> Result<AtomicFile> {
        let dir = parent_dir(path);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let (f, tmp) = create_temp(path, "")?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp,
            w: Some(BufWriter::with_capacity(1 << 16, f)),
        })
    }

    /// The temporary path being written.
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes, fsyncs, renames into place and fsyncs the folder.
    pub fn commit(mut self) -> Result<()> {
        let w = self
            .w
            .take()
            .ok_or_else(|| Error::data(&self.path, "file already committed"))?;
        let res = (|| -> Result<()> {
            let f = w
                .into_inner()
                .map_err(|e| Error::io(&self.tmp, e.into_error()))?;
            f.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
            drop(f);
            std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))?;
            sync_dir(&self.path)
        })();
        if res.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        res
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.w.as_mut() {
            Some(w) => w.write(buf),
            None => Err(std::io::Error::other("file already committed")),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self.w.as_mut() {
            Some(w) => w.write_all(buf),
            None => Err(std::io::Error::other("file already committed")),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self.w.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.w.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `path` atomically (unique temporary file, fsync, rename, folder fsync).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(bytes)
        .map_err(|e| Error::io(f.temp_path(), e))?;
    f.commit()
}

/// Encodes `img` as PNG and writes it atomically (a full disk never truncates an existing
/// figure under its final name).
pub fn write_png(path: &Path, img: &image::RgbImage) -> Result<()> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png)
        .map_err(|e| Error::data(path, format!("encoding PNG: {e}")))?;
    write_atomic(path, &buf.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_files_are_refused_and_limits_hold() {
        let e = open_regular(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/dev/zero") && e.contains("character device"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let e = open_regular(dir.path()).unwrap_err().to_string();
        assert!(e.contains("directory"), "{e}");
        let p = dir.path().join("a.txt");
        std::fs::write(&p, b"0123456789").unwrap();
        assert_eq!(read_bounded(&p, 10, "test").unwrap().len(), 10);
        let e = read_bounded(&p, 9, "test").unwrap_err().to_string();
        assert!(e.contains("limit"), "{e}");
    }

    #[test]
    fn atomic_files_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.bin");
        write_atomic(&p, b"one").unwrap();
        {
            let mut f = AtomicFile::create(&p).unwrap();
            f.write_all(b"partial").unwrap();
            // dropped without commit
        }
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert_ne!(unique_temp_path(&p, ""), unique_temp_path(&p, ""));
    }
}
