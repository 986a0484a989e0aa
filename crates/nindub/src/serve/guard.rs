//! What a browser could be made to do to a server on the loopback address,
//! refused before any route runs.
//!
//! A page on any web site can send requests to `http://127.0.0.1:8080`
//! from its visitor's browser. Three rules close what that opens:
//!
//! - **Host.** A DNS-rebinding page makes its own name resolve to
//!   127.0.0.1; its requests then carry `Host: evil.example:8080`. Only the
//!   names the server was bound to (loopback names for a loopback address)
//!   and those configured (`--allowed-host`) are served; others get 421.
//! - **Content type.** A page may `POST` a "simple" request (`text/plain`,
//!   form data) without asking the server first (no CORS preflight). The
//!   API reads JSON, and requires `Content-Type: application/json` (415
//!   otherwise), which a page can only send after a preflight the server
//!   does not grant.
//! - **Framing and sniffing.** Every answer says `X-Frame-Options: DENY`,
//!   `Content-Security-Policy: frame-ancestors 'none'` and
//!   `X-Content-Type-Options: nosniff`: the page cannot be framed by another
//!   site, and no answer is read as a script it was not declared to be.

use std::net::{IpAddr, SocketAddr};

use axum::http::header::{
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, Method};

use super::protocol::ApiError;

/// The host names a server answers to.
#[derive(Debug, Clone)]
pub struct AllowedHosts {
    bound: IpAddr,
    names: Vec<String>,
}

impl AllowedHosts {
    /// For a server bound to `addr`, with extra `names` (lowercase host
    /// names or addresses, without port).
    pub fn new(addr: SocketAddr, names: &[String]) -> Self {
        AllowedHosts {
            bound: addr.ip(),
            names: names.iter().map(|n| n.to_ascii_lowercase()).collect(),
        }
    }

    // ANCHOR: host
    /// Whether a request's `Host` header names this server: a configured
    /// name; the bound address; for a loopback address `localhost` and the
    /// loopback addresses; for an unspecified address (0.0.0.0) any
    /// address literal, since the server answers on all of them. The port
    /// is not compared: only a name can be rebound.
    pub fn allows(&self, host: Option<&str>) -> bool {
        let Some(host) = host else { return false };
        let name = strip_port(host).to_ascii_lowercase();
        if self.names.contains(&name) {
            return true;
        }
        let ip = name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        match ip {
            Some(_) if self.bound.is_unspecified() => true,
            Some(ip) => ip == self.bound || (self.bound.is_loopback() && ip.is_loopback()),
            None => self.bound.is_loopback() && name == "localhost",
        }
    }
    // ANCHOR_END: host
}

/// `example.com:8080` → `example.com`; `[::1]:8080` → `[::1]`.
fn strip_port(host: &str) -> &str {
    if let Some(end) = host.rfind(']') {
        return &host[..=end];
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The checks on a request's head, in order; `Err` is the answer.
pub fn check(hosts: &AllowedHosts, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    if !hosts.allows(host) {
        return Err(ApiError::new(
            421,
            "invalid_request_error",
            "unknown_host",
            format!(
                "this server does not answer to the host {:?} (start it with --allowed-host NAME to add one)",
                host.unwrap_or("")
            ),
        ));
    }
    if method == Method::POST && !is_json(headers) {
        return Err(ApiError::new(
            415,
            "invalid_request_error",
            "unsupported_media_type",
            "the body must be JSON, sent with `Content-Type: application/json`",
        ));
    }
    Ok(())
}

/// `application/json`, with or without parameters (`; charset=utf-8`).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// The headers every answer carries. A policy the route set (the web
/// page's) keeps its directives and gains `frame-ancestors`.
pub fn harden(headers: &mut HeaderMap) {
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let policy = match headers
        .get(CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
    {
        Some(p) if p.contains("frame-ancestors") => None,
        Some(p) => HeaderValue::from_str(&format!("{p}; frame-ancestors 'none'")).ok(),
        None => Some(HeaderValue::from_static("frame-ancestors 'none'")),
    };
    if let Some(policy) = policy {
        headers.insert(CONTENT_SECURITY_POLICY, policy);
    }
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_a_loopback_server() {
        let h = AllowedHosts::new("127.0.0.1:8080".parse().unwrap(), &[]);
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST",
            "[::1]:8080",
            "127.0.0.2",
        ] {
            assert!(h.allows(Some(ok)), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "evil.example",
            "10.0.0.1:8080",
            "",
            "localhost.evil",
        ] {
            assert!(!h.allows(Some(bad)), "{bad}");
        }
        assert!(!h.allows(None));
        let named = AllowedHosts::new("127.0.0.1:8080".parse().unwrap(), &["Stone.Local".into()]);
        assert!(named.allows(Some("stone.local:8080")));
    }

    #[test]
    fn hosts_of_other_servers() {
        let any = AllowedHosts::new("0.0.0.0:80".parse().unwrap(), &[]);
        assert!(any.allows(Some("192.168.1.5")));
        assert!(!any.allows(Some("evil.example")));
        let one = AllowedHosts::new("192.168.1.5:80".parse().unwrap(), &[]);
        assert!(one.allows(Some("192.168.1.5:80")));
        assert!(!one.allows(Some("127.0.0.1")));
    }

    #[test]
    fn json_only() {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("127.0.0.1"));
        let hosts = AllowedHosts::new("127.0.0.1:1".parse().unwrap(), &[]);
        assert_eq!(check(&hosts, &Method::POST, &h).unwrap_err().status, 415);
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert_eq!(check(&hosts, &Method::POST, &h).unwrap_err().status, 415);
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("Application/JSON; charset=utf-8"),
        );
        assert!(check(&hosts, &Method::POST, &h).is_ok());
        h.remove(CONTENT_TYPE);
        assert!(check(&hosts, &Method::GET, &h).is_ok());
    }

    #[test]
    fn the_pages_policy_is_kept() {
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'"),
        );
        harden(&mut h);
        assert_eq!(
            h[CONTENT_SECURITY_POLICY],
            "default-src 'self'; frame-ancestors 'none'"
        );
        assert_eq!(h[X_FRAME_OPTIONS], "DENY");
        assert_eq!(h[X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
}
