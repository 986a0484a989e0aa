//! Trials of "The Automated Forge" and "Pocket Worlds": keyless deploys and
//! the smallest image.
//!
//! A CI job that deploys needs to prove who it is. The old way is a key
//! stored in the CI's secrets: it works for everyone who can read it, for as
//! long as nobody rotates it. The new way is federation: the CI's provider
//! signs a short-lived OIDC token (a JWT) that says *which* repository,
//! branch, environment and workflow is asking, and the cloud trades it for a
//! credential that lives minutes, if its trust policy says so.
//!
//! The trials: read a JWT's claims (trial 1; reading is not trusting), check
//! its lifetime against a clock that may be off by a little (trial 2), match
//! the `sub` claim against a policy's pattern (trial 3), and choose what the
//! runtime stage of a container image must hold (trial 4). The checks
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

/// What a file of the build stage is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A program; `static_linked` if it needs no loader and no libraries.
    Executable { static_linked: bool },
    /// A shared library (`libc.so.6`, `libgcc_s.so.1`, ...).
    SharedLibrary,
    /// The dynamic loader (`ld-linux-x86-64.so.2`).
    Loader,
    /// TLS root certificates.
    Certificates,
    /// A compiler, linker or package manager (`rustc`, `cc`, `apt`).
    Toolchain,
    /// A shell (`/bin/sh`).
    Shell,
    /// Source code, or build output other than the binary (`target/`).
    Source,
}

/// One file of the build stage, and whether the entrypoint uses it when it
/// runs (what `ldd` and a trace of its run say).
#[derive(Clone, Copy, Debug)]
pub struct Item {
    pub path: &'static str,
    pub kind: Kind,
    pub needed: bool,
}

/// Trial 4. The runtime stage's contents: the paths to copy into a
/// `FROM scratch` image so that `entrypoint` runs, and nothing more.
///
/// The entrypoint itself always. A statically linked entrypoint needs no
/// loader and no library. A dynamically linked one needs the loader and
/// the shared libraries it uses (`needed`). Certificates go in when
/// `needed`. A toolchain, a shell or sources never do, needed or not: an
/// attacker who gets in should find no compiler and no shell, and the
/// entrypoint is started in exec form, without a shell. Keep the input's
/// order.
///
/// Example: a static `/nindub` among `/usr/bin/rustc` and `/bin/sh` →
/// `["/nindub"]`.
pub fn runtime_stage(items: &[Item], entrypoint: &str) -> Vec<&'static str> {
    todo!("the entrypoint, then what it needs, never tools, shells or sources")
}
