//! The readers against hostile files: a small real model, mutated many
//! times over (bit flips, truncations, header fields overwritten with
//! extreme values, shard manifests tampered with), and every mutant opened
//! and run as `inspect`, `generate` and `stream` would. Each must give an
//! error or a working model: never a panic, an abort, or an allocation
//! beyond what the file and the budget justify.
//!
//! `NINDUB_FUZZ_CASES=N` sets the number of mutants per kind (default 150,
//! what CI runs); `NINDUB_FUZZ_SEED` another seed. A longer run:
//! `NINDUB_FUZZ_CASES=5000 cargo test --release -p nindub --test hostile_files`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use nindub::model::decoder::Decoder;
use nindub::model::fused::FusedLlama;
use nindub::model::gguf::{GgufFile, spelled_at};
use nindub::model::llama::Llama;
use nindub::stream::source::ModelSource;
use nindub::stream::streamer::StreamOptions;

// === Every byte this test process holds, and the most it held ===

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters are only arithmetic on the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract, passed on as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The counters are the process's: the tests take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    let turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // candle attaches a backtrace to its errors when RUST_BACKTRACE is
    // set, and resolving one reads this binary's debug information (about
    // 100 MB): the process's allocation, not the file's. Off here.
    // SAFETY: every test of this binary holds SERIAL while it runs, so no
    // other thread of ours reads the environment meanwhile.
    unsafe { std::env::set_var("RUST_BACKTRACE", "0") };
    turn
}

// === A small real model ===

const HIDDEN: usize = 64;
const FFN: usize = 128;
const LAYERS: usize = 2;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const VOCAB: usize = 256;

fn matrix(rows: usize, cols: usize, dtype: GgmlDType, seed: u64) -> QTensor {
    let values: Vec<f32> = (0..rows * cols)
        .map(|i| ((i as u64 * 2654435761 + seed * 97) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let t = Tensor::from_vec(values, (rows, cols), &Device::Cpu).unwrap();
    QTensor::quantize(&t, dtype).unwrap()
}

fn ones(n: usize) -> QTensor {
    QTensor::quantize(
        &Tensor::ones(n, candle_core::DType::F32, &Device::Cpu).unwrap(),
        GgmlDType::F32,
    )
    .unwrap()
}

/// Writes the model: Q8_0 matrices (Q4_1 for the MLP), f32 norms.
fn write_model(path: &Path) {
    write_model_with(path, &[]);
}

/// The same, with `extra` metadata after the model's own (strings first,
/// as in real files).
fn write_model_with(path: &Path, extra: &[(&str, Value)]) {
    let hd = HIDDEN / HEADS;
    let mut tensors = vec![
        (
            "token_embd.weight".to_string(),
            matrix(VOCAB, HIDDEN, GgmlDType::Q8_0, 1),
        ),
        ("output_norm.weight".to_string(), ones(HIDDEN)),
    ];
    for l in 0..LAYERS {
        let n = |s: &str| format!("blk.{l}.{s}.weight");
        let s = l as u64 * 10;
        tensors.extend([
            (n("attn_norm"), ones(HIDDEN)),
            (n("attn_q"), matrix(HIDDEN, HIDDEN, GgmlDType::Q8_0, s + 2)),
            (
                n("attn_k"),
                matrix(KV_HEADS * hd, HIDDEN, GgmlDType::Q8_0, s + 3),
            ),
            (
                n("attn_v"),
                matrix(KV_HEADS * hd, HIDDEN, GgmlDType::Q8_0, s + 4),
            ),
            (
                n("attn_output"),
                matrix(HIDDEN, HIDDEN, GgmlDType::Q8_0, s + 5),
            ),
            (n("ffn_norm"), ones(HIDDEN)),
            (n("ffn_gate"), matrix(FFN, HIDDEN, GgmlDType::Q4_1, s + 6)),
            (n("ffn_up"), matrix(FFN, HIDDEN, GgmlDType::Q4_1, s + 7)),
            (n("ffn_down"), matrix(HIDDEN, FFN, GgmlDType::Q4_1, s + 8)),
        ]);
    }
    let u = |v: usize| Value::U32(v as u32);
    let metadata = [
        ("general.architecture", Value::String("llama".into())),
        ("general.name", Value::String("hostile".into())),
        ("llama.vocab_size", u(VOCAB)),
        ("llama.context_length", u(512)),
        ("llama.embedding_length", u(HIDDEN)),
        ("llama.feed_forward_length", u(FFN)),
        ("llama.block_count", u(LAYERS)),
        ("llama.attention.head_count", u(HEADS)),
        ("llama.attention.head_count_kv", u(KV_HEADS)),
        ("llama.rope.dimension_count", u(hd)),
        ("llama.rope.freq_base", Value::F32(10000.0)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
    ];
    let meta: Vec<(&str, &Value)> = metadata
        .iter()
        .chain(extra.iter())
        .map(|(k, v)| (*k, v))
        .collect();
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut f = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut f, &meta, &refs).unwrap();
}

// === What the commands do with a file ===

/// Opens and runs `path` as inspect, generate (both engines) and stream
/// (within a budget) would; `Err` is a refusal.
fn exercise(path: &Path) -> Result<(), String> {
    let e = |e: nindub::Error| e.to_string();
    let file = GgufFile::open(path).map_err(e)?;
    file.architecture().map_err(e)?;
    let _ = file.tensors();
    let source = ModelSource::open(path).map_err(e)?;
    let file_size = std::fs::metadata(path).map_err(|x| x.to_string())?.len();
    for budget in [None, Some(file_size / 2 + (4 << 20))] {
        let opts = StreamOptions {
            budget,
            context: 32,
            ..Default::default()
        };
        let mut fused = FusedLlama::open(&source, &opts).map_err(e)?;
        fused.forward(&[1, 2, 3]).map_err(e)?;
        fused.forward(&[4]).map_err(e)?;
    }
    let mut candle = Llama::from_gguf(&file, &Device::Cpu).map_err(e)?;
    Decoder::forward(&mut candle, &[1, 2, 3]).map_err(e)?;
    Ok(())
}

/// Runs `exercise` on a mutant: a panic is a failure, and so is a peak of
/// live bytes above a generous bound (64 MiB and 16 times the file: the
/// model dequantized, its caches and the readers' buffers).
fn check(path: &Path, what: &str, failures: &mut Vec<String>) -> bool {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) as usize;
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| exercise(path)));
    let grew = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    let bound = (64 << 20) + 16 * size;
    match outcome {
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{what}: PANIC {msg}"));
            false
        }
        Ok(r) => {
            if grew > bound {
                failures.push(format!("{what}: held {grew} bytes (bound {bound}); {r:?}"));
            }
            r.is_ok()
        }
    }
}

