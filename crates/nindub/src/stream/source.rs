//! Where a model's tensors lie: one GGUF file, or a directory of per-layer
//! shards written by `nindub split` (see [`crate::stream::shard`]).
//!
//! The streaming engine never needs a whole model in memory, only where
//! each tensor's bytes are: a file, an offset and a length. Both layouts
//! answer that question the same way, so the engine reads either.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use candle_core::Device;
use candle_core::quantized::ggml_file::qtensor_from_ggml;
use candle_core::quantized::{GgmlDType, QTensor};

use crate::error::{Error, Result, ctx};
use crate::model::arch::Architecture;
use crate::model::gguf::GgufFile;
use crate::stream::manifest;

/// Where one tensor's bytes lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Index into [`ModelSource::files`].
    pub file: usize,
    /// Absolute offset in that file.
    pub offset: u64,
    pub bytes: usize,
}

/// A model's files, opened and indexed by tensor name.
pub struct ModelSource {
    /// What the user named: a `.gguf` file or a shard directory.
    pub root: PathBuf,
    /// The file holding the metadata (and tokenizer): the GGUF itself, or
    /// the shards' `base.gguf`. Always `files[0]`.
    pub files: Vec<GgufFile>,
    index: HashMap<String, usize>,
}

impl ModelSource {
    /// Opens a GGUF file, or a shard directory (checked against its
    /// manifest: sizes and SHA-256 of every file).
    pub fn open(path: &Path) -> Result<Self> {
        if path.is_dir() {
            Self::from_files(path.to_path_buf(), manifest::open_files(path, true)?)
        } else {
            let root = path.to_path_buf();
            Self::from_files(root, vec![GgufFile::open(path)?])
        }
    }

    /// Opens a shard directory checking only the files' sizes (and their
    /// GGUF headers), not their hashes: hashing a multi-GB model takes
    /// seconds.
    pub fn open_unverified(dir: &Path) -> Result<Self> {
        Self::from_files(dir.to_path_buf(), manifest::open_files(dir, false)?)
    }

    /// Indexes `files` (the first holds the metadata). A tensor named in
    /// two files is an error.
    pub fn from_files(root: PathBuf, files: Vec<GgufFile>) -> Result<Self> {
        if files.is_empty() {
            return Err(Error::invalid("model source", "no files"));
        }
        let mut index = HashMap::new();
        for (i, f) in files.iter().enumerate() {
            for name in f.content.tensor_infos.keys() {
                if let Some(j) = index.insert(name.clone(), i) {
                    return Err(Error::invalid(
                        "model source",
                        format!(
                            "tensor `{name}` is in both {} and {}",
                            files[j].path.display(),
                            f.path.display()
                        ),
                    ));
                }
            }
        }
        Ok(ModelSource { root, files, index })
    }

    /// The file with the metadata.
    pub fn base(&self) -> &GgufFile {
        &self.files[0]
    }

    /// The model's architecture, checked against the tensors of every
    /// file (a shard directory's layers are in the shards, not the base).
    pub fn architecture(&self) -> Result<Architecture> {
        let arch = self.base().architecture()?;
        let prefix = self
            .base()
            .metadata_str("general.architecture")
            .unwrap_or("llama");
        crate::model::gguf::check_against_tensors(&arch, prefix, &self.root, true, |name| {
            let i = *self.index.get(name)?;
            Some(
                self.files[i].content.tensor_infos[name]
                    .shape
                    .dims()
                    .to_vec(),
            )
        })?;
        Ok(arch)
    }

    pub fn path(&self, file: usize) -> &Path {
        &self.files[file].path
    }

    fn file_of(&self, name: &str) -> Result<&GgufFile> {
        let i = self.index.get(name).ok_or_else(|| Error::Metadata {
            path: self.root.clone(),
            field: name.to_string(),
            reason: "the tensor is missing".into(),
        })?;
        Ok(&self.files[*i])
    }

    /// Where tensor `name`'s blocks lie, from the headers alone.
    pub fn range(&self, name: &str) -> Result<Range> {
        let i = *self.index.get(name).ok_or_else(|| Error::Metadata {
            path: self.root.clone(),
            field: name.to_string(),
            reason: "the tensor is missing".into(),
        })?;
        let f = &self.files[i];
        let info = &f.content.tensor_infos[name];
        // Whole blocks, no overflow: checked when the file was opened.
        let bytes = crate::model::gguf::stored_bytes(info.shape.dims(), info.ggml_dtype).map_err(
            |reason| Error::Metadata {
                path: f.path.clone(),
                field: format!("tensor {name}"),
                reason,
            },
        )?;
        let bytes = usize::try_from(bytes).map_err(|_| {
            Error::invalid("tensor size", format!("`{name}` does not fit in memory"))
        })?;
        Ok(Range {
            file: i,
            offset: f.content.tensor_data_offset + info.offset,
            bytes,
        })
    }

    /// Tensor `name`'s GGML type, from the header.
    pub fn dtype(&self, name: &str) -> Result<GgmlDType> {
        Ok(self.file_of(name)?.content.tensor_infos[name].ggml_dtype)
    }

    /// Tensor `name`'s type, dims (outermost first) and stored bytes.
    pub fn read(&self, name: &str) -> Result<(GgmlDType, Vec<usize>, Vec<u8>)> {
        let f = self.file_of(name)?;
        let info = &f.content.tensor_infos[name];
        let r = self.range(name)?;
        let mut bytes = vec![0u8; r.bytes];
        let mut file = File::open(&f.path).map_err(|e| Error::io(&f.path, e))?;
        file.seek(SeekFrom::Start(r.offset))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(|e| Error::io(&f.path, e))?;
        // candle already turned GGUF's innermost-first dims around.
        Ok((info.ggml_dtype, info.shape.dims().to_vec(), bytes))
    }

    /// Reads tensor `name` into memory.
    pub fn qtensor(&self, name: &str) -> Result<QTensor> {
        let f = self.file_of(name)?;
        let (dtype, dims, bytes) = self.read(name)?;
        ctx(
            &format!("reading tensor `{name}` from {}", f.path.display()),
            qtensor_from_ggml(dtype, &bytes, dims, &Device::Cpu),
        )
    }
}
