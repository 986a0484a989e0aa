//! The plan–act–observe loop: the model writes a step (a thought, a tool,
//! its input), the tool answers, the answer goes back as an observation,
//! until the model answers or a budget ends the run.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::tool::{Bounds, Outcome, Tool, call_bounded};
use crate::constrain::Grammar;
use crate::error::{Error, Result};
use crate::model::generate::{GenerateConfig, Generator};
use crate::model::sample::SamplingConfig;
use crate::model::tokenizer::Message;

/// The name of the step that ends the run with an answer.
pub const ANSWER: &str = "answer";
/// Characters of a step's thought and of a tool's input at most. With the
/// schema's few structural bytes a step of plain text is at most about 230
/// characters, so the default [`AgentConfig::step_tokens`] of 256 closes
/// its object (a token writes at least one byte); escapes stretch the text
/// (`\u00e9` is six bytes for one character), and a step that runs out of
/// tokens is recorded as not well formed.
pub const THOUGHT: u32 = 100;
pub const INPUT: u32 = 100;

/// How far a run may go.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Steps at most (a step is one reply of the model).
    pub max_steps: usize,
    /// Tokens the model may generate over the whole run.
    pub max_tokens: usize,
    /// Tokens one step may take.
    pub step_tokens: usize,
    /// Hold every step to the step schema ([`Agent::schema`]).
    pub constrained: bool,
    pub sampling: SamplingConfig,
    pub bounds: Bounds,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            max_steps: 6,
            max_tokens: 1536,
            step_tokens: 256,
            constrained: true,
            sampling: SamplingConfig::greedy(),
            bounds: Bounds::default(),
        }
    }
}

/// One step as the trace records it.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub step: usize,
    /// What the model wrote, whole.
    pub raw: String,
    /// Whether it was a well-formed step (JSON of the step schema).
    pub valid: bool,
    pub thought: Option<String>,
    pub tool: Option<String>,
    pub input: Option<String>,
    /// What the model is shown next (the tool's bounded answer, or why
    /// the step was refused).
    pub observation: String,
    pub tokens: usize,
    /// Tokens of the prompt the model read first (the whole conversation:
    /// each step reads it again).
    pub prompt_tokens: usize,
    /// Time for the model's reply (of which `prompt_ms` on the prompt) and
    /// for the tool, in milliseconds.
    pub generate_ms: f64,
    pub prompt_ms: f64,
    pub tool_ms: f64,
    /// The process's resident memory after the step, in MB.
    pub rss_mb: Option<f64>,
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    Answered,
    MaxSteps,
    MaxTokens,
    /// The same call a third time: the model is going round.
    Loop,
    /// The conversation no longer fits the model's context.
    ContextFull,
}

/// A finished run.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub answer: Option<String>,
    pub stop: Stop,
    pub steps: Vec<StepRecord>,
    pub tokens: usize,
}

impl Run {
    /// Steps that were well-formed calls, and steps in all.
    pub fn valid_steps(&self) -> (usize, usize) {
        (
            self.steps.iter().filter(|s| s.valid).count(),
            self.steps.len(),
        )
    }
}

// ANCHOR: step_budget
/// The tokens the next step may take, or `None` when the run must end: its
/// steps are spent, or its tokens (a step of 0 tokens is no step).
pub fn step_budget(cfg: &AgentConfig, steps_done: usize, tokens_used: usize) -> Option<usize> {
    if steps_done >= cfg.max_steps {
        return None;
    }
    let budget = cfg
        .max_tokens
        .saturating_sub(tokens_used)
        .min(cfg.step_tokens);
    (budget > 0).then_some(budget)
}
// ANCHOR_END: step_budget

/// A set of tools, and the step schema built from their names.
pub struct Agent {
    tools: Vec<Arc<dyn Tool>>,
    schema: String,
    grammar: Arc<Grammar>,
}

