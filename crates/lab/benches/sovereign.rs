//! NINDUB the Sovereign's measurements, in one run: `cargo bench -p lab
//! --bench sovereign`. A fixed set of tasks with checkable answers
//! (arithmetic for the calculator, look-ups in the Codex's own chapters
//! for the search), each run by the agent loop on SmolLM2-135M-Instruct
//! with every step held to the step schema and with the model writing
//! freely; then the constraint's own cost per token, its masks replayed
//! over the steps the model wrote.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nindub::agent::tools::{Calc, Search};
use nindub::agent::{Agent, AgentConfig, Tool};
use nindub::constrain::{Constraint, Grammar};
use nindub::model::generate::{Generator, LoadOptions};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// A task, the tool it needs, and the number its answer must contain.
const TASKS: &[(&str, &str)] = &[
    ("What is 17 times 23?", "391"),
    ("What is 1234 plus 5678?", "6912"),
    ("What is 144 divided by 12?", "12"),
    ("What is 2 to the power of 10?", "1024"),
    ("How many bytes does one Q4_K super-block take?", "144"),
    ("How many weights does one K-quant super-block hold?", "256"),
    ("What is the hidden size of SmolLM2-135M?", "576"),
    (
        "How many gigabytes of memory does the Mana Crystal have?",
        "4",
    ),
];

/// Whether `answer` contains `want` as a whole number.
fn correct(answer: Option<&str>, want: &str) -> bool {
    answer.is_some_and(|a| a.split(|c: char| !c.is_ascii_digit()).any(|n| n == want))
}

fn main() -> Res<()> {
    let started = Instant::now();
    println!("# sovereign");
    println!(
        "profile: {}; rayon threads: {}; CPU: {}; model: SmolLM2-135M-Instruct (Q4_1), greedy",
        if cfg!(debug_assertions) {
            "DEBUG"
        } else {
            "release"
        },
        rayon::current_num_threads(),
        lab::machine::cpu()
    );
    let pages = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../book/src");
    let cache = nindub::assets::cache_dir().join("agent");
    let tools: Vec<Arc<dyn Tool>> = vec![
        Arc::new(Calc),
        Arc::new(Search::over_pages(&pages, &cache, 2)?),
    ];
    let agent = Agent::new(tools)?;
    let mut g = Generator::open(&nindub::assets::smollm2()?, &LoadOptions::default())?;
    println!(
        "tools: calc, search (MiniLM over the book's pages); {} tasks; at most 6 steps of 256 tokens",
        TASKS.len()
    );
    println!(
        "\n{:<58}  {:<13}  {:>5}  {:>5}  {:>6}  {:>7}  {:>8}",
        "task", "mode", "steps", "valid", "tokens", "correct", "seconds"
    );
    let mut raws: Vec<String> = vec![];
    let mut totals = [(0usize, 0usize, 0usize, 0usize, 0f64, 0f64); 2];
    for (task, want) in TASKS {
        for (m, constrained) in [true, false].into_iter().enumerate() {
            let cfg = AgentConfig {
                constrained,
                ..AgentConfig::default()
            };
            let t = Instant::now();
            let run = agent.run(&mut g, task, &cfg, |_| {})?;
            let secs = t.elapsed().as_secs_f64();
            let (valid, steps) = run.valid_steps();
            let ok = correct(run.answer.as_deref(), want);
            println!(
                "{:<58}  {:<13}  {steps:>5}  {valid:>5}  {:>6}  {:>7}  {secs:>8.1}",
                task,
                if constrained { "constrained" } else { "free" },
                run.tokens,
                if ok { "yes" } else { "no" },
            );
            let tot = &mut totals[m];
            tot.0 += steps;
            tot.1 += valid;
            tot.2 += ok as usize;
            tot.3 += run.tokens;
            tot.4 += secs;
            tot.5 += run
                .steps
                .iter()
                .map(|s| s.generate_ms - s.prompt_ms)
                .sum::<f64>();
            if constrained {
                raws.extend(run.steps.iter().map(|s| s.raw.clone()));
            }
        }
    }
    println!(
        "\n{:<13}  {:>5}  {:>11}  {:>8}  {:>8}  {:>7}  {:>6}  {:>15}",
        "mode", "steps", "valid calls", "valid %", "correct", "tokens", "s/task", "decode ms/token"
    );
    for (m, name) in ["constrained", "free"].iter().enumerate() {
        let (steps, valid, ok, tokens, secs, ms) = totals[m];
        println!(
            "{name:<13}  {steps:>5}  {valid:>11}  {:>8.1}  {:>5} / {}  {tokens:>7}  {:>6.1}  {:>15.2}",
            100.0 * valid as f64 / steps.max(1) as f64,
            ok,
            TASKS.len(),
            secs / TASKS.len() as f64,
            ms / tokens.max(1) as f64
        );
    }
    // The constraint's cost: every constrained step's text again, token by
    // token, through a fresh constraint (masks computed, then cached).
    let grammar = Arc::new(Grammar::from_json(agent.schema())?);
    let vocab = g.tokenizer.constraint_vocab();
    let (mut tokens, mut spent) = (0usize, Duration::ZERO);
    let (mut computed, mut cached) = (0, 0);
    for raw in &raws {
        let mut c = Constraint::new(grammar.clone(), vocab.clone());
        for id in g.tokenizer.encode(raw)? {
            let bytes = g.tokenizer.token_bytes(id).unwrap_or_default();
            let t = Instant::now();
            let mask = c.mask();
            let allowed = mask.allows(id);
            let took = c.advance(id, &bytes).is_ok();
            spent += t.elapsed();
            tokens += 1;
            if !(allowed && took) {
                break; // the text re-tokenized differently; stop this step
            }
        }
        computed += c.computed;
        cached += c.cached;
    }
    println!(
        "\nconstraint overhead: {:.3} ms per token over {tokens} tokens ({computed} masks computed, {cached} from the cache)",
        spent.as_secs_f64() * 1e3 / tokens.max(1) as f64
    );
    println!("ran in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
