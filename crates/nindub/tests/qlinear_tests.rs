//! The quantized linear layer's two kernels against the dequantize-then-f32
//! oracle, on many schemes and awkward shapes; and its refusals.

use nindub::compress::qlinear::QLinear;
use nindub::compress::quant::{Scheme, quantize};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SCHEMES: [&str; 7] = [
    "int8-tensor",
    "int8-channel",
    "int8-g32",
    "int8-tensor-affine",
    "int4-g32",
    "int4-g64-sym",
    "int4-channel",
];

/// `(in, out)`: odd output counts, a single output, rows of INT4 that start
/// mid-byte (in = 33), and one shape large enough for several rayon tasks.
const SHAPES: [(usize, usize); 6] = [(96, 7), (64, 1), (128, 5), (192, 33), (33, 3), (512, 300)];

/// ‖a − b‖ / ‖b‖.
fn rel(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let (mut num, mut den) = (0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        num += ((x - y) as f64).powi(2);
        den += (y as f64).powi(2);
    }
    (num / den.max(1e-30)).sqrt()
}

fn random(rng: &mut StdRng, len: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(lo..hi)).collect()
}

/// A layer, or None where the scheme does not fit the shape (a group that
/// does not divide `in`).
fn layer(rng: &mut StdRng, scheme: &str, inp: usize, out: usize, bias: bool) -> Option<QLinear> {
    let scheme = Scheme::parse(scheme).unwrap();
    // Weights with an offset, so that affine zero-points are not 0.
    let w = random(rng, out * inp, -0.3, 0.5);
    let b = bias.then(|| random(rng, out, -1.0, 1.0));
    QLinear::from_f32(&w, out, inp, &scheme, b).ok()
}

/// The bound activation quantization allows path B, output by output:
/// each `x_j` moves by at most `S_x/2` (`S_x = max|x|/127`), so output `r`
/// moves by at most `S_x/2·Σ_j |ŵ_rj|`; plus f32 rounding.
fn assert_within_activation_bound(l: &QLinear, x: &[f32], n: usize, b: &[f32], r: &[f32]) {
    let (inp, out) = (l.in_features(), l.out_features());
    let w = l.weight.dequantize();
    for i in 0..n {
        let xi = &x[i * inp..(i + 1) * inp];
        let sx = xi.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
        for (k, wr) in w.chunks_exact(inp).enumerate() {
            let l1: f32 = wr.iter().map(|v| v.abs()).sum();
            let mag: f32 = wr.iter().zip(xi).map(|(w, x)| (w * x).abs()).sum();
            let bound = sx / 2.0 * l1 + 1e-5 * mag + 1e-6;
            let d = (b[i * out + k] - r[i * out + k]).abs();
            assert!(d <= bound, "output ({i}, {k}): |{d}| > {bound}");
        }
    }
}

#[test]
fn both_paths_match_the_reference_on_every_scheme_and_shape() {
    let mut rng = StdRng::seed_from_u64(11);
    let mut cases = 0;
    for scheme in SCHEMES
        .iter()
        .chain(&["int4-tensor", "int4-g3", "int8-g3-affine"])
    {
        // Path B's outputs and the oracle's, over all shapes: one output
        // alone can be near 0 by cancellation, which makes its relative
        // error meaningless; the bound above holds output by output.
        let (mut all_b, mut all_r) = (vec![], vec![]);
        for (s, &(inp, out)) in SHAPES.iter().enumerate() {
            let Some(l) = layer(&mut rng, scheme, inp, out, s % 2 == 0) else {
                continue;
            };
            for n in [1, 5] {
                let x = random(&mut rng, n * inp, -1.0, 1.0);
                let reference = l.reference(&x, n).unwrap();
                assert_eq!(reference.len(), n * out);
                let a = l.forward(&x, n).unwrap();
                let e = rel(&a, &reference);
                assert!(e < 1e-4, "path A {scheme} in={inp} out={out} n={n}: {e:e}");
                let b = l.forward_int8(&x, n).unwrap();
                assert_within_activation_bound(&l, &x, n, &b, &reference);
                if out * n >= 5 {
                    let e = rel(&b, &reference);
                    assert!(e < 2e-2, "path B {scheme} in={inp} out={out} n={n}: {e:e}");
                }
                all_b.extend(b);
                all_r.extend(reference);
                cases += 1;
            }
        }
        let e = rel(&all_b, &all_r);
        assert!(e < 2e-2, "path B {scheme}, all shapes: {e:e}");
    }
    assert!(cases > 50, "only {cases} cases ran");
}

#[test]
fn every_required_scheme_runs_on_the_odd_shape_or_a_fitting_one() {
    let mut rng = StdRng::seed_from_u64(5);
    for scheme in SCHEMES {
        let inp = if scheme.contains("g64") { 64 } else { 96 };
        let l = layer(&mut rng, scheme, inp, 7, true).expect(scheme);
        let x = random(&mut rng, 5 * inp, -2.0, 2.0);
        let r = l.reference(&x, 5).unwrap();
        assert!(rel(&l.forward(&x, 5).unwrap(), &r) < 1e-4, "{scheme}");
        assert!(rel(&l.forward_int8(&x, 5).unwrap(), &r) < 2e-2, "{scheme}");
    }
}

