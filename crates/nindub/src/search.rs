//! Hidden states as embeddings: a small semantic search (The Cantrip and
//! the Ritual).
//!
//! A sentence embedder (MiniLM, [`crate::compress::qmodel::MiniLm`]:
//! its last hidden states averaged over the tokens and scaled to length 1)
//! turns each passage into a vector; a question is embedded the same way
//! and the passages are ranked by cosine similarity. The index takes any
//! embedding function, so it, the ranking and the recall are tested
//! without a model.

use crate::error::{Error, Result};

/// A passage of prose: the heading it sits under, and its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    pub heading: String,
    pub text: String,
}

/// The paragraphs of a Markdown page worth searching: prose of at least
/// `min_words` words, with the heading above each. Code blocks, display
/// math, tables, includes, images and HTML lines are left out; list items
/// and quotes are read as prose. In the text, inline code marks and
/// emphasis are dropped, a link keeps its words and loses its target, and
/// an mdBook directive (`{{#fig NAME}}`) is dropped whole: the passage is
/// the prose as written, not as rendered.
pub fn passages(markdown: &str, min_words: usize) -> Vec<Passage> {
    let mut out = vec![];
    let mut heading = String::new();
    let mut paragraph: Vec<&str> = vec![];
    let mut fenced = false;
    let mut math = false;
    let flush = |paragraph: &mut Vec<&str>, heading: &str, out: &mut Vec<Passage>| {
        let text = inline_text(&paragraph.join(" "));
        paragraph.clear();
        if text.split_whitespace().count() >= min_words {
            out.push(Passage {
                heading: heading.to_string(),
                text,
            });
        }
    };
    for line in markdown.lines() {
        let t = line.trim();
        if t.starts_with("```") {
            fenced = !fenced;
            flush(&mut paragraph, &heading, &mut out);
            continue;
        }
        if t == "$$" {
            math = !math;
            flush(&mut paragraph, &heading, &mut out);
            continue;
        }
        if fenced || math {
            continue;
        }
        if let Some(h) = t.strip_prefix('#') {
            flush(&mut paragraph, &heading, &mut out);
            heading = h.trim_start_matches('#').trim().to_string();
            continue;
        }
        // An include stands alone; a figure (`{{#fig NAME}}`) is inline,
        // and may begin a line of its paragraph.
        let skip = t.is_empty()
            || t.starts_with('|')
            || (t.starts_with("{{#") && !t.starts_with("{{#fig "))
            || t.starts_with("![")
            || t.starts_with('<');
        if skip {
            flush(&mut paragraph, &heading, &mut out);
            continue;
        }
        paragraph.push(t.trim_start_matches(['>', '-', ' ']));
    }
    flush(&mut paragraph, &heading, &mut out);
    out
}

/// One paragraph's inline Markdown as plain words: no code marks or
/// emphasis, links as their words, directives dropped, spaces collapsed.
fn inline_text(markdown: &str) -> String {
    let mut text = String::with_capacity(markdown.len());
    let mut rest = markdown;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("{{")
            && let Some(end) = after.find("}}")
        {
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix("](")
            && let Some(end) = after.find(')')
        {
            rest = &after[end + 1..];
        } else {
            let mut chars = rest.chars();
            if let Some(c) = chars.next()
                && !matches!(c, '`' | '*' | '[' | ']')
            {
                text.push(c);
            }
            rest = chars.as_str();
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Passages and their embeddings.
pub struct Index {
    pub passages: Vec<Passage>,
    vectors: Vec<Vec<f32>>,
}

impl Index {
    /// Passages and their embeddings (one each, all of one length).
    pub fn new(passages: Vec<Passage>, vectors: Vec<Vec<f32>>) -> Result<Self> {
        if passages.len() != vectors.len() {
            return Err(Error::invalid(
                "index",
                format!(
                    "{} passages but {} embeddings",
                    passages.len(),
                    vectors.len()
                ),
            ));
        }
        if let Some(first) = vectors.first().map(Vec::len)
            && let Some((i, v)) = vectors.iter().enumerate().find(|(_, v)| v.len() != first)
        {
            return Err(Error::invalid(
                "index",
                format!(
                    "embedding {i} has {} dimensions, the first {first}",
                    v.len()
                ),
            ));
        }
        Ok(Index { passages, vectors })
    }

    // ANCHOR: build
    /// Every passage's text through `embed` (a sentence embedder: text in,
    /// vector out), in order.
    pub fn build(
        passages: Vec<Passage>,
        mut embed: impl FnMut(&str) -> Result<Vec<f32>>,
    ) -> Result<Self> {
        let vectors = passages
            .iter()
            .map(|p| embed(&p.text))
            .collect::<Result<Vec<_>>>()?;
        Index::new(passages, vectors)
    }
    // ANCHOR_END: build

    /// The embeddings' length (0 for an empty index).
    pub fn dimensions(&self) -> usize {
        self.vectors.first().map_or(0, Vec::len)
    }

    /// The `k` passages closest to `query` (an embedding), best first, as
    /// `(passage, cosine)`.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<(usize, f32)>> {
        if !self.vectors.is_empty() && self.dimensions() != query.len() {
            return Err(Error::invalid(
                "query",
                format!(
                    "its embedding has {} dimensions, the index's {}",
                    query.len(),
                    self.dimensions()
                ),
            ));
        }
        Ok(top_k(query, &self.vectors, k))
    }
}

// ANCHOR: top_k
/// The `k` rows of `vectors` with the largest cosine similarity to
/// `query`, best first (ties: the earlier row). For unit-length vectors
/// the cosine is the dot product; a zero vector's cosine is 0.
pub fn top_k(query: &[f32], vectors: &[Vec<f32>], k: usize) -> Vec<(usize, f32)> {
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let q = norm(query);
    let mut scored: Vec<(usize, f32)> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let dot: f32 = v.iter().zip(query).map(|(a, b)| a * b).sum();
            let d = norm(v) * q;
            (i, if d > 0.0 { dot / d } else { 0.0 })
        })
        .collect();
    // Stable: among equal cosines the earlier row stays first.
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored.truncate(k);
    scored
}
// ANCHOR_END: top_k

