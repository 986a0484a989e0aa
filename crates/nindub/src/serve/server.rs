//! The axum application: routes, limits, and a request taken from its
//! body to the worker behind them (the answers' bodies are in `reply`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request as HttpRequest, State};
use axum::http::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::sync::mpsc::unbounded_channel;

use super::auth::ApiKey;
use super::connections::{self, ConnectionLimits};
use super::guard::{self, AllowedHosts};
use super::metrics::{Metrics, RequestLabels};
use super::protocol::{ApiError, Input, Limits};
use super::queue::{Job, Queue};
use super::reply::{Endpoint, Meta, collect, error, stream};
use super::{protocol, queue, web};
use crate::error::{Error, Result};
use crate::federation::CredentialCheck;
use crate::model::generate::{GenerateConfig, Generator};
use crate::model::tokenizer::{GgufTokenizer, Message};
use crate::monitor::MonitorConfig;
use crate::stream::placement::PREFILL_CHUNK;

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// 127.0.0.1 unless asked otherwise.
    pub addr: SocketAddr,
    /// The name clients use for the model (`/v1/models`).
    pub model_id: String,
    /// How many requests may wait while the batch is full.
    pub queue: usize,
    /// How many requests are generated at once (continuous batching on the
    /// fused engine; 1: one after another). Each reserves its KV cache out
    /// of the engine's reservation, so the budget, not this number alone,
    /// bounds the batch. At most [`PREFILL_CHUNK`]: a pass holds every
    /// decoding sequence's next token.
    pub parallel: usize,
    /// The most tokens one batched pass runs: the decoding sequences' next
    /// tokens, and prompt chunks in the rows left (chunked prefill). Fewer
    /// rows keep running streams smoother while a prompt arrives; more run
    /// prompts sooner. From `parallel` to [`PREFILL_CHUNK`] (the working
    /// buffers the budget counted); [`PASS_ROWS`] by default.
    pub pass_rows: usize,
    pub api_key: Option<String>,
    /// Instead of a key: short-lived credentials minted by a trusted
    /// exchange (The Automated Forge), checked on every request for
    /// signature, audience, expiry and the route's scope.
    pub credentials: Option<CredentialCheck>,
    /// Origins allowed to call from a browser page elsewhere (none: CORS off).
    pub cors_origins: Vec<String>,
    pub max_body_bytes: usize,
    pub max_prompt_tokens: usize,
    pub max_tokens: usize,
    /// From arrival to the last token.
    pub timeout: Duration,
    /// Host names (besides the bound address) the server answers to.
    pub allowed_hosts: Vec<String>,
    /// Serve `/metrics` without the API key (for a scraper that sends
    /// none); with no key set it is open anyway.
    pub public_metrics: bool,
    /// Connections held at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Time to send a request's headers; also how long an idle keep-alive
    /// connection is kept.
    pub header_timeout: Duration,
    /// Time to send a request's body.
    pub body_timeout: Duration,
    /// Stop on Ctrl-C (the command line; not inside a notebook kernel,
    /// whose interrupts are SIGINT too).
    pub stop_on_ctrl_c: bool,
    /// What the quality monitor watches (The Infrastructure Canon).
    pub monitor: MonitorConfig,
}

/// The rows of a batched pass by default: half a prompt chunk. The Speaking
/// Stone's benchmark measures 16, 32 and 64 at eight clients: fewer rows
/// cut the streams' inter-token latency while prompts run, and delay the
/// last prompt's first token.
pub const PASS_ROWS: usize = 32;

