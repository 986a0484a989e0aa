//! Figures: the numbers the prose quotes, bound to the generated results.
//!
//! Every result generator writes its headline figures as data beside its
//! files (`generated/CHAPTER/figures.json`; a benchmark or experiment
//! writes its own under `bench/` or `experiment/`, with the run it comes
//! from). The chapters quote them by name, `{{#fig cantrip.top_p_90_p90}}`,
//! and this module is the mdBook preprocessor that renders the name as the
//! generator printed it: an unknown name fails the build. The lint
//! ([`lint`]) finds numbers in the prose of a chapter's Result, Insight and
//! Value that lie within a few percent of one of its figures but were typed
//! by hand, so that a new chapter follows the rule too.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// One figure, as a generator wrote it.
#[derive(Clone, Debug, Deserialize)]
pub struct Figure {
    pub name: String,
    /// None for a figure that is text (a token, a name).
    pub value: Option<f64>,
    #[serde(default)]
    pub unit: String,
    /// How the prose prints it (the generator's own formatting).
    pub text: String,
}

#[derive(Deserialize)]
struct FigureFile {
    figures: Vec<Figure>,
}

/// Every figure under `generated`, by name, with the chapter folder it
/// came from (`generated/CHAPTER/…/figures.json`).
pub struct Figures {
    by_name: BTreeMap<String, (String, Figure)>,
}

/// The file name every generator writes its figures to.
pub const FILE: &str = "figures.json";

impl Figures {
    pub fn load(generated: &Path) -> Result<Self> {
        let mut by_name = BTreeMap::new();
        let mut files = vec![];
        for chapter in read_dir_sorted(generated)? {
            if !chapter.is_dir() {
                continue;
            }
            let name = chapter
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.push((name.clone(), chapter.join(FILE)));
            for sub in read_dir_sorted(&chapter)? {
                if sub.is_dir() {
                    files.push((name.clone(), sub.join(FILE)));
                }
            }
        }
        for (chapter, file) in files {
            if !file.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let parsed: FigureFile = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a figures file", file.display()))?;
            for f in parsed.figures {
                if let Some((other, _)) = by_name.get(&f.name) {
                    bail!(
                        "figure `{}` is defined twice (in {} and under generated/{other})",
                        f.name,
                        file.display()
                    );
                }
                by_name.insert(f.name.clone(), (chapter.clone(), f));
            }
        }
        Ok(Figures { by_name })
    }

    pub fn get(&self, name: &str) -> Option<&Figure> {
        self.by_name.get(name).map(|(_, f)| f)
    }

