//! A model's content manifest: what a file (GGUF, safetensors) or a shard
//! directory holds, hashed tensor by tensor, grouped by layer, and rooted
//! in one Merkle root ([`super::merkle`]); beside it the file hashes, the
//! architecture, the tokenizer's hash and the license; and what the
//! creator declares: the parents and the recipe ([`super::lineage`]), the
//! license terms ([`super::ip`]).
//!
//! The root is over tensors, not file bytes: the same weights cut into
//! shards keep their root, while every file hash changes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Value;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::ip::LicenseTerms;
use super::lineage::Parent;
use super::merkle::{self, Digest};
use crate::error::{Error, Result};
use crate::fsx;
use crate::model::gguf::GgufFile;
use crate::stream::source::ModelSource;

/// The manifest format this code writes and reads.
pub const FORMAT: &str = "nindub.provenance/1";
/// A manifest's file beside a model file: `model.gguf.provenance.json`.
pub const SIDECAR_SUFFIX: &str = ".provenance.json";
/// A manifest's file inside a shard directory.
pub const SIDECAR_IN_DIR: &str = "provenance.json";
/// The group of the tensors outside every layer (embeddings, final norm).
pub const GLOBALS: &str = "globals";

/// What kind of model container the manifest describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Gguf,
    Safetensors,
    /// A directory cut by `nindub split` (The Layer-Streamed Sovereign).
    GgufShards,
}

/// One file of the model, whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Its name inside the model's directory.
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
}

/// One tensor: its type and shape as stored, and the SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorEntry {
    pub name: String,
    pub dtype: String,
    /// Outermost first.
    pub shape: Vec<u64>,
    pub bytes: u64,
    pub sha256: String,
}

/// One group of tensors (the globals, or one layer) and its Merkle root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// [`GLOBALS`], or `layer.N`.
    pub name: String,
    pub tensors: usize,
    pub root: String,
}

/// Where a hash or a license came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sourced {
    pub value: String,
    /// The metadata field or file it was read from, or `declared`.
    pub source: String,
}

/// A model's content manifest. `content` fields are computed from the
/// files; `parents` and `terms` are declared by whoever records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentManifest {
    /// [`FORMAT`].
    pub format: String,
    /// The Merkle root over the groups' roots, hex: the model's identity.
    pub root: String,
    pub kind: Kind,
    pub name: Option<String>,
    pub architecture: Option<String>,
    pub parameters: u64,
    pub files: Vec<FileEntry>,
    /// SHA-256 of the tokenizer: GGUF's `tokenizer.*` metadata in a
    /// canonical encoding, or the `tokenizer.json` beside a safetensors file.
    pub tokenizer: Option<Sourced>,
    /// SHA-256 of the vocabulary alone, token strings in id order: the
    /// same for a GGUF file and a `tokenizer.json` that speak the same
    /// tokens, whatever else their tokenizer files hold.
    #[serde(default)]
    pub vocabulary: Option<Sourced>,
    pub license: Option<Sourced>,
    pub groups: Vec<Group>,
    pub tensors: Vec<TensorEntry>,
    /// The models this one was made from, and how.
    #[serde(default)]
    pub parents: Vec<Parent>,
    /// The license terms its owner offers (Story's PIL terms).
    #[serde(default)]
    pub terms: Option<LicenseTerms>,
}

// ANCHOR: leaf
/// The Merkle leaf of one tensor: its name, type and shape are part of
/// what is hashed, so that a renamed or retyped tensor is a different
/// leaf even when its bytes are the same.
pub fn tensor_leaf(t: &TensorEntry) -> Result<Digest> {
    let data = merkle::parse_hex(&t.sha256)
        .ok_or_else(|| Error::invalid("tensor hash", format!("`{}`: {}", t.name, t.sha256)))?;
    let mut enc = Vec::with_capacity(64 + t.name.len());
    enc.extend_from_slice(b"tensor\0");
    for field in [t.name.as_bytes(), t.dtype.as_bytes()] {
        enc.extend_from_slice(&(field.len() as u64).to_le_bytes());
        enc.extend_from_slice(field);
    }
    enc.extend_from_slice(&(t.shape.len() as u64).to_le_bytes());
    for d in &t.shape {
        enc.extend_from_slice(&d.to_le_bytes());
    }
    enc.extend_from_slice(&data);
    Ok(merkle::leaf(&enc))
}