impl ServeConfig {
    pub fn new(model_id: impl Into<String>) -> Self {
        ServeConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            model_id: model_id.into(),
            queue: 8,
            parallel: 8,
            pass_rows: PASS_ROWS,
            api_key: None,
            credentials: None,
            cors_origins: vec![],
            max_body_bytes: 1 << 20,
            max_prompt_tokens: 4096,
            max_tokens: 1024,
            timeout: Duration::from_secs(300),
            allowed_hosts: vec![],
            public_metrics: false,
            max_connections: 64,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            stop_on_ctrl_c: false,
            monitor: MonitorConfig::default(),
        }
    }

    /// Refuses limits that would make the server useless: a zero queue,
    /// body, token count, connection count or time limit, an empty key.
    pub fn validate(&self) -> Result<()> {
        let zero = [
            ("queue", self.queue == 0),
            ("parallel", self.parallel == 0),
            ("max_body_bytes", self.max_body_bytes == 0),
            ("max_prompt_tokens", self.max_prompt_tokens == 0),
            ("max_tokens", self.max_tokens == 0),
            ("max_connections", self.max_connections == 0),
            ("timeout", self.timeout.is_zero()),
            ("header_timeout", self.header_timeout.is_zero()),
            ("body_timeout", self.body_timeout.is_zero()),
            ("reference_tokens", self.monitor.windows.reference == 0),
            ("live_tokens", self.monitor.windows.live == 0),
        ];
        if let Some((field, _)) = zero.iter().find(|(_, z)| *z) {
            return Err(Error::invalid(
                "server limits",
                format!("{field} is 0, which would refuse every request; use at least 1"),
            ));
        }
        if self.parallel > PREFILL_CHUNK
            || !(self.parallel..=PREFILL_CHUNK).contains(&self.pass_rows)
        {
            return Err(Error::invalid(
                "server limits",
                format!(
                    "parallel {} and pass_rows {}: a pass holds every decoding sequence's next token, so parallel ≤ pass_rows ≤ {PREFILL_CHUNK}",
                    self.parallel, self.pass_rows
                ),
            ));
        }
        if self.api_key.as_deref().is_some_and(|k| k.trim().is_empty()) {
            return Err(Error::invalid(
                "API key",
                "the key is empty: no client could send it (omit it for a keyless server)",
            ));
        }
        if self.api_key.is_some() && self.credentials.is_some() {
            return Err(Error::invalid(
                "server access",
                "both an API key and trusted credentials are set: choose one (a static key would undo what short-lived credentials buy)",
            ));
        }
        Ok(())
    }
}

/// The scope a credential needs for the `/v1` routes.
pub const SCOPE_INFERENCE: &str = "inference";
/// The scope a credential needs for `/metrics`.
pub const SCOPE_METRICS: &str = "metrics";

struct AppState {
    model_id: String,
    tokenizer: Arc<GgufTokenizer>,
    queue: Arc<Queue>,
    metrics: Arc<Metrics>,
    key: Option<ApiKey>,
    credentials: Option<CredentialCheck>,
    limits: Limits,
    max_body_bytes: usize,
    timeout: Duration,
    body_timeout: Duration,
    hosts: AllowedHosts,
    next_id: AtomicU64,
}

type Shared = Arc<AppState>;

/// A running server; dropping it stops it.
pub struct Server {
    addr: SocketAddr,
    queue: Arc<Queue>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    http: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    worker: Option<std::thread::JoinHandle<()>>,
    swap: queue::SwapSlot,
    /// What a replacement model must match: vocabulary size and context.
    vocab_size: u64,
    context: usize,
}

