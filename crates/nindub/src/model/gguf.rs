//! Reading a GGUF file's header: metadata and the table of tensors.
//!
//! GGUF (llama.cpp's format) is a header of key/value metadata, then a table
//! of tensors (name, shape, type, offset), then the aligned tensor data. The
//! parsing is candle's (`candle_core::quantized::gguf_file`); this module adds
//! what a learner's file needs before anything trusts it: a clear error for
//! a file that is not GGUF, and for one whose tensors run past its end.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::{Content, Value};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::arch::{Architecture, Family};

/// An opened, validated GGUF header.
pub struct GgufFile {
    pub path: PathBuf,
    pub content: Content,
    pub file_size: u64,
}

/// One tensor as stored: its GGUF type and exact byte size.
#[derive(Debug, Clone, Serialize)]
pub struct StoredTensor {
    pub name: String,
    pub dims: Vec<u64>,
    pub dtype: String,
    pub bytes: u64,
}

impl StoredTensor {
    /// Stored bits per weight, scales included.
    pub fn bits_per_weight(&self) -> f64 {
        let n: u64 = self.dims.iter().product();
        self.bytes as f64 * 8.0 / n.max(1) as f64
    }
}

impl GgufFile {
    /// Opens `path`, parses its header and checks the tensor table against
    /// the file before anything trusts it: every tensor's size is a whole
    /// number of blocks and computed without overflow, its offset follows
    /// GGUF's alignment rule (`general.alignment`, 32 by default), its
    /// bytes lie inside the file's data section, and no two tensors overlap.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let file_size = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut reader = BufReader::new(file);
        let foreign = |reason: String| Error::Foreign {
            path: path.to_path_buf(),
            expected: "GGUF",
            reason,
        };
        // candle's reader divides by `general.alignment` before anyone can
        // look at it: an alignment of 0 would panic inside it.
        if let Some(reason) = bad_alignment_field(&mut reader, path)? {
            return Err(foreign(reason));
        }
        // And should candle's reader still panic on a header nobody
        // foresaw, the panic is a refusal, not the end of the process.
        let content =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Content::read(&mut reader)))
                .map_err(|_| foreign("the GGUF reader could not follow its header".into()))?
                .map_err(|e| foreign(first_line(&e)))?;
        let gguf = GgufFile {
            path: path.to_path_buf(),
            content,
            file_size,
        };
        gguf.check_tensor_table()?;
        Ok(gguf)
    }

    /// `general.alignment`: where every tensor's offset must fall.
    pub fn alignment(&self) -> u64 {
        alignment_of(self.content.metadata.get("general.alignment"))
    }

    fn check_tensor_table(&self) -> Result<()> {
        let path = &self.path;
        let data = self.content.tensor_data_offset;
        let align = self.alignment();
        if data > self.file_size {
            return Err(Error::Foreign {
                path: path.clone(),
                expected: "GGUF",
                reason: format!(
                    "its data section starts at byte {data}, past the end of the file ({} bytes)",
                    self.file_size
                ),
            });
        }
        // In file order, so that the tensor an error names is the same on
        // every run (the table is a hash map): for a cut file, the first
        // tensor that runs past the end.
        let mut infos: Vec<_> = self.content.tensor_infos.iter().collect();
        infos.sort_by(|(a, x), (b, y)| (x.offset, a).cmp(&(y.offset, b)));
        let mut spans = Vec::with_capacity(infos.len());
        for (name, info) in infos {
            let bad = |reason: String| Error::Metadata {
                path: path.clone(),
                field: format!("tensor {name}"),
                reason,
            };
            let bytes = stored_bytes(info.shape.dims(), info.ggml_dtype).map_err(bad)?;
            // An empty tensor is no weight at all, and candle's readers
            // would view its (dangling) buffer as typed data.
            if bytes == 0 {
                return Err(bad(format!(
                    "its shape {:?} holds no elements",
                    info.shape.dims()
                )));
            }
            if info.offset % align != 0 {
                return Err(bad(format!(
                    "its offset {} is not a multiple of the file's alignment ({align} bytes)",
                    info.offset
                )));
            }
            let end = data
                .checked_add(info.offset)
                .and_then(|start| start.checked_add(bytes))
                .ok_or_else(|| bad(format!("offset {} overflows", info.offset)))?;
            if end > self.file_size {
                return Err(Error::Truncated {
                    path: path.clone(),
                    tensor: name.clone(),
                    needed: end,
                    actual: self.file_size,
                });
            }
            spans.push((info.offset, info.offset + bytes, name));
        }
        for pair in spans.windows(2) {
            let ((_, end, a), (start, _, b)) = (pair[0], pair[1]);
            if start < end {
                return Err(Error::Metadata {
                    path: path.clone(),
                    field: format!("tensor {b}"),
                    reason: format!("its bytes overlap those of `{a}`"),
                });
            }
        }
        Ok(())
    }

    /// SHA-256 of the tensors alone, metadata aside: for each tensor in
    /// name order, its name, a NUL, its type (`Q4_K`), a NUL, its bytes. Two
    /// files with equal digests hold the same weights in the same types,
    /// whoever wrote their headers (the llama.cpp fixture computes the same).
    pub fn tensor_digest(&self) -> Result<String> {
        use sha2::{Digest as _, Sha256};
        use std::io::{Read as _, Seek as _, SeekFrom};
        let mut file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let mut infos: Vec<_> = self.content.tensor_infos.iter().collect();
        infos.sort_by_key(|(name, _)| *name);
        let mut h = Sha256::new();
        let mut buf = vec![];
        for (name, info) in infos {
            // Checked by `open`: whole blocks, inside the file.
            let bytes = stored_bytes(info.shape.dims(), info.ggml_dtype).unwrap_or(0);
            buf.resize(bytes as usize, 0);
            file.seek(SeekFrom::Start(
                self.content.tensor_data_offset + info.offset,
            ))
            .and_then(|_| file.read_exact(&mut buf))
            .map_err(|e| Error::io(&self.path, e))?;
            h.update(name.as_bytes());
            h.update([0]);
            h.update(dtype_name(info.ggml_dtype).as_bytes());
            h.update([0]);
            h.update(&buf);
        }
        Ok(format!("{:x}", h.finalize()))
    }

    /// The tensors, sorted by their offset in the file.
    pub fn tensors(&self) -> Vec<StoredTensor> {
        let mut infos: Vec<_> = self.content.tensor_infos.iter().collect();
        infos.sort_by_key(|(_, info)| info.offset);
        infos
            .into_iter()
            .map(|(name, info)| {
                let dtype = info.ggml_dtype;
                StoredTensor {
                    name: name.clone(),
                    // GGUF lists dims innermost first; candle already
                    // reversed them to the usual outermost-first order.
                    dims: info.shape.dims().iter().map(|&d| d as u64).collect(),
                    dtype: dtype_name(dtype).to_string(),
                    // Checked when the file was opened.
                    bytes: stored_bytes(info.shape.dims(), dtype).unwrap_or(0),
                }
            })
            .collect()
    }

    /// A string metadata field, if present.
    pub fn metadata_str(&self, key: &str) -> Option<&str> {
        match self.content.metadata.get(key) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// The model's architecture, from the `<arch>.*` metadata keys.
    pub fn architecture(&self) -> Result<Architecture> {
        let path = &self.path;
        let meta = &self.content.metadata;
        let arch = self
            .metadata_str("general.architecture")
            .ok_or_else(|| Error::Metadata {
                path: path.clone(),
                field: "general.architecture".into(),
                reason: "absent".into(),
            })?;
        if !matches!(arch, "llama" | "mistral" | "qwen2" | "phi3") {
            return Err(Error::Metadata {
                path: path.clone(),
                field: "general.architecture".into(),
                reason: format!("`{arch}` is not a Llama-style decoder"),
            });
        }
        let key = |k: &str| format!("{arch}.{k}");
        let hidden = gguf_u64(meta, &key("embedding_length"), path)?;
        let heads = gguf_u64(meta, &key("attention.head_count"), path)?;
        let vocab = match gguf_u64(meta, &key("vocab_size"), path) {
            Ok(v) => v,
            Err(_) => match meta.get("tokenizer.ggml.tokens") {
                Some(Value::Array(tokens)) => tokens.len() as u64,
                _ => self
                    .content
                    .tensor_infos
                    .get("token_embd.weight")
                    .map(|t| t.shape.dims()[0] as u64)
                    .ok_or_else(|| Error::Metadata {
                        path: path.clone(),
                        field: key("vocab_size"),
                        reason: "absent, and no tokenizer or embedding to count".into(),
                    })?,
            },
        };
        let name = self
            .metadata_str("general.name")
            .map(str::to_string)
            .unwrap_or_else(|| {
                path.file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            });
        let a = Architecture {
            name,
            family: Family::Llama,
            vocab_size: vocab,
            hidden_size: hidden,
            intermediate_size: gguf_u64(meta, &key("feed_forward_length"), path)?,
            num_layers: gguf_u64(meta, &key("block_count"), path)?,
            num_heads: heads,
            num_kv_heads: gguf_u64(meta, &key("attention.head_count_kv"), path).unwrap_or(heads),
            head_dim: gguf_u64(meta, &key("rope.dimension_count"), path)
                .unwrap_or(hidden / heads.max(1)),
            tied_embeddings: !self.content.tensor_infos.contains_key("output.weight"),
            attention_bias: self.content.tensor_infos.contains_key("blk.0.attn_q.bias"),
            max_context: gguf_u64(meta, &key("context_length"), path)?,
            type_vocab_size: 0,
        };
        // The tensors first, so that the error names the GGUF field; a
        // shard directory's base file holds no layers: the source that
        // opens every shard checks those (`ModelSource::architecture`).
        let infos = &self.content.tensor_infos;
        let has_layers = infos.keys().any(|k| k.starts_with("blk."));
        check_against_tensors(&a, arch, path, has_layers, |name| {
            infos.get(name).map(|i| i.shape.dims().to_vec())
        })?;
        a.validate()?;
        Ok(a)
    }
}

