//! The Grimoire of Ownership: a model's provenance, made exact.
//!
//! - [`merkle`]: RFC 6962's Merkle tree (leaves, nodes, roots, proofs);
//! - [`manifest`]: a model's content manifest, a hash per tensor and per
//!   layer and one root over them, the file hashes, architecture,
//!   tokenizer, license; compared against the files to name what changed;
//! - [`lineage`]: parents, relations and recipes; edges checked; a set of
//!   manifests walked as a tree;
//! - [`sign`]: Ed25519 keys and detached signatures over exact bytes;
//! - [`ip`]: the manifest as Story Protocol IP metadata, and the PIL
//!   license terms;
//! - [`royalty`]: a payment split down a lineage, exactly, by LAP or LRP.
//!
//! It knows files, hashes and keys; it reads models through
//! [`crate::stream::source`] and nothing of the decoders. No chain is
//! contacted: what registration would add is the chapter's to say.

pub mod ip;
pub mod lineage;
pub mod manifest;
pub mod merkle;
pub mod royalty;
pub mod sign;

pub use lineage::{Parent, Recipe, Registry, Relation, check_edge};
pub use manifest::{ContentManifest, Discrepancy, compare, sidecar_path};

use std::path::Path;

use crate::error::Result;

/// What `verify` found: the differences between the recorded manifest and
/// the files, and the signature's verdict when one is kept beside it.
#[derive(Debug)]
pub struct Verification {
    pub recorded: ContentManifest,
    pub found: ContentManifest,
    pub discrepancies: Vec<Discrepancy>,
    /// `None`: no signature file; `Some(Ok(signer))`; `Some(Err(why))`.
    pub signature: Option<std::result::Result<String, sign::Refusal>>,
}

impl Verification {
    /// Whether the files are what was recorded, and any signature holds.
    pub fn ok(&self) -> bool {
        self.discrepancies.is_empty() && !matches!(self.signature, Some(Err(_)))
    }
}

/// Where a manifest's signature is kept: beside the manifest, `.sig`.
pub fn signature_path(model: &Path) -> std::path::PathBuf {
    let mut s = sidecar_path(model).into_os_string();
    s.push(".sig");
    s.into()
}

// ANCHOR: verify
/// Recomputes `model`'s manifest and compares it with the recorded one;
/// checks the recorded manifest's signature when there is one (against
/// `trusted`, a public key in hex, when given).
pub fn verify(
    model: &Path,
    trusted: Option<&str>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Verification> {
    let sidecar = sidecar_path(model);
    let recorded_bytes =
        std::fs::read(&sidecar).map_err(|e| crate::error::Error::io(&sidecar, e))?;
    let recorded = ContentManifest::from_bytes(&recorded_bytes, &sidecar)?;
    let found = ContentManifest::compute(model, progress)?;
    let discrepancies = compare(&recorded, &found);
    let sig_path = signature_path(model);
    let signature = if sig_path.is_file() {
        let bytes = std::fs::read(&sig_path).map_err(|e| crate::error::Error::io(&sig_path, e))?;
        Some(match serde_json::from_slice::<sign::Signature>(&bytes) {
            Ok(sig) => sign::verify(&sig, &recorded_bytes, trusted).map(|()| sig.public_key),
            Err(e) => Err(sign::Refusal::Malformed(e.to_string())),
        })
    } else {
        None
    };
    Ok(Verification {
        recorded,
        found,
        discrepancies,
        signature,
    })
}
// ANCHOR_END: verify

/// Signs `model`'s recorded manifest (its exact bytes) with `key`, and
/// writes the signature beside it.
pub fn sign_recorded(model: &Path, key: &ed25519_dalek::SigningKey) -> Result<sign::Signature> {
    let sidecar = sidecar_path(model);
    let bytes = std::fs::read(&sidecar).map_err(|e| crate::error::Error::io(&sidecar, e))?;
    // Refuse to sign something that is not a manifest.
    ContentManifest::from_bytes(&bytes, &sidecar)?;
    let sig = sign::sign(key, &bytes);
    let mut out = serde_json::to_vec_pretty(&sig).unwrap_or_default();
    out.push(b'\n');
    crate::fsx::write_atomic(&signature_path(model), &out)?;
    Ok(sig)
}

/// The manifest of `model`: the recorded one if its sidecar exists and
/// still matches the file sizes, else computed now.
pub fn manifest_of(model: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<ContentManifest> {
    if let Ok(m) = ContentManifest::read_recorded(model) {
        let sizes_match = m.files.len() == 1 && !model.is_dir() && {
            std::fs::metadata(model).map(|md| md.len()).ok() == Some(m.files[0].bytes)
        };
        if sizes_match || model.is_dir() {
            return Ok(m);
        }
    }
    ContentManifest::compute(model, progress)
}

// ANCHOR: derive
/// Records `child` as made from `parent` by `relation` (its manifest,
/// computed now, with the parent's root and the recipe), writes it beside
/// the child, and returns it with the edge's problems (empty if it holds).
pub fn record_derivative(
    parent: &Path,
    child: &Path,
    relation: Relation,
    recipe: Option<Recipe>,
) -> Result<(ContentManifest, Vec<String>)> {
    let p = manifest_of(parent, &mut |_, _| {})?;
    let mut c = ContentManifest::compute(child, &mut |_, _| {})?;
    // A derivative keeps the parent's license unless it states its own.
    if c.license.is_none()
        && let Some(l) = &p.license
    {
        c.license = Some(manifest::Sourced {
            value: l.value.clone(),
            source: format!("inherited from {}", &p.root[..16]),
        });
    }
    c.parents.push(Parent::of(&p, relation, recipe));
    let problems = check_edge(&p, &c);
    c.write_recorded(child)?;
    Ok((c, problems))
}
// ANCHOR_END: derive
