//! What the HTTP layer costs: time to first token and generation speed of
//! SmolLM2 in process (the Ritual), through `nindub serve` for 1, 2, 4 and 8
//! concurrent streamed clients, and through a peer server on the same GGUF
//! (llama-cpp-python's `python3 -m llama_cpp.server`) when it is installed.
//!
//! `cargo bench -p nindub --bench speaking_stone` prints the table; with
//! `NINDUB_BENCH_OUT=DIR` it also writes `DIR/serve.json` and
//! `DIR/clients.svg` (`-- --replot DIR` redraws the plot from the JSON).
//! The peer's Python is `NINDUB_PEER_PYTHON`, else
//! `~/.cache/codex/peers/venv/bin/python` (made, with the server's
//! dependencies, by `crates/nindub/tests/fixtures/regenerate-llama-cpp.sh`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use candle_core::Device;
use lab::plot::LineChart;
use nindub::assets;
use nindub::model::generate::{GenerateConfig, Generator};
use nindub::model::sample::SamplingConfig;
use nindub::serve::client::{Client, Round};
use nindub::serve::{ServeConfig, Server};
use serde_json::{Value, json};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Each request's prompt starts with its own number: a server that reuses
/// the previous request's KV cache for a common prefix (llama-cpp-python
/// does) must not skip the prefill a new client would need.
fn prompt(k: usize) -> String {
    format!("Story {k}. {PROMPT}")
}

const PROMPT: &str = "The old lighthouse keeper climbed the spiral stairs each evening, counting \
the steps as his father had taught him. At the top he trimmed the wick, polished the great lens, \
and watched the fishing boats come home through the fog. One night a small boat appeared without \
any lights, and";
const GEN_TOKENS: usize = 64;
const RUNS: usize = 3;
const CLIENTS: &[usize] = &[1, 2, 4, 8];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// (time to first token, tokens/s after it), timed exactly as a client
/// times a stream, around the Ritual's callback.
fn in_process(g: &mut Generator) -> Res<(f64, f64, usize)> {
    let cfg = GenerateConfig {
        sampling: SamplingConfig::greedy(),
        max_tokens: GEN_TOKENS,
        top_n: 0,
        ..Default::default()
    };
    let (mut ttft, mut tps, mut n) = (vec![], vec![], 0);
    for run in 0..=RUNS {
        let ids = g.tokenizer.encode(&prompt(run))?;
        let started = Instant::now();
        let (mut first, mut last, mut count) = (None, 0.0, 0usize);
        g.generate(&ids, &cfg, |_| {
            let now = started.elapsed().as_secs_f64();
            first.get_or_insert(now);
            last = now;
            count += 1;
            true
        })?;
        let first = first.ok_or("no token generated")?;
        if run > 0 {
            // run 0 warms the caches up
            ttft.push(first);
            tps.push((count - 1) as f64 / (last - first));
            n = count;
        }
    }
    Ok((median(ttft), median(tps), n))
}

/// One row per concurrency: the round with the median aggregate speed.
fn rounds(client: &Client, model: Option<&str>) -> Res<Vec<Round>> {
    let mut k = 0;
    let mut bodies = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|_| {
                k += 1;
                let mut body = json!({
                    "prompt": prompt(k), "max_tokens": GEN_TOKENS, "temperature": 0, "repeat_penalty": 1.0,
                });
                if let Some(m) = model {
                    body["model"] = json!(m);
                }
                body
            })
            .collect()
    };
    client.concurrent_each("/v1/completions", &bodies(1))?; // warm-up
    let mut rows = vec![];
    for &clients in CLIENTS {
        let mut runs = vec![];
        for _ in 0..if clients == 1 { RUNS } else { 1 } {
            let round = client.concurrent_each("/v1/completions", &bodies(clients))?;
            // Every client must get its whole answer: a server that cut a
            // stream short (llama-cpp-python interrupts the running request
            // when a new one arrives, unless told not to) would look fast.
            if let Some(bad) = round
                .streams
                .iter()
                .find(|s| s.status != 200 || !s.saw_done || s.token_chunks != GEN_TOKENS)
            {
                return Err(format!(
                    "a stream failed or was cut short: status {}, {} tokens, {:?}",
                    bad.status, bad.token_chunks, bad.error
                )
                .into());
            }
            runs.push(round);
        }
        runs.sort_by(|a, b| {
            a.aggregate_tokens_per_sec()
                .total_cmp(&b.aggregate_tokens_per_sec())
        });
        rows.push(runs.swap_remove(runs.len() / 2));
    }
    Ok(rows)
}

