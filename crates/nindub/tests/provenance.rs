//! The Grimoire of Ownership on the real model, through the command line:
//! a lineage recorded by `quantize` and `split` verifies; one flipped bit
//! is named by its tensor; a signature refuses an edited manifest and a
//! stranger's key; truncated and foreign files are refused with a reason;
//! a royalty split is exact; the IP metadata has Story's fields.

use std::path::Path;
use std::process::{Command, Output};

fn nindub(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nindub"))
        .current_dir(dir)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the nindub binary runs")
}

fn ok(o: &Output) -> String {
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(o.status.success(), "{out}\n{err}");
    out
}

fn refused(o: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    text
}

#[test]
fn a_recorded_lineage_verifies_and_every_forgery_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(nindub::assets::smollm2().unwrap(), d.join("base.gguf")).unwrap();
    ok(&nindub(
        d,
        &["provenance", "record", "base.gguf", "--rev-share", "5"],
    ));
    let q = ok(&nindub(
        d,
        &[
            "quantize",
            "--scheme",
            "int8-g32",
            "--allow-requantize",
            "base.gguf",
            "q8.gguf",
        ],
    ));
    assert!(q.contains("provenance: q8.gguf.provenance.json"), "{q}");
    let s = ok(&nindub(
        d,
        &["split", "--model", "q8.gguf", "--out", "shards"],
    ));
    assert!(s.contains("split of"), "{s}");

    // The tree: quantized under the base, the split under the quantized.
    let tree = ok(&nindub(d, &["provenance", "tree", "."]));
    let lines: Vec<&str> = tree.lines().collect();
    assert_eq!(lines.len(), 3, "{tree}");
    assert!(
        lines[1].contains("quantized") && lines[1].contains("[edge ok]"),
        "{tree}"
    );
    assert!(
        lines[2].contains("split") && lines[2].contains("[edge ok]"),
        "{tree}"
    );

    // Verification, the edge, the signature.
    ok(&nindub(
        d,
        &["provenance", "keygen", "--out", "creator.key"],
    ));
    let k = refused(&nindub(
        d,
        &["provenance", "keygen", "--out", "creator.key"],
    ));
    assert!(k.contains("never overwritten"), "{k}");
    ok(&nindub(
        d,
        &["provenance", "sign", "q8.gguf", "--key", "creator.key"],
    ));
    let key: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("creator.key")).unwrap()).unwrap();
    let public = key["public"].as_str().unwrap();
    let v = ok(&nindub(
        d,
        &[
            "provenance",
            "verify",
            "q8.gguf",
            "--parent",
            "base.gguf",
            "--trust",
            public,
        ],
    ));
    assert!(v.contains("signature: valid, by the trusted key"), "{v}");
    assert!(v.contains("edge from") && v.contains(": ok"), "{v}");
    ok(&nindub(
        d,
        &["provenance", "verify", "shards", "--parent", "q8.gguf"],
    ));

    // A stranger's trust, then an edited manifest.
    let other = "00".repeat(32);
    let t = refused(&nindub(
        d,
        &["provenance", "verify", "q8.gguf", "--trust", &other],
    ));
    assert!(t.contains("not by the trusted key"), "{t}");
    let sidecar = d.join("q8.gguf.provenance.json");
    let text = std::fs::read_to_string(&sidecar).unwrap();
    std::fs::write(
        &sidecar,
        text.replacen(
            "\"relation\": \"quantized\"",
            "\"relation\": \"fine-tuned\"",
            1,
        ),
    )
    .unwrap();
    let e = refused(&nindub(d, &["provenance", "verify", "q8.gguf"]));
    assert!(e.contains("changed after signing"), "{e}");
    std::fs::write(&sidecar, &text).unwrap();

    // One flipped bit, named by its tensor; the file itself is untouched
    // by verification.
    let gguf = nindub::model::gguf::GgufFile::open(&d.join("q8.gguf")).unwrap();
    let info = &gguf.content.tensor_infos["blk.7.ffn_down.weight"];
    let at = (gguf.content.tensor_data_offset + info.offset + 5) as usize;
    let mut bytes = std::fs::read(d.join("q8.gguf")).unwrap();
    bytes[at] ^= 0x10;
    std::fs::write(d.join("q8.gguf"), &bytes).unwrap();
    let f = refused(&nindub(d, &["provenance", "verify", "q8.gguf"]));
    let first = f.lines().find(|l| l.starts_with("CHANGED")).unwrap();
    assert!(
        first.starts_with("CHANGED tensor blk.7.ffn_down.weight"),
        "{f}"
    );
    assert_eq!(std::fs::read(d.join("q8.gguf")).unwrap(), bytes);

    // A shard replaced: named by the shard's tensors.
    let layer = d
        .join("shards")
        .join(nindub::stream::manifest::layer_file_name(3));
    let mut shard = std::fs::read(&layer).unwrap();
    let n = shard.len();
    shard[n - 7] ^= 0x01;
    std::fs::write(&layer, &shard).unwrap();
    let sh = refused(&nindub(d, &["provenance", "verify", "shards"]));
    assert!(sh.contains("CHANGED tensor blk.3."), "{sh}");

    // Royalties: 100 tokens paid to the quantized model, exact.
    let r = ok(&nindub(
        d,
        &[
            "provenance",
            "royalty",
            ".",
            "--pay",
            "q8.gguf",
            "--amount",
            "100.000000000000000001",
        ],
    ));
    assert!(r.contains("total (exact: true)"), "{r}");
    assert!(r.contains("5  base.gguf") || r.contains("  5  "), "{r}");
    let bad = refused(&nindub(
        d,
        &[
            "provenance",
            "royalty",
            ".",
            "--pay",
            "q8.gguf",
            "--amount",
            "1e3",
        ],
    ));
    assert!(bad.contains("not a decimal number"), "{bad}");

    // The IP metadata: Story's fields, the file's hash, a signature.
    ok(&nindub(
        d,
        &[
            "provenance",
            "export",
            "base.gguf",
            "--key",
            "creator.key",
            "--title",
            "SmolLM2",
            "--creator",
            "A. Technomancer",
            "--out",
            "ip.json",
        ],
    ));
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("ip.json")).unwrap()).unwrap();
    for field in [
        "title",
        "description",
        "createdAt",
        "creators",
        "mediaHash",
        "mediaType",
    ] {
        assert!(meta.get(field).is_some(), "{field} missing: {meta}");
    }
    let sha = nindub::fsx::sha256_file(&d.join("base.gguf")).unwrap();
    assert_eq!(meta["mediaHash"], format!("0x{sha}"));
    assert!(d.join("ip.json.sig").is_file());
    let bad_addr = refused(&nindub(
        d,
        &[
            "provenance",
            "export",
            "base.gguf",
            "--key",
            "creator.key",
            "--title",
            "x",
            "--creator",
            "y",
            "--address",
            "0x12",
            "--out",
            "ip2.json",
        ],
    ));
    assert!(bad_addr.contains("40 hex digits"), "{bad_addr}");
}

