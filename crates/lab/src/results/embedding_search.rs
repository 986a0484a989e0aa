//! Generates the embedding-search Result of "The Cantrip and the Ritual":
//! `cargo run -p lab --bin results -- run embedding_search book/src/generated/cantrip-and-ritual/search`
//! (or `cargo codex results`). Needs MiniLM (fetched into the cache).
//!
//! The Codex's own chapters, cut into paragraphs ([`search::passages`]),
//! are the documents; MiniLM embeds each one (its last hidden states
//! averaged over the tokens, scaled to length 1) and a small labelled set
//! of questions, each with a phrase that only the paragraph answering it
//! contains, measures how often the answer is among the first k results.
//! Everything written is computed; nothing depends on the clock, and ties
//! are broken by the passage's place in the book.
//!
//! The documents are the book's prose, so editing any of [`CHAPTERS`]
//! changes these results: rerun this generator (well under two minutes
//! once built) after a change of prose, and commit what it writes. If an
//! edit removes or repeats a question's answer phrase, the generator
//! stops and names it.

use super::{Figures, grouped, write};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use candle_core::Device;
use nindub::assets;
use nindub::compress::qmodel::MiniLm;
use nindub::search::{self, Index, Passage};

/// The chapters searched, in the book's order.
const CHAPTERS: &[&str] = &[
    "apprentice/mana-crystal.md",
    "apprentice/cantrip-and-ritual.md",
    "apprentice/alchemy-of-compression.md",
    "apprentice/transfer-of-wisdom.md",
    "apprentice/speaking-stone.md",
    "archmage/nindub.md",
];

/// Paragraphs shorter than this many words are not documents.
const MIN_WORDS: usize = 12;

/// A question, and a phrase that only the paragraph answering it contains
/// (the bold lead of an Insight or Value paragraph, as the passage reads
/// once its emphasis marks are dropped). Worded apart from the answer, as
/// a reader would ask.
const QUESTIONS: &[(&str, &str)] = &[
    (
        "Why is producing each new token limited by how fast memory can be read?",
        "The roofline of one token.",
    ),
    (
        "Why does raising the temperature make the model less certain?",
        "Temperature moves entropy in one direction only.",
    ),
    (
        "Why is keeping a fixed number of top candidates a poor way to sample?",
        "is wrong twice.",
    ),
    (
        "Why does greedy decoding keep repeating the same word?",
        "Greedy decoding has fixed points.",
    ),
    (
        "Why is the first position's hidden state so much larger than the others?",
        "The first token is a sink.",
    ),
    (
        "At which layer does the model's final answer appear?",
        "The answer forms late.",
    ),
    (
        "How much work does keeping keys and values of past tokens save?",
        "What the cache saves.",
    ),
    (
        "How much signal-to-noise does each extra bit of a quantized weight buy?",
        "Six decibels a bit.",
    ),
    (
        "Why does one scale per output channel matter so much for 8-bit weights?",
        "Granularity decides INT8.",
    ),
    (
        "What does an integer zero point guarantee, and what does it cost?",
        "The exact zero, and its price.",
    ),
    (
        "Why do fewer bits per weight make generation faster?",
        "Bits are bandwidth.",
    ),
    (
        "Why does a 4-bit format cost more than 4 bits per weight?",
        "Bits per weight are not bits per value.",
    ),
    (
        "Which part of memory grows with the context, and what in the architecture sets it?",
        "The KV cache is the hidden cost, and architecture decides it.",
    ),
    (
        "Why must a verdict count the host's RAM and not only the GPU's?",
        "Verdicts need a second budget: host RAM.",
    ),
    (
        "What must stay in memory when a model's layers are streamed?",
        "What stays when the layers stream.",
    ),
    (
        "How much does answering over HTTP slow a model down?",
        "What the wire costs depends on how expensive a token is.",
    ),
    (
        "Why should a busy server turn requests away instead of queueing them all?",
        "Why a bounded queue, and why a 503 is kind.",
    ),
    (
        "Why must comparing an API key take the same time whatever the guess?",
        "A timing attack in one line of arithmetic.",
    ),
    (
        "What does multiplying the distillation loss by the squared temperature protect?",
        "really protects: the balance.",
    ),
    (
        "Why does a teacher's probability distribution teach more than the right label?",
        "Why soft targets teach more per example.",
    ),
    (
        "Does serving several clients at once make each token cheaper?",
        "Batched, the weights are read once for everyone.",
    ),
    (
        "How small can a memory budget be and still stream a model?",
        "Memory. With reserved bytes",
    ),
];

