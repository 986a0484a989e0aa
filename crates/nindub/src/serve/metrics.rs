//! What the service measures, in Prometheus's text format (`GET /metrics`):
//! requests by route and status, tokens in and out, time to first token,
//! generation speed, the queue. The Engineer rank's monitoring reads these.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::model::generate::Generation;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub status: String,
}

/// Every series the server exports.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub prompt_tokens: Counter,
    pub completion_tokens: Counter,
    pub rejected: Counter,
    pub cancelled: Counter,
    pub timed_out: Counter,
    pub connections_refused: Counter,
    pub connections_open: Gauge,
    pub ttft: Histogram,
    pub tokens_per_sec: Histogram,
    pub duration: Histogram,
    pub waiting: Gauge,
    pub running: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("nindub");
        let m = Metrics {
            requests: Family::default(),
            prompt_tokens: Counter::default(),
            completion_tokens: Counter::default(),
            rejected: Counter::default(),
            cancelled: Counter::default(),
            timed_out: Counter::default(),
            connections_refused: Counter::default(),
            connections_open: Gauge::default(),
            // 10 ms … ~80 s
            ttft: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            // 0.5 … ~1000 tokens/s
            tokens_per_sec: Histogram::new(exponential_buckets(0.5, 2.0, 12)),
            duration: Histogram::new(exponential_buckets(0.01, 2.0, 16)),
            waiting: Gauge::default(),
            running: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            m.requests.clone(),
        );
        registry.register(
            "prompt_tokens",
            "Prompt tokens processed",
            m.prompt_tokens.clone(),
        );
        registry.register(
            "completion_tokens",
            "Tokens generated",
            m.completion_tokens.clone(),
        );
        registry.register(
            "queue_rejected",
            "Requests refused with 503 because the queue was full",
            m.rejected.clone(),
        );
        registry.register(
            "cancelled",
            "Generations stopped because the client went away",
            m.cancelled.clone(),
        );
        registry.register(
            "timed_out",
            "Requests abandoned at the time limit",
            m.timed_out.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections answered 503 and closed because the server held its maximum",
            m.connections_refused.clone(),
        );
        registry.register(
            "connections_open",
            "Client connections held open",
            m.connections_open.clone(),
        );
        registry.register(
            "time_to_first_token_seconds",
            "From arrival to the first generated token (queue + prefill)",
            m.ttft.clone(),
        );
        registry.register(
            "generation_tokens_per_second",
            "Generated tokens per second, per request",
            m.tokens_per_sec.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "From arrival to the last byte of the response head (streams: to the end)",
            m.duration.clone(),
        );
        registry.register(
            "queue_waiting",
            "Requests waiting for the model",
            m.waiting.clone(),
        );
        registry.register(
            "queue_running",
            "Requests being generated",
            m.running.clone(),
        );
        Metrics { registry, ..m }
    }

    /// After a finished generation.
    pub fn record_generation(&self, g: &Generation, ttft_secs: Option<f64>) {
        self.prompt_tokens.inc_by(g.prompt_tokens as u64);
        self.completion_tokens.inc_by(g.tokens.len() as u64);
        if let Some(t) = ttft_secs {
            self.ttft.observe(t);
        }
        if !g.tokens.is_empty() {
            self.tokens_per_sec.observe(g.tokens_per_sec());
        }
    }

    pub fn set_queue(&self, (waiting, running): (usize, usize)) {
        self.waiting.set(waiting as i64);
        self.running.set(running as i64);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
