//! A model as an IP asset, in the shapes Story Protocol publishes: the IP
//! metadata document (its "IPA Metadata Standard", which Story marks as
//! subject to change) and the license terms of its Programmable IP
//! License (the `PILTerms` struct of protocol-core-v1's
//! `IPILicenseTemplate.sol`). Nothing here talks to a chain: the document
//! is written, hashed as Story's tutorials hash it (SHA-256 of the exact
//! bytes, as `0x…`), and signed by the creator ([`super::sign`]).

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::manifest::ContentManifest;
use super::royalty::MAX_PERCENT;
use crate::error::{Error, Result};
use crate::fsx;

/// A creator, as the IPA metadata standard lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpCreator {
    pub name: String,
    /// The creator's wallet address (`0x` and 40 hex digits).
    pub address: String,
    /// Percent of the creation, the creators' summing to 100.
    pub contribution_percent: u32,
}

/// A key-value attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpAttribute {
    pub key: String,
    pub value: String,
}

// ANCHOR: metadata
/// The IP metadata of a model: the standard's fields for the explorer
/// (`title`, `description`, `createdAt`, `creators`), the media fields the
/// commercial infringement check needs (`mediaUrl`, `mediaHash`,
/// `mediaType`), and the model's identity as attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpMetadata {
    pub title: String,
    pub description: String,
    /// ISO 8601.
    pub created_at: String,
    pub ip_type: String,
    pub creators: Vec<IpCreator>,
    /// Where the file can be fetched.
    pub media_url: String,
    /// `0x` + SHA-256 of the model file (the first file of a shard set:
    /// the Merkle root is the identity that covers them all).
    pub media_hash: String,
    pub media_type: String,
    pub attributes: Vec<IpAttribute>,
}
// ANCHOR_END: metadata

impl IpMetadata {
    /// The metadata of the model `m` describes.
    pub fn of(
        m: &ContentManifest,
        title: &str,
        created_at: &str,
        creators: Vec<IpCreator>,
        media_url: &str,
    ) -> Result<Self> {
        let total: u32 = creators.iter().map(|c| c.contribution_percent).sum();
        if creators.is_empty() || total != 100 {
            return Err(Error::invalid(
                "creators",
                format!("contributions must sum to 100 percent, not {total}"),
            ));
        }
        for c in &creators {
            let hex = c.address.strip_prefix("0x").unwrap_or("");
            if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::invalid(
                    "creator address",
                    format!("`{}` is not 0x and 40 hex digits", c.address),
                ));
            }
        }
        let file = m
            .files
            .first()
            .ok_or_else(|| Error::invalid("manifest", "it lists no files"))?;
        let mut attributes = vec![
            attr("nindub.root", &m.root),
            attr("nindub.format", &m.format),
            attr("parameters", &m.parameters.to_string()),
        ];
        if let Some(a) = &m.architecture {
            attributes.push(attr("architecture", a));
        }
        if let Some(t) = &m.tokenizer {
            attributes.push(attr("tokenizer.sha256", &t.value));
        }
        if let Some(l) = &m.license {
            attributes.push(attr("license", &l.value));
        }
        for p in &m.parents {
            attributes.push(attr(&format!("parent.{}", p.relation.name()), &p.root));
        }
        let name = m.name.as_deref().unwrap_or("a model");
        Ok(IpMetadata {
            title: title.to_string(),
            description: format!(
                "{name}: {} parameters, {} tensors in {} groups; content root {} (nindub provenance verify checks it)",
                m.parameters,
                m.tensors.len(),
                m.groups.len(),
                m.root
            ),
            created_at: created_at.to_string(),
            ip_type: "model".into(),
            creators,
            media_url: media_url.to_string(),
            media_hash: format!("0x{}", file.sha256),
            media_type: "application/octet-stream".into(),
            attributes,
        })
    }

    /// The exact bytes to upload (and to sign): pretty JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

/// `metadataHash`: `0x` + SHA-256 of the exact bytes uploaded. Serialise
/// the document again (other spacing, other key order) and the hash
/// changes: hash what you upload.
pub fn metadata_hash(bytes: &[u8]) -> String {
    format!("0x{}", fsx::hex(&Sha256::digest(bytes)))
}