    /// The figures generated for one chapter (its folder's name).
    pub fn of_chapter<'a>(&'a self, chapter: &'a str) -> impl Iterator<Item = &'a Figure> {
        self.by_name
            .values()
            .filter(move |(c, _)| c == chapter)
            .map(|(_, f)| f)
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    out.sort();
    Ok(out)
}

const OPEN: &str = "{{#fig ";

/// Replaces every `{{#fig NAME}}` in `markdown` with the figure's text
/// (`\{{#fig NAME}}` stays, without its backslash).
pub fn render(markdown: &str, figures: &Figures) -> Result<String> {
    let mut out = String::with_capacity(markdown.len());
    let mut rest = markdown;
    while let Some(at) = rest.find(OPEN) {
        // `\{{#fig NAME}}` is the directive itself, written about.
        if rest[..at].ends_with('\\') {
            out.push_str(&rest[..at - 1]);
            out.push_str(OPEN);
            rest = &rest[at + OPEN.len()..];
            continue;
        }
        out.push_str(&rest[..at]);
        let after = &rest[at + OPEN.len()..];
        let Some(end) = after.find("}}") else {
            bail!("`{OPEN}` without its closing `}}}}`");
        };
        let name = after[..end].trim();
        match figures.get(name) {
            Some(f) => out.push_str(&f.text),
            None => bail!(
                "unknown figure `{name}`: no generator writes it (the figures are the `{FILE}` files under book/src/generated; `cargo codex results` writes them)"
            ),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The sections whose prose the lint reads: where a chapter states what
/// its code measured.
const CHECKED_SECTIONS: &[&str] = &["Result", "Insight", "Value"];

/// How close a typed number may come to a figure before the lint asks for
/// the figure instead.
const TOLERANCE: f64 = 0.03;

/// A number typed by hand that a figure of the chapter gives.
#[derive(Debug, PartialEq)]
pub struct Finding {
    pub line: usize,
    pub typed: String,
    pub figure: String,
    /// The figure as generated, with its unit.
    pub generated: String,
}

/// Numbers in the Result, Insight and Value sections of `markdown` (a
/// chapter) within [`TOLERANCE`] of one of `figures` but typed by hand.
/// Numbers with fewer than two significant digits (a "4 GiB", a "0.9"),
/// parts of names (`Q4_1`, `blk.29`, `Llama-3-8B`), code and included
/// files are not read; a chapter can exempt a number that only happens to
/// lie near a figure with `<!-- not a figure: 100, 4096 (why) -->`.
pub fn lint<'a>(markdown: &str, figures: impl IntoIterator<Item = &'a Figure>) -> Vec<Finding> {
    let figures: Vec<&Figure> = figures
        .into_iter()
        .filter(|f| f.value.is_some_and(|v| v.is_finite() && v != 0.0))
        .collect();
    let exempt = exemptions(markdown);
    let mut findings = vec![];
    let mut checked = false;
    let mut fenced = false;
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        if let Some(title) = trimmed.strip_prefix("## ") {
            checked = CHECKED_SECTIONS.iter().any(|s| title.trim().starts_with(s));
            continue;
        }
        if !checked || trimmed.starts_with("<!--") {
            continue;
        }
        for n in numbers(&prose_only(line)) {
            if exempt.contains(&n.text) {
                continue;
            }
            if let Some(f) = figures.iter().find(|f| is_figure(&n, f)) {
                findings.push(Finding {
                    line: i + 1,
                    typed: n.text,
                    figure: f.name.clone(),
                    generated: format!("{} {}", f.text, f.unit).trim_end().to_string(),
                });
            }
        }
    }
    findings
}

/// The numbers a chapter declares are not figures.
fn exemptions(markdown: &str) -> Vec<String> {
    let mut out = vec![];
    for piece in markdown.split("<!-- not a figure:").skip(1) {
        if let Some(end) = piece.find("-->") {
            // Each item's first word; the rest may say why.
            out.extend(
                piece[..end]
                    .split(", ")
                    .filter_map(|item| item.split_whitespace().next())
                    .map(str::to_string),
            );
        }
    }
    out
}

/// A line without its inline code, directives (`{{#…}}`), link targets
/// and HTML comments.
fn prose_only(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    loop {
        let next = [("`", "`"), ("{{", "}}"), ("](", ")"), ("<!--", "-->")]
            .iter()
            .filter_map(|(open, close)| rest.find(open).map(|at| (at, *open, *close)))
            .min_by_key(|(at, _, _)| *at);
        let Some((at, open, close)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at]);
        out.push(' ');
        let after = &rest[at + open.len()..];
        rest = match after.find(close) {
            Some(end) => &after[end + close.len()..],
            None => "",
        };
    }
}

/// A number as the prose typed it.
#[derive(Debug)]
struct Typed {
    text: String,
    /// Thousands separators dropped, sign ignored.
    value: f64,
    significant: usize,
    /// The word right after it ("MB", "tokens", "%"), if any.
    unit: String,
}

/// The numbers in `text` worth comparing.
fn numbers(text: &str) -> Vec<Typed> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = vec![];
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len()
            && (chars[i].is_ascii_digit()
                || ((chars[i] == ',' || chars[i] == '.')
                    && chars.get(i + 1).is_some_and(char::is_ascii_digit)))
        {
            i += 1;
        }
        let typed: String = chars[start..i].iter().collect();
        let before = start.checked_sub(1).map(|j| chars[j]);
        let part_of_name = |c: Option<char>| c.is_some_and(|c| c.is_alphabetic() || c == '_');
        let joined = before == Some('-')
            && start
                .checked_sub(2)
                .is_some_and(|j| chars[j].is_alphanumeric());
        let dotted = before == Some('.') && start >= 2 && chars[start - 2].is_alphanumeric();
        let superscript = chars.get(i).is_some_and(|c| "⁰¹²³⁴⁵⁶⁷⁸⁹".contains(*c));
        if part_of_name(before)
            || part_of_name(chars.get(i).copied())
            || joined
            || dotted
            || superscript
        {
            continue;
        }
        let digits: String = typed.chars().filter(|c| *c != ',').collect();
        let significant = digits
            .trim_start_matches(['0', '.'])
            .chars()
            .filter(char::is_ascii_digit)
            .count();
        // A grouped "1,024" is one number; "3, 4" are two (the comma
        // then is punctuation, and the scan above never joined them).
        let grouped_ok = typed
            .split('.')
            .next()
            .is_none_or(|int| !int.contains(',') || int.split(',').skip(1).all(|g| g.len() == 3));
        if significant < 2 || !grouped_ok {
            continue;
        }
        let unit: String = chars[i..]
            .iter()
            .skip_while(|c| **c == ' ' || **c == '\u{a0}' || **c == '\u{2009}')
            .take_while(|c| c.is_alphabetic() || **c == '%')
            .collect();
        if let Ok(value) = digits.parse::<f64>() {
            out.push(Typed {
                text: typed,
                value,
                significant,
                unit,
            });
        }
    }
    out
}

