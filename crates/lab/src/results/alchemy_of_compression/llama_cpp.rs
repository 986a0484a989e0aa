//! The Alchemy's table beside llama.cpp: nindub's exports of the f32
//! reference (round to nearest, llama.cpp's recipes, GPTQ), scored on the
//! corpus and on a held-out text, with llama.cpp's own files and
//! perplexities from the recorded fixture; and the do-no-harm refusal.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use candle_core::Device;
use candle_core::quantized::GgmlDType;
use nindub::compress::calibrate;
use nindub::compress::export::{ExportOptions, Recipe, Target, quantize_gguf};
use nindub::compress::perplexity::{self, CHUNKS, CTX};
use nindub::compress::qmodel::{self, ModelReport};
use nindub::model::gguf::GgufFile;
use nindub::model::tokenizer::GgufTokenizer;
use nindub::{assets, corpus};

use super::super::{Figures, write};
use super::corpus_tokens;

/// A row of the table beside llama.cpp: fixture key, who quantized it,
/// nindub's perplexity from the scheme table, what nindub exports (and
/// whether GPTQ rounds it against the calibration), and llama.cpp's file
/// of the same kind.
struct ExportRow<'a> {
    key: &'a str,
    who: &'a str,
    ours: Option<&'a str>,
    target: Option<Target>,
    gptq: bool,
    twin: Option<&'a str>,
}

/// A row of llama.cpp's files (or the reference's): nothing exported here.
fn theirs<'a>(key: &'a str, who: &'a str, ours: Option<&'a str>) -> ExportRow<'a> {
    ExportRow {
        key,
        who,
        ours,
        target: None,
        gptq: false,
        twin: None,
    }
}

/// A row nindub exports from the f32 reference.
fn exported<'a>(
    key: &'a str,
    who: &'a str,
    target: Target,
    twin: Option<&'a str>,
) -> ExportRow<'a> {
    ExportRow {
        key,
        who,
        ours: None,
        target: Some(target),
        gptq: false,
        twin,
    }
}

/// The held-out text: of another kind than the corpus (a licence, not
/// verse), on every Debian system (package `base-files`), and never used
/// to calibrate.
const HELD_OUT: &str = "/usr/share/common-licenses/GPL-3";
const HELD_OUT_SHA256: &str = "3972dc9744f6499f0f9b2dbf76696f2ae7ad8af9b23dde66d6af86c9dfb36986";
/// Calibration: windows of the corpus after the ones perplexity reads.
const CALIBRATION_WINDOWS: usize = 32;

/// The first CHUNKS × CTX tokens of the held-out text, checked to be the
/// text the results were made with.
fn held_out_tokens(tok: &GgufTokenizer) -> Result<Vec<u32>> {
    let path = Path::new(HELD_OUT);
    let sha = nindub::fsx::sha256_file(path)
        .map_err(|e| anyhow::anyhow!("the held-out text {HELD_OUT} (Debian's base-files): {e}"))?;
    anyhow::ensure!(
        sha == HELD_OUT_SHA256,
        "the held-out text {HELD_OUT} is not the one the results were made with (SHA-256 {sha})"
    );
    let mut ids = tok.encode(&corpus::read(path)?)?;
    anyhow::ensure!(ids.len() >= CTX * CHUNKS, "the held-out text is too short");
    ids.truncate(CTX * CHUNKS);
    Ok(ids)
}