/// How many results a reader looks at.
const KS: [usize; 4] = [1, 3, 5, 10];

/// Words of a passage shown in the per-question table.
const SNIPPET_WORDS: usize = 12;

/// Writes the results into `out`.
pub fn generate(out: &Path) -> Result<()> {
    let book = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../book/src");
    // Each passage with the title of its chapter.
    let mut titles = vec![];
    let mut docs: Vec<Passage> = vec![];
    for chapter in CHAPTERS {
        let path = book.join(chapter);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let title = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# "))
            .unwrap_or(chapter)
            .to_string();
        for p in search::passages(&text, MIN_WORDS) {
            titles.push(title.clone());
            docs.push(p);
        }
    }
    let answers = answers(&docs)?;

    // MiniLM's tokenizer file truncates at 128 tokens: a long passage is
    // embedded by its beginning, where the bold lead of an answer is.
    let (minilm, _) = MiniLm::load(&assets::minilm()?, None, &Device::Cpu)?;
    let index = Index::build(docs, |t| minilm.embed(t))?;
    let docs = &index.passages;
    // Each question's ranking of the passages, and its answer's rank.
    let (mut ranked, mut ranks) = (vec![], vec![]);
    // The first result's cosine, where it is the answer and where not.
    let (mut first_answered, mut first_missed) = (vec![], vec![]);
    let mut rows = String::from(
        "| question | rank of its answer | cosine with its answer | first result, where it is not the answer (chapter › section: opening words) |\n|---|---:|---:|---|\n",
    );
    for ((question, _), &answer) in QUESTIONS.iter().zip(&answers) {
        let hits = index.search(&minilm.embed(question)?, docs.len())?;
        let rank = 1 + hits
            .iter()
            .position(|h| h.0 == answer)
            .context("the answer is missing from its question's ranking")?;
        let (first, first_cos) = hits[0];
        let first_cell = if first == answer {
            first_answered.push(first_cos);
            "—".to_string()
        } else {
            first_missed.push(first_cos);
            format!(
                "{} › {}: “{}” ({first_cos:.3})",
                titles[first],
                docs[first].heading,
                snippet(&docs[first].text)
            )
        };
        writeln!(
            rows,
            "| {} | {rank} | {:.3} | {} |",
            question.replace('|', "\\|"),
            hits[rank - 1].1,
            first_cell.replace('|', "\\|"),
        )?;
        ranked.push(hits.into_iter().map(|h| h.0).collect::<Vec<_>>());
        ranks.push(rank);
    }

    let hit = |q: usize, p: usize| answers[q] == p;
    let recall: Vec<f64> = KS
        .iter()
        .map(|&k| search::recall_at_k(&ranked, k, hit))
        .collect();
    let mrr = ranks.iter().map(|&r| 1.0 / r as f64).sum::<f64>() / ranks.len() as f64;
    // The worst-ranked answer's question (the first, among equals).
    let (worst_question, worst) = QUESTIONS
        .iter()
        .zip(&ranks)
        .fold(("", 0), |w, ((q, _), &r)| if r > w.1 { (*q, r) } else { w });
    ranks.sort_unstable();
    let n = ranks.len();
    let median = (ranks[(n - 1) / 2] + ranks[n / 2]) as f64 / 2.0;
    let median_decimals = if median.fract() == 0.0 { 0 } else { 1 };

    let mut figs = Figures::default();
    let fig = |name: &str| format!("cantrip.search.{name}");
    let dims = index.dimensions();
    figs.number(&fig("passages"), docs.len() as f64, 0, "passages");
    figs.number(&fig("chapters"), CHAPTERS.len() as f64, 0, "chapters");
    figs.number(&fig("min_words"), MIN_WORDS as f64, 0, "words");
    figs.number(&fig("questions"), n as f64, 0, "questions");
    figs.number(&fig("dimensions"), dims as f64, 0, "");
    let mut table = format!(
        "MiniLM-L6 (all-MiniLM-L6-v2): each text's last hidden states averaged over its tokens and scaled to length 1, {dims} dimensions; {} passages of at least {MIN_WORDS} words from {} chapters; {n} questions, each answered by exactly one passage.\n\n| measure | value |\n|---|---:|\n",
        docs.len(),
        CHAPTERS.len(),
    );
    for (k, r) in KS.iter().zip(&recall) {
        writeln!(table, "| recall@{k} | {r:.2} |")?;
        figs.number(&fig(&format!("recall{k}")), *r, 2, "");
        let found = ranks.iter().filter(|&&rank| rank <= *k).count();
        figs.number(&fig(&format!("found{k}")), found as f64, 0, "questions");
    }
    writeln!(table, "| mean reciprocal rank | {mrr:.2} |")?;
    writeln!(
        table,
        "| median rank of the answer | {} |",
        grouped(median, median_decimals)
    )?;
    writeln!(table, "| worst rank of the answer | {worst} |")?;
    figs.number(&fig("mrr"), mrr, 2, "");
    figs.number(&fig("median_rank"), median, median_decimals, "");
    figs.number(&fig("worst_rank"), worst as f64, 0, "");
    figs.text(&fig("worst_question"), worst_question);
    for (what, cosines, name) in [
        ("the answer", &first_answered, "first_answered"),
        ("not the answer", &first_missed, "first_missed"),
    ] {
        if cosines.is_empty() {
            continue;
        }
        let lo = cosines.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = cosines.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        writeln!(
            table,
            "| cosine of the first result, where it is {what} ({} questions) | {lo:.3} to {hi:.3} |",
            cosines.len()
        )?;
        figs.number(&fig(&format!("{name}_min")), lo as f64, 3, "");
        figs.number(&fig(&format!("{name}_max")), hi as f64, 3, "");
    }

    write(out, "search.md", &table)?;
    write(out, "search-examples.md", &rows)?;
    figs.write(out)?;
    Ok(())
}