/// The peer server, if its Python has llama_cpp.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn peer_python() -> Option<PathBuf> {
    let py = std::env::var_os("NINDUB_PEER_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/codex/peers/venv/bin/python"))
        })?;
    let ok = Command::new(&py)
        .args(["-c", "import llama_cpp.server.app, uvicorn"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(py)
}

fn start_peer(py: &PathBuf, model: &std::path::Path) -> Res<(Peer, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(py)
        .args(["-m", "llama_cpp.server", "--model"])
        .arg(model)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--n_threads",
            &rayon::current_num_threads().to_string(),
            "--n_ctx",
            "2048",
        ])
        // Serve requests in turn, as nindub does (its default lets a new
        // request interrupt the one being generated).
        .args(["--interrupt_requests", "False"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let peer = Peer(child);
    let url = format!("http://127.0.0.1:{port}/");
    let client = Client::new(&url);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(120) {
        if client.get("/v1/models").is_ok_and(|(s, _)| s == 200) {
            return Ok((peer, url));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Err("llama_cpp.server did not answer within 120 s".into())
}

fn row_json(r: &Round) -> Value {
    json!({
        "clients": r.clients,
        "mean_ttft_s": r.mean_ttft_secs(),
        "mean_client_tokens_per_s": r.mean_tokens_per_sec(),
        "aggregate_tokens_per_s": r.aggregate_tokens_per_sec(),
        "tokens": r.tokens(),
        "wall_s": r.wall_secs,
    })
}

/// Draws `DIR/clients.svg` from the figures in `json` (serve.json).
fn plot(json: &Value, dir: &std::path::Path) -> Res<()> {
    let line = |rows: &Value, key: &str| -> Vec<(f64, f64)> {
        rows.as_array()
            .map(|rows| {
                rows.iter()
                    .filter_map(|r| Some((r["clients"].as_f64()?, r[key].as_f64()?)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut series = vec![];
    for (name, rows) in [
        ("nindub serve", &json["nindub_serve"]),
        ("llama_cpp.server", &json["llama_cpp_server"]),
    ] {
        if rows.is_array() {
            series.push((
                format!("{name}: aggregate"),
                line(rows, "aggregate_tokens_per_s"),
            ));
            series.push((
                format!("{name}: per client"),
                line(rows, "mean_client_tokens_per_s"),
            ));
        }
    }
    LineChart {
        title: "Tokens/s vs concurrent clients (one model, served in turn)".into(),
        x_desc: "concurrent streamed clients".into(),
        y_desc: "tokens/s".into(),
        series,
        reference: json["in_process"]["tokens_per_s"]
            .as_f64()
            .map(|t| ("nindub in process".to_string(), t)),
        log_x: true,
        log_y: false,
    }
    .draw()?
    .save(dir.join("clients.svg"))?;
    Ok(())
}

fn main() -> Res<()> {
    // `-- --replot DIR`: redraw DIR/clients.svg from DIR/serve.json.
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--replot") {
        let dir = PathBuf::from(args.get(i + 1).ok_or("--replot DIR")?);
        let json: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("serve.json"))?)?;
        return plot(&json, &dir);
    }
    let model = assets::smollm2()?;
    let threads = rayon::current_num_threads();
    println!(
        "The Speaking Stone: SmolLM2-135M Q4_1, {} prompt tokens (each request its own), {GEN_TOKENS} generated (greedy), {threads} threads, streamed completions over loopback",
        {
            let g = Generator::load(&model, &Device::Cpu)?;
            g.tokenizer.encode(&prompt(1))?.len()
        }
    );
    println!(
        "time to first token = from sending to the first token chunk; tokens/s = after the first token, per client; aggregate = all clients' tokens / wall time\n"
    );

    let mut g = Generator::load(&model, &Device::Cpu)?;
    let (ttft, tps, n) = in_process(&mut g)?;
    drop(g);
    println!(
        "{:<34} {:>8} {:>12} {:>14} {:>12}",
        "engine", "clients", "TTFT (ms)", "tokens/s each", "aggregate"
    );
    println!(
        "{:<34} {:>8} {:>12.0} {:>14.1} {:>12.1}",
        "nindub in process (the Ritual)",
        1,
        ttft * 1e3,
        tps,
        tps
    );

    let mut cfg = ServeConfig::new("smollm2");
    cfg.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.queue = 16;
    let server = Server::start(Generator::load(&model, &Device::Cpu)?, cfg)?;
    let ours = rounds(&Client::new(&server.url()), Some("smollm2"))?;
    drop(server);
    for r in &ours {
        println!(
            "{:<34} {:>8} {:>12.0} {:>14.1} {:>12.1}",
            "nindub serve (HTTP, SSE)",
            r.clients,
            r.mean_ttft_secs() * 1e3,
            r.mean_tokens_per_sec(),
            r.aggregate_tokens_per_sec()
        );
    }
    let peer = match peer_python() {
        None => {
            println!(
                "{:<34} not installed (crates/nindub/tests/fixtures/regenerate-llama-cpp.sh builds it)",
                "llama_cpp.server"
            );
            None
        }
        Some(py) => {
            let (proc_, url) = start_peer(&py, &model)?;
            let rows = rounds(&Client::new(&url), None)?;
            drop(proc_);
            for r in &rows {
                println!(
                    "{:<34} {:>8} {:>12.0} {:>14.1} {:>12.1}",
                    "llama-cpp-python llama_cpp.server",
                    r.clients,
                    r.mean_ttft_secs() * 1e3,
                    r.mean_tokens_per_sec(),
                    r.aggregate_tokens_per_sec()
                );
            }
            Some(rows)
        }
    };
    let one = &ours[0];
    let cost = 1.0 - one.mean_tokens_per_sec() / tps;
    println!(
        "\nthe HTTP layer, one client: {:+.1} % tokens/s ({} than in process; goal: under 5 % slower), time to first token {:+.0} ms",
        -cost * 100.0,
        if cost > 0.0 { "slower" } else { "not slower" },
        (one.mean_ttft_secs() - ttft) * 1e3
    );
    println!(
        "in-process generated {n} tokens per run; HTTP streams {} tokens per client",
        one.tokens() / one.clients.max(1)
    );

    if let Some(dir) = std::env::var_os("NINDUB_BENCH_OUT").map(PathBuf::from) {
        std::fs::create_dir_all(&dir)?;
        let json = json!({
            "prompt_tokens_note": "see the first line of serve.txt",
            "generated_tokens": GEN_TOKENS,
            "threads": threads,
            "in_process": { "ttft_s": ttft, "tokens_per_s": tps },
            "nindub_serve": ours.iter().map(row_json).collect::<Vec<_>>(),
            "llama_cpp_server": peer.as_ref().map(|rows| rows.iter().map(row_json).collect::<Vec<_>>()),
        });
        std::fs::write(dir.join("serve.json"), serde_json::to_string_pretty(&json)?)?;
        plot(&json, &dir)?;
    }
    Ok(())
}
