//! Generates the Results of "The Speaking Stone" into a directory:
//! `cargo run -p lab --bin results -- run speaking_stone book/src/generated/speaking-stone`
//! (or `cargo codex results`). It starts real servers on loopback ports and
//! records real exchanges with them: the bytes on the wire, the JSON, the
//! refusals. Greedy decoding and a fresh server make every byte
//! reproducible, except the `created` field (the Unix time), shown as 0.

use super::{Figures, write};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use candle_core::Device;
use nindub::assets;
use nindub::model::generate::Generator;
use nindub::serve::client::Client;
use nindub::serve::{ServeConfig, Server};
use serde_json::{Value, json};

const MODEL: &str = "SmolLM2-135M-Instruct.Q4_1";

/// Writes the chapter's results into `out`.
pub fn generate(out: &Path) -> Result<()> {
    let out = out.to_path_buf();
    back_pressure(&out)?;
    let server = start(|_| {})?;
    let mut figs = Figures::default();
    exchanges(&server, &out, &mut figs)?;
    figs.write(&out)?;
    refusals(&server, &out)?;
    keyed(&out)?;
    counters(&server, &out)?;
    hostile_http(&out)?;
    println!("speaking_stone: wrote results to {}", out.display());
    Ok(())
}

fn start(edit: impl FnOnce(&mut ServeConfig)) -> Result<Server> {
    let mut cfg = ServeConfig::new(MODEL);
    cfg.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    edit(&mut cfg);
    Ok(Server::start(
        Generator::load(&assets::smollm2()?, &Device::Cpu)?,
        cfg,
    )?)
}

/// `"created":1795…` → `"created":0`, the one field that is the clock.
fn unclocked(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("\"created\":") {
        let (head, tail) = rest.split_at(i + "\"created\":".len());
        out.push_str(head);
        let tail = tail.trim_start();
        let digits = tail.len() - tail.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        out.push('0');
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}

/// One raw HTTP/1.1 exchange, returned as the text on the wire
/// (response headers without `date`).
fn wire(addr: SocketAddr, method: &str, path: &str, headers: &str, body: &str) -> Result<String> {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}{}\r\n{body}",
        if body.is_empty() {
            String::new()
        } else {
            format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            )
        }
    );
    on_the_wire(addr, &request)
}

/// Sends `request` as it is and returns request and response as text.
fn on_the_wire(addr: SocketAddr, request: &str) -> Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(300)))?;
    s.write_all(request.as_bytes())?;
    let mut bytes = vec![];
    s.read_to_end(&mut bytes)?;
    let response = String::from_utf8(bytes)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("a response without a head")?;
    let head: Vec<&str> = head
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("date:"))
        .collect();
    let shown_request = request.replace(&addr.to_string(), "127.0.0.1:8080");
    Ok(unclocked(&format!(
        "{}\n{}\n\n{}",
        shown_request.replace("\r\n", "\n"),
        head.join("\n"),
        dechunk(&head, body)
    )))
}

