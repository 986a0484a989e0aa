//! The Cantrip and the Ritual: generation in one call, or step by step.
//!
//! The **Cantrip** ([`Generator::cantrip`]) is a pipeline: a prompt in, an
//! answer out, every decision taken by defaults. The **Ritual**
//! ([`Generator::generate`]) is the same loop with every step exposed:
//! tokenize, forward, read the raw logits, process them, sample, decode, and
//! a callback that sees each token (with its top candidates) as it comes and
//! may stop the generation.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use candle_core::Device;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::arch::Architecture;
use crate::model::decoder::Decoder;
use crate::model::fused::{self, FusedLlama};
use crate::model::llama::Llama;
use crate::model::sample::{Sampler, SamplingConfig, prob_and_entropy};
use crate::model::tokenizer::{GgufTokenizer, Message};
use crate::stream::source::ModelSource;
use crate::stream::streamer::StreamOptions;

/// How to generate.
#[derive(Debug, Clone, Serialize)]
pub struct GenerateConfig {
    pub sampling: SamplingConfig,
    pub max_tokens: usize,
    /// Generation stops when the text contains one of these (it is cut there).
    pub stop: Vec<String>,
    /// Reuse keys and values of earlier positions (off: recompute the whole
    /// sequence at every step, for comparison).
    pub use_cache: bool,
    /// How many candidates each [`Step`] reports.
    pub top_n: usize,
    /// Keep generating past the end-of-sequence token (benchmarks and
    /// synthetic models count every token asked for).
    pub ignore_eos: bool,
    /// Hold the text to a JSON Schema ([`crate::constrain`]): every token
    /// that would leave the schema's language is masked, and the sequence
    /// ends when the document is whole.
    #[serde(skip)]
    pub constraint: Option<std::sync::Arc<crate::constrain::Grammar>>,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            sampling: SamplingConfig::default(),
            max_tokens: 128,
            stop: vec![],
            use_cache: true,
            top_n: 5,
            ignore_eos: false,
            constraint: None,
        }
    }
}

impl GenerateConfig {
    /// Refuses settings that cannot mean what they say, before a model is
    /// loaded: the sampling ranges, a zero token count, an empty stop
    /// string (contained in every text, it would stop after one token).
    pub fn validate(&self) -> Result<()> {
        self.sampling.validate()?;
        if self.max_tokens == 0 {
            return Err(Error::invalid(
                "max_tokens",
                "0 tokens asks for nothing; use at least 1",
            ));
        }
        if self.stop.iter().any(String::is_empty) {
            return Err(Error::invalid(
                "stop",
                "an empty stop string is found in every text; give at least one character",
            ));
        }
        Ok(())
    }
}

/// One generated token, as the callback sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub index: usize,
    pub token: u32,
    /// The text this token completed (may be empty while a multi-byte
    /// character is still incomplete).
    pub text: String,
    /// The text this token decodes to on its own (`�` for part of a
    /// multi-byte character).
    pub piece: String,
    /// The most probable candidates in the distribution the token was drawn
    /// from (after the repetition penalty, temperature and truncation; see
    /// [`Sampler::choose`]), at most `top_n`, none the chain ruled out:
    /// (token, its text, probability).
    pub candidates: Vec<(u32, String, f32)>,
    /// The natural log of the chosen token's probability in that same
    /// distribution (what an API reports as `logprob`).
    pub logprob: f32,
    /// The chosen token's probability in the model's own distribution
    /// (the softmax of the raw logits, before any sampling setting): what
    /// quality monitoring watches ([`crate::monitor`]), the same whatever
    /// temperature a client asked for.
    pub model_prob: f32,
    /// The entropy of the model's own distribution, in nats.
    pub entropy: f32,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StopReason {
    EndOfSequence,
    StopString,
    MaxTokens,
    Callback,
}

/// A finished generation.
#[derive(Debug, Clone, Serialize)]
pub struct Generation {
    pub text: String,
    pub tokens: Vec<u32>,
    pub prompt_tokens: usize,
    pub stop_reason: StopReason,
    /// Seconds spent on the prompt (prefill) and on the generated tokens.
    pub prompt_secs: f64,
    pub generate_secs: f64,
}

impl Generation {
    /// Generated tokens per second.
    pub fn tokens_per_sec(&self) -> f64 {
        self.tokens.len() as f64 / self.generate_secs.max(1e-9)
    }
}

/// Which engine decodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Engine {
    /// The fused engine for a GGUF on the CPU whose formats it reads
    /// (every quantized [`crate::ggml::Format`]); candle otherwise.
    #[default]
    Auto,
    /// The fused CPU engine ([`FusedLlama`]): the only one a budget governs.
    Fused,
    /// candle's Llama ([`Llama`]): the reference, hidden states, GPUs.
    Candle,
}

