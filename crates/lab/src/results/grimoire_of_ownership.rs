//! The Grimoire of Ownership's results: the real models' manifests, a
//! lineage made by the Codex's own tools (quantized, then split), a
//! tampered copy caught by name, signatures, the IP metadata, and a
//! royalty split down the lineage.
//!
//! The signing key is derived from a fixed phrase so that the chapter's
//! signature regenerates byte for byte: a demonstration key, never a
//! creator's.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use nindub::assets;
use nindub::compress::export::{ExportOptions, quantize_gguf};
use nindub::compress::quant::Scheme;
use nindub::provenance::ip::{IpCreator, IpMetadata, LicenseTerms, ZERO_ADDRESS, metadata_hash};
use nindub::provenance::royalty::{MAX_PERCENT, Policy, format_units, parse_units};
use nindub::provenance::{
    self, ContentManifest, Recipe, Registry, Relation, check_edge, record_derivative, sign,
};
use sha2::{Digest as _, Sha256};

use super::{Figures, write};

/// The Codex's demonstration key: SHA-256 of this phrase as the seed.
const DEMO_KEY_PHRASE: &str = "the Technomancy Codex demonstration key: never a creator's";
/// The creation date the exported metadata states (fixed: a generator's
/// output does not depend on the clock).
const CREATED_AT: &str = "2026-12-04T00:00:00Z";
/// The percents the lineage's owners ask of derivatives, in percent.
const BASE_SHARE: f64 = 5.0;
const DERIVED_SHARE: f64 = 10.0;

fn short(h: &str) -> &str {
    &h[..16.min(h.len())]
}

fn pct_units(pct: f64) -> u32 {
    (pct / 100.0 * f64::from(MAX_PERCENT)).round() as u32
}

