//! The trust policy: the real security boundary. A valid signature proves
//! only that *some* workflow on the provider asked for the token; the
//! policy says *which* ones may deploy, by conditions on the token's claims
//! (exact, or with `*` matching any run of characters), and what they get.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Refusal;
use super::claims::Claims;
use crate::error::{Error, Result};

/// What a workload that satisfies a policy receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The audience of the minted credential (the service that accepts it).
    pub audience: String,
    /// Space-separated in the credential; each route asks for one.
    pub scope: Vec<String>,
    /// The credential's lifetime, in seconds.
    pub ttl_secs: u64,
}

/// One trust relationship: tokens from `issuer` for `audience` whose
/// claims match every condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustPolicy {
    pub name: String,
    pub issuer: String,
    pub audience: String,
    /// Claim name → pattern.
    pub conditions: BTreeMap<String, String>,
    pub grant: Grant,
}

/// The longest credential a policy may grant: an hour.
pub const MAX_TTL_SECS: u64 = 3600;

// ANCHOR: matches
/// Whether `value` matches `pattern`, where `*` matches any run of
/// characters (none included) and everything else only itself. Greedy
/// backtracking over the last `*`: linear in practice, never exponential.
pub fn matches(pattern: &str, value: &str) -> bool {
    let (p, v) = (pattern.as_bytes(), value.as_bytes());
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < v.len() {
        if i < p.len() && p[i] == b'*' {
            star = Some((i, j));
            i += 1;
        } else if i < p.len() && p[i] == v[j] {
            i += 1;
            j += 1;
        } else if let Some((si, sj)) = star {
            // Let the last `*` swallow one more character.
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == b'*')
}
// ANCHOR_END: matches

impl TrustPolicy {
    /// Reads a JSON list of policies and refuses the file if any is
    /// over-broad.
    pub fn load_all(path: &Path) -> Result<Vec<TrustPolicy>> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let foreign = |reason: String| Error::Foreign {
            path: path.to_path_buf(),
            expected: "trust policy (JSON list)",
            reason,
        };
        let policies: Vec<TrustPolicy> =
            serde_json::from_str(&text).map_err(|e| foreign(e.to_string()))?;
        if policies.is_empty() {
            return Err(foreign(
                "no policies: nothing could ever be admitted".into(),
            ));
        }
        for p in &policies {
            p.lint().map_err(|r| foreign(r.to_string()))?;
        }
        Ok(policies)
    }

    // ANCHOR: lint
    /// Refuses a policy that admits more than one repository's deploys:
    /// no `sub` condition; a `*` in the owner or repository part of `sub`;
    /// a `sub` pattern that a pull request's token would match (GitHub
    /// gives fork PRs `repo:OWNER/REPO:pull_request`); a condition that is
    /// only `*`; an empty scope; a lifetime over an hour.
    pub fn lint(&self) -> std::result::Result<(), Refusal> {
        let broad = |reason: String| Refusal::OverBroad {
            name: self.name.clone(),
            reason,
        };
        let sub = self
            .conditions
            .get("sub")
            .ok_or_else(|| broad("no condition on `sub`: any workflow of any repository".into()))?;
        let repo = sub
            .strip_prefix("repo:")
            .and_then(|rest| rest.split(':').next())
            .ok_or_else(|| {
                broad(format!(
                    "`sub` pattern `{sub}` does not start `repo:OWNER/REPO:`"
                ))
            })?;
        if repo.contains('*') || !repo.contains('/') {
            return Err(broad(format!(
                "`sub` pattern `{sub}` does not pin one repository (`{repo}`)"
            )));
        }
        let pr = format!("repo:{repo}:pull_request");
        if matches(sub, &pr) {
            return Err(broad(format!(
                "`sub` pattern `{sub}` also matches `{pr}`: any pull request, a fork's included"
            )));
        }
        if let Some((claim, _)) = self
            .conditions
            .iter()
            .find(|(_, p)| p.trim_matches('*').is_empty())
        {
            return Err(broad(format!(
                "the condition on `{claim}` matches anything"
            )));
        }
        if self.grant.scope.is_empty() {
            return Err(broad("the grant has no scope".into()));
        }
        if self.grant.ttl_secs == 0 || self.grant.ttl_secs > MAX_TTL_SECS {
            return Err(broad(format!(
                "the grant lives {} s; a credential lives 1 to {MAX_TTL_SECS} s",
                self.grant.ttl_secs
            )));
        }
        Ok(())
    }
    // ANCHOR_END: lint

    /// Every condition against the (already verified) claims; the first
    /// that fails is the reason.
    pub fn evaluate(&self, claims: &Claims) -> std::result::Result<(), String> {
        if claims.iss != self.issuer {
            return Err(format!("{}: issuer is not `{}`", self.name, self.issuer));
        }
        if !claims.aud.contains(&self.audience) {
            return Err(format!(
                "{}: audience is not `{}`",
                self.name, self.audience
            ));
        }
        // `sub` first: it names the workload, so its mismatch is the reason
        // that tells most.
        let ordered = self
            .conditions
            .iter()
            .filter(|(c, _)| *c == "sub")
            .chain(self.conditions.iter().filter(|(c, _)| *c != "sub"));
        for (claim, pattern) in ordered {
            match claims.get(claim) {
                Some(value) if matches(pattern, &value) => {}
                Some(value) => {
                    return Err(format!(
                        "{}: `{claim}` is `{value}`, not `{pattern}`",
                        self.name
                    ));
                }
                None => return Err(format!("{}: the token has no `{claim}`", self.name)),
            }
        }
        Ok(())
    }
}