impl Agent {
    pub fn new(tools: Vec<Arc<dyn Tool>>) -> Result<Agent> {
        let mut names: Vec<&str> = tools.iter().map(|t| t.name()).collect();
        if let Some(dup) = names
            .iter()
            .enumerate()
            .find_map(|(i, n)| names[..i].contains(n).then_some(*n))
        {
            return Err(Error::invalid(
                "agent tools",
                format!("two tools are named `{dup}`"),
            ));
        }
        if names.contains(&ANSWER) {
            return Err(Error::invalid(
                "agent tools",
                format!("`{ANSWER}` is the name of the last step"),
            ));
        }
        names.push(ANSWER);
        // ANCHOR: step_schema
        let schema = serde_json::json!({
            "type": "object",
            "properties": {
                "thought": {"type": "string", "maxLength": THOUGHT},
                "tool": {"enum": names},
                "input": {"type": "string", "maxLength": INPUT}
            },
            "required": ["thought", "tool", "input"]
        });
        // ANCHOR_END: step_schema
        // serde_json writes keys sorted; the model should think first, so
        // the text is written in this order by hand.
        let schema = format!(
            r#"{{"type":"object","properties":{{"thought":{},"tool":{},"input":{}}},"required":["thought","tool","input"]}}"#,
            schema["properties"]["thought"],
            schema["properties"]["tool"],
            schema["properties"]["input"]
        );
        let grammar = Arc::new(Grammar::from_json(&schema)?);
        Ok(Agent {
            tools,
            schema,
            grammar,
        })
    }

    /// The step schema's JSON text.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// What the model is told before the task.
    pub fn system_prompt(&self) -> String {
        let mut s = String::from(
            "You solve tasks with tools. Reply with one JSON object per turn: \
             {\"thought\": \"...\", \"tool\": \"...\", \"input\": \"...\"}. Tools:\n",
        );
        for t in &self.tools {
            s.push_str(&format!("- {}: {}\n", t.name(), t.description()));
        }
        s.push_str(&format!(
            "- {ANSWER}: the final answer, as the input.\nAfter each tool call you see its observation."
        ));
        s
    }

    // ANCHOR: run
    /// Runs `task` on `g` until an answer or a budget; `on_step` sees each
    /// step as it ends (the trace).
    pub fn run(
        &self,
        g: &mut Generator,
        task: &str,
        cfg: &AgentConfig,
        mut on_step: impl FnMut(&StepRecord),
    ) -> Result<Run> {
        let mut messages = vec![
            Message::new("system", &self.system_prompt()),
            Message::new("user", task),
        ];
        let (mut steps, mut tokens) = (vec![], 0usize);
        let mut calls: Vec<(String, String)> = vec![];
        loop {
            let Some(budget) = step_budget(cfg, steps.len(), tokens) else {
                let stop = if steps.len() >= cfg.max_steps {
                    Stop::MaxSteps
                } else {
                    Stop::MaxTokens
                };
                return Ok(self.end(None, stop, steps, tokens));
            };
            let step = steps.len() + 1;
            let prompt = g.chat_prompt(&messages)?;
            let ids = g.tokenizer.encode(&prompt)?;
            if ids.len() + budget > g.decoder.capacity() {
                return Ok(self.end(None, Stop::ContextFull, steps, tokens));
            }
            let config = GenerateConfig {
                sampling: SamplingConfig {
                    seed: cfg.sampling.seed.wrapping_add(step as u64),
                    ..cfg.sampling.clone()
                },
                max_tokens: budget,
                top_n: 0,
                constraint: cfg.constrained.then(|| self.grammar.clone()),
                ..Default::default()
            };
            let started = Instant::now();
            let out = g.generate(&ids, &config, |_| true)?;
            let generate_ms = started.elapsed().as_secs_f64() * 1e3;
            tokens += out.tokens.len();
            let mut record = StepRecord {
                step,
                raw: out.text.clone(),
                valid: false,
                thought: None,
                tool: None,
                input: None,
                observation: String::new(),
                tokens: out.tokens.len(),
                prompt_tokens: ids.len(),
                generate_ms,
                prompt_ms: out.prompt_secs * 1e3,
                tool_ms: 0.0,
                rss_mb: None,
            };
            let (mut answer, mut looped) = (None, false);
            match self.parse(&out.text) {
                Err(why) => {
                    record.observation = format!(
                        "error: {why}. Reply with one JSON object: {{\"thought\": \"...\", \"tool\": \"...\", \"input\": \"...\"}}"
                    );
                }
                Ok((thought, tool, input)) => {
                    record.valid = true;
                    let call = (tool.clone(), input.clone());
                    if tool == ANSWER {
                        answer = Some(input.clone());
                        record.observation = "(the answer)".into();
                    } else if calls.iter().filter(|c| **c == call).count() >= 2 {
                        looped = true;
                        record.observation = "error: the same call a third time".into();
                    } else {
                        let t = self.tools.iter().find(|t| t.name() == tool).cloned();
                        let called = call_bounded(
                            t.ok_or_else(|| Error::invalid("agent", format!("no tool `{tool}`")))?,
                            &input,
                            cfg.bounds,
                        );
                        record.tool_ms = called.elapsed.as_secs_f64() * 1e3;
                        record.observation = called.observation;
                        if matches!(called.outcome, Outcome::Ok(_)) {
                            calls.push(call);
                        }
                    }
                    (record.thought, record.tool, record.input) =
                        (Some(thought), Some(tool), Some(input));
                }
            }
            record.rss_mb = rss_mb();
            on_step(&record);
            messages.push(Message::new("assistant", &record.raw));
            messages.push(Message::new(
                "user",
                &format!("Observation: {}", record.observation),
            ));
            steps.push(record);
            if looped {
                return Ok(self.end(None, Stop::Loop, steps, tokens));
            }
            if answer.is_some() {
                return Ok(self.end(answer, Stop::Answered, steps, tokens));
            }
        }
    }
    // ANCHOR_END: run

