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

/// Trial 1. The claims of a compact JWT, `HEADER.CLAIMS.SIGNATURE`, NOT
/// verified.
///
/// Split on `.` (exactly three parts, else `Err`), decode the middle part
/// from base64url *without padding* (RFC 7515 §2: the alphabet `A–Z a–z
/// 0–9 - _`, 6 bits a character, and a final group of 2 or 3 characters
/// gives 1 or 2 bytes; any other character, or a lone final character, is
/// an `Err`), then parse the bytes as JSON; anything but a JSON object is an
/// `Err`. Write the decoder yourself: it is twenty lines.
///
/// Example: the claims part `eyJzdWIiOiJ4In0` decodes to `{"sub":"x"}`.
pub fn jwt_claims(token: &str) -> Result<Value, String> {
    todo!("split, base64url-decode the middle part, parse JSON")
}

/// Trial 2. Whether a token is inside its lifetime at `now`, allowing
/// `skew` seconds of clock difference either way.
///
/// Expired *at* `exp` (RFC 7519 §4.1.4: "on or after"): with skew, a
/// token is dead from `exp + skew` on. Not yet valid while `now + skew <
/// nbf` (when there is an `nbf`). Sums that would overflow `u64` saturate
/// (a forged `exp` of `u64::MAX` must not wrap around to the past).
///
/// Example: `exp = 1300`, `now = 1359`, `skew = 60` → `true`; `now =
/// 1360` → `false`.
pub fn within_lifetime(nbf: Option<u64>, exp: u64, now: u64, skew: u64) -> bool {
    todo!("exp + skew, now + skew against nbf, both saturating")
}

/// Trial 3. Whether the `sub` claim matches a trust policy's pattern.
///
/// `*` matches any run of characters, none included; every other character
/// matches only itself (no `?`, no classes, no escapes). The whole of `sub`
/// must match the whole pattern.
///
/// Examples: `repo:o/r:*` matches `repo:o/r:pull_request` (which is why it
/// is over-broad for a deploy role); `repo:o/r:ref:refs/heads/main` does
/// not match `repo:o/r:ref:refs/heads/main2`.
pub fn sub_matches(pattern: &str, sub: &str) -> bool {
    todo!("a glob with `*` only; mind the star that must swallow more")
}