/// The layer a tensor belongs to, from its name: `blk.N.` (GGUF),
/// `model.layers.N.` (Hugging Face Llama), `encoder.layer.N.` (BERT),
/// `h.N.` (GPT-2).
pub fn layer_of(name: &str) -> Option<usize> {
    let parts: Vec<&str> = name.split('.').collect();
    parts.windows(2).find_map(|w| {
        matches!(w[0], "blk" | "layers" | "layer" | "h")
            .then(|| w[1].parse().ok())
            .flatten()
    })
}

/// The groups (globals first, then layers in order) and the model's root.
pub fn groups_and_root(tensors: &[TensorEntry]) -> Result<(Vec<Group>, Digest)> {
    let mut by_group: BTreeMap<Option<usize>, Vec<&TensorEntry>> = BTreeMap::new();
    for t in tensors {
        by_group.entry(layer_of(&t.name)).or_default().push(t);
    }
    let mut groups = Vec::with_capacity(by_group.len());
    let mut roots = Vec::with_capacity(by_group.len());
    // `None` (the globals) sorts before every layer.
    for (layer, mut members) in by_group {
        members.sort_by(|a, b| a.name.cmp(&b.name));
        let leaves = members
            .iter()
            .map(|t| tensor_leaf(t))
            .collect::<Result<Vec<_>>>()?;
        let root = merkle::root(&leaves);
        groups.push(Group {
            name: layer.map_or_else(|| GLOBALS.to_string(), |i| format!("layer.{i}")),
            tensors: members.len(),
            root: merkle::hex(&root),
        });
        roots.push(root);
    }
    Ok((groups, merkle::root(&roots)))
}
// ANCHOR_END: leaf

