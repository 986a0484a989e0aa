//! The provider's public keys, as a JSON Web Key Set: found through OIDC
//! discovery (`ISSUER/.well-known/openid-configuration` names `jwks_uri`),
//! cached, and fetched again when a token names a `kid` the cache does not
//! hold: that is how a provider rotates its keys without breaking anyone.
//!
//! A refetch is rate-limited, so a stream of tokens with made-up `kid`s
//! cannot turn the verifier into a load generator against the provider.

use std::path::Path;

use jsonwebtoken::jwk::{Jwk, JwkSet};

use super::Refusal;
use crate::error::{Error, Result};

/// Where a verifier finds the key a token names.
pub trait Keys {
    fn find(&mut self, kid: &str, now: u64) -> std::result::Result<Jwk, Refusal>;
}

/// A fixed key set: what `nindub serve` trusts (the exchange's public keys,
/// read from a file at start).
#[derive(Debug, Clone)]
pub struct KeySet(pub JwkSet);

impl KeySet {
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        let set: JwkSet = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if set.keys.is_empty() {
            return Err("the key set has no keys".into());
        }
        if let Some(k) = set.keys.iter().find(|k| k.common.key_id.is_none()) {
            return Err(format!(
                "a key has no `kid` (kty {:?}); every key must be named",
                k.algorithm
            ));
        }
        Ok(KeySet(set))
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        KeySet::from_json(&text).map_err(|reason| Error::Foreign {
            path: path.to_path_buf(),
            expected: "JSON Web Key Set",
            reason,
        })
    }
}

/// A fixed set is only read: shared by reference (a server checks every
/// request against the same set, without copying it).
impl Keys for &KeySet {
    fn find(&mut self, kid: &str, _now: u64) -> std::result::Result<Jwk, Refusal> {
        self.0
            .find(kid)
            .cloned()
            .ok_or_else(|| Refusal::UnknownKey(kid.into()))
    }
}

impl Keys for KeySet {
    fn find(&mut self, kid: &str, now: u64) -> std::result::Result<Jwk, Refusal> {
        let mut shared: &KeySet = self;
        shared.find(kid, now)
    }
}

/// A provider's keys fetched over HTTP and cached.
#[cfg(feature = "client")]
pub struct KeyCache {
    pub issuer: String,
    set: JwkSet,
    fetched_at: Option<u64>,
    /// Seconds a fetched set is used before it is fetched again anyway.
    pub max_age: u64,
    /// The fewest seconds between two fetches caused by unknown `kid`s.
    pub min_refetch: u64,
    /// How many times the set was fetched (the tests watch it).
    pub fetches: usize,
    agent: ureq::Agent,
}

#[cfg(feature = "client")]
impl KeyCache {
    pub fn new(issuer: impl Into<String>) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(10)))
            .build()
            .new_agent();
        KeyCache {
            issuer: issuer.into().trim_end_matches('/').to_string(),
            set: JwkSet { keys: vec![] },
            fetched_at: None,
            max_age: 3600,
            min_refetch: 10,
            fetches: 0,
            agent,
        }
    }

    fn get_json(&self, url: &str) -> std::result::Result<serde_json::Value, Refusal> {
        let unavailable = |e: String| Refusal::KeysUnavailable(format!("GET {url}: {e}"));
        let mut resp = self
            .agent
            .get(url)
            .call()
            .map_err(|e| unavailable(e.to_string()))?;
        if resp.status() != 200 {
            return Err(unavailable(format!("status {}", resp.status())));
        }
        let text = resp
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .map_err(|e| unavailable(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| unavailable(e.to_string()))
    }

    /// Discovery, then the key set. The discovery document must name the
    /// issuer we trust (OIDC Discovery §4.3), or its keys are not its keys.
    pub fn refresh(&mut self, now: u64) -> std::result::Result<(), Refusal> {
        let doc = self.get_json(&format!("{}/.well-known/openid-configuration", self.issuer))?;
        if doc["issuer"].as_str() != Some(self.issuer.as_str()) {
            return Err(Refusal::KeysUnavailable(format!(
                "the discovery document names issuer {}, not `{}`",
                doc["issuer"], self.issuer
            )));
        }
        let uri = doc["jwks_uri"]
            .as_str()
            .ok_or_else(|| Refusal::KeysUnavailable("discovery names no `jwks_uri`".into()))?
            .to_string();
        let set = self.get_json(&uri)?;
        self.set = serde_json::from_value(set)
            .map_err(|e| Refusal::KeysUnavailable(format!("{uri}: not a key set: {e}")))?;
        self.fetched_at = Some(now);
        self.fetches += 1;
        Ok(())
    }
}

#[cfg(feature = "client")]
impl Keys for KeyCache {
    fn find(&mut self, kid: &str, now: u64) -> std::result::Result<Jwk, Refusal> {
        let age = self.fetched_at.map(|t| now.saturating_sub(t));
        if age.is_none_or(|a| a >= self.max_age) {
            self.refresh(now)?;
        } else if self.set.find(kid).is_none() && age.is_some_and(|a| a >= self.min_refetch) {
            // Perhaps the provider rotated its keys since we last looked.
            self.refresh(now)?;
        }
        self.set
            .find(kid)
            .cloned()
            .ok_or_else(|| Refusal::UnknownKey(kid.into()))
    }
}
