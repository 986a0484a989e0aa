//! A local OIDC identity provider that issues tokens shaped like GitHub
//! Actions' (the same claims, the same `sub` rules), signed with its own
//! keys, with discovery and a JWKS served on loopback. The tests, the
//! notebook and the chapter's deploy job use it where GitHub is out of
//! reach; the verifier cannot tell the difference except by the issuer.

use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::credential::{new_ec_pem, random_id};
use crate::error::{Error, Result};

/// The job a token speaks for: what GitHub knows about a workflow run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// `OWNER/REPO`.
    pub repository: String,
    /// `refs/heads/main`, `refs/tags/v1`, `refs/pull/7/merge`.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// `push`, `pull_request`, `workflow_dispatch`, ...
    pub event_name: String,
    /// The deployment environment the job runs in, if any.
    #[serde(default)]
    pub environment: Option<String>,
    /// The workflow file, `.github/workflows/NAME.yml`.
    pub workflow: String,
    pub sha: String,
    pub actor: String,
    pub run_id: u64,
}

/// `:` inside a value is written `%3A` in `sub` (GitHub's docs).
fn escape(v: &str) -> String {
    v.replace(':', "%3A")
}

impl Job {
    /// A push to `main` of `repository`, deploying to `production`.
    pub fn main_push(repository: &str) -> Self {
        Job {
            repository: repository.into(),
            git_ref: "refs/heads/main".into(),
            event_name: "push".into(),
            environment: Some("production".into()),
            workflow: ".github/workflows/forge.yml".into(),
            sha: "0".repeat(40),
            actor: "octocat".into(),
            run_id: 1,
        }
    }

    // ANCHOR: sub
    /// The `sub` claim, by GitHub's rules: the environment if the job has
    /// one; else `pull_request` for a pull request's run; else the ref.
    pub fn sub(&self) -> String {
        let repo = &self.repository;
        match (&self.environment, self.event_name.as_str()) {
            (Some(env), _) => format!("repo:{repo}:environment:{}", escape(env)),
            (None, "pull_request" | "pull_request_target") => format!("repo:{repo}:pull_request"),
            (None, _) => format!("repo:{repo}:ref:{}", escape(&self.git_ref)),
        }
    }
    // ANCHOR_END: sub

    /// The whole claim set of a token for `audience`, issued `now`.
    pub fn claims(&self, issuer: &str, audience: &str, now: u64, ttl: u64) -> Result<Value> {
        let owner = self.repository.split('/').next().unwrap_or_default();
        let mut c = json!({
            "iss": issuer,
            "aud": audience,
            "sub": self.sub(),
            "jti": random_id()?,
            "iat": now,
            "nbf": now,
            "exp": now.saturating_add(ttl),
            "repository": self.repository,
            "repository_owner": owner,
            "ref": self.git_ref,
            "ref_type": if self.git_ref.starts_with("refs/tags/") { "tag" } else { "branch" },
            "sha": self.sha,
            "actor": self.actor,
            "event_name": self.event_name,
            "workflow": self.workflow.rsplit('/').next().unwrap_or_default(),
            "workflow_ref": format!("{}/{}@{}", self.repository, self.workflow, self.git_ref),
            "job_workflow_ref": format!("{}/{}@{}", self.repository, self.workflow, self.git_ref),
            "run_id": self.run_id.to_string(),
            "run_attempt": "1",
            "runner_environment": "github-hosted",
        });
        if let Some(env) = &self.environment {
            c["environment"] = json!(env);
        }
        Ok(c)
    }
}

struct SigningKey {
    kid: String,
    alg: Algorithm,
    key: EncodingKey,
    public: Jwk,
    /// The public key as SPKI PEM (what an attacker can rebuild from the
    /// JWKS, and what the HS256 confusion attack uses as its "secret").
    public_pem: String,
}