fn attr(key: &str, value: &str) -> IpAttribute {
    IpAttribute {
        key: key.into(),
        value: value.into(),
    }
}

// ANCHOR: terms
/// The Programmable IP License's terms (`PILTerms`), field for field.
/// Amounts are `uint256` on chain: decimal strings here. `commercialRevShare`
/// is a `uint32` where [`MAX_PERCENT`] (100 000 000) is 100 %.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LicenseTerms {
    pub transferable: bool,
    pub royalty_policy: String,
    pub default_minting_fee: String,
    pub expiration: String,
    pub commercial_use: bool,
    pub commercial_attribution: bool,
    pub commercializer_checker: String,
    pub commercializer_checker_data: String,
    pub commercial_rev_share: u32,
    pub commercial_rev_ceiling: String,
    pub derivatives_allowed: bool,
    pub derivatives_attribution: bool,
    pub derivatives_approval: bool,
    pub derivatives_reciprocal: bool,
    pub derivative_rev_ceiling: String,
    pub currency: String,
    pub uri: String,
}
// ANCHOR_END: terms

/// The zero address, for "none".
pub const ZERO_ADDRESS: &str = "0x0000000000000000000000000000000000000000";

impl LicenseTerms {
    /// Story's flavour 1, "Non-Commercial Social Remixing": remix freely
    /// with attribution, no commercial use (`licenseTermsId` 1 on chain).
    pub fn non_commercial_social_remixing() -> Self {
        LicenseTerms {
            transferable: true,
            royalty_policy: ZERO_ADDRESS.into(),
            default_minting_fee: "0".into(),
            expiration: "0".into(),
            commercial_use: false,
            commercial_attribution: false,
            commercializer_checker: ZERO_ADDRESS.into(),
            commercializer_checker_data: "0x".into(),
            commercial_rev_share: 0,
            commercial_rev_ceiling: "0".into(),
            derivatives_allowed: true,
            derivatives_attribution: true,
            derivatives_approval: false,
            derivatives_reciprocal: true,
            derivative_rev_ceiling: "0".into(),
            currency: ZERO_ADDRESS.into(),
            uri: String::new(),
        }
    }

    /// "Commercial Remix": commercial use and derivatives allowed, with
    /// attribution, for `rev_share` (of [`MAX_PERCENT`]) of derivatives'
    /// revenue under `royalty_policy`, paid in `currency`.
    pub fn commercial_remix(rev_share: u32, royalty_policy: &str, currency: &str) -> Result<Self> {
        if rev_share > MAX_PERCENT {
            return Err(Error::invalid(
                "commercialRevShare",
                format!("{rev_share} is over 100 % ({MAX_PERCENT})"),
            ));
        }
        Ok(LicenseTerms {
            royalty_policy: royalty_policy.into(),
            commercial_use: true,
            commercial_attribution: true,
            commercial_rev_share: rev_share,
            currency: currency.into(),
            ..Self::non_commercial_social_remixing()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_serialise_with_the_contracts_field_names() {
        let t = LicenseTerms::commercial_remix(10_000_000, ZERO_ADDRESS, ZERO_ADDRESS).unwrap();
        let v = serde_json::to_value(&t).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        for k in [
            "transferable",
            "royaltyPolicy",
            "defaultMintingFee",
            "expiration",
            "commercialUse",
            "commercialAttribution",
            "commercializerChecker",
            "commercializerCheckerData",
            "commercialRevShare",
            "commercialRevCeiling",
            "derivativesAllowed",
            "derivativesAttribution",
            "derivativesApproval",
            "derivativesReciprocal",
            "derivativeRevCeiling",
            "currency",
            "uri",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
        assert_eq!(keys.len(), 17);
        assert!(
            LicenseTerms::commercial_remix(MAX_PERCENT + 1, ZERO_ADDRESS, ZERO_ADDRESS).is_err()
        );
    }

    #[test]
    fn the_metadata_hash_is_over_the_exact_bytes() {
        let a = br#"{"title":"x"}"#;
        let b = br#"{ "title": "x" }"#;
        assert_ne!(metadata_hash(a), metadata_hash(b));
        assert_eq!(metadata_hash(b"").len(), 66);
    }
}
