use exercises::apprentice::cantrip_and_ritual as cr;
use ndarray::{Array1, arr1};
use nindub::model::sample::{LogitsProcessor, RepetitionPenalty, TopK, TopP, softmax};

const NEG: f32 = f32::NEG_INFINITY;

/// Deterministic pseudo-random logits (no RNG crate needed).
fn logits(n: usize, seed: u32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| {
            ((i.wrapping_mul(2_654_435_761) ^ seed.wrapping_mul(40_503)) % 1000) as f32 / 100.0
                - 5.0
        })
        .collect()
}

fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x == y) || (x - y).abs() < tol)
}

/// The learner's filter and nindub's processor leave the same logits.
fn same_as_nindub(seed: u32, mine: impl Fn(&mut [f32]), theirs: &dyn LogitsProcessor) {
    let (mut a, mut b) = (logits(50, seed), logits(50, seed));
    mine(&mut a);
    theirs.process(&mut b, &[]);
    assert_eq!(a, b, "{}", theirs.name());
}

pub fn softmax_t() {
    let p = cr::softmax_t(arr1(&[1.0, 2.0, 3.0]).view(), 1.0);
    assert!((p.sum() - 1.0).abs() < 1e-6, "probabilities add up to 1");
    let big = cr::softmax_t(arr1(&[1001.0, 1002.0, 1003.0]).view(), 1.0);
    assert!(
        close(p.as_slice().unwrap(), big.as_slice().unwrap(), 1e-6),
        "no overflow at large logits"
    );
    assert_eq!(
        cr::softmax_t(arr1(&[0.0, NEG]).view(), 1.0),
        arr1(&[1.0, 0.0])
    );
    for (seed, t) in [(1, 0.5), (2, 1.0), (3, 2.0)] {
        let z = logits(50, seed);
        let scaled: Vec<f32> = z.iter().map(|v| v / t).collect();
        let mine: Array1<f32> = cr::softmax_t(arr1(&z).view(), t);
        assert!(
            close(mine.as_slice().unwrap(), &softmax(&scaled), 1e-6),
            "temperature {t}"
        );
    }
}

pub fn top_k() {
    let mut z = vec![1.0, 5.0, 3.0, 5.0, 2.0];
    cr::top_k(&mut z, 2);
    assert_eq!(z, vec![NEG, 5.0, NEG, 5.0, NEG]);
    let mut ties = vec![1.0, 1.0, 1.0];
    cr::top_k(&mut ties, 2);
    assert_eq!(ties, vec![1.0, 1.0, NEG], "ties: the first ones stay");
    for (seed, k) in [(4, 1), (5, 7), (6, 60)] {
        same_as_nindub(seed, |z| cr::top_k(z, k), &TopK(k));
    }
}

pub fn top_p() {
    let four: Vec<f32> = [0.5f32, 0.3, 0.15, 0.05].iter().map(|p| p.ln()).collect();
    let mut z = four.clone();
    cr::top_p(&mut z, 0.8);
    assert!(
        z[0].is_finite() && z[1].is_finite() && z[2] == NEG && z[3] == NEG,
        "0.5 + 0.3 reaches 0.8"
    );
    let mut z = four.clone();
    cr::top_p(&mut z, 0.05);
    assert_eq!(
        z.iter().filter(|v| v.is_finite()).count(),
        1,
        "the best token always stays"
    );
    for (seed, p) in [(7, 0.5), (8, 0.9), (9, 0.99)] {
        same_as_nindub(seed, |z| cr::top_p(z, p), &TopP(p));
    }
}

pub fn repetition_penalty() {
    let mut z = vec![2.0, -2.0, 0.5, 1.0];
    cr::repetition_penalty(&mut z, &[0, 1, 1, 1], 2.0);
    assert_eq!(
        z,
        vec![1.0, -4.0, 0.5, 1.0],
        "each seen token once, either sign lowered"
    );
    let history = [3u32, 9, 9, 21, 40];
    let (mut mine, mut theirs) = (logits(50, 10), logits(50, 10));
    cr::repetition_penalty(&mut mine, &history, 1.3);
    RepetitionPenalty {
        penalty: 1.3,
        window: history.len(),
    }
    .process(&mut theirs, &history);
    assert_eq!(mine, theirs);
}

