//! Generates the Results of "NINDUB, the Layer-Streamed Sovereign" that do
//! not depend on the machine's speed (those come from `cargo codex bench
//! stream`): `cargo run -p lab --bin results -- run layer_streamed OUT_DIR`.
//!
//! - `placement.txt`: SmolLM2 placed within budgets from "everything fits"
//!   to "one layer at a time", with and without prefetch;
//! - `equivalence.md`: the streamed engine's greedy text and logits at each
//!   of those budgets against the resident model's;
//! - `split.txt`: SmolLM2 split into shards and streamed from them;
//! - `presets.md`: the synthetic shapes, their sizes and the smallest
//!   budget each can stream in;
//! - `table2.txt`: the seed's "Qwen-2.5-32B INT4: only layer-by-layer"
//!   placed within the Mana Crystal;
//! - `errors.txt`: what bad input gets;
//! - `hostile-files.md`: SmolLM2's header made to lie, field by field, and
//!   what the readers do with each lie.

use super::write;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use nindub::model::fused::FusedLlama;
use nindub::model::sample::argmax;
use nindub::model::tokenizer::GgufTokenizer;
use nindub::stream::placement;
use nindub::stream::shard;
use nindub::stream::source::ModelSource;
use nindub::stream::streamer::StreamOptions;
use nindub::stream::synth::{self, SynthSpec};
use nindub::{Architecture, assets, budget};

const PROMPT: &str = "The Mana Crystal holds";
const TOKENS: usize = 12;