impl SigningKey {
    fn new(kid: String, alg: Algorithm) -> Result<Self> {
        let bad = |e: String| Error::invalid("provider key", e);
        let (key, public_pem) = match alg {
            Algorithm::RS256 => {
                let private = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048)
                    .map_err(|e| bad(e.to_string()))?;
                let pem = private
                    .to_pkcs8_pem(LineEnding::LF)
                    .map_err(|e| bad(e.to_string()))?;
                let public = private
                    .to_public_key()
                    .to_public_key_pem(LineEnding::LF)
                    .map_err(|e| bad(e.to_string()))?;
                (
                    EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| bad(e.to_string()))?,
                    public,
                )
            }
            Algorithm::ES256 => {
                use p256::pkcs8::DecodePrivateKey;
                let pem = new_ec_pem()?;
                let public = p256::SecretKey::from_pkcs8_pem(&pem)
                    .map_err(|e| bad(e.to_string()))?
                    .public_key()
                    .to_public_key_pem(LineEnding::LF)
                    .map_err(|e| bad(e.to_string()))?;
                (
                    EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| bad(e.to_string()))?,
                    public,
                )
            }
            other => return Err(bad(format!("{other:?} is not a provider algorithm"))),
        };
        let mut public = Jwk::from_encoding_key(&key, alg).map_err(|e| bad(e.to_string()))?;
        public.common.key_id = Some(kid.clone());
        public.common.public_key_use = Some(PublicKeyUse::Signature);
        public.common.key_algorithm = Some(match alg {
            Algorithm::ES256 => KeyAlgorithm::ES256,
            _ => KeyAlgorithm::RS256,
        });
        Ok(SigningKey {
            kid,
            alg,
            key,
            public,
            public_pem,
        })
    }
}

/// The provider: an issuer URL and its signing keys (the first RSA key
/// signs; rotation puts a new one first and keeps the old published).
pub struct Provider {
    pub issuer: String,
    /// Seconds a token lives (GitHub's own lifetime is not documented; the
    /// verifier reads `exp` and bounds it).
    pub ttl: u64,
    keys: Vec<SigningKey>,
    generation: usize,
}

impl Provider {
    /// A provider with one RSA (RS256) and one P-256 (ES256) key.
    pub fn new(issuer: &str) -> Result<Self> {
        Ok(Provider {
            issuer: issuer.trim_end_matches('/').into(),
            ttl: 300,
            keys: vec![
                SigningKey::new("rsa-1".into(), Algorithm::RS256)?,
                SigningKey::new("ec-1".into(), Algorithm::ES256)?,
            ],
            generation: 1,
        })
    }

    /// A new RSA key signs from now on; the old ones stay published, so
    /// tokens already out still verify. Returns the new `kid`.
    pub fn rotate(&mut self) -> Result<String> {
        self.generation += 1;
        let kid = format!("rsa-{}", self.generation);
        self.keys
            .insert(0, SigningKey::new(kid.clone(), Algorithm::RS256)?);
        Ok(kid)
    }

    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self.keys.iter().map(|k| k.public.clone()).collect(),
        }
    }

    /// The OIDC discovery document, as GitHub's names its fields.
    pub fn discovery(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{}/.well-known/jwks", self.issuer),
            "subject_types_supported": ["public", "pairwise"],
            "response_types_supported": ["id_token"],
            "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref",
                "repository", "repository_owner", "environment", "job_workflow_ref",
                "event_name", "sha", "actor", "run_id"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "scopes_supported": ["openid"],
        })
    }

    fn key(&self, kid: &str) -> Result<&SigningKey> {
        self.keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| Error::invalid("provider key", format!("no key `{kid}`")))
    }

    /// The `kid` that signs `alg` now.
    pub fn active(&self, alg: Algorithm) -> Option<&str> {
        self.keys
            .iter()
            .find(|k| k.alg == alg)
            .map(|k| k.kid.as_str())
    }

    /// Any claims, signed with key `kid` (the tests forge with this).
    pub fn sign_with(&self, kid: &str, claims: &Value) -> Result<String> {
        self.sign_with_kid(kid, kid, claims)
    }

    /// Signed with key `kid`, but naming `header_kid` in the header (a
    /// forger's move).
    pub fn sign_with_kid(&self, kid: &str, header_kid: &str, claims: &Value) -> Result<String> {
        let k = self.key(kid)?;
        let mut header = Header::new(k.alg);
        header.kid = Some(header_kid.into());
        jsonwebtoken::encode(&header, claims, &k.key)
            .map_err(|e| Error::invalid("token", e.to_string()))
    }

    /// A token for `job` and `audience`, signed RS256 with the active key.
    pub fn issue(&self, job: &Job, audience: &str, now: u64) -> Result<String> {
        let kid = self.active(Algorithm::RS256).unwrap_or("rsa-1").to_string();
        self.sign_with(&kid, &job.claims(&self.issuer, audience, now, self.ttl)?)
    }

    /// Key `kid`'s public half as PEM.
    pub fn public_pem(&self, kid: &str) -> Result<&str> {
        Ok(&self.key(kid)?.public_pem)
    }
}