/// A chunked body's payload (streams are sent in HTTP/1.1 chunks).
fn dechunk(head: &[&str], body: &str) -> String {
    if !head
        .iter()
        .any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked"))
    {
        return body.to_string();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

fn pretty(v: &Value) -> String {
    unclocked(&serde_json::to_string_pretty(v).unwrap_or_default())
}

/// The routes, plain and streamed, as the wire carries them.
fn exchanges(server: &Server, out: &Path, figs: &mut Figures) -> Result<()> {
    let a = server.addr();
    write(out, "models.txt", &wire(a, "GET", "/v1/models", "", "")?)?;
    write(out, "health.txt", &wire(a, "GET", "/health", "", "")?)?;

    let completion = json!({
        "model": MODEL, "prompt": "The capital of France is",
        "max_tokens": 6, "temperature": 0, "logprobs": 2,
    });
    let client = Client::new(&server.url());
    let (status, answer) = client.post("/v1/completions", &completion)?;
    ensure!(status == 200, "completion: {status} {answer}");
    write(
        out,
        "completion.md",
        &format!(
            "```console\n$ curl -s http://127.0.0.1:8080/v1/completions -H 'Content-Type: application/json' -d '{completion}'\n```\n\n```json\n{}\n```\n",
            pretty(&answer)
        ),
    )?;

    let chat = json!({
        "model": MODEL,
        "messages": [{ "role": "user", "content": "What is the capital of France?" }],
        "max_tokens": 4, "temperature": 0, "stream": true,
        "logprobs": true, "top_logprobs": 2,
        "stream_options": { "include_usage": true },
    });
    write(
        out,
        "stream.txt",
        &wire(a, "POST", "/v1/chat/completions", "", &chat.to_string())?,
    )?;
    // The same request whole: the first token and its rival, as figures.
    let mut whole = chat.clone();
    whole["stream"] = json!(false);
    whole.as_object_mut().map(|o| o.remove("stream_options"));
    let (status, answer) = client.post("/v1/chat/completions", &whole)?;
    ensure!(status == 200, "chat: {status} {answer}");
    let top = &answer["choices"][0]["logprobs"]["content"][0]["top_logprobs"];
    for (k, name) in ["first", "second"].iter().enumerate() {
        let (token, logprob) = (top[k]["token"].as_str(), top[k]["logprob"].as_f64());
        let (Some(token), Some(logprob)) = (token, logprob) else {
            anyhow::bail!("the chat answer has no candidate {k}: {answer}");
        };
        figs.text(&format!("stone.chat.{name}.token"), &format!("`{token}`"));
        figs.number(&format!("stone.chat.{name}.logprob"), logprob, 2, "");
        figs.number(&format!("stone.chat.{name}.p"), logprob.exp(), 3, "");
    }
    Ok(())
}

/// Bad requests and what the client reads back.
fn refusals(server: &Server, out: &Path) -> Result<()> {
    let client = Client::new(&server.url());
    let cases: &[(&str, &str, &str)] = &[
        ("malformed JSON", "/v1/completions", "{\"prompt\": \"Hi\""),
        (
            "a wrong type",
            "/v1/completions",
            r#"{"prompt": "Hi", "temperature": "hot"}"#,
        ),
        (
            "out of range",
            "/v1/completions",
            r#"{"prompt": "Hi", "top_p": 1.5}"#,
        ),
        ("an empty prompt", "/v1/completions", r#"{"prompt": ""}"#),
        (
            "an unknown model",
            "/v1/completions",
            r#"{"model": "gpt-9", "prompt": "Hi"}"#,
        ),
        (
            "too many tokens",
            "/v1/completions",
            r#"{"prompt": "Hi", "max_tokens": 100000}"#,
        ),
        (
            "a role the template does not know",
            "/v1/chat/completions",
            r#"{"messages": [{"role": "wizard", "content": "Hi"}]}"#,
        ),
        (
            "more samples than the server runs at once",
            "/v1/chat/completions",
            r#"{"messages": [{"role": "user", "content": "Hi"}], "n": 99}"#,
        ),
    ];
    let mut md = String::from("| request | body | status | error message |\n|---|---|---|---|\n");
    for (what, path, body) in cases {
        let (status, v) = client.post_raw(path, body.as_bytes())?;
        ensure!((400..500).contains(&status), "{what}: {status}");
        md.push_str(&format!(
            "| {what} | `{}` | {status} | {} |\n",
            body.replace('|', "\\|"),
            v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .replace('|', "\\|")
        ));
    }
    write(out, "refusals.md", &md)
}

/// A server with a key: without it, and with it.
fn keyed(out: &Path) -> Result<()> {
    let server = start(|c| c.api_key = Some("s3cret".into()))?;
    let a = server.addr();
    let text = format!(
        "{}\n\n{}",
        wire(a, "GET", "/v1/models", "", "")?,
        wire(
            a,
            "GET",
            "/v1/models",
            "Authorization: Bearer s3cret\r\n",
            ""
        )?
    );
    write(out, "api-key.txt", &text)
}

/// A queue of one: a request running, one waiting, the third refused.
fn back_pressure(out: &Path) -> Result<()> {
    let server = start(|c| {
        c.queue = 1;
        c.parallel = 1;
    })?;
    let client = Client::new(&server.url());
    let long = json!({ "prompt": "Once upon a time", "max_tokens": 200, "temperature": 0 });
    let wait_for = |key: &str| -> Result<()> {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(60) {
            if client.get("/health")?.1["queue"][key] == 1 {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        anyhow::bail!("the queue never had one {key}")
    };
    // Both clients hang up once the refusal is recorded.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hang_up = |c: Client, d: std::sync::Arc<std::sync::atomic::AtomicBool>, body: Value| {
        std::thread::spawn(move || {
            c.stream("/v1/completions", &body, |_| {
                !d.load(std::sync::atomic::Ordering::Relaxed)
            })
        })
    };
    let running = hang_up(client.clone(), done.clone(), long.clone());
    wait_for("running")?;
    let waiting = hang_up(client.clone(), done.clone(), long.clone());
    wait_for("waiting")?;
    let health = wire(server.addr(), "GET", "/health", "", "")?;
    let refused = wire(
        server.addr(),
        "POST",
        "/v1/completions",
        "",
        &long.to_string(),
    )?;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = running.join();
    let _ = waiting.join();
    write(out, "queue-full.txt", &format!("{health}\n\n{refused}"))
}

/// The counters of /metrics after the exchanges above (the histograms'
/// sums are timings, left to the benchmark).
fn counters(server: &Server, out: &Path) -> Result<()> {
    let (_, text) = Client::new(&server.url()).get("/metrics")?;
    let text = text.as_str().context("metrics are text")?;
    // Series in a stable order (a labelled family is a hash map).
    let mut kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.contains("duration"))
        .filter(|l| l.contains("_total") || l.contains("_count ") || l.starts_with("nindub_queue"))
        .collect();
    kept.sort();
    write(
        out,
        "metrics.txt",
        &format!(
            "$ curl -s http://127.0.0.1:8080/metrics   # (counters and gauges)\n{}\n",
            kept.join("\n")
        ),
    )
}

/// Whether the server closes `s` (EOF or reset) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> Result<bool> {
    s.set_read_timeout(Some(within))?;
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(false);
            }
            Err(_) => return Ok(true),
        }
    }
}

