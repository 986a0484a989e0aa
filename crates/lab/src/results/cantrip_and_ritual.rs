//! Generates the Results of "The Cantrip and the Ritual" into a directory:
//! `cargo run -p lab --bin results -- run cantrip_and_ritual book/src/generated/cantrip-and-ritual`
//! (or `cargo codex results`). Needs the SmolLM2 model (fetched into the
//! cache) and the corpus named by `NINDUB_CORPUS`. Everything written here
//! is computed; nothing depends on the clock.

use super::{Figures, write};
use std::fmt::Write as _;
use std::path::Path;

use crate::plot::{Heatmap, LineChart};
use anyhow::{Context, Result, ensure};
use candle_core::Device;
use nindub::model::generate::{Engine, GenerateConfig, Generator, LoadOptions, Step};
use nindub::model::lens;
use nindub::model::llama::ForwardOptions;
use nindub::model::sample::{self, Sampler, SamplingConfig};
use nindub::model::tokenizer::Message;
use nindub::{assets, corpus};

/// The question both the Cantrip and the Ritual answer.
const QUESTION: &str = "Why do language models need so much memory? Answer briefly.";
/// The sentence whose insides the hidden-state plots show.
const PROBE: &str = "The capital of France is";
/// Tokens of the corpus the distribution statistics are taken over.
const PASSAGE_TOKENS: usize = 256;

/// Writes the chapter's results into `out`.
pub fn generate(out: &Path) -> Result<()> {
    let out = out.to_path_buf();
    let model = assets::smollm2()?;
    // Generation runs on the default engine (fused); what looks inside the
    // model (all positions' logits, hidden states, the lens) on candle's.
    let mut g = Generator::load(&model, &Device::Cpu)?;
    let candle = LoadOptions {
        engine: Engine::Candle,
        ..Default::default()
    };
    let mut c = Generator::open(&model, &candle)?;

    let mut figs = Figures::default();
    cantrip_and_trace(&mut g, &out, &mut figs)?;
    let passage = passage(&g)?;
    temperature(&mut c, &passage, &out, &mut figs)?;
    candidate_sets(&mut c, &passage, &out, &mut figs)?;
    repetition(&mut g, &out, &mut figs)?;
    inside(&mut c, &out, &mut figs)?;
    table1(&mut c, &out)?;
    parity(&mut g, &out)?;
    figs.write(&out)?;

    println!("cantrip_and_ritual: wrote results to {}", out.display());
    Ok(())
}

