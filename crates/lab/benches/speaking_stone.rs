//! What the HTTP layer costs and what batching buys: the fused engine's
//! step time for batches of 1 to 16 sequences (in process), then time to
//! first token, inter-token latency, per-client and aggregate speed and
//! peak memory of SmolLM2 through `nindub serve` for 1, 2, 4, 8 and 16
//! concurrent streamed clients, served in turn (`parallel = 1`) and batched
//! (`parallel = 16`), and through two peer servers on the same GGUF when
//! they are built: llama.cpp's own `llama-server` with 16 parallel slots
//! (continuous batching, as nindub's batched server) and llama-cpp-python's
//! `python3 -m llama_cpp.server` (requests in turn).
//!
//! `cargo bench -p nindub --bench speaking_stone` prints the table; with
//! `NINDUB_BENCH_OUT=DIR` it also writes `DIR/serve.json` and
//! `DIR/clients.svg` (`-- --replot DIR` redraws the plot from the JSON).
//! The peer's Python is `NINDUB_PEER_PYTHON`, else
//! `~/.cache/codex/peers/venv/bin/python` (made, with the server's
//! dependencies, by `crates/nindub/tests/fixtures/regenerate-llama-cpp.sh`);
//! `llama-server` is where `crates/nindub/tests/fixtures/build-llama-cpp.sh`
//! builds it ([`nindub::peers::llama_cpp_tool`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use candle_core::Device;
use lab::plot::LineChart;
use nindub::assets;
use nindub::model::generate::{GenerateConfig, Generator};
use nindub::model::sample::SamplingConfig;
use nindub::serve::PASS_ROWS as DEFAULT_ROWS;
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
const CLIENTS: &[usize] = &[1, 2, 4, 8, 16];
const BATCHES: &[usize] = &[1, 2, 4, 8, 16];
/// Rows a batched pass may hold, besides the default
/// (`nindub::serve::PASS_ROWS`).
const PASS_ROWS: &[usize] = &[16, 64];

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

