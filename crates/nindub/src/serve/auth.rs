//! Access: an optional API key, presented as `Authorization: Bearer KEY`.
//!
//! A comparison that stops at the first differing byte answers sooner the
//! worse a guess is; timed over many requests, that leaks the key a byte at
//! a time. So both sides are hashed (which also hides the key's length) and
//! the digests compared in constant time (`subtle`).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The key a server expects (kept as its digest only).
#[derive(Clone)]
pub struct ApiKey {
    digest: [u8; 32],
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(…)")
    }
}

// ANCHOR: verify
impl ApiKey {
    pub fn new(key: &str) -> Self {
        ApiKey {
            digest: Sha256::digest(key.as_bytes()).into(),
        }
    }

    /// Whether `presented` is the key; the time taken does not depend on
    /// where the two differ, nor on their lengths.
    pub fn verify(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest.ct_eq(&self.digest).into()
    }

    /// Checks an `Authorization` header value: the `Bearer` scheme (its
    /// name is case-insensitive, RFC 7235), then the key.
    pub fn verify_header(&self, header: Option<&str>) -> bool {
        match header.and_then(|h| h.trim_start().split_once(' ')) {
            Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") => self.verify(key.trim()),
            _ => false,
        }
    }
}
// ANCHOR_END: verify

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_key_opens() {
        let k = ApiKey::new("s3cret");
        assert!(k.verify("s3cret"));
        assert!(!k.verify("s3cre"));
        assert!(!k.verify("s3creT"));
        assert!(!k.verify(""));
        assert!(k.verify_header(Some("Bearer s3cret")));
        assert!(k.verify_header(Some("bearer s3cret")));
        assert!(k.verify_header(Some("BEARER  s3cret")));
        assert!(!k.verify_header(Some("Basic s3cret")));
        assert!(!k.verify_header(None));
        assert_eq!(format!("{k:?}"), "ApiKey(…)");
    }
}
