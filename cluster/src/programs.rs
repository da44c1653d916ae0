//! Finding the raftmq programs (`mqbroker`, `mqnamesrv`, and for the hints `mqadmin`,
//! `mqbench`), and asking them for the effective configuration of a property file.
//!
//! Lookup order: the directory in `MQCLUSTER_BIN_DIR` when it is set (tests, unusual
//! installs), else the directory of the running `mqcluster` (`target/release/` after
//! `scripts/up.sh`), else `PATH`.

use std::collections::BTreeMap;
use std::env;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Environment variable naming the directory the programs are taken from.
pub const BIN_DIR_ENV: &str = "MQCLUSTER_BIN_DIR";

/// The programs a cluster runs.
#[derive(Debug, Clone)]
pub struct Programs {
    /// `mqbroker`.
    pub mqbroker: PathBuf,
    /// `mqnamesrv`.
    pub mqnamesrv: PathBuf,
}

impl Programs {
    /// Finds `mqbroker` and `mqnamesrv`, or says where they were looked for.
    pub fn find() -> Result<Programs> {
        Ok(Programs {
            mqbroker: find("mqbroker")?,
            mqnamesrv: find("mqnamesrv")?,
        })
    }
}

/// The directory of the running `mqcluster`.
pub fn own_dir() -> Option<PathBuf> {
    env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
}

/// Where `name` is: [`BIN_DIR_ENV`], next to `mqcluster`, on `PATH`.
pub fn find(name: &str) -> Result<PathBuf> {
    if let Some(dir) = env::var_os(BIN_DIR_ENV).filter(|d| !d.is_empty()) {
        let path = PathBuf::from(&dir).join(name);
        if is_executable(&path) {
            return absolute(&path);
        }
        bail!(
            "{name} is not in {BIN_DIR_ENV}={}; build it (cargo build -p broker -p nameserver) \
             or unset {BIN_DIR_ENV}",
            Path::new(&dir).display()
        );
    }
    if let Some(path) = own_dir().map(|d| d.join(name)).filter(|p| is_executable(p)) {
        return Ok(path);
    }
    if let Some(path) = on_path(name) {
        return absolute(&path);
    }
    bail!(
        "cannot find {name} next to {} or on PATH; build it with `cargo build --release -p broker \
         -p nameserver` (scripts/up.sh does), or set {BIN_DIR_ENV}",
        own_dir().map_or_else(|| "mqcluster".to_owned(), |d| d.display().to_string())
    )
}

/// How a user should type `name` to run the program [`find`] would pick: its bare name
/// when `PATH` finds that same file, else its path (relative to the working directory
/// when it lies below it).
pub fn display_command(name: &str) -> String {
    let Ok(path) = find(name) else {
        return name.to_owned();
    };
    if on_path(name).and_then(|p| p.canonicalize().ok()) == path.canonicalize().ok() {
        return name.to_owned();
    }
    display_path(&path)
}

/// `path` relative to the working directory when it lies below it, else as it is.
pub fn display_path(path: &Path) -> String {
    env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .filter(|rel| !rel.as_os_str().is_empty())
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn absolute(path: &Path) -> Result<PathBuf> {
    path.canonicalize()
        .with_context(|| format!("cannot resolve {}", path.display()))
}

/// The effective configuration of `file` as `program -c FILE -p` prints it (every key,
/// defaults included); its own error line when the file is bad.
pub fn effective_config(program: &Path, file: &Path) -> Result<BTreeMap<String, String>> {
    let out = Command::new(program)
        .arg("-c")
        .arg(file)
        .arg("-p")
        .output()
        .with_context(|| format!("cannot run {}", program.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = stderr
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("no error message");
        bail!("{} rejects {}: {why}", program.display(), file.display());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let pairs = raftmq_properties::parse_str(&text, file)
        .with_context(|| format!("cannot read what {} -p printed", program.display()))?;
    Ok(pairs.into_iter().map(|p| (p.key, p.value)).collect())
}
