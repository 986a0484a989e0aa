//! The Sovereign's Hand: what the constraint does to SmolLM2's vocabulary
//! token by token, one structured generation, the calculator task run by
//! the agent with and without the constraint, and what the loop contains
//! (schemas refused by name, tools that hang, panic or flood, a path out
//! of the sandbox). Greedy throughout, so the files are the same on every
//! run; the times are the benchmark's (`cargo codex bench sovereign`).

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use nindub::agent::tools::{Calc, ReadFile};
use nindub::agent::{Agent, AgentConfig, Bounds, Run, Tool, call_bounded};
use nindub::assets;
use nindub::constrain::{Constraint, Grammar};
use nindub::model::generate::{GenerateConfig, Generator, LoadOptions};
use nindub::model::sample::SamplingConfig;
use nindub::model::tokenizer::Message;

use super::{Figures, write};

/// The task the chapter follows.
pub const TASK: &str = "What is 17 times 23?";

/// A record the model is asked to write, and the schema it is held to.
const PERSON_PROMPT: &str =
    "Describe a knight of the round table as JSON with his name, age and weapons.";
const PERSON: &str = r#"{
  "type": "object",
  "properties": {
    "name": {"type": "string", "maxLength": 40},
    "age": {"type": "integer"},
    "weapons": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 3}
  },
  "required": ["name", "age", "weapons"]
}"#;

pub fn generate(out: &Path) -> Result<()> {
    let mut figs = Figures::default();
    let mut g = Generator::open(&assets::smollm2()?, &LoadOptions::default())?;
    let agent = Agent::new(vec![Arc::new(Calc)])?;
    let pretty =
        serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(agent.schema())?)?;
    write(out, "step-schema.json", &(pretty + "\n"))?;

    // 1. The mask, token by token, along a step the schema allows.
    let vocab = g.tokenizer.constraint_vocab();
    figs.number("sovereign.vocab", vocab.len() as f64, 0, "tokens");
    figs.number("sovereign.longest", vocab.longest() as f64, 0, "bytes");
    let grammar = Arc::new(Grammar::from_json(agent.schema())?);
    let step = r#"{"thought": "multiply them", "tool": "calc", "input": "17*23"}"#;
    let mut c = Constraint::new(grammar.clone(), vocab.clone());
    let mut text = format!(
        "{:>3}  {:<16} {:>8}  {:>6}\n",
        "#", "next token", "allowed", "share"
    );
    let (mut fewest, mut most) = (usize::MAX, 0);
    for (i, id) in g.tokenizer.encode(step)?.into_iter().enumerate() {
        let bytes = g.tokenizer.token_bytes(id).unwrap_or_default();
        let mask = c.mask();
        let n = mask.count();
        (fewest, most) = (fewest.min(n), most.max(n));
        writeln!(
            text,
            "{i:>3}  {:<16} {n:>8}  {:>5.2}%",
            format!("{:?}", String::from_utf8_lossy(&bytes)),
            100.0 * n as f64 / vocab.len() as f64
        )?;
        anyhow::ensure!(
            mask.allows(id),
            "the mask refused token {i} of a valid step"
        );
        c.advance(id, &bytes)
            .map_err(|e| anyhow::anyhow!("token {i}: {e:?}"))?;
    }
    anyhow::ensure!(c.is_done(), "the step did not end the document");
    write(out, "mask-walk.txt", &text)?;
    figs.number("sovereign.mask.fewest", fewest as f64, 0, "tokens");
    figs.number("sovereign.mask.most", most as f64, 0, "tokens");
    figs.number("sovereign.mask.computed", c.computed as f64, 0, "");
    figs.number("sovereign.mask.cached", c.cached as f64, 0, "");

    // 2. One structured generation: the record, held to its schema.
    let person = Arc::new(Grammar::from_json(PERSON)?);
    let prompt = g.chat_prompt(&[Message::new("user", PERSON_PROMPT)])?;
    let ids = g.tokenizer.encode(&prompt)?;
    let free = |constraint| GenerateConfig {
        sampling: SamplingConfig::greedy(),
        max_tokens: 120,
        constraint,
        ..Default::default()
    };
    let held = g.generate(&ids, &free(Some(person)), |_| true)?;
    let loose = g.generate(&ids, &free(None), |_| true)?;
    let parsed: serde_json::Value = serde_json::from_str(&held.text)?;
    let mut text = format!("schema:\n{PERSON}\n\nprompt: {PERSON_PROMPT}\n\n");
    writeln!(
        text,
        "held to the schema ({} tokens):\n{}\n",
        held.tokens.len(),
        held.text
    )?;
    writeln!(
        text,
        "free ({} tokens, cut at 120):\n{}",
        loose.tokens.len(),
        loose.text.trim_end()
    )?;
    write(out, "structured.txt", &text)?;
    figs.text(
        "sovereign.person.name",
        parsed["name"].as_str().unwrap_or(""),
    );

    // 3. The task, constrained and free.
    let cfg = |constrained| AgentConfig {
        max_steps: 4,
        constrained,
        ..AgentConfig::default()
    };
    for (mode, constrained) in [("constrained", true), ("free", false)] {
        let run = agent.run(&mut g, TASK, &cfg(constrained), |_| {})?;
        write(out, &format!("run-{mode}.md"), &trace_table(&run))?;
        let (valid, steps) = run.valid_steps();
        figs.number(&format!("sovereign.run.{mode}.steps"), steps as f64, 0, "");
        figs.number(&format!("sovereign.run.{mode}.valid"), valid as f64, 0, "");
        figs.number(
            &format!("sovereign.run.{mode}.tokens"),
            run.tokens as f64,
            0,
            "",
        );
        figs.text(
            &format!("sovereign.run.{mode}.stop"),
            &format!("{:?}", run.stop),
        );
    }

    // 4. What the loop contains.
    write(out, "contained.txt", &contained()?)?;
    figs.write(out)
}