/// One row per concurrency: the round with the median aggregate speed,
/// and the server's peak resident memory over its rounds: this process's
/// (nindub's server runs in it) or the peer's (`pid`); `None` where the peak
/// cannot be reset.
fn rounds(
    client: &Client,
    model: Option<&str>,
    pid: Option<u32>,
    counts: &[usize],
) -> Res<Vec<(Round, Option<u64>)>> {
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
    for &clients in counts {
        let reset = match pid {
            None => nindub::process::reset_peak(),
            Some(pid) => nindub::process::reset_peak_of(pid),
        };
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
        let peak = match pid {
            None => nindub::process::rss(),
            Some(pid) => nindub::process::rss_of(pid),
        }
        .filter(|_| reset)
        .map(|(_, peak)| peak);
        rows.push((runs.swap_remove(runs.len() / 2), peak));
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
    ready(Peer(child), port, "llama_cpp.server")
}

/// llama.cpp's own server with `slots` parallel slots (continuous
/// batching), each slot a context of 256 positions, on this bench's threads.
fn start_llama_server(
    bin: &std::path::Path,
    model: &std::path::Path,
    slots: usize,
) -> Res<(Peer, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let threads = rayon::current_num_threads().to_string();
    let child = Command::new(bin)
        .arg("-m")
        .arg(model)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["-t", &threads, "-tb", &threads])
        .args(["-np", &slots.to_string(), "-c", &(slots * 256).to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    ready(Peer(child), port, "llama-server")
}

/// Waits until the peer answers `/v1/models`.
fn ready(peer: Peer, port: u16, name: &str) -> Res<(Peer, String)> {
    let url = format!("http://127.0.0.1:{port}/");
    let client = Client::new(&url);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(120) {
        if client.get("/v1/models").is_ok_and(|(s, _)| s == 200) {
            return Ok((peer, url));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Err(format!("{name} did not answer within 120 s").into())
}

fn row_json((r, peak): &(Round, Option<u64>)) -> Value {
    json!({
        "clients": r.clients,
        "mean_ttft_s": r.mean_ttft_secs(),
        "ttft_p50_s": r.ttft_quantile(0.5),
        "ttft_p95_s": r.ttft_quantile(0.95),
        "itl_p95_s": r.inter_token_quantile(0.95),
        "mean_client_tokens_per_s": r.mean_tokens_per_sec(),
        "aggregate_tokens_per_s": r.aggregate_tokens_per_sec(),
        "peak_rss_bytes": peak,
        "tokens": r.tokens(),
        "wall_s": r.wall_secs,
    })
}

fn print_row(name: &str, (r, peak): &(Round, Option<u64>)) {
    println!(
        "{:<30} {:>7} {:>9.1} {:>9.1} {:>9.0} {:>9.0} {:>8.0} {:>9}",
        name,
        r.clients,
        r.aggregate_tokens_per_sec(),
        r.mean_tokens_per_sec(),
        r.ttft_quantile(0.5) * 1e3,
        r.ttft_quantile(0.95) * 1e3,
        r.inter_token_quantile(0.95) * 1e3,
        peak.map_or("-".to_string(), |p| format!("{:.0}", p as f64 / 1e6)),
    );
}

/// The fused engine's decode step for a batch of `b` sequences (each after
/// its own prompt): (ms per step, tokens/s for the batch). The weights are
/// read once per step whatever `b`; the arithmetic grows with it.
fn engine_batch(model: &std::path::Path, b: usize) -> Res<(f64, f64)> {
    use nindub::model::fused::{BatchItem, FusedLlama};
    let file = nindub::model::gguf::GgufFile::open(model)?;
    let mut m = FusedLlama::with_budget(&file, None, 256)?;
    let g = Generator::load(model, &Device::Cpu)?;
    let mut caches: Vec<_> = (0..b).map(|_| m.new_cache(200)).collect();
    for (k, c) in caches.iter_mut().enumerate() {
        let ids = g.tokenizer.encode(&prompt(k))?;
        m.forward_batch(&mut [BatchItem {
            cache: c,
            tokens: &ids,
        }])?;
    }
    let steps = 32;
    let token = [g.tokenizer.encode(" and")?[0]];
    let started = Instant::now();
    for _ in 0..steps {
        let mut items: Vec<_> = caches
            .iter_mut()
            .map(|c| BatchItem {
                cache: c,
                tokens: &token,
            })
            .collect();
        std::hint::black_box(m.forward_batch(&mut items)?);
    }
    let secs = started.elapsed().as_secs_f64() / steps as f64;
    Ok((secs * 1e3, b as f64 / secs))
}

/// A server's rounds: each with the peak resident memory over it.
type Rows = Vec<(Round, Option<u64>)>;

/// One request for `n` samples of one prompt, streamed.
struct Samples {
    n: usize,
    tokens: usize,
    secs: f64,
    ttft_secs: f64,
}

/// Asks for `n` samples in one request: the prompt runs once, the samples
/// decode together.
fn samples(client: &Client, n: usize) -> Res<Samples> {
    let body = json!({
        "model": "smollm2", "prompt": prompt(0), "max_tokens": GEN_TOKENS,
        "temperature": 0.9, "seed": 1, "n": n,
    });
    let stats = client.stream("/v1/completions", &body, |_| true)?;
    if stats.status != 200 || !stats.saw_done {
        return Err(format!("{n} samples: status {}, {:?}", stats.status, stats.error).into());
    }
    Ok(Samples {
        n,
        tokens: stats.token_chunks,
        secs: stats.total_secs,
        ttft_secs: stats.ttft_secs.unwrap_or(f64::NAN),
    })
}

/// The fused engine's prompt rate as the server meets it: `clients`
/// prompts, each run in one pass (the server's chunk holds a whole one):
/// (prompt tokens in all, ms, tokens/s). The last of `clients` arriving
/// together cannot see its first token before all of them have run.
fn engine_prompts(model: &std::path::Path, clients: usize) -> Res<(usize, f64, f64)> {
    use nindub::model::fused::{BatchItem, FusedLlama};
    let file = nindub::model::gguf::GgufFile::open(model)?;
    let mut m = FusedLlama::with_budget(&file, None, 256)?;
    let g = Generator::load(model, &Device::Cpu)?;
    let prompts: Vec<Vec<u32>> = (0..clients)
        .map(|k| g.tokenizer.encode(&prompt(k)))
        .collect::<Result<_, _>>()?;
    let tokens: usize = prompts.iter().map(Vec::len).sum();
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let mut caches: Vec<_> = (0..clients).map(|_| m.new_cache(200)).collect();
        let started = Instant::now();
        for (ids, c) in prompts.iter().zip(&mut caches) {
            std::hint::black_box(m.forward_batch(&mut [BatchItem {
                cache: c,
                tokens: ids,
            }])?);
        }
        best = best.min(started.elapsed().as_secs_f64());
    }
    Ok((tokens, best * 1e3, tokens as f64 / best))
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
        ("nindub serve, batched", &json["nindub_batched"]),
        ("nindub serve, in turn", &json["nindub_serve"]),
        ("llama-server -np 16", &json["llama_server"]),
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
        title: "Tokens/s vs concurrent clients: batched and served in turn".into(),
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

    {
        let file = nindub::model::gguf::GgufFile::open(&model)?;
        let m = nindub::model::fused::FusedLlama::with_budget(&file, None, 16)?;
        let kv = |n: usize| nindub::model::kv_cache::kv_bytes(&m.arch, n);
        let g = Generator::load(&model, &Device::Cpu)?;
        let positions = g.tokenizer.encode(&prompt(1))?.len() + GEN_TOKENS;
        println!(
            "KV cache: {} bytes a position; a request of {positions} positions reserves {:.1} MB, one of 1024 {:.1} MB; weights read a token: {:.1} MB",
            kv(1),
            kv(positions) as f64 / 1e6,
            kv(1024) as f64 / 1e6,
            m.bytes_per_token() as f64 / 1e6
        );
    }
    println!("the fused engine, in process: one decode step for a batch of sequences");
    println!(
        "{:>6} {:>12} {:>16}",
        "batch", "ms / step", "tokens/s (all)"
    );
    let mut batches = vec![];
    for &b in BATCHES {
        let (ms, tps) = engine_batch(&model, b)?;
        println!("{b:>6} {ms:>12.2} {tps:>16.1}");
        batches.push(json!({ "batch": b, "ms_per_step": ms, "tokens_per_s": tps }));
    }
    println!();
    let (prompt_tokens, prompt_ms, prompt_tps) = engine_prompts(&model, 8)?;
    println!(
        "the prompts, in process: 8 prompts, {prompt_tokens} tokens in {prompt_ms:.0} ms = {prompt_tps:.1} tokens/s, best of three rounds: the last of eight clients arriving together waits at least this long for its first token"
    );
    println!();
    // `-- --engine`: the engine's table alone (seconds, not minutes).
    if args.iter().any(|a| a == "--engine") {
        return Ok(());
    }

    let mut g = Generator::load(&model, &Device::Cpu)?;
    let (ttft, tps, n) = in_process(&mut g)?;
    drop(g);
    println!(
        "{:<30} {:>7} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9}",
        "engine", "clients", "agg t/s", "each t/s", "TTFT p50", "TTFT p95", "ITL p95", "peak MB"
    );
    println!(
        "{:<30} {:>7} {:>9.1} {:>9.1} {:>9.0} {:>9} {:>8} {:>9}",
        "nindub in process (Ritual)",
        1,
        tps,
        tps,
        ttft * 1e3,
        "-",
        "-",
        "-"
    );
    let serve =
        |parallel: usize, pass_rows: usize, counts: &[usize]| -> Res<(Rows, Option<Samples>)> {
            let mut cfg = ServeConfig::new("smollm2");
            cfg.addr = SocketAddr::from(([127, 0, 0, 1], 0));
            cfg.queue = 16;
            cfg.parallel = parallel;
            cfg.pass_rows = pass_rows;
            let server = Server::start(Generator::load(&model, &Device::Cpu)?, cfg)?;
            let client = Client::new(&server.url());
            let rows = rounds(&client, Some("smollm2"), None, counts)?;
            let samples = if parallel >= 8 && counts == CLIENTS && pass_rows == DEFAULT_ROWS {
                Some(samples(&client, 8)?)
            } else {
                None
            };
            drop(server);
            Ok((rows, samples))
        };
    let (ours, _) = serve(1, DEFAULT_ROWS, CLIENTS)?;
    for r in &ours {
        print_row("nindub serve, in turn", r);
    }
    let (batched, samples) = serve(16, DEFAULT_ROWS, CLIENTS)?;
    for r in &batched {
        print_row("nindub serve, batched (16)", r);
    }
    // Chunked prefill's trade: fewer rows a pass, at eight clients.
    let mut by_rows = vec![];
    for rows in PASS_ROWS {
        let (mut r, _) = serve(16, *rows, &[8])?;
        // Not its own process: the memory the earlier servers' allocator
        // kept would read as this server's peak.
        r[0].1 = None;
        print_row(&format!("batched, {rows}-row passes"), &r[0]);
        by_rows.push((*rows, r));
    }
    let peer = match peer_python() {
        None => {
            println!(
                "{:<30} not installed (crates/nindub/tests/fixtures/regenerate-llama-cpp.sh builds it)",
                "llama_cpp.server"
            );
            None
        }
        Some(py) => {
            let (proc_, url) = start_peer(&py, &model)?;
            let rows = rounds(&Client::new(&url), None, Some(proc_.0.id()), CLIENTS)?;
            drop(proc_);
            for r in &rows {
                print_row("llama-cpp-python server", r);
            }
            Some(rows)
        }
    };
    let llama_server = match nindub::peers::llama_cpp_tool("llama-server") {
        None => {
            println!(
                "{:<30} not built (crates/nindub/tests/fixtures/build-llama-cpp.sh builds it)",
                "llama-server -np 16"
            );
            None
        }
        Some(bin) => {
            let (proc_, url) = start_llama_server(&bin, &model, 16)?;
            let rows = rounds(&Client::new(&url), None, Some(proc_.0.id()), CLIENTS)?;
            drop(proc_);
            for r in &rows {
                print_row("llama-server -np 16", r);
            }
            Some(rows)
        }
    };
    let one = &batched[0].0;
    let cost = 1.0 - one.mean_tokens_per_sec() / tps;
    println!(
        "\nTTFT p50/p95, ITL p95 (inter-token latency) in ms; peak MB = the process's peak resident memory over the rounds (the server runs in it)"
    );
    println!(
        "the HTTP layer, one client: {:+.1} % tokens/s ({} than in process; goal: under 5 % slower), time to first token {:+.0} ms",
        -cost * 100.0,
        if cost > 0.0 { "slower" } else { "not slower" },
        (one.mean_ttft_secs() - ttft) * 1e3
    );
    let at = |rows: &[(Round, Option<u64>)], c: usize| {
        rows.iter()
            .find(|(r, _)| r.clients == c)
            .map_or(0.0, |(r, _)| r.aggregate_tokens_per_sec())
    };
    println!(
        "8 clients: batched {:.1} tokens/s in all, {:.2}x the {:.1} tokens/s served in turn; goal: at least 2x",
        at(&batched, 8),
        at(&batched, 8) / at(&ours, 8).max(1e-9),
        at(&ours, 8)
    );
    // What the engine alone allows eight clients arriving together: their
    // prompts, then one token each per step of a batch of eight (the first
    // token comes with the prompt). Nothing of the server is in it.
    let b8 = batches
        .iter()
        .find(|b| b["batch"] == 8)
        .and_then(|b| b["ms_per_step"].as_f64())
        .unwrap_or(f64::NAN);
    let steps = GEN_TOKENS - 1;
    let bound_secs = (prompt_ms + steps as f64 * b8) / 1e3;
    let bound_tps = (8 * GEN_TOKENS) as f64 / bound_secs;
    println!(
        "8 clients, the engine's bound: their prompts in {prompt_ms:.0} ms, then {steps} steps of {b8:.2} ms (the batch of eight) = {bound_secs:.2} s for {} tokens: {bound_tps:.1} tokens/s, {:.2}x the tokens/s served in turn",
        8 * GEN_TOKENS,
        bound_tps / at(&ours, 8).max(1e-9)
    );
    if let Some(rows) = &llama_server {
        println!(
            "8 clients: batched {:.1} tokens/s in all, {:.2}x llama-server's {:.1} with 16 slots; goal: at least 1x",
            at(&batched, 8),
            at(&batched, 8) / at(rows, 8).max(1e-9),
            at(rows, 8)
        );
    }
    if let Some(s) = &samples {
        println!(
            "one request for {} samples, batched: {} tokens in {:.2} s = {:.1} tokens/s in all; first token after {:.0} ms, the prompt run once (sampled at temperature 0.9)",
            s.n,
            s.tokens,
            s.secs,
            s.tokens as f64 / s.secs,
            s.ttft_secs * 1e3
        );
    }
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
            "samples": samples.as_ref().map(|s| json!({ "n": s.n, "tokens": s.tokens, "secs": s.secs, "ttft_s": s.ttft_secs })),
            "engine_batches": batches,
            "engine_prompts": { "prompts": 8, "tokens": prompt_tokens, "ms": prompt_ms, "tokens_per_s": prompt_tps },
            "in_process": { "ttft_s": ttft, "tokens_per_s": tps },
            "nindub_serve": ours.iter().map(row_json).collect::<Vec<_>>(),
            "nindub_batched": batched.iter().map(row_json).collect::<Vec<_>>(),
            "nindub_batched_pass_rows": by_rows.iter().map(|(rows, r)| json!({ "pass_rows": rows, "rounds": r.iter().map(row_json).collect::<Vec<_>>() })).collect::<Vec<_>>(),
            "llama_cpp_server": peer.as_ref().map(|rows| rows.iter().map(row_json).collect::<Vec<_>>()),
            "llama_server": llama_server.as_ref().map(|rows| rows.iter().map(row_json).collect::<Vec<_>>()),
        });
        std::fs::write(dir.join("serve.json"), serde_json::to_string_pretty(&json)?)?;
        plot(&json, &dir)?;
    }
    Ok(())
}
