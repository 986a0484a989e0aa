//! The Automated Forge: every attack refused for its own reason; keys found
//! by discovery and refetched on rotation; and the deploy job end to end:
//! a local provider, the exchange and `nindub serve` as real processes,
//! `deploy/smoke.sh` (the workflow's own last step) calling the server with
//! the minted credential, and that credential refused once it expires.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nindub::federation::attacks::catalogue;
use nindub::federation::exchange::Exchange;
use nindub::federation::{
    Job, KeyCache, KeySet, Keys, Minter, Provider, ProviderService, TrustPolicy, Verifier, now,
};
use nindub::serve::client::Client;

const REPO: &str = "technomancy-codex/codex";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The repository's own policy, with the local provider as its issuer.
fn policies(issuer: &str) -> Vec<TrustPolicy> {
    let mut ps = TrustPolicy::load_all(&repo_root().join("deploy/trust-policy.json")).unwrap();
    for p in &mut ps {
        p.issuer = issuer.into();
    }
    ps
}

fn job() -> Job {
    let mut j = Job::main_push(REPO);
    j.workflow = ".github/workflows/forge.yml".into();
    j
}

#[test]
fn every_attack_is_refused_for_its_own_reason() {
    let provider = Provider::new("http://127.0.0.1:1").unwrap();
    let verifier = Verifier {
        issuer: provider.issuer.clone(),
        ..Verifier::github("nindub-exchange")
    };
    let x = Exchange::new(
        verifier.clone(),
        KeySet(provider.jwks()),
        policies(&provider.issuer),
        Minter::generate("nindub-exchange").unwrap(),
    )
    .unwrap();
    let t = now();
    let attacks = catalogue(&provider, &job(), "nindub-exchange", t, verifier.skew).unwrap();
    assert!(attacks.len() >= 12);
    for a in &attacks {
        let got = x.exchange(&a.token, a.at);
        match (a.expect, got) {
            (None, Ok(c)) => {
                assert_eq!(c.scope, "inference");
                assert_eq!(c.claims.sub, format!("repo:{REPO}:environment:production"));
            }
            (Some(kind), Err(r)) => assert_eq!(r.kind(), kind, "{}: {r}", a.name),
            (expect, got) => panic!("{}: expected {expect:?}, got {got:?}", a.name),
        }
    }
}

