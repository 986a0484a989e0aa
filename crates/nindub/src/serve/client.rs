//! A small blocking client for the Speaking Stone (or any OpenAI-style
//! server): plain JSON calls and a streamed call that times the first token
//! and the rest. The integration tests, the benchmark and the notebook use
//! it; the `openai` Python package is the independent client.

use std::io::Read;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::sse::Parser;
use crate::error::{Error, Result};

/// A client of one server.
#[derive(Clone)]
pub struct Client {
    base: String,
    key: Option<String>,
    agent: ureq::Agent,
}

/// What a streamed call saw.
#[derive(Debug, Clone, Default)]
pub struct StreamStats {
    pub status: u16,
    /// The `data` payloads before `[DONE]`, parsed.
    pub chunks: Vec<Value>,
    /// The text of every chunk, concatenated.
    pub text: String,
    /// Seconds from sending to the first chunk carrying a token.
    pub ttft_secs: Option<f64>,
    /// Seconds from sending to the end of the stream.
    pub total_secs: f64,
    /// Chunks that carried a token.
    pub token_chunks: usize,
    /// Seconds between the first and the last token chunk.
    pub token_span_secs: f64,
    /// Seconds from sending to each token chunk.
    pub token_times: Vec<f64>,
    pub saw_done: bool,
    /// The error body, when the server refused.
    pub error: Option<Value>,
}

impl StreamStats {
    /// Tokens per second after the first (each one a forward pass).
    pub fn tokens_per_sec(&self) -> f64 {
        (self.token_chunks.saturating_sub(1)) as f64 / self.token_span_secs.max(1e-9)
    }
}

fn transport(url: &str, e: impl std::fmt::Display) -> Error {
    Error::io(url, std::io::Error::other(e.to_string()))
}

impl Client {
    /// `base` like `http://127.0.0.1:8080/`.
    pub fn new(base: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(600)))
            .build()
            .into();
        Client {
            base: base.trim_end_matches('/').to_string(),
            key: None,
            agent,
        }
    }

    /// Sends `Authorization: Bearer KEY` from now on.
    pub fn with_key(mut self, key: &str) -> Self {
        self.key = Some(key.to_string());
        self
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// The key, when there is one.
    fn authorized<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.key {
            Some(k) => req.header("Authorization", &format!("Bearer {k}")),
            None => req,
        }
    }

    /// POSTs `body` as JSON.
    fn send(&self, url: &str, body: &[u8]) -> Result<ureq::http::Response<ureq::Body>> {
        self.authorized(self.agent.post(url))
            .header("Content-Type", "application/json")
            .send(body)
            .map_err(|e| transport(url, e))
    }

    /// GET, returning the status and the body as JSON (or as a JSON string
    /// when it is not JSON).
    pub fn get(&self, path: &str) -> Result<(u16, Value)> {
        let url = self.url(path);
        let resp = self
            .authorized(self.agent.get(&url))
            .call()
            .map_err(|e| transport(&url, e))?;
        read_json(&url, resp)
    }

    /// POST a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        self.post_raw(path, body.to_string().as_bytes())
    }

    /// POST raw bytes as JSON (for malformed bodies).
    pub fn post_raw(&self, path: &str, body: &[u8]) -> Result<(u16, Value)> {
        let url = self.url(path);
        read_json(&url, self.send(&url, body)?)
    }

    /// POST with `stream: true` and read the events as they come;
    /// `on_chunk` sees each parsed chunk and returns false to hang up.
    pub fn stream(
        &self,
        path: &str,
        body: &Value,
        mut on_chunk: impl FnMut(&Value) -> bool,
    ) -> Result<StreamStats> {
        let url = self.url(path);
        let mut body = body.clone();
        body["stream"] = Value::Bool(true);
        let started = Instant::now();
        let resp = self.send(&url, body.to_string().as_bytes())?;
        let mut stats = StreamStats {
            status: resp.status().as_u16(),
            ..Default::default()
        };
        if stats.status != 200 {
            stats.error = Some(read_json(&url, resp)?.1);
            return Ok(stats);
        }
        let mut reader = resp.into_body().into_reader();
        let mut parser = Parser::new();
        let mut buf = [0u8; 4096];
        let mut first_token = None;
        'read: loop {
            let n = reader.read(&mut buf).map_err(|e| transport(&url, e))?;
            if n == 0 {
                break;
            }
            for event in parser.feed(&buf[..n]) {
                if event.data == "[DONE]" {
                    stats.saw_done = true;
                    break 'read;
                }
                let chunk: Value = serde_json::from_str(&event.data).map_err(|e| {
                    transport(&url, format!("a chunk is not JSON ({e}): {}", event.data))
                })?;
                if chunk.get("error").is_some() {
                    stats.error = Some(chunk.clone());
                }
                let choice = &chunk["choices"][0];
                let text = choice["delta"]["content"]
                    .as_str()
                    .or(choice["text"].as_str())
                    .unwrap_or_default();
                stats.text.push_str(text);
                // Every chunk between the role (chat's first) and the
                // finish_reason (the last) carries one token.
                let is_token = choice.is_object()
                    && choice["finish_reason"].is_null()
                    && choice["delta"].get("role").is_none();
                if is_token {
                    let now = started.elapsed().as_secs_f64();
                    let first = *first_token.get_or_insert(now);
                    stats.ttft_secs.get_or_insert(now);
                    stats.token_span_secs = now - first;
                    stats.token_chunks += 1;
                    stats.token_times.push(now);
                }
                let go_on = on_chunk(&chunk);
                stats.chunks.push(chunk);
                if !go_on {
                    break 'read;
                }
            }
        }
        stats.total_secs = started.elapsed().as_secs_f64();
        Ok(stats)
    }
}

