//! Lineage: a derivative names its parents by their roots and says how it
//! was made (the relation, and the recipe: the command, and the Golden
//! Triangle's run when one was recorded). An edge is checked against what
//! the relation promises; a set of manifests is walked as a tree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::manifest::{ContentManifest, SIDECAR_IN_DIR, SIDECAR_SUFFIX};
use crate::error::{Error, Result};

/// How a model was made from its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Relation {
    /// Every tensor kept, some stored in another type (The Alchemy).
    Quantized,
    /// The same tensors cut into files (NINDUB's shards): the same root.
    Split,
    /// A student trained on the parent's outputs (The Transfer of Wisdom).
    Distilled,
    /// The parent's weights trained further.
    FineTuned,
}

impl Relation {
    pub const ALL: [Relation; 4] = [
        Relation::Quantized,
        Relation::Split,
        Relation::Distilled,
        Relation::FineTuned,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Relation::Quantized => "quantized",
            Relation::Split => "split",
            Relation::Distilled => "distilled",
            Relation::FineTuned => "fine-tuned",
        }
    }

    pub fn from_name(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                let known: Vec<_> = Self::ALL.iter().map(|r| r.name()).collect();
                Error::invalid("relation", format!("`{s}` (known: {})", known.join(", ")))
            })
    }
}

/// How a derivative was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipe {
    /// The command line, as run.
    pub command: Vec<String>,
    /// The Golden Triangle's run id, when the run was recorded (`--track`).
    #[serde(default)]
    pub run: Option<String>,
    /// The git commit the run was made from, when recorded.
    #[serde(default)]
    pub commit: Option<String>,
}

/// One parent of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parent {
    /// The parent's Merkle root.
    pub root: String,
    pub name: Option<String>,
    pub relation: Relation,
    pub recipe: Option<Recipe>,
}

impl Parent {
    /// A parent edge to `parent`, made by `relation`.
    pub fn of(parent: &ContentManifest, relation: Relation, recipe: Option<Recipe>) -> Self {
        Parent {
            root: parent.root.clone(),
            name: parent.name.clone(),
            relation,
            recipe,
        }
    }
}

// ANCHOR: edge
/// What is wrong with the edge from `parent` to `child`; empty if the
/// child names the parent and the relation's promise holds:
/// - split: the same root (the same tensors, whatever the files);
/// - quantized: the same architecture, tokenizer, tensor names and shapes;
/// - distilled, fine-tuned: the same vocabulary (the child speaks the
///   parent's tokens, in whatever file format);
///
/// and the parent's license terms allow derivatives.
pub fn check_edge(parent: &ContentManifest, child: &ContentManifest) -> Vec<String> {
    let Some(edge) = child.parents.iter().find(|p| p.root == parent.root) else {
        return vec![format!(
            "the child does not name the parent's root {}",
            short(&parent.root)
        )];
    };
    let mut problems = Vec::new();
    let tokenizer = |m: &ContentManifest| m.tokenizer.as_ref().map(|t| t.value.clone());
    match edge.relation {
        Relation::Split => {
            if child.root != parent.root {
                problems.push(format!(
                    "a split keeps the root, but the child's is {}",
                    short(&child.root)
                ));
            }
        }
        Relation::Quantized => {
            if child.architecture != parent.architecture {
                problems.push(format!(
                    "architecture {:?} became {:?}",
                    parent.architecture, child.architecture
                ));
            }
            if tokenizer(child) != tokenizer(parent) {
                problems.push("the tokenizer changed".into());
            }
            let shapes = |m: &ContentManifest| -> BTreeMap<String, Vec<u64>> {
                m.tensors
                    .iter()
                    .map(|t| (t.name.clone(), t.shape.clone()))
                    .collect()
            };
            let (p, c) = (shapes(parent), shapes(child));
            for (name, shape) in &p {
                match c.get(name) {
                    None => problems.push(format!("tensor {name} is missing")),
                    Some(s) if s != shape => {
                        problems.push(format!("tensor {name} has shape {s:?}, not {shape:?}"))
                    }
                    Some(_) => {}
                }
            }
            for name in c.keys().filter(|n| !p.contains_key(*n)) {
                problems.push(format!("tensor {name} is new"));
            }
        }
        Relation::Distilled | Relation::FineTuned => {
            // Across formats (a GGUF teacher, a safetensors student) the
            // tokenizer files differ; the vocabulary must not.
            let vocab = |m: &ContentManifest| m.vocabulary.as_ref().map(|t| t.value.clone());
            match (vocab(parent), vocab(child)) {
                (Some(p), Some(c)) if p != c => problems.push("the vocabulary changed".into()),
                (Some(_), Some(_)) => {}
                _ => problems.push(
                    "a vocabulary is unknown: the child may not speak the parent's tokens".into(),
                ),
            }
        }
    }
    if parent
        .terms
        .as_ref()
        .is_some_and(|t| !t.derivatives_allowed)
    {
        problems.push("the parent's license terms do not allow derivatives".into());
    }
    problems
}
// ANCHOR_END: edge