/// Each question's answer: the one passage that contains its phrase. A
/// phrase in no passage, or in several, stops the generator: the prose
/// changed under the labels.
fn answers(docs: &[Passage]) -> Result<Vec<usize>> {
    let mut answers = vec![];
    for (question, phrase) in QUESTIONS {
        let found: Vec<usize> = docs
            .iter()
            .enumerate()
            .filter(|(_, p)| p.text.contains(phrase))
            .map(|(i, _)| i)
            .collect();
        match found.as_slice() {
            [one] => answers.push(*one),
            [] => bail!(
                "question {question:?}: no paragraph of the chapters contains its answer phrase {phrase:?} (the prose changed: restore the phrase, or point the question at its new wording in QUESTIONS, crates/lab/src/results/embedding_search.rs)"
            ),
            many => bail!(
                "question {question:?}: {} paragraphs contain its answer phrase {phrase:?} (headed {}): the phrase must name exactly one; lengthen it in QUESTIONS, crates/lab/src/results/embedding_search.rs",
                many.len(),
                many.iter()
                    .map(|&i| format!("{:?}", docs[i].heading))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    ensure!(!answers.is_empty(), "no questions");
    Ok(answers)
}

/// The opening words of a passage for a table cell, without the marks
/// that math or HTML would read.
fn snippet(text: &str) -> String {
    let plain: String = text
        .chars()
        .filter(|c| !matches!(c, '$' | '\\' | '|' | '<' | '>' | '_' | '^' | '{' | '}'))
        .collect();
    let words: Vec<&str> = plain.split_whitespace().collect();
    let mut s = words[..words.len().min(SNIPPET_WORDS)].join(" ");
    if words.len() > SNIPPET_WORDS {
        s.push_str(" …");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passage(text: &str) -> Passage {
        Passage {
            heading: "Insight".into(),
            text: text.into(),
        }
    }

    #[test]
    fn every_answer_phrase_names_one_paragraph_of_the_book() {
        let book = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../book/src");
        let mut docs = vec![];
        for chapter in CHAPTERS {
            let text = std::fs::read_to_string(book.join(chapter)).unwrap();
            docs.extend(search::passages(&text, MIN_WORDS));
        }
        assert_eq!(answers(&docs).unwrap().len(), QUESTIONS.len());
        // A missing or repeated phrase is an error that names it.
        let (_, phrase) = QUESTIONS[0];
        let err = answers(&docs[..0]).unwrap_err().to_string();
        assert!(
            err.contains(phrase) && err.contains("no paragraph"),
            "{err}"
        );
        let twice = vec![passage(phrase), passage(phrase)];
        let err = answers(&twice).unwrap_err().to_string();
        assert!(err.contains("2 paragraphs"), "{err}");
    }

    #[test]
    fn snippets_are_short_and_plain() {
        assert_eq!(snippet("a $x_i$ b"), "a xi b");
        let long = "w ".repeat(SNIPPET_WORDS + 3);
        assert!(snippet(&long).ends_with(" …"));
    }
}
