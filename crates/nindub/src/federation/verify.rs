//! One token checked, in the order that keeps an attacker's bytes away from
//! every decision until the signature holds (RFC 8725's advice):
//!
//! 1. the header's `alg` must be on *our* allow-list (never trusted from
//!    the token: this is what refuses `alg: none`, and an `HS256` token
//!    "signed" with the provider's public key as an HMAC secret);
//! 2. the `kid` must name a key the provider published, and that key must
//!    be for the same algorithm (one algorithm per key);
//! 3. the signature (`jsonwebtoken`), then `iss` and `aud`;
//! 4. the times, with a bounded skew and a bounded lifetime
//!    ([`check_times`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
pub use jsonwebtoken::Algorithm;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;

use super::Refusal;
use super::claims::{Claims, GITHUB_ISSUER, check_times};
use super::keys::Keys;

/// A token's claims as JSON, read WITHOUT checking anything (to show a
/// token, never to decide on one).
pub fn unverified_claims(token: &str) -> Result<serde_json::Value, Refusal> {
    jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(token)
        .map(|t| t.claims)
        .map_err(|e| Refusal::Malformed(e.to_string()))
}

/// What a relying party trusts: one issuer, one audience (its own name),
/// the algorithms it accepts, the clock skew and the longest lifetime.
#[derive(Debug, Clone)]
pub struct Verifier {
    pub issuer: String,
    pub audience: String,
    pub algorithms: Vec<Algorithm>,
    /// Seconds of clock difference allowed each way.
    pub skew: u64,
    /// The longest `exp - iat` accepted, in seconds.
    pub max_lifetime: u64,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// The header of a compact JWS, read without trusting anything in it.
fn header(token: &str) -> Result<RawHeader, Refusal> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(Refusal::Malformed(format!(
            "{} dot-separated parts, not 3",
            parts.len()
        )));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(parts[0])
        .map_err(|e| Refusal::Malformed(format!("header is not base64url: {e}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Refusal::Malformed(format!("header is not a JSON object with `alg`: {e}")))
}

fn algorithm_name(alg: Algorithm) -> String {
    format!("{alg:?}")
}

/// Which algorithm a published key is for: its `alg` if it says, else what
/// its type and curve admit.
fn key_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    if let Some(a) = jwk.common.key_algorithm {
        return format!("{a:?}").parse().ok();
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            Some(Algorithm::ES256)
        }
        _ => None,
    }
}

impl Verifier {
    /// A relying party for GitHub Actions' tokens: RS256 and ES256 (GitHub
    /// signs with RS256), one minute of skew, at most an hour's lifetime.
    pub fn github(audience: impl Into<String>) -> Self {
        Verifier {
            issuer: GITHUB_ISSUER.into(),
            audience: audience.into(),
            algorithms: vec![Algorithm::RS256, Algorithm::ES256],
            skew: 60,
            max_lifetime: 3600,
        }
    }

    // ANCHOR: verify
    pub fn verify(&self, token: &str, keys: &mut dyn Keys, now: u64) -> Result<Claims, Refusal> {
        let head = header(token)?;
        let allowed = || {
            let names: Vec<String> = self.algorithms.iter().map(|a| algorithm_name(*a)).collect();
            names.join(", ")
        };
        let alg = self
            .algorithms
            .iter()
            .copied()
            .find(|a| algorithm_name(*a) == head.alg)
            .ok_or_else(|| Refusal::Algorithm(head.alg.clone(), allowed()))?;
        let kid = head.kid.ok_or(Refusal::NoKeyId)?;
        let jwk = keys.find(&kid, now)?;
        if key_algorithm(&jwk) != Some(alg) {
            return Err(Refusal::KeyAlgorithm {
                kid,
                key: key_algorithm(&jwk).map_or("unusable".into(), algorithm_name),
                token: head.alg,
            });
        }
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|e| Refusal::KeysUnavailable(format!("key `{kid}`: {e}")))?;
        let mut v = Validation::new(alg);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // The times are ours to check, against our clock (below).
        v.validate_exp = false;
        v.validate_nbf = false;
        v.leeway = 0;
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &v)
            .map_err(|e| self.refusal(token, e.into_kind()))?
            .claims;
        check_times(&claims, now, self.skew, self.max_lifetime)?;
        Ok(claims)
    }
    // ANCHOR_END: verify

    /// A `jsonwebtoken` error as a refusal; the claims are read (unverified)
    /// only to say what they were.
    fn refusal(&self, token: &str, kind: ErrorKind) -> Refusal {
        let seen = || jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(token).ok();
        match kind {
            ErrorKind::InvalidSignature => Refusal::Signature,
            ErrorKind::InvalidIssuer => Refusal::Issuer {
                got: seen().map_or("?".into(), |t| t.claims["iss"].to_string()),
                want: self.issuer.clone(),
            },
            ErrorKind::InvalidAudience => Refusal::Audience {
                got: seen().map_or("?".into(), |t| t.claims["aud"].to_string()),
                want: self.audience.clone(),
            },
            ErrorKind::MissingRequiredClaim(c) => Refusal::MissingClaim(c),
            ErrorKind::InvalidAlgorithm => {
                Refusal::Malformed("the header's algorithm does not match the key's".into())
            }
            other => Refusal::Malformed(format!("{other:?}")),
        }
    }
}
