//! Workload identity federation (The Automated Forge): a CI job proves who
//! it is with a short-lived OIDC token signed by its provider, and trades it
//! for a short-lived, scoped credential; no long-lived key is stored
//! anywhere.
//!
//! | file | what |
//! |---|---|
//! | [`attacks`] | what an attacker tries, as real tokens (the tests, the chapter's table, the notebook) |
//! | [`claims`] | an OIDC token's claims (GitHub's shape), the clock and its skew |
//! | [`keys`] | the provider's signing keys: a JWKS, fetched by discovery, cached, refetched on an unknown `kid` |
//! | [`verify`] | one token checked: algorithm allow-list, key, signature, `iss`, `aud`, times |
//! | [`policy`] | the trust policy: which workloads get which credential; over-broad patterns refused |
//! | [`credential`] | the credential itself: minted by the exchange, checked by `nindub serve` on every request |
//! | [`provider`] | a local identity provider that issues GitHub-shaped tokens (tests, the notebook, the chapter) |
//! | [`exchange`] | the exchange as an HTTP service (RFC 8693's form), with replay refusal |
//! | [`login`] | the CI job's side: an OIDC token from the runner, traded at the exchange |
//!
//! The cryptography is `jsonwebtoken`'s (RustCrypto underneath); what this
//! module adds is what a cloud's security token service decides around it.
//! Every refusal is a [`Refusal`] that says why.

pub mod attacks;
pub mod claims;
pub mod credential;
pub mod exchange;
#[cfg(feature = "server")]
mod http;
pub mod keys;
#[cfg(feature = "client")]
pub mod login;
pub mod policy;
pub mod provider;
pub mod verify;

pub use claims::{Claims, now};
pub use credential::{Credential, CredentialCheck, Minter};
#[cfg(feature = "client")]
pub use keys::KeyCache;
pub use keys::{KeySet, Keys};
pub use policy::{Grant, TrustPolicy};
pub use provider::{Job, Provider};
#[cfg(feature = "server")]
pub use provider::{ProviderService, RequestToken};
pub use verify::Verifier;

/// RFC 8693's grant type for a token exchange.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693's name for a JWT given as the subject token.
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// Why a token, a credential or a policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("algorithm `{0}` is not allowed (allowed: {1})")]
    Algorithm(String, String),
    #[error("the token names no key (`kid` missing from its header)")]
    NoKeyId,
    #[error("no key `{0}` in the provider's key set, even after refetching it")]
    UnknownKey(String),
    #[error("key `{kid}` is a {key} key; the token claims {token}")]
    KeyAlgorithm {
        kid: String,
        key: String,
        token: String,
    },
    #[error("the signature does not verify")]
    Signature,
    #[error("issuer `{got}` is not the trusted `{want}`")]
    Issuer { got: String, want: String },
    #[error("audience {got} does not include `{want}`")]
    Audience { got: String, want: String },
    #[error("claim `{0}` is missing")]
    MissingClaim(String),
    #[error("expired at {exp}; now {now} (skew allowed: {skew} s)")]
    Expired { exp: u64, now: u64, skew: u64 },
    #[error("not valid before {nbf}; now {now} (skew allowed: {skew} s)")]
    NotYetValid { nbf: u64, now: u64, skew: u64 },
    #[error("issued in the future at {iat}; now {now} (skew allowed: {skew} s)")]
    IssuedInFuture { iat: u64, now: u64, skew: u64 },
    #[error("lives {lifetime} s, longer than the {max} s allowed")]
    TooLong { lifetime: u64, max: u64 },
    #[error("token `{0}` was already exchanged (a replay)")]
    Replayed(String),
    #[error("no trust policy admits this workload: {0}")]
    Policy(String),
    #[error("policy `{name}` is over-broad: {reason}")]
    OverBroad { name: String, reason: String },
    #[error("the credential grants scope `{have}`, not `{need}`")]
    Scope { need: String, have: String },
    #[error("the provider's keys are unavailable: {0}")]
    KeysUnavailable(String),
}

impl Refusal {
    /// A short, stable name for the refusal (for tables, metrics and tests).
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Malformed(_) => "malformed",
            Refusal::Algorithm(..) => "algorithm",
            Refusal::NoKeyId => "no_kid",
            Refusal::UnknownKey(_) => "unknown_kid",
            Refusal::KeyAlgorithm { .. } => "key_algorithm",
            Refusal::Signature => "signature",
            Refusal::Issuer { .. } => "issuer",
            Refusal::Audience { .. } => "audience",
            Refusal::MissingClaim(_) => "missing_claim",
            Refusal::Expired { .. } => "expired",
            Refusal::NotYetValid { .. } => "not_yet_valid",
            Refusal::IssuedInFuture { .. } => "issued_in_future",
            Refusal::TooLong { .. } => "too_long",
            Refusal::Replayed(_) => "replayed",
            Refusal::Policy(_) => "policy",
            Refusal::OverBroad { .. } => "over_broad",
            Refusal::Scope { .. } => "scope",
            Refusal::KeysUnavailable(_) => "keys_unavailable",
        }
    }
}