/// The first policy that admits the claims, or every policy's reason.
pub fn admit<'p>(
    policies: &'p [TrustPolicy],
    claims: &Claims,
) -> std::result::Result<&'p TrustPolicy, Refusal> {
    let mut reasons = vec![];
    for p in policies {
        match p.evaluate(claims) {
            Ok(()) => return Ok(p),
            Err(r) => reasons.push(r),
        }
    }
    Err(Refusal::Policy(reasons.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_matches_any_run_and_nothing_else_is_special() {
        assert!(matches(
            "repo:o/r:ref:refs/heads/main",
            "repo:o/r:ref:refs/heads/main"
        ));
        assert!(!matches(
            "repo:o/r:ref:refs/heads/main",
            "repo:o/r:ref:refs/heads/mai"
        ));
        assert!(matches("repo:o/r:*", "repo:o/r:pull_request"));
        assert!(matches(
            "repo:o/r:ref:refs/heads/*",
            "repo:o/r:ref:refs/heads/"
        ));
        assert!(matches("*a*b*", "xxaxxbxx"));
        assert!(!matches("*a*b", "xxaxxbxx"));
        assert!(matches("**", ""));
        assert!(!matches("a?", "ab"));
        // Many stars against a long non-match ends quickly.
        let long = "a".repeat(10_000);
        assert!(!matches("*a*a*a*a*a*b", &long));
    }

    fn policy(sub: &str) -> TrustPolicy {
        TrustPolicy {
            name: "deploy".into(),
            issuer: "i".into(),
            audience: "a".into(),
            conditions: [("sub".to_string(), sub.to_string())].into(),
            grant: Grant {
                audience: "nindub-serve".into(),
                scope: vec!["inference".into()],
                ttl_secs: 600,
            },
        }
    }

    #[test]
    fn over_broad_patterns_are_refused_with_the_reason() {
        assert!(policy("repo:o/r:environment:production").lint().is_ok());
        assert!(policy("repo:o/r:ref:refs/heads/main").lint().is_ok());
        for (sub, why) in [
            ("repo:o/r:*", "pull_request"),
            ("repo:o/*", "pin one repository"),
            ("repo:*", "pin one repository"),
            ("*", "does not start"),
        ] {
            let e = policy(sub).lint().unwrap_err();
            assert_eq!(e.kind(), "over_broad");
            assert!(e.to_string().contains(why), "{sub}: {e}");
        }
        let mut p = policy("repo:o/r:ref:refs/heads/main");
        p.conditions.clear();
        assert!(
            p.lint()
                .unwrap_err()
                .to_string()
                .contains("no condition on `sub`")
        );
        let mut p = policy("repo:o/r:ref:refs/heads/main");
        p.grant.ttl_secs = 86_400;
        assert!(p.lint().is_err());
    }
}