// === Mutations ===

/// A small deterministic generator (xorshift), seeded from the environment.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const EXTREMES: [u64; 8] = [
    0,
    1,
    31,
    1 << 31,
    (1 << 31) - 1,
    u32::MAX as u64,
    i64::MAX as u64,
    u64::MAX,
];

/// Where the header's integer fields lie: each metadata key's u32 value and
/// each tensor's dims and offset (found by the names, which the file
/// spells out), as (position, width).
fn header_fields(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut fields = vec![];
    for key in [
        "llama.context_length",
        "llama.embedding_length",
        "llama.feed_forward_length",
        "llama.block_count",
        "llama.attention.head_count",
        "llama.attention.head_count_kv",
        "llama.rope.dimension_count",
        "llama.vocab_size",
    ] {
        if let Some(p) = spelled_at(bytes, key) {
            // key, then its value type (u32), then the value.
            fields.push((p + 4, 4));
            fields.push((p, 4)); // the value type itself
        }
    }
    for name in [
        "token_embd.weight",
        "blk.0.attn_q.weight",
        "blk.1.ffn_down.weight",
        "output_norm.weight",
    ] {
        if let Some(at) = spelled_at(bytes, name) {
            let dims = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            fields.push((at, 4)); // n_dims
            for d in 0..dims {
                fields.push((at + 4 + 8 * d, 8)); // each dim
            }
            fields.push((at + 4 + 8 * dims, 4)); // dtype
            fields.push((at + 8 + 8 * dims, 8)); // offset
        }
    }
    fields
}