/// Checks the sizes a GGUF's metadata declares against the tensors the
/// file holds, before any of them sizes an allocation: the block count
/// against the `blk.N` tensors present (when `layers` is set), the
/// vocabulary and hidden size against the token embedding, the heads and
/// MLP width against block 0. `dims` looks a tensor's shape up (outermost
/// first). The error names the metadata field that disagrees.
pub(crate) fn check_against_tensors(
    a: &Architecture,
    prefix: &str,
    path: &Path,
    layers: bool,
    dims: impl Fn(&str) -> Option<Vec<usize>>,
) -> Result<()> {
    let wrong = |field: &str, reason: String| Error::Metadata {
        path: path.to_path_buf(),
        field: format!("{prefix}.{field}"),
        reason,
    };
    if layers && a.num_layers > 0 {
        let last = a.num_layers - 1;
        if dims(&format!("blk.{last}.attn_norm.weight")).is_none()
            || dims(&format!("blk.{}.attn_norm.weight", a.num_layers)).is_some()
        {
            return Err(wrong(
                "block_count",
                format!(
                    "{} blocks declared, but the file's tensors do not run from blk.0 to blk.{last}",
                    a.num_layers
                ),
            ));
        }
    }
    let (v, d) = (a.vocab_size as usize, a.hidden_size as usize);
    let expect = |tensor: &str, field: &str, want: [usize; 2]| -> Result<()> {
        match dims(tensor) {
            Some(got) if got[..] != want[..] => Err(wrong(
                field,
                format!(
                    "declares a shape {want:?} for `{tensor}`, which the file stores as {got:?}"
                ),
            )),
            _ => Ok(()),
        }
    };
    expect("token_embd.weight", "embedding_length", [v, d])?;
    let hd = a.head_dim as usize;
    let (q, kv) = (a.num_heads as usize * hd, a.num_kv_heads as usize * hd);
    if layers {
        expect("blk.0.attn_q.weight", "attention.head_count", [q, d])?;
        expect("blk.0.attn_k.weight", "attention.head_count_kv", [kv, d])?;
        expect(
            "blk.0.ffn_up.weight",
            "feed_forward_length",
            [a.intermediate_size as usize, d],
        )?;
    }
    Ok(())
}

