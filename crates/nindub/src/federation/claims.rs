//! An OIDC token's claims, in the shape GitHub Actions gives them, and the
//! clock they are checked against.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Refusal;

/// The issuer of GitHub Actions' OIDC tokens.
pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// Seconds since the Unix epoch, as `exp`, `nbf` and `iat` count them.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `aud`: one audience or several (RFC 7519 §4.1.3 allows both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains(&self, aud: &str) -> bool {
        match self {
            Audience::One(a) => a == aud,
            Audience::Many(v) => v.iter().any(|a| a == aud),
        }
    }
}

impl std::fmt::Display for Audience {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Audience::One(a) => write!(f, "`{a}`"),
            Audience::Many(v) => write!(f, "{v:?}"),
        }
    }
}

/// The registered claims every check needs, and the rest (GitHub's
/// `repository`, `repository_owner`, `ref`, `environment`,
/// `job_workflow_ref`, ...) kept as they came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Claims {
    /// A claim as a string, for a policy to match: the registered ones by
    /// name, the rest when they are strings (or numbers, written out).
    pub fn get(&self, name: &str) -> Option<String> {
        match name {
            "iss" => Some(self.iss.clone()),
            "sub" => Some(self.sub.clone()),
            "jti" => self.jti.clone(),
            _ => match self.extra.get(name)? {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            },
        }
    }
}

// ANCHOR: times
/// The time claims against `now`, each allowed `skew` seconds of clock
/// difference between the issuer and us, and a bound on the lifetime the
/// issuer gave. A token is expired *at* `exp` (RFC 7519 §4.1.4: "on or
/// after"), so with skew it is refused from `exp + skew` on.
pub fn check_times(c: &Claims, now: u64, skew: u64, max_lifetime: u64) -> Result<(), Refusal> {
    if now >= c.exp.saturating_add(skew) {
        return Err(Refusal::Expired {
            exp: c.exp,
            now,
            skew,
        });
    }
    if let Some(nbf) = c.nbf
        && now.saturating_add(skew) < nbf
    {
        return Err(Refusal::NotYetValid { nbf, now, skew });
    }
    let iat = c.iat.ok_or_else(|| Refusal::MissingClaim("iat".into()))?;
    if iat > now.saturating_add(skew) {
        return Err(Refusal::IssuedInFuture { iat, now, skew });
    }
    let lifetime = c.exp.saturating_sub(iat);
    if lifetime > max_lifetime {
        return Err(Refusal::TooLong {
            lifetime,
            max: max_lifetime,
        });
    }
    Ok(())
}
// ANCHOR_END: times

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(iat: u64, nbf: u64, exp: u64) -> Claims {
        Claims {
            iss: "i".into(),
            sub: "s".into(),
            aud: Audience::One("a".into()),
            exp,
            nbf: Some(nbf),
            iat: Some(iat),
            jti: None,
            extra: BTreeMap::new(),
        }
    }

    #[test]
    fn skew_is_allowed_on_both_sides_and_no_more() {
        let c = claims(1000, 1000, 1300);
        assert!(check_times(&c, 1000, 0, 600).is_ok());
        assert!(check_times(&c, 1299, 0, 600).is_ok());
        assert_eq!(check_times(&c, 1300, 0, 600).unwrap_err().kind(), "expired");
        assert!(check_times(&c, 1359, 60, 600).is_ok());
        assert_eq!(
            check_times(&c, 1360, 60, 600).unwrap_err().kind(),
            "expired"
        );
        assert!(check_times(&c, 940, 60, 600).is_ok());
        assert_eq!(
            check_times(&c, 939, 60, 600).unwrap_err().kind(),
            "not_yet_valid"
        );
        assert_eq!(
            check_times(&c, 1000, 0, 299).unwrap_err().kind(),
            "too_long"
        );
        // A forged `exp` at the end of time neither overflows nor passes the
        // lifetime bound.
        let forever = claims(1000, 1000, u64::MAX);
        assert_eq!(
            check_times(&forever, 1000, 60, 600).unwrap_err().kind(),
            "too_long"
        );
    }

    #[test]
    fn audiences_one_or_many() {
        let one: Audience = serde_json::from_str("\"x\"").unwrap();
        let many: Audience = serde_json::from_str("[\"y\",\"x\"]").unwrap();
        assert!(one.contains("x") && many.contains("x") && !many.contains("z"));
    }
}
