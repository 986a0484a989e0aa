//! NINDUB the Sovereign on the real SmolLM2, greedy: every constrained
//! step is a well-formed call, the budgets end a run, a model going round
//! is stopped, and a tool that hangs, panics or floods is an observation in
//! the trace, never the end of the run. Then `nindub agent` under the
//! smallest byte budget: the same trace as the resident run, its peak
//! memory within the budget.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use nindub::agent::run::THOUGHT;
use nindub::agent::tools::Calc;
use nindub::agent::{Agent, AgentConfig, Bounds, Stop, Tool};
use nindub::model::generate::{Generator, LoadOptions};
use serde_json::Value;

const TASK: &str = "What is 17 times 23?";

fn model() -> Generator {
    Generator::open(&nindub::assets::smollm2().unwrap(), &LoadOptions::default()).unwrap()
}

#[test]
fn constrained_steps_are_well_formed_and_budgets_end_the_run() {
    let mut g = model();
    let agent = Agent::new(vec![Arc::new(Calc)]).unwrap();
    let cfg = AgentConfig {
        max_steps: 4,
        ..AgentConfig::default()
    };
    let mut seen = 0;
    let run = agent.run(&mut g, TASK, &cfg, |_| seen += 1).unwrap();
    assert_eq!(seen, run.steps.len(), "every step reached the trace");
    assert!(!run.steps.is_empty() && run.steps.len() <= cfg.max_steps);
    for s in &run.steps {
        let v: Value = serde_json::from_str(&s.raw)
            .unwrap_or_else(|e| panic!("step {} is not JSON ({e}): {}", s.step, s.raw));
        assert!(s.valid, "step {}: {}", s.step, s.raw);
        assert!(v["thought"].as_str().unwrap().chars().count() <= THOUGHT as usize);
        assert!(["calc", "answer"].contains(&v["tool"].as_str().unwrap()));
        assert!(s.rss_mb.is_some_and(|m| m > 10.0) && s.generate_ms > 0.0);
    }
    // Greedy SmolLM2-135M calls calc on the same input over and over (what
    // the chapter shows): the third identical call ends the run.
    assert_eq!(run.stop, Stop::Loop, "{:#?}", run.steps);
    let last = run.steps.last().unwrap();
    assert!(
        last.observation.contains("the same call a third time"),
        "{last:?}"
    );

    // Unconstrained, with a token budget smaller than one free step wants.
    let tight = AgentConfig {
        constrained: false,
        max_tokens: 150,
        step_tokens: 100,
        ..AgentConfig::default()
    };
    let run = agent.run(&mut g, TASK, &tight, |_| {}).unwrap();
    assert!(run.tokens <= 150, "{} tokens", run.tokens);
    assert!(
        matches!(run.stop, Stop::MaxTokens | Stop::Answered | Stop::Loop),
        "{:?}",
        run.stop
    );
    for s in run.steps.iter().filter(|s| !s.valid) {
        assert!(
            s.observation.starts_with("error: "),
            "the model is told why: {s:?}"
        );
    }
}

/// The calculator's name and description, and a way to misbehave.
struct Bad(&'static str);

impl Tool for Bad {
    fn name(&self) -> &str {
        "calc"
    }
    fn description(&self) -> &str {
        Calc.description()
    }
    fn call(&self, input: &str) -> Result<String, String> {
        match self.0 {
            "hangs" => {
                std::thread::sleep(Duration::from_secs(30));
                Ok(input.into())
            }
            "panics" => panic!("the tool fell over on {input:?}"),
            _ => Ok("9".repeat(1 << 20)),
        }
    }
}

#[test]
fn tools_that_hang_panic_or_flood_are_observations() {
    let mut g = model();
    // Only the hanging tool gets a short bound: a panic's message (and a
    // backtrace, where RUST_BACKTRACE asks for one) takes its time to print.
    for (how, says, timeout) in [
        ("hangs", "no answer within 0.3 s", 300),
        ("panics", "the tool fell over", 20_000),
        ("floods", "more bytes cut", 20_000),
    ] {
        let cfg = AgentConfig {
            max_steps: 2,
            bounds: Bounds {
                max_output: 200,
                timeout: Duration::from_millis(timeout),
            },
            ..AgentConfig::default()
        };
        let agent = Agent::new(vec![Arc::new(Bad(how))]).unwrap();
        let started = Instant::now();
        let run = agent.run(&mut g, TASK, &cfg, |_| {}).unwrap();
        let calls: Vec<_> = run
            .steps
            .iter()
            .filter(|s| s.tool.as_deref() == Some("calc"))
            .collect();
        assert!(!calls.is_empty(), "{how}: the model never called the tool");
        for s in calls {
            assert!(
                s.observation.contains(says) && s.observation.len() <= 400,
                "{how}: {:?}",
                s.observation
            );
            assert!(
                s.tool_ms < timeout as f64 + 1_000.0,
                "{how}: the call took {} ms",
                s.tool_ms
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{how}: the run was held up"
        );
    }
}

/// `nindub agent ARGS` on the calculator task: (the trace's lines, peak
/// resident bytes, stderr).
fn agent_cli(args: &[&str], trace: &std::path::Path) -> (Vec<Value>, u64, String) {
    let mut all: Vec<String> = [
        "agent",
        "--task",
        TASK,
        "--tools",
        "calc",
        "--max-steps",
        "3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    all.extend(["--trace".to_string(), trace.display().to_string()]);
    all.extend(args.iter().map(|s| s.to_string()));
    let (_, err, peak) = common::run_measured(&all);
    let lines = std::fs::read_to_string(trace)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (lines, peak, err)
}

#[test]
fn the_agent_keeps_a_byte_budget_and_its_trace() {
    use nindub::stream::{placement, source::ModelSource};
    let dir = tempfile::tempdir().unwrap();
    let (resident, _, _) = agent_cli(&[], &dir.path().join("resident.jsonl"));
    // The smallest budget: two staging buffers for the layers, the rest
    // streamed for every token; the KV cache for the agent's 2048 positions.
    let source = ModelSource::open(&nindub::assets::smollm2().unwrap()).unwrap();
    let d = placement::demand(&source, 2048).unwrap();
    let budget = d.fixed + d.kv_cache + d.activations + 2 * d.layers.iter().copied().max().unwrap();
    let (streamed, peak, err) = agent_cli(
        &["--budget", &budget.to_string()],
        &dir.path().join("streamed.jsonl"),
    );
    let steps = |t: &[Value]| -> Vec<(Value, Value)> {
        t.iter()
            .filter(|l| l.get("step").is_some())
            .map(|l| (l["raw"].clone(), l["observation"].clone()))
            .collect()
    };
    assert!(!steps(&resident).is_empty());
    assert_eq!(
        steps(&streamed),
        steps(&resident),
        "the budget changed the run"
    );
    assert!(err.contains("streamed"), "{err}");
    let fixed = common::overhead(&err);
    eprintln!("agent --budget {budget}: peak {peak} B, fixed overhead {fixed} B");
    assert!(
        peak <= budget + fixed,
        "budget {budget} B + overhead {fixed} B, but the peak was {peak} B:\n{err}"
    );
    // Each step records its memory and time.
    for l in streamed.iter().filter(|l| l.get("step").is_some()) {
        assert!(l["rss_mb"].as_f64().unwrap() * 1e6 <= (budget + fixed) as f64);
        assert!(l["generate_ms"].as_f64().unwrap() > 0.0);
    }
}
