//! Whole models through the quantizer: GGUF export read back by candle and
//! by our own engine, perplexity, MiniLM embeddings.

use candle_core::Device;
use candle_core::quantized::GgmlDType;
use nindub::compress::export::{self, ggml_type};
use nindub::compress::perplexity;
use nindub::compress::qmodel::{self, MiniLm, Quantizer};
use nindub::compress::quant::{QParams, QTensor, Scheme};
use nindub::model::generate::{Engine, GenerateConfig, Generator, LoadOptions};
use nindub::model::gguf::GgufFile;
use nindub::model::sample::SamplingConfig;
use nindub::model::tokenizer::GgufTokenizer;
use nindub::{Error, assets};

fn scheme(s: &str) -> Scheme {
    Scheme::parse(s).unwrap()
}

#[test]
fn schemes_map_to_ggml_types_exactly_or_not_at_all() {
    assert_eq!(ggml_type(&scheme("int8-g32")), Some(GgmlDType::Q8_0));
    assert_eq!(ggml_type(&scheme("int4-g32")), Some(GgmlDType::Q4_1));
    for other in ["int8-channel", "int4-g64", "int4-g32-sym", "int8-g32-mse"] {
        assert_eq!(ggml_type(&scheme(other)), None, "{other}");
    }
}

/// Q4_1 keeps weight j in the low nibble and j + 16 in the high one.
#[test]
fn q4_1_blocks_are_laid_out_as_ggml_expects() {
    let codes: Vec<i32> = (0..32).map(|i| i % 16).collect();
    let q = QTensor {
        shape: vec![1, 32],
        scheme: scheme("int4-g32"),
        params: vec![QParams {
            scale: 0.5,
            zero: 3,
        }],
        data: nindub::compress::quant::pack_int4(&codes),
    };
    let (dtype, bytes) = export::to_ggml(&q).unwrap();
    assert_eq!(dtype, GgmlDType::Q4_1);
    assert_eq!(bytes.len(), 20);
    assert_eq!(half::f16::from_le_bytes([bytes[0], bytes[1]]).to_f32(), 0.5);
    assert_eq!(
        half::f16::from_le_bytes([bytes[2], bytes[3]]).to_f32(),
        -1.5
    );
    for j in 0..16 {
        assert_eq!(bytes[4 + j] & 0x0f, codes[j] as u8);
        assert_eq!(bytes[4 + j] >> 4, codes[j + 16] as u8);
    }
    assert!(matches!(
        export::to_ggml(&QTensor {
            scheme: scheme("int4-g32-sym"),
            ..q
        }),
        Err(Error::Invalid { .. })
    ));
}

/// Exported files are read back by candle exactly as we dequantize them
/// (Q8_0), or within the f16 rounding of the minimum (Q4_1), and our own
/// engine loads them and generates the same greedy tokens as the original
/// for Q8_0.
#[test]
fn exported_gguf_round_trips_through_candle_and_our_engine() {
    let dir = tempfile::tempdir().unwrap();
    let src = assets::smollm2().unwrap();
    let q8 = dir.path().join("q8.gguf");
    let r = export::quantize_gguf(&src, &q8, &scheme("int8-g32"), false).unwrap();
    assert_eq!(r.max_dequant_diff, 0.0, "Q8_0 blocks are ours, bit for bit");
    assert!(r.quantized > 200 && r.quantized < r.tensors);
    let q4 = dir.path().join("q4.gguf");
    let r = export::quantize_gguf(&src, &q4, &scheme("int4-g32"), false).unwrap();
    assert!(r.max_dequant_diff < 1e-2, "{}", r.max_dequant_diff);
    let types: Vec<String> = GgufFile::open(&q4)
        .unwrap()
        .tensors()
        .iter()
        .map(|t| t.dtype.clone())
        .collect();
    assert!(types.iter().filter(|t| t.as_str() == "Q4_1").count() > 200);

    // candle's path is the reference here: the fused path also quantizes
    // the activations to 8 bits, which moves near-ties between candidates,
    // not the export's fidelity.
    let greedy = |path: &std::path::Path| {
        let opts = LoadOptions {
            engine: Engine::Candle,
            ..Default::default()
        };
        let mut g = Generator::open(path, &opts).unwrap();
        let ids = g.tokenizer.encode("The capital of France is").unwrap();
        let cfg = GenerateConfig {
            sampling: SamplingConfig::greedy(),
            max_tokens: 6,
            ..Default::default()
        };
        g.generate(&ids, &cfg, |_| true).unwrap().tokens
    };
    assert_eq!(greedy(&q8), greedy(&src));
    assert_eq!(greedy(&q4).len(), 6);

    // A scheme without a GGML type, and a foreign input, are errors; the
    // output is not created.
    let bad = dir.path().join("bad.gguf");
    assert!(export::quantize_gguf(&src, &bad, &scheme("int8-channel"), false).is_err());
    let not_gguf = dir.path().join("x.gguf");
    std::fs::write(&not_gguf, b"not a model").unwrap();
    assert!(export::quantize_gguf(&not_gguf, &bad, &scheme("int8-g32"), false).is_err());
    assert!(!bad.exists());
}

