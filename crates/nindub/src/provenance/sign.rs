//! Ed25519 signatures over exact bytes (a manifest, an IP-metadata
//! document): the creator's key signs, anyone with the public key checks.
//! A signature proves who signed only to someone who already trusts that
//! public key: `verify` takes the trusted key, and says so when it has none.

use std::io::Write as _;
use std::path::Path;

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::fsx;

/// A key file: the 32-byte secret seed and the public key, in hex.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    alg: String,
    secret: String,
    public: String,
}

/// A detached signature over some bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// `ed25519`.
    pub alg: String,
    /// The signer's public key, hex.
    pub public_key: String,
    /// SHA-256 of the signed bytes, hex (to name what was signed).
    pub sha256: String,
    /// The 64-byte signature, hex.
    pub signature: String,
}

/// A new key from the operating system's random source.
pub fn generate() -> Result<SigningKey> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| Error::invalid("random key", e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Writes `key` to `path`, readable by its owner only (created under a
/// temporary name with mode 0600, then renamed).
pub fn write_key(path: &Path, key: &SigningKey) -> Result<()> {
    let file = KeyFile {
        alg: "ed25519".into(),
        secret: fsx::hex(key.as_bytes()),
        public: public_hex(&key.verifying_key()),
    };
    let bytes = serde_json::to_vec_pretty(&file).unwrap_or_default();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let write = || -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::Write {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    })
}

/// Reads a key written by [`write_key`]; a file whose public key does not
/// follow from its secret is refused.
pub fn read_key(path: &Path) -> Result<SigningKey> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |field: &str, reason: String| Error::Metadata {
        path: path.to_path_buf(),
        field: field.into(),
        reason,
    };
    let file: KeyFile = serde_json::from_slice(&bytes).map_err(|e| Error::Foreign {
        path: path.to_path_buf(),
        expected: "ed25519 key",
        reason: e.to_string(),
    })?;
    if file.alg != "ed25519" {
        return Err(bad("alg", format!("`{}`, not ed25519", file.alg)));
    }
    let seed: [u8; 32] = unhex(&file.secret)
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| bad("secret", "not 32 bytes of hex".into()))?;
    let key = SigningKey::from_bytes(&seed);
    if public_hex(&key.verifying_key()) != file.public {
        return Err(bad("public", "does not match the secret".into()));
    }
    Ok(key)
}

/// A public key, hex.
pub fn public_hex(key: &VerifyingKey) -> String {
    fsx::hex(key.as_bytes())
}

// ANCHOR: sign
/// Signs `bytes` exactly as they are.
pub fn sign(key: &SigningKey, bytes: &[u8]) -> Signature {
    Signature {
        alg: "ed25519".into(),
        public_key: public_hex(&key.verifying_key()),
        sha256: fsx::hex(&Sha256::digest(bytes)),
        signature: fsx::hex(&key.sign(bytes).to_bytes()),
    }
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the signature is not ed25519, or not well formed: {0}")]
    Malformed(String),
    #[error(
        "the signed bytes were {signed}, these are {actual}: the document changed after signing"
    )]
    Changed { signed: String, actual: String },
    #[error("the signature does not verify under key {0}")]
    Forged(String),
    #[error("signed by {signer}, not by the trusted key {trusted}")]
    Untrusted { signer: String, trusted: String },
}

/// Checks `sig` over `bytes` (strict Ed25519: no malleable encodings), and
/// that the signer is `trusted` when a trusted public key is given.
pub fn verify(
    sig: &Signature,
    bytes: &[u8],
    trusted: Option<&str>,
) -> std::result::Result<(), Refusal> {
    let malformed = |what: &str| Refusal::Malformed(what.to_string());
    if sig.alg != "ed25519" {
        return Err(malformed("alg"));
    }
    let public: [u8; 32] = unhex(&sig.public_key)
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| malformed("public_key"))?;
    let signature: [u8; 64] = unhex(&sig.signature)
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| malformed("signature"))?;
    let key = VerifyingKey::from_bytes(&public).map_err(|_| malformed("public_key"))?;
    let actual = fsx::hex(&Sha256::digest(bytes));
    if actual != sig.sha256 {
        return Err(Refusal::Changed {
            signed: sig.sha256.clone(),
            actual,
        });
    }
    key.verify_strict(bytes, &ed25519_dalek::Signature::from_bytes(&signature))
        .map_err(|_| Refusal::Forged(sig.public_key.clone()))?;
    if let Some(trusted) = trusted
        && !trusted.eq_ignore_ascii_case(&sig.public_key)
    {
        return Err(Refusal::Untrusted {
            signer: sig.public_key.clone(),
            trusted: trusted.to_string(),
        });
    }
    Ok(())
}
// ANCHOR_END: sign

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_8032_test_vector_1_signs_as_published() {
        // RFC 8032 §7.1, TEST 1: the empty message.
        let seed: [u8; 32] =
            unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let key = SigningKey::from_bytes(&seed);
        let sig = sign(&key, b"");
        assert_eq!(
            sig.public_key,
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert_eq!(
            sig.signature,
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        assert_eq!(verify(&sig, b"", None), Ok(()));
    }

    #[test]
    fn changed_bytes_forged_signatures_and_strangers_are_refused() {
        let key = generate().unwrap();
        let doc = br#"{"title":"SmolLM2"}"#;
        let sig = sign(&key, doc);
        let trusted = public_hex(&key.verifying_key());
        assert_eq!(verify(&sig, doc, Some(&trusted)), Ok(()));
        assert!(matches!(
            verify(&sig, br#"{"title":"SmolLM3"}"#, None),
            Err(Refusal::Changed { .. })
        ));
        let mut forged = sig.clone();
        forged.signature.replace_range(
            0..2,
            if &sig.signature[..2] == "00" {
                "01"
            } else {
                "00"
            },
        );
        assert!(matches!(
            verify(&forged, doc, None),
            Err(Refusal::Forged(_))
        ));
        let stranger = generate().unwrap();
        let theirs = sign(&stranger, doc);
        assert!(matches!(
            verify(&theirs, doc, Some(&trusted)),
            Err(Refusal::Untrusted { .. })
        ));
        let mut garbage = sig;
        garbage.public_key = "zz".into();
        assert!(matches!(
            verify(&garbage, doc, None),
            Err(Refusal::Malformed(_))
        ));
    }

    #[test]
    fn keys_round_trip_private_and_refuse_tampering() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creator.key");
        let key = generate().unwrap();
        write_key(&path, &key).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_key(&path).unwrap().as_bytes(), key.as_bytes());
        let text = std::fs::read_to_string(&path).unwrap();
        let other = public_hex(&generate().unwrap().verifying_key());
        std::fs::write(
            &path,
            text.replace(&public_hex(&key.verifying_key()), &other),
        )
        .unwrap();
        assert!(
            read_key(&path)
                .unwrap_err()
                .to_string()
                .contains("does not match")
        );
        std::fs::write(&path, "not json").unwrap();
        assert!(read_key(&path).is_err());
    }
}