impl ContentManifest {
    /// Reads `path` (a GGUF file, a safetensors file, or a shard directory)
    /// and hashes every tensor. `progress` is told the bytes hashed so far
    /// and the total.
    pub fn compute(path: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<Self> {
        if path.is_dir() {
            if path.join(crate::stream::manifest::MANIFEST).is_file() {
                return Self::of_gguf(path, Kind::GgufShards, progress);
            }
            return Err(Error::invalid(
                "model path",
                format!(
                    "{} is a directory without a shard manifest (give the model file itself)",
                    path.display()
                ),
            ));
        }
        if path.extension().is_some_and(|e| e == "safetensors") {
            return Self::of_safetensors(path, progress);
        }
        Self::of_gguf(path, Kind::Gguf, progress)
    }

    fn of_gguf(path: &Path, kind: Kind, progress: &mut dyn FnMut(u64, u64)) -> Result<Self> {
        let source = if kind == Kind::GgufShards {
            ModelSource::open_unverified(path)?
        } else {
            ModelSource::open(path)?
        };
        let base = source.base();
        let mut names: Vec<(String, usize)> = Vec::new();
        for (i, f) in source.files.iter().enumerate() {
            for t in f.tensors() {
                names.push((t.name, i));
            }
        }
        names.sort();
        let total: u64 = source
            .files
            .iter()
            .flat_map(|f| f.tensors())
            .map(|t| t.bytes)
            .sum();
        let mut done = 0u64;
        let mut tensors = Vec::with_capacity(names.len());
        let mut parameters = 0u64;
        let mut open: Vec<Option<File>> = (0..source.files.len()).map(|_| None).collect();
        for (name, _) in &names {
            let r = source.range(name)?;
            let f = &source.files[r.file];
            let info = &f.content.tensor_infos[name];
            let file = match &mut open[r.file] {
                Some(file) => file,
                slot => slot.insert(File::open(&f.path).map_err(|e| Error::io(&f.path, e))?),
            };
            let sha256 = hash_range(file, &f.path, r.offset, r.bytes as u64)?;
            let shape: Vec<u64> = info.shape.dims().iter().map(|&d| d as u64).collect();
            parameters += shape.iter().product::<u64>();
            tensors.push(TensorEntry {
                name: name.clone(),
                dtype: crate::model::gguf::dtype_name(info.ggml_dtype).to_string(),
                shape,
                bytes: r.bytes as u64,
                sha256,
            });
            done += r.bytes as u64;
            progress(done, total);
        }
        let (groups, root) = groups_and_root(&tensors)?;
        let files = source
            .files
            .iter()
            .map(|f| file_entry(&f.path))
            .collect::<Result<Vec<_>>>()?;
        Ok(ContentManifest {
            format: FORMAT.to_string(),
            root: merkle::hex(&root),
            kind,
            name: base.metadata_str("general.name").map(str::to_string),
            architecture: base
                .metadata_str("general.architecture")
                .map(str::to_string),
            parameters,
            files,
            tokenizer: gguf_tokenizer_hash(base),
            vocabulary: match base.content.metadata.get("tokenizer.ggml.tokens") {
                Some(Value::Array(items)) => {
                    let tokens: Option<Vec<&str>> = items
                        .iter()
                        .map(|v| match v {
                            Value::String(s) => Some(s.as_str()),
                            _ => None,
                        })
                        .collect();
                    tokens.map(|t| Sourced {
                        value: vocabulary_hash(&t),
                        source: "tokenizer.ggml.tokens".into(),
                    })
                }
                _ => None,
            },
            license: base.metadata_str("general.license").map(|l| Sourced {
                value: l.to_string(),
                source: "general.license".into(),
            }),
            groups,
            tensors,
            parents: Vec::new(),
            terms: None,
        })
    }

    fn of_safetensors(path: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let foreign = |reason: String| Error::Foreign {
            path: path.to_path_buf(),
            expected: "safetensors",
            reason,
        };
        let st =
            safetensors::SafeTensors::deserialize(&bytes).map_err(|e| foreign(e.to_string()))?;
        let (_, meta) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| foreign(e.to_string()))?;
        let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
        names.sort();
        let total: u64 = names
            .iter()
            .filter_map(|n| st.tensor(n).ok())
            .map(|t| t.data().len() as u64)
            .sum();
        let (mut done, mut parameters) = (0u64, 0u64);
        let mut tensors = Vec::with_capacity(names.len());
        for name in names {
            let t = st.tensor(&name).map_err(|e| foreign(e.to_string()))?;
            let shape: Vec<u64> = t.shape().iter().map(|&d| d as u64).collect();
            parameters += shape.iter().product::<u64>();
            done += t.data().len() as u64;
            tensors.push(TensorEntry {
                dtype: format!("{:?}", t.dtype()),
                shape,
                bytes: t.data().len() as u64,
                sha256: fsx::hex(&Sha256::digest(t.data())),
                name,
            });
            progress(done, total);
        }
        let (groups, root) = groups_and_root(&tensors)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let tokenizer = dir.join("tokenizer.json");
        let (vocabulary, tokenizer) = if tokenizer.is_file() {
            (
                tokenizer_json_vocabulary(&tokenizer),
                Some(Sourced {
                    value: fsx::sha256_file(&tokenizer)?,
                    source: "tokenizer.json".into(),
                }),
            )
        } else {
            (None, None)
        };
        let file_meta = meta.metadata().as_ref();
        let config = read_config(&dir.join("config.json"));
        Ok(ContentManifest {
            format: FORMAT.to_string(),
            root: merkle::hex(&root),
            kind: Kind::Safetensors,
            name: file_meta
                .and_then(|m| m.get("name").cloned())
                .or_else(|| config.as_ref().and_then(|c| c.name.clone())),
            architecture: config.and_then(|c| c.architecture),
            parameters,
            files: vec![FileEntry {
                file: file_name(path),
                bytes: bytes.len() as u64,
                sha256: fsx::hex(&Sha256::digest(&bytes)),
            }],
            tokenizer,
            vocabulary,
            license: file_meta.and_then(|m| m.get("license")).map(|l| Sourced {
                value: l.clone(),
                source: "__metadata__.license".into(),
            }),
            groups,
            tensors,
            parents: Vec::new(),
            terms: None,
        })
    }

