//! `nindub generate` and `nindub chat`: the Ritual from the command line,
//! on the engine and within the budget the flags ask for.

use std::io::BufRead;

use anyhow::{Context, Result};
use clap::Args;
use nindub::model::generate::GenerateConfig;
use nindub::model::sample::SamplingConfig;
use nindub::model::tokenizer::Message;

use crate::common::{EngineArgs, load, print_step, report};

#[derive(Args)]
pub struct GenerateArgs {
    /// A GGUF file, or the name of a cached asset.
    #[arg(long, default_value = "smollm2")]
    model: String,
    /// The prompt (for `chat`, the first message; otherwise read from stdin).
    #[arg(long)]
    prompt: Option<String>,
    /// Wrap the prompt in the model's chat template.
    #[arg(long)]
    chat_template: bool,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.7)]
    temperature: f32,
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    #[arg(long, default_value_t = 0.9)]
    top_p: f32,
    #[arg(long, default_value_t = 0.0)]
    min_p: f32,
    /// 1 = no penalty.
    #[arg(long, default_value_t = 1.0)]
    repeat_penalty: f32,
    /// How many recent tokens the penalty looks at.
    #[arg(long, default_value_t = 64)]
    repeat_window: usize,
    #[arg(long, default_value_t = 299_792_458)]
    seed: u64,
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    /// Stop when the text contains this (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Recompute the whole sequence at every step (no KV cache).
    #[arg(long)]
    no_cache: bool,
    /// Print the top candidates with probabilities at each step.
    #[arg(long)]
    logits: bool,
    /// How many candidates --logits prints.
    #[arg(long, default_value_t = 5)]
    top: usize,
    #[command(flatten)]
    engine: EngineArgs,
    /// Positions the KV cache reserves under a budget (default: the
    /// prompt's tokens and --max-tokens for `generate`, 2048 for `chat`).
    #[arg(long)]
    context: Option<usize>,
    /// Hold the output to this JSON Schema (a file): every token that
    /// would leave it is masked, and generation ends when the document is
    /// whole.
    #[arg(long, value_name = "FILE", conflicts_with = "json")]
    json_schema: Option<std::path::PathBuf>,
    /// Hold the output to any JSON object.
    #[arg(long)]
    json: bool,
}

impl GenerateArgs {
    fn config(&self) -> Result<GenerateConfig> {
        use nindub::constrain::Grammar;
        let constraint = match (&self.json_schema, self.json) {
            (Some(path), _) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the JSON schema {}", path.display()))?;
                let g = Grammar::from_json(&text)
                    .with_context(|| format!("compiling the JSON schema {}", path.display()))?;
                Some(std::sync::Arc::new(g))
            }
            (None, true) => Some(std::sync::Arc::new(Grammar::any_object())),
            (None, false) => None,
        };
        Ok(GenerateConfig {
            sampling: SamplingConfig {
                temperature: self.temperature,
                top_k: Some(self.top_k),
                top_p: Some(self.top_p),
                min_p: Some(self.min_p),
                repeat_penalty: self.repeat_penalty,
                repeat_window: self.repeat_window,
                seed: self.seed,
            },
            max_tokens: self.max_tokens,
            stop: self.stop.clone(),
            use_cache: !self.no_cache,
            top_n: if self.logits { self.top } else { 0 },
            ignore_eos: false,
            constraint,
        })
    }
}

pub fn run(args: GenerateArgs) -> Result<()> {
    let prompt = match &args.prompt {
        Some(p) => p.clone(),
        None => {
            std::io::read_to_string(std::io::stdin()).context("reading the prompt from stdin")?
        }
    };
    let config = args.config()?;
    config.validate()?;
    let mut loaded = load(&args.model, &args.engine, |tokenizer, arch| {
        Ok(match args.context {
            Some(c) => c,
            // The chat template adds a few dozen tokens around the prompt.
            None => arch.context_for(
                tokenizer.encode(&prompt)?.len() + 64 * args.chat_template as usize,
                args.max_tokens,
            )?,
        })
    })?;
    let g = &mut loaded.generator;
    let text = if args.chat_template {
        g.chat_prompt(&[Message::new("user", &prompt)])?
    } else {
        prompt
    };
    let ids = g.tokenizer.encode(&text)?;
    let out = g.generate(&ids, &config, |s| print_step(s, args.logits))?;
    println!();
    report(&out);
    loaded.memory.report(args.engine.budget.map(|b| b.as_u64()));
    Ok(())
}

pub fn chat(args: GenerateArgs) -> Result<()> {
    let config = args.config()?;
    config.validate()?;
    let mut loaded = load(&args.model, &args.engine, |_, _| {
        Ok(args.context.unwrap_or(2048))
    })?;
    let g = &mut loaded.generator;
    let mut messages: Vec<Message> = vec![];
    let mut first = args.prompt.clone();
    let stdin = std::io::stdin();
    loop {
        let line = match first.take() {
            Some(p) => p,
            None => {
                eprint!("> ");
                // Bytes, not a String: a line that is not UTF-8 is reported,
                // not the end of the session.
                let mut bytes = vec![];
                if stdin.lock().read_until(b'\n', &mut bytes)? == 0 {
                    break;
                }
                match String::from_utf8(bytes) {
                    Ok(line) => line.trim_end().to_string(),
                    Err(_) => {
                        eprintln!("nindub: that line is not UTF-8 text; try again");
                        continue;
                    }
                }
            }
        };
        if line.is_empty() {
            break;
        }
        messages.push(Message::new("user", &line));
        // One bad turn (too long for the context) is reported and taken
        // back; the session goes on.
        let turn = g
            .chat_prompt(&messages)
            .and_then(|p| g.tokenizer.encode(&p))
            .and_then(|ids| g.generate(&ids, &config, |s| print_step(s, args.logits)));
        match turn {
            Ok(out) => {
                println!();
                report(&out);
                messages.push(Message::new("assistant", &out.text));
            }
            Err(e) => {
                messages.pop();
                eprintln!("nindub: {e}; the message was not kept, try a shorter one");
            }
        }
    }
    loaded.memory.report(args.engine.budget.map(|b| b.as_u64()));
    Ok(())
}
