//! `nindub forge`: keyless deploys (The Automated Forge). A local identity
//! provider, the exchange, the CI job's login, and two readers: a policy
//! linter and a token decoder.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::{Args, Subcommand};
use nindub::federation::exchange::Exchange;
use nindub::federation::{Job, KeyCache, Minter, ProviderService, TrustPolicy, Verifier, login};

#[derive(Args)]
pub struct ForgeArgs {
    #[command(subcommand)]
    what: ForgeCommand,
}

#[derive(Subcommand)]
enum ForgeCommand {
    /// A local OIDC identity provider that issues GitHub-shaped tokens for
    /// one job; prints its URL, then the runner's two variables.
    Idp(IdpArgs),
    /// The exchange: OIDC tokens in, short-lived scoped credentials out,
    /// under trust policies (RFC 8693 over HTTP).
    Exchange(ExchangeArgs),
    /// What the CI job runs: an OIDC token from the runner, traded at the
    /// exchange; the credential is printed on stdout.
    Login(LoginArgs),
    /// Check a trust-policy file; over-broad policies are refused.
    Policy {
        /// A JSON list of policies.
        file: PathBuf,
    },
    /// Print a token's header and claims, NOT verified (to read one, never
    /// to trust one). The token from the argument, or stdin.
    Decode { token: Option<String> },
}

#[derive(Args)]
struct Listen {
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// 0 picks a free port (printed).
    #[arg(long, default_value_t = 0)]
    port: u16,
}

#[derive(Args)]
struct IdpArgs {
    #[command(flatten)]
    listen: Listen,
    /// The job's repository, OWNER/REPO.
    #[arg(long)]
    repository: String,
    #[arg(long = "ref", default_value = "refs/heads/main")]
    git_ref: String,
    /// push, pull_request, workflow_dispatch, ...
    #[arg(long, default_value = "push")]
    event: String,
    /// The deployment environment, if the job has one.
    #[arg(long)]
    environment: Option<String>,
    #[arg(long, default_value = ".github/workflows/forge.yml")]
    workflow: String,
    #[arg(long, default_value = "0000000000000000000000000000000000000000")]
    sha: String,
    /// Seconds each token lives.
    #[arg(long, default_value_t = 300)]
    ttl: u64,
}

#[derive(Args)]
struct ExchangeArgs {
    #[command(flatten)]
    listen: Listen,
    /// The OIDC issuer trusted (GitHub's, or a local provider's URL).
    #[arg(long)]
    issuer: String,
    /// The audience incoming tokens must name: this exchange.
    #[arg(long, default_value = "nindub-exchange")]
    audience: String,
    /// Trust policies (a JSON list).
    #[arg(long)]
    policy: PathBuf,
    /// Where the signing key lives (created on first use) and where its
    /// public half is written (`exchange.jwks.json`).
    #[arg(long)]
    key_dir: PathBuf,
    /// The name credentials are issued under (`iss`).
    #[arg(long, default_value = "nindub-exchange")]
    name: String,
    /// Seconds of clock skew allowed on the provider's tokens.
    #[arg(long, default_value_t = 60)]
    skew: u64,
}

#[derive(Args)]
struct LoginArgs {
    /// The exchange's URL.
    #[arg(long)]
    exchange: String,
    /// The audience to ask the provider for: the exchange's name.
    #[arg(long, default_value = "nindub-exchange")]
    audience: String,
    #[arg(long, env = "ACTIONS_ID_TOKEN_REQUEST_URL")]
    request_url: String,
    #[arg(long, env = "ACTIONS_ID_TOKEN_REQUEST_TOKEN", hide_env_values = true)]
    request_token: String,
}

pub fn run(args: ForgeArgs) -> Result<()> {
    match args.what {
        ForgeCommand::Idp(a) => idp(a),
        ForgeCommand::Exchange(a) => exchange(a),
        ForgeCommand::Login(a) => {
            let token = login::id_token(&a.request_url, &a.request_token, &a.audience)?;
            let answer = login::exchange(&a.exchange, &token)?;
            eprintln!(
                "nindub forge: credential for scope `{}`, expires in {} s",
                answer["scope"].as_str().unwrap_or(""),
                answer["expires_in"]
            );
            println!("{}", answer["access_token"].as_str().unwrap_or_default());
            Ok(())
        }
        ForgeCommand::Policy { file } => {
            let policies = TrustPolicy::load_all(&file)?;
            for p in &policies {
                println!(
                    "ok: `{}` admits {} → {} scope [{}] for {} s",
                    p.name,
                    p.conditions
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    p.grant.audience,
                    p.grant.scope.join(" "),
                    p.grant.ttl_secs
                );
            }
            Ok(())
        }
        ForgeCommand::Decode { token } => {
            let token = match token {
                Some(t) => t,
                None => std::io::read_to_string(std::io::stdin())?,
            };
            let parts: Vec<&str> = token.trim().split('.').collect();
            if parts.len() != 3 {
                bail!("a JWT has 3 dot-separated parts; this has {}", parts.len());
            }
            for (name, part) in [("header", parts[0]), ("claims", parts[1])] {
                let bytes = URL_SAFE_NO_PAD
                    .decode(part)
                    .with_context(|| format!("the {name} is not base64url"))?;
                let v: serde_json::Value = serde_json::from_slice(&bytes)
                    .with_context(|| format!("the {name} is not JSON"))?;
                println!("{name}: {}", serde_json::to_string_pretty(&v)?);
            }
            eprintln!("nindub forge: NOT verified; the signature was not checked");
            Ok(())
        }
    }
}

fn idp(a: IdpArgs) -> Result<()> {
    let job = Job {
        repository: a.repository,
        git_ref: a.git_ref,
        event_name: a.event,
        environment: a.environment,
        workflow: a.workflow,
        sha: a.sha,
        actor: "octocat".into(),
        run_id: 1,
    };
    eprintln!("nindub forge idp: tokens for `{}`", job.sub());
    let svc = ProviderService::start(job, SocketAddr::new(a.listen.host, a.listen.port), true)?;
    svc.with(|p| p.ttl = a.ttl);
    // Scripts read these three lines.
    println!("listening on {}", svc.issuer());
    println!("ACTIONS_ID_TOKEN_REQUEST_URL={}", svc.request.url);
    println!("ACTIONS_ID_TOKEN_REQUEST_TOKEN={}", svc.request.token);
    std::io::stdout().flush()?;
    svc.running.wait()?;
    Ok(())
}

fn exchange(a: ExchangeArgs) -> Result<()> {
    let policies = TrustPolicy::load_all(&a.policy)?;
    let minter = Minter::load_or_create(&a.name, &a.key_dir)?;
    let verifier = Verifier {
        issuer: a.issuer.trim_end_matches('/').to_string(),
        skew: a.skew,
        ..Verifier::github(&a.audience)
    };
    let keys = KeyCache::new(&verifier.issuer);
    eprintln!(
        "nindub forge exchange: trusting `{}` for audience `{}` under {} polic{}; credentials issued as `{}`, public key in {}",
        verifier.issuer,
        verifier.audience,
        policies.len(),
        if policies.len() == 1 { "y" } else { "ies" },
        a.name,
        minter.jwks_path(&a.key_dir).display()
    );
    let x = Exchange::new(verifier, keys, policies, minter)?;
    let running = x.serve(SocketAddr::new(a.listen.host, a.listen.port), true)?;
    println!("listening on {}", running.url());
    std::io::stdout().flush()?;
    running.wait()?;
    Ok(())
}
