//! The file operations the store needs, behind a trait so tests can inject IO errors (a full
//! disk, a failing fsync, a torn write) without touching the store's code paths.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

pub use memmap2::Mmap;

/// One open file of the store.
#[allow(clippy::len_without_is_empty)]
pub trait LogFile: Send + Sync {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn sync_data(&self) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
    /// Maps the first `len` bytes read-only. The caller reads only bytes it has written (and
    /// that lie inside the file), so mapping past the end of a shorter file is harmless.
    fn map(&self, len: u64) -> io::Result<Mmap>;
    /// Writes `len` bytes at `offset` out to the disk (if dirty) and drops them from the page
    /// cache. Not a durability point: no metadata is synced. Pages mapped by a process stay.
    ///
    /// An error means writing the range out failed. The kernel reports a writeback error to
    /// each open file once, so a later fsync of the same file may not see it: the caller must
    /// treat it as a failed fsync. Failing to drop pages is not an error.
    fn release_cache(&self, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }
}

/// Unmaps `len` bytes at `offset` of `map` from this process's page tables, so that
/// [`LogFile::release_cache`] can drop them; the next read through the mapping faults them
/// back in from the file. `offset` is rounded down to a page.
#[allow(unsafe_code)]
pub fn unmap_pages(map: &Mmap, offset: u64, len: u64) -> io::Result<()> {
    let start = offset - offset % page_size();
    let end = (offset + len).min(map.len() as u64);
    if end <= start {
        return Ok(());
    }
    // SAFETY: the mapping is a read-only shared mapping of a file. MADV_DONTNEED on it only
    // removes page-table entries; a later access faults the same file bytes back in, so no
    // reader can observe a change (unlike on a private or anonymous mapping, where it zeroes).
    unsafe {
        map.unchecked_advise_range(
            memmap2::UncheckedAdvice::DontNeed,
            start as usize,
            (end - start) as usize,
        )
    }
}

fn page_size() -> u64 {
    #[allow(unsafe_code)]
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|s| *s > 0).unwrap_or(4096)
}

/// Directory-level operations.
pub trait FileSystem: Send + Sync {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn LogFile>>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// File names (not paths) in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    fn exists(&self, path: &Path) -> bool;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

struct StdFile(File);

impl LogFile for StdFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    #[allow(unsafe_code)]
    fn map(&self, len: u64) -> io::Result<Mmap> {
        // SAFETY: the mapping is read-only and the store only reads ranges it has written and
        // that lie below the file's length; the store never shrinks a file under a live
        // mapping without first restoring its full length (truncation zero-fills instead).
        // Another process truncating our files would break this, as it would break any
        // reader of the log.
        unsafe { memmap2::MmapOptions::new().len(len as usize).map(&self.0) }
    }

    #[allow(unsafe_code)]
    fn release_cache(&self, offset: u64, len: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let fd = self.0.as_raw_fd();
        // Whole pages: fadvise keeps a partly covered page, which would leave one page behind
        // at every boundary between two releases.
        let page = page_size();
        let start = offset - offset % page;
        let end = (offset + len).div_ceil(page) * page;
        let (off, n) = (start as libc::off64_t, (end - start) as libc::off64_t);
        // SAFETY: plain syscalls on a file descriptor this struct owns; no memory is passed.
        // Writing the range out first makes every page of it clean, so the fadvise below drops
        // them all (it skips dirty pages and pages under writeback).
        let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        if unsafe { libc::sync_file_range(fd, off, n, flags) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above. Its failure only leaves pages cached.
        let _ = unsafe { libc::posix_fadvise(fd, off, n, libc::POSIX_FADV_DONTNEED) };
        Ok(())
    }
}

impl FileSystem for StdFs {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn LogFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .open(path)?;
        Ok(Arc::new(StdFile(file)))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}

/// A file system that fails on command: the test side of [`FileSystem`].
///
/// Faults apply to every file opened through it. A write that exceeds the remaining write
/// budget writes the part that fits (a torn write) and then fails with `ENOSPC`, which is
/// what a full disk does to a `pwrite`.
#[derive(Default)]
pub struct FaultyFs {
    inner: StdFs,
    faults: Arc<Faults>,
}

/// The switches of a [`FaultyFs`], shared with its files.
#[derive(Debug)]
pub struct Faults {
    write_budget: AtomicU64,
    fail_sync: AtomicBool,
    fail_create: AtomicBool,
    fail_rename: AtomicBool,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            write_budget: AtomicU64::new(u64::MAX),
            fail_sync: AtomicBool::new(false),
            fail_create: AtomicBool::new(false),
            fail_rename: AtomicBool::new(false),
        }
    }
}

impl FaultyFs {
    pub fn new() -> Self {
        Self::default()
    }

    /// The switches; flip them while the store runs.
    pub fn faults(&self) -> Arc<Faults> {
        self.faults.clone()
    }
}

impl Faults {
    /// Writes succeed for `bytes` more bytes, then the disk is full.
    pub fn disk_full_after(&self, bytes: u64) {
        self.write_budget.store(bytes, Ordering::SeqCst);
    }

    /// Every fsync fails with EIO while set.
    pub fn fail_syncs(&self, on: bool) {
        self.fail_sync.store(on, Ordering::SeqCst);
    }

    /// Creating files fails with ENOSPC while set.
    pub fn fail_creates(&self, on: bool) {
        self.fail_create.store(on, Ordering::SeqCst);
    }

    /// Renames fail with EIO while set.
    pub fn fail_renames(&self, on: bool) {
        self.fail_rename.store(on, Ordering::SeqCst);
    }

    /// Clears every fault.
    pub fn heal(&self) {
        self.disk_full_after(u64::MAX);
        self.fail_syncs(false);
        self.fail_creates(false);
        self.fail_renames(false);
    }

    /// Takes up to `want` bytes from the budget and returns how many were granted.
    fn take(&self, want: u64) -> u64 {
        let mut granted = 0;
        let _ = self
            .write_budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                granted = left.min(want);
                Some(left - granted)
            });
        granted
    }
}

fn enospc() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOSPC)
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(libc::EIO)
}

struct FaultyFile {
    inner: Arc<dyn LogFile>,
    faults: Arc<Faults>,
}

impl LogFile for FaultyFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let granted = self.faults.take(buf.len() as u64) as usize;
        self.inner.write_all_at(&buf[..granted], offset)?;
        if granted < buf.len() {
            return Err(enospc());
        }
        Ok(())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        if self.faults.fail_sync.load(Ordering::SeqCst) {
            return Err(eio());
        }
        self.inner.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn map(&self, len: u64) -> io::Result<Mmap> {
        self.inner.map(len)
    }

    fn release_cache(&self, offset: u64, len: u64) -> io::Result<()> {
        if self.faults.fail_sync.load(Ordering::SeqCst) {
            return Err(eio());
        }
        self.inner.release_cache(offset, len)
    }
}

impl FileSystem for FaultyFs {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn LogFile>> {
        if create && !path.exists() && self.faults.fail_create.load(Ordering::SeqCst) {
            return Err(enospc());
        }
        Ok(Arc::new(FaultyFile {
            inner: self.inner.open(path, create)?,
            faults: self.faults.clone(),
        }))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        if self.faults.fail_rename.load(Ordering::SeqCst) {
            return Err(eio());
        }
        self.inner.rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        if self.faults.fail_sync.load(Ordering::SeqCst) {
            return Err(eio());
        }
        self.inner.sync_dir(dir)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }

    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
}