/// INT8 per-channel costs SmolLM2 under 1 % of perplexity on the corpus
/// (the goal), under the book's protocol.
#[test]
fn int8_per_channel_keeps_perplexity_within_one_percent() {
    let Ok(text) = nindub::corpus::load() else {
        eprintln!("NINDUB_CORPUS is not set: perplexity test skipped");
        return;
    };
    let path = assets::smollm2().unwrap();
    let tok = GgufTokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    let mut tokens = tok.encode(&text[..40_000]).unwrap();
    tokens.truncate(perplexity::CTX * perplexity::CHUNKS);
    let ppl = |q: Option<&Quantizer>| {
        let (mut m, report) = qmodel::load_llama(&path, q, &Device::Cpu, &mut |_| {}).unwrap();
        let p =
            perplexity::perplexity(&mut m, &tokens, perplexity::CTX, perplexity::CHUNKS, |_| {})
                .unwrap();
        (p, report, m)
    };
    let (reference, r0, mut model) = ppl(None);
    let (int8, r8, _) = ppl(Some(&Quantizer::parse("int8-channel").unwrap()));
    assert_eq!(reference.predictions, 8 * 255);
    assert!(reference.ppl > 1.0 && reference.ppl < 1000.0);
    let rel = int8.ppl / reference.ppl - 1.0;
    assert!(rel.abs() < 0.01, "int8-channel changes perplexity by {rel}");
    assert!((r0.bits_per_weight() - 32.0).abs() < 1e-9);
    assert!(r8.bits_per_weight() > 8.0 && r8.bits_per_weight() < 8.1);
    assert!(r8.sqnr_db() > 35.0);
    // Too little text is an error, not a panic.
    assert!(perplexity::perplexity(&mut model, &tokens[..100], 128, 2, |_| {}).is_err());
}

/// MiniLM embeds like a sentence model, and INT8 per channel keeps it.
#[test]
fn minilm_embeddings_survive_int8() {
    let dir = assets::minilm().unwrap();
    let (f32_model, report) = MiniLm::load(&dir, None, &Device::Cpu).unwrap();
    assert_eq!(report.numel(), 22_713_216);
    let e = |m: &MiniLm, s: &str| m.embed(s).unwrap();
    let food = e(&f32_model, "A man is eating food.");
    let bread = e(&f32_model, "A man is eating a piece of bread.");
    let guitar = e(&f32_model, "A woman is playing the guitar.");
    assert!(qmodel::cosine(&food, &bread) > qmodel::cosine(&food, &guitar) + 0.2);
    let (int8, _) = MiniLm::load(
        &dir,
        Some(&Quantizer::parse("int8-channel").unwrap()),
        &Device::Cpu,
    )
    .unwrap();
    assert!(qmodel::cosine(&e(&int8, "A man is eating food."), &food) > 0.99);
}