#[test]
fn mutated_models_are_refused_or_run_never_crash() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("model.gguf");
    write_model(&original);
    let mut failures = vec![];
    assert!(
        check(&original, "the original", &mut failures),
        "{failures:?}"
    );
    let bytes = std::fs::read(&original).unwrap();
    let fields = header_fields(&bytes);
    assert!(fields.len() > 20, "header fields found: {}", fields.len());
    // The header and tensor table: where a flip changes meaning.
    let header_end = GgufFile::open(&original)
        .unwrap()
        .content
        .tensor_data_offset as usize;
    let cases = env_or("NINDUB_FUZZ_CASES", 150) as usize;
    let mut rng = Rng(env_or("NINDUB_FUZZ_SEED", 0x5eed_c0de) | 1);
    let mutant = dir.path().join("mutant.gguf");
    let (mut refused, mut ran) = (0, 0);
    for case in 0..cases * 3 {
        let mut m = bytes.clone();
        let what = match case % 3 {
            0 => {
                // Bit flips: mostly in the header, some in the data.
                let mut flips = vec![];
                for _ in 0..1 + rng.below(3) {
                    let at = if rng.below(4) == 0 {
                        rng.below(m.len())
                    } else {
                        rng.below(header_end)
                    };
                    let bit = rng.below(8);
                    m[at] ^= 1 << bit;
                    flips.push(format!("{at}:{bit}"));
                }
                format!("bit flips {}", flips.join(","))
            }
            1 => {
                let len = if rng.below(2) == 0 {
                    rng.below(header_end)
                } else {
                    rng.below(m.len())
                };
                m.truncate(len);
                format!("truncated to {len}")
            }
            _ => {
                let (at, width) = fields[rng.below(fields.len())];
                let v = EXTREMES[rng.below(EXTREMES.len())];
                m[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
                format!("field at {at} ({width} bytes) = {v}")
            }
        };
        std::fs::write(&mutant, &m).unwrap();
        let failed = failures.len();
        if check(&mutant, &what, &mut failures) {
            ran += 1;
        } else {
            refused += 1;
        }
        // NINDUB_FUZZ_KEEP=DIR keeps each failing mutant for a closer look.
        if let (true, Some(keep)) = (
            failures.len() > failed,
            std::env::var_os("NINDUB_FUZZ_KEEP"),
        ) {
            let _ = std::fs::create_dir_all(&keep);
            let _ = std::fs::copy(&mutant, Path::new(&keep).join(format!("case-{case}.gguf")));
        }
    }
    println!(
        "{} mutants: {refused} refused, {ran} ran; {} failures",
        cases * 3,
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        refused > cases,
        "too few refusals ({refused}): the mutations are not reaching the readers"
    );
}

#[test]
fn misaligned_and_overlapping_tensors_are_refused_on_open() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    write_model(&path);
    let bytes = std::fs::read(&path).unwrap();
    let offset_of = |name: &str| {
        let p = spelled_at(&bytes, name).unwrap();
        let dims = u32::from_le_bytes(bytes[p..p + 4].try_into().unwrap()) as usize;
        p + 8 + 8 * dims
    };
    let at = offset_of("blk.0.attn_q.weight");
    let read = |b: &[u8]| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    // One byte off the alignment.
    let mut m = bytes.clone();
    m[at..at + 8].copy_from_slice(&(read(&bytes) + 1).to_le_bytes());
    let shifted = dir.path().join("shifted.gguf");
    std::fs::write(&shifted, &m).unwrap();
    let err = GgufFile::open(&shifted)
        .err()
        .expect("a misaligned tensor is refused")
        .to_string();
    assert!(
        err.contains("alignment") && err.contains("blk.0.attn_q.weight"),
        "{err}"
    );
    // Aligned, but on top of its neighbour.
    let mut m = bytes.clone();
    m[at..at + 8].copy_from_slice(&(read(&bytes) + 32).to_le_bytes());
    let overlapping = dir.path().join("overlapping.gguf");
    std::fs::write(&overlapping, &m).unwrap();
    let err = GgufFile::open(&overlapping)
        .err()
        .expect("overlapping tensors are refused")
        .to_string();
    assert!(err.contains("overlap"), "{err}");
    // Cut at half: the error names the first tensor, in file order, that
    // runs past the end (the one the cut goes through), on every open.
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let whole = GgufFile::open(&path).unwrap();
    let data = whole.content.tensor_data_offset;
    let mut table: Vec<_> = whole.content.tensor_infos.iter().collect();
    table.sort_by_key(|(_, info)| info.offset);
    let sizes = whole.tensors();
    let straddling = table
        .iter()
        .map(|(name, info)| {
            let bytes = sizes.iter().find(|t| &t.name == *name).unwrap().bytes;
            (name.as_str(), data + info.offset + bytes)
        })
        .find(|&(_, end)| end > (bytes.len() / 2) as u64)
        .expect("some tensor lies past the cut")
        .0;
    for _ in 0..8 {
        let err = GgufFile::open(&cut)
            .err()
            .expect("a cut file is refused")
            .to_string();
        assert!(
            err.contains("truncated") && err.contains(&format!("`{straddling}`")),
            "{err}"
        );
    }
    // An alignment of 0 (candle's reader divides by it) or not a power of
    // two, behind string and array metadata as in a real file.
    for bad in [0u32, 3] {
        let path = dir.path().join(format!("align-{bad}.gguf"));
        write_model_with(
            &path,
            &[
                (
                    "tokenizer.ggml.tokens",
                    Value::Array(vec![Value::String("a".into()); 3]),
                ),
                ("general.alignment", Value::U32(bad)),
            ],
        );
        let err = GgufFile::open(&path)
            .err()
            .expect("a bad alignment is refused")
            .to_string();
        assert!(err.contains("power of two"), "{bad}: {err}");
    }
}

