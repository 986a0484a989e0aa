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
    /// Opens `path`, parses its header and checks that every tensor lies
    /// inside the file.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let file_size = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader).map_err(|e| Error::Foreign {
            path: path.to_path_buf(),
            expected: "GGUF",
            reason: first_line(&e),
        })?;
        let gguf = GgufFile {
            path: path.to_path_buf(),
            content,
            file_size,
        };
        for t in gguf.tensors() {
            let info = &gguf.content.tensor_infos[&t.name];
            let end = gguf.content.tensor_data_offset + info.offset + t.bytes;
            if end > file_size {
                return Err(Error::Truncated {
                    path: path.to_path_buf(),
                    tensor: t.name,
                    needed: end,
                    actual: file_size,
                });
            }
        }
        Ok(gguf)
    }

    /// The tensors, sorted by their offset in the file.
    pub fn tensors(&self) -> Vec<StoredTensor> {
        let mut infos: Vec<_> = self.content.tensor_infos.iter().collect();
        infos.sort_by_key(|(_, info)| info.offset);
        infos
            .into_iter()
            .map(|(name, info)| {
                let numel = info.shape.elem_count() as u64;
                let dtype = info.ggml_dtype;
                StoredTensor {
                    name: name.clone(),
                    // GGUF lists dims innermost first; candle already
                    // reversed them to the usual outermost-first order.
                    dims: info.shape.dims().iter().map(|&d| d as u64).collect(),
                    dtype: dtype_name(dtype).to_string(),
                    bytes: numel / dtype.block_size() as u64 * dtype.type_size() as u64,
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
        a.validate()?;
        Ok(a)
    }
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