    /// A reply as a step: `(thought, tool, input)`, or why it is not one.
    pub fn parse(&self, text: &str) -> std::result::Result<(String, String, String), String> {
        let v: serde_json::Value =
            serde_json::from_str(text.trim()).map_err(|e| format!("not JSON ({e})"))?;
        let field = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .map(str::to_string)
                .ok_or_else(|| format!("no string `{k}`"))
        };
        let (thought, tool, input) = (field("thought")?, field("tool")?, field("input")?);
        if tool != ANSWER && !self.tools.iter().any(|t| t.name() == tool) {
            return Err(format!("no tool named `{tool}`"));
        }
        Ok((thought, tool, input))
    }

    fn end(
        &self,
        answer: Option<String>,
        stop: Stop,
        steps: Vec<StepRecord>,
        tokens: usize,
    ) -> Run {
        Run {
            answer,
            stop,
            steps,
            tokens,
        }
    }
}

fn rss_mb() -> Option<f64> {
    crate::process::rss().map(|(now, _)| now as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::super::tools::Calc;
    use super::*;

    #[test]
    fn a_step_is_parsed_or_refused_with_the_reason() {
        let agent = Agent::new(vec![Arc::new(Calc)]).unwrap();
        assert_eq!(
            agent.parse(r#"{"thought":"multiply","tool":"calc","input":"17*23"}"#),
            Ok(("multiply".into(), "calc".into(), "17*23".into()))
        );
        assert!(
            agent
                .parse(r#"{"thought":"x","tool":"web","input":""}"#)
                .unwrap_err()
                .contains("`web`")
        );
        assert!(
            agent
                .parse(r#"{"thought":"x","tool":"calc"}"#)
                .unwrap_err()
                .contains("`input`")
        );
        assert!(
            agent
                .parse(r#"{"thought":"x","#)
                .unwrap_err()
                .contains("not JSON")
        );
        // The schema the decoder holds steps to is the one parse reads.
        let g = Grammar::from_json(agent.schema()).unwrap();
        let mut s = crate::constrain::State::new(&g);
        assert!(
            s.feed_all(&g, br#"{"thought": "a", "tool": "answer", "input": "391"}"#) && s.is_done()
        );
        assert!(Agent::new(vec![Arc::new(Calc), Arc::new(Calc)]).is_err());
    }
}
