//! Per-layer shards (`nindub split`): one GGUF file per decoder layer.
//!
//! A streaming engine reads one layer at a time; a model cut into one file
//! per layer lets it fetch, cache, verify or evict exactly that. The layout:
//!
//! ```text
//! out/
//!   base.gguf        all the metadata (tokenizer included) and the tensors
//!                    outside the layers: token_embd, output_norm, output
//!   layer-000.gguf   blk.0.* (minimal metadata: the architecture, the index)
//!   layer-001.gguf   blk.1.*
//!   ...
//!   manifest.json    written last: every file's size and SHA-256
//! ```
//!
//! Every file is written atomically (a temporary file, then a rename), the
//! manifest last: an interrupted split leaves no manifest, and [`open`]
//! refuses a directory without one. At most two layers are in memory: one
//! being written to disk while the next is read (or generated) and hashed.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use candle_core::quantized::QTensor;
use candle_core::quantized::gguf_file::{self, Value};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result, ctx};
use crate::gguf::GgufFile;
use crate::source::ModelSource;

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

/// Cuts the GGUF `model` into a shard directory `out` (see the module's
/// documentation). `out` must not exist or be empty.
pub fn split(model: &Path, out: &Path, progress: bool) -> Result<Manifest> {
    let src = ModelSource::open(model)?;
    // (file, offset) order: the source's own order of the tensors.
    let mut names: Vec<(usize, u64, String)> = Vec::new();
    for (i, f) in src.files.iter().enumerate() {
        for (name, info) in &f.content.tensor_infos {
            names.push((i, info.offset, name.clone()));
        }
    }
    names.sort();
    let mut base_names = Vec::new();
    let mut layer_names: Vec<Vec<String>> = Vec::new();
    for (_, _, name) in names {
        match layer_of(&name) {
            Some(l) => {
                if layer_names.len() <= l {
                    layer_names.resize_with(l + 1, Vec::new);
                }
                layer_names[l].push(name);
            }
            None => base_names.push(name),
        }
    }
    if layer_names.is_empty() {
        return Err(Error::invalid(
            "model to split",
            format!(
                "{} has no `blk.N.` tensors: it is not a layered decoder",
                model.display()
            ),
        ));
    }
    if let Some(l) = layer_names.iter().position(|t| t.is_empty()) {
        return Err(Error::invalid(
            "model to split",
            format!("{} has no tensors for layer {l}", model.display()),
        ));
    }
    let base = src.base();
    if let Some(arch) = base.metadata_str("general.architecture") {
        let key = format!("{arch}.block_count");
        if let Some(n) = base.content.metadata.get(&key).and_then(value_u64)
            && n != layer_names.len() as u64
        {
            return Err(Error::Metadata {
                path: base.path.clone(),
                field: key,
                reason: format!(
                    "says {n} layers, but the tensors name {}",
                    layer_names.len()
                ),
            });
        }
    }
    let mut base_tensors = Vec::with_capacity(base_names.len());
    for name in base_names {
        let t = src.qtensor(&name)?;
        base_tensors.push((name, t));
    }
    let metadata: Vec<(&str, &Value)> = base
        .content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let source = model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| model.display().to_string());
    let layers = layer_names.into_iter().map(|names| {
        names
            .into_iter()
            .map(|n| src.qtensor(&n).map(|t| (n, t)))
            .collect::<Result<Vec<_>>>()
    });
    write_shards(out, &source, &metadata, &base_tensors, layers, progress)
}

/// `blk.L.` → `L`.
fn layer_of(name: &str) -> Option<usize> {
    let rest = name.strip_prefix("blk.")?;
    let (l, _) = rest.split_once('.')?;
    l.parse().ok()
}

fn value_u64(v: &Value) -> Option<u64> {
    v.to_u64()
        .ok()
        .or_else(|| v.to_u32().ok().map(u64::from))
        .or_else(|| v.to_i32().ok().and_then(|x| u64::try_from(x).ok()))
}

