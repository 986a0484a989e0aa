//! The teacher's soft targets, computed once and cached on disk.
//!
//! Distilling a language model asks the teacher for its next-token
//! distribution at every position of the training text. SmolLM2's
//! vocabulary has 49,152 tokens: a full f32 distribution is 192 KiB per
//! position. Nearly all of its mass sits on a few tokens, so the cache keeps
//! the teacher's `k` largest logits per position (f16 values, u32 ids) —
//! with `k = 32`, 192 bytes — gzip-compressed, in a safetensors file whose
//! metadata names the corpus (SHA-256), the teacher file (SHA-256), the
//! window length and `k`. A cache made from another corpus or teacher is
//! refused, and writing is atomic: an interrupted run leaves no cache that
//! looks valid.
//!
//! The teacher runs on each window from an empty context, exactly as the
//! student will see it, with its weights dequantized to f32 so that a whole
//! window is one matrix product per layer (candle's quantized CPU kernels
//! take a prompt row by row: ~20× slower here).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, ctx};
use crate::model::llama::{ForwardOptions, Llama};

/// Token windows of a corpus: training windows first, held-out windows from
/// the end of the text. Each window holds `len + 1` tokens: `len` inputs and,
/// shifted by one, `len` targets.
#[derive(Debug, Clone)]
pub struct Windows {
    pub len: usize,
    pub train: Vec<Vec<u32>>,
    pub held_out: Vec<Vec<u32>>,
}

impl Windows {
    /// Cuts `tokens` into non-overlapping windows: up to `train` from the
    /// first 90% of the text, up to `held_out` from the last 10% (so the
    /// held-out text is never trained on).
    pub fn cut(tokens: &[u32], len: usize, train: usize, held_out: usize) -> Result<Self> {
        if len < 2 {
            return Err(Error::invalid(
                "windows",
                "a window needs at least 2 tokens",
            ));
        }
        let split = tokens.len() * 9 / 10;
        let cut = |part: &[u32], n: usize| -> Vec<Vec<u32>> {
            part.chunks_exact(len + 1)
                .take(n)
                .map(<[u32]>::to_vec)
                .collect()
        };
        let w = Windows {
            len,
            train: cut(&tokens[..split], train),
            held_out: cut(&tokens[split..], held_out),
        };
        if w.train.is_empty() || w.held_out.is_empty() {
            return Err(Error::invalid(
                "corpus",
                format!(
                    "{} tokens are too few for one window of {} tokens in both the training \
                     part (90%) and the held-out part (10%)",
                    tokens.len(),
                    len + 1
                ),
            ));
        }
        Ok(w)
    }
}

/// Where caches live unless told otherwise: `soft-targets/` in the asset
/// cache (`NINDUB_CACHE`).
pub fn default_dir() -> PathBuf {
    crate::assets::cache_dir().join("soft-targets")
}

/// What a cache was made from; it must match to be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheKey {
    pub corpus_sha256: String,
    pub teacher_sha256: String,
    /// The teacher's vocabulary size: a student must share it.
    pub vocab: usize,
    pub window: usize,
    pub k: usize,
    pub train_windows: usize,
    pub held_out_windows: usize,
}

impl CacheKey {
    /// The cache file's name in `dir`.
    pub fn path_in(&self, dir: &Path) -> PathBuf {
        use sha2::{Digest, Sha256};
        let json = serde_json::to_string(self).unwrap_or_default();
        let h = Sha256::digest(json.as_bytes());
        let hex: String = h.iter().take(8).map(|b| format!("{b:02x}")).collect();
        dir.join(format!("soft-targets-{hex}.safetensors.gz"))
    }
}

/// The teacher's top-k logits for every training position.
pub struct SoftTargets {
    pub key: CacheKey,
    /// `[train_windows · window, k]` u32 token ids, largest logit first.
    pub indices: Tensor,
    /// `[train_windows · window, k]` f32 logits.
    pub values: Tensor,
    /// The teacher's mean negative log-likelihood per held-out token
    /// (its perplexity is `exp` of it), same windows as the students.
    pub teacher_held_out_nll: f64,
    /// Seconds the teacher took when the cache was made.
    pub teacher_seconds: f64,
    /// Whether this run read the cache rather than running the teacher.
    pub from_cache: bool,
}

const META: &str = "nindub.soft_targets";

#[derive(Serialize, Deserialize)]
struct Meta {
    key: CacheKey,
    teacher_held_out_nll: f64,
    teacher_seconds: f64,
}