pub fn greedy_decode() {
    // A toy "model": the next token is (last + 1) mod 10, token 7 is EOS.
    let mut calls = 0;
    let mut model = |seq: &[u32]| {
        calls += 1;
        let next = (seq.last().copied().unwrap_or(0) + 1) % 10;
        (0..10)
            .map(|t| if t == next { 1.0 } else { 0.0 })
            .collect::<Vec<f32>>()
    };
    assert_eq!(
        cr::greedy_decode(&[2], 10, 7, &mut model),
        vec![3, 4, 5, 6],
        "stops before EOS"
    );
    assert_eq!(
        calls, 5,
        "one forward per step, including the one that saw EOS"
    );
    let mut model = |seq: &[u32]| {
        let next = (seq.last().copied().unwrap_or(0) + 1) % 10;
        (0..10)
            .map(|t| if t == next { 1.0 } else { 0.0 })
            .collect::<Vec<f32>>()
    };
    assert_eq!(
        cr::greedy_decode(&[8], 3, 7, &mut model),
        vec![9, 0, 1],
        "max_new tokens at most"
    );
    let mut flat = |_: &[u32]| vec![0.5f32; 4];
    assert_eq!(
        cr::greedy_decode(&[1], 2, 99, &mut flat),
        vec![0, 0],
        "ties: the first index"
    );
}

/// Equal within a relative 1e-12 (infinities must match exactly; NaN never
/// passes).
fn near(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-12 * b.abs()
}

pub fn weight_bytes() {
    // SmolLM2-135M: hidden 576, intermediate 1536, 30 layers, 9 heads and 3
    // KV heads of 64, vocabulary 49 152, tied embedding.
    let matrices = 30 * (2 * 576 * 576 + 2 * 576 * 3 * 64 + 3 * 576 * 1536);
    assert_eq!(matrices, 106_168_320u64);
    assert_eq!(
        cr::weight_bytes(matrices, 5.0),
        66_355_200,
        "Q4_1 matrices: 20 bytes per 32 weights"
    );
    assert_eq!(
        cr::weight_bytes(49_152 * 576, 8.5),
        30_081_024,
        "Q8_0 embedding: 34 bytes per 32 weights"
    );
    assert_eq!(
        cr::weight_bytes(matrices, 5.0) + cr::weight_bytes(49_152 * 576, 8.5),
        96_436_224,
        "SmolLM2-135M reads 96.4 MB per token"
    );
    assert_eq!(
        cr::weight_bytes(8_000_000_000, 4.5),
        4_500_000_000,
        "8 B parameters at 4.5 bits"
    );
    assert_eq!(
        cr::weight_bytes(70_000_000_000, 16.0),
        140_000_000_000,
        "70 B parameters in f16"
    );
    assert_eq!(cr::weight_bytes(16, 4.5), 9, "72 bits are exactly 9 bytes");
    assert_eq!(cr::weight_bytes(7, 4.5), 4, "31.5 bits round up to 4 bytes");
    assert_eq!(
        cr::weight_bytes(1, 4.5),
        1,
        "a partial byte is a whole byte"
    );
    assert_eq!(cr::weight_bytes(0, 5.0), 0, "no weights");
    assert_eq!(cr::weight_bytes(1_000, 0.0), 0, "no bits");
}