/// The Cantrip's answer, and the Ritual's trace of the same generation.
fn cantrip_and_trace(g: &mut Generator, out: &Path, figs: &mut Figures) -> Result<()> {
    let answer = g.cantrip(QUESTION)?;
    write(
        out,
        "cantrip.md",
        &format!(
            "> **Prompt:** {QUESTION}\n>\n> **Answer:** {}\n",
            quote(&answer)
        ),
    )?;

    // The same generation, step by step: the chat template, the tokens,
    // and at every step the candidates before the sampler chose.
    let text = g.chat_prompt(&[Message::new("user", QUESTION)])?;
    let ids = g.tokenizer.encode(&text)?;
    let mut s = String::from("| position | id | token |\n|---:|---:|---|\n");
    for (i, id) in ids.iter().enumerate() {
        writeln!(s, "| {i} | {id} | {} |", cell(&g.tokenizer.piece(*id)))?;
    }
    write(out, "prompt-tokens.md", &s)?;
    write(out, "chat-template.txt", &text)?;

    let mut steps: Vec<Step> = vec![];
    let cfg = GenerateConfig::default();
    let run = g.generate(&ids, &cfg, |s| {
        steps.push(s.clone());
        true
    })?;
    ensure!(
        run.text == answer,
        "the ritual with the cantrip's settings gave another text"
    );
    let sc = &cfg.sampling;
    let mut s = format!(
        "| step | chosen | p(chosen) | top-5 candidates the draw used (temperature {}, top-k {}, top-p {}, repetition penalty {}) |\n|---:|---|---:|---|\n",
        sc.temperature,
        sc.top_k.map_or("off".into(), |k| k.to_string()),
        sc.top_p.map_or("off".into(), |p| p.to_string()),
        sc.repeat_penalty,
    );
    for st in steps.iter().take(24) {
        let p = st
            .candidates
            .iter()
            .find(|c| c.0 == st.token)
            .map(|c| format!("{:.3}", c.2))
            .unwrap_or_else(|| "< top 5".into());
        let cands: Vec<String> = st
            .candidates
            .iter()
            .map(|(_, t, p)| format!("{} {:.3}", cell(t), p))
            .collect();
        writeln!(
            s,
            "| {} | {} | {p} | {} |",
            st.index,
            cell(&g.tokenizer.piece(st.token)),
            cands.join(" · ")
        )?;
    }
    let detours: Vec<&Step> = steps
        .iter()
        .filter(|st| st.candidates.first().is_some_and(|c| c.0 != st.token))
        .collect();
    let not_top = detours.len();
    figs.number("cantrip.trace.steps", steps.len() as f64, 0, "steps");
    figs.number("cantrip.trace.detours", not_top as f64, 0, "steps");
    // The first two steps where the draw left the most probable token.
    for (k, st) in detours.iter().take(2).enumerate() {
        let name = |what: &str| format!("cantrip.trace.detour{}.{what}", k + 1);
        let best = &st.candidates[0];
        let chosen_p = st
            .candidates
            .iter()
            .find(|c| c.0 == st.token)
            .map_or(0.0, |c| c.2);
        figs.number(&name("step"), st.index as f64, 0, "");
        figs.text(&name("preferred"), &cell(&best.1));
        figs.number(&name("preferred_p"), best.2 as f64, 3, "");
        figs.text(&name("chosen"), &cell(&g.tokenizer.piece(st.token)));
        figs.number(&name("chosen_p"), chosen_p as f64, 3, "");
    }
    writeln!(
        s,
        "\n{} tokens generated (stop: {:?}); the first 24 are shown. At {} of the {} steps the sampler chose a token other than the most probable.",
        run.tokens.len(),
        run.stop_reason,
        not_top,
        steps.len()
    )?;
    write(out, "ritual-trace.md", &s)?;
    Ok(())
}

/// A passage of the corpus, as token ids.
fn passage(g: &Generator) -> Result<Vec<u32>> {
    let text = corpus::load()?;
    let head: String = text.chars().take(PASSAGE_TOKENS * 8).collect();
    let mut ids = g.tokenizer.encode(&head)?;
    ensure!(
        ids.len() >= PASSAGE_TOKENS,
        "the corpus is too short: {} tokens",
        ids.len()
    );
    ids.truncate(PASSAGE_TOKENS);
    Ok(ids)
}

/// Raw logits at every position of `ids`, `[positions][vocab]`.
fn all_logits(g: &mut Generator, ids: &[u32]) -> Result<Vec<Vec<f32>>> {
    let model = g.candle()?;
    model.clear_cache();
    let out = model.forward(
        ids,
        &ForwardOptions {
            all_logits: true,
            ..Default::default()
        },
    )?;
    model.clear_cache();
    Ok(out.logits.to_vec2::<f32>()?)
}

// ANCHOR: entropy_curve
/// Mean entropy (bits) of the next-token distribution over the passage's
/// positions, at temperature `t`.
fn mean_entropy_bits(rows: &[Vec<f32>], t: f32) -> f32 {
    let total: f32 = rows
        .iter()
        .map(|z| {
            let scaled: Vec<f32> = z.iter().map(|v| v / t).collect();
            sample::entropy(&sample::softmax(&scaled)) / std::f32::consts::LN_2
        })
        .sum();
    total / rows.len() as f32
}
// ANCHOR_END: entropy_curve

