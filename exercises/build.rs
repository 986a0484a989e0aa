//! Turns `info.toml`, the one list of the trials, into the harness's table
//! (`$OUT_DIR/trials.rs`, included by `tests/trials.rs`).
//!
//! The manifest is checked first, and the build fails with the line of
//! `info.toml` at fault on: a missing or unknown field, an unknown rank, a
//! chapter or name that is not a Rust identifier, a trial listed twice, a
//! chapter under two ranks, an empty hint, or a stub that is not a `pub fn`
//! of `src/<rank>/<chapter>.rs`. Then every top-level `pub fn` of every stub
//! file `src/<rank>/<chapter>.rs` must be graded by some trial (the function
//! named like the trial, or one of its `stubs`), unless a `// not a trial`
//! line stands just above it (above its doc comment and attributes): a stub
//! that no trial grades would be a trial the learner can never pass.
//!
//! A trial whose check function does not exist is left to the compiler: the
//! generated table names `checks::<chapter>::<name>`, and the harness does
//! not compile (error[E0425]: cannot find value `<name>` in module
//! `checks::<chapter>`).

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The ranks, in order: their name in the manifest and their `Rank` variant.
const RANKS: [(&str, &str); 3] = [
    ("apprentice", "Apprentice"),
    ("engineer", "Engineer"),
    ("archmage", "Archmage"),
];

/// The line that exempts the public function below it from being a trial.
const NOT_A_TRIAL: &str = "// not a trial";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    trial: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    rank: Spanned<String>,
    chapter: Spanned<String>,
    name: Spanned<String>,
    /// The stub functions this trial grades; `[name]` when absent.
    stubs: Option<Spanned<Vec<String>>>,
    hint: Spanned<String>,
}

/// A trial, checked.
struct Trial {
    variant: &'static str,
    rank: String,
    chapter: String,
    name: String,
    stubs: Vec<String>,
    hint: String,
    line: usize,
}

fn main() {
    println!("cargo:rerun-if-changed=info.toml");
    println!("cargo:rerun-if-changed=src");
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("trials.rs");
    let result = read_manifest(&dir.join("info.toml")).and_then(|trials| {
        check_stubs(&dir, &trials)?;
        Ok(trials)
    });
    match result {
        Ok(trials) => {
            if let Err(e) = std::fs::write(&out, table(&trials)) {
                fail(&[format!("writing {}: {e}", out.display())]);
            }
        }
        Err(errors) => fail(&errors),
    }
}

fn fail(errors: &[String]) -> ! {
    for e in errors {
        eprintln!("error: {e}");
    }
    eprintln!(
        "error: {} problem(s) with the trials (exercises/info.toml, exercises/src); the harness was not generated",
        errors.len()
    );
    std::process::exit(1);
}

