//! The exchange: what a cloud's security token service does with a CI
//! job's OIDC token. Verify it against the provider's published keys, find
//! the trust policy that admits it, refuse a token seen before, and mint a
//! short-lived credential under that policy's grant.
//!
//! Over HTTP it speaks RFC 8693's token exchange: `POST /token` with a form
//! `grant_type=urn:ietf:params:oauth:grant-type:token-exchange&
//! subject_token=JWT&subject_token_type=urn:ietf:params:oauth:token-type:jwt`,
//! answered with `access_token`, `expires_in` and `scope`, or a 400 with
//! RFC 6749's `error` and `error_description`.

use std::collections::HashMap;
use std::sync::Mutex;

use super::Refusal;
use super::credential::{Credential, Minter};
use super::keys::Keys;
use super::policy::{TrustPolicy, admit};
use super::verify::Verifier;
use crate::error::{Error, Result};

/// The exchange's state: whom it trusts, how, and what it has seen.
pub struct Exchange {
    pub verifier: Verifier,
    keys: Mutex<Box<dyn Keys + Send>>,
    policies: Vec<TrustPolicy>,
    minter: Minter,
    /// `jti` → `exp` of every token exchanged and not yet expired.
    seen: Mutex<HashMap<String, u64>>,
}

impl Exchange {
    /// `keys`: a [`KeyCache`](super::KeyCache) fetching the provider's,
    /// or a fixed [`KeySet`](super::KeySet).
    /// Refuses policies for another issuer or audience than the verifier's,
    /// and over-broad ones.
    pub fn new(
        verifier: Verifier,
        keys: impl Keys + Send + 'static,
        policies: Vec<TrustPolicy>,
        minter: Minter,
    ) -> Result<Self> {
        if policies.is_empty() {
            return Err(Error::invalid(
                "trust policy",
                "no policies: nothing could be admitted",
            ));
        }
        for p in &policies {
            p.lint()
                .map_err(|r| Error::invalid("trust policy", r.to_string()))?;
            if p.issuer != verifier.issuer || p.audience != verifier.audience {
                return Err(Error::invalid(
                    "trust policy",
                    format!(
                        "policy `{}` trusts issuer `{}` for audience `{}`; this exchange verifies `{}` for `{}`",
                        p.name, p.issuer, p.audience, verifier.issuer, verifier.audience
                    ),
                ));
            }
        }
        Ok(Exchange {
            verifier,
            keys: Mutex::new(Box::new(keys)),
            policies,
            minter,
            seen: Mutex::new(HashMap::new()),
        })
    }

    // ANCHOR: exchange
    /// One exchange at time `now`.
    pub fn exchange(
        &self,
        subject_token: &str,
        now: u64,
    ) -> std::result::Result<Credential, Refusal> {
        let claims = {
            let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            self.verifier.verify(subject_token, keys.as_mut(), now)?
        };
        let policy = admit(&self.policies, &claims)?;
        // A token is good for one exchange: a copy replayed within its
        // lifetime is refused here; past it, by the verifier.
        let jti = claims
            .jti
            .clone()
            .ok_or_else(|| Refusal::MissingClaim("jti".into()))?;
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            let skew = self.verifier.skew;
            seen.retain(|_, exp| now < exp.saturating_add(skew));
            if seen.contains_key(&jti) {
                return Err(Refusal::Replayed(jti));
            }
            seen.insert(jti, claims.exp);
        }
        self.minter
            .mint(&claims, &policy.name, &policy.grant, now)
            .map_err(|e| Refusal::KeysUnavailable(e.to_string()))
    }
    // ANCHOR_END: exchange
}

#[cfg(feature = "server")]
mod http {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use axum::Router;
    use axum::extract::{Form, State};
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};
    use serde::Deserialize;
    use serde_json::json;

    use super::Exchange;
    use crate::error::Result;
    use crate::federation::http::{Running, bind};
    use crate::federation::{GRANT_TYPE, JWT_TOKEN_TYPE, now};

    impl Exchange {
        /// Serves the exchange on `addr` (port 0: any free one).
        pub fn serve(self, addr: SocketAddr, ctrl_c: bool) -> Result<Running> {
            let listener = bind(addr)?;
            let jwks = self.minter.jwks();
            let app = Router::new()
                .route("/token", post(token))
                .route(
                    "/.well-known/jwks",
                    get(move || async move { axum::Json(jwks) }),
                )
                .with_state(Arc::new(self));
            Running::spawn(listener, app, ctrl_c)
        }
    }

    #[derive(Deserialize)]
    struct ExchangeForm {
        grant_type: Option<String>,
        subject_token: Option<String>,
        subject_token_type: Option<String>,
    }

    fn oauth_error(error: &str, description: String) -> Response {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": error, "error_description": description })),
        )
            .into_response()
    }

    async fn token(
        State(x): State<Arc<Exchange>>,
        form: std::result::Result<Form<ExchangeForm>, axum::extract::rejection::FormRejection>,
    ) -> Response {
        let Ok(Form(f)) = form else {
            return oauth_error(
                "invalid_request",
                "send application/x-www-form-urlencoded with grant_type, subject_token, subject_token_type".into(),
            );
        };
        if f.grant_type.as_deref() != Some(GRANT_TYPE) {
            return oauth_error(
                "unsupported_grant_type",
                format!("grant_type must be `{GRANT_TYPE}`"),
            );
        }
        if f.subject_token_type.as_deref() != Some(JWT_TOKEN_TYPE) {
            return oauth_error(
                "invalid_request",
                format!("subject_token_type must be `{JWT_TOKEN_TYPE}`"),
            );
        }
        let Some(subject) = f.subject_token else {
            return oauth_error("invalid_request", "subject_token is missing".into());
        };
        // Verification may fetch the provider's keys: blocking I/O, off the
        // async workers.
        let result = tokio::task::spawn_blocking(move || x.exchange(&subject, now())).await;
        match result {
            Ok(Ok(c)) => axum::Json(json!({
                "access_token": c.token,
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "token_type": "Bearer",
                "expires_in": c.expires_in,
                "scope": c.scope,
            }))
            .into_response(),
            Ok(Err(refusal)) => {
                eprintln!(
                    "nindub forge exchange: refused ({}): {refusal}",
                    refusal.kind()
                );
                oauth_error("invalid_grant", format!("{} ({})", refusal, refusal.kind()))
            }
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        }
    }
}
