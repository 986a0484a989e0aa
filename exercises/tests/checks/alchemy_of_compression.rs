use exercises::apprentice::alchemy_of_compression as ac;
use ndarray::{Array1, Array2, arr1, arr2};
use nindub::compress::quant::{self, Format, Mode, QParams, Scheme};

/// Deterministic pseudo-random values in `[-1, 1)` (no RNG crate needed).
fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| {
            let h = i.wrapping_mul(2_654_435_761) ^ seed.wrapping_mul(40_503);
            let h = h.wrapping_mul(2_246_822_519) ^ (h >> 13);
            (h % 20_000) as f32 / 10_000.0 - 1.0
        })
        .collect()
}

/// The code formats the library knows, with their code ranges.
const FORMATS: [Format; 4] = [Format::UINT8, Format::INT8, Format::UINT4, Format::INT4];

fn rel_close(a: f32, b: f32, tol: f32) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs())
}

/// The affine formula, written out by the check (pure f32, like the trial).
fn expected_params(min: f32, max: f32, qmin: i32, qmax: i32) -> (f32, i32) {
    let (a, b) = (min.min(0.0), max.max(0.0));
    if a == b {
        return (1.0, qmin);
    }
    let s = (b - a) / (qmax - qmin) as f32;
    let z = (qmin as f32 - a / s)
        .round_ties_even()
        .clamp(qmin as f32, qmax as f32) as i32;
    (s, z)
}

pub fn scale_zero_point() {
    let (s, z) = ac::scale_zero_point(-1.0, 3.0, 0, 255);
    assert!(
        rel_close(s, 4.0 / 255.0, 1e-6),
        "[-1, 3] on 0..=255: S = 4/255, got {s}"
    );
    assert_eq!(z, 64, "[-1, 3] on 0..=255: Z = round(63.75) = 64");
    assert_eq!(
        ac::scale_zero_point(-0.625, 3.375, 0, 16),
        (0.25, 2),
        "[-0.625, 3.375] on 0..=16: S = 4/16 = 0.25, Z = round(2.5) = 2 (half to even)"
    );
    assert_eq!(
        ac::scale_zero_point(0.0, 0.0, 0, 255),
        (1.0, 0),
        "a zero-width range gives (1.0, qmin)"
    );
    assert_eq!(
        ac::scale_zero_point(0.0, 0.0, -7, 7),
        (1.0, -7),
        "a zero-width range gives (1.0, qmin)"
    );
    let (s, z) = ac::scale_zero_point(0.3, 2.0, 0, 15);
    assert!(
        rel_close(s, 2.0 / 15.0, 1e-6) && z == 0,
        "[0.3, 2] is widened to [0, 2]: S = 2/15, Z = 0; got ({s}, {z})"
    );
    let (s, z) = ac::scale_zero_point(-5.0, -0.1, 0, 255);
    assert!(
        rel_close(s, 5.0 / 255.0, 1e-6) && z == 255,
        "[-5, -0.1] is widened to [-5, 0]: S = 5/255, Z = 255; got ({s}, {z})"
    );

    let mut ranges = vec![(-1.0f32, 3.0f32), (-0.37, 0.91), (0.5, 4.0), (-6.0, -2.0)];
    let r = values(64, 11);
    for pair in r.chunks(2) {
        // Spreads from 0.1 to 10, shifted either way.
        let (lo, hi) = (pair[0].min(pair[1]), pair[0].max(pair[1]));
        ranges.push((lo * 10.0 - 0.05, hi * 10.0 + 0.05));
    }
    for (i, &(min, max)) in ranges.iter().enumerate() {
        let f = FORMATS[i % FORMATS.len()];
        let (qmin, qmax) = (f.qmin(), f.qmax());
        let (s, z) = ac::scale_zero_point(min, max, qmin, qmax);
        let (es, ez) = expected_params(min, max, qmin, qmax);
        assert!(
            rel_close(s, es, 1e-5) && (z - ez).abs() <= 1,
            "[{min}, {max}] on {qmin}..={qmax}: expected S = {es}, Z = {ez}; got ({s}, {z})"
        );
        assert!(
            (qmin..=qmax).contains(&z),
            "[{min}, {max}]: Z = {z} is not a code in {qmin}..={qmax}"
        );
        // nindub rounds S up to an f16: close, not equal.
        let lib = quant::choose_params(min, max, f, Mode::Affine).unwrap();
        assert!(
            rel_close(s, lib.scale, 1e-3) && (z - lib.zero).abs() <= 1,
            "[{min}, {max}] on {qmin}..={qmax}: nindub gives S ≈ {}, Z = {}; got ({s}, {z})",
            lib.scale,
            lib.zero
        );
        // The point of an integer zero-point: 0.0 survives exactly.
        let p = QParams { scale: s, zero: z };
        let back = quant::dequantize_value(quant::quantize_value(0.0, p, f), p);
        assert_eq!(
            back, 0.0,
            "[{min}, {max}]: 0.0 must come back as exactly 0.0 with (S, Z) = ({s}, {z})"
        );
    }
}

