//! `nindub serve`: the model behind an OpenAI-compatible HTTP service (The
//! Speaking Stone), on the engine and within the budget the flags ask for.

use anyhow::Result;
use clap::Args;
use nindub::federation::{CredentialCheck, KeySet};
use nindub::monitor::{CanarySet, MonitorConfig, WindowConfig, embedding_norms};
use nindub::process::rss;
use nindub::serve::{ServeConfig, Server};

use crate::common::{EngineArgs, load};

#[derive(Args)]
pub struct ServeArgs {
    /// A GGUF file, a student directory, or the name of a cached asset.
    #[arg(long, default_value = "smollm2")]
    model: String,
    #[command(flatten)]
    engine: EngineArgs,
    /// The address to listen on. Anything but loopback exposes the model to
    /// the network: set an API key.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// 0 picks a free port (printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// How many requests may wait while the batch is full; more get 503.
    #[arg(long, default_value_t = 8)]
    queue: usize,
    /// How many requests are generated together (continuous batching on
    /// the fused engine; 1: one after another). Each reserves its KV cache
    /// (prompt + max_tokens positions) out of the engine's reservation.
    #[arg(long, default_value_t = 8)]
    parallel: usize,
    /// The most tokens one batched pass runs: the decoding sequences' next
    /// tokens plus prompt chunks (chunked prefill). Fewer keep streams
    /// smoother while a prompt arrives; more run prompts sooner.
    #[arg(long, default_value_t = nindub::serve::PASS_ROWS)]
    pass_rows: usize,
    /// Positions of KV cache the engine reserves (within the budget, and
    /// at most the model's context), shared by the requests in the batch;
    /// default: one longest request (max_prompt_tokens + max_tokens + 1).
    #[arg(long)]
    kv_positions: Option<usize>,
    /// Require `Authorization: Bearer KEY` on /v1 routes.
    #[arg(long, env = "NINDUB_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Instead of a key: accept short-lived credentials signed by a key in
    /// this JWKS file (an exchange's `exchange.jwks.json`).
    #[arg(long, conflicts_with = "api_key")]
    trust_jwks: Option<std::path::PathBuf>,
    /// The `iss` trusted credentials carry.
    #[arg(long, default_value = "nindub-exchange", requires = "trust_jwks")]
    trust_issuer: String,
    /// This server's name: the `aud` trusted credentials must carry.
    #[arg(long, default_value = "nindub-serve", requires = "trust_jwks")]
    audience: String,
    /// Allow browser pages from this origin (repeatable; default: CORS off).
    #[arg(long)]
    cors_origin: Vec<String>,
    /// The largest request body, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// The longest prompt, in tokens.
    #[arg(long, default_value_t = 4096)]
    max_prompt_tokens: usize,
    /// The largest `max_tokens` a request may ask for.
    #[arg(long, default_value_t = 1024)]
    max_tokens: usize,
    /// Seconds from a request's arrival to its last token.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// Also answer to this host name (repeatable); by default only the
    /// bound address, and `localhost` for a loopback one (DNS rebinding).
    #[arg(long)]
    allowed_host: Vec<String>,
    /// Serve /metrics without the API key (for a scraper that sends none).
    #[arg(long)]
    public_metrics: bool,
    /// Connections held at once; one more is answered 503 and closed.
    #[arg(long, default_value_t = 64)]
    max_connections: usize,
    /// Seconds a client has to send a request's headers (and how long an
    /// idle connection is kept).
    #[arg(long, default_value_t = 10)]
    header_timeout_secs: u64,
    /// Seconds a client has to send a request's body.
    #[arg(long, default_value_t = 30)]
    body_timeout_secs: u64,
    /// Canaries to score at start and on a schedule (a file `nindub
    /// monitor canary` wrote from the approved model).
    #[arg(long)]
    canaries: Option<std::path::PathBuf>,
    /// Score the canaries after every this many requests (0: at start only).
    #[arg(long, default_value_t = 20)]
    canary_every: usize,
    /// Tokens frozen as the quality monitor's reference window.
    #[arg(long, default_value_t = 400)]
    reference_tokens: usize,
    /// Tokens in the quality monitor's live window.
    #[arg(long, default_value_t = 160)]
    live_tokens: usize,
    /// Append each request's quality signals (prompt and generated
    /// tokens, each token's probability and entropy) to this file, a JSON
    /// line per request.
    #[arg(long)]
    quality_log: Option<std::path::PathBuf>,
}

