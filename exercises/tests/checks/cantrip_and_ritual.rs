use exercises::apprentice::cantrip_and_ritual as cr;
use ndarray::{Array1, arr1};
use nindub::sample::{LogitsProcessor, RepetitionPenalty, TopK, TopP, softmax};

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
