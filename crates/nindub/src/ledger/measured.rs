//! The project's own throughput, as its benchmarks measured it: read from
//! the records `cargo codex bench` commits beside its printouts
//! (`generated/speaking-stone/bench/serve.json`, `generated/nindub/bench/stream.json`).
//! They were measured on the machine the benchmarks ran on (its CPU, a
//! given number of threads, no GPU); the ledger keeps a GPU's throughput a
//! parameter and says which machine a figure is from.

use crate::error::{Error, Result};

#[derive(serde::Deserialize)]
struct ServeRecord {
    generated_tokens: u64,
    threads: u64,
    in_process: InProcess,
    nindub_serve: Vec<ServeRow>,
    /// The same clients on the batching server (records from before it
    /// have none).
    #[serde(default)]
    nindub_batched: Vec<ServeRow>,
}

#[derive(serde::Deserialize)]
struct InProcess {
    tokens_per_s: f64,
}

#[derive(serde::Deserialize)]
struct ServeRow {
    clients: u64,
    aggregate_tokens_per_s: f64,
}

/// The Speaking Stone's benchmark: one model, resident, generating in
/// process and through `nindub serve` to several clients at once.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    /// CPU threads the engine ran on.
    pub threads: u64,
    /// Tokens each request generated.
    pub generated_tokens: u64,
    /// Tokens per second of one generation in process (after its first
    /// token).
    pub in_process: f64,
    /// (clients, all clients' tokens over the wall time) through HTTP,
    /// prompts and first tokens included.
    pub aggregate: Vec<(u64, f64)>,
}

fn rate(what: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(Error::invalid(
            "benchmark record",
            format!("{what} is {v}, not a throughput"),
        ))
    }
}

impl Served {
    /// Reads `serve.json`.
    pub fn parse(json: &str) -> Result<Served> {
        let r: ServeRecord = serde_json::from_str(json).map_err(|source| Error::Json {
            context: "the Speaking Stone's benchmark record (serve.json)".into(),
            source,
        })?;
        let aggregate = r
            .nindub_serve
            .iter()
            .chain(&r.nindub_batched)
            .map(|row| {
                Ok((
                    row.clients,
                    rate(
                        &format!("the aggregate at {} clients", row.clients),
                        row.aggregate_tokens_per_s,
                    )?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Served {
            threads: r.threads,
            generated_tokens: r.generated_tokens,
            in_process: rate("the in-process rate", r.in_process.tokens_per_s)?,
            aggregate,
        })
    }

    /// The most a served model delivered: (clients, tokens/s).
    pub fn best_aggregate(&self) -> Option<(u64, f64)> {
        self.aggregate
            .iter()
            .copied()
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }
}

/// One run of the layer-streaming benchmark.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct StreamRun {
    pub model: String,
    /// The memory budget, bytes.
    pub budget: u64,
    /// Whether every streamed layer was read from the device, not the page cache.
    pub cold: bool,
    pub prefetch: bool,
    pub resident_layers: usize,
    pub streamed_layers: usize,
    pub weight_bytes: u64,
    pub secs_per_token: f64,
}

impl StreamRun {
    pub fn tokens_per_second(&self) -> f64 {
        1.0 / self.secs_per_token
    }
}

#[derive(serde::Deserialize)]
struct StreamRecord {
    runs: Vec<StreamRun>,
}

/// NINDUB's benchmark: models run within a memory budget, the layers that
/// do not fit streamed from storage for every token.
#[derive(Debug, Clone, PartialEq)]
pub struct Streamed {
    pub runs: Vec<StreamRun>,
}

impl Streamed {
    /// Reads `stream.json`.
    pub fn parse(json: &str) -> Result<Streamed> {
        let r: StreamRecord = serde_json::from_str(json).map_err(|source| Error::Json {
            context: "NINDUB's benchmark record (stream.json)".into(),
            source,
        })?;
        for run in &r.runs {
            rate(
                &format!("{}'s tokens per second", run.model),
                run.tokens_per_second(),
            )?;
        }
        Ok(Streamed { runs: r.runs })
    }

    /// The run of `model` with these settings, if it was measured.
    pub fn find(&self, model: &str, cold: bool, prefetch: bool) -> Option<&StreamRun> {
        self.runs
            .iter()
            .find(|r| r.model == model && r.cold == cold && r.prefetch == prefetch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_serve_record_is_read() {
        let json = r#"{"generated_tokens": 64, "threads": 2,
            "in_process": {"tokens_per_s": 114.2, "ttft_s": 0.3},
            "nindub_serve": [
              {"clients": 1, "aggregate_tokens_per_s": 62.5, "mean_client_tokens_per_s": 96.0},
              {"clients": 4, "aggregate_tokens_per_s": 64.5, "mean_client_tokens_per_s": 100.0}
            ]}"#;
        let s = Served::parse(json).unwrap();
        assert_eq!(s.threads, 2);
        assert_eq!(s.in_process, 114.2);
        assert_eq!(s.best_aggregate(), Some((4, 64.5)));
        let bad = json.replace("114.2", "0");
        assert!(Served::parse(&bad).is_err());
        assert!(Served::parse("{}").is_err());
    }

    #[test]
    fn a_stream_record_is_read() {
        let json = r#"{"runs": [{"model": "llama-3-8b", "budget": 805306368, "cold": true,
            "prefetch": true, "resident_layers": 3, "streamed_layers": 29,
            "weight_bytes": 4039114752, "secs_per_token": 1.5, "peak_rss": 1}]}"#;
        let s = Streamed::parse(json).unwrap();
        let run = s.find("llama-3-8b", true, true).unwrap();
        assert!((run.tokens_per_second() - 1.0 / 1.5).abs() < 1e-12);
        assert!(s.find("llama-3-8b", false, true).is_none());
        assert!(Streamed::parse(&json.replace("1.5", "0.0")).is_err());
    }
}