/// How to load a model for generation.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub engine: Engine,
    /// Where candle computes (the fused engine is CPU only).
    pub device: Device,
    /// The fused engine's budget, KV reservation, prefetch and cold reads:
    /// with a budget, the layers that do not fit are streamed from storage.
    pub stream: StreamOptions,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            engine: Engine::Auto,
            device: Device::Cpu,
            stream: StreamOptions::default(),
        }
    }
}

/// The special tokens a model directory's `config.json` names.
#[derive(serde::Deserialize)]
struct SpecialTokens {
    eos_token_id: u32,
    bos_token_id: Option<u32>,
}

impl SpecialTokens {
    fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text).map_err(|source| Error::Json {
            context: format!("{}: the special tokens", path.display()),
            source,
        })
    }
}

/// A model, exactly one engine loaded once, and its tokenizer.
pub struct Generator {
    pub decoder: Box<dyn Decoder>,
    /// Shared, not copied, with whoever else needs it (the server).
    pub tokenizer: Arc<GgufTokenizer>,
}

impl Generator {
    /// Loads a model onto `device` with the default engine: a GGUF file or
    /// shard directory (the fused engine on the CPU when it reads the
    /// formats, candle otherwise), or a directory holding
    /// `model.safetensors`, `config.json` and `tokenizer.json` (a student
    /// saved by the Transfer of Wisdom; candle).
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        Self::open(
            path,
            &LoadOptions {
                device: device.clone(),
                ..Default::default()
            },
        )
    }

    /// Loads a model with `opts`: one engine, chosen before any weight is
    /// read, so the process never holds two copies of the weights.
    pub fn open(path: &Path, opts: &LoadOptions) -> Result<Self> {
        let budgeted = opts.stream.budget.is_some();
        if path.is_dir() && path.join("model.safetensors").exists() {
            if opts.engine == Engine::Fused || budgeted {
                return Err(Error::invalid(
                    "engine",
                    "a safetensors student is decoded by candle; the fused engine (and a budget) need a GGUF",
                ));
            }
            let ids = SpecialTokens::read(&path.join("config.json"))?;
            return Ok(Generator {
                tokenizer: Arc::new(GgufTokenizer::from_json_file(
                    &path.join("tokenizer.json"),
                    ids.eos_token_id,
                    ids.bos_token_id,
                )?),
                decoder: Box::new(Llama::from_safetensors(path, &opts.device)?),
            });
        }
        Self::from_source(&ModelSource::open(path)?, opts)
    }

    /// Loads an opened GGUF or shard directory with `opts`.
    pub fn from_source(source: &ModelSource, opts: &LoadOptions) -> Result<Self> {
        let tokenizer = Arc::new(GgufTokenizer::from_gguf(source.base())?);
        Self::with_tokenizer(source, tokenizer, opts)
    }

    /// Loads the weights of an opened GGUF or shard directory with `opts`,
    /// beside a tokenizer already built (the command line measures the
    /// process's memory between the two).
    pub fn with_tokenizer(
        source: &ModelSource,
        tokenizer: Arc<GgufTokenizer>,
        opts: &LoadOptions,
    ) -> Result<Self> {
        let budgeted = opts.stream.budget.is_some();
        let on_cpu = matches!(opts.device, Device::Cpu);
        let fused = match opts.engine {
            Engine::Candle => false,
            Engine::Fused => true,
            // A format the fused kernels do not read (F16, K-quants...)
            // leaves decoding to candle, which reads them all.
            Engine::Auto => on_cpu && (budgeted || fused::reads(source).is_ok()),
        };
        if !fused && budgeted {
            return Err(Error::invalid(
                "budget",
                "a budget governs the fused engine only; drop --candle (or the budget)",
            ));
        }
        let decoder: Box<dyn Decoder> = if fused {
            if !on_cpu {
                return Err(Error::invalid(
                    "engine",
                    "the fused engine computes on the CPU; use candle's engine for a GPU",
                ));
            }
            if let Err(why) = fused::reads(source) {
                return Err(Error::invalid("fused engine", why));
            }
            Box::new(FusedLlama::open(source, &opts.stream)?)
        } else {
            if source.files.len() > 1 {
                return Err(Error::invalid(
                    "engine",
                    "candle's engine reads one GGUF file, not a shard directory",
                ));
            }
            let mut llama = Llama::from_gguf(source.base(), &opts.device)?;
            llama.reserve(opts.stream.context)?;
            Box::new(llama)
        };
        Ok(Generator { decoder, tokenizer })
    }

    /// The model's shape.
    pub fn arch(&self) -> &Architecture {
        self.decoder.arch()
    }

    /// The candle engine, when it is the one loaded (hidden states,
    /// attention, the logit lens).
    pub fn candle(&mut self) -> Result<&mut Llama> {
        let name = self.decoder.name();
        self.decoder
            .as_any_mut()
            .downcast_mut::<Llama>()
            .ok_or_else(|| {
                Error::invalid(
                    "engine",
                    format!(
                        "this generator decodes on the {name} engine; load it with Engine::Candle"
                    ),
                )
            })
    }

    /// The fused engine, when it is the one loaded (placement, streaming
    /// statistics, the layer observer).
    pub fn fused(&mut self) -> Option<&mut FusedLlama> {
        self.decoder.as_any_mut().downcast_mut::<FusedLlama>()
    }

    // ANCHOR: cantrip
    /// The Cantrip: one call, a chat answer with sensible defaults.
    pub fn cantrip(&mut self, prompt: &str) -> Result<String> {
        let text = self.chat_prompt(&[Message::new("user", prompt)])?;
        let ids = self.tokenizer.encode(&text)?;
        Ok(self
            .generate(&ids, &GenerateConfig::default(), |_| true)?
            .text)
    }
    // ANCHOR_END: cantrip

    /// A conversation formatted by the model's chat template, ready for the
    /// assistant's answer.
    pub fn chat_prompt(&self, messages: &[Message]) -> Result<String> {
        self.tokenizer.apply_chat_template(messages, true)
    }

    // ANCHOR: ritual
    /// The Ritual: generates after `prompt` (token ids), calling `on_step`
    /// with each token; `on_step` returns false to stop.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        cfg: &GenerateConfig,
        mut on_step: impl FnMut(&Step) -> bool,
    ) -> Result<Generation> {
        let mut seq = Sequence::new(prompt, cfg, self.decoder.capacity())?;
        let started = Instant::now();
        self.decoder.reset();
        // 1. Forward the whole prompt: logits for the next position.
        let mut logits = self.logits_after(prompt, seq.history(), cfg.use_cache)?;
        let prompt_secs = started.elapsed().as_secs_f64();
        let started = Instant::now();
        // 2. Process the raw logits, pick a token, decode what is new.
        while let Some(step) = seq.advance(&logits, &self.tokenizer)? {
            if !on_step(&step) {
                seq.stop(StopReason::Callback);
            }
            let Some(token) = seq.pending() else { break };
            // 3. Forward the new token (or the whole sequence without a cache).
            logits = self.logits_after(&[token], seq.history(), cfg.use_cache)?;
        }
        Ok(seq.finish(prompt_secs, started.elapsed().as_secs_f64()))
    }
    // ANCHOR_END: ritual

    /// The raw logits of the next position, after `new` tokens (the end of
    /// `history`); without a cache the whole history is recomputed.
    fn logits_after(&mut self, new: &[u32], history: &[u32], use_cache: bool) -> Result<Vec<f32>> {
        if use_cache {
            self.decoder.forward(new)
        } else {
            self.decoder.reset();
            self.decoder.forward(history)
        }
    }
}