/// Parses and checks the manifest: every problem found, not only the first.
fn read_manifest(path: &Path) -> Result<Vec<Trial>, Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("exercises/info.toml: cannot read it: {e}")])?;
    let manifest: Manifest =
        toml::from_str(&text).map_err(|e| vec![format!("exercises/info.toml: {e}")])?;
    let at = |start: usize| format!("exercises/info.toml:{}", line_of(&text, start));
    let mut errors = vec![];
    let mut trials = vec![];
    // (chapter, name) → line, and chapter → (rank, line): the check
    // `checks::<chapter>::<name>` must be one trial's, and a chapter one rank's.
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut chapters: BTreeMap<String, (String, usize)> = BTreeMap::new();
    let mut misplaced = BTreeSet::new();
    for e in manifest.trial {
        let line = line_of(&text, e.name.span().start);
        let (rank, chapter, name) = (e.rank.get_ref(), e.chapter.get_ref(), e.name.get_ref());
        let variant = RANKS.iter().find(|(r, _)| r == rank).map(|(_, v)| *v);
        if variant.is_none() {
            let known: Vec<_> = RANKS.iter().map(|(r, _)| *r).collect();
            errors.push(format!(
                "{}: unknown rank {rank:?} (known: {})",
                at(e.rank.span().start),
                known.join(", ")
            ));
        }
        for (what, value) in [("chapter", &e.chapter), ("name", &e.name)] {
            if let Err(why) = identifier(value.get_ref()) {
                errors.push(format!(
                    "{}: {what} {:?} is not a Rust identifier ({why})",
                    at(value.span().start),
                    value.get_ref()
                ));
            }
        }
        if e.hint.get_ref().trim().is_empty() {
            errors.push(format!(
                "{}: trial {rank}::{chapter}::{name} has an empty hint",
                at(e.hint.span().start)
            ));
        }
        let stubs = match &e.stubs {
            None => vec![name.clone()],
            Some(s) => {
                let list = s.get_ref();
                if list.is_empty() {
                    errors.push(format!(
                        "{}: `stubs` is empty; leave it out to mean [{name:?}]",
                        at(s.span().start)
                    ));
                }
                let mut once = BTreeSet::new();
                for stub in list {
                    if let Err(why) = identifier(stub) {
                        errors.push(format!(
                            "{}: stub {stub:?} is not a Rust identifier ({why})",
                            at(s.span().start)
                        ));
                    }
                    if !once.insert(stub) {
                        errors.push(format!(
                            "{}: stub {stub:?} is listed twice",
                            at(s.span().start)
                        ));
                    }
                }
                list.clone()
            }
        };
        let first = *seen.entry((chapter.clone(), name.clone())).or_insert(line);
        if first != line {
            errors.push(format!(
                "exercises/info.toml:{line}: trial {rank}::{chapter}::{name} is listed twice (first at line {first})"
            ));
        }
        // A chapter is one stub file, under one rank (said once per rank).
        match chapters.get(chapter) {
            _ if variant.is_none() => {}
            Some((other, first)) if other != rank => {
                if misplaced.insert((chapter.clone(), rank.clone())) {
                    errors.push(format!(
                        "{}: chapter {chapter:?} is under rank {rank:?} here but under {other:?} at line {first}",
                        at(e.rank.span().start)
                    ));
                }
            }
            Some(_) => {}
            None => {
                chapters.insert(chapter.clone(), (rank.clone(), line));
            }
        }
        trials.push(Trial {
            variant: variant.unwrap_or("Apprentice"),
            rank: rank.clone(),
            chapter: chapter.clone(),
            name: name.clone(),
            stubs,
            hint: e.hint.into_inner(),
            line,
        });
    }
    if errors.is_empty() {
        Ok(trials)
    } else {
        Err(errors)
    }
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// `Ok` for a plain ASCII Rust identifier that can name a module or a
/// function (`checks::<chapter>::<name>`), else why not.
fn identifier(s: &str) -> Result<(), &'static str> {
    const KEYWORDS: &[&str] = &[
        "_", "abstract", "as", "async", "await", "become", "box", "break", "const", "continue",
        "crate", "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if",
        "impl", "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv",
        "pub", "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true",
        "try", "type", "typeof", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
    ];
    let mut chars = s.chars();
    match chars.next() {
        None => Err("it is empty"),
        Some(c) if !(c.is_ascii_alphabetic() || c == '_') => {
            Err("it must start with an ASCII letter or _")
        }
        _ if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            Err("only ASCII letters, digits and _")
        }
        _ if KEYWORDS.contains(&s) => Err("it is a keyword"),
        _ => Ok(()),
    }
}

/// A top-level public function of a stub file.
struct PubFn {
    name: String,
    line: usize,
    not_a_trial: bool,
}

/// The top-level `pub fn`s of a source file (rustfmt puts items at column 0;
/// methods in `impl` blocks are indented and do not count).
fn pub_fns(source: &str) -> Vec<PubFn> {
    let mut fns = vec![];
    let mut marked = false;
    for (i, line) in source.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(name) = pub_fn_name(line) {
            fns.push(PubFn {
                name,
                line: i + 1,
                not_a_trial: marked,
            });
            marked = false;
        } else if trimmed == NOT_A_TRIAL {
            marked = true;
        } else if !(trimmed.starts_with("//") || trimmed.starts_with("#[")) {
            // The mark covers the doc comment and attributes below it, no more.
            marked = false;
        }
    }
    fns
}