    /// A manifest of tensors alone (no files, tokenizer or license), for
    /// reasoning about lineage without the files: the tests, the trials.
    pub fn from_tensors(tensors: Vec<TensorEntry>, architecture: Option<&str>) -> Result<Self> {
        let (groups, root) = groups_and_root(&tensors)?;
        Ok(ContentManifest {
            format: FORMAT.to_string(),
            root: merkle::hex(&root),
            kind: Kind::Gguf,
            name: None,
            architecture: architecture.map(str::to_string),
            parameters: tensors
                .iter()
                .map(|t| t.shape.iter().product::<u64>())
                .sum(),
            files: Vec::new(),
            tokenizer: None,
            vocabulary: None,
            license: None,
            groups,
            tensors,
            parents: Vec::new(),
            terms: None,
        })
    }

    /// The manifest's canonical bytes: what a signature covers and what
    /// the sidecar file holds (pretty JSON, fields in declaration order).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Parses a manifest, refusing another format.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let m: ContentManifest = serde_json::from_slice(bytes).map_err(|e| Error::Foreign {
            path: path.to_path_buf(),
            expected: "provenance manifest",
            reason: e.to_string(),
        })?;
        if m.format != FORMAT {
            return Err(Error::Metadata {
                path: path.to_path_buf(),
                field: "format".into(),
                reason: format!("`{}`; this build reads `{FORMAT}`", m.format),
            });
        }
        Ok(m)
    }

    /// Reads the manifest recorded for `model` (its sidecar).
    pub fn read_recorded(model: &Path) -> Result<Self> {
        let path = sidecar_path(model);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        Self::from_bytes(&bytes, &path)
    }

    /// Writes the manifest as `model`'s sidecar (temp file, then rename).
    pub fn write_recorded(&self, model: &Path) -> Result<PathBuf> {
        let path = sidecar_path(model);
        fsx::write_atomic(&path, &self.to_bytes())?;
        Ok(path)
    }

    /// The root, parsed.
    pub fn root_digest(&self) -> Option<Digest> {
        merkle::parse_hex(&self.root)
    }

    /// The group holding tensor `name`.
    pub fn group_of(&self, name: &str) -> String {
        layer_of(name).map_or_else(|| GLOBALS.to_string(), |i| format!("layer.{i}"))
    }
}