fn temperature(g: &mut Generator, ids: &[u32], out: &Path, figs: &mut Figures) -> Result<()> {
    let rows = all_logits(g, ids)?;
    let temps: Vec<f32> = (0..=24)
        .map(|i| 0.1 * 10f32.powf(i as f32 / 16.0))
        .collect();
    let t1: Vec<f32> = rows
        .iter()
        .map(|z| sample::entropy(&sample::softmax(z)) / std::f32::consts::LN_2)
        .collect();
    let (sure, unsure) = {
        let mut order: Vec<usize> = (0..t1.len()).collect();
        order.sort_by(|&a, &b| t1[a].total_cmp(&t1[b]));
        (order[0], order[order.len() - 1])
    };
    let curve = |rows: &[Vec<f32>]| -> Vec<(f64, f64)> {
        temps
            .iter()
            .map(|&t| (t as f64, mean_entropy_bits(rows, t) as f64))
            .collect()
    };
    let vocab = rows[0].len();
    let name = |i: usize| g.tokenizer.piece(ids[i]);
    let chart = LineChart {
        title: "Entropy of the next token vs. temperature (SmolLM2-135M)".into(),
        x_desc: "temperature T (log scale)".into(),
        y_desc: "entropy (bits)".into(),
        series: vec![
            (
                format!("mean over {} corpus positions", rows.len()),
                curve(&rows),
            ),
            (
                format!("most certain position (after {:?})", name(sure)),
                curve(&rows[sure..=sure]),
            ),
            (
                format!("least certain position (after {:?})", name(unsure)),
                curve(&rows[unsure..=unsure]),
            ),
        ],
        reference: Some((
            format!(
                "uniform over {vocab} tokens: {:.2} bits",
                (vocab as f64).log2()
            ),
            (vocab as f64).log2(),
        )),
        log_x: true,
        log_y: false,
    };
    chart.draw()?.save(out.join("entropy-vs-temperature.svg"))?;

    let mut s = String::from(
        "| T | mean entropy (bits) | perplexity-equivalent choices 2^H |\n|---:|---:|---:|\n",
    );
    for t in [0.1, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0] {
        let h = mean_entropy_bits(&rows, t);
        writeln!(s, "| {t} | {h:.2} | {:.1} |", 2f32.powf(h))?;
        let at = format!("{t}").replace('.', "_");
        figs.number(&format!("cantrip.entropy.t{at}"), h as f64, 2, "bits");
        figs.number(
            &format!("cantrip.entropy.t{at}.choices"),
            2f64.powf(h as f64),
            1,
            "",
        );
    }
    write(out, "entropy-vs-temperature.md", &s)?;
    Ok(())
}

