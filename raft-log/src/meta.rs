//! Small metadata files (the vote, the committed log id, the purge point), each replaced
//! atomically: write `NAME.tmp`, fsync it, rename over `NAME.meta`, fsync the directory. A
//! crash leaves either the old or the new value, never a mix.
//!
//! ```text
//! magic "RMQMETA\x01" 8 | version u32 | payload_len u32 | payload | crc u32 (of all before it)
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Corruption, Error, Result};
use crate::format::FORMAT_VERSION;
use crate::fs::FileSystem;

const META_MAGIC: [u8; 8] = *b"RMQMETA\x01";
const META_HEADER_LEN: usize = 16;

/// The metadata files of one store directory.
pub struct MetaFiles {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
}

impl MetaFiles {
    pub fn new(fs: Arc<dyn FileSystem>, dir: &Path) -> Self {
        Self {
            fs,
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.meta"))
    }

    /// Reads the payload stored under `name`, or `None` if it was never written.
    pub fn load(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(name);
        if !self.fs.exists(&path) {
            return Ok(None);
        }
        let file = self
            .fs
            .open(&path, false)
            .map_err(|e| Error::io("open", &path, e))?;
        let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, 0)
            .map_err(|e| Error::io("read", &path, e))?;
        decode(&buf)
            .map(Some)
            .map_err(|what| Error::corrupt(&path, 0, what))
    }

    /// Atomically replaces the payload stored under `name`.
    pub fn store(&self, name: &str, payload: &[u8]) -> Result<()> {
        let path = self.path(name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut buf = Vec::with_capacity(META_HEADER_LEN + payload.len() + 4);
        buf.extend_from_slice(&META_MAGIC);
        buf.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        buf.extend_from_slice(payload);
        let crc = crc32fast::hash(&buf);
        buf.extend_from_slice(&crc.to_le_bytes());

        let file = self
            .fs
            .open(&tmp, true)
            .map_err(|e| Error::io("create", &tmp, e))?;
        file.set_len(0)
            .map_err(|e| Error::io("truncate", &tmp, e))?;
        file.write_all_at(&buf, 0)
            .map_err(|e| Error::io("write", &tmp, e))?;
        file.sync_data().map_err(|e| Error::io("fsync", &tmp, e))?;
        self.fs
            .rename(&tmp, &path)
            .map_err(|e| Error::io("rename", &path, e))?;
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| Error::io("fsync dir", &self.dir, e))
    }
}

fn decode(buf: &[u8]) -> std::result::Result<Vec<u8>, Corruption> {
    if buf.len() < META_HEADER_LEN + 4 {
        return Err(Corruption::Torn);
    }
    if buf[..8] != META_MAGIC {
        return Err(Corruption::BadMagic);
    }
    let mut word = [0u8; 4];
    word.copy_from_slice(&buf[8..12]);
    let version = u32::from_le_bytes(word);
    if version != FORMAT_VERSION {
        return Err(Corruption::Version(version));
    }
    word.copy_from_slice(&buf[12..16]);
    let len = u32::from_le_bytes(word) as usize;
    if buf.len() != META_HEADER_LEN + len + 4 {
        return Err(Corruption::Torn);
    }
    let body_end = META_HEADER_LEN + len;
    word.copy_from_slice(&buf[body_end..]);
    if crc32fast::hash(&buf[..body_end]) != u32::from_le_bytes(word) {
        return Err(Corruption::BodyCrc);
    }
    Ok(buf[META_HEADER_LEN..body_end].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{FaultyFs, StdFs};

    #[test]
    fn store_load_replace() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaFiles::new(Arc::new(StdFs), dir.path());
        assert_eq!(meta.load("vote").unwrap(), None);
        meta.store("vote", b"one").unwrap();
        meta.store("vote", b"two!").unwrap();
        assert_eq!(meta.load("vote").unwrap().as_deref(), Some(&b"two!"[..]));
    }

    #[test]
    fn failed_replace_keeps_old_value() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyFs::new();
        let faults = fs.faults();
        let meta = MetaFiles::new(Arc::new(fs), dir.path());
        meta.store("vote", b"old").unwrap();
        faults.fail_renames(true);
        assert!(meta.store("vote", b"new").is_err());
        faults.heal();
        faults.fail_syncs(true);
        assert!(meta.store("vote", b"new").is_err());
        faults.heal();
        assert_eq!(meta.load("vote").unwrap().as_deref(), Some(&b"old"[..]));
    }

    #[test]
    fn damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaFiles::new(Arc::new(StdFs), dir.path());
        meta.store("committed", b"12345678").unwrap();
        let path = dir.path().join("committed.meta");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[18] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let err = meta.load("committed").unwrap_err().to_string();
        assert!(err.contains("committed.meta"), "{err}");
    }
}