pub fn bandwidth_floor() {
    // Expected values as exact fractions: 30e9 / 96.4e6 = 75 000 / 241.
    let (floor, fraction) = cr::bandwidth_floor(96_400_000, 30e9, 250.0);
    assert!(near(floor, 75_000.0 / 241.0), "96.4 MB at 30 GB/s: {floor}");
    assert!(
        near(fraction, 241.0 / 300.0),
        "250 of 311.2 tokens/s: {fraction}"
    );
    let (floor, fraction) = cr::bandwidth_floor(4_500_000_000, 50e9, 9.0);
    assert!(
        near(floor, 100.0 / 9.0),
        "8 B at 4.5 bits, 50 GB/s: {floor}"
    );
    assert!(near(fraction, 0.81), "9 of 11.1 tokens/s: {fraction}");
    let (floor, fraction) = cr::bandwidth_floor(1_000_000, 1e9, 1250.0);
    assert!(
        near(floor, 1000.0) && near(fraction, 1.25),
        "the fraction is not clamped at 1: ({floor}, {fraction})"
    );
    // Fewer bytes, a higher floor: the same matrices in f16 and in Q4_1.
    let (f16, _) = cr::bandwidth_floor(2 * 106_168_320, 30e9, 0.0);
    let (q4_1, _) = cr::bandwidth_floor(66_355_200, 30e9, 0.0);
    assert!(near(q4_1 / f16, 3.2), "16 bits / 5 bits: {}", q4_1 / f16);
    // Edge cases, as documented: never NaN.
    let (floor, fraction) = cr::bandwidth_floor(96_400_000, 30e9, 0.0);
    assert!(
        near(floor, 75_000.0 / 241.0) && fraction == 0.0,
        "nothing measured: ({floor}, {fraction})"
    );
    assert_eq!(
        cr::bandwidth_floor(0, 30e9, 250.0),
        (f64::INFINITY, 0.0),
        "no bytes per token: no limit"
    );
    assert_eq!(
        cr::bandwidth_floor(0, 0.0, 0.0),
        (f64::INFINITY, 0.0),
        "no bytes and no bandwidth: no limit, not 0 / 0"
    );
    assert_eq!(
        cr::bandwidth_floor(96_400_000, 0.0, 250.0),
        (0.0, f64::INFINITY),
        "no bandwidth: a floor of 0"
    );
    assert_eq!(
        cr::bandwidth_floor(96_400_000, 0.0, 0.0),
        (0.0, 0.0),
        "no bandwidth, nothing measured: 0, not 0 / 0"
    );
}

pub fn cosine_top_k() {
    let rows = ndarray::arr2(&[[1.0f32, 0.0], [0.6, 0.8], [0.0, 1.0]]);
    let got = cr::cosine_top_k(arr1(&[2.0f32, 0.1]).view(), rows.view(), 2);
    assert_eq!(got.len(), 2, "k = 2 keeps two: {got:?}");
    assert_eq!((got[0].0, got[1].0), (0, 1), "best first: {got:?}");
    assert!(
        (got[0].1 - 0.99875).abs() < 1e-4 && (got[1].1 - 0.63920).abs() < 1e-4,
        "{got:?}"
    );
    // Against the engine's ranking, on scaled, unnormalised rows.
    let data: Vec<Vec<f32>> = (0..40u32)
        .map(|r| logits(16, r).iter().map(|x| x * (1.0 + r as f32)).collect())
        .collect();
    let query = logits(16, 99);
    let matrix = ndarray::Array2::from_shape_vec((40, 16), data.concat()).unwrap();
    let got = cr::cosine_top_k(arr1(&query).view(), matrix.view(), 5);
    let want = nindub::search::top_k(&query, &data, 5);
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        want.iter().map(|w| w.0).collect::<Vec<_>>(),
        "the same five rows, in the same order"
    );
    assert!(
        got.iter().zip(&want).all(|(g, w)| (g.1 - w.1).abs() < 1e-4),
        "{got:?} vs {want:?}"
    );
    // Ties keep the earlier row; k past the end keeps all; zeros score 0.
    let ties = ndarray::arr2(&[[0.0f32, 0.0], [1.0, 1.0], [2.0, 2.0]]);
    let got = cr::cosine_top_k(arr1(&[1.0f32, 1.0]).view(), ties.view(), 10);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!((got[0].0, got[1].0, got[2]), (1, 2, (0, 0.0)), "{got:?}");
}