pub fn quantize_dequantize() {
    let q = ac::quantize(arr1(&[0.5, 1.5, 2.5, 3.5, -2.5]).view(), 1.0, 0, -127, 127);
    assert_eq!(
        q,
        arr1(&[0, 2, 2, 4, -2]),
        "round half to even: 0.5 → 0, 1.5 → 2, 2.5 → 2, 3.5 → 4, −2.5 → −2"
    );
    let q = ac::quantize(arr1(&[2.5]).view(), 1.0, 1, 0, 255);
    assert_eq!(
        q,
        arr1(&[3]),
        "round x/S first, then add Z: round(2.5) + 1 = 3 (not round(3.5) = 4)"
    );
    let q = ac::quantize(arr1(&[1e6, -1e6, 7.9, -8.4]).view(), 1.0, 0, -7, 7);
    assert_eq!(q, arr1(&[7, -7, 7, -7]), "values beyond the range saturate");
    let q = ac::quantize(arr1(&[-3.0, 300.0]).view(), 1.0, 10, 0, 255);
    assert_eq!(
        q,
        arr1(&[7, 255]),
        "affine: −3 → −3 + 10 = 7; 300 + 10 saturates at 255"
    );
    assert_eq!(
        ac::quantize(Array1::<f32>::zeros(0).view(), 0.1, 0, -127, 127).len(),
        0,
        "no values, no codes"
    );
    assert_eq!(
        ac::dequantize(arr1(&[0, 10, 255]).view(), 0.5, 10),
        arr1(&[-5.0, 0.0, 122.5]),
        "x̂ = S · (q − Z)"
    );

    for (seed, f) in FORMATS.iter().enumerate() {
        // A range that excludes 0 on one side, and values a bit beyond it.
        let (min, max) = [(-1.0, 3.0), (-2.0, 0.5), (0.2, 1.7), (-0.9, 0.9)][seed];
        let p = quant::choose_params(min, max, *f, Mode::Affine).unwrap();
        let (qmin, qmax) = (f.qmin(), f.qmax());
        let x: Vec<f32> = values(200, seed as u32 + 20)
            .iter()
            .map(|v| min + (max - min) * (v * 0.6 + 0.5))
            .collect();
        let codes = ac::quantize(arr1(&x).view(), p.scale, p.zero, qmin, qmax);
        let theirs: Vec<i32> = x.iter().map(|&v| quant::quantize_value(v, p, *f)).collect();
        assert_eq!(
            codes.to_vec(),
            theirs,
            "codes of {f:?} with S = {}, Z = {} (as nindub::compress::quant::quantize_value)",
            p.scale,
            p.zero
        );
        let back = ac::dequantize(codes.view(), p.scale, p.zero);
        let theirs: Vec<f32> = codes
            .iter()
            .map(|&q| quant::dequantize_value(q, p))
            .collect();
        assert_eq!(
            back.to_vec(),
            theirs,
            "values of {f:?} codes (as nindub::compress::quant::dequantize_value)"
        );
        // Inside the representable range, the error is at most half a step.
        let (lo, hi) = (
            p.scale * (qmin - p.zero) as f32,
            p.scale * (qmax - p.zero) as f32,
        );
        for (&a, &b) in x.iter().zip(&back) {
            if (lo..=hi).contains(&a) {
                assert!(
                    (a - b).abs() <= p.scale / 2.0 * 1.0001,
                    "{f:?}: |{a} − {b}| > S/2 = {}",
                    p.scale / 2.0
                );
            } else {
                assert!(
                    b == lo || b == hi,
                    "{f:?}: {a} is outside [{lo}, {hi}], it must saturate; got {b}"
                );
            }
        }
    }
}

