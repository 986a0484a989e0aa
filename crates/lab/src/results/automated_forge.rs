//! Generates the Results of "The Automated Forge":
//! `cargo run -p lab --bin results -- run automated_forge book/src/generated/automated-forge`.
//!
//! A deploy job's token as the exchange reads it, the exchange's answer to
//! every attack in the catalogue, the credential it mints, and the
//! exchange drawn as a sequence. Keys are fresh at every run, but the
//! clock is fixed and each token's `jti` is fixed, so nothing written
//! depends on them; the credential's own `jti` (128 random bits) is shown
//! as such.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nindub::federation::attacks::catalogue;
use nindub::federation::exchange::Exchange;
use nindub::federation::{Job, KeySet, Minter, Provider, TrustPolicy, Verifier};

use super::{Figures, write};
use crate::plot;

/// 2026-12-01T00:00:00Z: the moment every token here is issued.
const NOW: u64 = 1_796_083_200;
const REPO: &str = "technomancy-codex/codex";

fn decoded(token: &str) -> Result<String> {
    let mut out = String::new();
    for (name, part) in ["header", "claims"].iter().zip(token.split('.')) {
        let v: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part)?)?;
        writeln!(out, "{name}: {}", serde_json::to_string_pretty(&v)?)?;
    }
    Ok(out)
}

pub fn generate(out: &Path) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let provider = Provider::new("https://token.actions.githubusercontent.com")?;
    let mut policies = TrustPolicy::load_all(&root.join("deploy/trust-policy.json"))?;
    let grant = policies[0].grant.clone();
    let verifier = Verifier::github("nindub-exchange");
    for p in &mut policies {
        p.issuer = provider.issuer.clone();
    }
    let x = Exchange::new(
        verifier.clone(),
        KeySet(provider.jwks()),
        policies,
        Minter::generate("nindub-exchange")?,
    )?;
    let job = Job::main_push(REPO);
    let attacks = catalogue(&provider, &job, "nindub-exchange", NOW, verifier.skew)?;

    let mut table = String::from(
        "| attempt | presented at | refused as | the exchange's reason |\n|---|---|---|---|\n",
    );
    let mut refused = 0;
    let mut credential = None;
    for a in &attacks {
        let at = format!("t{:+} s", a.at as i64 - NOW as i64);
        match x.exchange(&a.token, a.at) {
            Ok(c) => {
                writeln!(
                    table,
                    "| {} | {at} | **admitted** | credential for `{}`, scope `{}`, {} s |",
                    a.name, grant.audience, c.scope, c.expires_in
                )?;
                credential = Some(c);
            }
            Err(r) => {
                anyhow::ensure!(
                    Some(r.kind()) == a.expect,
                    "{}: refused as {} ({r}), expected {:?}",
                    a.name,
                    r.kind(),
                    a.expect
                );
                refused += 1;
                writeln!(
                    table,
                    "| {} | {at} | `{}` | {} |",
                    a.name,
                    r.kind(),
                    r.to_string().replace('|', "\\|")
                )?;
            }
        }
    }
    write(out, "attacks.md", &table)?;
    write(out, "token.txt", &decoded(&attacks[0].token)?)?;
    let c = credential.ok_or_else(|| anyhow::anyhow!("the control was refused"))?;
    let mut shown = c.claims.clone();
    shown.jti = Some("(128 random bits, hex)".into());
    write(
        out,
        "credential.txt",
        &format!("{}\n", serde_json::to_string_pretty(&shown)?),
    )?;

    let svg = plot::sequence(
        &["CI job", "OIDC provider", "exchange", "nindub serve"],
        &[
            (
                0,
                1,
                "GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=nindub-exchange".into(),
            ),
            (1, 1, format!("signs sub={} (RS256)", job.sub())),
            (
                1,
                0,
                format!("{{\"value\": JWT}}  lives {} s", provider.ttl),
            ),
            (
                0,
                2,
                "POST /token  grant_type=token-exchange, subject_token=JWT".into(),
            ),
            (
                2,
                1,
                "GET /.well-known/openid-configuration, then jwks_uri (cached)".into(),
            ),
            (
                2,
                2,
                "alg allow-list, kid, signature, iss, aud, exp±skew, jti unseen".into(),
            ),
            (
                2,
                2,
                "trust policy: sub, repository_owner, ref, job_workflow_ref".into(),
            ),
            (
                2,
                0,
                format!(
                    "{{\"access_token\": ES256 JWT, \"expires_in\": {}}}",
                    grant.ttl_secs
                ),
            ),
            (
                0,
                3,
                "POST /v1/chat/completions  Authorization: Bearer credential".into(),
            ),
            (
                3,
                3,
                "signature (exchange's JWKS), aud=nindub-serve, exp, scope".into(),
            ),
            (3, 0, "200, or 401 with the reason".into()),
        ],
    )?;
    svg.save(out.join("sequence.svg"))?;

    let mut figs = Figures::default();
    figs.number("forge.attacks", refused as f64, 0, "");
    figs.number("forge.oidc_ttl", provider.ttl as f64, 0, "s");
    figs.number("forge.credential_ttl", grant.ttl_secs as f64, 0, "s");
    figs.number(
        "forge.credential_minutes",
        grant.ttl_secs as f64 / 60.0,
        0,
        "min",
    );
    figs.number("forge.skew", verifier.skew as f64, 0, "s");
    figs.write(out)?;
    Ok(())
}
