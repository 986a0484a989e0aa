//! Per-layer shards (`nindub split`) and synthetic models: the shards hold
//! exactly the original's bytes, damaged or incomplete directories are
//! refused with an error naming the file, and a synthetic model has the
//! shape, size and weight magnitude its spec says.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use candle_core::quantized::GgmlDType;
use nindub::assets;
use nindub::model::gguf::GgufFile;
use nindub::model::tokenizer::GgufTokenizer;
use nindub::stream::source::ModelSource;
use nindub::stream::synth::{self, SynthSpec};
use nindub::stream::{manifest, shard};

fn smollm2() -> PathBuf {
    assets::smollm2().unwrap()
}

/// SmolLM2 split into a fresh temporary directory.
fn split_smollm2() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("shards");
    let t = Instant::now();
    shard::split(&smollm2(), &out, false).unwrap();
    eprintln!("split SmolLM2 in {:.2?}", t.elapsed());
    (tmp, out)
}

fn err_text<T>(r: nindub::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn split_shards_hold_the_originals_bytes_and_tokenizer() {
    let original = ModelSource::open(&smollm2()).unwrap();
    let (_tmp, dir) = split_smollm2();
    let manifest = manifest::read_manifest(&dir).unwrap();
    let arch = original.architecture().unwrap();
    assert_eq!(manifest.layers.len() as u64, arch.num_layers);
    assert_eq!(manifest.architecture, "llama");
    assert_eq!(manifest.source, "SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(dir.join("base.gguf").is_file());
    assert!(dir.join("layer-000.gguf").is_file());

    let shards = ModelSource::open(&dir).unwrap();
    assert_eq!(shards.files.len(), manifest.layers.len() + 1);
    assert_eq!(shards.architecture().unwrap(), arch);

    let names: Vec<String> = original
        .base()
        .tensors()
        .into_iter()
        .map(|t| t.name)
        .collect();
    let shard_count: usize = shards
        .files
        .iter()
        .map(|f| f.content.tensor_infos.len())
        .sum();
    assert_eq!(shard_count, names.len());
    for name in &names {
        let a = original.qtensor(name).unwrap();
        let b = shards.qtensor(name).unwrap();
        assert_eq!(a.dtype(), b.dtype(), "{name}");
        assert_eq!(a.shape(), b.shape(), "{name}");
        assert!(
            a.data().unwrap() == b.data().unwrap(),
            "{name}: bytes differ"
        );
        assert_eq!(
            original.range(name).unwrap().bytes,
            shards.range(name).unwrap().bytes
        );
        // Layer tensors live in their layer's file, the rest in base.gguf.
        let file = shards.range(name).unwrap().file;
        match name.strip_prefix("blk.") {
            Some(rest) => {
                let l: usize = rest.split('.').next().unwrap().parse().unwrap();
                assert_eq!(file, l + 1, "{name}");
            }
            None => assert_eq!(file, 0, "{name}"),
        }
    }

    let ours = GgufTokenizer::from_gguf(shards.base()).unwrap();
    let theirs = GgufTokenizer::from_gguf(original.base()).unwrap();
    let text = "The Technomancy Codex splits a model into layers, one file each.";
    assert_eq!(ours.encode(text).unwrap(), theirs.encode(text).unwrap());

    // The unverified open agrees.
    let fast = ModelSource::open_unverified(&dir).unwrap();
    assert_eq!(fast.architecture().unwrap(), arch);
}

#[test]
fn split_refuses_a_non_empty_directory_and_a_foreign_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("mine");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "precious").unwrap();
    let e = err_text(shard::split(&smollm2(), &out, false));
    assert!(e.contains("not empty"), "{e}");
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "precious"
    );
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);

    let text = tmp.path().join("model.gguf");
    std::fs::write(&text, "this is not a model, only some text\n".repeat(10)).unwrap();
    match shard::split(&text, &tmp.path().join("out"), false) {
        Err(nindub::Error::Foreign { path, .. }) => assert_eq!(path, text),
        Err(e) => panic!("expected Foreign, got {e}"),
        Ok(_) => panic!("a text file was split"),
    }
    assert!(!tmp.path().join("out").join("manifest.json").exists());
}