pub fn int4_packing() {
    assert_eq!(
        ac::pack_int4(&[1, 2]),
        vec![0x21],
        "element 0 in the low nibble"
    );
    assert_eq!(
        ac::pack_int4(&[-1]),
        vec![0x0f],
        "−1 is the nibble 0xF; an odd count is padded with 0"
    );
    assert_eq!(ac::pack_int4(&[-8, 7]), vec![0x78], "−8 is 0x8, 7 is 0x7");
    assert_eq!(ac::pack_int4(&[]), Vec::<u8>::new(), "no codes, no bytes");
    assert_eq!(
        ac::unpack_int4(&[0x21, 0xf8], 4),
        vec![1, 2, -8, -1],
        "low nibble first, sign-extended"
    );
    assert_eq!(
        ac::unpack_int4(&[0x21, 0x0f], 3),
        vec![1, 2, -1],
        "only the first n codes"
    );

    let all: Vec<i8> = (-8..=7).collect();
    let mut cases = vec![all.clone(), all[1..].to_vec(), vec![0], vec![7, -8, 3]];
    for seed in 0..4 {
        let n = 31 + 16 * seed as usize;
        cases.push(
            values(n, seed + 40)
                .iter()
                .map(|v| ((v + 1.0) * 8.0).floor().min(15.0) as i8 - 8)
                .collect(),
        );
    }
    for codes in cases {
        let packed = ac::pack_int4(&codes);
        let wide: Vec<i32> = codes.iter().map(|&c| i32::from(c)).collect();
        assert_eq!(
            packed,
            quant::pack_int4(&wide),
            "packing {codes:?} (as nindub::compress::quant::pack_int4)"
        );
        assert_eq!(packed.len(), codes.len().div_ceil(2), "⌈n/2⌉ bytes");
        let theirs: Vec<i8> = quant::unpack_int4(&packed, codes.len(), true)
            .into_iter()
            .map(|c| c as i8)
            .collect();
        assert_eq!(
            ac::unpack_int4(&packed, codes.len()),
            theirs,
            "unpacking {packed:02x?} (as nindub::compress::quant::unpack_int4)"
        );
        assert_eq!(
            ac::unpack_int4(&packed, codes.len()),
            codes,
            "unpack(pack(codes)) gives the codes back"
        );
    }
}

