//! The Speaking Stone: every route of a real server on an ephemeral
//! loopback port, with the real SmolLM2 behind it.

mod common;
use common::{metric, raw, wait_for_health};

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use candle_core::Device;
use nindub::assets;
use nindub::model::generate::{GenerateConfig, Generator};
use nindub::model::sample::SamplingConfig;
use nindub::serve::client::Client;
use nindub::serve::{ServeConfig, Server};
use serde_json::{Value, json};

const MODEL: &str = "SmolLM2-135M-Instruct.Q4_1";

fn generator() -> Generator {
    Generator::load(&assets::smollm2().unwrap(), &Device::Cpu).unwrap()
}

fn start(edit: impl FnOnce(&mut ServeConfig)) -> Server {
    let mut cfg = ServeConfig::new(MODEL);
    cfg.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    edit(&mut cfg);
    Server::start(generator(), cfg).unwrap()
}

fn post(addr: SocketAddr, path: &str, headers: &str, body: &[u8]) -> (u16, String, String) {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    raw(addr, &req)
}

fn chat(content: &str, max_tokens: usize) -> Value {
    json!({
        "model": MODEL,
        "messages": [{ "role": "user", "content": content }],
        "max_tokens": max_tokens,
        "temperature": 0,
    })
}

#[test]
fn every_route_answers_and_greedy_matches_the_ritual() {
    let server = start(|_| {});
    let client = Client::new(&server.url());

    let (status, health) = client.get("/health").unwrap();
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    assert_eq!(health["queue"]["capacity"], 8);
    let (_, models) = client.get("/v1/models").unwrap();
    assert_eq!(models["data"][0]["id"], MODEL);
    for (path, mime) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/style.css", "text/css"),
    ] {
        let (status, head, body) = raw(
            server.addr(),
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(status, 200, "{path}");
        assert!(
            head.contains(&format!("content-type: {mime}")),
            "{path}: {head}"
        );
        assert!(head.contains("content-security-policy: default-src 'self'"));
        assert!(body.len() > 500, "{path} is too small");
    }

    // A plain completion, with logprobs, equals the in-process Ritual.
    let prompt = "The three primary colours are";
    let (status, done) = client
        .post(
            "/v1/completions",
            &json!({ "model": MODEL, "prompt": prompt, "max_tokens": 10, "temperature": 0, "logprobs": 3 }),
        )
        .unwrap();
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["object"], "text_completion");
    let text = done["choices"][0]["text"].as_str().unwrap();
    let lp = &done["choices"][0]["logprobs"];
    assert_eq!(done["usage"]["completion_tokens"], 10);
    assert_eq!(lp["tokens"].as_array().unwrap().len(), 10);
    assert_eq!(lp["tokens"].as_array().unwrap().concat_str(), text);
    for (i, top) in lp["top_logprobs"].as_array().unwrap().iter().enumerate() {
        let top = top.as_object().unwrap();
        assert_eq!(top.len(), 3);
        // Greedy: the chosen token is the most probable candidate.
        let best = top
            .values()
            .map(|v| v.as_f64().unwrap())
            .fold(f64::MIN, f64::max);
        assert!((lp["token_logprobs"][i].as_f64().unwrap() - best).abs() < 1e-6);
        assert!(best <= 0.0);
    }
    let mut g = generator();
    let ids = g.tokenizer.encode(prompt).unwrap();
    let cfg = GenerateConfig {
        sampling: SamplingConfig::greedy(),
        max_tokens: 10,
        ..Default::default()
    };
    let local = g.generate(&ids, &cfg, |_| true).unwrap();
    assert_eq!(text, local.text);

    // Chat: plain, then streamed — the same text, chunk by chunk.
    let (status, plain) = client
        .post("/v1/chat/completions", &chat("Name a fruit.", 12))
        .unwrap();
    assert_eq!(status, 200, "{plain}");
    assert_eq!(plain["object"], "chat.completion");
    assert_eq!(plain["choices"][0]["message"]["role"], "assistant");
    let mut body = chat("Name a fruit.", 12);
    body["stream_options"] = json!({ "include_usage": true });
    body["logprobs"] = json!(true);
    body["top_logprobs"] = json!(2);
    let streamed = client
        .stream("/v1/chat/completions", &body, |_| true)
        .unwrap();
    assert!(streamed.saw_done);
    assert_eq!(streamed.text, plain["choices"][0]["message"]["content"]);
    assert_eq!(
        streamed.chunks[0]["choices"][0]["delta"]["role"],
        "assistant"
    );
    let usage = &streamed.chunks.last().unwrap()["usage"];
    assert_eq!(usage, &plain["usage"]);
    let n = usage["completion_tokens"].as_u64().unwrap() as usize;
    assert_eq!(streamed.token_chunks, n);
    for c in &streamed.chunks[1..=n] {
        assert_eq!(c["object"], "chat.completion.chunk");
        let entry = &c["choices"][0]["logprobs"]["content"][0];
        assert_eq!(entry["top_logprobs"].as_array().unwrap().len(), 2);
        assert!(entry["logprob"].as_f64().unwrap() <= 0.0);
    }
    // Streamed completions too.
    let s = client
        .stream(
            "/v1/completions",
            &json!({ "prompt": prompt, "max_tokens": 10, "temperature": 0 }),
            |_| true,
        )
        .unwrap();
    assert_eq!(s.text, text);
    assert!(s.ttft_secs.is_some() && s.saw_done);

    let requests = metric(
        &client,
        "nindub_http_requests_total{route=\"/v1/chat/completions\",status=\"200\"}",
    );
    assert_eq!(requests, 2.0);
    assert_eq!(
        metric(&client, "nindub_completion_tokens_total"),
        (10 + 2 * n + 10) as f64
    );
    assert_eq!(
        metric(&client, "nindub_time_to_first_token_seconds_count"),
        4.0
    );
}

