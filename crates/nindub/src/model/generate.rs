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
    /// (Q4_0, Q4_1, Q8_0); candle otherwise.
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
        if prompt.is_empty() {
            return Err(Error::invalid(
                "prompt",
                "it is empty: there is nothing to continue",
            ));
        }
        let context = self.decoder.capacity();
        if prompt.len() >= context {
            return Err(Error::invalid(
                "prompt",
                format!(
                    "{} tokens leave no room in a context of {context}",
                    prompt.len()
                ),
            ));
        }
        let mut sampler = Sampler::new(&cfg.sampling)?;
        let mut history = prompt.to_vec();
        let mut generated: Vec<u32> = vec![];
        let mut text = String::new();
        let started = Instant::now();
        self.decoder.reset();
        // 1. Forward the whole prompt: logits for the next position.
        let mut logits = self.logits_after(prompt, &history, cfg.use_cache)?;
        let prompt_secs = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let mut stop_reason = StopReason::MaxTokens;
        while generated.len() < cfg.max_tokens && history.len() < context {
            // 2. Process the raw logits and pick a token.
            let (token, probs) = sampler.choose(&logits, &history)?;
            let candidates = self.candidates(&probs, cfg.top_n);
            let logprob = probs
                .get(token as usize)
                .map_or(f32::NEG_INFINITY, |p| p.ln());
            let (model_prob, entropy) = prob_and_entropy(&logits, token);
            if token == self.tokenizer.eos && !cfg.ignore_eos {
                stop_reason = StopReason::EndOfSequence;
                break;
            }
            history.push(token);
            generated.push(token);
            // 3. Decode what is new (a character may span several tokens).
            let full = self.tokenizer.decode(&generated, true)?;
            let delta = if full.ends_with('\u{FFFD}') {
                String::new()
            } else {
                full.get(text.len()..).unwrap_or_default().to_string()
            };
            if !delta.is_empty() {
                text = full;
            }
            let step = Step {
                index: generated.len() - 1,
                token,
                text: delta,
                piece: self.tokenizer.piece(token),
                candidates,
                logprob,
                model_prob,
                entropy,
            };
            if let Some(pos) = cfg.stop.iter().filter_map(|s| text.find(s.as_str())).min() {
                text.truncate(pos);
                stop_reason = StopReason::StopString;
                break;
            }
            if !on_step(&step) {
                stop_reason = StopReason::Callback;
                break;
            }
            // 4. Forward the new token (or the whole sequence without a cache).
            logits = self.logits_after(&[token], &history, cfg.use_cache)?;
        }
        Ok(Generation {
            text,
            tokens: generated,
            prompt_tokens: prompt.len(),
            stop_reason,
            prompt_secs,
            generate_secs: started.elapsed().as_secs_f64(),
        })
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

    /// The `top_n` most probable tokens of `probs`, most probable first,
    /// leaving out those of probability 0 (truncated by the chain).
    fn candidates(&self, probs: &[f32], top_n: usize) -> Vec<(u32, String, f32)> {
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
            .map(|i| (i as u32, self.tokenizer.piece(i as u32), probs[i]))
            .collect()
    }
}
