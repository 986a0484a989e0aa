//! The chapters' result generators, one per chapter, and the command-line
//! transcripts the book shows: everything `cargo codex results` writes
//! into `book/src/generated/`, listed here and only here.
//!
//! A generator computes; nothing it writes depends on the clock, so CI
//! regenerates them and compares byte for byte. Timings are the
//! benchmarks' (`benches/`) and the long experiments', written apart.

use std::path::Path;

use anyhow::Result;

pub mod alchemy_of_compression;
#[cfg(feature = "serve")]
pub mod automated_forge;
pub mod cantrip_and_ritual;
pub mod embedding_search;
pub mod golden_triangle;
pub mod grimoire_of_ownership;
#[cfg(feature = "serve")]
pub mod infrastructure_canon;
pub mod layer_streamed;
pub mod mana_crystal;
pub mod merchants_ledger;
pub mod sovereign;
#[cfg(feature = "serve")]
pub mod speaking_stone;
pub mod timings;
pub mod transfer_of_wisdom;

/// One chapter's generator.
pub struct Generator {
    /// The name `results run NAME` takes.
    pub name: &'static str,
    /// Its folder under `book/src/generated/`.
    pub dir: &'static str,
    /// Whether it reads the text corpus (`NINDUB_CORPUS`).
    pub reads_corpus: bool,
    pub generate: fn(&Path) -> Result<()>,
}

/// Every generator, in the book's order (the Speaking Stone's runs real
/// servers: the registry needs the `serve` feature).
#[cfg(feature = "serve")]
pub const GENERATORS: &[Generator] = &[
    Generator {
        name: "mana_crystal",
        dir: "mana-crystal",
        reads_corpus: false,
        generate: mana_crystal::generate,
    },
    Generator {
        name: "cantrip_and_ritual",
        dir: "cantrip-and-ritual",
        reads_corpus: true,
        generate: cantrip_and_ritual::generate,
    },
    Generator {
        name: "embedding_search",
        dir: "cantrip-and-ritual/search",
        reads_corpus: false,
        generate: embedding_search::generate,
    },
    Generator {
        name: "alchemy_of_compression",
        dir: "alchemy-of-compression",
        reads_corpus: true,
        generate: alchemy_of_compression::generate,
    },
    Generator {
        name: "transfer_of_wisdom",
        dir: "transfer-of-wisdom",
        reads_corpus: false,
        generate: transfer_of_wisdom::generate,
    },
    Generator {
        name: "speaking_stone",
        dir: "speaking-stone",
        reads_corpus: false,
        generate: speaking_stone::generate,
    },
    Generator {
        name: "golden_triangle",
        dir: "golden-triangle",
        reads_corpus: true,
        generate: golden_triangle::generate,
    },
    Generator {
        name: "automated_forge",
        dir: "automated-forge",
        reads_corpus: false,
        generate: automated_forge::generate,
    },
    Generator {
        name: "infrastructure_canon",
        dir: "infrastructure-canon",
        reads_corpus: true,
        generate: infrastructure_canon::generate,
    },
    Generator {
        name: "layer_streamed",
        dir: "nindub",
        reads_corpus: false,
        generate: layer_streamed::generate,
    },
    Generator {
        name: "sovereign",
        dir: "sovereign",
        reads_corpus: false,
        generate: sovereign::generate,
    },
    Generator {
        name: "grimoire_of_ownership",
        dir: "grimoire-of-ownership",
        reads_corpus: false,
        generate: grimoire_of_ownership::generate,
    },
    Generator {
        name: "merchants_ledger",
        dir: "merchants-ledger",
        reads_corpus: false,
        generate: merchants_ledger::generate,
    },
];

/// Greedy generation with the top candidates at each step (the Cantrip).
const GENERATE_LOGITS: &[&str] = &[
    "generate",
    "--model",
    "smollm2",
    "--chat-template",
    "--prompt",
    "What is the capital of France?",
    "--temperature",
    "0",
    "--max-tokens",
    "12",
    "--logits",
    "--top",
    "3",
];