#[test]
fn truncated_foreign_and_missing_inputs_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = std::fs::read(nindub::assets::smollm2().unwrap()).unwrap();
    std::fs::write(d.join("cut.gguf"), &model[..model.len() / 2]).unwrap();
    let cut = refused(&nindub(d, &["provenance", "show", "cut.gguf"]));
    assert!(cut.contains("cut.gguf"), "{cut}");
    std::fs::write(d.join("notes.gguf"), b"these are not weights").unwrap();
    let foreign = refused(&nindub(d, &["provenance", "show", "notes.gguf"]));
    assert!(foreign.contains("is not a GGUF file"), "{foreign}");
    std::fs::write(
        d.join("w.safetensors"),
        b"\x10\x00\x00\x00\x00\x00\x00\x00{}",
    )
    .unwrap();
    let st = refused(&nindub(d, &["provenance", "show", "w.safetensors"]));
    assert!(st.contains("is not a safetensors file"), "{st}");
    std::fs::write(d.join("x.gguf"), &model[..4096]).unwrap();
    let none = refused(&nindub(d, &["provenance", "verify", "x.gguf"]));
    assert!(none.contains("x.gguf.provenance.json"), "{none}");
    std::fs::write(d.join("x.gguf.provenance.json"), b"{\"format\": 3}").unwrap();
    let garbage = refused(&nindub(d, &["provenance", "tree", "."]));
    assert!(garbage.contains("provenance manifest"), "{garbage}");
    std::fs::write(d.join("bad.key"), b"{}").unwrap();
    std::fs::copy(nindub::assets::smollm2().unwrap(), d.join("m.gguf")).unwrap();
    ok(&nindub(
        d,
        &["provenance", "record", "m.gguf", "--license", "apache-2.0"],
    ));
    let key = refused(&nindub(
        d,
        &["provenance", "sign", "m.gguf", "--key", "bad.key"],
    ));
    assert!(key.contains("bad.key"), "{key}");
    let rel = refused(&nindub(
        d,
        &["provenance", "record", "m.gguf", "--relation", "stolen"],
    ));
    assert!(rel.contains("known: quantized"), "{rel}");
    let pct = refused(&nindub(
        d,
        &["provenance", "record", "m.gguf", "--rev-share", "140"],
    ));
    assert!(pct.contains("between 0 and 100"), "{pct}");
}