// ANCHOR: hostile
/// A hostile but fair client: idle and slow connections, one connection
/// too many, a rebound host name, a cross-site form post. The server runs
/// with a 1 s header timeout and room for 4 connections.
fn hostile_http(out: &Path) -> Result<()> {
    use std::fmt::Write as _;
    let server = start(|c| {
        c.header_timeout = Duration::from_secs(1);
        c.max_connections = 4;
    })?;
    let a = server.addr();
    let mut md = String::new();
    let mut idle = TcpStream::connect(a)?;
    let mut slow = TcpStream::connect(a)?;
    slow.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")?;
    let trickle = {
        let mut s = slow.try_clone()?;
        std::thread::spawn(move || {
            for _ in 0..15 {
                if s.write_all(b"a").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let yes = |b: bool| if b { "yes" } else { "NO" };
    writeln!(
        md,
        "- a connection that sends nothing, closed by the server within 3 s: {}",
        yes(closed_within(&mut idle, Duration::from_secs(3))?)
    )?;
    writeln!(
        md,
        "- a connection that sends a header byte every 200 ms (slowloris), closed within 3 s: {}",
        yes(closed_within(&mut slow, Duration::from_secs(3))?)
    )?;
    let _ = trickle.join();
    let held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(a))
        .collect::<std::io::Result<_>>()?;
    std::thread::sleep(Duration::from_millis(300));
    let one_more = on_the_wire(
        a,
        "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )?;
    // The held ones send nothing: the header timeout closes them.
    let waited = std::time::Instant::now();
    let after = loop {
        let status = Client::new(&server.url()).get("/health")?.0;
        if status == 200 || waited.elapsed() > Duration::from_secs(10) {
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(held);
    writeln!(
        md,
        "- with 4 idle connections held, a fifth is answered at once:\n\n```http\n{}\n```\n",
        one_more.trim_end()
    )?;
    writeln!(
        md,
        "- once the header timeout has closed the idle ones, `/health` answers {after}\n"
    )?;
    let rebound = on_the_wire(
        a,
        "GET /v1/models HTTP/1.1\r\nHost: evil.example:8080\r\nConnection: close\r\n\r\n",
    )?;
    writeln!(
        md,
        "A page whose name was rebound to 127.0.0.1:\n\n```http\n{}\n```\n",
        rebound.trim_end()
    )?;
    let body = r#"{"prompt": "Hi", "max_tokens": 1}"#;
    let form = on_the_wire(
        a,
        &format!(
            "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )?;
    writeln!(
        md,
        "A cross-site `text/plain` post (no preflight needed):\n\n```http\n{}\n```",
        form.trim_end()
    )?;
    write(
        out,
        "hostile-http.md",
        &md.replace(&a.to_string(), "127.0.0.1:8080"),
    )
}
// ANCHOR_END: hostile