/// Checks the learner's per-channel quantization of `w` against the
/// formula, against nindub's `int8-channel` scheme, and by dequantizing.
fn per_channel_like_nindub(w: &Array2<f32>) {
    let (codes, scales) = ac::quantize_per_channel(w.view());
    assert_eq!(codes.dim(), w.dim(), "one code per weight");
    assert_eq!(scales.len(), w.nrows(), "one scale per row");
    let lib = quant::quantize(
        &w.iter().copied().collect::<Vec<_>>(),
        &[w.nrows(), w.ncols()],
        &Scheme::parse("int8-channel").unwrap(),
    )
    .unwrap();
    let lib_codes = lib.codes();
    for (r, row) in w.rows().into_iter().enumerate() {
        let amax = row.fold(0.0f32, |m, &v| m.max(v.abs()));
        let expected = if amax == 0.0 { 1.0 } else { amax / 127.0 };
        let s = scales[r];
        assert!(
            rel_close(s, expected, 1e-5),
            "row {r}: S = max|w| / 127 = {expected}, got {s}"
        );
        // nindub rounds S up to an f16: close, and the codes within 1.
        let s_lib = lib.params[r].scale;
        assert!(
            rel_close(s, s_lib, 1e-3),
            "row {r}: nindub's scale is ≈ {s_lib}, got {s}"
        );
        for (c, &x) in row.iter().enumerate() {
            let q = codes[[r, c]];
            let q_lib = lib_codes[r * w.ncols() + c];
            assert!(
                (-127..=127).contains(&q) && (i32::from(q) - q_lib).abs() <= 1,
                "w[{r}, {c}] = {x}: nindub's code is {q_lib}, got {q}"
            );
            let back = s * f32::from(q);
            assert!(
                (x - back).abs() <= s / 2.0 * 1.0001,
                "w[{r}, {c}] = {x}: S · q = {back} is more than S/2 away"
            );
        }
    }
}

pub fn per_channel() {
    let w = arr2(&[
        [127.0, 0.5, 1.5, 2.5, -2.5],
        [-254.0, 1.0, 3.0, -5.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0],
    ]);
    let (codes, scales) = ac::quantize_per_channel(w.view());
    assert_eq!(
        scales,
        arr1(&[1.0, 2.0, 1.0]),
        "S_r = max|w_r| / 127 (a negative maximum counts); a row of zeros gets 1.0"
    );
    assert_eq!(
        codes,
        arr2(&[[127, 0, 2, 2, -2], [-127, 0, 2, -2, 0], [0, 0, 0, 0, 0]]),
        "round half to even: 0.5 → 0, 1.5 → 2, 2.5 → 2"
    );

    // Random rows of very different magnitudes.
    let (rows, cols) = (8, 48);
    let x = values(rows * cols, 60);
    let w = Array2::from_shape_fn((rows, cols), |(r, c)| {
        x[r * cols + c] * 0.05 * 2f32.powi(r as i32)
    });
    per_channel_like_nindub(&w);

    // An outlier in one row leaves every other row's scale and codes alone.
    let mut spiked = w.clone();
    spiked[[3, 7]] = 1000.0;
    per_channel_like_nindub(&spiked);
    let (calm_codes, calm_scales) = ac::quantize_per_channel(w.view());
    let (codes, scales) = ac::quantize_per_channel(spiked.view());
    for r in (0..rows).filter(|&r| r != 3) {
        assert_eq!(
            (scales[r], codes.row(r)),
            (calm_scales[r], calm_codes.row(r)),
            "row {r}: an outlier in row 3 must not change another row"
        );
    }
    assert!(
        scales[3] > 7.8,
        "row 3: its scale grows to 1000 / 127, got {}",
        scales[3]
    );

    // A transposed view of a `[in, out]` matrix stored row-major (as some
    // checkpoints store their weights): rows are still axis 0 of the view.
    let stored = Array2::from_shape_fn((cols, rows), |(c, r)| w[[r, c]]);
    assert!(
        stored.t().as_slice().is_none(),
        "the view is not contiguous"
    );
    let (codes, scales) = ac::quantize_per_channel(stored.t());
    assert_eq!(
        (codes, scales),
        (calm_codes, calm_scales),
        "a transposed (non-contiguous) view gives the same answer"
    );
}

/// The learner's unpacking of Q4_K's 6-bit scales and minimums, against
/// nindub's (the one the exporter's K-quants are decoded with).
pub fn q4k_scale_min() {
    use nindub::ggml::superblocks::scale_min_k4;
    let mut q = [0u8; 12];
    q[9] = 0x3A;
    q[1] = 0xC0;
    q[5] = 0x40;
    assert_eq!(
        ac::q4k_scale_min(5, &q),
        (58, 19),
        "sub-block 5: low nibbles of byte 9 (0xA, 0x3), top bits of bytes 1 (3) and 5 (1)"
    );
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for case in 0..200 {
        let q: [u8; 12] = std::array::from_fn(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        });
        for j in 0..8 {
            let (s, m) = ac::q4k_scale_min(j, &q);
            assert_eq!(
                (s, m),
                scale_min_k4(j, &q),
                "case {case}, sub-block {j} of {q:02x?}: (scale, min)"
            );
            assert!(s < 64 && m < 64, "6-bit numbers: got ({s}, {m})");
        }
    }
}