impl Server {
    /// Binds, then serves on background threads: one for the model, a
    /// small tokio runtime for HTTP.
    pub fn start(generator: Generator, cfg: ServeConfig) -> Result<Server> {
        cfg.validate()?;
        let listener = std::net::TcpListener::bind(cfg.addr)
            .and_then(|l| l.set_nonblocking(true).map(|_| l))
            .map_err(|e| Error::io(format!("address {}", cfg.addr), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io(format!("address {}", cfg.addr), e))?;
        let queue = Arc::new(Queue::with_parallel(cfg.queue, cfg.parallel));
        let metrics = Arc::new(Metrics::new());
        let context = generator.decoder.capacity();
        let state = Arc::new(AppState {
            model_id: cfg.model_id.clone(),
            tokenizer: generator.tokenizer.clone(),
            queue: queue.clone(),
            metrics: metrics.clone(),
            key: cfg.api_key.as_deref().map(ApiKey::new),
            credentials: cfg.credentials.clone(),
            limits: Limits {
                max_tokens: cfg.max_tokens,
                max_prompt_tokens: cfg.max_prompt_tokens.min(context.saturating_sub(1)),
                context,
                samples: cfg.parallel.max(1),
            },
            max_body_bytes: cfg.max_body_bytes,
            timeout: cfg.timeout,
            body_timeout: cfg.body_timeout,
            hosts: AllowedHosts::new(addr, &cfg.allowed_hosts),
            next_id: AtomicU64::new(1),
        });
        let app = router(state, &cfg.cors_origins, cfg.public_metrics)?;
        let limits = ConnectionLimits {
            max_connections: cfg.max_connections,
            header_timeout: cfg.header_timeout,
        };
        let conn_metrics = metrics.clone();
        let vocab_size = generator.arch().vocab_size;
        let swap: queue::SwapSlot = Arc::default();
        let worker = queue::spawn_worker(
            generator,
            cfg.pass_rows,
            queue.clone(),
            metrics,
            cfg.monitor.clone(),
            swap.clone(),
        )
        .map_err(|e| Error::io("starting the model's thread", e))?;
        let spawned = crate::service::spawn(
            "nindub-http",
            listener,
            cfg.stop_on_ctrl_c,
            move |listener, stop| async move {
                connections::serve(listener, app, limits, conn_metrics, stop).await;
                Ok(())
            },
        )?;
        Ok(Server {
            addr,
            queue,
            shutdown: Some(spawned.shutdown),
            http: Some(spawned.thread),
            worker: Some(worker),
            swap,
            vocab_size,
            context,
        })
    }

    /// Replaces the served model without stopping: the worker takes it
    /// before its next request (the one being generated finishes on the
    /// old one). The quality monitor keeps its reference window: that is
    /// how a rollout that went wrong is caught. Refused when the new model
    /// could not serve what the old one accepted: another vocabulary (the
    /// server tokenizes with the first model's tokenizer) or a smaller
    /// context.
    pub fn swap_model(&self, next: Generator) -> Result<()> {
        let vocab = next.arch().vocab_size;
        if vocab != self.vocab_size {
            return Err(Error::invalid(
                "model swap",
                format!(
                    "the new model has {vocab} tokens, the served one {}: the server's tokenizer would not fit it",
                    self.vocab_size
                ),
            ));
        }
        if next.decoder.capacity() < self.context {
            return Err(Error::invalid(
                "model swap",
                format!(
                    "the new model holds {} tokens of context, the served one {}: admitted requests could not fit",
                    next.decoder.capacity(),
                    self.context
                ),
            ));
        }
        *self.swap.lock().unwrap_or_else(|e| e.into_inner()) = Some(next);
        Ok(())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Blocks until the server stops (Ctrl-C when enabled).
    pub fn wait(mut self) -> Result<()> {
        let result = match self.http.take().map(|h| h.join()) {
            Some(Ok(Err(e))) => Err(Error::io(format!("serving on {}", self.addr), e)),
            Some(Err(_)) => Err(Error::invalid("server", "the HTTP thread panicked")),
            _ => Ok(()),
        };
        self.stop();
        result
    }

    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.queue.close();
        if let Some(h) = self.http.take() {
            let _ = h.join();
        }
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn router(state: Shared, cors_origins: &[String], public_metrics: bool) -> Result<Router> {
    let mut keyed = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat));
    let mut open = Router::new()
        .route("/", get(web::index))
        .route("/app.js", get(web::script))
        .route("/style.css", get(web::style))
        .route("/health", get(health));
    // What the server measures tells about its clients: the key's, unless
    // asked otherwise.
    if public_metrics {
        open = open.route("/metrics", get(metrics_text));
    } else {
        keyed = keyed.route("/metrics", get(metrics_text));
    }
    let keyed = keyed.route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    let mut app = open
        .merge(keyed)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), guard_request))
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .with_state(state);
    if !cors_origins.is_empty() {
        let origins = cors_origins
            .iter()
            .map(|o| HeaderValue::from_str(o).map_err(|_| Error::invalid("CORS origin", o.clone())))
            .collect::<Result<Vec<_>>>()?;
        app = app.layer(
            tower_http::cors::CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([AUTHORIZATION, CONTENT_TYPE]),
        );
    }
    Ok(app)
}

