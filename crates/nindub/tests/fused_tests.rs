//! The fused decode path against candle: the kernels on random blocks, and
//! the whole model step by step on the real SmolLM2.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use nindub::assets;
use nindub::ggml::kernels::portable;
use nindub::ggml::{Activation, Format, Prefetch, QMatrix};
use nindub::model::fused::FusedLlama;
use nindub::model::gguf::GgufFile;
use nindub::model::llama::{ForwardOptions, Llama};
use nindub::model::sample::argmax;

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Values of spread `std` (a sum of uniforms, near-normal), from `seed`.
fn seeded(seed: u64, std: f32, shape: (usize, usize)) -> Tensor {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let n = shape.0 * shape.1;
    // The sum of 12 uniforms on [0, 1) minus 6 has mean 0 and variance 1.
    let v: Vec<f32> = (0..n)
        .map(|_| std * ((0..12).map(|_| rng.random::<f32>()).sum::<f32>() - 6.0))
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// `W · x` with `W` the blocks decoded to f32 and `x` in f32: no
/// activation quantization at all.
fn exact_product(q: &QTensor, x: &[f32]) -> Vec<f32> {
    let w = q
        .dequantize(&Device::Cpu)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    w.iter()
        .map(|row| row.iter().zip(x).map(|(a, b)| a * b).sum())
        .collect()
}

#[test]
fn kernels_agree_with_candles_quantized_matmul() {
    let (rows, cols) = (37, 512);
    // Seeded: the same draw on every run (candle's CPU `randn` is not).
    let w = seeded(1, 1.0, (rows, cols));
    let x = seeded(2, 1.0, (1, cols));
    let xs = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let mut act = Activation::new(cols);
    act.quantize(&xs);
    for dtype in Format::ALL.map(|f| f.ggml()) {
        let q = QTensor::quantize(&w, dtype).unwrap();
        let m = QMatrix::from_qtensor("w", &q).unwrap();
        let mut ours = vec![0f32; rows];
        m.matvec(&act, &mut ours);
        let exact = exact_product(&q, &xs);
        let theirs = QMatMul::from_qtensor(q)
            .unwrap()
            .forward(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs()));
        if matches!(dtype, GgmlDType::Q4K | GgmlDType::Q5K | GgmlDType::Q6K) {
            // candle quantizes the activation for the K-quants in blocks of
            // 256 (llama.cpp's Q8_K), ours in blocks of 32 (its Q8_1): each
            // product is off the exact one by its own activation rounding,
            // ours by no more than candle's.
            let (e_ours, e_theirs) = (max_abs(&ours, &exact), max_abs(&theirs, &exact));
            assert!(
                e_ours <= e_theirs && e_ours < 1e-2 * scale,
                "{dtype:?}: ours {e_ours}, candle's {e_theirs}, off the exact product (scale {scale})"
            );
        } else {
            // candle quantizes the activation the same way (Q8_0/Q8_1).
            assert!(
                max_abs(&ours, &theirs) < 1e-3 * scale.max(1.0),
                "{dtype:?}: {} vs scale {scale}",
                max_abs(&ours, &theirs)
            );
        }
    }
}

#[test]
fn the_portable_and_simd_kernels_give_the_same_sums() {
    let (rows, cols) = (8, 512);
    let w = seeded(3, 2.0, (rows, cols));
    let xs: Vec<f32> = (0..cols)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
        .collect();
    let mut act = Activation::new(cols);
    act.quantize(&xs);
    for dtype in Format::ALL.map(|f| f.ggml()) {
        let q = QTensor::quantize(&w, dtype).unwrap();
        let m = QMatrix::from_qtensor("w", &q).unwrap();
        let mut fast = vec![0f32; rows];
        m.matvec(&act, &mut fast);
        let slow: Vec<f32> = (0..rows)
            .map(|r| portable::row(m.format, m.row(r), &act))
            .collect();
        assert!(
            max_abs(&fast, &slow) < 1e-3,
            "{dtype:?}: {fast:?} vs {slow:?}"
        );
    }
}

/// The tiled matrix-matrix product (each block unpacked once per tile of
/// activations) against one matrix-vector product per activation: equal
/// bit for bit, for whole tiles, remainders and a lone activation.
#[test]
fn the_tiled_product_equals_one_product_per_activation() {
    let (rows, cols) = (37, 256);
    let w = seeded(4, 1.0, (rows, cols));
    for dtype in Format::ALL.map(|f| f.ggml()) {
        let q = QTensor::quantize(&w, dtype).unwrap();
        let m = QMatrix::from_qtensor("w", &q).unwrap();
        for n in 1..=9 {
            let acts: Vec<Activation> = (0..n)
                .map(|t| {
                    let x = seeded(10 + t as u64, 1.0, (1, cols));
                    let mut a = Activation::new(cols);
                    a.quantize(&x.flatten_all().unwrap().to_vec1::<f32>().unwrap());
                    a
                })
                .collect();
            let mut tiled = vec![0f32; n * rows];
            m.matmul(&acts, &mut tiled);
            for (t, a) in acts.iter().enumerate() {
                let mut one = vec![0f32; rows];
                m.matvec(a, &mut one);
                // Asking for the weights ahead changes when they arrive,
                // never what is summed.
                let mut unprefetched = vec![0f32; rows];
                m.matvec_with(a, &mut unprefetched, Prefetch::Off);
                assert!(
                    one.iter()
                        .zip(&unprefetched)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{dtype:?}, #{t}: prefetch changed a sum"
                );
                let got = &tiled[t * rows..(t + 1) * rows];
                assert!(
                    got.iter()
                        .zip(&one)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{dtype:?}, {n} activations, #{t}: {got:?} vs {one:?}"
                );
            }
        }
    }
}

