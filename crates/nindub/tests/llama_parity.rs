//! The Ritual's model against its two peers: llama.cpp's greedy tokens
//! (fixture) and candle-transformers' `quantized_llama` logits, on the same
//! SmolLM2 GGUF.

use candle_core::{Device, IndexOp, Tensor};
use nindub::assets;
use nindub::model::gguf::GgufFile;
use nindub::model::llama::{ForwardOptions, Llama};

/// Largest absolute logit difference tolerated against candle-transformers
/// (same kernels, different op order: float rounding only).
const LOGIT_TOLERANCE: f32 = 1e-3;

fn model() -> (GgufFile, Llama) {
    let file = GgufFile::open(&assets::smollm2().unwrap()).unwrap();
    let model = Llama::from_gguf(&file, &Device::Cpu).unwrap();
    (file, model)
}

/// The largest absolute difference between two tensors of one shape.
fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn argmax(logits: &Tensor) -> u32 {
    logits
        .flatten_all()
        .unwrap()
        .argmax(0)
        .unwrap()
        .to_scalar::<u32>()
        .unwrap()
}

fn greedy(model: &mut Llama, prompt: &[u32], n: usize, eos: u32) -> Vec<u32> {
    model.clear_cache();
    let mut out = vec![];
    let mut next = argmax(
        &model
            .forward(prompt, &ForwardOptions::default())
            .unwrap()
            .logits,
    );
    while out.len() < n && next != eos {
        out.push(next);
        next = argmax(
            &model
                .forward(&[next], &ForwardOptions::default())
                .unwrap()
                .logits,
        );
    }
    out
}

/// Where llama.cpp's best and second-best logits are closer than this, the
/// choice is inside the rounding noise between two Q4_1 implementations
/// (llama.cpp and candle quantize activations differently; their logits
/// differ by up to about 0.5): after such a step, greedy paths may part.
const NEAR_TIE: f64 = 0.25;
/// Largest difference tolerated between our logits and llama.cpp's, over
/// llama.cpp's ten best candidates at the first step.
const LLAMA_CPP_LOGIT_TOLERANCE: f32 = 1.0;

#[test]
fn greedy_tokens_match_llama_cpp() {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/llama_cpp_smollm2.json")).unwrap();
    let (file, mut model) = model();
    let tok = nindub::model::tokenizer::GgufTokenizer::from_gguf(&file).unwrap();
    for case in fixture["generate"].as_array().unwrap() {
        let prompt: Vec<u32> = serde_json::from_value(case["prompt_ids"].clone()).unwrap();
        let expected: Vec<u32> = serde_json::from_value(case["greedy_ids"].clone()).unwrap();
        let margins: Vec<f64> = serde_json::from_value(case["greedy_margins"].clone()).unwrap();
        assert_eq!(
            tok.encode(case["prompt"].as_str().unwrap()).unwrap(),
            prompt
        );
        // Identical up to llama.cpp's own first near-tie.
        let decided = margins
            .iter()
            .position(|&m| m < NEAR_TIE)
            .unwrap_or(expected.len());
        let got = greedy(&mut model, &prompt, expected.len(), tok.eos);
        assert_eq!(
            got[..decided.min(got.len())],
            expected[..decided],
            "prompt {:?}: ours {:?} vs llama.cpp {:?}",
            case["prompt"],
            tok.decode(&got, false),
            case["greedy_text"]
        );
        // The first step's logits, against llama.cpp's own.
        model.clear_cache();
        let logits = model
            .forward(&prompt, &ForwardOptions::default())
            .unwrap()
            .logits;
        let row = logits.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for pair in case["first_step_top10"].as_array().unwrap() {
            let (id, value) = (
                pair[0].as_u64().unwrap() as usize,
                pair[1].as_f64().unwrap() as f32,
            );
            let d = (row[id] - value).abs();
            assert!(
                d < LLAMA_CPP_LOGIT_TOLERANCE,
                "token {id}: ours {} vs llama.cpp {value}",
                row[id]
            );
        }
    }
}