#[test]
fn an_over_broad_policy_is_refused_before_it_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broad.json");
    let mut p = policies("https://token.actions.githubusercontent.com");
    p[0].conditions
        .insert("sub".into(), format!("repo:{REPO}:*"));
    std::fs::write(&file, serde_json::to_string(&p).unwrap()).unwrap();
    let e = TrustPolicy::load_all(&file).unwrap_err().to_string();
    assert!(e.contains("pull_request"), "{e}");
    let out = Command::new(env!("CARGO_BIN_EXE_nindub"))
        .args(["forge", "policy"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("over-broad"));
    let ok = Command::new(env!("CARGO_BIN_EXE_nindub"))
        .args(["forge", "policy"])
        .arg(repo_root().join("deploy/trust-policy.json"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[test]
fn keys_come_by_discovery_and_a_rotation_is_followed() {
    let svc = ProviderService::start(job(), "127.0.0.1:0".parse().unwrap(), false).unwrap();
    let issuer = svc.issuer();
    let verifier = Verifier {
        issuer: issuer.clone(),
        ..Verifier::github("nindub-exchange")
    };
    let mut cache = KeyCache::new(&issuer);
    cache.min_refetch = 0;
    let t = now();
    let token = svc.with(|p| p.issue(&job(), "nindub-exchange", t)).unwrap();
    verifier.verify(&token, &mut cache, t).unwrap();
    assert_eq!(cache.fetches, 1);
    verifier.verify(&token, &mut cache, t).unwrap();
    assert_eq!(cache.fetches, 1, "a known kid is served from the cache");
    // The provider's P-256 key: an ES256 token verifies the same way.
    let es256 = svc
        .with(|p| {
            p.sign_with(
                "ec-1",
                &job().claims(&issuer, "nindub-exchange", t, 300).unwrap(),
            )
        })
        .unwrap();
    let claims = verifier.verify(&es256, &mut cache, t).unwrap();
    assert_eq!(claims.sub, format!("repo:{REPO}:environment:production"));
    // An ES256 verifier alone refuses the RS256 token by its algorithm.
    let es_only = Verifier {
        algorithms: vec![nindub::federation::verify::Algorithm::ES256],
        ..verifier.clone()
    };
    assert_eq!(
        es_only.verify(&token, &mut cache, t).unwrap_err().kind(),
        "algorithm"
    );
    es_only.verify(&es256, &mut cache, t).unwrap();
    assert_eq!(cache.fetches, 1);
    let new_kid = svc.with(|p| p.rotate()).unwrap();
    let rotated = svc.with(|p| p.issue(&job(), "nindub-exchange", t)).unwrap();
    let claims = verifier.verify(&rotated, &mut cache, t).unwrap();
    assert_eq!(cache.fetches, 2, "an unknown kid refetches the set once");
    assert_eq!(claims.sub, format!("repo:{REPO}:environment:production"));
    assert!(cache.find(&new_kid, t).is_ok());
    // With the rate limit on, a made-up kid costs no fetch.
    cache.min_refetch = 3600;
    assert_eq!(cache.find("made-up", t).unwrap_err().kind(), "unknown_kid");
    assert_eq!(cache.fetches, 2);
}

/// A child process killed when dropped, with its first stdout lines read.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str], lines: usize) -> (Proc, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nindub"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut got = vec![];
    for _ in 0..lines {
        let mut l = String::new();
        out.read_line(&mut l).unwrap();
        got.push(l.trim().to_string());
    }
    (Proc(child), got)
}

fn url(line: &str) -> String {
    line.strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .to_string()
}

#[test]
fn the_deploy_job_calls_the_server_with_a_minted_credential() {
    let dir = tempfile::tempdir().unwrap();
    let (_idp, lines) = spawn(
        &[
            "forge",
            "idp",
            "--repository",
            REPO,
            "--environment",
            "production",
        ],
        3,
    );
    let issuer = url(&lines[0]);
    let env: Vec<(String, String)> = lines[1..]
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, serde_json::to_string(&policies(&issuer)).unwrap()).unwrap();
    let keys = dir.path().join("keys");
    let (_x, lines) = spawn(
        &[
            "forge",
            "exchange",
            "--issuer",
            &issuer,
            "--policy",
            policy.to_str().unwrap(),
            "--key-dir",
            keys.to_str().unwrap(),
        ],
        1,
    );
    let exchange = url(&lines[0]);
    let jwks = keys.join("exchange.jwks.json");
    let served = common::serve(&["--trust-jwks", jwks.to_str().unwrap()]);

    // The workflow's own last step.
    let out = Command::new("sh")
        .arg(repo_root().join("deploy/smoke.sh"))
        .envs(env.iter().cloned())
        .env("NINDUB", env!("CARGO_BIN_EXE_nindub"))
        .env("NINDUB_EXCHANGE_URL", &exchange)
        .env("NINDUB_URL", &served.url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "smoke.sh failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(
        answer["choices"][0]["message"]["content"].is_string(),
        "{answer}"
    );

    // No credential, a static-key guess: refused.
    let (status, _) = Client::new(&served.url).get("/v1/models").unwrap();
    assert_eq!(status, 401);
    let (status, _) = Client::new(&served.url)
        .with_key("hunter2")
        .get("/v1/models")
        .unwrap();
    assert_eq!(status, 401);

    // Credentials minted with the exchange's own key (the same file), to
    // probe the server's checks one at a time.
    let minter = Minter::load_or_create("nindub-exchange", &keys).unwrap();
    let verifier = Verifier {
        issuer: issuer.clone(),
        ..Verifier::github("nindub-exchange")
    };
    let mut provider_keys = KeyCache::new(&issuer);
    let t = now();
    let token =
        nindub::federation::login::id_token(&env[0].1, &env[1].1, "nindub-exchange").unwrap();
    let subject = verifier.verify(&token, &mut provider_keys, t).unwrap();
    let grant = |scope: &str, ttl: u64, aud: &str| nindub::federation::Grant {
        audience: aud.into(),
        scope: vec![scope.into()],
        ttl_secs: ttl,
    };
    let call = |cred: &str, path: &str| {
        let (status, body) = Client::new(&served.url).with_key(cred).get(path).unwrap();
        (
            status,
            body["error"]["message"].as_str().unwrap_or("").to_string(),
        )
    };
    for garbage in ["not-a-token", "a.b.c", "e30.e30.", &"A".repeat(10_000)] {
        let (status, msg) = call(garbage, "/v1/models");
        assert_eq!(status, 401, "{garbage:.20}");
        assert!(msg.contains("credential refused"), "{msg}");
    }
    let ok = minter
        .mint(&subject, "t", &grant("inference", 600, "nindub-serve"), t)
        .unwrap();
    assert_eq!(call(&ok.token, "/v1/models").0, 200);
    let (status, msg) = call(&ok.token, "/metrics");
    assert_eq!(status, 401);
    assert!(msg.contains("(scope)"), "{msg}");
    let other = minter
        .mint(
            &subject,
            "t",
            &grant("inference", 600, "another-service"),
            t,
        )
        .unwrap();
    let (status, msg) = call(&other.token, "/v1/models");
    assert_eq!(status, 401);
    assert!(msg.contains("(audience)"), "{msg}");
    let forged = Minter::generate("nindub-exchange")
        .unwrap()
        .mint(&subject, "t", &grant("inference", 600, "nindub-serve"), t)
        .unwrap();
    let (status, msg) = call(&forged.token, "/v1/models");
    assert_eq!(status, 401);
    assert!(msg.contains("(unknown_kid)"), "{msg}");
    // Minted with a one-second life: good now, dead two seconds later.
    let short = minter
        .mint(&subject, "t", &grant("inference", 1, "nindub-serve"), now())
        .unwrap();
    assert_eq!(call(&short.token, "/v1/models").0, 200);
    std::thread::sleep(Duration::from_millis(2100));
    let (status, msg) = call(&short.token, "/v1/models");
    assert_eq!(status, 401);
    assert!(msg.contains("(expired)"), "{msg}");

    // A pull request's token from a provider of its own.
    let (_pr_idp, pr_lines) = spawn(
        &[
            "forge",
            "idp",
            "--repository",
            REPO,
            "--event",
            "pull_request",
            "--ref",
            "refs/pull/7/merge",
        ],
        3,
    );
    let pr_issuer = url(&pr_lines[0]);
    assert_ne!(pr_issuer, issuer);
    let pr_token = nindub::federation::login::id_token(
        pr_lines[1].split_once('=').unwrap().1,
        pr_lines[2].split_once('=').unwrap().1,
        "nindub-exchange",
    )
    .unwrap();
    // To this exchange that is another provider whose key has the same
    // name (`rsa-1`): the signature is checked before any claim is read.
    let e = nindub::federation::login::exchange(&exchange, &pr_token)
        .unwrap_err()
        .to_string();
    assert!(e.contains("(signature)"), "{e}");
}
