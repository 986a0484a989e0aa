//! The Infrastructure Canon's monitoring files (`deploy/monitoring/`),
//! checked three ways:
//!
//! - the Grafana dashboard holds what Grafana needs to import it, and every
//!   query it (or an alerting rule) makes names a series the server
//!   exports;
//! - `promtool` accepts the Prometheus configuration and the rules, and
//!   the rules pass their unit tests (`rules.test.yml`);
//! - a real Prometheus scrapes a real `nindub serve`: the target is up,
//!   the server's counters read back after a few completions, the six
//!   alerts evaluate without error, every dashboard query is accepted, and
//!   the quality histograms carry the completions' tokens.
//!
//! The last two need Prometheus (Debian's `prometheus` package: `cargo
//! codex setup canon`), so they are ignored by a plain `cargo test`; `cargo
//! codex test` installs it and runs them (step "infrastructure canon"),
//! where a missing `promtool` fails, never skips. `$CODEX_PROMTOOL` and
//! `$CODEX_PROMETHEUS` name the binaries; otherwise they are looked up on
//! PATH.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn root() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    dir.canonicalize().unwrap_or(dir)
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn dashboard() -> Value {
    serde_json::from_str(&read("deploy/monitoring/grafana-dashboard.json"))
        .expect("grafana-dashboard.json is not JSON")
}

// === What the server exports ===

/// Histograms: queried as `NAME_bucket`, `NAME_sum`, `NAME_count`.
const HISTOGRAMS: &[&str] = &[
    "nindub_token_probability_ratio",
    "nindub_token_entropy_nats",
    "nindub_time_to_first_token_seconds",
];

/// Gauges and counters, queried by their names as exported.
const SERIES: &[&str] = &[
    "nindub_signal_mean",
    "nindub_drift_score",
    "nindub_drift_reference_ready",
    "nindub_drift_window_tokens",
    "nindub_canary_accuracy_ratio",
    "nindub_canary_logprob_mean",
    "nindub_canary_last_run_timestamp_seconds",
    "nindub_canary_runs_total",
    "nindub_model_swaps_total",
    "nindub_http_requests_total",
    "nindub_completion_tokens_total",
    "nindub_queue_waiting",
];

/// The values the quality metrics' labels take.
const LABEL_VALUES: &[(&str, &[&str])] = &[
    (
        "signal",
        &[
            "token_probability",
            "token_entropy",
            "output_tokens",
            "input_tokens",
            "input_embedding_norm",
        ],
    ),
    ("test", &["psi", "ks", "js"]),
    ("window", &["reference", "live"]),
];

/// The alerts rules.yml defines.
const ALERTS: &[&str] = &[
    "NindubDown",
    "NindubConfidenceDrift",
    "NindubOutputTokenDrift",
    "NindubQualityDrop",
    "NindubCanaryFailing",
    "NindubInputDrift",
];

/// `expr` with its string literals blanked (a label value is not a name).
fn without_strings(expr: &str) -> String {
    let mut out = String::new();
    let mut quote = None;
    let mut escaped = false;
    for c in expr.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                    out.push(c);
                }
            }
            None => {
                if c == '"' || c == '\'' || c == '`' {
                    quote = Some(c);
                }
                out.push(c);
            }
        }
    }
    out
}

