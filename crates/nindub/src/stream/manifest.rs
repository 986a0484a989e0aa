//! A shard directory's `manifest.json`: what it holds, file by file
//! (sizes and SHA-256), and the checks that a directory still matches it.
//! Written by [`super::shard`]; read by [`super::source`].

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Value;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::gguf::GgufFile;

/// The version of the manifest's format this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The manifest's file name inside a shard directory.
pub const MANIFEST: &str = "manifest.json";
/// The file holding the metadata and the tensors outside the layers.
pub const BASE: &str = "base.gguf";
/// The metadata key, in each layer file, holding its layer index.
pub const LAYER_KEY: &str = "nindub.shard.layer";
/// The metadata key, in `base.gguf`, holding the number of layer files.
pub const LAYER_COUNT_KEY: &str = "nindub.shard.layer_count";

/// One file of a shard directory, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardFile {
    /// The file's name inside the directory (no path).
    pub file: String,
    pub bytes: u64,
    /// SHA-256 of the whole file, lowercase hex.
    pub sha256: String,
}

/// `manifest.json`: what a shard directory holds, file by file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] when written.
    pub format: u32,
    /// The file the shards were cut from (its name only), or what produced
    /// them (`synthetic`).
    pub source: String,
    /// `general.architecture` (`llama`, ...).
    pub architecture: String,
    /// `general.name`, when the model has one.
    #[serde(default)]
    pub name: Option<String>,
    pub base: ShardFile,
    /// One file per decoder layer, in layer order.
    pub layers: Vec<ShardFile>,
}

impl Manifest {
    /// Every file, `base.gguf` first.
    pub fn files(&self) -> impl Iterator<Item = &ShardFile> {
        std::iter::once(&self.base).chain(&self.layers)
    }

    /// The bytes of all the files together.
    pub fn total_bytes(&self) -> u64 {
        self.files().map(|f| f.bytes).sum()
    }
}

/// The name of layer `i`'s file.
pub fn layer_file_name(i: usize) -> String {
    format!("layer-{i:03}.gguf")
}

/// Reads and checks `dir/manifest.json` (format version, plain file names).
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::invalid(
                "shard directory",
                format!(
                    "{} is not a shard directory (no manifest.json): was the split interrupted?",
                    dir.display()
                ),
            ));
        }
        Err(e) => return Err(Error::io(&path, e)),
    };
    let m: Manifest = serde_json::from_slice(&text).map_err(|source| Error::Json {
        context: format!("reading {}", path.display()),
        source,
    })?;
    if m.format > FORMAT_VERSION {
        return Err(Error::invalid(
            "shard manifest",
            format!(
                "{} has format {}, but this nindub reads format {FORMAT_VERSION} at most (upgrade nindub)",
                path.display(),
                m.format
            ),
        ));
    }
    for f in m.files() {
        let plain =
            Path::new(&f.file).file_name().and_then(|n| n.to_str()) == Some(f.file.as_str());
        if !plain || f.file == MANIFEST {
            return Err(Error::invalid(
                "shard manifest",
                format!(
                    "{} names `{}`, which is not a plain file name",
                    path.display(),
                    f.file
                ),
            ));
        }
    }
    Ok(m)
}

/// Checks every file of `dir` against its manifest: sizes and SHA-256.
pub fn verify(dir: &Path) -> Result<Manifest> {
    let m = read_manifest(dir)?;
    check_files(dir, &m, true)?;
    Ok(m)
}

fn check_files(dir: &Path, m: &Manifest, hashes: bool) -> Result<()> {
    let entries: Vec<&ShardFile> = m.files().collect();
    entries
        .par_iter()
        .map(|f| check_file(&dir.join(&f.file), f, hashes))
        .collect::<Result<Vec<()>>>()?;
    Ok(())
}

fn check_file(path: &Path, f: &ShardFile, hashes: bool) -> Result<()> {
    let size = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::invalid(
                "shard directory",
                format!("{} is listed in manifest.json but missing", path.display()),
            ));
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    if size < f.bytes {
        return Err(Error::invalid(
            "shard",
            format!(
                "{} is truncated: the manifest says {} bytes, the file has {size}",
                path.display(),
                f.bytes
            ),
        ));
    }
    if size > f.bytes {
        return Err(Error::invalid(
            "shard",
            format!(
                "{} has {size} bytes, but the manifest says {} (was it changed after the split?)",
                path.display(),
                f.bytes
            ),
        ));
    }
    if hashes {
        let actual = crate::fsx::sha256_file(path)?;
        if !actual.eq_ignore_ascii_case(&f.sha256) {
            return Err(Error::invalid(
                "shard",
                format!(
                    "{}: SHA-256 mismatch: the manifest says {}, the file hashes to {actual} (was it damaged or changed after the split?)",
                    path.display(),
                    f.sha256
                ),
            ));
        }
    }
    Ok(())
}

/// The files of shard directory `dir`, `base.gguf` first, checked against
/// its manifest: sizes, layer indices, and with `hashes` every SHA-256.
pub fn open_files(dir: &Path, hashes: bool) -> Result<Vec<GgufFile>> {
    let m = read_manifest(dir)?;
    check_files(dir, &m, hashes)?;
    let mut files = Vec::with_capacity(m.layers.len() + 1);
    files.push(GgufFile::open(&dir.join(&m.base.file))?);
    for (i, f) in m.layers.iter().enumerate() {
        let path: PathBuf = dir.join(&f.file);
        let g = GgufFile::open(&path)?;
        let index = g.content.metadata.get(LAYER_KEY).and_then(value_u64);
        if index != Some(i as u64) {
            return Err(Error::Metadata {
                path,
                field: LAYER_KEY.into(),
                reason: format!("expected layer {i}, found {index:?}"),
            });
        }
        files.push(g);
    }
    Ok(files)
}

pub(crate) fn value_u64(v: &Value) -> Option<u64> {
    v.to_u64()
        .ok()
        .or_else(|| v.to_u32().ok().map(u64::from))
        .or_else(|| v.to_i32().ok().and_then(|x| u64::try_from(x).ok()))
}