/// How many candidates each control leaves, over the passage's positions.
fn candidate_sets(g: &mut Generator, ids: &[u32], out: &Path, figs: &mut Figures) -> Result<()> {
    let rows = all_logits(g, ids)?;
    // (row, figure slug or "" for a row whose sizes are its setting).
    let configs: Vec<(&str, &str, SamplingConfig)> = vec![
        ("temperature 1 alone", "", with(|c| c.temperature = 1.0)),
        ("top-k 40", "", with(|c| c.top_k = Some(40))),
        ("top-p 0.5", "top_p_0_5", with(|c| c.top_p = Some(0.5))),
        ("top-p 0.9", "top_p_0_9", with(|c| c.top_p = Some(0.9))),
        ("top-p 0.99", "top_p_0_99", with(|c| c.top_p = Some(0.99))),
        ("min-p 0.05", "min_p_0_05", with(|c| c.min_p = Some(0.05))),
        ("min-p 0.2", "min_p_0_2", with(|c| c.min_p = Some(0.2))),
        (
            "the Cantrip's chain: T 0.7, top-k 40, top-p 0.9",
            "chain",
            SamplingConfig {
                repeat_penalty: 1.0,
                ..SamplingConfig::default()
            },
        ),
    ];
    let mut s = String::from(
        "| control | median | mean | 10th pct | 90th pct | max |\n|---|---:|---:|---:|---:|---:|\n",
    );
    let mut series = vec![];
    for (name, slug, cfg) in configs {
        let sampler = Sampler::new(&cfg)?;
        let mut sizes: Vec<usize> = rows
            .iter()
            .map(|z| sample::kept(&sampler.process(z, &[])))
            .collect();
        if name.starts_with("top-") || name == "min-p 0.05" {
            let mut sorted = sizes.clone();
            sorted.sort_unstable();
            series.push((
                name.to_string(),
                sorted
                    .iter()
                    .enumerate()
                    .map(|(i, &k)| ((i + 1) as f64 / sorted.len() as f64, k as f64))
                    .collect(),
            ));
        }
        sizes.sort_unstable();
        let pct = |q: f64| sizes[((sizes.len() - 1) as f64 * q).round() as usize];
        let mean = sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
        writeln!(
            s,
            "| {name} | {} | {mean:.1} | {} | {} | {} |",
            pct(0.5),
            pct(0.1),
            pct(0.9),
            sizes[sizes.len() - 1]
        )?;
        if !slug.is_empty() {
            let fig = |what: &str| format!("cantrip.candidates.{slug}.{what}");
            figs.number(&fig("median"), pct(0.5) as f64, 0, "tokens");
            figs.number(&fig("p10"), pct(0.1) as f64, 0, "tokens");
            figs.number(&fig("p90"), pct(0.9) as f64, 0, "tokens");
            figs.number(&fig("max"), sizes[sizes.len() - 1] as f64, 0, "tokens");
        }
    }
    write(out, "candidate-sets.md", &s)?;
    LineChart {
        title: "Tokens left to sample from, per corpus position (sorted)".into(),
        x_desc: "fraction of positions".into(),
        y_desc: "candidates kept (log scale)".into(),
        series,
        reference: None,
        log_x: false,
        log_y: true,
    }
    .draw()?
    .save(out.join("candidate-sets.svg"))?;
    Ok(())
}

/// Sampling at temperature 1 with one control changed.
fn with(f: impl FnOnce(&mut SamplingConfig)) -> SamplingConfig {
    let mut c = SamplingConfig {
        temperature: 1.0,
        top_k: None,
        top_p: None,
        min_p: None,
        repeat_penalty: 1.0,
        ..SamplingConfig::default()
    };
    f(&mut c);
    c
}

/// Greedy decoding with and without the repetition penalty.
fn repetition(g: &mut Generator, out: &Path, figs: &mut Figures) -> Result<()> {
    let prompt = "List ten different animals, one per line.";
    let ids = g
        .tokenizer
        .encode(&g.chat_prompt(&[Message::new("user", prompt)])?)?;
    let mut s = format!(
        "Prompt: *{prompt}* (chat template, greedy, at most 96 tokens)\n\n| repetition penalty | tokens | distinct tokens | repeated 3-grams | stop |\n|---:|---:|---:|---:|---|\n"
    );
    let mut texts = String::new();
    for penalty in [1.0, 1.1, 1.3, 1.5] {
        let cfg = GenerateConfig {
            sampling: SamplingConfig {
                repeat_penalty: penalty,
                ..SamplingConfig::greedy()
            },
            max_tokens: 96,
            top_n: 0,
            ..Default::default()
        };
        let run = g.generate(&ids, &cfg, |_| true)?;
        let t = &run.tokens;
        let mut distinct = t.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let grams: Vec<&[u32]> = t.windows(3).collect();
        let mut unique = grams.clone();
        unique.sort_unstable();
        unique.dedup();
        let repeated = if grams.is_empty() {
            0.0
        } else {
            100.0 * (grams.len() - unique.len()) as f64 / grams.len() as f64
        };
        let at = format!("{penalty}").replace('.', "_");
        let fig = |what: &str| format!("cantrip.repetition.p{at}.{what}");
        figs.number(&fig("tokens"), t.len() as f64, 0, "tokens");
        figs.number(&fig("distinct"), distinct.len() as f64, 0, "tokens");
        figs.number(&fig("repeated"), repeated, 0, "%");
        writeln!(
            s,
            "| {penalty} | {} | {} | {repeated:.0} % | {:?} |",
            t.len(),
            distinct.len(),
            run.stop_reason
        )?;
        writeln!(
            texts,
            "**penalty {penalty}**\n\n```text\n{}\n```\n",
            run.text.trim()
        )?;
    }
    write(out, "repetition.md", &s)?;
    write(out, "repetition-texts.md", &texts)?;
    Ok(())
}