/// One split, damaged three ways, each in a copy of its own.
#[test]
fn damaged_or_incomplete_shard_directories_are_refused_naming_the_file() {
    let (_tmp, dir) = split_smollm2();
    let copy = |name: &str| -> PathBuf {
        let to = dir.parent().unwrap().join(name);
        std::fs::create_dir(&to).unwrap();
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
        to
    };

    // Truncated layer: the size check names it, verified or not.
    let truncated = copy("truncated");
    let victim = truncated.join("layer-003.gguf");
    let len = std::fs::metadata(&victim).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&victim)
        .unwrap();
    f.set_len(len - 1000).unwrap();
    drop(f);
    for e in [
        err_text(ModelSource::open(&truncated)),
        err_text(ModelSource::open_unverified(&truncated)),
    ] {
        assert!(
            e.contains("layer-003.gguf") && e.contains("truncated"),
            "{e}"
        );
    }

    // One flipped byte: the hash check names the file.
    let flipped = copy("flipped");
    let victim = flipped.join("layer-007.gguf");
    let mut bytes = std::fs::read(&victim).unwrap();
    let i = bytes.len() - 100;
    bytes[i] ^= 0x10;
    std::fs::write(&victim, &bytes).unwrap();
    let e = err_text(ModelSource::open(&flipped));
    assert!(
        e.contains("layer-007.gguf") && e.contains("SHA-256 mismatch"),
        "{e}"
    );
    let e = err_text(manifest::verify(&flipped));
    assert!(e.contains("layer-007.gguf"), "{e}");

    // An interrupted split: no manifest.
    let interrupted = copy("interrupted");
    std::fs::remove_file(interrupted.join("manifest.json")).unwrap();
    let e = err_text(ModelSource::open(&interrupted));
    assert!(
        e.contains("not a shard directory (no manifest.json)"),
        "{e}"
    );
    assert!(e.contains("was the split interrupted?"), "{e}");

    // A file the manifest lists is gone.
    let missing = copy("missing");
    std::fs::remove_file(missing.join("layer-000.gguf")).unwrap();
    let e = err_text(ModelSource::open(&missing));
    assert!(e.contains("layer-000.gguf") && e.contains("missing"), "{e}");

    // The intact split still opens.
    ModelSource::open(&dir).unwrap();
}

fn tiny_spec() -> SynthSpec {
    SynthSpec {
        name: "tiny".into(),
        hidden: 128,
        intermediate: 320,
        layers: 3,
        heads: 4,
        kv_heads: 2,
        vocab: 512,
        context: 256,
        dtype: GgmlDType::Q4_0,
        seed: 7,
    }
}

fn dir_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