/// Our GGUF exports, read back by candle and scored by both engines; and
/// llama.cpp's own quantizations beside ours (from the recorded fixture).
/// Every export starts from the same f32 reference as llama.cpp's.
pub(super) fn peer(
    out: &Path,
    reports: &[(String, ModelReport, f64)],
    figs: &mut Figures,
) -> Result<()> {
    // Recorded by the engine's fixture script, beside its tests.
    let fixture: serde_json::Value = serde_json::from_str(include_str!(
        "../../../../nindub/tests/fixtures/llama_cpp_quant.json"
    ))?;
    let models = &fixture["models"];
    let ours = |name: &str| reports.iter().find(|(n, ..)| n == name).map(|r| r.2);
    let fmt = |v: Option<f64>| v.map(|p| format!("{p:.3}")).unwrap_or_else(|| "–".into());
    let mut s = String::from(
        "| weights | quantized by | bits/weight | perplexity, llama.cpp | perplexity, nindub | KL to f32 (nats) | top-1 = f32's | held-out: perplexity | held-out: KL | tensors = llama.cpp's |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    let src = assets::smollm2()?;
    let dir = tempfile::tempdir()?;
    let reference = dir.path().join("reference-f32.gguf");
    let plain = ExportOptions::default();
    quantize_gguf(&src, &reference, Target::Type(GgmlDType::F32), &plain)?;
    // The f32 model's next-token distributions: what every export is
    // compared with, prediction by prediction, on both texts.
    let tok = GgufTokenizer::from_gguf(&GgufFile::open(&reference)?)?;
    let ref_tokens = corpus_tokens(&tok)?;
    let held_tokens = held_out_tokens(&tok)?;
    let (f32_dists, f32_held) = {
        let (mut model, _) = qmodel::load_llama(&reference, None, &Device::Cpu, &mut |_| {})?;
        (
            perplexity::reference(&mut model, &ref_tokens, CTX, CHUNKS)?,
            perplexity::reference(&mut model, &held_tokens, CTX, CHUNKS)?,
        )
    };
    let f32_held_ppl = {
        let (mut model, _) = qmodel::load_llama(&reference, None, &Device::Cpu, &mut |_| {})?;
        perplexity::divergence(&mut model, &f32_held, &held_tokens, CTX, CHUNKS)?
            .perplexity
            .ppl
    };
    figs.number("alchemy.held_out.f32_ppl", f32_held_ppl, 3, "");
    // GPTQ's calibration: the f32 model reads windows of the corpus after
    // the ones perplexity is measured on.
    let calibration = calibrate::calibrate_file(
        &reference,
        &corpus::path()?,
        CALIBRATION_WINDOWS,
        CTX,
        CTX * CHUNKS,
        false,
    )?;
    let calibrated = ExportOptions {
        calibration: Some(&calibration),
        ..ExportOptions::default()
    };
    let mut notes = vec![];
    let recipe = |r: &str| Recipe::parse(r).map(Target::Recipe);
    let rows = [
        theirs(
            "reference-f32",
            "(f32, dequantized from the file)",
            Some("f32 (reference)"),
        ),
        theirs(
            "original",
            "the published file (Q4_1, embedding Q8_0)",
            Some("f32 (reference)"),
        ),
        theirs("llama.cpp-q8_0", "llama.cpp (Q8_0)", None),
        theirs("llama.cpp-q6_k", "llama.cpp (Q6_K, rows of 576 Q8_0)", None),
        theirs("llama.cpp-q5_k_m", "llama.cpp (Q5_K_M)", None),
        theirs("llama.cpp-q4_k_m", "llama.cpp (Q4_K_M)", None),
        theirs("llama.cpp-q4_1", "llama.cpp (Q4_1, embedding Q8_0)", None),
        theirs("llama.cpp-q4_0", "llama.cpp (Q4_0, embedding Q8_0)", None),
        exported(
            "smollm2-int8-g32.gguf",
            "nindub int8-g32 (Q8_0, scales rounded up)",
            Target::parse("int8-g32")?,
            Some("llama.cpp-q8_0"),
        ),
        exported(
            "smollm2-q6_k.gguf",
            "nindub --recipe q6_k",
            recipe("q6_k")?,
            Some("llama.cpp-q6_k"),
        ),
        exported(
            "smollm2-q5_k_m.gguf",
            "nindub --recipe q5_k_m",
            recipe("q5_k_m")?,
            Some("llama.cpp-q5_k_m"),
        ),
        exported(
            "smollm2-q4_k_m.gguf",
            "nindub --recipe q4_k_m",
            recipe("q4_k_m")?,
            Some("llama.cpp-q4_k_m"),
        ),
        exported(
            "smollm2-q4_1.gguf",
            "nindub --recipe q4_1 (GGML's float minimum)",
            recipe("q4_1")?,
            Some("llama.cpp-q4_1"),
        ),
        exported(
            "smollm2-q4_0.gguf",
            "nindub --recipe q4_0 (round to nearest)",
            recipe("q4_0")?,
            Some("llama.cpp-q4_0"),
        ),
        ExportRow {
            gptq: true,
            ..exported(
                "smollm2-gptq-q4_0.gguf",
                "nindub --recipe q4_0 --calibrate (GPTQ)",
                recipe("q4_0")?,
                None,
            )
        },
        ExportRow {
            gptq: true,
            ..exported(
                "smollm2-gptq-ggml-q4_0.gguf",
                "nindub ggml-q4_0 --calibrate (GPTQ, embedding Q4_0 too)",
                Target::parse("ggml-q4_0")?,
                None,
            )
        },
        exported(
            "smollm2-ggml-q4_1.gguf",
            "nindub ggml-q4_1 (embedding Q4_1 too)",
            Target::parse("ggml-q4_1")?,
            None,
        ),
        exported(
            "smollm2-int4-g32.gguf",
            "nindub int4-g32 (Q4_1, integer zero-point)",
            Target::parse("int4-g32")?,
            None,
        ),
    ];
    for ExportRow {
        key,
        who,
        ours: ours_key,
        target,
        gptq,
        twin,
    } in rows
    {
        let m = &models[key];
        let mut nindub = ours_key.and_then(ours);
        let mut same = "–".to_string();
        let (mut kl, mut top1) = ("–".to_string(), "–".to_string());
        let (mut held_ppl, mut held_kl) = ("–".to_string(), "–".to_string());
        if let Some(target) = target {
            // Export now, check the file is the one llama.cpp scored, and
            // score it here with its dequantized weights.
            let path = dir.path().join(key);
            let r = quantize_gguf(
                &reference,
                &path,
                target,
                if gptq { &calibrated } else { &plain },
            )?;
            let sha = nindub::fsx::sha256_file(&path)?;
            if m["file_sha256"].as_str() != Some(sha.as_str()) {
                notes.push(format!(
                    "`{key}`: the fixture scored another export; rerun `regenerate-llama-cpp-quant.sh`"
                ));
            }
            let file = GgufFile::open(&path)?;
            if let Some(twin) = twin {
                let digest = file.tensor_digest()?;
                same = if models[twin]["tensor_sha256"].as_str() == Some(digest.as_str()) {
                    "yes, bit for bit".into()
                } else {
                    "no".into()
                };
            }
            let name = if gptq {
                format!("gptq-{}", target.name())
            } else {
                target.name()
            };
            figs.add(
                &format!("alchemy.export.{name}.readback"),
                r.max_dequant_diff as f64,
                "",
                format!("{:.1e}", r.max_dequant_diff),
            );
            if let Some(d) = r.sqnr_db {
                figs.number(&format!("alchemy.export.{name}.sqnr"), d, 1, "dB");
            }
            figs.number(
                &format!("alchemy.export.{name}.bpw"),
                r.bits_per_weight,
                2,
                "",
            );
            let (mut model, _) = qmodel::load_llama(&path, None, &Device::Cpu, &mut |_| {})?;
            let d = perplexity::divergence(&mut model, &f32_dists, &ref_tokens, CTX, CHUNKS)?;
            let h = perplexity::divergence(&mut model, &f32_held, &held_tokens, CTX, CHUNKS)?;
            figs.number(
                &format!("alchemy.export.{name}.held_ppl"),
                h.perplexity.ppl,
                3,
                "",
            );
            figs.number(&format!("alchemy.export.{name}.held_kl"), h.kl, 4, "");
            held_ppl = format!("{:.3}", h.perplexity.ppl);
            held_kl = format!("{:.4}", h.kl);
            figs.number(
                &format!("alchemy.export.{name}.ppl"),
                d.perplexity.ppl,
                3,
                "",
            );
            figs.number(&format!("alchemy.export.{name}.kl"), d.kl, 4, "");
            figs.number(
                &format!("alchemy.export.{name}.top1"),
                100.0 * d.top1,
                1,
                "%",
            );
            nindub = Some(d.perplexity.ppl);
            kl = format!("{:.4}", d.kl);
            top1 = format!("{:.1} %", 100.0 * d.top1);
        }
        if let Some(ppl) = m["ppl"].as_f64() {
            figs.number(&format!("alchemy.llama_cpp.{key}.ppl"), ppl, 3, "");
        }
        if let Some(b) = m["bits_per_weight"].as_f64() {
            figs.number(&format!("alchemy.llama_cpp.{key}.bpw"), b, 2, "");
        }
        writeln!(
            s,
            "| {key} | {who} | {} | {} | {} | {kl} | {top1} | {held_ppl} | {held_kl} | {same} |",
            m["bits_per_weight"]
                .as_f64()
                .map(|b| format!("{b:.2}"))
                .unwrap_or_else(|| "–".into()),
            fmt(m["ppl"].as_f64()),
            fmt(nindub)
        )?;
    }
    writeln!(s)?;
    for n in notes {
        writeln!(s, "- {n}")?;
    }
    writeln!(
        s,
        "\nllama.cpp's figures: {} (`tests/fixtures/llama_cpp_quant.json`, recorded by `record_llama_cpp_quant.py`); bits/weight of the whole file's tensors, norms included. nindub's: the same file's weights dequantized to f32, then the same protocol (llama.cpp multiplies quantized weights by activations rounded to 8 bits, hence the small differences). Every quantized row starts from the f32 reference; KL and top-1 compare nindub's next-token distributions with the f32 model's at the same {} predictions. \"tensors = llama.cpp's\": the SHA-256 of every tensor's name, type and bytes, against llama.cpp's file of the same kind (the headers differ: each tool writes its own metadata).",
        fixture["peer"].as_str().unwrap_or("llama.cpp"),
        CHUNKS * (CTX - 1)
    )?;
    let params = calibrated.gptq;
    writeln!(
        s,
        "\nHeld-out: the first {} tokens of `{HELD_OUT}` (the GNU GPL, version 3: a licence, another kind of text than the corpus, never used to calibrate), where the f32 model's perplexity is {f32_held_ppl:.3}; KL against the f32 model's distributions there. GPTQ: the f32 model read {} windows of {} tokens of the corpus from token {} on (after the windows perplexity reads), damping {} of the mean of H's diagonal, {} scale steps of 2.5 % per block; it writes the same types, bytes and layout as `--recipe q4_0`, other codes.",
        CTX * CHUNKS,
        calibration.text.windows,
        calibration.text.ctx,
        calibration.text.start,
        params.damp,
        params.shrink_steps
    )?;
    figs.number(
        "alchemy.gptq.windows",
        calibration.text.windows as f64,
        0,
        "",
    );
    figs.number("alchemy.gptq.damp", params.damp, 2, "");
    figs.number(
        "alchemy.gptq.shrink_steps",
        params.shrink_steps as f64,
        0,
        "",
    );
    write(out, "llama-cpp.md", &s)?;
    do_no_harm(out, &src)?;
    Ok(())
}

/// What `nindub quantize` answers when asked to requantize the published
/// file with loss: the refusal, with its measured cost, verbatim.
fn do_no_harm(out: &Path, src: &Path) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("out.gguf");
    let mut s = String::from("```text\n");
    for scheme in ["int4-g32", "int8-g32"] {
        let err = match quantize_gguf(
            src,
            &path,
            Target::parse(scheme)?,
            &ExportOptions::default(),
        ) {
            Ok(_) => anyhow::bail!("requantizing the published file with {scheme} was not refused"),
            Err(e) => e.to_string(),
        };
        anyhow::ensure!(!path.exists(), "a refused export left a file");
        writeln!(
            s,
            "$ nindub quantize --scheme {scheme} smollm2 out.gguf\nnindub: error: {err}\n"
        )?;
    }
    s.push_str("```\n");
    write(out, "do-no-harm.md", &s)
}
