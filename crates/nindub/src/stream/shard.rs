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
//! manifest last: an interrupted split leaves no manifest, and
//! [`ModelSource::open`] refuses a directory without one. At most two layers are in memory: one
//! being written to disk while the next is read (or generated) and hashed.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use candle_core::quantized::QTensor;
use candle_core::quantized::gguf_file::{self, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result, ctx};
use crate::stream::manifest::{
    BASE, FORMAT_VERSION, LAYER_COUNT_KEY, LAYER_KEY, MANIFEST, Manifest, ShardFile,
    layer_file_name, value_u64,
};
use crate::stream::source::ModelSource;

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

/// Writes a shard directory: `base.gguf` with `metadata` (less
/// `general.alignment`, which candle's writer fixes at 32, and any older
/// `nindub.shard.*` keys) and `base_tensors`, then one file per item of
/// `layers` (read one at a time), then `manifest.json`. Shared by
/// [`split`] and [`crate::stream::synth::write`].
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
            let bar = crate::progress::progress_bar(n_layers as u64, progress, "shards", "layers");
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