/// Whether a typed number is the figure, as far as the prose can tell:
/// with three or more significant digits, within [`TOLERANCE`]; with two
/// (a "34", a "1.6"), only when typed exactly as the figure prints a
/// fractional value (two-digit integers coincide too often to mean
/// anything). Either way the units, where both are named, must agree.
fn is_figure(n: &Typed, f: &Figure) -> bool {
    let Some(v) = f.value.map(f64::abs) else {
        return false;
    };
    let units_agree = n.unit.is_empty()
        || f.unit.is_empty()
        || n.unit.to_lowercase().starts_with(&f.unit.to_lowercase())
        || f.unit.to_lowercase().starts_with(&n.unit.to_lowercase());
    if !units_agree {
        return false;
    }
    if n.significant >= 3 {
        (n.value - v).abs() <= TOLERANCE * v
    } else {
        let printed: String = f.text.chars().filter(|c| *c != ',').collect();
        printed.contains('.') && printed.trim_start_matches('−') == n.text.replace(',', "")
    }
}

/// `{{#fig}}` as an mdBook preprocessor: `supports RENDERER` answers yes
/// to every renderer; otherwise the book comes as JSON on stdin
/// (`[context, book]`) and goes back with every chapter's figures rendered.
pub fn preprocessor(args: &[String], generated: &Path) -> Result<()> {
    if args.first().map(String::as_str) == Some("supports") {
        return Ok(());
    }
    let figures = Figures::load(generated)?;
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the book from mdBook")?;
    let value: serde_json::Value =
        serde_json::from_str(&input).context("mdBook's input is not JSON")?;
    let Some(mut book) = value.get(1).cloned() else {
        bail!("mdBook's input is not [context, book]");
    };
    render_chapters(&mut book, &figures)?;
    serde_json::to_writer(std::io::stdout(), &book).context("writing the book back to mdBook")?;
    Ok(())
}

