//! Trials of "The Automated Forge": deploys that carry no key.
//!
//! A CI job that deploys needs to prove who it is. The old way is a key
//! stored in the CI's secrets: it works for everyone who can read it, for as
//! long as nobody rotates it. The new way is federation: the CI's provider
//! signs a short-lived OIDC token (a JWT) that says *which* repository,
//! branch, environment and workflow is asking, and the cloud trades it for a
//! credential that lives minutes, if its trust policy says so.
//!
//! The trials: read a JWT's claims (trial 1; reading is not trusting), check
//! its lifetime against a clock that may be off by a little (trial 2), and
//! match the `sub` claim against a policy's pattern (trial 3). The checks
//! compare your answers with the engine's own (`nindub::federation`), on
//! tokens its local identity provider signs.
// The stubs do not use their arguments yet: that is your job.
#![allow(unused_variables)]

use serde_json::Value;

/// One base64url character's 6 bits.
fn sextet(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => return None,
    } as u32)
}

fn base64url(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    if bytes.len() % 4 == 1 {
        return Err("a lone final base64url character".into());
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for group in bytes.chunks(4) {
        let mut acc = 0u32;
        for &c in group {
            acc =
                acc << 6 | sextet(c).ok_or_else(|| format!("`{}` is not base64url", c as char))?;
        }
        // 4 characters: 24 bits, 3 bytes; 3: 18 bits, 2 bytes; 2: 12, 1.
        let n = group.len() - 1;
        acc <<= 6 * (4 - group.len()) as u32;
        out.extend_from_slice(&acc.to_be_bytes()[1..1 + n]);
    }
    Ok(out)
}

/// Trial 1. The claims of a compact JWT, NOT verified.
pub fn jwt_claims(token: &str) -> Result<Value, String> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(format!("{} parts, not 3", parts.len()));
    }
    let bytes = base64url(parts[1])?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    if !v.is_object() {
        return Err("the claims are not a JSON object".into());
    }
    Ok(v)
}

/// Trial 2. Whether a token is inside its lifetime at `now`.
pub fn within_lifetime(nbf: Option<u64>, exp: u64, now: u64, skew: u64) -> bool {
    now < exp.saturating_add(skew) && nbf.is_none_or(|nbf| now.saturating_add(skew) >= nbf)
}

/// Trial 3. Whether the `sub` claim matches a trust policy's pattern.
pub fn sub_matches(pattern: &str, sub: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), sub.as_bytes());
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < s.len() {
        if i < p.len() && p[i] == b'*' {
            star = Some((i, j));
            i += 1;
        } else if i < p.len() && p[i] == s[j] {
            i += 1;
            j += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == b'*')
}