pub fn generate(out: &Path) -> Result<()> {
    let mut figs = Figures::default();
    let scratch = tempfile::tempdir()?;
    let gguf = assets::resolve("smollm2")?;
    let minilm = assets::resolve("minilm")?;
    let minilm = if minilm.is_dir() {
        minilm.join("model.safetensors")
    } else {
        minilm
    };

    // 1. The real models' manifests.
    let smol = ContentManifest::compute(&gguf, &mut |_, _| {})?;
    let mini = ContentManifest::compute(&minilm, &mut |_, _| {})?;
    let mut t = String::new();
    writeln!(
        t,
        "| | SmolLM2-135M-Instruct (GGUF Q4_1) | all-MiniLM-L6-v2 (safetensors f32) |"
    )?;
    writeln!(t, "|---|---|---|")?;
    let row = |t: &mut String, k: &str, a: String, b: String| writeln!(t, "| {k} | {a} | {b} |");
    row(
        &mut t,
        "root",
        format!("`{}…`", short(&smol.root)),
        format!("`{}…`", short(&mini.root)),
    )?;
    row(
        &mut t,
        "file SHA-256",
        format!("`{}…`", short(&smol.files[0].sha256)),
        format!("`{}…`", short(&mini.files[0].sha256)),
    )?;
    row(
        &mut t,
        "architecture",
        opt(&smol.architecture),
        opt(&mini.architecture),
    )?;
    row(
        &mut t,
        "parameters",
        smol.parameters.to_string(),
        mini.parameters.to_string(),
    )?;
    row(
        &mut t,
        "tensors / groups",
        format!("{} / {}", smol.tensors.len(), smol.groups.len()),
        format!("{} / {}", mini.tensors.len(), mini.groups.len()),
    )?;
    let tok = |m: &ContentManifest| {
        m.tokenizer.as_ref().map_or("none".into(), |t| {
            format!("`{}…` ({})", short(&t.value), t.source)
        })
    };
    row(&mut t, "tokenizer", tok(&smol), tok(&mini))?;
    let lic = |m: &ContentManifest| {
        m.license
            .as_ref()
            .map_or("not stated in the file".into(), |l| {
                format!("{} (`{}`)", l.value, l.source)
            })
    };
    row(&mut t, "license", lic(&smol), lic(&mini))?;
    write(out, "manifests.md", &t)?;
    figs.text("grimoire.smol.root", &format!("`{}…`", short(&smol.root)));
    figs.number("grimoire.smol.tensors", smol.tensors.len() as f64, 0, "");
    figs.number("grimoire.smol.groups", smol.groups.len() as f64, 0, "");
    figs.number(
        "grimoire.smol.layers",
        (smol.groups.len() - 1) as f64,
        0,
        "",
    );
    figs.number("grimoire.mini.tensors", mini.tensors.len() as f64, 0, "");
    figs.text(
        "grimoire.smol.license",
        &smol
            .license
            .as_ref()
            .map_or("none".into(), |l| format!("`{}`", l.value)),
    );

    // 2. A lineage made by the Codex's tools: the published file with its
    // owner's terms; quantized to int8-g32 (terms of its own); the
    // quantized model split into shards for NINDUB.
    let dir = scratch.path().join("models");
    std::fs::create_dir_all(&dir)?;
    let base = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    std::fs::copy(&gguf, &base)?;
    let mut base_m = smol.clone();
    base_m.terms = Some(LicenseTerms::commercial_remix(
        pct_units(BASE_SHARE),
        ZERO_ADDRESS,
        ZERO_ADDRESS,
    )?);
    base_m.write_recorded(&base)?;
    let q8 = dir.join("SmolLM2-135M-Instruct.int8-g32.gguf");
    quantize_gguf(
        &base,
        &q8,
        Scheme::parse("int8-g32")?,
        &ExportOptions::REQUANTIZE,
    )?;
    let recipe = |cmd: &str| Recipe {
        command: cmd.split_whitespace().map(str::to_string).collect(),
        run: None,
        commit: None,
    };
    let (mut q8_m, problems) = record_derivative(
        &base,
        &q8,
        Relation::Quantized,
        Some(recipe(
            "quantize --scheme int8-g32 --allow-requantize SmolLM2-135M-Instruct.Q4_1.gguf SmolLM2-135M-Instruct.int8-g32.gguf",
        )),
    )?;
    anyhow::ensure!(problems.is_empty(), "the quantized edge: {problems:?}");
    q8_m.terms = Some(LicenseTerms::commercial_remix(
        pct_units(DERIVED_SHARE),
        ZERO_ADDRESS,
        ZERO_ADDRESS,
    )?);
    q8_m.write_recorded(&q8)?;
    let shards = dir.join("int8-g32-shards");
    nindub::stream::shard::split(&q8, &shards, false)?;
    let (shards_m, problems) = record_derivative(
        &q8,
        &shards,
        Relation::Split,
        Some(recipe(
            "split --model SmolLM2-135M-Instruct.int8-g32.gguf --out int8-g32-shards",
        )),
    )?;
    anyhow::ensure!(problems.is_empty(), "the split edge: {problems:?}");
    let reg = Registry::scan(std::slice::from_ref(&dir))?;
    write(out, "lineage.txt", &reg.render())?;
    let retyped = q8_m
        .tensors
        .iter()
        .zip(&smol.tensors)
        .filter(|(a, b)| a.dtype != b.dtype)
        .count();
    figs.text("grimoire.q8.root", &format!("`{}…`", short(&q8_m.root)));
    figs.number("grimoire.q8.retyped", retyped as f64, 0, "");
    figs.number("grimoire.shards.files", shards_m.files.len() as f64, 0, "");
    figs.text(
        "grimoire.shards.same_root",
        if shards_m.root == q8_m.root {
            "the same root"
        } else {
            "a different root"
        },
    );

    // 3. Tampering: one bit of one tensor, in a copy of the quantized file.
    let bad = dir.join("tampered.gguf");
    std::fs::copy(&q8, &bad)?;
    std::fs::copy(
        provenance::sidecar_path(&q8),
        provenance::sidecar_path(&bad),
    )?;
    let file = nindub::model::gguf::GgufFile::open(&bad)?;
    let mut infos: Vec<_> = file.content.tensor_infos.iter().collect();
    infos.sort_by_key(|(_, i)| i.offset);
    let (victim, info) = infos[infos.len() / 2];
    let at = file.content.tensor_data_offset + info.offset + 1000;
    let mut bytes = std::fs::read(&bad)?;
    bytes[at as usize] ^= 0x01;
    std::fs::write(&bad, &bytes)?;
    drop(bytes);
    let v = provenance::verify(&bad, None, &mut |_, _| {})?;
    let mut tx = String::new();
    writeln!(
        tx,
        "$ nindub provenance verify tampered.gguf   # one bit flipped at byte {at}"
    )?;
    for d in &v.discrepancies {
        writeln!(
            tx,
            "CHANGED {}: recorded {}, found {}",
            d.what, d.recorded, d.found
        )?;
    }
    let first = v
        .discrepancies
        .first()
        .context("the flipped bit went unseen")?;
    anyhow::ensure!(
        first.what == format!("tensor {victim}"),
        "named {}",
        first.what
    );
    // A false claim: the quantized file passed off as a split of the base.
    let mut liar = q8_m.clone();
    liar.parents[0].relation = Relation::Split;
    let lies = check_edge(&base_m, &liar);
    writeln!(
        tx,
        "\n$ # the same file, claiming to be a split of the published model"
    )?;
    for p in &lies {
        writeln!(tx, "edge: {p}")?;
    }
    write(out, "tamper.txt", &tx)?;
    figs.text("grimoire.tamper.tensor", &format!("`{victim}`"));
    figs.number("grimoire.tamper.byte", at as f64, 0, "");
    figs.number("grimoire.tamper.found", v.discrepancies.len() as f64, 0, "");

    // 4. Signatures, with the demonstration key.
    let seed: [u8; 32] = Sha256::digest(DEMO_KEY_PHRASE.as_bytes()).into();
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let public = sign::public_hex(&key.verifying_key());
    let sig = provenance::sign_recorded(&q8, &key)?;
    let recorded = std::fs::read(provenance::sidecar_path(&q8))?;
    let stranger = ed25519_dalek::SigningKey::from_bytes(&Sha256::digest(b"a stranger").into());
    let mut sx = String::new();
    writeln!(sx, "signer's public key  {public}")?;
    writeln!(sx, "manifest SHA-256     {}", sig.sha256)?;
    writeln!(sx, "signature            {}…", &sig.signature[..32])?;
    let verdict = |r: Result<(), sign::Refusal>| match r {
        Ok(()) => "valid".to_string(),
        Err(e) => format!("refused: {e}"),
    };
    writeln!(
        sx,
        "the manifest as signed, trusted key: {}",
        verdict(sign::verify(&sig, &recorded, Some(&public)))
    )?;
    let mut edited = recorded.clone();
    let text = String::from_utf8(edited.clone())?;
    let pos = text
        .find("\"commercialRevShare\": 10000000")
        .context("terms in the manifest")?;
    edited.splice(
        pos..pos + 30,
        b"\"commercialRevShare\": 90000000".iter().copied(),
    );
    writeln!(
        sx,
        "revenue share edited 10 % → 90 %:    {}",
        verdict(sign::verify(&sig, &edited, Some(&public)))
    )?;
    let theirs = sign::sign(&stranger, &edited);
    writeln!(
        sx,
        "re-signed by a stranger:             {}",
        verdict(sign::verify(&theirs, &edited, Some(&public)))
    )?;
    write(out, "signature.txt", &sx)?;

    // 5. The IP metadata of the quantized model, as Story reads it.
    let meta = IpMetadata::of(
        &q8_m,
        "SmolLM2-135M-Instruct, int8-g32 (the Technomancy Codex)",
        CREATED_AT,
        vec![IpCreator {
            name: "The Technomancy Codex (demonstration)".into(),
            address: ZERO_ADDRESS.into(),
            contribution_percent: 100,
        }],
        "",
    )?;
    let meta_bytes = meta.to_bytes();
    write(
        out,
        "ip-metadata.json",
        &(String::from_utf8(meta_bytes.clone())? + "\n"),
    )?;
    let mut terms = serde_json::to_string_pretty(q8_m.terms.as_ref().context("terms")?)?;
    terms.push('\n');
    write(out, "pil-terms.json", &terms)?;
    figs.text(
        "grimoire.metadata.hash",
        &format!("`{}…`", &metadata_hash(&meta_bytes)[..18]),
    );

    // 6. Royalties: 100 $WIP paid to the shards (the served model).
    let lineage = reg.royalty_lineage();
    let payee = reg.find(&provenance::sidecar_path(&shards).to_string_lossy())?;
    let amount = parse_units("100", 18)?;
    let lap = lineage.split(payee, amount, Policy::Lap)?;
    let lrp = lineage.split(payee, amount, Policy::Lrp)?;
    let mut rt = String::new();
    writeln!(rt, "| model | asks of its derivatives | LAP | LRP |")?;
    writeln!(rt, "|---|---|---|---|")?;
    let asks = |m: &ContentManifest| {
        m.terms.as_ref().map_or("—".to_string(), |t| {
            format!(
                "{} %",
                f64::from(t.commercial_rev_share) / f64::from(MAX_PERCENT) * 100.0
            )
        })
    };
    for (i, (path, m)) in reg.manifests.iter().enumerate() {
        let name = if path.ends_with("provenance.json")
            && path.parent().is_some_and(|p| p.is_dir() && p != dir)
        {
            "int8-g32 shards (paid)".to_string()
        } else {
            path.file_name()
                .map(|f| f.to_string_lossy().replace(".provenance.json", ""))
                .unwrap_or_default()
        };
        if name == "tampered.gguf" {
            continue;
        }
        writeln!(
            rt,
            "| {name} | {} | {} | {} |",
            asks(m),
            format_units(lap[i], 18),
            format_units(lrp[i], 18)
        )?;
    }
    writeln!(
        rt,
        "| **total** | | {} | {} |",
        format_units(lap.iter().sum(), 18),
        format_units(lrp.iter().sum(), 18)
    )?;
    write(out, "royalty.md", &rt)?;
    let base_i = reg.find(&provenance::sidecar_path(&base).to_string_lossy())?;
    let q8_i = reg.find(&provenance::sidecar_path(&q8).to_string_lossy())?;
    for (name, v) in [
        ("grimoire.royalty.lap.base", lap[base_i]),
        ("grimoire.royalty.lrp.base", lrp[base_i]),
        ("grimoire.royalty.lap.q8", lap[q8_i]),
        ("grimoire.royalty.lrp.q8", lrp[q8_i]),
        ("grimoire.royalty.lap.payee", lap[payee]),
        ("grimoire.royalty.lrp.payee", lrp[payee]),
    ] {
        figs.add(
            name,
            v as f64 / 1e18,
            "$WIP",
            format!("{} $WIP", format_units(v, 18)),
        );
    }
    figs.write(out)
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "—".into())
}