/// Writes the chapter's results into `out`.
pub fn generate(out: &Path) -> Result<()> {
    let out = out.to_path_buf();
    let path = assets::smollm2()?;
    let source = ModelSource::open(&path)?;
    let tokenizer = GgufTokenizer::from_gguf(source.base())?;
    let prompt = tokenizer.encode(PROMPT)?;
    let context = prompt.len() + TOKENS + 1;

    // 1. Placement from "everything fits" to "one layer at a time".
    let demand = placement::demand(&source, context)?;
    let reserved = demand.fixed + demand.kv_cache + demand.activations;
    let all = reserved + demand.layers.iter().sum::<u64>();
    let largest = demand.layers.iter().copied().max().unwrap_or(0);
    let mut text = String::new();
    writeln!(
        text,
        "SmolLM2-135M Q4_1, KV cache for {context} positions: {} layers of {} bytes, \
         embedding and head {} bytes, KV cache {} bytes, activations {} bytes",
        demand.layers.len(),
        largest,
        demand.fixed,
        demand.kv_cache,
        demand.activations
    )?;
    let budgets = |buffers: u64| {
        let minimum = reserved + buffers * largest;
        [
            all,
            minimum + (all - minimum) / 2,
            minimum + 4 * largest,
            minimum,
        ]
    };
    for prefetch in [true, false] {
        let buffers = if prefetch { 2 } else { 1 };
        writeln!(text, "\nprefetch {}:", if prefetch { "on" } else { "off" })?;
        for b in budgets(buffers) {
            writeln!(text, "{}", placement::plan(&demand, b, buffers)?)?;
        }
    }
    write(&out, "placement.txt", &text)?;

    // 2. The streamed engine against the resident model, bit for bit.
    let run = |source: &ModelSource, budget: Option<u64>, prefetch: bool| -> Result<_> {
        let opts = StreamOptions {
            budget,
            context,
            prefetch,
            cold: false,
        };
        let mut m = FusedLlama::open(source, &opts)?;
        let mut logits = vec![m.forward(&prompt)?.to_vec()];
        let mut tokens = vec![];
        for _ in 0..TOKENS {
            tokens.push(argmax(logits.last().context("no logits")?));
            logits.push(m.step(*tokens.last().context("no token")?)?.to_vec());
        }
        let read = m.stream_stats().bytes_read;
        Ok((m.placement.clone(), logits, tokens, read))
    };
    let (_, want, want_tokens, _) = run(&source, None, true)?;
    let mut md = String::from(
        "| budget (bytes) | prefetch | resident / streamed | read from the file | logits | greedy text |\n|---:|---|---|---:|---|---|\n",
    );
    for prefetch in [true, false] {
        for b in budgets(if prefetch { 2 } else { 1 }) {
            let (p, logits, tokens, read) = run(&source, Some(b), prefetch)?;
            let same = if logits == want {
                "identical, bit for bit"
            } else {
                "DIFFERENT"
            };
            writeln!(
                md,
                "| {b} | {} | {} / {} | {:.1} MB | {same} | {:?} |",
                if prefetch { "on" } else { "off" },
                p.resident.len(),
                p.streamed.len(),
                read as f64 / 1e6,
                format!("{PROMPT}{}", tokenizer.decode(&tokens, true)?),
            )?;
            anyhow::ensure!(tokens == want_tokens, "greedy tokens differ at budget {b}");
        }
    }
    write(&out, "equivalence.md", &md)?;

    // 3. Shards: split, then stream from them.
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("smollm2-shards");
    let manifest = shard::split(&path, &dir, false)?;
    let shards = ModelSource::open(&dir)?;
    let minimum = reserved + 2 * largest;
    let (p, logits, _, read) = run(&shards, Some(minimum), true)?;
    let mut text = format!(
        "nindub split: base.gguf ({} bytes) and {} layer shards of {}–{} bytes; manifest.json lists each file's size and SHA-256\n",
        manifest.base.bytes,
        manifest.layers.len(),
        manifest.layers.iter().map(|l| l.bytes).min().unwrap_or(0),
        manifest.layers.iter().map(|l| l.bytes).max().unwrap_or(0),
    );
    writeln!(
        text,
        "streamed from the shards within {minimum} bytes: {} layers resident, {} streamed, {:.1} MB read; logits {}",
        p.resident.len(),
        p.streamed.len(),
        read as f64 / 1e6,
        if logits == want {
            "identical to the resident model's, bit for bit"
        } else {
            "DIFFERENT"
        }
    )?;
    write(&out, "split.txt", &text)?;

    // 4. The synthetic shapes.
    let mut md = String::from(
        "| preset | parameters | layers | one layer | all weights (Q4_0) | smallest budget (prefetch) |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for name in synth::PRESETS {
        let spec = SynthSpec::preset(name)?;
        let d = spec.demand(64, true);
        let min = d.fixed + d.kv_cache + d.activations + 2 * spec.layer_bytes();
        writeln!(
            md,
            "| `{name}` | {:.2} B | {} | {:.1} MB | {:.2} GB | {:.0} MB |",
            spec.params() as f64 / 1e9,
            spec.layers,
            spec.layer_bytes() as f64 / 1e6,
            spec.bytes() as f64 / 1e9,
            min as f64 / 1e6
        )?;
    }
    write(&out, "presets.md", &md)?;

    // 5. The seed's Table 2 row within the Mana Crystal.
    let qwen = SynthSpec::from_architecture(
        &Architecture::preset("qwen-2.5-32b")?,
        candle_core::quantized::GgmlDType::Q4_0,
    )?;
    let d = qwen.demand(512, false);
    let crystal = budget::GIB;
    let p = placement::plan(&d, 4 * crystal, 2)?;
    let text = format!(
        "Qwen-2.5-32B's shape in Q4_0: {:.1} GB of weights ({} layers of {:.1} MB, embedding and head {:.2} GB)\n\
         within the Mana Crystal (4 GiB), a 512-position KV cache, prefetch on:\n{p}\n",
        (d.fixed + d.layers.iter().sum::<u64>()) as f64 / 1e9,
        qwen.layers,
        qwen.layer_bytes() as f64 / 1e6,
        d.fixed as f64 / 1e9
    );
    write(&out, "table2.txt", &text)?;

    // 6. Bad input.
    let mut text = String::new();
    let mut say = |what: &str, r: std::result::Result<String, String>| {
        let msg = match r {
            Ok(s) => format!("accepted?! {s}"),
            Err(e) => e.replace(&tmp.path().display().to_string(), "<tmp>"),
        };
        let _ = writeln!(text, "{what}:\n  {msg}\n");
    };
    let err = |e: nindub::Error| e.to_string();
    say(
        "a budget one byte smaller than one layer at a time",
        FusedLlama::open(
            &source,
            &StreamOptions {
                budget: Some(minimum - 1),
                context,
                prefetch: true,
                cold: false,
            },
        )
        .map(|_| String::new())
        .map_err(err),
    );
    say(
        "a budget nobody can read (`--budget \"4 gigs\"`)",
        budget::parse_bytes("4 gigs")
            .map(|b| b.to_string())
            .map_err(err),
    );
    let bad = tmp.path().join("bad");
    copy_dir(&dir, &bad)?;
    let layer7 = bad.join(nindub::stream::manifest::layer_file_name(7));
    let bytes = std::fs::read(&layer7)?;
    std::fs::write(&layer7, &bytes[..bytes.len() / 2])?;
    say(
        "a truncated shard",
        ModelSource::open(&bad).map(|_| String::new()).map_err(err),
    );
    let mut flipped = bytes.clone();
    let at = flipped.len() - 100;
    flipped[at] ^= 0x40;
    std::fs::write(&layer7, &flipped)?;
    say(
        "a shard whose bytes changed (one bit)",
        ModelSource::open(&bad).map(|_| String::new()).map_err(err),
    );
    std::fs::write(&layer7, &bytes)?;
    std::fs::remove_file(bad.join("manifest.json"))?;
    say(
        "a split that was interrupted (no manifest)",
        ModelSource::open(&bad).map(|_| String::new()).map_err(err),
    );
    let foreign = tmp.path().join("notes.gguf");
    std::fs::write(&foreign, "Dear diary, today I met a language model.")?;
    say(
        "a file that is not GGUF",
        ModelSource::open(&foreign)
            .map(|_| String::new())
            .map_err(err),
    );
    let gpt2 = tmp.path().join("gpt2.gguf");
    write_foreign_architecture(&gpt2)?;
    say(
        "a GGUF of an architecture the engine does not know",
        ModelSource::open(&gpt2)
            .and_then(|s| s.architecture())
            .map(|a| a.name)
            .map_err(err),
    );
    write(&out, "errors.txt", &text)?;
    hostile_files(&path, &out)?;
    Ok(())
}

