//! The Mana Crystal's arithmetic against published sizes, real files and
//! the quantized formats' own definitions in candle.

use candle_core::quantized::GgmlDType;
use nindub::budget::{self, GIB, MIB, Machine, Precision, Verdict, Workload};
use nindub::{Architecture, Error};

/// Parameter counts published with each model.
#[test]
fn presets_match_published_parameter_counts() {
    let published = [
        ("llama-3-8b", 8_030_261_248u64),
        ("phi-3-mini", 3_821_079_552),
        ("qwen-2.5-32b", 32_763_876_352),
        ("smollm2-135m", 134_515_008),
    ];
    for (preset, params) in published {
        let arch = Architecture::preset(preset).unwrap();
        assert_eq!(arch.param_count(), params, "{preset}");
    }
}

/// The estimator's integer layouts are byte-exact with the GGUF block types
/// candle implements: Q8_0 (8 bits + f16 scale per 32), Q4_0 (4 bits + f16
/// scale per 32), Q4_1 (4 bits + f16 scale + f16 min per 32).
#[test]
fn integer_layouts_match_ggml_block_types() {
    for (name, dtype) in [
        ("q8_0", GgmlDType::Q8_0),
        ("q4_0", GgmlDType::Q4_0),
        ("q4_1", GgmlDType::Q4_1),
    ] {
        let p = Precision::parse(name).unwrap();
        for (rows, cols) in [(1u64, 32u64), (576, 1536), (4096, 14_336)] {
            let ggml = rows * cols / dtype.block_size() as u64 * dtype.type_size() as u64;
            assert_eq!(p.matrix_bytes(rows, cols), ggml, "{name} {rows}x{cols}");
        }
    }
    assert_eq!(Precision::INT4.bits_per_weight(4096), 5.0);
    assert_eq!(Precision::parse("q8_0").unwrap().bits_per_weight(4096), 8.5);
    assert_eq!(Precision::F16.bits_per_weight(4096), 16.0);
}

#[test]
fn precision_names_round_trip() {
    for s in [
        "f32",
        "f16",
        "bf16",
        "int8-channel",
        "int4-g32",
        "int4-g128-sym",
        "int8-g64",
        "int8-g32-affine",
        "int3-g64",
    ] {
        let p = Precision::parse(s).unwrap();
        assert_eq!(p.name(), s);
        assert_eq!(Precision::parse(&p.name()).unwrap(), p);
    }
    for bad in ["int0", "int9", "int4-g0", "int4-x", "fp8", ""] {
        assert!(
            matches!(Precision::parse(bad), Err(Error::Invalid { .. })),
            "{bad} should be refused"
        );
    }
}

/// Llama-3-8B at 8192 tokens in f16: 2 × 32 layers × 8 heads × 128 × 8192 × 2 bytes = 1 GiB.
#[test]
fn kv_cache_of_llama_3_8b_is_one_gib_at_8k() {
    let arch = Architecture::preset("llama-3-8b").unwrap();
    let w = Workload {
        context: 8192,
        ..Workload::default()
    };
    assert_eq!(budget::kv_cache_bytes(&arch, &w), GIB);
    let w2 = Workload {
        context: 8192,
        batch: 3,
        kv_bytes: 1,
        ..Workload::default()
    };
    assert_eq!(budget::kv_cache_bytes(&arch, &w2), 3 * GIB / 2);
}

#[test]
fn estimate_adds_up_its_components() {
    let arch = Architecture::preset("phi-3-mini").unwrap();
    let e = budget::estimate(&arch, Precision::INT4, &Workload::default()).unwrap();
    assert_eq!(e.total, e.weights + e.kv_cache + e.activations + e.overhead);
    assert!(
        e.weights > e.non_layer + 31 * e.max_layer,
        "32 equal layers plus embeddings"
    );
    assert_eq!(e.params, 3_821_079_552);
}

#[test]
fn verdicts_follow_the_budget() {
    let arch = Architecture::preset("smollm2-135m").unwrap();
    let w = Workload::default();
    let e = budget::estimate(&arch, Precision::F16, &w).unwrap();
    assert!(matches!(
        budget::verdict(&e, &arch, &Machine::MANA_CRYSTAL),
        Verdict::Fits { .. }
    ));
    let tiny = Machine {
        device: 64 * MIB,
        host: 0,
    };
    assert!(matches!(
        budget::verdict(&e, &arch, &tiny),
        Verdict::Impossible { .. }
    ));

    let llama = Architecture::preset("llama-3-8b").unwrap();
    let f16 = budget::estimate(&llama, Precision::F16, &w).unwrap();
    let int4 = budget::estimate(&llama, Precision::INT4, &w).unwrap();
    assert!(matches!(
        budget::verdict(&f16, &llama, &Machine::MANA_CRYSTAL),
        Verdict::LayerStreaming { .. }
    ));
    match budget::verdict(&int4, &llama, &Machine::MANA_CRYSTAL) {
        Verdict::PartialOffload { on_device, layers } => {
            assert!(on_device > 0 && on_device < layers)
        }
        v => panic!("Llama-3-8B int4 on 4 GiB should need a partial offload, got {v:?}"),
    }
    // With a large enough device, the same model fits.
    let big = Machine {
        device: 24 * GIB,
        host: 0,
    };
    assert!(matches!(
        budget::verdict(&f16, &llama, &big),
        Verdict::Fits { .. }
    ));
}

#[test]
fn max_context_is_the_largest_that_fits() {
    let arch = Architecture::preset("phi-3-mini").unwrap();
    let w = Workload::default();
    let device = 4 * GIB;
    let c = budget::max_context(&arch, Precision::INT4, &w, device)
        .unwrap()
        .unwrap();
    assert!(c < arch.max_context);
    let at = |ctx| {
        budget::estimate(&arch, Precision::INT4, &Workload { context: ctx, ..w })
            .unwrap()
            .total
    };
    assert!(
        at(c) <= device && at(c + 1) > device,
        "bisection found the edge"
    );
    let f32_ctx = budget::max_context(&arch, Precision::F32, &w, device).unwrap();
    assert_eq!(f32_ctx, None, "Phi-3-mini in f32 (15 GB) never fits 4 GiB");
}

#[test]
fn bad_workloads_and_sizes_are_refused() {
    let arch = Architecture::preset("smollm2-135m").unwrap();
    let w = Workload {
        context: 0,
        ..Workload::default()
    };
    assert!(matches!(
        budget::estimate(&arch, Precision::F16, &w),
        Err(Error::Invalid { .. })
    ));
    assert_eq!(budget::parse_bytes("4GiB").unwrap(), 4 * GIB);
    assert_eq!(budget::parse_bytes("512 MiB").unwrap(), 512 * MIB);
    assert!(budget::parse_bytes("four gigs").is_err());
    let mut broken = arch.clone();
    broken.num_kv_heads = 4; // 9 query heads cannot share 4 KV heads
    assert!(budget::estimate(&broken, Precision::F16, &Workload::default()).is_err());
    assert!(matches!(
        Architecture::preset("gpt-5"),
        Err(Error::UnknownPreset(..))
    ));
}