/// The bytes a tensor of `dims` occupies as `dtype`: a whole number of
/// blocks, computed without overflow.
pub fn stored_bytes(dims: &[usize], dtype: GgmlDType) -> std::result::Result<u64, String> {
    let numel = dims
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
        .ok_or_else(|| format!("its shape {dims:?} overflows a 64-bit element count"))?;
    let block = dtype.block_size() as u64;
    if numel % block != 0 {
        return Err(format!(
            "{numel} elements are not a whole number of {} blocks of {block}",
            dtype_name(dtype)
        ));
    }
    (numel / block)
        .checked_mul(dtype.type_size() as u64)
        .ok_or_else(|| format!("its shape {dims:?} overflows a 64-bit byte count"))
}

const DEFAULT_ALIGNMENT: u64 = 32;

/// The alignment as candle's reader applies it (the types it accepts; any
/// other value leaves the default).
fn alignment_of(v: Option<&Value>) -> u64 {
    match v {
        Some(Value::U8(v)) => *v as u64,
        Some(Value::U16(v)) => *v as u64,
        Some(Value::U32(v)) => *v as u64,
        Some(Value::I8(v)) if *v >= 0 => *v as u64,
        Some(Value::I16(v)) if *v >= 0 => *v as u64,
        Some(Value::I32(v)) if *v >= 0 => *v as u64,
        _ => DEFAULT_ALIGNMENT,
    }
}