fn read_json(url: &str, resp: ureq::http::Response<ureq::Body>) -> Result<(u16, Value)> {
    let status = resp.status().as_u16();
    let text = resp
        .into_body()
        .read_to_string()
        .map_err(|e| transport(url, e))?;
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, value))
}

/// `clients` streams of the same request, started together.
#[derive(Debug, Clone)]
pub struct Round {
    pub clients: usize,
    pub streams: Vec<StreamStats>,
    pub wall_secs: f64,
}

impl Round {
    /// Tokens received by all clients.
    pub fn tokens(&self) -> usize {
        self.streams.iter().map(|s| s.token_chunks).sum()
    }

    /// What the server delivered in all: tokens / wall time.
    pub fn aggregate_tokens_per_sec(&self) -> f64 {
        self.tokens() as f64 / self.wall_secs.max(1e-9)
    }

    /// What one client saw, on average: time to first token.
    pub fn mean_ttft_secs(&self) -> f64 {
        let t: Vec<f64> = self.streams.iter().filter_map(|s| s.ttft_secs).collect();
        t.iter().sum::<f64>() / t.len().max(1) as f64
    }

    /// The `q` quantile (0 to 1, nearest rank) of the clients' times to
    /// first token.
    pub fn ttft_quantile(&self, q: f64) -> f64 {
        quantile(self.streams.iter().filter_map(|s| s.ttft_secs).collect(), q)
    }

    /// The `q` quantile of the gaps between consecutive tokens, over every
    /// client's stream (inter-token latency).
    pub fn inter_token_quantile(&self, q: f64) -> f64 {
        let gaps = self
            .streams
            .iter()
            .flat_map(|s| s.token_times.windows(2).map(|w| w[1] - w[0]))
            .collect();
        quantile(gaps, q)
    }

    /// What one client saw, on average: tokens/s once its tokens flow.
    pub fn mean_tokens_per_sec(&self) -> f64 {
        let n = self.streams.len().max(1) as f64;
        self.streams
            .iter()
            .map(StreamStats::tokens_per_sec)
            .sum::<f64>()
            / n
    }
}

/// The nearest-rank `q` quantile of `v` (0 when empty).
pub fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let rank = (q.clamp(0.0, 1.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

impl Client {
    /// Sends `body` streamed from `clients` threads at once.
    pub fn concurrent(&self, path: &str, body: &Value, clients: usize) -> Result<Round> {
        self.concurrent_each(path, &vec![body.clone(); clients])
    }

    /// Sends each of `bodies` streamed, from one thread each, at once.
    pub fn concurrent_each(&self, path: &str, bodies: &[Value]) -> Result<Round> {
        let started = Instant::now();
        let streams = std::thread::scope(|scope| {
            let handles: Vec<_> = bodies
                .iter()
                .map(|body| scope.spawn(move || self.stream(path, body, |_| true)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(transport(path, "a client thread panicked")))
                })
                .collect::<Result<Vec<_>>>()
        })?;
        Ok(Round {
            clients: bodies.len(),
            streams,
            wall_secs: started.elapsed().as_secs_f64(),
        })
    }
}
