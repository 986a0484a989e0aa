//! What the service measures, in Prometheus's text format (`GET /metrics`):
//! requests by route and status, tokens in and out, time to first token,
//! generation speed, the queue; and the model's quality (The
//! Infrastructure Canon, [`crate::monitor`]): the chosen token's
//! probability and the entropy per token, the drift scores, the canaries.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::model::generate::Generation;
use crate::monitor::{CanaryScore, Snapshot};

/// A gauge of real numbers.
type Real = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignalLabels {
    pub signal: String,
    pub window: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DriftLabels {
    pub signal: String,
    pub test: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WindowLabels {
    pub window: String,
}

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
    /// Bytes of KV cache reserved by the sequences in the batch.
    pub kv_reserved: Gauge,
    pub token_probability: Histogram,
    pub token_entropy: Histogram,
    pub signal_mean: Family<SignalLabels, Real>,
    pub drift_score: Family<DriftLabels, Real>,
    pub drift_ready: Gauge,
    pub window_tokens: Family<WindowLabels, Gauge>,
    pub canary_accuracy: Real,
    pub canary_logprob: Real,
    pub canary_runs: Counter,
    pub canary_last_run: Real,
    pub model_swaps: Counter,
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
            kv_reserved: Gauge::default(),
            token_probability: Histogram::new([
                0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99,
            ]),
            token_entropy: Histogram::new([0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0]),
            signal_mean: Family::default(),
            drift_score: Family::default(),
            drift_ready: Gauge::default(),
            window_tokens: Family::default(),
            canary_accuracy: Real::default(),
            canary_logprob: Real::default(),
            canary_runs: Counter::default(),
            canary_last_run: Real::default(),
            model_swaps: Counter::default(),
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
        registry.register(
            "kv_reserved_bytes",
            "KV cache reserved by the sequences being generated (continuous batching)",
            m.kv_reserved.clone(),
        );
        registry.register(
            "token_probability_ratio",
            "The chosen token's probability in the model's own distribution (softmax of the raw logits)",
            m.token_probability.clone(),
        );
        registry.register(
            "token_entropy_nats",
            "Entropy of the model's own next-token distribution, in nats",
            m.token_entropy.clone(),
        );
        registry.register(
            "signal_mean",
            "Mean of a quality signal over the reference window and the live window",
            m.signal_mean.clone(),
        );
        registry.register(
            "drift_score",
            "Drift of a signal's live window from its reference (psi, ks statistic, js divergence in bits)",
            m.drift_score.clone(),
        );
        registry.register(
            "drift_reference_ready",
            "1 once the reference and live windows are full and the drift scores mean something",
            m.drift_ready.clone(),
        );
        registry.register(
            "drift_window_tokens",
            "Tokens in the reference and live windows of the output signals",
            m.window_tokens.clone(),
        );
        registry.register(
            "canary_accuracy_ratio",
            "Canary answer tokens the model still ranks first, at the last canary run",
            m.canary_accuracy.clone(),
        );
        registry.register(
            "canary_logprob_mean",
            "Mean log-probability (nats) of a canary answer token, at the last run",
            m.canary_logprob.clone(),
        );
        registry.register("canary_runs", "Canary runs", m.canary_runs.clone());
        registry.register(
            "canary_last_run_timestamp_seconds",
            "When the canaries last ran (Unix time)",
            m.canary_last_run.clone(),
        );
        registry.register(
            "model_swaps",
            "Times the served model was replaced while serving",
            m.model_swaps.clone(),
        );
        Metrics { registry, ..m }
    }

    /// One generated token's quality signals.
    pub fn record_token(&self, prob: f32, entropy: f32) {
        self.token_probability.observe(f64::from(prob));
        self.token_entropy.observe(f64::from(entropy));
    }

    /// The monitor's windows after a request.
    pub fn record_quality(&self, snap: &Snapshot) {
        for &(signal, reference, live) in &snap.means {
            for (window, v) in [("reference", reference), ("live", live)] {
                if v.is_finite() {
                    self.signal_mean
                        .get_or_create(&SignalLabels {
                            signal: signal.name().into(),
                            window: window.into(),
                        })
                        .set(v);
                }
            }
        }
        for d in &snap.drift {
            self.drift_score
                .get_or_create(&DriftLabels {
                    signal: d.signal.name().into(),
                    test: d.test.name().into(),
                })
                .set(d.value);
        }
        self.drift_ready.set(i64::from(snap.ready));
        for (window, n) in [
            ("reference", snap.reference_tokens),
            ("live", snap.live_tokens),
        ] {
            self.window_tokens
                .get_or_create(&WindowLabels {
                    window: window.into(),
                })
                .set(n as i64);
        }
    }

    /// A canary run.
    pub fn record_canary(&self, score: &CanaryScore) {
        self.canary_accuracy.set(score.accuracy);
        self.canary_logprob.set(score.logprob_mean);
        self.canary_runs.inc();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.canary_last_run.set(now);
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