/// A run as a table: step, well formed, what the model wrote, what it saw.
fn trace_table(run: &Run) -> String {
    let cell = |s: &str| s.trim().replace('|', "\\|").replace('\n', " ⏎ ");
    let mut t = String::from(
        "| step | well formed | the model wrote | observation | tokens |\n|---:|:---:|---|---|---:|\n",
    );
    for s in &run.steps {
        let _ = writeln!(
            t,
            "| {} | {} | `{}` | {} | {} |",
            s.step,
            if s.valid { "yes" } else { "**no**" },
            cell(&s.raw).replace('`', "'"),
            cell(&s.observation),
            s.tokens
        );
    }
    let _ = writeln!(
        t,
        "\nStop: `{:?}` after {} steps and {} tokens; answer: {}.",
        run.stop,
        run.steps.len(),
        run.tokens,
        run.answer.as_deref().unwrap_or("none")
    );
    t
}

/// Each thing the loop must survive, and what it makes of it.
fn contained() -> Result<String> {
    let mut t = String::from("Schemas the compiler cannot honour, refused by name:\n");
    for schema in [
        r#"{"type": "string", "pattern": "^[a-z]+$"}"#,
        r##"{"type": "object", "properties": {"a": {"$ref": "#/defs/a"}}}"##,
        r#"{"oneOf": [{"type": "integer"}, {"type": "string"}]}"#,
        r#"{"type": "array", "items": {"type": "string"}, "uniqueItems": true}"#,
    ] {
        let why = match Grammar::from_json(schema) {
            Ok(_) => "accepted (it should not be)".to_string(),
            Err(e) => e.to_string(),
        };
        writeln!(t, "  {schema}\n    → {why}")?;
    }
    t.push_str(
        "\nTools that misbehave, called within 600 bytes and 10 s (the one that hangs, 0.3 s):\n",
    );
    // A panic's message (and a backtrace, where RUST_BACKTRACE asks for
    // one) takes its time to print: only the hanging tool gets the short
    // bound, so that the others are never reported as hung.
    let bounds = Bounds::default();
    let short = Bounds {
        timeout: Duration::from_millis(300),
        ..bounds
    };
    let cases: [(&str, Arc<dyn Tool>, &str); 4] = [
        ("hangs for 30 s", Arc::new(Misbehaves::Hangs), "17*23"),
        ("panics", Arc::new(Misbehaves::Panics), "17*23"),
        ("answers with 1 MB", Arc::new(Misbehaves::Floods), "17*23"),
        ("calc, divided by zero", Arc::new(Calc), "1/0"),
    ];
    for (what, tool, input) in cases {
        let limit = if what.starts_with("hangs") {
            short
        } else {
            bounds
        };
        let called = call_bounded(tool, input, limit);
        let shown = if called.observation.len() > 90 {
            format!(
                "{}… ({} bytes in all)",
                &called.observation[..40],
                called.observation.len()
            )
        } else {
            called.observation
        };
        writeln!(t, "  {what}: {shown}")?;
    }
    t.push_str("\nread_file with the sandbox `sandbox/` (holding notes/plan.md; secret.txt lies beside it):\n");
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("sandbox");
    std::fs::create_dir_all(root.join("notes"))?;
    std::fs::write(root.join("notes/plan.md"), "Read the Codex.\n")?;
    std::fs::write(dir.path().join("secret.txt"), "the treasury key\n")?;
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("link.txt"))?;
    let reader = Arc::new(ReadFile::new(&root, 4096)?);
    for input in [
        "notes/plan.md",
        "../secret.txt",
        "notes/../../secret.txt",
        "link.txt",
        "/etc/passwd",
        "notes",
    ] {
        let called = call_bounded(reader.clone(), input, bounds);
        writeln!(t, "  {input}: {}", called.observation.trim_end())?;
    }
    Ok(t)
}

/// The calculator's name with a way to fail.
enum Misbehaves {
    Hangs,
    Panics,
    Floods,
}

impl Tool for Misbehaves {
    fn name(&self) -> &str {
        "calc"
    }
    fn description(&self) -> &str {
        "evaluates arithmetic"
    }
    fn call(&self, input: &str) -> Result<String, String> {
        match self {
            Misbehaves::Hangs => {
                std::thread::sleep(Duration::from_secs(30));
                Ok(input.into())
            }
            Misbehaves::Panics => panic!("the calculator's stack overflowed on {input:?}"),
            Misbehaves::Floods => Ok("9".repeat(1 << 20)),
        }
    }
}