// ANCHOR: recall
/// Recall at k: the share of questions whose relevant passage is among
/// their first `k` results. `ranked[i]` is question i's ranking, `hit`
/// says whether a passage answers question i.
pub fn recall_at_k(ranked: &[Vec<usize>], k: usize, hit: impl Fn(usize, usize) -> bool) -> f64 {
    if ranked.is_empty() {
        return 0.0;
    }
    let found = ranked
        .iter()
        .enumerate()
        .filter(|(q, r)| r.iter().take(k).any(|&p| hit(*q, p)))
        .count();
    found as f64 / ranked.len() as f64
}
// ANCHOR_END: recall

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passages_keep_prose_under_its_heading() {
        let md = "# Title\n\nA short line.\n\n## Tokens\n\nA model reads integers, not `text`, and the\n*tokenizer* makes them.\n\n```rust\nlet code = 1;\n```\n\n| a | b |\n|---|---|\n\n$$\nx = 1\n$$\n\n{{#include x.md}}\n\n<!-- a comment of many words that is not prose at all -->\n\n### Links\n\n- A [linked phrase](../x.md#y) keeps its words and\n  {{#fig a.b}} is dropped from the prose.\n";
        let p = passages(md, 5);
        assert_eq!(
            p,
            vec![
                Passage {
                    heading: "Tokens".into(),
                    text: "A model reads integers, not text, and the tokenizer makes them.".into()
                },
                Passage {
                    heading: "Links".into(),
                    text: "A linked phrase keeps its words and is dropped from the prose.".into()
                }
            ]
        );
        // An unclosed directive or link is kept as text, not a panic.
        assert_eq!(inline_text("a {{#fig x and b](c"), "a {{#fig x and b(c");
    }

    #[test]
    fn top_k_ranks_by_cosine_and_search_checks_dimensions() {
        let vectors = vec![vec![1.0, 0.0], vec![0.6, 0.8], vec![0.0, 1.0]];
        let got = top_k(&[2.0, 0.1], &vectors, 2);
        assert_eq!(got.iter().map(|r| r.0).collect::<Vec<_>>(), [0, 1]);
        assert!((got[0].1 - 0.99875).abs() < 1e-4 && (got[1].1 - 0.6392).abs() < 1e-4);
        // Ties keep the earlier row; a zero row scores 0; k past the end.
        let ties = vec![vec![0.0, 0.0], vec![1.0, 1.0], vec![2.0, 2.0]];
        let got = top_k(&[1.0, 1.0], &ties, 10);
        assert_eq!(got.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(got[2].1, 0.0);
        let docs = vec![
            Passage {
                heading: String::new(),
                text: "x".into()
            };
            3
        ];
        let index = Index::new(docs.clone(), vectors.clone()).unwrap();
        assert_eq!(index.dimensions(), 2);
        assert_eq!(index.search(&[0.0, 1.0], 1).unwrap()[0].0, 2);
        assert!(index.search(&[1.0, 0.0, 0.0], 1).is_err());
        assert!(Index::new(docs.clone(), vectors[..2].to_vec()).is_err());
        let mut ragged = vectors.clone();
        ragged[1].push(0.0);
        assert!(Index::new(docs, ragged).is_err());
    }

    #[test]
    fn build_embeds_every_passage_and_passes_errors_on() {
        let docs: Vec<Passage> = ["aab", "bbb", "abc"]
            .iter()
            .map(|t| Passage {
                heading: String::new(),
                text: t.to_string(),
            })
            .collect();
        // A toy embedder: how often each of a, b, c occurs.
        let counts = |t: &str| -> Result<Vec<f32>> {
            Ok("abc"
                .chars()
                .map(|c| t.chars().filter(|&x| x == c).count() as f32)
                .collect())
        };
        let index = Index::build(docs.clone(), counts).unwrap();
        let hits = index.search(&counts("bb").unwrap(), 3).unwrap();
        // cos("bb", "abc") = 1/√3 beats cos("bb", "aab") = 1/√5.
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), [1, 2, 0]);
        let failing = |_: &str| -> Result<Vec<f32>> { Err(Error::invalid("text", "no")) };
        assert!(Index::build(docs, failing).is_err());
    }

    #[test]
    fn recall_counts_questions_answered_in_the_first_k() {
        let ranked = vec![vec![3, 1], vec![0, 2], vec![5, 4]];
        let relevant = [1, 0, 9];
        let hit = |q: usize, p: usize| relevant[q] == p;
        assert_eq!(recall_at_k(&ranked, 1, hit), 1.0 / 3.0);
        assert_eq!(recall_at_k(&ranked, 2, hit), 2.0 / 3.0);
        assert_eq!(recall_at_k(&[], 2, hit), 0.0);
    }
}