/// Writes a shard directory: `base.gguf` with `metadata` (less
/// `general.alignment`, which candle's writer fixes at 32, and any older
/// `nindub.shard.*` keys) and `base_tensors`, then one file per item of
/// `layers` (read one at a time), then `manifest.json`. Shared by
/// [`split`] and [`crate::synth::write`].
///
/// `out` must not exist or be an empty directory; `metadata` must carry
/// `general.architecture`.
pub fn write_shards<I>(
    out: &Path,
    source: &str,
    metadata: &[(&str, &Value)],
    base_tensors: &[(String, QTensor)],
    layers: I,
    progress: bool,
) -> Result<Manifest>
where
    I: IntoIterator<Item = Result<Vec<(String, QTensor)>>>,
    I::IntoIter: ExactSizeIterator,
{
    let layers = layers.into_iter();
    let n_layers = layers.len();
    let find = |key: &str| metadata.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let architecture = match find("general.architecture") {
        Some(Value::String(s)) => s.clone(),
        _ => {
            return Err(Error::invalid(
                "shard metadata",
                "`general.architecture` is absent or not a string",
            ));
        }
    };
    let name = match find("general.name") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    prepare_out(out)?;

    let count =
        Value::U32(u32::try_from(n_layers).map_err(|_| {
            Error::invalid("shard layers", format!("{n_layers} layers is too many"))
        })?);
    let mut base_meta: Vec<(&str, &Value)> = metadata
        .iter()
        .filter(|(k, _)| *k != "general.alignment" && !k.starts_with("nindub.shard."))
        .copied()
        .collect();
    base_meta.sort_by_key(|(k, _)| *k);
    base_meta.push((LAYER_COUNT_KEY, &count));

    // The disk write of one file overlaps the building (and hashing) of the
    // next: a writer thread takes each finished buffer. The rendezvous
    // channel bounds memory to two layers: one written, one being built.
    let (base, files) = std::thread::scope(|s| -> Result<(ShardFile, Vec<ShardFile>)> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(PathBuf, Vec<u8>)>(0);
        let writer = s.spawn(move || -> Result<()> {
            for (path, bytes) in rx {
                crate::fsx::write_atomic(&path, &bytes)?;
            }
            Ok(())
        });
        let send = |path: PathBuf, bytes: Vec<u8>| {
            // A closed channel means the writer failed: its error is
            // reported below.
            tx.send((path, bytes)).is_ok()
        };
        let produced = (|| -> Result<Option<(ShardFile, Vec<ShardFile>)>> {
            let path = out.join(BASE);
            let (base, bytes) = build_gguf(&path, &base_meta, base_tensors)?;
            if !send(path, bytes) {
                return Ok(None);
            }
            let bar = crate::train::progress_bar(n_layers as u64, progress, "shards", "layers");
            let arch_value = Value::String(architecture.clone());
            let mut files = Vec::with_capacity(n_layers);
            for (i, tensors) in layers.enumerate() {
                let tensors = tensors?;
                let index = Value::U32(i as u32);
                let meta = [("general.architecture", &arch_value), (LAYER_KEY, &index)];
                let path = out.join(layer_file_name(i));
                let (file, bytes) = build_gguf(&path, &meta, &tensors)?;
                drop(tensors);
                if !send(path, bytes) {
                    return Ok(None);
                }
                files.push(file);
                bar.inc(1);
            }
            bar.finish_and_clear();
            Ok(Some((base, files)))
        })();
        drop(tx);
        let written = match writer.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        written?;
        produced?.ok_or_else(|| Error::invalid("shard directory", "the writer stopped early"))
    })?;
    if files.len() != n_layers {
        return Err(Error::invalid(
            "shard layers",
            format!("expected {n_layers} layers, got {}", files.len()),
        ));
    }

    let manifest = Manifest {
        format: FORMAT_VERSION,
        source: source.to_string(),
        architecture,
        name,
        base,
        layers: files,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|source| Error::Json {
        context: "writing the shard manifest".into(),
        source,
    })?;
    crate::fsx::write_atomic(&out.join(MANIFEST), &json)?;
    Ok(manifest)
}

/// Creates `out`, or accepts it empty; refuses anything else.
fn prepare_out(out: &Path) -> Result<()> {
    if out.exists() {
        if !out.is_dir() {
            return Err(Error::invalid(
                "shard directory",
                format!("{} exists and is not a directory", out.display()),
            ));
        }
        let mut entries = std::fs::read_dir(out).map_err(|e| Error::io(out, e))?;
        if entries.next().is_some() {
            return Err(Error::invalid(
                "shard directory",
                format!(
                    "{} is not empty; refusing to write into it (remove it or choose another directory)",
                    out.display()
                ),
            ));
        }
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))
}

/// Builds one GGUF in memory and hashes it; the caller writes it.
fn build_gguf(
    path: &Path,
    metadata: &[(&str, &Value)],
    tensors: &[(String, QTensor)],
) -> Result<(ShardFile, Vec<u8>)> {
    let data: usize = tensors
        .iter()
        .map(|(_, t)| t.storage_size_in_bytes() + 32)
        .sum();
    let mut w = Cursor::new(Vec::with_capacity(data + (1 << 20)));
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    ctx(
        &format!("writing {}", path.display()),
        gguf_file::write(&mut w, metadata, &refs),
    )?;
    let bytes = w.into_inner();
    let file = ShardFile {
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        bytes: bytes.len() as u64,
        sha256: format!("{:x}", Sha256::digest(&bytes)),
    };
    Ok((file, bytes))
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

/// Opens a shard directory, checked against its manifest: every file's
/// size and SHA-256.
pub fn open(dir: &Path) -> Result<ModelSource> {
    open_checked(dir, true)
}

/// Opens a shard directory, checking only the files' sizes (and their GGUF
/// headers), not their hashes: hashing a multi-GB model takes seconds.
pub fn open_unverified(dir: &Path) -> Result<ModelSource> {
    open_checked(dir, false)
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
        let actual = crate::assets::sha256_file(path)?;
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

fn open_checked(dir: &Path, hashes: bool) -> Result<ModelSource> {
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
    ModelSource::from_files(dir.to_path_buf(), files)
}