#[test]
fn a_distilled_student_speaks_its_teachers_vocabulary_across_formats() {
    use nindub::provenance::{Relation, record_derivative};
    let dir = tempfile::tempdir().unwrap();
    let teacher = nindub::assets::smollm2().unwrap();
    let gguf = nindub::model::gguf::GgufFile::open(&teacher).unwrap();
    let tok = nindub::model::tokenizer::GgufTokenizer::from_gguf(&gguf).unwrap();
    // A student as `distill` saves one: f32 safetensors beside the
    // teacher's tokenizer written as tokenizer.json.
    let student = dir.path().join("student");
    std::fs::create_dir_all(&student).unwrap();
    let json = tok.inner.to_string(true).unwrap();
    std::fs::write(student.join("tokenizer.json"), &json).unwrap();
    let w = candle_core::Tensor::zeros((4, 8), candle_core::DType::F32, &candle_core::Device::Cpu)
        .unwrap();
    let weights = std::collections::HashMap::from([("model.layers.0.w".to_string(), w)]);
    let model = student.join("model.safetensors");
    candle_core::safetensors::save(&weights, &model).unwrap();
    let (m, problems) = record_derivative(&teacher, &model, Relation::Distilled, None).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_ne!(m.tokenizer, None, "the files differ ...");
    assert_eq!(
        m.vocabulary.as_ref().map(|v| &v.value),
        nindub::provenance::manifest_of(&teacher, &mut |_, _| {})
            .unwrap()
            .vocabulary
            .as_ref()
            .map(|v| &v.value),
        "... the vocabulary does not"
    );
    // One token renamed: the edge breaks.
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let vocab = v["model"]["vocab"].as_object_mut().unwrap();
    let (k, id) = vocab
        .iter()
        .find(|(_, id)| id.as_u64() == Some(1000))
        .map(|(k, id)| (k.clone(), id.clone()))
        .unwrap();
    vocab.remove(&k);
    vocab.insert(format!("{k}~"), id);
    std::fs::write(student.join("tokenizer.json"), v.to_string()).unwrap();
    let (_, problems) = record_derivative(&teacher, &model, Relation::Distilled, None).unwrap();
    assert_eq!(problems, ["the vocabulary changed"]);
}