/// Reads the metadata ahead of candle's parser to find a
/// `general.alignment` that is 0 or not a power of two (GGUF requires a
/// power of two; candle would divide by a zero one). Returns the reason, or
/// `None` when the field is sound or absent. Values are skipped by their
/// sizes (strings by length, arrays element by element); a header this
/// scan cannot follow is left to candle's reader, whose errors are clear.
fn bad_alignment_field(reader: &mut BufReader<File>, path: &Path) -> Result<Option<String>> {
    use std::io::{Read, Seek, SeekFrom};
    type R = BufReader<File>;
    fn u32_(r: &mut R) -> Option<u32> {
        let mut b = [0u8; 4];
        r.read_exact(&mut b).ok().map(|_| u32::from_le_bytes(b))
    }
    fn u64_(r: &mut R) -> Option<u64> {
        let mut b = [0u8; 8];
        r.read_exact(&mut b).ok().map(|_| u64::from_le_bytes(b))
    }
    /// Bytes of a scalar of GGUF value type `ty`.
    fn scalar(ty: u32) -> Option<i64> {
        match ty {
            0 | 1 | 7 => Some(1),
            2 | 3 => Some(2),
            4..=6 => Some(4),
            10..=12 => Some(8),
            _ => None,
        }
    }
    /// Skips a value of type `ty` (8: string, 9: array).
    fn skip(r: &mut R, ty: u32, depth: u32) -> Option<()> {
        match ty {
            8 => {
                let len = i64::try_from(u64_(r)?).ok()?;
                r.seek_relative(len).ok()
            }
            9 if depth < 4 => {
                let (inner, n) = (u32_(r)?, u64_(r)?);
                match scalar(inner) {
                    Some(size) => r
                        .seek_relative(size.checked_mul(i64::try_from(n).ok()?)?)
                        .ok(),
                    None => (0..n).try_for_each(|_| skip(r, inner, depth + 1)),
                }
            }
            _ => r.seek_relative(scalar(ty)?).ok(),
        }
    }
    fn scan(r: &mut R) -> Option<Option<String>> {
        if u32_(r)? != u32::from_le_bytes(*b"GGUF") || u32_(r)? < 2 {
            return None; // not GGUF v2/v3: candle's reader explains
        }
        let (_tensors, kvs) = (u64_(r)?, u64_(r)?);
        for _ in 0..kvs {
            let len = u64_(r)?;
            if len > 1 << 16 {
                return None;
            }
            let mut key = vec![0u8; len as usize];
            r.read_exact(&mut key).ok()?;
            let ty = u32_(r)?;
            if key != b"general.alignment" {
                skip(r, ty, 0)?;
                continue;
            }
            let mut v = [0u8; 8];
            r.read_exact(&mut v[..scalar(ty)? as usize]).ok()?;
            let a = u64::from_le_bytes(v);
            let a = match ty {
                1 => a as u8 as i8 as i64 as u64,
                3 => a as u16 as i16 as i64 as u64,
                5 => a as u32 as i32 as i64 as u64,
                _ => a,
            };
            return Some(
                (a == 0 || !a.is_power_of_two())
                    .then(|| format!("`general.alignment` is {a}; GGUF requires a power of two")),
            );
        }
        Some(None)
    }
    let found = scan(reader).flatten();
    reader
        .seek(SeekFrom::Start(0))
        .map_err(|e| Error::io(path, e))?;
    Ok(found)
}