#[test]
fn foreign_formats_are_refused_by_name() {
    let w = Tensor::zeros((4, 64), candle_core::DType::F32, &Device::Cpu).unwrap();
    let q = QTensor::quantize(&w, GgmlDType::F32).unwrap();
    let e = QMatrix::from_qtensor("blk.0.attn_q.weight", &q)
        .err()
        .unwrap();
    assert!(e.to_string().contains("blk.0.attn_q.weight"), "{e}");
}

/// The reference: the same weights dequantized to f32, with f32
/// activations (no activation quantization at all). Both quantized paths,
/// candle's and the fused one, quantize activations to 8 bits and land
/// within about half a logit of it, each with its own rounding.
fn exact(file: &GgufFile) -> Llama {
    Llama::from_gguf_mapped(file, &Device::Cpu, &mut |name, q| {
        q.dequantize(&Device::Cpu)
            .map(QMatMul::Tensor)
            .map_err(|e| nindub::Error::invalid("test", format!("{name}: {e}")))
    })
    .unwrap()
}

/// The fused path may stray from the exact logits at most this much more
/// than candle's quantized path does on the same tokens (measured over 17
/// steps: both about 1 to 1.5 logits at worst).
const VS_CANDLE: f32 = 1.5;
/// A choice is clear when the exact model's two best logits are this far
/// apart: then both paths must make it.
const CLEAR: f32 = 3.0;