/// A transcript of the command line the book shows: the file (under
/// `book/src/generated/`) and the `nindub` arguments, pieces joined in order.
pub struct Transcript {
    pub file: &'static str,
    pub args: &'static [&'static [&'static str]],
}

/// Every command-line transcript the book shows.
pub const TRANSCRIPTS: &[Transcript] = &[
    Transcript {
        file: "cantrip-and-ritual/generate-logits.txt",
        args: &[GENERATE_LOGITS],
    },
    Transcript {
        file: "cantrip-and-ritual/generate-logits-candle.txt",
        args: &[GENERATE_LOGITS, &["--candle"]],
    },
    Transcript {
        file: "cantrip-and-ritual/tokenize.txt",
        args: &[&[
            "tokenize",
            "--model",
            "smollm2",
            "--prompt",
            "The capital of France is",
        ]],
    },
    Transcript {
        file: "cantrip-and-ritual/budget-80mb.txt",
        args: &[&[
            "place",
            "--model",
            "smollm2",
            "--budget",
            "80MB",
            "--context",
            "512",
        ]],
    },
    Transcript {
        file: "alchemy-of-compression/quantize-minilm.txt",
        args: &[&["quantize", "--scheme", "int8-channel", "minilm"]],
    },
    Transcript {
        file: "mana-crystal/estimate-llama-3-8b.txt",
        args: &[&["estimate", "--preset", "llama-3-8b", "--context", "8192"]],
    },
    Transcript {
        file: "mana-crystal/estimate-smollm2.txt",
        args: &[&["estimate", "--model", "smollm2"]],
    },
    Transcript {
        file: "mana-crystal/estimate-minilm.txt",
        args: &[&[
            "estimate",
            "--model",
            "minilm",
            "--context",
            "256",
            "--precision",
            "f32,f16,int8",
        ]],
    },
];

/// Writes one result file atomically.
pub fn write(dir: &Path, name: &str, text: &str) -> Result<()> {
    nindub::fsx::write_atomic(&dir.join(name), text.as_bytes())?;
    Ok(())
}

/// The figures a generator writes beside its files (`figures.json`): the
/// numbers its chapter's prose quotes by name (`{{#fig NAME}}`, rendered
/// by `cargo codex`'s preprocessor), each as the generator prints it.
#[derive(Default, serde::Serialize)]
pub struct Figures {
    /// The run the figures come from, where it is not this generator's
    /// own computation (a benchmark's command line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    figures: Vec<Figure>,
}

#[derive(serde::Serialize)]
struct Figure {
    name: String,
    /// None for a figure that is not a number (a token, a name).
    value: Option<f64>,
    unit: String,
    text: String,
}

impl Figures {
    /// A figure: its name, its value, its unit ("" for none) and how the
    /// prose prints it.
    pub fn add(&mut self, name: &str, value: f64, unit: &str, text: impl Into<String>) {
        self.figures.push(Figure {
            name: name.into(),
            value: Some(value),
            unit: unit.into(),
            text: text.into(),
        });
    }

    /// A figure that is text, not a number (a token the model chose).
    pub fn text(&mut self, name: &str, text: &str) {
        self.figures.push(Figure {
            name: name.into(),
            value: None,
            unit: String::new(),
            text: text.into(),
        });
    }

    /// A figure printed with `decimals` places, thousands grouped.
    pub fn number(&mut self, name: &str, value: f64, decimals: usize, unit: &str) {
        self.add(name, value, unit, grouped(value, decimals));
    }

    pub fn is_empty(&self) -> bool {
        self.figures.is_empty()
    }

    pub fn len(&self) -> usize {
        self.figures.len()
    }

    /// Writes `figures.json` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write(
            dir,
            "figures.json",
            &(serde_json::to_string_pretty(self)? + "\n"),
        )
    }
}

/// A figure name's part for a label of a table or a printout: lower case,
/// each run of other characters one `_`, what follows " (" left out:
/// "f32 (reference)" → "f32", "ours int8-channel A" → "ours_int8-channel_a",
/// "RoPE + attention" → "rope_attention".
pub fn figure_key(label: &str) -> String {
    let head = label.split(" (").next().unwrap_or(label);
    let mut key = String::new();
    for c in head.chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
            key.push(c.to_ascii_lowercase());
        } else if !key.ends_with('_') {
            key.push('_');
        }
    }
    key.trim_matches('_').to_string()
}

/// `value` with `decimals` places and its integer part grouped by
/// thousands: 20123.4 → "20,123.4".
pub fn grouped(value: f64, decimals: usize) -> String {
    // The ledger's formatting, with the typographic minus the book uses
    // (and Rust's own `inf`, `NaN` where a figure is not finite).
    if !value.is_finite() {
        return format!("{:.*}", decimals, value.abs());
    }
    let text = nindub::ledger::report::amount(value, decimals);
    match text.strip_prefix('-') {
        Some(rest) => format!("−{rest}"),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn grouped_prints_thousands_and_sign() {
        assert_eq!(super::grouped(20123.44, 1), "20,123.4");
        assert_eq!(super::grouped(642.0, 0), "642");
        assert_eq!(super::grouped(-1.97, 2), "−1.97");
        assert_eq!(super::grouped(-0.0001, 2), "0.00");
        assert_eq!(super::grouped(1234567.0, 0), "1,234,567");
    }
}