/// Every chapter in mdBook's book JSON, at any depth.
fn render_chapters(value: &mut serde_json::Value, figures: &Figures) -> Result<()> {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(chapter)) = map.get_mut("Chapter") {
                let name = chapter
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string();
                if let Some(Value::String(content)) = chapter.get_mut("content") {
                    *content =
                        render(content, figures).with_context(|| format!("chapter `{name}`"))?;
                }
            }
            for v in map.values_mut() {
                render_chapters(v, figures)?;
            }
        }
        Value::Array(items) => {
            for v in items {
                render_chapters(v, figures)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The lint over every written chapter: `(chapter file, findings)`.
pub fn lint_book(src: &Path, generated: &Path) -> Result<Vec<(PathBuf, Vec<Finding>)>> {
    let figures = Figures::load(generated)?;
    let mut out = vec![];
    for part in read_dir_sorted(src)? {
        if !part.is_dir() || part == generated {
            continue;
        }
        for chapter in read_dir_sorted(&part)? {
            if chapter.extension().is_none_or(|e| e != "md") {
                continue;
            }
            let stem = chapter
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(&chapter)
                .with_context(|| format!("reading {}", chapter.display()))?;
            // Every name used must exist: the build would fail on it too.
            render(&text, &figures).with_context(|| format!("{}", chapter.display()))?;
            let findings = lint(&text, figures.of_chapter(&stem));
            if !findings.is_empty() {
                out.push((chapter, findings));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(name: &str, value: f64, text: &str) -> Figure {
        Figure {
            name: name.into(),
            value: Some(value),
            unit: String::new(),
            text: text.into(),
        }
    }

    fn figures(list: Vec<Figure>) -> Figures {
        Figures {
            by_name: list
                .into_iter()
                .map(|f| (f.name.clone(), ("c".to_string(), f)))
                .collect(),
        }
    }

    #[test]
    fn render_replaces_names_and_refuses_unknown_ones() {
        let f = figures(vec![fig("c.p90", 642.0, "642")]);
        assert_eq!(
            render("at the 90th percentile {{#fig c.p90}} tokens", &f).unwrap(),
            "at the 90th percentile 642 tokens"
        );
        let err = render("{{#fig c.p91}}", &f).unwrap_err().to_string();
        assert!(err.contains("unknown figure `c.p91`"), "{err}");
        assert!(render("{{#fig c.p90", &f).is_err());
        assert_eq!(
            render("write `\\{{#fig NAME}}`", &f).unwrap(),
            "write `{{#fig NAME}}`"
        );
    }

    #[test]
    fn lint_flags_a_hand_typed_figure_in_checked_sections_only() {
        let mut tokens = fig("c.p90", 642.0, "642");
        tokens.unit = "tokens".into();
        let figs = [
            tokens,
            fig("c.norm", 147.4, "147.4"),
            fig("c.entropy", 1.62, "1.62"),
            fig("c.p", 0.15, "0.15"),
            fig("c.layers", 30.0, "30"),
        ];
        let chapter = "\
## Legend
The Legend may say 642 freely.
## Result
```console
642 in a listing is output, not prose
```
at the 90th percentile 650 tokens, a norm of {{#fig c.norm}}
## Insight
a norm of 147 at layer ten; Q642 and blk.642 are names; `642` is code
## Value
1,000 and 3, 4 and 0.9 are not figures, and 640 MB is no count of tokens
30 layers and 1.6 bits are too short to mean a figure, but 0.15 is one
";
        let found = lint(chapter, &figs);
        assert_eq!(
            found,
            vec![
                Finding {
                    line: 7,
                    typed: "650".into(),
                    figure: "c.p90".into(),
                    generated: "642 tokens".into(),
                },
                Finding {
                    line: 9,
                    typed: "147".into(),
                    figure: "c.norm".into(),
                    generated: "147.4".into(),
                },
                Finding {
                    line: 12,
                    typed: "0.15".into(),
                    figure: "c.p".into(),
                    generated: "0.15".into(),
                },
            ]
        );
        let exempt = format!("{chapter}<!-- not a figure: 650, 147 (a coincidence), 0.15 -->\n");
        assert!(lint(&exempt, &figs).is_empty());
    }

    #[test]
    fn numbers_reads_grouping_and_skips_names() {
        let got: Vec<(String, String)> =
            numbers("1,024 tokens, 3, 4, Llama-3-8B, f16, 2³¹, 0.151 and 80 %")
                .into_iter()
                .map(|n| (n.text, n.unit))
                .collect();
        let want = [("1,024", "tokens"), ("0.151", "and"), ("80", "%")];
        assert_eq!(
            got,
            want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
        );
    }
}