fn logits(model: &mut Llama, tokens: &[u32]) -> Vec<f32> {
    model
        .forward(tokens, &ForwardOptions::default())
        .unwrap()
        .logits
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

#[test]
fn the_fused_model_follows_the_exact_model_token_by_token() {
    follows_the_exact_model(&assets::smollm2().unwrap());
}

/// The same on a file of llama.cpp's Q4_K_M recipe, written by nindub from
/// the published model decoded to f32: Q5_0 and Q8_0 where rows are 576
/// wide, Q4_K and Q6_K for `ffn_down` (1536 wide). Every kernel the
/// recipe uses runs in the fused engine.
#[test]
fn the_fused_model_reads_a_k_quant_recipe() {
    use nindub::compress::export::{ExportOptions, Recipe, Target, quantize_gguf};
    let dir = tempfile::tempdir().unwrap();
    let f32_file = dir.path().join("f32.gguf");
    let plain = ExportOptions::default();
    quantize_gguf(
        &assets::smollm2().unwrap(),
        &f32_file,
        Target::Type(GgmlDType::F32),
        &plain,
    )
    .unwrap();
    let out = dir.path().join("q4_k_m.gguf");
    let recipe = Target::Recipe(Recipe::parse("q4_k_m").unwrap());
    let report = quantize_gguf(&f32_file, &out, recipe, &plain).unwrap();
    let used: std::collections::BTreeSet<&str> =
        report.per_tensor.iter().map(|t| t.to.as_str()).collect();
    for t in ["q5_0", "q8_0", "q4_k", "q6_k"] {
        assert!(used.contains(t), "{t} missing from {used:?}");
    }
    follows_the_exact_model(&out);
}

fn follows_the_exact_model(path: &std::path::Path) {
    let file = GgufFile::open(path).unwrap();
    let mut fused = FusedLlama::from_gguf(&file).unwrap();
    let mut reference = exact(&file);
    let mut candle = Llama::from_gguf(&file, &Device::Cpu).unwrap();
    let tokenizer = nindub::model::tokenizer::GgufTokenizer::from_gguf(&file).unwrap();
    for prompt in ["The capital of France is", "fn main() {\n    let x ="] {
        fused.clear_cache();
        reference.clear_cache();
        candle.clear_cache();
        let ids = tokenizer.encode(prompt).unwrap();
        // The prompt in one batch, then 16 steps, all fed the exact
        // model's greedy choice.
        let mut ours = fused.forward(&ids).unwrap().to_vec();
        let mut theirs = logits(&mut candle, &ids);
        let mut truth = logits(&mut reference, &ids);
        let (mut worst, mut candle_worst) = (0f32, 0f32);
        for _ in 0..16 {
            worst = worst.max(max_abs(&ours, &truth));
            candle_worst = candle_worst.max(max_abs(&theirs, &truth));
            let next = argmax(&truth);
            let mut sorted = truth.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            if sorted[0] - sorted[1] > CLEAR {
                assert_eq!(argmax(&ours), next, "{prompt:?}: a clear choice differs");
            }
            ours = fused.step(next).unwrap().to_vec();
            theirs = logits(&mut candle, &[next]);
            truth = logits(&mut reference, &[next]);
        }
        eprintln!(
            "{prompt:?}: max |Δ logit| from the exact model over 17 steps: fused {worst:.2}, candle {candle_worst:.2}"
        );
        assert!(
            worst < VS_CANDLE * candle_worst.max(0.5),
            "{prompt:?}: fused {worst} vs candle {candle_worst} from the exact logits"
        );
    }
    // The batched prompt and the same prompt step by step agree.
    let ids = tokenizer.encode("One, two, three,").unwrap();
    fused.clear_cache();
    let batched = fused.forward(&ids).unwrap().to_vec();
    fused.clear_cache();
    for &t in &ids[..ids.len() - 1] {
        fused.step(t).unwrap();
    }
    let stepped = fused.step(ids[ids.len() - 1]).unwrap().to_vec();
    assert!(max_abs(&batched, &stepped) < 1e-2);
    assert!(fused.step(u32::MAX).is_err());
    assert!(fused.forward(&[]).is_err());
}

/// Where llama.cpp's two best logits are closer than this, greedy paths of
/// two implementations may part (as in `llama_parity`).
const NEAR_TIE: f64 = 0.25;

#[test]
fn greedy_tokens_match_llama_cpp() {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/llama_cpp_smollm2.json")).unwrap();
    let file = GgufFile::open(&assets::smollm2().unwrap()).unwrap();
    let mut fused = FusedLlama::from_gguf(&file).unwrap();
    for case in fixture["generate"].as_array().unwrap() {
        let prompt: Vec<u32> = serde_json::from_value(case["prompt_ids"].clone()).unwrap();
        let expected: Vec<u32> = serde_json::from_value(case["greedy_ids"].clone()).unwrap();
        let margins: Vec<f64> = serde_json::from_value(case["greedy_margins"].clone()).unwrap();
        let decided = margins
            .iter()
            .position(|&m| m < NEAR_TIE)
            .unwrap_or(expected.len());
        fused.clear_cache();
        let first = fused.forward(&prompt).unwrap().to_vec();
        for pair in case["first_step_top10"].as_array().unwrap() {
            let (id, value) = (
                pair[0].as_u64().unwrap() as usize,
                pair[1].as_f64().unwrap() as f32,
            );
            assert!(
                (first[id] - value).abs() < 1.0,
                "token {id}: {} vs llama.cpp {value}",
                first[id]
            );
        }
        let mut got = vec![argmax(&first)];
        while got.len() < decided {
            let next = argmax(fused.step(*got.last().unwrap()).unwrap());
            got.push(next);
        }
        assert_eq!(
            got[..decided],
            expected[..decided],
            "prompt {:?}",
            case["prompt"]
        );
    }
}

#[test]
fn a_budget_streams_the_layers_that_do_not_fit() {
    let file = GgufFile::open(&assets::smollm2().unwrap()).unwrap();
    // KV cache for 16 positions: a budget reserves exactly that, and
    // refuses a position past it.
    let context = 16;
    let mut resident = FusedLlama::with_budget(&file, None, context).unwrap();
    let all = resident.placement.clone();
    assert!(all.streamed.is_empty());
    // Room for the fixed parts, two staging buffers (prefetch) and ten layers.
    let layer = all.used - all.reserved;
    let per_layer = layer / all.resident.len() as u64;
    let budget = all.reserved + per_layer * 12;
    let mut streamed = FusedLlama::with_budget(&file, Some(budget), context).unwrap();
    let p = streamed.placement.clone();
    assert_eq!(p.resident.len(), 10, "{p}");
    assert_eq!(p.streamed.len(), all.resident.len() - 10);
    assert!(p.used <= budget);
    // Streaming changes where the bytes come from, not the arithmetic.
    let ids = [504u32, 3575, 282, 4649];
    let a = resident.forward(&ids).unwrap().to_vec();
    let b = streamed.forward(&ids).unwrap().to_vec();
    assert_eq!(a, b);
    let a = resident.step(314).unwrap().to_vec();
    let b = streamed.step(314).unwrap().to_vec();
    assert_eq!(a, b);
    for t in 0..11 {
        streamed.step(t).unwrap();
    }
    let e = streamed.step(1).err().unwrap().to_string();
    assert!(e.contains("the KV cache was reserved for"), "{e}");
    // Too small for even one layer: refused, naming what was needed.
    let e = FusedLlama::with_budget(&file, Some(all.reserved), context)
        .err()
        .unwrap();
    assert!(e.to_string().contains("minimum budget"), "{e}");
}