// ANCHOR: sequence
/// One generation in progress: the Ritual's state between two forward
/// passes (the sampler and its random state, the history, the text so
/// far, why it ended). The Ritual drives one; the server's batch drives
/// many, one pass over the weights for all, and each sequence makes the
/// same choices it would make alone.
pub struct Sequence {
    cfg: GenerateConfig,
    sampler: Sampler,
    history: Vec<u32>,
    generated: Vec<u32>,
    text: String,
    prompt_tokens: usize,
    context: usize,
    stop_reason: Option<StopReason>,
    /// The schema's automaton, once the first token is chosen.
    constraint: Option<crate::constrain::Constraint>,
}

impl Sequence {
    /// A sequence after `prompt`, within a context of `context` positions.
    pub fn new(prompt: &[u32], cfg: &GenerateConfig, context: usize) -> Result<Self> {
        if prompt.is_empty() {
            return Err(Error::invalid(
                "prompt",
                "it is empty: there is nothing to continue",
            ));
        }
        if prompt.len() >= context {
            return Err(Error::invalid(
                "prompt",
                format!(
                    "{} tokens leave no room in a context of {context}",
                    prompt.len()
                ),
            ));
        }
        Ok(Sequence {
            cfg: cfg.clone(),
            sampler: Sampler::new(&cfg.sampling)?,
            history: prompt.to_vec(),
            generated: vec![],
            text: String::new(),
            prompt_tokens: prompt.len(),
            context,
            stop_reason: None,
            constraint: None,
        })
    }

    /// The prompt and the tokens generated so far.
    pub fn history(&self) -> &[u32] {
        &self.history
    }

    /// Positions this sequence can ever hold: its prompt plus the tokens it
    /// may generate, within the context (what a batch reserves for it).
    pub fn positions(&self) -> usize {
        (self.prompt_tokens + self.cfg.max_tokens).min(self.context)
    }

