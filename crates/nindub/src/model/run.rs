//! A measured run of the engine under a budget (NINDUB): the one
//! generation loop, greedy, on the fused engine, with the time of every
//! token, the bytes streamed, and the process's resident memory after
//! every layer of every pass.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::model::fused::{LayerEvent, Observer};
use crate::model::generate::{Engine, GenerateConfig, Generator, LoadOptions};
use crate::model::sample::SamplingConfig;
use crate::model::tokenizer::GgufTokenizer;
use crate::process::rss;
use crate::stream::source::ModelSource;
use crate::stream::streamer::StreamOptions;

/// One point of the memory timeline: after a layer of a pass.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// Seconds since the run began.
    pub t: f64,
    pub pass: usize,
    pub layer: usize,
    /// The process's resident bytes then.
    pub rss: u64,
    /// Bytes streamed so far.
    pub bytes_read: u64,
}

/// What [`run`] does.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub prompt: Vec<u32>,
    /// Tokens to generate greedily after the prompt.
    pub max_tokens: usize,
    pub opts: StreamOptions,
    /// Record a [`Sample`] after every layer.
    pub timeline: bool,
}

/// What a run measured.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Report {
    pub model: String,
    /// Bytes of weights read per token, resident or streamed.
    pub weight_bytes: u64,
    pub budget: Option<u64>,
    pub prefetch: bool,
    /// Bytes the placement holds (the accounted budget).
    pub accounted: u64,
    pub resident_layers: usize,
    pub streamed_layers: usize,
    /// Bytes read from storage per pass.
    pub streamed_per_token: u64,
    pub prompt_tokens: usize,
    pub prompt_secs: f64,
    /// Seconds of each generated token.
    pub token_secs: Vec<f64>,
    pub tokens: Vec<u32>,
    pub read_secs: f64,
    pub wait_secs: f64,
    pub bytes_read: u64,
    /// The process's resident memory: after loading, and at its peak.
    pub rss_loaded: Option<u64>,
    pub peak_rss: Option<u64>,
    pub timeline: Vec<Sample>,
}

impl Report {
    /// The median seconds per generated token.
    pub fn secs_per_token(&self) -> f64 {
        let mut s = self.token_secs.clone();
        s.sort_by(f64::total_cmp);
        match s.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => s[n / 2],
            n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
        }
    }
}

// ANCHOR: run
/// Opens the model within the budget on the fused engine, runs the prompt
/// through it (each layer once per chunk of the prompt's tokens) and
/// generates greedily through the one generation loop
/// ([`Generator::generate`]), every pass streaming the layers that are not
/// resident. `observer` sees every layer of every pass.
pub fn run(source: &ModelSource, cfg: &RunConfig, observer: Option<Observer>) -> Result<Report> {
    let tokenizer = Arc::new(GgufTokenizer::from_gguf(source.base())?);
    run_with(source, tokenizer, cfg, observer)
}

/// [`run`] with the model's tokenizer already built (the command line
/// measures the process's memory between the two).
pub fn run_with(
    source: &ModelSource,
    tokenizer: Arc<GgufTokenizer>,
    cfg: &RunConfig,
    observer: Option<Observer>,
) -> Result<Report> {
    let started = Instant::now();
    let opts = LoadOptions {
        engine: Engine::Fused,
        stream: cfg.opts.clone(),
        ..Default::default()
    };
    let mut g = Generator::with_tokenizer(source, tokenizer, &opts)?;
    let rss_loaded = rss().map(|(now, _)| now);
    let timeline = Arc::new(Mutex::new(Vec::new()));
    let Some(model) = g.fused() else {
        return Err(Error::invalid("run", "the fused engine did not load"));
    };
    if cfg.timeline || observer.is_some() {
        let record = cfg.timeline.then(|| timeline.clone());
        let mut observer = observer;
        model.observer = Some(Box::new(move |e: &LayerEvent| {
            if let Some(samples) = &record
                && let Ok(mut samples) = samples.lock()
            {
                samples.push(Sample {
                    t: started.elapsed().as_secs_f64(),
                    pass: e.pass,
                    layer: e.layer,
                    rss: rss().map_or(0, |(now, _)| now),
                    bytes_read: e.stats.bytes_read,
                });
            }
            if let Some(o) = &mut observer {
                o(e);
            }
        }));
    }
    let config = GenerateConfig {
        sampling: SamplingConfig::greedy(),
        max_tokens: cfg.max_tokens,
        top_n: 0,
        ignore_eos: true,
        ..Default::default()
    };
    // A token's time: from its step's report to the next one's (its
    // forward pass and the next choice); the last ends with the loop.
    let mut seen = vec![];
    let out = g.generate(&cfg.prompt, &config, |_| {
        seen.push(Instant::now());
        true
    })?;
    seen.push(Instant::now());
    let token_secs = seen
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    let Some(model) = g.fused() else {
        return Err(Error::invalid("run", "the fused engine did not load"));
    };
    model.observer = None;
    let stats = model.stream_stats();
    let p = &model.placement;
    let timeline = timeline.lock().map(|t| t.clone()).unwrap_or_default();
    Ok(Report {
        model: model.arch.name.clone(),
        weight_bytes: model.bytes_per_token() as u64,
        budget: cfg.opts.budget,
        prefetch: cfg.opts.prefetch,
        accounted: p.used,
        resident_layers: p.resident.len(),
        streamed_layers: p.streamed.len(),
        streamed_per_token: p.streamed_per_token,
        prompt_tokens: cfg.prompt.len(),
        prompt_secs: out.prompt_secs,
        token_secs,
        tokens: out.tokens,
        read_secs: stats.read_secs,
        wait_secs: stats.wait_secs,
        bytes_read: stats.bytes_read,
        rss_loaded,
        peak_rss: rss().map(|(_, peak)| peak),
        timeline,
    })
}
// ANCHOR_END: run
