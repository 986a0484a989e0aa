//! The Infrastructure Canon against a real server: the quality series
//! appear on `/metrics` as the windows fill, a swapped model keeps
//! serving, the canaries score the approved model 1.0 and a crude
//! requantization less, bad canary files are refused, and the committed
//! Prometheus rule file is the one the rules render.

use std::net::SocketAddr;
use std::path::Path;

use candle_core::Device;
use nindub::assets;
use nindub::compress::export::{ExportOptions, quantize_gguf};
use nindub::compress::quant::Scheme;
use nindub::model::generate::Generator;
use nindub::monitor::{CanarySet, MonitorConfig, WindowConfig, canary, prometheus_rules, read_log};
use nindub::serve::client::Client;
use nindub::serve::{ServeConfig, Server};
use serde_json::json;

fn smollm2() -> Generator {
    Generator::load(&assets::smollm2().unwrap(), &Device::Cpu).unwrap()
}

/// `name{labels} value` lines of `text` whose series starts with `prefix`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

#[test]
fn the_committed_rule_file_is_the_rendered_one() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/monitoring/rules.yml");
    let committed = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        committed,
        prometheus_rules(),
        "deploy/monitoring/rules.yml is stale: `nindub monitor rules > deploy/monitoring/rules.yml`"
    );
}

#[test]
fn bad_canary_files_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "empty.json",
            r#"{"model":"m","canaries":[]}"#,
            "holds no canary",
        ),
        (
            "no-answer.json",
            r#"{"model":"m","canaries":[{"prompt":"a","answer":"","answer_tokens":[]}]}"#,
            "canary 0 has no answer tokens",
        ),
        (
            "wrong.json",
            r#"{"model":"m","canaries":[{"prompt":"a","answer":"b","answer_tokens":["x"]}]}"#,
            "canaries[0].answer_tokens[0]",
        ),
        ("truncated.json", r#"{"model":"m","cana"#, "canary set"),
    ];
    for (name, text, want) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        let e = CanarySet::load(&p).unwrap_err().to_string();
        assert!(e.contains(want), "{name}: {e}");
    }
}

#[test]
fn a_served_model_is_watched_swapped_and_caught_by_its_canaries() {
    let mut g = smollm2();
    let set = canary::record(
        &mut g,
        "smollm2",
        &["The capital of France is".into(), "One, two, three,".into()],
        5,
    )
    .unwrap();
    assert_eq!(
        canary::score(&mut g, &set).unwrap().accuracy,
        1.0,
        "the approved model"
    );

    // A crude INT2 copy: the canaries see it at once.
    let dir = tempfile::tempdir().unwrap();
    let int2 = dir.path().join("int2.gguf");
    quantize_gguf(
        &assets::smollm2().unwrap(),
        &int2,
        Scheme::parse("int2-g32").unwrap(),
        &ExportOptions::REQUANTIZE,
    )
    .unwrap();
    let mut bad = Generator::load(&int2, &Device::Cpu).unwrap();
    let score = canary::score(&mut bad, &set).unwrap();
    assert!(score.accuracy < 0.9, "INT2 still answers {score:?}");

    let mut cfg = ServeConfig::new("smollm2");
    cfg.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.monitor = MonitorConfig {
        windows: WindowConfig {
            reference: 12,
            live: 6,
            ..WindowConfig::default()
        },
        canaries: Some(set),
        canary_every: 2,
        embedding_norms: None,
        log: Some(dir.path().join("quality.jsonl")),
    };
    let server = Server::start(g, cfg).unwrap();
    let client = Client::new(&server.url());
    let ask = |seed: u64| {
        let (status, _) = client
            .post(
                "/v1/completions",
                &json!({"prompt": "Once upon a time", "max_tokens": 6, "temperature": 0.8, "seed": seed}),
            )
            .unwrap();
        assert_eq!(status, 200);
    };
    let metrics = || {
        client
            .get("/metrics")
            .unwrap()
            .1
            .as_str()
            .unwrap()
            .to_string()
    };
    ask(1);
    let m = metrics();
    assert_eq!(value(&m, "nindub_drift_reference_ready"), Some(0.0), "{m}");
    assert_eq!(
        value(&m, "nindub_canary_accuracy_ratio"),
        Some(1.0),
        "scored at start"
    );
    assert_eq!(
        value(&m, "nindub_token_probability_ratio_count"),
        value(&m, "nindub_completion_tokens_total"),
        "one observation per generated token"
    );
    for seed in 2..=4 {
        ask(seed);
    }
    let m = metrics();
    assert_eq!(value(&m, "nindub_drift_reference_ready"), Some(1.0), "{m}");
    assert!(
        m.contains(r#"nindub_drift_score{signal="token_entropy",test="psi"}"#),
        "{m}"
    );
    assert_eq!(
        value(&m, "nindub_canary_runs_total"),
        Some(2.0),
        "at start, after 2"
    );

    server.swap_model(bad).unwrap();
    for seed in 5..=6 {
        ask(seed);
    }
    let m = metrics();
    assert_eq!(value(&m, "nindub_model_swaps_total"), Some(1.0));
    let accuracy = value(&m, "nindub_canary_accuracy_ratio").unwrap();
    assert!(accuracy < 0.9, "the swapped model's canaries: {accuracy}");
    assert_eq!(
        client.get("/health").unwrap().0,
        200,
        "uptime is not quality"
    );
    drop(server);
    let log = read_log(&dir.path().join("quality.jsonl")).unwrap();
    assert_eq!(log.len(), 6, "one record per request");
    assert!(
        log.iter()
            .all(|r| r.tokens.len() == r.prob.len() && !r.prompt.is_empty())
    );
    assert_eq!(log[5].request, 6);
}