#[test]
fn logits_match_candle_transformers_quantized_llama() {
    let path = assets::smollm2().unwrap();
    let (file, mut ours) = model();
    let tok = nindub::model::tokenizer::GgufTokenizer::from_gguf(&file).unwrap();
    let mut reader = std::fs::File::open(&path).unwrap();
    let content = candle_core::quantized::gguf_file::Content::read(&mut reader).unwrap();
    let mut reference = candle_transformers::models::quantized_llama::ModelWeights::from_gguf(
        content,
        &mut reader,
        &Device::Cpu,
    )
    .unwrap();
    // Below ten positions both run the same kernels in the same order and
    // agree to the bit; from ten positions on candle-transformers' forward
    // takes another numerical path (its logits move by ~0.5 while ours,
    // prefilled or step by step, do not), and so do its single-token steps
    // after a prefill: an open question for the chapter. Our own cached
    // steps are checked against our uncached forward below.
    let prompt = tok.encode("The Mana Crystal holds").unwrap();
    assert!(prompt.len() < 10);
    let input = Tensor::new(prompt.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let theirs = reference.forward(&input, 0).unwrap().squeeze(0).unwrap();
    let mine = ours
        .forward(&prompt, &ForwardOptions::default())
        .unwrap()
        .logits
        .squeeze(0)
        .unwrap();
    let diff = max_abs_diff(&mine, &theirs);
    assert!(diff < LOGIT_TOLERANCE, "prefill logits differ by {diff}");
}

/// Generation with the KV cache gives the logits of recomputing the whole
/// sequence without it; hidden states and the logit lens agree with the logits.
#[test]
fn cache_hidden_states_and_lens_are_consistent() {
    let (file, mut model) = model();
    let tok = nindub::model::tokenizer::GgufTokenizer::from_gguf(&file).unwrap();
    let prompt = tok.encode("To be, or not to be").unwrap();
    let all = ForwardOptions {
        all_logits: true,
        hidden_states: true,
        attention_of_layer: Some(3),
        linear_inputs: false,
    };
    let full = model.forward(&prompt, &all).unwrap();
    assert_eq!(full.logits.dims(), &[prompt.len(), 49_152]);
    assert_eq!(full.hidden_states.len(), 31, "embedding + 30 layers");
    let attn = full.attention.unwrap();
    assert_eq!(attn.dims(), &[9, prompt.len(), prompt.len()]);
    let row_sums = attn
        .sum(2)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(
        row_sums.iter().all(|s| (s - 1.0).abs() < 1e-4),
        "attention rows are distributions"
    );
    let upper = attn
        .i((.., 0, 1..))
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(upper, 0.0, "the first position sees only itself");
    let lens = model.lens(full.hidden_states.last().unwrap()).unwrap();
    let d = max_abs_diff(&lens, &full.logits);
    assert!(
        d < 1e-4,
        "the lens of the last layer is the model's own head ({d})"
    );

    // Incremental: the prompt minus its last token, then the last token alone.
    model.clear_cache();
    model
        .forward(&prompt[..prompt.len() - 1], &ForwardOptions::default())
        .unwrap();
    let step = model
        .forward(&prompt[prompt.len() - 1..], &ForwardOptions::default())
        .unwrap();
    let last = full.logits.i(prompt.len() - 1).unwrap();
    let d = max_abs_diff(&step.logits.squeeze(0).unwrap(), &last);
    assert!(d < 1e-3, "cached and uncached logits differ by {d}");
}

#[test]
fn bad_inputs_are_errors() {
    let (_, mut model) = model();
    assert!(
        model.forward(&[], &ForwardOptions::default()).is_err(),
        "empty prompt"
    );
    assert!(
        model
            .forward(&[49_152], &ForwardOptions::default())
            .is_err(),
        "token outside the vocabulary"
    );
    let too_long = vec![1u32; 8193];
    assert!(
        model
            .forward(&too_long, &ForwardOptions::default())
            .is_err(),
        "longer than the context"
    );
    let bad_layer = ForwardOptions {
        attention_of_layer: Some(30),
        ..Default::default()
    };
    assert!(model.forward(&[1], &bad_layer).is_err());
}