trait ConcatStr {
    fn concat_str(&self) -> String;
}

impl ConcatStr for Vec<Value> {
    fn concat_str(&self) -> String {
        self.iter().filter_map(Value::as_str).collect()
    }
}

#[test]
fn stop_strings_are_held_back_while_streaming() {
    let server = start(|_| {});
    let client = Client::new(&server.url());
    let prompt = "Count: one, two, three, four, five,";
    // Greedy continues " six, seven, …": stop at a string spanning tokens.
    let body =
        json!({ "prompt": prompt, "max_tokens": 24, "temperature": 0, "stop": [" seven", "\n\n"] });
    let (_, plain) = client.post("/v1/completions", &body).unwrap();
    let text = plain["choices"][0]["text"].as_str().unwrap();
    assert_eq!(plain["choices"][0]["finish_reason"], "stop", "{plain}");
    assert!(!text.contains(" seven") && !text.is_empty(), "{text:?}");
    let streamed = client.stream("/v1/completions", &body, |_| true).unwrap();
    assert_eq!(streamed.text, text);
}

#[test]
fn bad_requests_get_a_named_4xx_never_a_500() {
    let server = start(|c| {
        c.max_body_bytes = 4096;
        c.max_prompt_tokens = 64;
        c.max_tokens = 100;
    });
    let a = server.addr();
    let cases: &[(&str, &[u8], u16, &str)] = &[
        ("/v1/completions", b"{\"prompt\": ", 400, "not valid JSON"),
        ("/v1/completions", b"", 400, "empty"),
        ("/v1/completions", b"[1, 2]", 400, "JSON object"),
        ("/v1/completions", br#"{"prompt": 7}"#, 400, "prompt"),
        (
            "/v1/completions",
            br#"{"prompt": "x", "temperature": "hot"}"#,
            400,
            "temperature",
        ),
        (
            "/v1/completions",
            br#"{"prompt": "x", "temperature": 9}"#,
            400,
            "temperature",
        ),
        (
            "/v1/completions",
            br#"{"prompt": "x", "max_tokens": 101}"#,
            400,
            "max_tokens",
        ),
        ("/v1/completions", br#"{"prompt": ""}"#, 400, "prompt"),
        (
            "/v1/completions",
            br#"{"model": "gpt-9", "prompt": "x"}"#,
            404,
            "gpt-9",
        ),
        (
            "/v1/chat/completions",
            br#"{"messages": []}"#,
            400,
            "messages",
        ),
        (
            "/v1/chat/completions",
            br#"{"messages": [{"role": "user"}]}"#,
            400,
            "messages",
        ),
        (
            "/v1/chat/completions",
            br#"{"messages": [{"role": "user", "content": "x"}], "top_logprobs": 3}"#,
            400,
            "logprobs",
        ),
        (
            "/v1/chat/completions",
            br#"{"messages": [{"role": "user", "content": "x"}], "n": 99}"#,
            400,
            "n",
        ),
    ];
    for (path, body, status, needle) in cases {
        let (got, _, text) = post(a, path, "", body);
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| {
            panic!("{path} {}: not JSON: {text}", String::from_utf8_lossy(body))
        });
        assert_eq!(got, *status, "{}: {text}", String::from_utf8_lossy(body));
        let message = v["error"]["message"].as_str().unwrap();
        let param = v["error"]["param"].as_str().unwrap_or("");
        assert!(
            message.contains(needle) || param.contains(needle),
            "{}: {text} does not name `{needle}`",
            String::from_utf8_lossy(body)
        );
    }
    // Over-long prompt (tokens) and over-large body (bytes).
    let long = json!({ "prompt": "word ".repeat(100) }).to_string();
    let (got, _, text) = post(a, "/v1/completions", "", long.as_bytes());
    assert_eq!(got, 400, "{text}");
    assert!(text.contains("at most 64"), "{text}");
    let huge = json!({ "prompt": "x".repeat(5000) }).to_string();
    let (got, _, text) = post(a, "/v1/completions", "", huge.as_bytes());
    assert_eq!(got, 413, "{text}");
    // Unknown routes and methods.
    let (got, _, text) = raw(
        a,
        b"GET /v2/nothing HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(got, 404);
    assert!(text.contains("no route"));
    let (got, _, text) = raw(
        a,
        b"GET /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(got, 405, "{text}");
    assert!(text.contains("not allowed"));
    let client = Client::new(&server.url());
    assert_eq!(metric(&client, "nindub_completion_tokens_total"), 0.0);
}

#[test]
fn the_key_opens_v1_and_only_v1_needs_it() {
    let server = start(|c| c.api_key = Some("open sesame".into()));
    let a = server.addr();
    let body = br#"{"prompt": "Hi", "max_tokens": 2}"#;
    for header in [
        "",
        "Authorization: Bearer wrong\r\n",
        "Authorization: open sesame\r\n",
    ] {
        let (got, head, text) = post(a, "/v1/completions", header, body);
        assert_eq!(got, 401, "{header}: {text}");
        assert!(head.contains("www-authenticate: bearer"));
        assert!(text.contains("API key"));
    }
    let (got, _, text) = post(
        a,
        "/v1/completions",
        "Authorization: Bearer open sesame\r\n",
        body,
    );
    assert_eq!(got, 200, "{text}");
    let open = Client::new(&server.url());
    assert_eq!(open.get("/health").unwrap().0, 200);
    assert_eq!(open.get("/v1/models").unwrap().0, 401);
    assert_eq!(
        open.clone()
            .with_key("open sesame")
            .get("/v1/models")
            .unwrap()
            .0,
        200
    );
    // CORS is off: no Access-Control header, even for a browser's preflight.
    let (_, head, _) = raw(
        a,
        b"OPTIONS /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://evil.example\r\nAccess-Control-Request-Method: GET\r\nConnection: close\r\n\r\n",
    );
    assert!(!head.contains("access-control-allow-origin"), "{head}");
}

#[test]
fn cors_is_granted_only_to_the_named_origin() {
    let server = start(|c| c.cors_origins = vec!["http://localhost:3000".into()]);
    let preflight = |origin: &str| {
        raw(
            server.addr(),
            format!("OPTIONS /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: GET\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .1
    };
    assert!(
        preflight("http://localhost:3000")
            .contains("access-control-allow-origin: http://localhost:3000")
    );
    assert!(!preflight("http://evil.example").contains("access-control-allow-origin"));
}

#[test]
fn a_full_queue_says_503_and_a_hang_up_cancels() {
    let server = start(|c| {
        c.queue = 1;
        c.parallel = 1;
    });
    let url = server.url();
    let client = Client::new(&url);
    let hang_up = Arc::new(AtomicBool::new(false));
    // A: a long streamed generation, hung up on command.
    let a = {
        let (c, h) = (client.clone(), hang_up.clone());
        std::thread::spawn(move || {
            c.stream(
                "/v1/chat/completions",
                &chat("Tell a long story.", 400),
                |_| !h.load(Ordering::Relaxed),
            )
            .unwrap()
        })
    };
    let wait_for = |what: &dyn Fn(&Value) -> bool| wait_for_health(&client, what);
    wait_for(&|h| h["queue"]["running"] == 1);
    // B waits in the queue.
    let b = {
        let c = client.clone();
        std::thread::spawn(move || c.post("/v1/chat/completions", &chat("Hi", 3)).unwrap())
    };
    wait_for(&|h| h["queue"]["waiting"] == 1);
    // C is refused at once, with a time to come back.
    let t = Instant::now();
    let (status, head, text) = post(
        server.addr(),
        "/v1/chat/completions",
        "",
        chat("Hi", 3).to_string().as_bytes(),
    );
    assert_eq!(status, 503, "{text}");
    assert!(t.elapsed() < Duration::from_secs(5));
    let retry: u64 = head
        .lines()
        .find_map(|l| l.strip_prefix("retry-after: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("a Retry-After header");
    assert!((1..=120).contains(&retry));
    assert!(text.contains("queue_full"));
    // A hangs up: its generation stops at the next token, and B is served.
    hang_up.store(true, Ordering::Relaxed);
    let a = a.join().unwrap();
    assert!(!a.saw_done && a.token_chunks < 400);
    let (status, answer) = b.join().unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(metric(&client, "nindub_cancelled_total"), 1.0);
    assert_eq!(metric(&client, "nindub_queue_rejected_total"), 1.0);
    // The cancelled generation's tokens were computed: they count too.
    let generated = metric(&client, "nindub_completion_tokens_total");
    assert!(
        generated >= 3.0 + a.token_chunks as f64,
        "{generated} tokens counted; B made 3 and A streamed {} before it hung up",
        a.token_chunks
    );
}

#[test]
fn the_time_limit_ends_a_request_with_503_timeout_error() {
    let server = start(|c| c.timeout = Duration::from_millis(1500));
    let client = Client::new(&server.url());
    let s = client
        .stream(
            "/v1/chat/completions",
            &chat("Tell a long story.", 800),
            |_| true,
        )
        .unwrap();
    assert_eq!(s.status, 200);
    let err = s.error.expect("an error event at the time limit");
    assert_eq!(err["error"]["type"], "timeout_error");
    assert!(s.total_secs < 10.0, "{}", s.total_secs);
    let (status, body) = client
        .post("/v1/chat/completions", &chat("Tell a long story.", 800))
        .unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["type"], "timeout_error", "{body}");
    assert_eq!(metric(&client, "nindub_timed_out_total"), 2.0);
}