/// Hidden-state norms and the logit lens on one sentence.
fn inside(g: &mut Generator, out: &Path, figs: &mut Figures) -> Result<()> {
    let ids = g.tokenizer.encode(PROBE)?;
    let pieces: Vec<String> = ids.iter().map(|&i| g.tokenizer.piece(i)).collect();
    let norms = lens::hidden_norms(g.candle()?, &ids)?;
    // The first position against the others: where its norm passes 100
    // and 10,000, its peak, and the largest norm anywhere else.
    let first: Vec<f32> = norms.iter().map(|row| row[0]).collect();
    let past = |limit: f32| first.iter().position(|&v| v > limit);
    if let (Some(l100), Some(l10k)) = (past(100.0), past(10_000.0)) {
        figs.number("cantrip.norms.first_past_100_layer", l100 as f64, 0, "");
        figs.number("cantrip.norms.first_past_10000_layer", l10k as f64, 0, "");
    }
    let (peak_layer, peak) =
        first.iter().enumerate().fold(
            (0, 0f32),
            |best, (l, &v)| if v > best.1 { (l, v) } else { best },
        );
    figs.number("cantrip.norms.first_peak", peak as f64, 0, "");
    figs.number("cantrip.norms.first_peak_layer", peak_layer as f64, 0, "");
    figs.number(
        "cantrip.norms.first_last",
        *first.last().unwrap_or(&0.0) as f64,
        0,
        "",
    );
    let others = norms
        .iter()
        .flat_map(|row| row.iter().skip(1))
        .fold(0f32, |m, &v| m.max(v));
    figs.number("cantrip.norms.others_max", others as f64, 0, "");
    figs.number(
        "cantrip.norms.embedding_mean",
        {
            let row = &norms[0];
            row.iter().sum::<f32>() as f64 / row.len() as f64
        },
        1,
        "",
    );
    let series = (0..ids.len())
        .map(|i| {
            (
                format!("{i}: {:?}", pieces[i]),
                norms
                    .iter()
                    .enumerate()
                    .map(|(l, row)| (l as f64, row[i] as f64))
                    .collect(),
            )
        })
        .collect();
    LineChart {
        title: format!("‖h‖₂ after each layer, per position of {PROBE:?}"),
        x_desc: "layer (0 = embedding)".into(),
        y_desc: "L2 norm (log scale)".into(),
        series,
        reference: None,
        log_x: false,
        log_y: true,
    }
    .draw()?
    .save(out.join("hidden-norms.svg"))?;
    let mut s = String::from("| layer |");
    for p in &pieces {
        write!(s, " {} |", cell(p))?;
    }
    writeln!(s, "\n|---:|{}", "---:|".repeat(pieces.len()))?;
    for (l, row) in norms.iter().enumerate() {
        if l % 5 == 0 || l + 1 == norms.len() {
            write!(s, "| {l} |")?;
            for v in row {
                write!(s, " {v:.1} |")?;
            }
            writeln!(s)?;
        }
    }
    write(out, "hidden-norms.md", &s)?;

    let tokenizer = g.tokenizer.clone();
    let lens = lens::logit_lens(g.candle()?, &tokenizer, &ids)?;
    let layers = lens.cells.len();
    Heatmap {
        title: "Logit lens: what each layer would predict next".into(),
        row_labels: (0..layers)
            .map(|l| {
                if l == 0 {
                    "embed".into()
                } else {
                    format!("layer {l}")
                }
            })
            .collect(),
        col_labels: lens.inputs.iter().map(|t| format!("{t:?}")).collect(),
        cells: lens
            .cells
            .iter()
            .map(|row| {
                row.iter()
                    .map(|c| (short(&c.text), c.prob as f64))
                    .collect()
            })
            .collect(),
        legend: "cell: the lens's next-token prediction; shade: its probability (white 0, dark 1)"
            .into(),
    }
    .draw()?
    .save(out.join("logit-lens.svg"))?;
    LineChart {
        title: format!(
            "Logit lens at the last position: p({:?}) by layer",
            lens.answer.text
        ),
        x_desc: "layer (0 = embedding)".into(),
        y_desc: "probability".into(),
        series: vec![(
            format!("p({:?}) under each layer's lens", lens.answer.text),
            lens.answer_prob
                .iter()
                .enumerate()
                .map(|(l, &p)| (l as f64, p as f64))
                .collect(),
        )],
        reference: None,
        log_x: false,
        log_y: false,
    }
    .draw()?
    .save(out.join("logit-lens-answer.svg"))?;
    let first_top = lens
        .answer_rank
        .iter()
        .position(|&r| r == 0)
        .unwrap_or(layers);
    let first_top10 = lens
        .answer_rank
        .iter()
        .position(|&r| r < 10)
        .unwrap_or(layers);
    let own = lens.cells[0]
        .iter()
        .zip(&ids)
        .filter(|(c, t)| c.token == **t)
        .count();
    figs.number("cantrip.lens.first_top10_layer", first_top10 as f64, 0, "");
    figs.number("cantrip.lens.first_top_layer", first_top as f64, 0, "");
    figs.number("cantrip.lens.layers", (layers - 1) as f64, 0, "layers");
    write(
        out,
        "logit-lens.md",
        &format!(
            "The model's answer after {PROBE:?} is {:?} (p = {:.3}). Through the lens it enters the top 10 at layer {first_top10} and becomes the top prediction at layer {first_top} of {}. The embedding row predicts its own input token at {own} of the {} positions.\n",
            lens.answer.text,
            lens.answer.prob,
            layers - 1,
            ids.len()
        ),
    )?;
    Ok(())
}