pub fn run(args: ServeArgs) -> Result<()> {
    let secs = std::time::Duration::from_secs;
    // Every limit is checked before the model is loaded.
    let cfg = ServeConfig {
        addr: std::net::SocketAddr::new(args.host, args.port),
        queue: args.queue,
        parallel: args.parallel,
        pass_rows: args.pass_rows,
        api_key: args.api_key.clone(),
        credentials: match &args.trust_jwks {
            Some(path) => Some(CredentialCheck::new(
                KeySet::load(path)?,
                &args.trust_issuer,
                &args.audience,
            )),
            None => None,
        },
        cors_origins: args.cors_origin.clone(),
        max_body_bytes: args.max_body_bytes,
        max_prompt_tokens: args.max_prompt_tokens,
        max_tokens: args.max_tokens,
        timeout: secs(args.timeout_secs),
        allowed_hosts: args.allowed_host.clone(),
        public_metrics: args.public_metrics,
        max_connections: args.max_connections,
        header_timeout: secs(args.header_timeout_secs),
        body_timeout: secs(args.body_timeout_secs),
        stop_on_ctrl_c: true,
        monitor: MonitorConfig {
            windows: WindowConfig {
                reference: args.reference_tokens,
                live: args.live_tokens,
                ..WindowConfig::default()
            },
            canaries: args.canaries.as_deref().map(CanarySet::load).transpose()?,
            canary_every: args.canary_every,
            embedding_norms: None,
            log: args.quality_log.clone(),
        },
        ..ServeConfig::new(String::new())
    };
    cfg.validate()?;
    // The KV cache is reserved for the longest request the limits admit,
    // or the positions asked for: the pool the batch's requests share.
    let (max_prompt, max_tokens) = (args.max_prompt_tokens, args.max_tokens);
    let positions = args
        .kv_positions
        .unwrap_or(max_prompt.saturating_add(max_tokens).saturating_add(1));
    let loaded = load(&args.model, &args.engine, |_, _| Ok(positions))?;
    let model_id = loaded
        .path
        .file_stem()
        .map_or_else(|| args.model.clone(), |s| s.to_string_lossy().into_owned());
    let (g, mut memory) = (loaded.generator, loaded.memory);
    // Input drift watches the prompts' embedding norms: one number per
    // vocabulary entry, read once. Dequantizing the table takes memory a
    // budget did not plan for, so under a budget the prompts are watched
    // by their tokens alone.
    let norms = if args.engine.budget.is_some() || !loaded.path.is_file() {
        None
    } else {
        match embedding_norms(&loaded.path) {
            Ok(n) => Some(std::sync::Arc::new(n)),
            Err(e) => {
                eprintln!("nindub: input embedding norms are not watched: {e}");
                None
            }
        }
    };
    let before = rss().map_or(0, |(now, _)| now);
    if !args.host.is_loopback() {
        eprintln!(
            "nindub: WARNING: listening on {}, reachable from the network{}",
            args.host,
            if args.api_key.is_some() || args.trust_jwks.is_some() {
                ""
            } else {
                " by anyone: no API key is set (--api-key), no credentials trusted (--trust-jwks)"
            }
        );
    }
    let budget = args.engine.budget.map(|b| b.as_u64());
    let mut cfg = ServeConfig {
        model_id: model_id.clone(),
        ..cfg
    };
    cfg.monitor.embedding_norms = norms;
    let access = match (&cfg.api_key, &cfg.credentials) {
        (Some(_), _) => ", API key required".to_string(),
        (_, Some(c)) => format!(
            ", credentials from `{}` for `{}` required",
            c.verifier.issuer, c.verifier.audience
        ),
        _ => String::new(),
    };
    let server = Server::start(g, cfg)?;
    // The HTTP runtime's own footprint is a fixed cost too, measured as it
    // starts.
    memory.extra.push((
        "HTTP server",
        rss().map_or(0, |(now, _)| now).saturating_sub(before),
    ));
    memory.report(budget);
    eprintln!(
        "nindub: serving `{model_id}`: web page {url}, API {url}v1 (OpenAI-compatible){}, {} at once, queue {}; Ctrl-C stops",
        access,
        args.parallel,
        args.queue,
        url = server.url(),
    );
    // The one line on stdout: scripts read the address from it.
    println!("listening on {}", server.url());
    use std::io::Write;
    std::io::stdout().flush()?;
    server.wait()?;
    memory.report(budget);
    Ok(())
}
