//! The short-lived credential: an ES256 JWT the exchange signs for a
//! workload its policy admitted, naming the one service it is for (`aud`),
//! what it may do there (`scope`) and for how long (`exp`). `nindub serve`
//! checks all three on every request, with the same [`Verifier`] as the
//! exchange uses for the provider's tokens.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Refusal;
use super::claims::{Audience, Claims};
use super::keys::KeySet;
use super::policy::{Grant, MAX_TTL_SECS};
use super::verify::Verifier;
use crate::error::{Error, Result};

/// A fresh random id (128 bits, hex) for `jti`.
pub fn random_id() -> Result<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| Error::invalid("random id", e.to_string()))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// A public key's name: the first 16 hex digits of the SHA-256 of its JWK.
pub(crate) fn key_id(jwk: &Jwk) -> String {
    let bytes = serde_json::to_vec(&jwk.algorithm).unwrap_or_default();
    Sha256::digest(bytes)
        .iter()
        .take(8)
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// A minted credential, as the exchange hands it out.
#[derive(Debug, Clone)]
pub struct Credential {
    pub token: String,
    pub expires_in: u64,
    pub scope: String,
    pub claims: Claims,
}

/// The exchange's signing key (P-256) and the name it mints under.
pub struct Minter {
    pub issuer: String,
    key: EncodingKey,
    public: Jwk,
}

impl Minter {
    fn from_pem(issuer: &str, pem: &str) -> std::result::Result<Self, String> {
        let key = EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
        let mut public =
            Jwk::from_encoding_key(&key, Algorithm::ES256).map_err(|e| e.to_string())?;
        public.common.key_algorithm = Some(KeyAlgorithm::ES256);
        public.common.public_key_use = Some(PublicKeyUse::Signature);
        public.common.key_id = Some(key_id(&public));
        Ok(Minter {
            issuer: issuer.into(),
            key,
            public,
        })
    }

    /// A new key, held in memory only.
    pub fn generate(issuer: &str) -> Result<Self> {
        let pem = new_ec_pem()?;
        Minter::from_pem(issuer, &pem).map_err(|e| Error::invalid("exchange key", e))
    }

    /// The key in `dir/exchange-key.pem`, created (owner-only, written
    /// whole then renamed) if absent; the public half is written beside it
    /// as `exchange.jwks.json`, the file `nindub serve --trust-jwks` reads.
    pub fn load_or_create(issuer: &str, dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join("exchange-key.pem");
        let pem = match std::fs::read_to_string(&path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pem = new_ec_pem()?;
                let mut file = crate::fsx::AtomicFile::create(&path)?;
                // Owner-only before the first byte of the key is written.
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    file.file_mut()
                        .set_permissions(std::fs::Permissions::from_mode(0o600))
                        .map_err(|e| Error::io(&path, e))?;
                }
                std::io::Write::write_all(&mut file, pem.as_bytes())
                    .map_err(|e| Error::io(&path, e))?;
                file.commit()?;
                pem
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let m = Minter::from_pem(issuer, &pem).map_err(|reason| Error::Foreign {
            path: path.clone(),
            expected: "P-256 private key (PKCS#8 PEM)",
            reason,
        })?;
        let jwks = serde_json::to_vec_pretty(&m.jwks())
            .map_err(|e| Error::invalid("key set", e.to_string()))?;
        crate::fsx::write_atomic(&m.jwks_path(dir), &jwks)?;
        Ok(m)
    }

    pub fn jwks_path(&self, dir: &Path) -> PathBuf {
        dir.join("exchange.jwks.json")
    }

    /// The public key set relying services trust.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.public.clone()],
        }
    }

    // ANCHOR: mint
    /// A credential for the workload `subject` (verified claims), under
    /// `grant`, valid from `now` for `grant.ttl_secs`.
    pub fn mint(
        &self,
        subject: &Claims,
        policy: &str,
        grant: &Grant,
        now: u64,
    ) -> Result<Credential> {
        let ttl = grant.ttl_secs.min(MAX_TTL_SECS);
        let scope = grant.scope.join(" ");
        let mut extra = BTreeMap::new();
        extra.insert("scope".into(), Value::String(scope.clone()));
        extra.insert("policy".into(), Value::String(policy.into()));
        for audit in ["repository", "job_workflow_ref", "sha", "run_id"] {
            if let Some(v) = subject.extra.get(audit) {
                extra.insert(audit.into(), v.clone());
            }
        }
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: subject.sub.clone(),
            aud: Audience::One(grant.audience.clone()),
            exp: now + ttl,
            nbf: Some(now),
            iat: Some(now),
            jti: Some(random_id()?),
            extra,
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = self.public.common.key_id.clone();
        header.typ = Some("at+jwt".into());
        let token = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| Error::invalid("credential", e.to_string()))?;
        Ok(Credential {
            token,
            expires_in: ttl,
            scope,
            claims,
        })
    }
    // ANCHOR_END: mint
}

/// A new P-256 private key as PKCS#8 PEM.
pub(crate) fn new_ec_pem() -> Result<String> {
    use p256::elliptic_curve::Generate;
    let key = p256::SecretKey::try_generate_from_rng(&mut getrandom::SysRng)
        .map_err(|e| Error::invalid("P-256 key", e.to_string()))?;
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| Error::invalid("P-256 key", e.to_string()))?;
    // Proves the PEM reads back before anything depends on it.
    p256::SecretKey::from_pkcs8_pem(&pem)
        .map_err(|e| Error::invalid("P-256 key", e.to_string()))?;
    Ok(pem.to_string())
}

/// What a service that accepts credentials trusts: the exchange's public
/// keys, the exchange's name, and its own name as the audience.
#[derive(Debug, Clone)]
pub struct CredentialCheck {
    pub verifier: Verifier,
    pub keys: KeySet,
}

impl CredentialCheck {
    /// No skew: the exchange and the service keep one clock (one host, or
    /// one cloud); a credential is dead at its `exp`.
    pub fn new(keys: KeySet, issuer: &str, audience: &str) -> Self {
        CredentialCheck {
            verifier: Verifier {
                issuer: issuer.into(),
                audience: audience.into(),
                algorithms: vec![Algorithm::ES256],
                skew: 0,
                max_lifetime: MAX_TTL_SECS,
            },
            keys,
        }
    }

    // ANCHOR: check
    /// An `Authorization` header value checked for `scope`, at `now`.
    pub fn check(
        &self,
        header: Option<&str>,
        scope: &str,
        now: u64,
    ) -> std::result::Result<Claims, Refusal> {
        let token = match header.and_then(|h| h.trim_start().split_once(' ')) {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
            _ => {
                return Err(Refusal::Malformed(
                    "no `Authorization: Bearer CREDENTIAL`".into(),
                ));
            }
        };
        let claims = self.verifier.verify(token, &mut &self.keys, now)?;
        let have = claims.get("scope").unwrap_or_default();
        if !have.split(' ').any(|s| s == scope) {
            return Err(Refusal::Scope {
                need: scope.into(),
                have,
            });
        }
        Ok(claims)
    }
    // ANCHOR_END: check
}