/// When `x` is already on the int8 grid (integers, max|x| = 127, so the
/// activation scale is exactly 1), path B makes no activation error: it
/// computes the same exact integer sums as the oracle, up to f32 rounding
/// of the final sum; with a single block and no bias, to the bit.
#[test]
fn the_int8_path_is_exact_on_the_int8_grid() {
    let mut rng = StdRng::seed_from_u64(3);
    for scheme in SCHEMES {
        for (inp, out) in [(64, 1), (128, 9), (192, 7)] {
            let Some(l) = layer(&mut rng, scheme, inp, out, false) else {
                continue;
            };
            for n in [1, 5] {
                let mut x: Vec<f32> = (0..n * inp)
                    .map(|_| rng.random_range(-127..=127) as f32)
                    .collect();
                for i in 0..n {
                    x[i * inp + (i * 7) % inp] = if i % 2 == 0 { 127.0 } else { -127.0 };
                }
                let r = l.reference(&x, n).unwrap();
                let b = l.forward_int8(&x, n).unwrap();
                let single_block = !scheme.contains("-g");
                if single_block {
                    assert_eq!(b, r, "{scheme} in={inp} n={n}: bitwise");
                } else {
                    let e = rel(&b, &r);
                    assert!(e < 1e-6, "{scheme} in={inp} n={n}: {e:e}");
                }
            }
        }
    }
}

#[test]
fn zeros_and_constant_rows_are_handled() {
    let mut rng = StdRng::seed_from_u64(8);
    let l = layer(&mut rng, "int8-tensor-affine", 64, 4, true).unwrap();
    let mut x = vec![0f32; 3 * 64];
    x[64..128].fill(0.25);
    let r = l.reference(&x, 3).unwrap();
    assert!(rel(&l.forward(&x, 3).unwrap(), &r) < 1e-5);
    assert!(rel(&l.forward_int8(&x, 3).unwrap(), &r) < 1e-5);
    assert!(l.forward(&[], 0).unwrap().is_empty());
}

#[test]
fn bad_inputs_are_errors() {
    let mut rng = StdRng::seed_from_u64(1);
    let l = layer(&mut rng, "int8-channel", 64, 3, false).unwrap();
    // Wrong x length.
    let x = vec![0.5f32; 63];
    assert!(l.forward(&x, 1).is_err());
    assert!(l.forward_int8(&x, 1).is_err());
    assert!(l.reference(&x, 1).is_err());
    assert!(l.forward(&vec![0.5; 128], 3).is_err());
    // Not finite, for the int8 path.
    let mut x = vec![0.5f32; 64];
    x[3] = f32::NAN;
    assert!(l.forward_int8(&x, 1).is_err());

    let s = |n: &str| Scheme::parse(n).unwrap();
    let w = vec![0.1f32; 24];
    // A 3-D weight.
    let q3 = quantize(&w, &[2, 3, 4], &s("int8-tensor")).unwrap();
    let e = QLinear::new(q3, None).unwrap_err().to_string();
    assert!(e.contains("[2, 3, 4]"), "{e}");
    // A bias of the wrong length.
    let q = quantize(&w, &[4, 6], &s("int8-channel")).unwrap();
    let e = QLinear::new(q.clone(), Some(vec![0.0; 5]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("5 values") && e.contains("[4, 6]"), "{e}");
    assert!(QLinear::new(q.clone(), Some(vec![0.0; 4])).is_ok());
    // Per-channel along the input axis.
    let mut col = s("int8-channel");
    col.granularity = nindub::compress::quant::Granularity::PerChannel { axis: 1 };
    let qc = quantize(&w, &[4, 6], &col).unwrap();
    assert!(QLinear::new(qc, None).is_err());
    // The fields are public: a layer broken after construction is refused,
    // not a panic.
    let mut broken = QLinear::new(q, None).unwrap();
    broken.weight.data.pop();
    assert!(broken.forward(&[0.0; 6], 1).is_err());
    assert!(broken.forward_int8(&[0.0; 6], 1).is_err());
    let mut broken = l.clone();
    broken.bias = Some(vec![1.0; 2]);
    assert!(broken.forward(&[0.0; 64], 1).is_err());
}

/// Activation codes round half to even: with max|x| = 127 (scale 1),
/// 2.5 → 2, 3.5 → 4, −2.5 → −2, 0.5 → 0.
#[test]
fn activations_round_half_to_even() {
    let mut rng = StdRng::seed_from_u64(2);
    let l = layer(&mut rng, "int8-channel", 64, 5, false).unwrap();
    let halves = [127.0, 2.5, 3.5, -2.5, 0.5, -0.5, 1.5, -126.5];
    let rounded = [127.0, 2.0, 4.0, -2.0, 0.0, -0.0, 2.0, -126.0];
    let mut x = vec![0f32; 64];
    let mut xr = vec![0f32; 64];
    for k in 0..8 {
        x[8 * k..8 * k + 8].copy_from_slice(&halves);
        xr[8 * k..8 * k + 8].copy_from_slice(&rounded);
    }
    assert_eq!(l.forward_int8(&x, 1).unwrap(), l.reference(&xr, 1).unwrap());
}

/// Rows longer than 65 536 values: unsigned codes up to 255 times
/// activations of 127 would overflow one `i32` sum; path B sums in runs.
#[test]
fn long_rows_do_not_overflow_the_integer_sums() {
    let inp = 70_000;
    let w = vec![1.0f32; 2 * inp];
    let l = QLinear::from_f32(
        &w,
        2,
        inp,
        &Scheme::parse("int8-tensor-affine").unwrap(),
        None,
    )
    .unwrap();
    assert!(l.weight.data.iter().all(|&c| c == 255), "codes at the top");
    let x = vec![127.0f32; inp];
    let r = l.reference(&x, 1).unwrap();
    let b = l.forward_int8(&x, 1).unwrap();
    assert!(rel(&b, &r) < 1e-6, "{b:?} vs {r:?}");
    assert!(rel(&l.forward(&x, 1).unwrap(), &r) < 1e-4);
}