/// The seed's Table 1, filled in from what the code returns.
fn table1(g: &mut Generator, out: &Path) -> Result<()> {
    let ids = g.tokenizer.encode(PROBE)?;
    let model = g.candle()?;
    model.clear_cache();
    let fwd = model.forward(
        &ids,
        &ForwardOptions {
            all_logits: true,
            hidden_states: true,
            attention_of_layer: Some(0),
            ..Default::default()
        },
    )?;
    model.clear_cache();
    let dims = |t: &candle_core::Tensor| format!("{:?}", t.dims());
    let attention = fwd
        .attention
        .as_ref()
        .map(dims)
        .unwrap_or_else(|| "none".into());
    let chain: Vec<String> = Sampler::new(&SamplingConfig::default())?
        .processors
        .iter()
        .map(|p| p.name())
        .collect();
    let n = ids.len();
    let rows = [
        (
            "Role",
            "Cantrip: `Generator::cantrip(prompt) -> String`".to_string(),
            "Ritual: `tokenizer.encode` → `Llama::forward` → `Sampler::next` → `tokenizer.decode`, one call each, in a loop you own".to_string(),
        ),
        (
            "Simplicity",
            "one call".into(),
            "four calls per token, a tokenizer and tensors to manage".into(),
        ),
        (
            "Access to logits",
            "none: text comes out".into(),
            format!(
                "raw, before softmax: {} for a {n}-token prompt (`all_logits`), f32",
                dims(&fwd.logits)
            ),
        ),
        (
            "Hidden states",
            "none".into(),
            format!(
                "{} tensors of {} (embedding + every layer), like `output_hidden_states=True`",
                fwd.hidden_states.len(),
                dims(&fwd.hidden_states[0])
            ),
        ),
        (
            "Attention",
            "none".into(),
            format!("probabilities of any layer: {attention} (heads, queries, keys)"),
        ),
        (
            "Decoding strategy",
            format!("fixed defaults: {}", chain.join(" → ")),
            "any chain of `LogitsProcessor`s: temperature, top-k, top-p, min-p, repetition penalty (window), greedy, seed; stop strings, EOS, max tokens; a callback per token".into(),
        ),
        (
            "Performance",
            "the same engine (`nindub bench` measures both)".into(),
            "KV cache on or off, device chosen, what is computed chosen (hidden states cost memory only when asked)".into(),
        ),
        (
            "Use",
            "prototypes, demos".into(),
            "research, production, distillation (the teacher's logits of chapter 4)".into(),
        ),
    ];
    let mut s = String::from("| | The Cantrip | The Ritual |\n|---|---|---|\n");
    for (k, a, b) in rows {
        writeln!(s, "| **{k}** | {a} | {b} |")?;
    }
    write(out, "table1.md", &s)?;
    Ok(())
}

