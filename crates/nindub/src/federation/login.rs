//! What the CI job runs (the client side of the exchange): ask the runner's
//! provider for an OIDC token for the exchange's audience, then trade it
//! for a credential. GitHub hands a job `ACTIONS_ID_TOKEN_REQUEST_URL` and
//! `ACTIONS_ID_TOKEN_REQUEST_TOKEN` when it has `permissions: id-token:
//! write`; the local provider hands out the same pair.

use std::time::Duration;

use serde_json::Value;

use super::{GRANT_TYPE, JWT_TOKEN_TYPE};
use crate::error::{Error, Result};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

fn json_of(
    what: &'static str,
    url: &str,
    resp: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<(u16, Value)> {
    let mut resp = resp.map_err(|e| Error::invalid(what, format!("{url}: {e}")))?;
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .map_err(|e| Error::invalid(what, format!("{url}: {e}")))?;
    let body = serde_json::from_str(&text).map_err(|_| {
        Error::invalid(
            what,
            format!("{url} answered {status} with no JSON: {text:.200}"),
        )
    })?;
    Ok((status, body))
}

/// The OIDC token for `audience`, from the runner's token endpoint.
pub fn id_token(request_url: &str, request_token: &str, audience: &str) -> Result<String> {
    let sep = if request_url.contains('?') { '&' } else { '?' };
    let url = format!("{request_url}{sep}audience={audience}");
    let resp = agent()
        .get(&url)
        .header("Authorization", &format!("bearer {request_token}"))
        .call();
    match json_of("OIDC token request", request_url, resp)? {
        (200, body) => body["value"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| Error::invalid("OIDC token request", "the answer has no `value`")),
        (status, body) => Err(Error::invalid(
            "OIDC token request",
            format!("{request_url} answered {status}: {body}"),
        )),
    }
}

/// Trades `subject_token` at `exchange_url` (`POST /token`); the answer's
/// JSON (`access_token`, `expires_in`, `scope`), or the refusal's
/// `error_description`.
pub fn exchange(exchange_url: &str, subject_token: &str) -> Result<Value> {
    let url = format!("{}/token", exchange_url.trim_end_matches('/'));
    let resp = agent().post(&url).send_form([
        ("grant_type", GRANT_TYPE),
        ("subject_token", subject_token),
        ("subject_token_type", JWT_TOKEN_TYPE),
    ]);
    match json_of("token exchange", &url, resp)? {
        (200, body) if body["access_token"].is_string() => Ok(body),
        (status, body) => Err(Error::invalid(
            "token exchange",
            format!(
                "refused ({status}): {}",
                body["error_description"]
                    .as_str()
                    .unwrap_or(&body.to_string())
            ),
        )),
    }
}