/// The name in `pub [const] [async] [unsafe] fn NAME`, at column 0.
fn pub_fn_name(line: &str) -> Option<String> {
    let mut rest = line.strip_prefix("pub ")?;
    for qualifier in ["const ", "async ", "unsafe "] {
        rest = rest.strip_prefix(qualifier).unwrap_or(rest);
    }
    let rest = rest.strip_prefix("fn ")?.trim_start();
    let name: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Every stub a trial names is a `pub fn` of its chapter's file, and every
/// `pub fn` of every stub file is graded by a trial (or marked as no trial).
fn check_stubs(dir: &Path, trials: &[Trial]) -> Result<(), Vec<String>> {
    let mut errors = vec![];
    // (rank, chapter) → stub → the trial that grades it.
    let mut graded: BTreeMap<(&str, &str), BTreeMap<&str, &str>> = BTreeMap::new();
    for t in trials {
        let file = graded
            .entry((t.rank.as_str(), t.chapter.as_str()))
            .or_default();
        for stub in &t.stubs {
            file.entry(stub.as_str()).or_insert(t.name.as_str());
        }
    }
    let mut files: BTreeMap<(String, String), Vec<PubFn>> = BTreeMap::new();
    for (rank, _) in RANKS {
        let rank_dir = dir.join("src").join(rank);
        let Ok(entries) = std::fs::read_dir(&rank_dir) else {
            continue; // a rank without trials yet
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(chapter) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if path.extension().is_none_or(|e| e != "rs") || chapter == "mod" {
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(source) => {
                    files.insert((rank.to_string(), chapter.to_string()), pub_fns(&source));
                }
                Err(e) => errors.push(format!("exercises/src/{rank}/{chapter}.rs: {e}")),
            }
        }
    }
    for t in trials {
        let Some(fns) = files.get(&(t.rank.clone(), t.chapter.clone())) else {
            errors.push(format!(
                "exercises/info.toml:{}: trial {}::{}::{}: there is no stub file exercises/src/{}/{}.rs",
                t.line, t.rank, t.chapter, t.name, t.rank, t.chapter
            ));
            continue;
        };
        for stub in &t.stubs {
            match fns.iter().find(|f| &f.name == stub) {
                None => errors.push(format!(
                    "exercises/info.toml:{}: trial {}::{}::{} grades `{stub}`, but exercises/src/{}/{}.rs has no `pub fn {stub}`{}",
                    t.line,
                    t.rank,
                    t.chapter,
                    t.name,
                    t.rank,
                    t.chapter,
                    if t.stubs == [t.name.clone()] {
                        " (list the functions it grades in `stubs`)"
                    } else {
                        ""
                    }
                )),
                Some(f) if f.not_a_trial => errors.push(format!(
                    "exercises/src/{}/{}.rs:{}: `{stub}` is marked `{NOT_A_TRIAL}`, but trial {}::{} grades it (exercises/info.toml:{})",
                    t.rank, t.chapter, f.line, t.chapter, t.name, t.line
                )),
                Some(_) => {}
            }
        }
    }
    for ((rank, chapter), fns) in &files {
        let file = graded.get(&(rank.as_str(), chapter.as_str()));
        for f in fns {
            if !f.not_a_trial && file.is_none_or(|g| !g.contains_key(f.name.as_str())) {
                errors.push(format!(
                    "exercises/src/{rank}/{chapter}.rs:{}: `pub fn {}` is a stub that no trial grades: add it to exercises/info.toml (as a trial named {:?}, or in the `stubs` of the trial that grades it), or put a `{NOT_A_TRIAL}` line above it if it is a helper",
                    f.line, f.name, f.name
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The Rust source of the table: a `Vec<Trial>` expression, in manifest order.
fn table(trials: &[Trial]) -> String {
    let mut out = String::from(
        "// @generated by exercises/build.rs from exercises/info.toml: edit the manifest, not this file.\n\
         // A trial whose check does not exist stops the build here with error[E0425]:\n\
         // cannot find value `<name>` in module `checks::<chapter>`.\n\
         vec![\n",
    );
    for t in trials {
        // `{:?}` writes a string as a Rust literal, every quote and backslash escaped.
        let _ = write!(
            out,
            "    // exercises/info.toml:{}\n    Trial {{\n        rank: Rank::{},\n        chapter: {:?},\n        name: {:?},\n        hint: {:?},\n        check: checks::{}::{},\n    }},\n",
            t.line, t.variant, t.chapter, t.name, t.hint, t.chapter, t.name
        );
    }
    out.push_str("]\n");
    out
}