#[cfg(feature = "server")]
pub use self::http::{ProviderService, RequestToken};

#[cfg(feature = "server")]
mod http {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};
    use serde_json::json;
    use subtle::ConstantTimeEq;

    use super::{Job, Provider};
    use crate::error::Result;
    use crate::federation::credential::random_id;
    use crate::federation::http::Running;

    /// What the runner holds to ask for a token: GitHub's
    /// `ACTIONS_ID_TOKEN_REQUEST_URL` and `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
    #[derive(Debug, Clone)]
    pub struct RequestToken {
        pub url: String,
        pub token: String,
    }

    struct St {
        provider: Mutex<Provider>,
        job: Job,
        request_token: String,
    }

    /// The provider on loopback: discovery, JWKS, and the runner's token
    /// endpoint (`GET /token?audience=AUD` with the request token as a
    /// bearer, answered `{"value": JWT}` as GitHub's is).
    pub struct ProviderService {
        pub running: Running,
        pub request: RequestToken,
        state: Arc<St>,
    }

    fn authorized(st: &St, headers: &HeaderMap) -> bool {
        let presented = headers
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.split_once(' '))
            .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim().as_bytes().to_vec())
            .unwrap_or_default();
        presented.ct_eq(st.request_token.as_bytes()).into()
    }

    impl ProviderService {
        /// Binds `addr` (port 0: any free one) and serves `job`'s tokens;
        /// the issuer is the bound URL.
        pub fn start(job: Job, addr: SocketAddr, ctrl_c: bool) -> Result<Self> {
            let listener = crate::federation::http::bind(addr)?;
            let url = format!(
                "http://{}",
                listener
                    .local_addr()
                    .map_err(|e| crate::Error::io("socket", e))?
            );
            let state = Arc::new(St {
                provider: Mutex::new(Provider::new(&url)?),
                job,
                request_token: random_id()?,
            });
            let app = Router::new()
                .route("/.well-known/openid-configuration", get(discovery))
                .route("/.well-known/jwks", get(jwks))
                .route("/token", get(token))
                .route("/rotate", post(rotate))
                .with_state(state.clone());
            let running = Running::spawn(listener, app, ctrl_c)?;
            let request = RequestToken {
                url: format!("{url}/token?api-version=2.0"),
                token: state.request_token.clone(),
            };
            Ok(ProviderService {
                running,
                request,
                state,
            })
        }

        pub fn issuer(&self) -> String {
            self.running.url()
        }

        /// Runs `f` on the provider (a test forging or rotating keys).
        pub fn with<T>(&self, f: impl FnOnce(&mut Provider) -> T) -> T {
            let mut p = self
                .state
                .provider
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            f(&mut p)
        }
    }

    async fn discovery(State(st): State<Arc<St>>) -> Response {
        let p = st.provider.lock().unwrap_or_else(|e| e.into_inner());
        axum::Json(p.discovery()).into_response()
    }

    async fn jwks(State(st): State<Arc<St>>) -> Response {
        let p = st.provider.lock().unwrap_or_else(|e| e.into_inner());
        axum::Json(p.jwks()).into_response()
    }

    #[derive(serde::Deserialize)]
    struct TokenQuery {
        audience: Option<String>,
    }

    async fn token(
        State(st): State<Arc<St>>,
        headers: HeaderMap,
        Query(q): Query<TokenQuery>,
    ) -> Response {
        if !authorized(&st, &headers) {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"message": "bad request token"})),
            )
                .into_response();
        }
        let p = st.provider.lock().unwrap_or_else(|e| e.into_inner());
        // GitHub's default audience is the URL of the repository owner.
        let aud = q.audience.unwrap_or_else(|| {
            format!(
                "https://github.com/{}",
                st.job.repository.split('/').next().unwrap_or_default()
            )
        });
        match p.issue(&st.job, &aud, crate::federation::now()) {
            Ok(t) => axum::Json(json!({ "value": t })).into_response(),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({"message": e.to_string()})),
            )
                .into_response(),
        }
    }

    /// Puts a new signing key in front (the request token guards it too).
    async fn rotate(State(st): State<Arc<St>>, headers: HeaderMap) -> Response {
        if !authorized(&st, &headers) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        let mut p = st.provider.lock().unwrap_or_else(|e| e.into_inner());
        match p.rotate() {
            Ok(kid) => axum::Json(json!({ "kid": kid })).into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        }
    }
}