/// The offset just past the first place `name` is spelled as a GGUF
/// string (its u64 length, then its bytes) in `bytes`: for a metadata key,
/// where its value type begins; for a tensor, where its dimension count
/// begins. For tools that edit a header in place (the hostile-input
/// tests and results make headers lie this way).
pub fn spelled_at(bytes: &[u8], name: &str) -> Option<usize> {
    let mut needle = (name.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(name.as_bytes());
    bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|at| at + needle.len())
}

/// The name llama.cpp uses for a GGUF tensor type.
pub fn dtype_name(dtype: GgmlDType) -> &'static str {
    match dtype {
        GgmlDType::F32 => "F32",
        GgmlDType::F16 => "F16",
        GgmlDType::BF16 => "BF16",
        GgmlDType::Q4_0 => "Q4_0",
        GgmlDType::Q4_1 => "Q4_1",
        GgmlDType::Q5_0 => "Q5_0",
        GgmlDType::Q5_1 => "Q5_1",
        GgmlDType::Q8_0 => "Q8_0",
        GgmlDType::Q8_1 => "Q8_1",
        GgmlDType::Q2K => "Q2_K",
        GgmlDType::Q3K => "Q3_K",
        GgmlDType::Q4K => "Q4_K",
        GgmlDType::Q5K => "Q5_K",
        GgmlDType::Q6K => "Q6_K",
        GgmlDType::Q8K => "Q8_K",
    }
}

/// candle appends a backtrace to its errors when `RUST_BACKTRACE` is set;
/// a learner needs the first line only.
pub(crate) fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

/// A metadata value as one short line: arrays show their length and first
/// few items, long strings are cut.
pub fn describe_value(v: &Value) -> String {
    const MAX: usize = 80;
    let text = match v {
        Value::Array(items) => {
            let head: Vec<_> = items.iter().take(4).map(describe_value).collect();
            let more = if items.len() > 4 { ", ..." } else { "" };
            format!("[{} items: {}{more}]", items.len(), head.join(", "))
        }
        Value::String(s) => format!("{s:?}"),
        Value::U8(x) => x.to_string(),
        Value::I8(x) => x.to_string(),
        Value::U16(x) => x.to_string(),
        Value::I16(x) => x.to_string(),
        Value::U32(x) => x.to_string(),
        Value::I32(x) => x.to_string(),
        Value::U64(x) => x.to_string(),
        Value::I64(x) => x.to_string(),
        Value::F32(x) => x.to_string(),
        Value::F64(x) => x.to_string(),
        Value::Bool(x) => x.to_string(),
    };
    if text.chars().count() > MAX {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// Reads an integer metadata field of a GGUF file.
pub(crate) fn gguf_u64(
    meta: &HashMap<String, candle_core::quantized::gguf_file::Value>,
    key: &str,
    path: &Path,
) -> Result<u64> {
    let value = meta.get(key).ok_or_else(|| Error::Metadata {
        path: path.to_path_buf(),
        field: key.to_string(),
        reason: "absent".into(),
    })?;
    value
        .to_u64()
        .or_else(|_| value.to_u32().map(u64::from))
        .or_else(|_| value.to_i32().map(|v| v.max(0) as u64))
        .map_err(|e| Error::Metadata {
            path: path.to_path_buf(),
            field: key.to_string(),
            reason: first_line(&e),
        })
}

// Read from a GGUF header here, so that `arch` needs nothing of GGUF.
impl Architecture {
    /// Reads the architecture from a GGUF file's metadata (the tensor data is
    /// not read). Works for every GGUF whose `general.architecture` is a
    /// Llama-style decoder (`llama`, `mistral`, `qwen2`, `phi3`...).
    pub fn from_gguf(path: impl AsRef<Path>) -> Result<Self> {
        let gguf = GgufFile::open(path.as_ref())?;
        gguf.architecture()
    }
}
