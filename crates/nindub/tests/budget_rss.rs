//! "A budget bounds memory" as a promise of the program: `nindub generate
//! --budget B` and `nindub serve --budget B`, run as child processes on
//! SmolLM2 at three budgets (everything resident, half streamed, one layer
//! at a time), peak at most B plus the fixed overhead the process measured
//! before it read a weight (program, header, tokenizer, allocator; for the
//! server, its HTTP runtime too), and answer exactly as the resident run.
//! The peak is the kernel's (`VmHWM` of the child), not the program's own
//! report.

mod common;

use common::{memory_kb, overhead, run_measured, serve};

use nindub::assets;
use nindub::model::generate::{Engine, Generator, LoadOptions};
use nindub::model::tokenizer::GgufTokenizer;
use nindub::serve::client::Client;
use nindub::stream::placement;
use nindub::stream::source::ModelSource;
use nindub::stream::streamer::StreamOptions;
use serde_json::json;

const PROMPT: &str = "The capital of France is";
const TOKENS: usize = 8;

/// Three budgets for SmolLM2 with a KV cache for `context` positions:
/// everything resident, about half the layers, and the minimum (two
/// staging buffers and nothing else resident).
fn budgets(context: usize) -> [u64; 3] {
    let source = ModelSource::open(&assets::smollm2().unwrap()).unwrap();
    let d = placement::demand(&source, context).unwrap();
    let reserved = d.fixed + d.kv_cache + d.activations;
    let all: u64 = reserved + d.layers.iter().sum::<u64>();
    let minimum = reserved + 2 * d.layers.iter().copied().max().unwrap();
    [all, (all + minimum) / 2, minimum]
}

/// The promise: `what`'s peak within its budget plus the fixed overhead it
/// printed, and that overhead no larger than a program (it cannot hide
/// weights).
fn assert_kept(what: &str, budget: u64, peak: u64, stderr: &str) {
    let fixed = overhead(stderr);
    eprintln!(
        "{what} --budget {budget}: peak {peak} B = budget + {:.1} MB; fixed overhead {fixed} B",
        (peak as f64 - budget as f64) / 1e6
    );
    assert!(
        fixed < 96 << 20,
        "{what}: an overhead of {fixed} B hides more than a program"
    );
    assert!(
        peak <= budget + fixed,
        "{what}: budget {budget} B + overhead {fixed} B, but the peak was {peak} B:\n{stderr}"
    );
}

#[test]
fn generate_keeps_its_budget_and_its_answer() {
    let model = assets::smollm2().unwrap();
    let base = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "generate",
            "--prompt",
            PROMPT,
            "--temperature",
            "0",
            "--max-tokens",
            &TOKENS.to_string(),
            "--logits",
            "--top",
            "5",
            "--model",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.push(model.display().to_string());
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let (resident, _, _) = run_measured(&base(&[]));
    let tokenizer = GgufTokenizer::from_gguf(&ModelSource::open(&model).unwrap().files[0]).unwrap();
    let context = tokenizer.encode(PROMPT).unwrap().len() + TOKENS + 1;
    for budget in budgets(context) {
        let (out, err, peak) = run_measured(&base(&["--budget", &budget.to_string()]));
        assert_eq!(out, resident, "budget {budget}: the answer changed");
        assert_kept("generate", budget, peak, &err);
    }
}

#[test]
fn serve_keeps_its_budget() {
    // `serve` reserves the KV cache for its longest admitted request.
    let (max_prompt, max_tokens) = (64, 16);
    for budget in budgets(max_prompt + max_tokens + 1) {
        let served = serve(&[
            "--max-prompt-tokens",
            &max_prompt.to_string(),
            "--max-tokens",
            &max_tokens.to_string(),
            "--budget",
            &budget.to_string(),
        ]);
        let client = Client::new(&served.url);
        for prompt in ["Once upon a time", PROMPT, "Rust is"] {
            let (status, body) = client
                .post(
                    "/v1/completions",
                    &json!({ "prompt": prompt, "max_tokens": max_tokens, "temperature": 0 }),
                )
                .unwrap();
            assert_eq!(status, 200, "{body}");
        }
        let (_, peak) = memory_kb(served.child.id()).unwrap();
        let err = served.stderr.lock().unwrap().clone();
        drop(served);
        assert_kept("serve", budget, peak * 1024, &err);
    }
}

/// In process, the logits themselves: a budgeted engine streams the same
/// bytes into the same arithmetic, bit for bit.
#[test]
fn budgeted_logits_are_the_resident_logits_bit_for_bit() {
    let model = assets::smollm2().unwrap();
    let resident_opts = LoadOptions {
        engine: Engine::Fused,
        ..Default::default()
    };
    let mut resident = Generator::open(&model, &resident_opts).unwrap();
    let ids = resident.tokenizer.encode(PROMPT).unwrap();
    let want = resident.decoder.forward(&ids).unwrap();
    let next = resident.decoder.step(1).unwrap();
    for budget in budgets(ids.len() + 2) {
        let opts = LoadOptions {
            stream: StreamOptions {
                budget: Some(budget),
                context: ids.len() + 2,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut g = Generator::open(&model, &opts).unwrap();
        assert_eq!(g.decoder.name(), "fused");
        assert_eq!(g.decoder.forward(&ids).unwrap(), want, "budget {budget}");
        assert_eq!(g.decoder.step(1).unwrap(), next, "budget {budget}");
    }
}
