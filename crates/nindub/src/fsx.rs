//! Files: written so that an interruption never leaves a half-written file
//! under the final name (a temporary file beside it, then a rename), and
//! hashed to know them again.

use std::fs::File;
use std::io::Write;

use sha2::{Digest, Sha256};
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically (temporary file + rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)
        .map_err(|e| Error::io(file.tmp.path(), e))?;
    file.commit()
}

// ANCHOR: output
/// Checks that `path` may receive a file, before any work is done for it:
/// a new name, or an existing regular file (which is replaced), in a
/// directory this process can write. A symbolic link is refused rather than
/// followed or replaced (name its target), and so are directories, FIFOs,
/// sockets and device nodes: renaming over them would destroy what they
/// are. Missing parent directories are created.
pub fn check_output(path: &Path) -> Result<()> {
    let refuse = |reason: &str| Error::Write {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            let kind = meta.file_type();
            if kind.is_symlink() {
                return Err(refuse(
                    "it is a symbolic link; name the file it points to instead",
                ));
            }
            if kind.is_dir() {
                return Err(refuse("it is a directory; name a file inside it"));
            }
            if !kind.is_file() {
                return Err(refuse(
                    "it is not a regular file (a FIFO, socket or device), and would be replaced",
                ));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(refuse(&e.to_string())),
    }
    let dir = parent(path);
    std::fs::create_dir_all(dir).map_err(|e| Error::Write {
        path: path.to_path_buf(),
        reason: format!("cannot create its directory {}: {e}", dir.display()),
    })?;
    // The one sure test of writability: make (and drop) a temporary file.
    tempfile::Builder::new()
        .prefix(".probe-")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| Error::Write {
            path: path.to_path_buf(),
            reason: format!("its directory {} is not writable: {e}", dir.display()),
        })
}
// ANCHOR_END: output

/// The same for a directory that will receive files (shards, students):
/// an existing directory or a new path, never a file, a symbolic link or a
/// special file; created, and checked writable.
pub fn check_output_dir(dir: &Path) -> Result<()> {
    let refuse = |reason: String| Error::Write {
        path: dir.to_path_buf(),
        reason,
    };
    if let Ok(meta) = std::fs::symlink_metadata(dir) {
        if meta.file_type().is_symlink() {
            return Err(refuse(
                "it is a symbolic link; name the directory it points to instead".into(),
            ));
        }
        if !meta.is_dir() {
            return Err(refuse("it exists and is not a directory".into()));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| refuse(e.to_string()))?;
    tempfile::Builder::new()
        .prefix(".probe-")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| refuse(format!("not writable: {e}")))
}

/// A file written under a temporary name beside `path` and renamed onto it
/// by [`AtomicFile::commit`]; dropped uncommitted (an error, Ctrl-C), it
/// is removed and `path` is untouched. It is created with the process's
/// umask applied, as `File::create` would (not tempfile's private 0600).
pub struct AtomicFile {
    tmp: tempfile::NamedTempFile,
    path: std::path::PathBuf,
}

impl AtomicFile {
    /// Checks `path` ([`check_output`]) and opens the temporary file.
    pub fn create(path: &Path) -> Result<Self> {
        check_output(path)?;
        let dir = parent(path);
        let mut builder = tempfile::Builder::new();
        builder.prefix(".partial-");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let tmp = builder.tempfile_in(dir).map_err(|e| Error::Write {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(AtomicFile {
            tmp,
            path: path.to_path_buf(),
        })
    }

    /// The open temporary file.
    pub fn file_mut(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    /// Renames the finished file onto its name (checked again: the path
    /// may have changed while the work ran).
    pub fn commit(self) -> Result<()> {
        check_output(&self.path)?;
        self.tmp.persist(&self.path).map_err(|e| Error::Write {
            path: self.path.clone(),
            reason: e.error.to_string(),
        })?;
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tmp.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.tmp.flush()
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// SHA-256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| Error::io(path, e))?;
    Ok(hex(&hasher.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_take_the_umask_and_replace_only_regular_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        write_atomic(&path, b"{}").unwrap();
        // SAFETY: umask only reads and sets the process's mask.
        let mask = unsafe {
            let m = libc::umask(0);
            libc::umask(m);
            m
        };
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !(mask as u32), "not tempfile's private 0600");
        write_atomic(&path, b"[]").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"[]");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let err = write_atomic(&link, b"x").unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"[]");
        let err = write_atomic(dir.path(), b"x").unwrap_err().to_string();
        assert!(err.contains("directory"), "{err}");
        // An interrupted write leaves the old file whole.
        let mut f = AtomicFile::create(&path).unwrap();
        f.write_all(b"half").unwrap();
        drop(f);
        assert_eq!(std::fs::read(&path).unwrap(), b"[]");
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 2, "the temporary file is removed");
    }
}