/// The learner's GPTQ column against nindub's (`compress::gptq::spread`,
/// the one the exporter runs), on a hand case and random rows.
pub fn gptq_column() {
    let mut w = [1.0f32, 0.5, -0.25, 2.0];
    let u = [9.0f32, 2.0, 0.5, -1.0];
    let e = ac::gptq_column(&mut w, 1, &u, 0.0);
    assert_eq!(e, 0.25, "e = (w[1] − value) / u[1] = (0.5 − 0) / 2");
    assert_eq!(
        w,
        [1.0, 0.0, -0.375, 2.25],
        "w[0] untouched, w[1] = value, w[k] −= e · u[k] after it"
    );
    let mut rng = super::Lcg(0x5eed_6b7a);
    let mut r = || (rng.unit() * 2.0 - 1.0) as f32;
    for case in 0..100 {
        let n = 8 + case % 57;
        let w0: Vec<f32> = (0..n).map(|_| r()).collect();
        let u: Vec<f32> = (0..n).map(|_| 0.5 + r().abs()).collect();
        let j = case % n;
        let value = (w0[j] * 4.0).round() / 4.0;
        let (mut mine, mut theirs) = (w0.clone(), w0.clone());
        let e = ac::gptq_column(&mut mine, j, &u, value);
        let e_ref = nindub::compress::gptq::spread(&mut theirs, j, &u, value);
        assert_eq!(e, e_ref, "case {case}: e for column {j} of {n}");
        assert_eq!(mine, theirs, "case {case}: the row after column {j} of {n}");
    }
}

/// The learner's lossless test against what GGML's Q4_1 encoder and
/// decoder (nindub's `ggml::dtype`) actually do to the block.
pub fn q4_1_lossless() {
    use nindub::ggml::dtype;
    let q4_1 = dtype::parse("q4_1").expect("GGML's Q4_1");
    let roundtrip = |b: &[f32; 32]| {
        let bytes = dtype::quantize(q4_1, b, &[1, 32]).unwrap();
        let mut out = [0f32; 32];
        dtype::dequantize(q4_1, &bytes, &mut out).unwrap();
        out == *b
    };
    let mut rng = super::Lcg(0x0041_0041);
    let (mut on_grid, mut off_grid) = (0, 0);
    for case in 0..400 {
        // A block decoded from a Q4_1 block (codes 0 and 15 present), as in
        // the published SmolLM2; every fourth one nudged off its grid.
        let d = ac::f16_round(0.001 + rng.unit() as f32 * 0.05);
        let m = ac::f16_round(-(rng.unit() as f32) * 0.4);
        let mut b: [f32; 32] = std::array::from_fn(|i| match i {
            0 => 0.0,
            1 => 15.0,
            _ => (rng.step() >> 60) as f32,
        });
        for v in b.iter_mut() {
            *v = *v * d + m;
        }
        if case % 4 == 3 {
            b[5 + case % 20] += d * 0.37;
        }
        let truth = roundtrip(&b);
        if truth {
            on_grid += 1;
        } else {
            off_grid += 1;
        }
        assert_eq!(
            ac::q4_1_lossless(&b),
            truth,
            "case {case}: GGML's Q4_1 {} this block",
            if truth {
                "gives back exactly"
            } else {
                "changes"
            }
        );
    }
    assert!(
        on_grid > 100 && off_grid > 50,
        "the cases cover both answers"
    );
    // A constant block: d = 0, every value is the minimum.
    assert_eq!(ac::q4_1_lossless(&[0.5; 32]), roundtrip(&[0.5; 32]));
}
