//! The Cantrip and the Ritual on the real SmolLM2.

use candle_core::Device;
use nindub::assets;
use nindub::model::generate::{Engine, GenerateConfig, Generator, LoadOptions, StopReason};
use nindub::model::sample::SamplingConfig;

fn generator() -> Generator {
    Generator::load(&assets::smollm2().unwrap(), &Device::Cpu).unwrap()
}

fn greedy(max_tokens: usize) -> GenerateConfig {
    GenerateConfig {
        sampling: SamplingConfig::greedy(),
        max_tokens,
        ..Default::default()
    }
}

#[test]
fn the_ritual_is_greedy_llama_cpp_and_the_cache_changes_nothing() {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/llama_cpp_smollm2.json")).unwrap();
    let case = &fixture["generate"][0];
    let prompt: Vec<u32> = serde_json::from_value(case["prompt_ids"].clone()).unwrap();
    let expected: Vec<u32> = serde_json::from_value(case["greedy_ids"].clone()).unwrap();
    let mut g = generator();
    // A GGUF on the CPU decodes on the fused engine; its no-cache mode (the
    // whole sequence again at every step) and candle's engine agree with
    // llama.cpp.
    assert!(g.fused().is_some(), "the fused engine is the CPU default");
    let with_cache = g.generate(&prompt, &greedy(12), |_| true).unwrap();
    assert_eq!(with_cache.tokens, expected[..12]);
    let without = g
        .generate(
            &prompt,
            &GenerateConfig {
                use_cache: false,
                ..greedy(12)
            },
            |_| true,
        )
        .unwrap();
    assert_eq!(without.tokens, with_cache.tokens);
    assert_eq!(
        with_cache.text,
        g.tokenizer.decode(&expected[..12], true).unwrap()
    );
    assert_eq!(with_cache.stop_reason, StopReason::MaxTokens);
    drop(g);
    let opts = LoadOptions {
        engine: Engine::Candle,
        ..Default::default()
    };
    let mut c = Generator::open(&assets::smollm2().unwrap(), &opts).unwrap();
    assert_eq!(c.decoder.name(), "candle");
    let on_candle = c.generate(&prompt, &greedy(12), |_| true).unwrap();
    assert_eq!(on_candle.tokens, expected[..12]);
}

#[test]
fn steps_stream_the_text_and_the_candidates() {
    let mut g = generator();
    let prompt = g.tokenizer.encode("The capital of France is").unwrap();
    let mut streamed = String::new();
    let mut steps = 0;
    let out = g
        .generate(
            &prompt,
            &GenerateConfig {
                top_n: 5,
                ..greedy(6)
            },
            |s| {
                streamed.push_str(&s.text);
                assert_eq!(s.candidates.len(), 5);
                assert_eq!(
                    s.candidates[0].0, s.token,
                    "greedy picks the most probable candidate"
                );
                assert!(
                    s.candidates.windows(2).all(|w| w[0].2 >= w[1].2),
                    "candidates sorted by probability"
                );
                steps += 1;
                true
            },
        )
        .unwrap();
    assert_eq!(streamed, out.text);
    assert_eq!(steps, 6);
    // The callback can stop it.
    let out = g.generate(&prompt, &greedy(20), |s| s.index < 2).unwrap();
    assert_eq!(
        (out.tokens.len(), out.stop_reason),
        (3, StopReason::Callback)
    );
}

#[test]
fn stop_strings_and_seeds() {
    let mut g = generator();
    let prompt = g.tokenizer.encode("The capital of France is").unwrap();
    let cfg = GenerateConfig {
        stop: vec!["\n".into()],
        ..greedy(20)
    };
    let out = g.generate(&prompt, &cfg, |_| true).unwrap();
    assert_eq!(
        (out.text.as_str(), out.stop_reason),
        (" Paris.", StopReason::StopString)
    );
    let sampled = GenerateConfig {
        max_tokens: 10,
        ..Default::default()
    };
    let a = g.generate(&prompt, &sampled, |_| true).unwrap().tokens;
    let b = g.generate(&prompt, &sampled, |_| true).unwrap().tokens;
    assert_eq!(a, b, "the same seed gives the same tokens");
}

#[test]
fn the_cantrip_answers_and_bad_prompts_are_errors() {
    let mut g = generator();
    let answer = g.cantrip("Name a colour.").unwrap();
    assert!(!answer.trim().is_empty());
    assert!(
        g.generate(&[], &greedy(4), |_| true).is_err(),
        "empty prompt"
    );
    let long = vec![216u32; 8192];
    assert!(
        g.generate(&long, &greedy(4), |_| true).is_err(),
        "no room in the context"
    );
}