    /// Why it ended; `None` while it runs.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stop_reason
    }

    /// Ends it for the caller's reason (a callback, a client gone), which
    /// replaces the length limit a last token may have reached.
    pub fn stop(&mut self, reason: StopReason) {
        self.stop_reason = Some(reason);
    }

    /// The token to forward next, while the sequence runs.
    pub fn pending(&self) -> Option<u32> {
        match self.stop_reason {
            None => self.generated.last().copied(),
            Some(_) => None,
        }
    }

    /// Takes the logits after the last position: picks a token, decodes
    /// what is new, and returns the step; `None` when the sequence ended
    /// instead (end of sequence, a stop string, or no room left).
    pub fn advance(&mut self, logits: &[f32], tokenizer: &GgufTokenizer) -> Result<Option<Step>> {
        if self.stop_reason.is_some() {
            return Ok(None);
        }
        if self.generated.len() >= self.cfg.max_tokens || self.history.len() >= self.context {
            self.stop_reason = Some(StopReason::MaxTokens);
            return Ok(None);
        }
        // ANCHOR: constrained
        let masked;
        let allowed = match &self.cfg.constraint {
            None => logits,
            Some(grammar) => {
                let c = self.constraint.get_or_insert_with(|| {
                    crate::constrain::Constraint::new(grammar.clone(), tokenizer.constraint_vocab())
                });
                let mask = c.mask();
                if mask.count() == 0 {
                    return Err(Error::invalid(
                        "constrained decoding",
                        "the schema allows no token of this vocabulary here",
                    ));
                }
                let mut z = logits.to_vec();
                mask.apply(&mut z);
                masked = z;
                &masked
            }
        };
        let (token, probs) = self.sampler.choose(allowed, &self.history)?;
        // ANCHOR_END: constrained
        let candidates = candidates(tokenizer, &probs, self.cfg.top_n);
        let logprob = probs
            .get(token as usize)
            .map_or(f32::NEG_INFINITY, |p| p.ln());
        let (model_prob, entropy) = prob_and_entropy(logits, token);
        if token == tokenizer.eos && !self.cfg.ignore_eos {
            self.stop_reason = Some(StopReason::EndOfSequence);
            return Ok(None);
        }
        if let Some(c) = &mut self.constraint {
            let bytes = tokenizer.token_bytes(token).unwrap_or_default();
            if c.advance(token, &bytes).is_err() {
                return Err(Error::invalid(
                    "constrained decoding",
                    format!("token {token} was chosen outside the schema's mask"),
                ));
            }
        }
        self.history.push(token);
        self.generated.push(token);
        // A character may span several tokens: release text only whole.
        let full = tokenizer.decode(&self.generated, true)?;
        let delta = if full.ends_with('\u{FFFD}') {
            String::new()
        } else {
            full.get(self.text.len()..).unwrap_or_default().to_string()
        };
        if !delta.is_empty() {
            self.text = full;
        }
        if let Some(pos) = self
            .cfg
            .stop
            .iter()
            .filter_map(|s| self.text.find(s.as_str()))
            .min()
        {
            self.text.truncate(pos);
            self.stop_reason = Some(StopReason::StopString);
            return Ok(None);
        }
        // The last token allowed ends the sequence without another pass;
        // so does a document the schema says is whole.
        if self.constraint.as_ref().is_some_and(|c| c.is_done()) {
            self.stop_reason = Some(StopReason::EndOfSequence);
        } else if self.generated.len() >= self.cfg.max_tokens || self.history.len() >= self.context
        {
            self.stop_reason = Some(StopReason::MaxTokens);
        }
        Ok(Some(Step {
            index: self.generated.len() - 1,
            token,
            text: delta,
            piece: tokenizer.piece(token),
            candidates,
            logprob,
            model_prob,
            entropy,
        }))
    }

    /// The finished generation, with the seconds the caller measured.
    pub fn finish(self, prompt_secs: f64, generate_secs: f64) -> Generation {
        Generation {
            text: self.text,
            tokens: self.generated,
            prompt_tokens: self.prompt_tokens,
            stop_reason: self.stop_reason.unwrap_or(StopReason::MaxTokens),
            prompt_secs,
            generate_secs,
        }
    }
}
// ANCHOR_END: sequence

/// The `top_n` most probable tokens of `probs`, most probable first,
/// leaving out those of probability 0 (truncated by the chain).
fn candidates(tokenizer: &GgufTokenizer, probs: &[f32], top_n: usize) -> Vec<(u32, String, f32)> {
    if top_n == 0 || probs.is_empty() {
        return vec![];
    }
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.select_nth_unstable_by(top_n.min(probs.len() - 1), |&a, &b| {
        probs[b].total_cmp(&probs[a])
    });
    order.truncate(top_n);
    order.retain(|&i| probs[i] > 0.0);
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    order
        .into_iter()
        .map(|i| (i as u32, tokenizer.piece(i as u32), probs[i]))
        .collect()
}