fn short(root: &str) -> &str {
    &root[..root.len().min(16)]
}

/// Manifests found under some directories. A split copy shares its
/// parent's root, so models are told apart by where their manifest is.
#[derive(Debug, Default)]
pub struct Registry {
    pub manifests: Vec<(PathBuf, ContentManifest)>,
}

impl Registry {
    /// Reads every manifest (`*.provenance.json`, and `provenance.json` in
    /// shard directories) under `dirs`, one level of subdirectories deep.
    pub fn scan(dirs: &[PathBuf]) -> Result<Self> {
        let mut reg = Registry::default();
        for dir in dirs {
            let mut paths = Vec::new();
            collect(dir, 2, &mut paths)?;
            paths.sort();
            for path in paths {
                let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
                let m = ContentManifest::from_bytes(&bytes, &path)?;
                reg.manifests.push((path, m));
            }
        }
        Ok(reg)
    }

    /// The model a parent edge of model `child` points to: one with that
    /// root, not the child itself, and not itself a split copy of it.
    pub fn parent_of(&self, child: usize, edge: &Parent) -> Option<usize> {
        let candidates = || {
            self.manifests
                .iter()
                .enumerate()
                .filter(move |(i, (_, m))| *i != child && m.root == edge.root)
        };
        candidates()
            .find(|(_, (_, m))| {
                !m.parents
                    .iter()
                    .any(|p| p.root == m.root && p.relation == Relation::Split)
            })
            .or_else(|| candidates().next())
            .map(|(i, _)| i)
    }

    /// The index of the model whose manifest is at `path`, or whose root
    /// starts with `prefix` (at least 8 hex digits, one match).
    pub fn find(&self, what: &str) -> Result<usize> {
        let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let given = Path::new(what);
        let wanted = [canon(given), canon(&super::manifest::sidecar_path(given))];
        if let Some(i) = self
            .manifests
            .iter()
            .position(|(p, _)| wanted.contains(&canon(p)))
        {
            return Ok(i);
        }
        let hits: Vec<usize> = (0..self.manifests.len())
            .filter(|&i| what.len() >= 8 && self.manifests[i].1.root.starts_with(what))
            .collect();
        match hits.as_slice() {
            [i] => Ok(*i),
            [] => Err(Error::invalid("model", format!("no manifest for `{what}`"))),
            _ => Err(Error::invalid(
                "model",
                format!("`{what}` names {} models; give a path", hits.len()),
            )),
        }
    }

    /// The lineage as royalty links: each parent edge at the percent the
    /// parent's license terms ask (`commercialRevShare`, 0 without terms).
    pub fn royalty_lineage(&self) -> super::royalty::Lineage {
        let mut l = super::royalty::Lineage::default();
        for (path, m) in &self.manifests {
            l.add(&display_name(m, path));
        }
        for (i, (_, m)) in self.manifests.iter().enumerate() {
            for edge in &m.parents {
                if let Some(p) = self.parent_of(i, edge) {
                    let pct = self.manifests[p]
                        .1
                        .terms
                        .as_ref()
                        .map_or(0, |t| t.commercial_rev_share);
                    // Percents come from parsed terms; links are in range.
                    let _ = l.link(i, p, pct.min(super::royalty::MAX_PERCENT));
                }
            }
        }
        l
    }