#[test]
fn declared_sizes_are_checked_against_the_tensors_before_allocation() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    write_model(&path);
    let bytes = std::fs::read(&path).unwrap();
    let set = |key: &str, v: u32| -> PathBuf {
        let p = spelled_at(&bytes, key).unwrap() + 4;
        let mut m = bytes.clone();
        m[p..p + 4].copy_from_slice(&v.to_le_bytes());
        let out = dir.path().join(format!("{key}-{v}.gguf"));
        std::fs::write(&out, m).unwrap();
        out
    };
    // The block count and the embedding width, far beyond the tensors.
    for (key, field) in [
        ("llama.block_count", "block_count"),
        ("llama.embedding_length", "embedding_length"),
    ] {
        for v in [(1u32 << 31) - 1, 3] {
            let err = GgufFile::open(&set(key, v))
                .unwrap()
                .architecture()
                .unwrap_err()
                .to_string();
            assert!(err.contains(field), "{key} = {v}: {err}");
        }
    }
    // A context of 2^31 - 1 positions is a claim, not an allocation: the
    // model opens, reserves what is asked for, and runs.
    let huge = set("llama.context_length", (1 << 31) - 1);
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    exercise(&huge).unwrap();
    let mut candle = Llama::from_gguf(&GgufFile::open(&huge).unwrap(), &Device::Cpu).unwrap();
    assert!(candle.capacity() <= nindub::model::arch::DEFAULT_CONTEXT);
    let err = candle.reserve(usize::MAX).unwrap_err().to_string();
    assert!(err.contains("positions"), "{err}");
    assert!(PEAK.load(Ordering::Relaxed) - before < 256 << 20);
}

/// A shard directory whose manifest is tampered with: truncated, bit
/// flipped, numbers set to extremes, names pointing elsewhere. Opening it
/// (hashes checked or not) gives an error or the model, never a panic.
#[test]
fn tampered_shard_manifests_are_refused_or_run_never_crash() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.gguf");
    write_model(&model);
    let shards = dir.path().join("shards");
    nindub::stream::shard::split(&model, &shards, false).unwrap();
    let manifest_path = shards.join(nindub::stream::manifest::MANIFEST);
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    let run = |verified: bool| -> Result<(), String> {
        let e = |e: nindub::Error| e.to_string();
        let source = if verified {
            ModelSource::open(&shards)
        } else {
            ModelSource::open_unverified(&shards)
        }
        .map_err(e)?;
        let opts = StreamOptions {
            budget: Some(8 << 20),
            context: 16,
            ..Default::default()
        };
        FusedLlama::open(&source, &opts)
            .map_err(e)?
            .forward(&[1, 2])
            .map_err(e)?;
        Ok(())
    };
    run(true).unwrap();
    let numbers: Vec<(usize, usize)> = {
        let b = manifest.as_bytes();
        let mut spans = vec![];
        let mut i = 0;
        while i < b.len() {
            if b[i].is_ascii_digit() && i > 0 && (b[i - 1] == b' ' || b[i - 1] == b':') {
                let start = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                spans.push((start, i));
            }
            i += 1;
        }
        spans
    };
    let strings = ["base.gguf", "layer-000.gguf", "layer-001.gguf", "\"llama\""];
    let cases = env_or("NINDUB_FUZZ_CASES", 150) as usize;
    let mut rng = Rng(env_or("NINDUB_FUZZ_SEED", 0x5eed_c0de) | 1);
    let mut failures = vec![];
    for case in 0..cases {
        let mut m = manifest.clone().into_bytes();
        let what = match case % 4 {
            0 => {
                let at = rng.below(m.len());
                m[at] ^= 1 << rng.below(8);
                format!("bit flip at {at}")
            }
            1 => {
                let len = rng.below(m.len());
                m.truncate(len);
                format!("truncated to {len}")
            }
            2 if !numbers.is_empty() => {
                let (s, e) = numbers[rng.below(numbers.len())];
                let v = [
                    "0",
                    "18446744073709551615",
                    "18446744073709551616",
                    "-1",
                    "1e308",
                    "4294967296",
                ][rng.below(6)];
                m.splice(s..e, v.bytes());
                format!("number at {s} = {v}")
            }
            _ => {
                let from = strings[rng.below(strings.len())];
                let to = [
                    "../model.gguf",
                    "/etc/passwd",
                    "",
                    "base.gguf",
                    "layer-000.gguf",
                    "\"mistral\"",
                ][rng.below(6)];
                let text = String::from_utf8_lossy(&m).replacen(from, to, 1);
                m = text.into_bytes();
                format!("{from} -> {to}")
            }
        };
        std::fs::write(&manifest_path, &m).unwrap();
        for verified in [true, false] {
            if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(verified)))
            {
                let msg = p.downcast_ref::<String>().cloned().unwrap_or_default();
                failures.push(format!("{what} (verified {verified}): PANIC {msg}"));
            }
        }
    }
    std::fs::write(&manifest_path, &manifest).unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
