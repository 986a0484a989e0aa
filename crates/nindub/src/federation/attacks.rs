//! What an attacker tries against an exchange, each as a token (and the
//! moment it is presented), built against a real [`Provider`]: the tests
//! assert that every one is refused for its own reason, the chapter prints
//! the table, the notebook runs them one by one.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::provider::{Job, Provider};
use crate::error::{Error, Result};

/// One attempt: what it is, the token, when it is presented, and the
/// refusal kind ([`Refusal::kind`](super::Refusal::kind)) that must stop
/// it (`None`: the control, which must pass).
#[derive(Debug, Clone)]
pub struct Attack {
    pub name: &'static str,
    pub token: String,
    pub at: u64,
    pub expect: Option<&'static str>,
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// The catalogue against `provider`, for an exchange named `audience`
/// that admits `job` (the legitimate workload) with `skew` seconds of
/// skew. Present them in order: the replays follow the control.
pub fn catalogue(
    provider: &Provider,
    job: &Job,
    audience: &str,
    now: u64,
    skew: u64,
) -> Result<Vec<Attack>> {
    let ttl = provider.ttl;
    // Each token gets its own fixed `jti`, so the refusals read the same
    // at every run.
    let claims = |j: &Job, id: usize| -> Result<Value> {
        let mut c = j.claims(&provider.issuer, audience, now, ttl)?;
        c["jti"] = json!(format!("attack-{id}"));
        Ok(c)
    };
    let kid = provider
        .active(Algorithm::RS256)
        .unwrap_or("rsa-1")
        .to_string();
    let sign = |c: &Value| provider.sign_with(&kid, c);
    let good = claims(job, 1)?;
    let control = sign(&good)?;
    let mut out = vec![];
    let mut push = |name, token, at, expect| {
        out.push(Attack {
            name,
            token,
            at,
            expect,
        })
    };
    push(
        "the deploy job on main (control)",
        control.clone(),
        now,
        None,
    );
    push(
        "the same token replayed within its lifetime",
        control.clone(),
        now.saturating_add(1),
        Some("replayed"),
    );
    push(
        "the same token replayed after its lifetime",
        control,
        now.saturating_add(ttl).saturating_add(skew),
        Some("expired"),
    );

    let mut c = claims(job, 2)?;
    c["iat"] = json!(now.saturating_sub(ttl.saturating_add(skew.saturating_mul(2))));
    c["nbf"] = c["iat"].clone();
    c["exp"] = json!(now.saturating_sub(skew.saturating_mul(2)));
    push("an expired token", sign(&c)?, now, Some("expired"));

    let mut c = claims(job, 3)?;
    c["aud"] = json!("sts.amazonaws.com");
    push(
        "a token for another audience",
        sign(&c)?,
        now,
        Some("audience"),
    );

    let mut c = claims(job, 4)?;
    c["iss"] = json!("https://token.actions.example.net");
    push(
        "a token from another issuer",
        sign(&c)?,
        now,
        Some("issuer"),
    );

    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims(job, 5)?)
    );
    push(
        "`alg: none`, no signature",
        unsigned,
        now,
        Some("algorithm"),
    );

    // RFC 8725 §2.1: a verifier that takes `alg` from the token would check
    // this HMAC with the RSA public key's bytes as the secret, and pass it.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.clone());
    let secret = EncodingKey::from_secret(provider.public_pem(&kid)?.as_bytes())
        .map_err(|e| Error::invalid("attack", e.to_string()))?;
    let confused = jsonwebtoken::encode(&header, &claims(job, 6)?, &secret)
        .map_err(|e| Error::invalid("attack", e.to_string()))?;
    push(
        "HS256, the provider's public key as the HMAC secret",
        confused,
        now,
        Some("algorithm"),
    );

    let rogue = Provider::new(&provider.issuer)?;
    push(
        "signed with the attacker's key, under the provider's `kid`",
        rogue.sign_with_kid("rsa-1", &kid, &claims(job, 7)?)?,
        now,
        Some("signature"),
    );
    push(
        "signed with the attacker's key, under a new `kid`",
        rogue.sign_with_kid("rsa-1", "rsa-rotated-by-attacker", &claims(job, 8)?)?,
        now,
        Some("unknown_kid"),
    );

    // A genuine token of a feature branch, its claims edited after signing
    // to say it deploys from main to production.
    let branch = Job {
        environment: None,
        git_ref: "refs/heads/feature".into(),
        ..job.clone()
    };
    let genuine = sign(&claims(&branch, 9)?)?;
    let parts: Vec<&str> = genuine.split('.').collect();
    let mut c = claims(&branch, 9)?;
    c["sub"] = json!(job.sub());
    c["environment"] = json!("production");
    c["ref"] = json!("refs/heads/main");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(&c),
        parts.get(2).copied().unwrap_or("")
    );
    push(
        "a feature branch's token, edited to say production",
        tampered,
        now,
        Some("signature"),
    );

    let fork_pr = Job {
        environment: None,
        event_name: "pull_request".into(),
        git_ref: "refs/pull/7/merge".into(),
        ..job.clone()
    };
    push(
        "a pull request's token (a fork's included)",
        sign(&claims(&fork_pr, 11)?)?,
        now,
        Some("policy"),
    );
    let other_repo = Job {
        repository: format!(
            "attacker/{}",
            job.repository.split('/').nth(1).unwrap_or("repo")
        ),
        ..job.clone()
    };
    push(
        "another repository's deploy job",
        sign(&claims(&other_repo, 12)?)?,
        now,
        Some("policy"),
    );
    push(
        "the same repository's feature branch",
        sign(&claims(&branch, 13)?)?,
        now,
        Some("policy"),
    );
    Ok(out)
}