/// Where `model`'s manifest is kept: `<file>.provenance.json` beside a
/// file, `provenance.json` inside a shard directory.
pub fn sidecar_path(model: &Path) -> PathBuf {
    if model.is_dir() {
        model.join(SIDECAR_IN_DIR)
    } else {
        let mut s = model.as_os_str().to_owned();
        s.push(SIDECAR_SUFFIX);
        PathBuf::from(s)
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn file_entry(path: &Path) -> Result<FileEntry> {
    let bytes = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    Ok(FileEntry {
        file: file_name(path),
        bytes,
        sha256: fsx::sha256_file(path)?,
    })
}

fn hash_range(file: &mut File, path: &Path, offset: u64, len: u64) -> Result<String> {
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let copied = std::io::copy(&mut file.take(len), &mut h).map_err(|e| Error::io(path, e))?;
    if copied != len {
        return Err(Error::Truncated {
            path: path.to_path_buf(),
            tensor: format!("at byte {offset}"),
            needed: offset + len,
            actual: offset + copied,
        });
    }
    Ok(fsx::hex(&h.finalize()))
}

// ANCHOR: tokenizer
/// The tokenizer's identity in a GGUF file: every `tokenizer.*` key, in
/// key order, with its value in a canonical binary encoding (a type tag,
/// little-endian numbers, length-prefixed strings and arrays).
fn gguf_tokenizer_hash(gguf: &GgufFile) -> Option<Sourced> {
    let keys: BTreeMap<&String, &Value> = gguf
        .content
        .metadata
        .iter()
        .filter(|(k, _)| k.starts_with("tokenizer."))
        .collect();
    if keys.is_empty() {
        return None;
    }
    let mut h = Sha256::new();
    for (k, v) in keys {
        h.update((k.len() as u64).to_le_bytes());
        h.update(k.as_bytes());
        encode_value(v, &mut h);
    }
    Some(Sourced {
        value: fsx::hex(&h.finalize()),
        source: "tokenizer.* metadata".into(),
    })
}
// ANCHOR_END: tokenizer

/// The vocabulary's identity: its token strings in id order, each
/// length-prefixed.
pub fn vocabulary_hash(tokens: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update((tokens.len() as u64).to_le_bytes());
    for t in tokens {
        h.update((t.len() as u64).to_le_bytes());
        h.update(t.as_bytes());
    }
    fsx::hex(&h.finalize())
}

/// The vocabulary of a Hugging Face `tokenizer.json`: `model.vocab`
/// (token → id) and `added_tokens`, in id order; `None` if ids are missing
/// or repeated (a vocabulary it cannot state exactly).
fn tokenizer_json_vocabulary(path: &Path) -> Option<Sourced> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let mut by_id: BTreeMap<u64, String> = BTreeMap::new();
    for (token, id) in v["model"]["vocab"].as_object()? {
        by_id.insert(id.as_u64()?, token.clone());
    }
    for added in v["added_tokens"].as_array().into_iter().flatten() {
        by_id.insert(
            added["id"].as_u64()?,
            added["content"].as_str()?.to_string(),
        );
    }
    let dense = by_id.keys().copied().eq(0..by_id.len() as u64);
    dense.then(|| Sourced {
        value: vocabulary_hash(&by_id.values().map(String::as_str).collect::<Vec<_>>()),
        source: "tokenizer.json model.vocab".into(),
    })
}

fn encode_value(v: &Value, h: &mut Sha256) {
    match v {
        Value::U8(x) => h.update([0, *x]),
        Value::I8(x) => h.update([1, *x as u8]),
        Value::U16(x) => h.update([[2u8].as_slice(), &x.to_le_bytes()].concat()),
        Value::I16(x) => h.update([[3u8].as_slice(), &x.to_le_bytes()].concat()),
        Value::U32(x) => h.update([[4u8].as_slice(), &x.to_le_bytes()].concat()),
        Value::I32(x) => h.update([[5u8].as_slice(), &x.to_le_bytes()].concat()),
        Value::F32(x) => h.update([[6u8].as_slice(), &x.to_le_bytes()].concat()),
        Value::Bool(x) => h.update([7, u8::from(*x)]),
        Value::String(s) => {
            h.update([8]);
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        }
        Value::Array(items) => {
            h.update([9]);
            h.update((items.len() as u64).to_le_bytes());
            for item in items {
                encode_value(item, h);
            }
        }
        Value::U64(x) => h.update([[10u8].as_slice(), &x.to_le_bytes()].concat()),
        Value::I64(x) => h.update([[11u8].as_slice(), &x.to_le_bytes()].concat()),
        Value::F64(x) => h.update([[12u8].as_slice(), &x.to_le_bytes()].concat()),
    }
}

struct Config {
    name: Option<String>,
    architecture: Option<String>,
}

/// `config.json` beside a safetensors file (Hugging Face's layout), when
/// present: the model's name and architecture.
fn read_config(path: &Path) -> Option<Config> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    Some(Config {
        name: v["_name_or_path"].as_str().map(str::to_string),
        architecture: v["model_type"].as_str().map(str::to_string),
    })
}

/// One difference between a recorded manifest and the files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Discrepancy {
    /// What differs: `tensor blk.3.attn_q.weight`, `file model.gguf`,
    /// `tokenizer`, `root`.
    pub what: String,
    pub recorded: String,
    pub found: String,
}