impl SoftTargets {
    /// Runs the teacher over the windows (a progress bar when `progress`).
    pub fn compute(
        teacher: &mut Llama,
        windows: &Windows,
        key: CacheKey,
        progress: bool,
    ) -> Result<Self> {
        let vocab = teacher.arch.vocab_size as usize;
        if key.vocab != vocab {
            return Err(Error::invalid(
                "soft targets",
                format!(
                    "the key names a vocabulary of {}, the teacher has {vocab}",
                    key.vocab
                ),
            ));
        }
        if key.k == 0 || key.k > vocab {
            return Err(Error::invalid(
                "soft targets",
                format!("k must be in 1..={vocab}, got {}", key.k),
            ));
        }
        let start = std::time::Instant::now();
        let total = windows.train.len() + windows.held_out.len();
        let bar = crate::progress::progress_bar(total as u64, progress, "teacher", "windows");
        let opts = ForwardOptions {
            all_logits: true,
            ..Default::default()
        };
        let (mut idx, mut val) = (vec![], vec![]);
        for w in &windows.train {
            teacher.clear_cache();
            let logits = teacher.forward(&w[..windows.len], &opts)?.logits;
            let (i, v) = crate::distill::loss::top_k(&logits, key.k)?;
            idx.push(i);
            val.push(v);
            bar.inc(1);
        }
        let (mut nll, mut count) = (0f64, 0usize);
        for w in &windows.held_out {
            teacher.clear_cache();
            let logits = teacher.forward(&w[..windows.len], &opts)?.logits;
            let rows = ctx("teacher logits", logits.to_vec2::<f32>())?;
            for (row, &target) in rows.iter().zip(&w[1..]) {
                nll += crate::compress::perplexity::nll(row, target as usize);
                count += 1;
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        let cat = |parts: Vec<Tensor>| ctx("soft targets", Tensor::cat(&parts, 0));
        Ok(SoftTargets {
            key,
            indices: cat(idx)?,
            values: cat(val)?,
            teacher_held_out_nll: nll / count.max(1) as f64,
            teacher_seconds: start.elapsed().as_secs_f64(),
            from_cache: false,
        })
    }

    /// Writes the cache (f16 values, gzip), atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let meta = Meta {
            key: self.key.clone(),
            teacher_held_out_nll: self.teacher_held_out_nll,
            teacher_seconds: self.teacher_seconds,
        };
        let json = serde_json::to_string(&meta).map_err(|e| Error::Json {
            context: "soft-target metadata".into(),
            source: e,
        })?;
        let values = ctx("soft targets to f16", self.values.to_dtype(DType::F16))?;
        let tensors = vec![("indices", self.indices.clone()), ("values", values)];
        let bytes = safetensors::serialize(tensors, Some(HashMap::from([(META.into(), json)])))
            .map_err(|e| Error::Foreign {
                path: path.to_path_buf(),
                expected: "safetensors",
                reason: e.to_string(),
            })?;
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(&bytes)
            .and_then(|_| gz.finish())
            .map_err(|e| Error::io(path, e))
            .and_then(|compressed| crate::fsx::write_atomic(path, &compressed))
    }

    /// Reads a cache and checks that it was made for `expected`.
    pub fn load(path: &Path, expected: &CacheKey, device: &Device) -> Result<Self> {
        let foreign = |reason: String| Error::Foreign {
            path: path.to_path_buf(),
            expected: "soft-target cache (gzip-compressed safetensors)",
            reason,
        };
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut bytes = vec![];
        GzDecoder::new(file)
            .read_to_end(&mut bytes)
            .map_err(|e| foreign(e.to_string()))?;
        let (_, header) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| foreign(e.to_string()))?;
        let meta: Meta = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get(META))
            .ok_or_else(|| foreign(format!("no `{META}` metadata")))
            .and_then(|j| serde_json::from_str(j).map_err(|e| foreign(e.to_string())))?;
        if &meta.key != expected {
            return Err(foreign(format!(
                "made for {:?}, but this run needs {:?}",
                meta.key, expected
            )));
        }
        let mut t = candle_core::safetensors::load_buffer(&bytes, device)
            .map_err(|e| foreign(e.to_string()))?;
        let mut take = |name: &str| {
            t.remove(name)
                .ok_or_else(|| foreign(format!("no `{name}`")))
        };
        let (indices, values) = (take("indices")?, take("values")?);
        let rows = expected.train_windows * expected.window;
        if indices.dims() != [rows, expected.k] || values.dims() != indices.dims() {
            return Err(foreign(format!(
                "tensors of shape {:?} and {:?}, expected [{rows}, {}]",
                indices.dims(),
                values.dims(),
                expected.k
            )));
        }
        Ok(SoftTargets {
            key: meta.key,
            indices,
            values: ctx("soft targets to f32", values.to_dtype(DType::F32))?,
            teacher_held_out_nll: meta.teacher_held_out_nll,
            teacher_seconds: meta.teacher_seconds,
            from_cache: true,
        })
    }

    /// Loads the cache for `key` from `dir`, or computes and saves it.
    pub fn cached(
        dir: &Path,
        key: CacheKey,
        teacher: impl FnOnce() -> Result<Llama>,
        windows: &Windows,
        progress: bool,
    ) -> Result<Self> {
        let path = key.path_in(dir);
        if path.exists() {
            return Self::load(&path, &key, &Device::Cpu);
        }
        let mut teacher = teacher()?;
        let targets = Self::compute(&mut teacher, windows, key, progress)?;
        targets.save(&path)?;
        Ok(targets)
    }
}