// === Middleware ===

/// Counts every request by route and status.
async fn count(State(s): State<Shared>, req: HttpRequest, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    s.metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            status: response.status().as_u16().to_string(),
        })
        .inc();
    s.metrics.duration.observe(started.elapsed().as_secs_f64());
    response
}

/// The Host and Content-Type rules ([`guard`]), and the framing headers on
/// every answer.
async fn guard_request(State(s): State<Shared>, req: HttpRequest, next: Next) -> Response {
    let mut response = match guard::check(&s.hosts, req.method(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => error(e),
    };
    guard::harden(response.headers_mut());
    response
}

// ANCHOR: access
/// With a key or trusted credentials set, every `/v1` route (and
/// `/metrics`, unless public) needs `Authorization: Bearer KEY` or a
/// credential whose scope covers the route, checked now, on this request.
async fn require_key(State(s): State<Shared>, req: HttpRequest, next: Next) -> Response {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let refused = if let Some(key) = &s.key {
        (!key.verify_header(header)).then(|| {
            (
                "invalid_api_key",
                "a valid API key is required: send `Authorization: Bearer KEY`".to_string(),
            )
        })
    } else if let Some(check) = &s.credentials {
        let scope = if req.uri().path() == "/metrics" {
            SCOPE_METRICS
        } else {
            SCOPE_INFERENCE
        };
        check
            .check(header, scope, crate::federation::now())
            .err()
            .map(|r| {
                (
                    "invalid_credential",
                    format!("credential refused ({}): {r}", r.kind()),
                )
            })
    } else {
        None
    };
    if let Some((code, message)) = refused {
        let mut r = error(ApiError::new(401, "authentication_error", code, message));
        r.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    next.run(req).await
}
// ANCHOR_END: access

// === Routes ===

async fn health(State(s): State<Shared>) -> Response {
    let (waiting, running) = s.queue.depth();
    axum::Json(json!({
        "status": "ok",
        "model": s.model_id,
        "queue": { "waiting": waiting, "running": running, "capacity": s.queue.capacity(), "parallel": s.queue.parallel() },
    }))
    .into_response()
}

async fn metrics_text(State(s): State<Shared>) -> Response {
    s.metrics.set_queue(s.queue.depth());
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

async fn models(State(s): State<Shared>) -> Response {
    axum::Json(json!({
        "object": "list",
        "data": [{ "id": s.model_id, "object": "model", "created": 0, "owned_by": "nindub" }],
    }))
    .into_response()
}

async fn not_found(req: HttpRequest) -> Response {
    error(ApiError::new(
        404,
        "invalid_request_error",
        "not_found",
        format!("no route {} {}", req.method(), req.uri().path()),
    ))
}

async fn method_not_allowed(req: HttpRequest) -> Response {
    error(ApiError::new(
        405,
        "invalid_request_error",
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    ))
}

async fn completions(State(s): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    respond(s, headers, body, Endpoint::Completion).await
}

async fn chat(State(s): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    respond(s, headers, body, Endpoint::Chat).await
}

// ANCHOR: respond
async fn respond(s: Shared, headers: HeaderMap, body: Body, endpoint: Endpoint) -> Response {
    let arrived = Instant::now();
    let prepared = async {
        let bytes =
            tokio::time::timeout(s.body_timeout, read_body(&headers, body, s.max_body_bytes))
                .await
                .map_err(|_| {
                    ApiError::new(
                        408,
                        "invalid_request_error",
                        "body_timeout",
                        format!(
                            "the body did not arrive within {} s",
                            s.body_timeout.as_secs_f64()
                        ),
                    )
                })??;
        let req = match endpoint {
            Endpoint::Completion => protocol::parse_completion(&bytes, &s.limits)?,
            Endpoint::Chat => protocol::parse_chat(&bytes, &s.limits)?,
        };
        if let Some(m) = req.model.as_deref().filter(|m| *m != s.model_id) {
            let mut e = ApiError::new(
                404,
                "invalid_request_error",
                "model_not_found",
                format!(
                    "the model `{m}` does not exist here (this server has `{}`)",
                    s.model_id
                ),
            );
            e.param = Some("model".into());
            return Err(e);
        }
        let prompt = prompt_ids(&s.tokenizer, &req.input)?;
        let max_tokens = req.budget(prompt.len(), &s.limits)?;
        Ok((req, prompt, max_tokens))
    };
    let (req, prompt, max_tokens) = match prepared.await {
        Ok(p) => p,
        Err(e) => return error(e),
    };
    let (tx, rx) = unbounded_channel();
    let job = Job {
        prompt,
        config: GenerateConfig {
            sampling: req.sampling.clone(),
            max_tokens,
            stop: req.stop.clone(),
            use_cache: true,
            top_n: if req.logprobs { req.top_logprobs } else { 0 },
            ignore_eos: false,
            constraint: req.constraint.clone(),
        },
        top_logprobs: req.top_logprobs,
        n: req.n,
        arrived,
        deadline: arrived + s.timeout,
        events: tx,
    };
    if let Err(retry_after) = s.queue.submit(job) {
        s.metrics.rejected.inc();
        let mut r = error(ApiError::new(
            503,
            "server_busy",
            "queue_full",
            format!(
                "the queue is full ({} waiting for the model); retry in {retry_after} s",
                s.queue.capacity()
            ),
        ));
        r.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(retry_after));
        return r;
    }
    s.metrics.set_queue(s.queue.depth());
    let meta = Meta {
        id: format!(
            "{}-{}",
            if endpoint == Endpoint::Chat {
                "chatcmpl"
            } else {
                "cmpl"
            },
            s.next_id.fetch_add(1, Ordering::Relaxed)
        ),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        model: s.model_id.clone(),
        endpoint,
        logprobs: req.logprobs,
        include_usage: req.include_usage,
        n: req.n,
    };
    if req.stream {
        stream(meta, rx)
    } else {
        collect(meta, rx).await
    }
}
// ANCHOR_END: respond

/// The body, refused beyond the limit (413).
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> std::result::Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            413,
            "invalid_request_error",
            "body_too_large",
            format!("the body is larger than this server's limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit)
        .await
        .map(|b| b.to_vec())
        .map_err(|_| too_large())
}

/// The token ids of a prompt, or of a conversation through the chat template.
fn prompt_ids(tokenizer: &GgufTokenizer, input: &Input) -> std::result::Result<Vec<u32>, ApiError> {
    let text = match input {
        Input::Prompt(p) => p.clone(),
        Input::Chat(turns) => {
            let messages: Vec<Message> = turns.iter().map(|(r, c)| Message::new(r, c)).collect();
            tokenizer
                .apply_chat_template(&messages, true)
                .map_err(|e| ApiError::invalid(Some("messages"), e.to_string()))?
        }
    };
    tokenizer
        .encode(&text)
        .map_err(|e| ApiError::invalid(Some("prompt"), e.to_string()))
}