// ANCHOR: compare
/// Every difference between what was recorded and what the files hold
/// now, tensors first (in name order), so the first line names the
/// changed tensor.
pub fn compare(recorded: &ContentManifest, found: &ContentManifest) -> Vec<Discrepancy> {
    let mut out = Vec::new();
    let rec: BTreeMap<&str, &TensorEntry> = recorded
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let now: BTreeMap<&str, &TensorEntry> =
        found.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let short = |t: &TensorEntry| format!("{} {:?} sha256 {}", t.dtype, t.shape, &t.sha256[..16]);
    for (name, r) in &rec {
        match now.get(name) {
            Some(n) if n == r => {}
            Some(n) => out.push(Discrepancy {
                what: format!("tensor {name}"),
                recorded: short(r),
                found: short(n),
            }),
            None => out.push(Discrepancy {
                what: format!("tensor {name}"),
                recorded: short(r),
                found: "absent".into(),
            }),
        }
    }
    for (name, n) in &now {
        if !rec.contains_key(name) {
            out.push(Discrepancy {
                what: format!("tensor {name}"),
                recorded: "absent".into(),
                found: short(n),
            });
        }
    }
    let mut check = |what: String, a: String, b: String| {
        if a != b {
            out.push(Discrepancy {
                what,
                recorded: a,
                found: b,
            });
        }
    };
    // A single file may be renamed; a shard set's names are its layout.
    let files = |m: &ContentManifest| {
        m.files
            .iter()
            .map(|f| match m.files.len() {
                1 => format!("{} bytes sha256 {}", f.bytes, f.sha256),
                _ => format!("{} {} bytes sha256 {}", f.file, f.bytes, f.sha256),
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    check("files".into(), files(recorded), files(found));
    let tok = |m: &ContentManifest| {
        m.tokenizer
            .as_ref()
            .map_or("none".into(), |t| t.value.clone())
    };
    check("tokenizer".into(), tok(recorded), tok(found));
    check("root".into(), recorded.root.clone(), found.root.clone());
    out
}
// ANCHOR_END: compare

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, data: &[u8]) -> TensorEntry {
        TensorEntry {
            name: name.into(),
            dtype: "F32".into(),
            shape: vec![data.len() as u64 / 4],
            bytes: data.len() as u64,
            sha256: fsx::hex(&Sha256::digest(data)),
        }
    }

    #[test]
    fn layers_are_found_by_the_names_each_format_gives_them() {
        assert_eq!(layer_of("blk.12.attn_q.weight"), Some(12));
        assert_eq!(layer_of("model.layers.3.mlp.up_proj.weight"), Some(3));
        assert_eq!(layer_of("encoder.layer.5.output.dense.bias"), Some(5));
        assert_eq!(layer_of("token_embd.weight"), None);
        assert_eq!(layer_of("blk.x.attn_q.weight"), None);
    }

    #[test]
    fn the_root_depends_on_data_name_and_type_but_not_on_order() {
        let a = vec![
            t("token_embd.weight", &[1; 8]),
            t("blk.0.w", &[2; 8]),
            t("blk.1.w", &[3; 8]),
        ];
        let (groups, root) = groups_and_root(&a).unwrap();
        assert_eq!(
            groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
            ["globals", "layer.0", "layer.1"]
        );
        let mut shuffled = a.clone();
        shuffled.reverse();
        assert_eq!(groups_and_root(&shuffled).unwrap().1, root);
        let mut renamed = a.clone();
        renamed[1].name = "blk.0.v".into();
        assert_ne!(groups_and_root(&renamed).unwrap().1, root);
        let mut retyped = a.clone();
        retyped[1].dtype = "F16".into();
        assert_ne!(groups_and_root(&retyped).unwrap().1, root);
        let mut changed = a;
        changed[2] = t("blk.1.w", &[4; 8]);
        let (g2, r2) = groups_and_root(&changed).unwrap();
        assert_ne!(r2, root);
        // Only the changed layer's root moves.
        assert_eq!(g2[0], groups[0]);
        assert_eq!(g2[1], groups[1]);
        assert_ne!(g2[2], groups[2]);
    }

    #[test]
    fn a_bad_hash_in_a_manifest_is_refused_by_name() {
        let mut x = t("w", &[0; 4]);
        x.sha256 = "nothex".into();
        let e = groups_and_root(&[x]).unwrap_err().to_string();
        assert!(e.contains("`w`"), "{e}");
    }
}
