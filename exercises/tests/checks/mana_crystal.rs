use exercises::apprentice::mana_crystal::{self as mc, Dtype, LlamaShape};
use nindub::Architecture;
use nindub::budget::{self, Precision, Workload};

pub fn bits() {
    let expected = [
        (Dtype::F32, 32),
        (Dtype::F16, 16),
        (Dtype::BF16, 16),
        (Dtype::Int8, 8),
        (Dtype::Int4, 4),
    ];
    for (dtype, bits) in expected {
        assert_eq!(mc::bits(dtype), bits, "bits({dtype:?})");
    }
}

pub fn matrix_bytes() {
    assert_eq!(
        mc::matrix_bytes(4096, 4096, Dtype::F16, 32),
        4096 * 4096 * 2,
        "f16 ignores groups"
    );
    assert_eq!(
        mc::matrix_bytes(1, 64, Dtype::Int4, 32),
        40,
        "Q4_1: 5 bits per weight"
    );
    assert_eq!(
        mc::matrix_bytes(1, 32, Dtype::Int8, 32),
        34,
        "Q8_0: 8.5 bits per weight"
    );
    assert_eq!(
        mc::matrix_bytes(3, 33, Dtype::Int4, 32),
        3 * (17 + 2 * 4),
        "a partial group keeps its scale"
    );
    // The same arithmetic as nindub's estimator, on real shapes.
    let cases = [
        (
            Dtype::Int8,
            Precision::Int {
                bits: 8,
                group: Some(64),
                affine: false,
            },
        ),
        (
            Dtype::Int4,
            Precision::Int {
                bits: 4,
                group: Some(64),
                affine: true,
            },
        ),
    ];
    for (dtype, precision) in cases {
        for (rows, cols) in [(14_336, 4096), (576, 1536), (7, 100)] {
            assert_eq!(
                mc::matrix_bytes(rows, cols, dtype, 64),
                precision.matrix_bytes(rows, cols),
                "{dtype:?} {rows}x{cols}, group 64"
            );
        }
    }
}

fn shape_of(preset: &str) -> (LlamaShape, Architecture) {
    let a = Architecture::preset(preset).expect("preset");
    let s = LlamaShape {
        vocab: a.vocab_size,
        hidden: a.hidden_size,
        intermediate: a.intermediate_size,
        layers: a.num_layers,
        heads: a.num_heads,
        kv_heads: a.num_kv_heads,
        head_dim: a.head_dim,
        tied: a.tied_embeddings,
    };
    (s, a)
}

pub fn llama_params() {
    // Published sizes: Llama-3-8B has 8,030,261,248 parameters; SmolLM2-135M 134,515,008.
    let (llama, _) = shape_of("llama-3-8b");
    assert_eq!(mc::llama_params(&llama), 8_030_261_248, "Llama-3-8B");
    let (smol, _) = shape_of("smollm2-135m");
    assert_eq!(
        mc::llama_params(&smol),
        134_515_008,
        "SmolLM2-135M (tied embeddings)"
    );
    let (phi, arch) = shape_of("phi-3-mini");
    assert_eq!(mc::llama_params(&phi), arch.param_count(), "Phi-3-mini");
}

pub fn kv_cache_bytes() {
    // Llama-3-8B, 8192 tokens, f16: exactly 1 GiB.
    assert_eq!(mc::kv_cache_bytes(32, 8, 128, 8192, 1, 2), 1 << 30);
    assert_eq!(
        mc::kv_cache_bytes(32, 8, 128, 8192, 4, 2),
        4 << 30,
        "batch multiplies"
    );
    let arch = Architecture::preset("phi-3-mini").expect("preset");
    let w = Workload {
        context: 3000,
        batch: 2,
        ..Workload::default()
    };
    assert_eq!(
        mc::kv_cache_bytes(
            arch.num_layers,
            arch.num_kv_heads,
            arch.head_dim,
            3000,
            2,
            2
        ),
        budget::kv_cache_bytes(&arch, &w),
        "Phi-3-mini has no grouped-query attention"
    );
}

pub fn headroom() {
    let gib = 1u64 << 30;
    assert_eq!(
        mc::headroom(2 * gib, gib / 2, gib / 4, gib / 4, 4 * gib),
        Some(gib)
    );
    assert_eq!(
        mc::headroom(4 * gib, 0, 0, 0, 4 * gib),
        Some(0),
        "exactly full still fits"
    );
    assert_eq!(mc::headroom(4 * gib, 1, 0, 0, 4 * gib), None);
    assert_eq!(
        mc::headroom(u64::MAX, u64::MAX, 0, 0, 4 * gib),
        None,
        "overflow means it does not fit"
    );
}

pub fn max_context() {
    assert_eq!(mc::max_context(3 << 30, 1 << 17, 4 << 30, 1 << 20), 8192);
    assert_eq!(
        mc::max_context(3 << 30, 1 << 17, 4 << 30, 4096),
        4096,
        "capped by the model"
    );
    assert_eq!(
        mc::max_context(5 << 30, 1 << 17, 4 << 30, 4096),
        0,
        "the weights alone do not fit"
    );
    assert_eq!(mc::max_context(1, 0, 4 << 30, 4096), 4096);
    assert_eq!(mc::max_context(0, 3, 10, 100), 3, "round down");
}

pub fn footprint() {
    let hidden = ndarray::ArrayD::<f32>::zeros(vec![2, 512, 576]);
    assert_eq!(mc::footprint(&hidden), 2 * 512 * 576 * 4);
    let codes = ndarray::ArrayD::<u8>::zeros(vec![49_152, 576]);
    assert_eq!(mc::footprint(&codes), 49_152 * 576);
    let empty = ndarray::ArrayD::<f64>::zeros(vec![0, 7]);
    assert_eq!(mc::footprint(&empty), 0);
}