/// The `nindub_*` names an expression mentions.
fn nindub_names(expr: &str) -> Vec<String> {
    let text = without_strings(expr);
    let mut names = vec![];
    let bytes = text.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut i = 0;
    while i < bytes.len() {
        if ident(bytes[i]) {
            let start = i;
            while i < bytes.len() && ident(bytes[i]) {
                i += 1;
            }
            let word = &text[start..i];
            if word.starts_with("nindub_") {
                names.push(word.to_string());
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Why `name` is not a series the server exports, if it is not.
fn unknown_metric(name: &str) -> Option<String> {
    if SERIES.contains(&name) {
        return None;
    }
    let base = ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s));
    match base {
        Some(b) if HISTOGRAMS.contains(&b) => None,
        _ if HISTOGRAMS.contains(&name) => Some(format!(
            "`{name}` is a histogram: query `{name}_bucket`, `_sum` or `_count`"
        )),
        _ => Some(format!("`{name}` is not a metric nindub exports")),
    }
}

/// Label matchers on the quality labels whose values the server never
/// writes (`signal="token_prob"`, a typo, matches nothing, silently).
fn unknown_label_values(expr: &str) -> Vec<String> {
    let mut found = vec![];
    for (label, values) in LABEL_VALUES {
        let mut rest = expr;
        while let Some(at) = rest.find(label) {
            let before = rest[..at].chars().last();
            rest = &rest[at + label.len()..];
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let after = rest.trim_start();
            let (op_len, regex) = if after.starts_with("=~") || after.starts_with("!~") {
                (2, true)
            } else if after.starts_with("!=") {
                (2, false)
            } else if after.starts_with('=') && !after.starts_with("==") {
                (1, false)
            } else {
                continue;
            };
            let value = after[op_len..].trim_start();
            let Some(value) = value.strip_prefix('"') else {
                continue;
            };
            let value = &value[..value.find('"').unwrap_or(value.len())];
            let alternatives: Vec<&str> = if regex {
                value.split('|').collect()
            } else {
                vec![value]
            };
            for v in alternatives {
                if !values.contains(&v) {
                    found.push(format!("{label}=\"{v}\" (the server writes {values:?})"));
                }
            }
        }
    }
    found
}

/// Every query the dashboard makes: (panel title, refId, expr).
fn dashboard_queries(dash: &Value) -> Vec<(String, String, String)> {
    let mut out = vec![];
    for panel in dash["panels"].as_array().into_iter().flatten() {
        let title = panel["title"].as_str().unwrap_or_default().to_string();
        for t in panel["targets"].as_array().into_iter().flatten() {
            out.push((
                title.clone(),
                t["refId"].as_str().unwrap_or_default().to_string(),
                t["expr"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    out
}

/// The `expr:` lines of rules.yml.
fn rule_exprs() -> Vec<String> {
    read("deploy/monitoring/rules.yml")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr: "))
        .map(str::to_string)
        .collect()
}

// === The dashboard, without Grafana ===

#[test]
fn the_dashboard_holds_what_grafana_needs() {
    let dash = dashboard();
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let uid = text(&dash["uid"]);
    assert!(
        !uid.is_empty() && uid.len() <= 40,
        "uid: 1-40 characters, got {uid:?}"
    );
    assert!(
        !text(&dash["title"]).is_empty(),
        "the dashboard has a title"
    );
    let schema = dash["schemaVersion"].as_u64().expect("schemaVersion");
    assert!(
        (36..=41).contains(&schema),
        "schemaVersion {schema}: written for Grafana 9-11 (36-41)"
    );
    assert!(dash["time"]["from"].is_string() && dash["time"]["to"].is_string());

    // The data source is chosen at import (or provisioning) time, through
    // a variable of type `datasource` every panel and query names.
    let variables = dash["templating"]["list"].as_array().expect("templating");
    let ds_var = variables
        .iter()
        .find(|v| v["type"] == "datasource" && v["query"] == "prometheus")
        .expect("a templating variable of type datasource, for Prometheus");
    let ds_uid = format!("${{{}}}", text(&ds_var["name"]));
    let names_source = |v: &Value, what: &str| {
        assert_eq!(v["datasource"]["type"], "prometheus", "{what}: datasource");
        assert_eq!(
            text(&v["datasource"]["uid"]),
            ds_uid,
            "{what}: the datasource is the variable"
        );
    };

    let panels = dash["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    let mut ids = BTreeSet::new();
    let mut cells: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for p in panels {
        let title = text(&p["title"]);
        assert!(!title.is_empty(), "a panel without a title: {p}");
        let id = p["id"].as_u64().unwrap_or_else(|| panic!("{title}: id"));
        assert!(ids.insert(id), "{title}: id {id} is used twice");
        let kind = text(&p["type"]);
        assert!(
            [
                "stat",
                "timeseries",
                "table",
                "gauge",
                "bargauge",
                "text",
                "state-timeline"
            ]
            .contains(&kind.as_str()),
            "{title}: panel type {kind:?}"
        );
        let g = &p["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| {
            g[k].as_u64()
                .unwrap_or_else(|| panic!("{title}: gridPos.{k}"))
        });
        assert!(w > 0 && h > 0 && x + w <= 24, "{title}: gridPos {g}");
        for cx in x..x + w {
            for cy in y..y + h {
                if let Some(other) = cells.insert((cx, cy), title.clone()) {
                    panic!("{title} overlaps {other}");
                }
            }
        }
        names_source(p, &title);
        let targets = p["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("{title}: targets"));
        assert!(!targets.is_empty(), "{title}: no query");
        let mut refs = BTreeSet::new();
        for t in targets {
            let r = text(&t["refId"]);
            assert!(!r.is_empty(), "{title}: a target without refId");
            assert!(refs.insert(r.clone()), "{title}: refId {r} twice");
            let expr = text(&t["expr"]);
            assert!(!expr.trim().is_empty(), "{title} {r}: empty expr");
            // The queries go to Prometheus as they are written (the scrape
            // test sends each one): no Grafana variables in them.
            assert!(
                !expr.contains('$'),
                "{title} {r}: `{expr}` uses a Grafana variable"
            );
            names_source(t, &format!("{title} {r}"));
        }
    }

    // The panels the chapter describes.
    let exprs: Vec<String> = dashboard_queries(&dash)
        .into_iter()
        .map(|(_, _, e)| e.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let any = |needle: &str| exprs.iter().any(|e| e.contains(needle));
    for needle in [
        "up{job=\"nindub\"}",
        "nindub_http_requests_total",
        "histogram_quantile(0.5, sum by (le) (rate(nindub_token_probability_ratio_bucket",
        "histogram_quantile(0.1, sum by (le) (rate(nindub_token_probability_ratio_bucket",
        "nindub_token_entropy_nats",
        "nindub_drift_score{job=\"nindub\",test=\"psi\"}",
        "nindub_drift_score{job=\"nindub\",test=\"js\"}",
        "nindub_canary_accuracy_ratio",
        "ALERTS{alertstate=\"firing\"}",
    ] {
        assert!(any(needle), "no panel queries `{needle}`");
    }
}

#[test]
fn every_query_names_a_series_the_server_exports() {
    let mut wrong = vec![];
    let dash = dashboard();
    let rules = rule_exprs();
    assert_eq!(rules.len(), ALERTS.len(), "one expr per alert in rules.yml");
    let queries = dashboard_queries(&dash)
        .into_iter()
        .map(|(title, r, e)| (format!("dashboard `{title}` {r}"), e))
        .chain(rules.into_iter().map(|e| ("rules.yml".to_string(), e)));
    for (place, expr) in queries {
        for name in nindub_names(&expr) {
            if let Some(why) = unknown_metric(&name) {
                wrong.push(format!("{place}: {why}"));
            }
        }
        for why in unknown_label_values(&expr) {
            wrong.push(format!("{place}: {why}"));
        }
    }
    assert!(wrong.is_empty(), "\n  {}", wrong.join("\n  "));
}

#[test]
fn the_name_check_catches_what_it_should() {
    assert_eq!(
        nindub_names(r#"rate(nindub_token_entropy_nats_sum{job="nindub_x"}[5m]) / nindub_up"#),
        ["nindub_token_entropy_nats_sum", "nindub_up"]
    );
    assert!(unknown_metric("nindub_token_probability_ratio_bucket").is_none());
    assert!(unknown_metric("nindub_completion_tokens_total").is_none());
    assert!(unknown_metric("nindub_token_probability_ratio").is_some());
    assert!(unknown_metric("nindub_completion_tokens").is_some());
    assert!(unknown_metric("nindub_queue_waiting_count").is_some());
    assert!(unknown_label_values(r#"x{signal=~"token_probability|token_entropy"}"#).is_empty());
    assert_eq!(
        unknown_label_values(r#"x{test="psi", signal="token_prob"} and on() y{window="live"}"#)
            .len(),
        1
    );
}

// === promtool ===

/// A Prometheus binary: `$ENV`, else `bin` on PATH; a clear failure
/// otherwise (these tests run in CI, where a missing tool must not pass).
fn prometheus_tool(bin: &str, env: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(bin))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "`{bin}` is not installed: run `cargo codex setup canon` (Debian's prometheus \
             package, which has both prometheus and promtool), or set ${env} to its path"
        )
    })
}

fn promtool(args: &[&str]) {
    let bin = prometheus_tool("promtool", "CODEX_PROMTOOL");
    let out = Command::new(&bin)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("promtool {}:\n{said}", args.join(" "));
    assert!(
        out.status.success(),
        "promtool {} failed ({}):\n{said}",
        args.join(" "),
        out.status
    );
}

#[test]
#[ignore = "needs promtool (cargo codex setup canon); cargo codex test runs it"]
fn promtool_accepts_the_config_and_the_rules_pass_their_tests() {
    // `check config` also checks the rule files the config names.
    promtool(&["check", "config", "deploy/monitoring/prometheus.yml"]);
    promtool(&["check", "rules", "deploy/monitoring/rules.yml"]);
    promtool(&["test", "rules", "deploy/monitoring/rules.test.yml"]);
}

// === A real Prometheus scraping a real server ===

/// A child process, killed when dropped (a failing assertion too).
struct Proc {
    child: Child,
    /// The server's stdout, held open: closing it could fail its writes.
    _stdout: Option<ChildStdout>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds `nindub` into the workspace's target directory, as the other
/// checks do, and returns its path.
fn nindub_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root())
        .args(["build", "--quiet", "-p", "nindub", "--bin", "nindub"])
        .arg("--message-format=json-render-diagnostics")
        .stderr(Stdio::inherit())
        .output()
        .expect("running cargo build -p nindub");
    assert!(out.status.success(), "cargo build -p nindub failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .expect("cargo build reported no nindub executable")
}

/// `nindub serve --model smollm2 --port 0` (the model from the cache,
/// fetched there by `cargo codex models` if it is not yet); returns the
/// process and its `host:port`.
fn serve(bin: &Path) -> (Proc, String) {
    let mut child = Command::new(bin)
        .args(["serve", "--model", "smollm2", "--port", "0"])
        .env_remove("NINDUB_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting nindub serve");
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut proc = Proc {
        child,
        _stdout: None,
    };
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    proc._stdout = Some(stdout.into_inner());
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("nindub serve did not start (it printed {line:?})"));
    let addr = url
        .strip_prefix("http://")
        .unwrap_or(url)
        .trim_end_matches('/')
        .to_string();
    (proc, addr)
}

/// A free loopback port: bound, read, released.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Percent-encodes everything but the unreserved characters (a PromQL
/// `+` must not reach Prometheus as a space).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A running Prometheus and what the test asks it.
struct Prometheus {
    base: String,
    log: PathBuf,
    http: ureq::Agent,
}

impl Prometheus {
    /// Panics with `msg` and the end of Prometheus's log.
    fn fail(&self, msg: &str) -> ! {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!("{msg}\nPrometheus's log ends:\n{}", tail.join("\n"))
    }

    /// GET an API path; the JSON answer, whatever the status.
    fn get(&self, path_and_query: &str) -> Result<Value, String> {
        let url = format!("{}{path_and_query}", self.base);
        let mut resp = self.http.get(&url).call().map_err(|e| e.to_string())?;
        resp.body_mut()
            .read_json::<Value>()
            .map_err(|e| format!("{url}: {e}"))
    }

    /// An instant query's samples (labels, value), or Prometheus's error.
    fn query(&self, expr: &str) -> Result<Vec<(Value, f64)>, String> {
        let v = self.get(&format!("/api/v1/query?query={}", encode(expr)))?;
        if v["status"] != "success" {
            return Err(format!("`{expr}`: {} {}", v["errorType"], v["error"]));
        }
        let data = &v["data"];
        let samples = match data["resultType"].as_str() {
            Some("vector") => data["result"].as_array().cloned().unwrap_or_default(),
            Some("scalar") => vec![serde_json::json!({"metric": {}, "value": data["result"]})],
            other => return Err(format!("`{expr}`: result type {other:?}")),
        };
        Ok(samples
            .into_iter()
            .map(|s| {
                let value = s["value"][1].as_str().and_then(|x| x.parse().ok());
                (s["metric"].clone(), value.unwrap_or(f64::NAN))
            })
            .collect())
    }

    /// Waits (at most `secs`) until `check` returns `Ok`; fails with the
    /// last thing it said otherwise.
    fn wait<T>(&self, what: &str, secs: u64, mut check: impl FnMut() -> Result<T, String>) -> T {
        let started = Instant::now();
        loop {
            match check() {
                Ok(t) => {
                    eprintln!("{what}: after {:.1} s", started.elapsed().as_secs_f64());
                    return t;
                }
                Err(last) if started.elapsed() > Duration::from_secs(secs) => {
                    self.fail(&format!("{what}: not within {secs} s; last: {last}"))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    /// Waits until `expr` (one series) reads above zero.
    fn wait_positive(&self, expr: &str, secs: u64) -> f64 {
        self.wait(&format!("`{expr}` > 0"), secs, || {
            match self.query(expr)?.as_slice() {
                [(_, v)] if *v > 0.0 => Ok(*v),
                samples => Err(format!("{samples:?}")),
            }
        })
    }
}

#[test]
#[ignore = "needs prometheus (cargo codex setup canon) and the model; cargo codex test runs it"]
fn prometheus_scrapes_the_server_and_evaluates_the_alerts() {
    let prometheus_bin = prometheus_tool("prometheus", "CODEX_PROMETHEUS");
    let nindub = nindub_binary();
    let dir = tempfile::tempdir().unwrap();
    let (_server, target) = serve(&nindub);
    eprintln!("nindub serve on {target}");

    // The committed configuration, pointed at this server; its rules beside it.
    let template = read("deploy/monitoring/prometheus.yml");
    assert_eq!(
        template.matches("\"127.0.0.1:8080\"").count(),
        1,
        "prometheus.yml names its one target as \"127.0.0.1:8080\""
    );
    let config = template.replace("\"127.0.0.1:8080\"", &format!("\"{target}\""));
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    std::fs::write(
        dir.path().join("rules.yml"),
        read("deploy/monitoring/rules.yml"),
    )
    .unwrap();

    let port = free_port();
    let log = dir.path().join("prometheus.log");
    let child = Command::new(&prometheus_bin)
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", prometheus_bin.display()));
    let _prometheus = Proc {
        child,
        _stdout: None,
    };
    let prom = Prometheus {
        base: format!("http://127.0.0.1:{port}"),
        log,
        http: ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into(),
    };
    eprintln!("prometheus on {}", prom.base);

    // 1. The target is up.
    prom.wait("Prometheus is ready", 30, || {
        let mut resp = prom
            .http
            .get(format!("{}/-/ready", prom.base))
            .call()
            .map_err(|e| e.to_string())?;
        match resp.status().as_u16() {
            200 => Ok(()),
            s => Err(format!("{s} {:?}", resp.body_mut().read_to_string())),
        }
    });
    prom.wait("up{job=\"nindub\"} == 1", 30, || {
        match prom.query("up{job=\"nindub\"}")?.as_slice() {
            [(labels, v)] if *v == 1.0 => {
                assert_eq!(labels["instance"], target.as_str());
                Ok(())
            }
            samples => Err(format!("{samples:?}")),
        }
    });

    // 2. A few completions, and the server's counters read back.
    let completions = format!("http://{target}/v1/completions");
    for prompt in ["Once upon a time", "The capital of France is", "1, 2, 3,"] {
        let mut resp = prom
            .http
            .post(&completions)
            .send_json(serde_json::json!({
                "prompt": prompt, "max_tokens": 8, "temperature": 0,
            }))
            .unwrap_or_else(|e| panic!("POST {completions}: {e}"));
        let status = resp.status().as_u16();
        let body: Value = resp.body_mut().read_json().unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(
            body["usage"]["completion_tokens"].as_u64() > Some(0),
            "{body}"
        );
    }
    let tokens = prom.wait_positive("nindub_completion_tokens_total{job=\"nindub\"}", 30);
    eprintln!("nindub_completion_tokens_total = {tokens}");

    // 3. The six alerts are loaded and evaluate without error.
    prom.wait("the alerts evaluate with health ok", 30, || {
        let v = prom.get("/api/v1/rules?type=alert")?;
        let rules: Vec<&Value> = v["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        let names: BTreeSet<&str> = rules.iter().filter_map(|r| r["name"].as_str()).collect();
        if names != ALERTS.iter().copied().collect() {
            return Err(format!("Prometheus loaded the alerts {names:?}"));
        }
        let unhealthy: Vec<String> = rules
            .iter()
            .filter(|r| r["health"] != "ok")
            .map(|r| format!("{} {} {}", r["name"], r["health"], r["lastError"]))
            .collect();
        if !unhealthy.is_empty() {
            return Err(unhealthy.join("; "));
        }
        // The server is up: its alert is neither pending nor firing.
        match rules.iter().find(|r| r["name"] == "NindubDown") {
            Some(down) if down["state"] == "inactive" => Ok(()),
            down => Err(format!("NindubDown: {down:?}")),
        }
    });

    // 4. Every dashboard query is valid PromQL, as Prometheus parses it.
    let mut refused = vec![];
    for (title, r, expr) in dashboard_queries(&dashboard()) {
        match prom.query(&expr) {
            Ok(samples) => eprintln!("dashboard `{title}` {r}: {} series", samples.len()),
            Err(e) => refused.push(format!("`{title}` {r}: {e}")),
        }
    }
    if !refused.is_empty() {
        prom.fail(&format!(
            "Prometheus refused dashboard queries:\n  {}",
            refused.join("\n  ")
        ));
    }

    // 5. The quality metrics: the completions' tokens were measured.
    let probs = prom.wait_positive("nindub_token_probability_ratio_count{job=\"nindub\"}", 30);
    eprintln!("nindub_token_probability_ratio_count = {probs}");
}