fn std_of(values: &[f32]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
    (values
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt()
}

#[test]
fn a_synthetic_model_has_its_specs_shape_size_and_magnitude() {
    let tmp = tempfile::tempdir().unwrap();
    for dtype in [GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q8_0] {
        let spec = tiny_spec().with_dtype(dtype);
        let out = tmp.path().join(nindub::model::gguf::dtype_name(dtype));
        let manifest = synth::write(&spec, None, &out, false).unwrap();
        assert_eq!(manifest.layers.len(), spec.layers);
        assert_eq!(manifest.source, "synthetic");

        let src = ModelSource::open(&out).unwrap();
        let a = src.architecture().unwrap();
        assert_eq!(
            (a.hidden_size, a.intermediate_size, a.num_layers),
            (128, 320, 3)
        );
        assert_eq!((a.num_heads, a.num_kv_heads, a.head_dim), (4, 2, 32));
        assert_eq!((a.vocab_size, a.max_context), (512, 256));
        assert!(a.tied_embeddings);
        assert_eq!(a.name, "tiny (synthetic)");

        // The weights' bytes are what the spec says.
        let names: Vec<String> = src
            .files
            .iter()
            .flat_map(|f| f.content.tensor_infos.keys().cloned())
            .collect();
        assert_eq!(names.len(), 2 + 9 * spec.layers);
        let total: u64 = names
            .iter()
            .map(|n| src.range(n).unwrap().bytes as u64)
            .sum();
        assert_eq!(total, spec.bytes(), "{dtype:?}");
        let layer0: u64 = names
            .iter()
            .filter(|n| n.starts_with("blk.0."))
            .map(|n| src.range(n).unwrap().bytes as u64)
            .sum();
        assert_eq!(layer0, spec.layer_bytes());
        let params: u64 = names
            .iter()
            .map(|n| src.qtensor(n).unwrap().shape().elem_count() as u64)
            .sum();
        assert_eq!(params, spec.params());

        // Weights of about 1/sqrt(cols), norms of ones, in the right dtype.
        for (name, cols) in [("blk.1.attn_q.weight", 128), ("blk.2.ffn_down.weight", 320)] {
            let q = src.qtensor(name).unwrap();
            assert_eq!(q.dtype(), dtype);
            let w = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap();
            let std = std_of(&w.to_vec1::<f32>().unwrap());
            let target = 1.0 / (cols as f64).sqrt();
            assert!(
                std > target / 2.0 && std < target * 2.0,
                "{dtype:?} {name}: std {std} vs {target}"
            );
        }
        assert_eq!(src.qtensor("token_embd.weight").unwrap().dtype(), dtype);
        let norm = src.qtensor("blk.0.ffn_norm.weight").unwrap();
        let norm = norm
            .dequantize(&Device::Cpu)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(norm.iter().all(|&v| v == 1.0));
    }
}

#[test]
fn the_same_seed_gives_the_same_files_and_another_seed_others() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tiny_spec();
    synth::write(&spec, None, &tmp.path().join("a"), false).unwrap();
    synth::write(&spec, None, &tmp.path().join("b"), false).unwrap();
    synth::write(
        &spec.clone().with_seed(8),
        None,
        &tmp.path().join("c"),
        false,
    )
    .unwrap();
    let (a, b, c) = (
        dir_bytes(&tmp.path().join("a")),
        dir_bytes(&tmp.path().join("b")),
        dir_bytes(&tmp.path().join("c")),
    );
    assert_eq!(a.len(), 2 + spec.layers);
    assert!(a == b, "the same spec gave different bytes");
    let differ = a
        .iter()
        .zip(&c)
        .filter(|((_, x), (_, y))| x != y)
        .map(|((n, _), _)| n.as_str())
        .collect::<Vec<_>>();
    // Every weight file changes with the seed (the manifest with them).
    assert_eq!(differ.len(), a.len(), "{differ:?}");
    // The refusal of a non-empty directory holds for synth too.
    let e = err_text(synth::write(&spec, None, &tmp.path().join("a"), false));
    assert!(e.contains("not empty"), "{e}");
}