    /// The tree as text: models without a known parent at the left, each
    /// child under its parent with the relation and the edge's check.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (i, (path, m)) in self.manifests.iter().enumerate() {
            if m.parents.iter().any(|e| self.parent_of(i, e).is_some()) {
                continue;
            }
            out.push_str(&line(m, path));
            self.render_children(i, 1, &mut out, &mut BTreeSet::new());
        }
        out
    }

    fn render_children(
        &self,
        parent: usize,
        depth: usize,
        out: &mut String,
        seen: &mut BTreeSet<usize>,
    ) {
        if !seen.insert(parent) {
            return;
        }
        let p = &self.manifests[parent].1;
        for (i, (path, child)) in self.manifests.iter().enumerate() {
            for edge in child
                .parents
                .iter()
                .filter(|e| self.parent_of(i, e) == Some(parent))
            {
                let problems = check_edge(p, child);
                let verdict = if problems.is_empty() {
                    "ok".to_string()
                } else {
                    problems.join("; ")
                };
                out.push_str(&format!(
                    "{}└─ {} {} {} [edge {verdict}]\n",
                    "   ".repeat(depth - 1),
                    edge.relation.name(),
                    short(&child.root),
                    display_name(child, path),
                ));
                self.render_children(i, depth + 1, out, seen);
            }
        }
    }
}

fn display_name(m: &ContentManifest, path: &Path) -> String {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().replace(SIDECAR_SUFFIX, ""))
        .filter(|f| f != SIDECAR_IN_DIR)
        .or_else(|| {
            path.parent()
                .and_then(|d| d.file_name())
                .map(|d| format!("{}/", d.to_string_lossy()))
        })
        .unwrap_or_default();
    match &m.name {
        Some(n) => format!("{file} ({n})"),
        None => file,
    }
}

fn line(m: &ContentManifest, path: &Path) -> String {
    format!(
        "{} {} · {} tensors · license {}\n",
        short(&m.root),
        display_name(m, path),
        m.tensors.len(),
        m.license.as_ref().map_or("unstated", |l| l.value.as_str())
    )
}

fn collect(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.is_dir() {
            if depth > 1 {
                collect(&path, depth - 1, out)?;
            }
        } else if name.ends_with(SIDECAR_SUFFIX) || name == SIDECAR_IN_DIR {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provenance::manifest::TensorEntry;

    fn manifest(tensors: &[(&str, &str, u64, u8)]) -> ContentManifest {
        let tensors: Vec<TensorEntry> = tensors
            .iter()
            .map(|&(name, dtype, n, fill)| TensorEntry {
                name: name.into(),
                dtype: dtype.into(),
                shape: vec![n],
                bytes: n,
                sha256: crate::fsx::hex(&<sha2::Sha256 as sha2::Digest>::digest([fill])),
            })
            .collect();
        ContentManifest::from_tensors(tensors, Some("llama")).unwrap()
    }

    #[test]
    fn a_quantized_child_keeps_names_and_shapes_and_a_split_keeps_the_root() {
        let parent = manifest(&[("a", "F32", 4, 1), ("blk.0.b", "F32", 8, 2)]);
        let mut child = manifest(&[("a", "Q8_0", 4, 3), ("blk.0.b", "Q8_0", 8, 4)]);
        assert_eq!(check_edge(&parent, &child).len(), 1, "not named yet");
        child
            .parents
            .push(Parent::of(&parent, Relation::Quantized, None));
        assert!(check_edge(&parent, &child).is_empty());
        let mut reshaped = manifest(&[("a", "Q8_0", 4, 3), ("blk.0.b", "Q8_0", 16, 4)]);
        reshaped
            .parents
            .push(Parent::of(&parent, Relation::Quantized, None));
        let p = check_edge(&parent, &reshaped);
        assert!(p[0].contains("blk.0.b"), "{p:?}");
        let mut split = manifest(&[("a", "F32", 4, 1), ("blk.0.b", "F32", 8, 2)]);
        split
            .parents
            .push(Parent::of(&parent, Relation::Split, None));
        assert!(check_edge(&parent, &split).is_empty());
        split.parents[0].relation = Relation::Split;
        child.parents[0].relation = Relation::Split;
        assert!(check_edge(&parent, &child)[0].contains("keeps the root"));
    }

    #[test]
    fn relations_read_back_from_their_names() {
        for r in Relation::ALL {
            assert_eq!(Relation::from_name(r.name()).unwrap(), r);
        }
        assert!(
            Relation::from_name("stolen")
                .unwrap_err()
                .to_string()
                .contains("known")
        );
    }
}