// ANCHOR: hostile
/// SmolLM2's header, made to lie one field at a time: each copy is opened
/// and run as `generate` would (the fused engine, a 64-position context)
/// and the outcome written down.
fn hostile_files(model: &Path, out: &Path) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let original = std::fs::read(model)?;
    use nindub::model::gguf::spelled_at;
    let u32_field = |key: &str| -> Result<usize> {
        let at = spelled_at(&original, key).with_context(|| format!("{key} not in the header"))?;
        Ok(at + 4) // after the key and its value type
    };
    let tensor_offset = |name: &str| -> Result<usize> {
        let at = spelled_at(&original, name)
            .with_context(|| format!("{name} not in the tensor table"))?;
        let dims = u32::from_le_bytes(original[at..at + 4].try_into()?) as usize;
        Ok(at + 4 + 8 * dims + 4) // n_dims, dims, type; then the offset
    };
    let read_u64 =
        |at: usize| u64::from_le_bytes(original[at..at + 8].try_into().unwrap_or_default());
    let q = tensor_offset("blk.0.attn_q.weight")?;
    type Edit = Box<dyn Fn(&mut Vec<u8>)>;
    type Lie = (String, Edit);
    let set_u32 = |at: usize, v: u32| -> Edit {
        Box::new(move |b: &mut Vec<u8>| b[at..at + 4].copy_from_slice(&v.to_le_bytes()))
    };
    let max = (1u32 << 31) - 1;
    let lies: Vec<Lie> = vec![
        (
            "`llama.block_count` = 2³¹−1".into(),
            set_u32(u32_field("llama.block_count")?, max),
        ),
        (
            "`llama.embedding_length` = 2³¹−1".into(),
            set_u32(u32_field("llama.embedding_length")?, max),
        ),
        (
            "`llama.attention.head_count` = 2³¹−1".into(),
            set_u32(u32_field("llama.attention.head_count")?, max),
        ),
        (
            "`llama.context_length` = 2³¹−1".into(),
            set_u32(u32_field("llama.context_length")?, max),
        ),
        (
            "`general.alignment` = 0".into(),
            Box::new(|b: &mut Vec<u8>| {
                // Rename `general.file_type` (same length, a u32) to it.
                let key = b"general.file_type";
                if let Some(at) = b.windows(key.len()).position(|w| w == key) {
                    b[at..at + key.len()].copy_from_slice(b"general.alignment");
                    b[at + key.len() + 4..at + key.len() + 8].copy_from_slice(&0u32.to_le_bytes());
                }
            }),
        ),
        ("`blk.0.attn_q.weight` one byte further".into(), {
            let v = read_u64(q) + 1;
            Box::new(move |b: &mut Vec<u8>| b[q..q + 8].copy_from_slice(&v.to_le_bytes()))
        }),
        ("`blk.0.attn_q.weight` 32 bytes further".into(), {
            let v = read_u64(q) + 32;
            Box::new(move |b: &mut Vec<u8>| b[q..q + 8].copy_from_slice(&v.to_le_bytes()))
        }),
        (
            "`blk.0.attn_q.weight` at offset 2⁶⁴−32".into(),
            Box::new(move |b: &mut Vec<u8>| {
                b[q..q + 8].copy_from_slice(&(u64::MAX - 31).to_le_bytes())
            }),
        ),
        (
            "the file cut at half its length".into(),
            Box::new(|b: &mut Vec<u8>| b.truncate(b.len() / 2)),
        ),
    ];
    let mut md = String::from("| the lie | what the reader does |\n|---|---|\n");
    for (what, lie) in &lies {
        let mut bytes = original.clone();
        lie(&mut bytes);
        let path = tmp.path().join("model.gguf");
        std::fs::write(&path, &bytes)?;
        let outcome = ModelSource::open(&path).and_then(|source| {
            let opts = StreamOptions { context: 64, ..Default::default() };
            let mut m = FusedLlama::open(&source, &opts)?;
            let logits = nindub::model::decoder::Decoder::forward(&mut m, &[1, 2, 3])?;
            Ok(format!(
                "runs: reserves {} positions (the file's claim is a ceiling, not a size); first argmax {}",
                nindub::model::decoder::Decoder::capacity(&m),
                argmax(&logits)
            ))
        });
        let text = match outcome {
            Ok(t) => t,
            Err(e) => format!(
                "refused: {}",
                e.to_string()
                    .replace(&path.display().to_string(), "model.gguf")
            ),
        };
        writeln!(md, "| {what} | {} |", text.replace('|', "\\|"))?;
    }
    write(out, "hostile-files.md", &md)?;
    Ok(())
}
// ANCHOR_END: hostile

/// A GGUF header that says `gpt2`.
fn write_foreign_architecture(path: &Path) -> Result<()> {
    use candle_core::quantized::gguf_file::{Value, write};
    let mut f = std::fs::File::create(path)?;
    write(
        &mut f,
        &[("general.architecture", &Value::String("gpt2".into()))],
        &[],
    )?;
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        std::fs::copy(e.path(), to.join(e.file_name()))?;
    }
    Ok(())
}