/// Greedy generation against llama.cpp's, from the recorded fixture.
fn parity(g: &mut Generator, out: &Path) -> Result<()> {
    // Recorded by the engine's fixture script, beside its tests.
    let fixture: serde_json::Value = serde_json::from_str(include_str!(
        "../../../nindub/tests/fixtures/llama_cpp_smollm2.json"
    ))?;
    let mut s = String::from(
        "| prompt | llama.cpp tokens | identical prefix | first difference | llama.cpp's margin there |\n|---|---:|---:|---|---:|\n",
    );
    for case in fixture["generate"]
        .as_array()
        .context("fixture: no `generate`")?
    {
        let prompt: Vec<u32> = serde_json::from_value(case["prompt_ids"].clone())?;
        let theirs: Vec<u32> = serde_json::from_value(case["greedy_ids"].clone())?;
        let margins: Vec<f64> = serde_json::from_value(case["greedy_margins"].clone())?;
        let cfg = GenerateConfig {
            sampling: SamplingConfig::greedy(),
            max_tokens: theirs.len(),
            top_n: 0,
            ..Default::default()
        };
        let ours = g.generate(&prompt, &cfg, |_| true)?.tokens;
        let same = ours.iter().zip(&theirs).take_while(|(a, b)| a == b).count();
        let (diff, margin) = if same == theirs.len() && ours.len() == theirs.len() {
            ("none".to_string(), "".to_string())
        } else {
            (
                format!(
                    "step {same}: {} vs. {}",
                    ours.get(same)
                        .map(|&t| cell(&g.tokenizer.piece(t)))
                        .unwrap_or("end".into()),
                    theirs
                        .get(same)
                        .map(|&t| cell(&g.tokenizer.piece(t)))
                        .unwrap_or("end".into())
                ),
                margins
                    .get(same)
                    .map(|m| format!("{m:.3}"))
                    .unwrap_or_default(),
            )
        };
        let title = case["prompt"].as_str().unwrap_or_default();
        let title = title.rsplit("<|im_start|>user\n").next().unwrap_or(title);
        writeln!(
            s,
            "| {} | {} | {same} | {diff} | {margin} |",
            cell(title.split("<|im_end|>").next().unwrap_or(title)),
            theirs.len()
        )?;
    }
    write(out, "parity.md", &s)?;
    Ok(())
}

/// A token's text for a table cell: quoted, with spaces and newlines visible.
fn cell(t: &str) -> String {
    format!(
        "`{}`",
        t.replace('`', "'").replace('|', "\\|").replace('\n', "\\n")
    )
}

/// A token's text for a heatmap cell.
fn short(t: &str) -> String {
    let t = format!("{t:?}");
    if t.chars().count() > 10 {
        t.chars().take(9).collect::<String>() + "…"
    } else {
        t
    }
}

/// The answer as one quoted paragraph.
fn quote(t: &str) -> String {
    t.trim().replace('\n', "\n> ")
}
