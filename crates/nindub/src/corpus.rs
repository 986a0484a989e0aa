//! The text corpus experiments read: any UTF-8 text file, named by the
//! environment variable `NINDUB_CORPUS` (CI and the book's results use
//! `tinyshakespeare.txt`). Nothing is bundled: a corpus is the user's.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The environment variable that names the corpus.
pub const CORPUS_ENV: &str = "NINDUB_CORPUS";

/// The corpus path from the environment.
pub fn path() -> Result<PathBuf> {
    match std::env::var_os(CORPUS_ENV) {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => Err(Error::MissingEnv {
            var: CORPUS_ENV,
            hint: "point it at any UTF-8 text file, e.g. tinyshakespeare.txt".into(),
        }),
    }
}

/// Reads a corpus file; the error names the file and the first bad byte.
pub fn read(path: impl Into<PathBuf>) -> Result<String> {
    let path = path.into();
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    String::from_utf8(bytes).map_err(|e| Error::Foreign {
        path,
        expected: "UTF-8 text",
        reason: format!("invalid UTF-8 at byte {}", e.utf8_error().valid_up_to()),
    })
}

/// Reads the corpus the environment names.
pub fn load() -> Result<String> {
    read(path()?)
}