#[test]
fn a_synthetic_smollm2_shape_takes_smollm2s_tokenizer() {
    let original = GgufFile::open(&smollm2()).unwrap();
    let spec = SynthSpec::preset("smollm2-135m").unwrap().with_layers(2);
    let full = SynthSpec::preset("smollm2-135m").unwrap();
    // The full preset's weights: 134.5M parameters, as SmolLM2's.
    assert_eq!(full.params(), 134_515_008);
    assert_eq!(full.bytes() - spec.bytes(), 28 * full.layer_bytes());

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("synth");
    synth::write(&spec, Some(&original), &out, false).unwrap();
    let src = ModelSource::open(&out).unwrap();
    let a = src.architecture().unwrap();
    let b = original.architecture().unwrap();
    assert_eq!(
        (
            a.hidden_size,
            a.intermediate_size,
            a.num_heads,
            a.num_kv_heads,
            a.vocab_size
        ),
        (
            b.hidden_size,
            b.intermediate_size,
            b.num_heads,
            b.num_kv_heads,
            b.vocab_size
        )
    );
    assert_eq!(a.num_layers, 2);
    let text = "Hello, synthetic world.";
    assert_eq!(
        GgufTokenizer::from_gguf(src.base())
            .unwrap()
            .encode(text)
            .unwrap(),
        GgufTokenizer::from_gguf(&original)
            .unwrap()
            .encode(text)
            .unwrap()
    );

    // A tokenizer of another vocabulary size is refused.
    let mut other = spec.clone();
    other.vocab = 1024;
    let e = err_text(synth::write(
        &other,
        Some(&original),
        &tmp.path().join("x"),
        false,
    ));
    assert!(e.contains("49152") && e.contains("1024"), "{e}");
    // So are unknown presets and shapes a Llama cannot have.
    assert!(matches!(
        SynthSpec::preset("gpt-5"),
        Err(nindub::Error::UnknownPreset(..))
    ));
    let mut bad = tiny_spec();
    bad.kv_heads = 3;
    assert!(synth::write(&bad, None, &tmp.path().join("y"), false).is_err());
    assert!(!tmp.path().join("y").exists());
}

#[test]
fn presets_have_the_real_shapes() {
    let p = |n| SynthSpec::preset(n).unwrap();
    assert_eq!(p("llama-3-8b").head_dim(), 128);
    assert_eq!(p("llama-3.2-3b").head_dim(), 128);
    assert_eq!(p("llama-3.2-1b").kv_dim(), 512);
    // Layer parameters as the real models (the vocabulary is SmolLM2's).
    assert_eq!(p("llama-3-8b").layer_params(), 218_112_000);
    assert_eq!(p("llama-3.2-1b").layer_params(), 60_821_504);
    // A real architecture's shape.
    let smol = nindub::Architecture::preset("smollm2-135m").unwrap();
    let from = SynthSpec::from_architecture(&smol, GgmlDType::Q4_0).unwrap();
    let preset = p("smollm2-135m");
    assert_eq!(
        (
            from.hidden,
            from.intermediate,
            from.layers,
            from.heads,
            from.kv_heads
        ),
        (
            preset.hidden,
            preset.intermediate,
            preset.layers,
            preset.heads,
            preset.kv_heads
        )
    );
    assert_eq!(from.params(), preset.params());
    let qwen = nindub::Architecture::preset("qwen-2.5-32b").unwrap();
    let qwen = SynthSpec::from_architecture(&qwen, GgmlDType::Q4_0).unwrap();
    assert_eq!(
        (qwen.head_dim(), qwen.layers, qwen.vocab),
        (128, 64, 152_064)
    );
    // Q4_0 stores 18 bytes per 32 weights.
    let s = p("llama-3-8b");
    assert_eq!(
        s.layer_bytes(),
        (s.layer_params() - 2 * 4096) / 32 * 18 + 2 * 4096 * 4
    );
}

/// Throughput of `synth::write` on a real shape (ignored: it writes ~600 MB).
/// `NINDUB_SYNTH_PRESET` picks another preset; run with
/// `cargo test -p nindub --test shard_tests -- --ignored --nocapture`.
#[test]
#[ignore]
fn synth_throughput() {
    let preset = std::env::var("NINDUB_SYNTH_PRESET").unwrap_or_else(|_| "llama-3.2-1b".into());
    let spec = SynthSpec::preset(&preset).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("synth");
    let t = Instant::now();
    let manifest = synth::write(&spec, None, &out, true).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let bytes = manifest.total_bytes();
    eprintln!(
        "{preset}: {:.0} MB in {secs:.2} s = {:.0} MB/s ({} params)",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / secs,
        spec.params()
    );
    let t = Instant::now();
    ModelSource::open(&out).unwrap();
    eprintln!("verified open in {:.2?}", t.elapsed());
}
