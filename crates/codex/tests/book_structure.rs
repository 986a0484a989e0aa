//! The book's own rules, checked on its sources:
//! - every chapter listed in SUMMARY.md under a Part (not a draft) has the
//!   six parts of the ritual as its `##` headings, in order;
//! - every written chapter has a notebook and trials;
//! - every `{{#include}}` names a file that exists, and an anchor it has;
//! - every image a chapter shows exists.

use std::path::PathBuf;

const RITUAL: [&str; 6] = ["Legend", "Ritual", "Result", "Insight", "Value", "Question"];

fn root() -> PathBuf {
    // At run time: cargo reuses a test binary built from another checkout of
    // the same workspace (same target directory), with that checkout's path
    // compiled in.
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run me with cargo test"))
        .join("../..")
}

/// (part, title, path) for every non-draft entry of SUMMARY.md under a
/// `# Part ...` heading.
fn written_chapters() -> Vec<(String, String, PathBuf)> {
    let summary = std::fs::read_to_string(root().join("book/src/SUMMARY.md")).unwrap();
    let mut part = String::new();
    let mut out = vec![];
    for line in summary.lines() {
        if let Some(h) = line.strip_prefix("# ") {
            part = h.trim().to_string();
            continue;
        }
        let Some(rest) = line.trim_start().strip_prefix("- [") else {
            continue;
        };
        let (title, link) = rest.split_once("](").unwrap();
        let link = link.trim_end_matches(')');
        if part.starts_with("Part") && !link.is_empty() {
            out.push((
                part.clone(),
                title.to_string(),
                root().join("book/src").join(link),
            ));
        }
    }
    out
}

fn headings(markdown: &str, level: &str) -> Vec<String> {
    let mut in_fence = false;
    let mut out = vec![];
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        }
        if !in_fence && let Some(h) = line.strip_prefix(level) {
            out.push(h.trim().to_string());
        }
    }
    out
}

#[test]
fn there_is_at_least_one_written_chapter_per_started_part() {
    let chapters = written_chapters();
    assert!(
        chapters
            .iter()
            .any(|(part, ..)| part.contains("Apprentice"))
    );
}

#[test]
fn every_written_chapter_follows_the_six_part_ritual() {
    for (_, title, path) in written_chapters() {
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            headings(&text, "## "),
            RITUAL,
            "{title} ({}): its ## headings must be the six parts, in order",
            path.display()
        );
    }
}

#[test]
fn the_checker_rejects_a_chapter_out_of_order() {
    let bad = "# X\n## Legend\n## Result\n## Ritual\n## Insight\n## Value\n## Question\n";
    assert_ne!(headings(bad, "## "), RITUAL);
    let fenced = "## Legend\n```\n## Ritual\n```\n";
    assert_eq!(
        headings(fenced, "## "),
        ["Legend"],
        "headings inside code fences do not count"
    );
}

#[test]
fn every_written_chapter_has_a_notebook_and_trials() {
    for (part, title, path) in written_chapters() {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let notebooks: Vec<_> = std::fs::read_dir(root().join("notebooks"))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(&format!("{stem}.ipynb")))
            .collect();
        assert_eq!(
            notebooks.len(),
            1,
            "{title}: expected one notebook notebooks/NN-{stem}.ipynb"
        );
        let rank = part.rsplit(' ').next().unwrap().to_lowercase();
        let module = stem.replace('-', "_");
        for dir in ["exercises/src", "exercises/solutions"] {
            let file = root().join(dir).join(&rank).join(format!("{module}.rs"));
            assert!(file.exists(), "{title}: missing {}", file.display());
        }
    }
}

#[test]
fn every_include_and_image_resolves() {
    for (_, title, path) in written_chapters() {
        let text = std::fs::read_to_string(&path).unwrap();
        let dir = path.parent().unwrap();
        for piece in text.split("{{#include ").skip(1) {
            let target = piece.split("}}").next().unwrap().trim();
            let (file, anchor) = match target.rsplit_once(':') {
                Some((f, a)) if !a.chars().all(|c| c.is_ascii_digit()) => (f, Some(a)),
                _ => (target, None),
            };
            let file = dir.join(file);
            let source = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{title}: include {}: {e}", file.display()));
            if let Some(anchor) = anchor {
                assert!(
                    source.contains(&format!("ANCHOR: {anchor}"))
                        && source.contains(&format!("ANCHOR_END: {anchor}")),
                    "{title}: {} has no anchor `{anchor}`",
                    file.display()
                );
            }
        }
        for piece in text.split("](").skip(1) {
            let target = piece.split(')').next().unwrap();
            if target.ends_with(".svg") || target.ends_with(".png") {
                assert!(
                    dir.join(target).exists(),
                    "{title}: image {target} is missing"
                );
            }
        }
    }
}
