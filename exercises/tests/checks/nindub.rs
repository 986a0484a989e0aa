use super::Lcg;
use exercises::archmage::nindub as nd;

/// Equal within a relative 1e-12 (infinities must match exactly; NaN never
/// passes).
fn near(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-12 * b.abs()
}

const GIB: u64 = 1 << 30;
/// One Llama-2-70B layer in Q4_0 (trial 1's answer, written out).
const L70: u64 = 481_361_920;

pub fn layer_bytes() {
    // SmolLM2-135M: hidden 576, intermediate 1536, 9 heads, 3 KV heads of 64.
    let smol = nd::layer_bytes(576, 1536, 9, 3, 64, 5.0);
    assert_eq!(
        smol, 2_216_448,
        "SmolLM2-135M in Q4_1: 2 211 840 bytes of matrices + 4 608 of f32 norms"
    );
    assert_eq!(
        30 * (smol - 2 * 576 * 4),
        66_355_200,
        "30 layers of matrices: the Apprentice's 66 355 200 bytes"
    );
    // Llama-3-8B: hidden 4096, intermediate 14 336, 32 heads, 8 KV heads of 128.
    for (bits, bytes) in [
        (4.5, 122_716_160u64),
        (8.5, 231_768_064),
        (16.0, 436_240_384),
    ] {
        assert_eq!(
            nd::layer_bytes(4096, 14_336, 32, 8, 128, bits),
            bytes,
            "Llama-3-8B at {bits} bits per weight"
        );
    }
    assert_eq!(
        nd::layer_bytes(8192, 28_672, 64, 8, 128, 4.5),
        L70,
        "Llama-2-70B in Q4_0"
    );
    assert_eq!(
        nd::layer_bytes(576, 1536, 9, 9, 64, 16.0),
        7_967_232,
        "no grouped-query attention: K and V as large as Q"
    );
    assert_eq!(
        nd::layer_bytes(3072, 24_576, 16, 16, 256, 16.0),
        553_672_704,
        "heads · head_dim (4096) need not equal hidden (3072)"
    );
    assert_eq!(
        nd::layer_bytes(1, 1, 1, 1, 1, 4.5),
        15,
        "seven matrices of one weight: 4.5 bits round up to a byte each (7), + 8 bytes of norms"
    );
    assert_eq!(
        nd::layer_bytes(3, 5, 2, 1, 3, 4.5),
        85,
        "each matrix rounded up on its own: 11 + 6 + 6 + 11 + 9 + 9 + 9, + 24 bytes of norms"
    );
    assert_eq!(
        nd::layer_bytes(576, 1536, 9, 3, 64, 0.0),
        4608,
        "no bits per weight: the f32 norms remain"
    );
    assert_eq!(nd::layer_bytes(0, 0, 0, 0, 0, 8.5), 0, "an empty layer");
}

/// What any right answer of `layers_that_fit` satisfies.
fn fits_consistently(budget: u64, reserved: u64, layers: &[u64], prefetch: bool) {
    let all = reserved + layers.iter().sum::<u64>();
    let staging = if prefetch { 2 } else { 1 } * layers.iter().copied().max().unwrap_or(0);
    let case =
        format!("budget {budget}, reserved {reserved}, layers {layers:?}, prefetch {prefetch}");
    match nd::layers_that_fit(budget, reserved, layers, prefetch) {
        Ok((resident, streamed)) => {
            assert_eq!(
                resident + streamed,
                layers.len(),
                "every layer counted: {case}"
            );
            if streamed == 0 {
                assert!(all <= budget, "all resident but over budget: {case}");
            } else {
                assert!(
                    all > budget,
                    "everything fits, nothing should stream: {case}"
                );
                let used = reserved + staging + layers[..resident].iter().sum::<u64>();
                assert!(used <= budget, "over budget: {case}");
                assert!(
                    used + layers[resident] > budget,
                    "layer {resident} still fits as a resident: {case}"
                );
            }
        }
        Err(message) => {
            let minimum = all.min(reserved + staging);
            assert!(minimum > budget, "it fits, yet Err({message:?}): {case}");
            assert!(
                message.contains(&minimum.to_string()),
                "the message {message:?} must name the minimum budget {minimum}: {case}"
            );
            assert!(
                nd::layers_that_fit(minimum, reserved, layers, prefetch).is_ok(),
                "the minimum budget named must work: {case}"
            );
        }
    }
}

pub fn layers_that_fit() {
    // Llama-2-70B in Q4_0 on a 24 GiB device, 2 GiB reserved.
    let seventy = vec![L70; 80];
    assert_eq!(
        nd::layers_that_fit(24 * GIB, 2 * GIB, &seventy, false),
        Ok((48, 32)),
        "one staging buffer"
    );
    assert_eq!(
        nd::layers_that_fit(24 * GIB, 2 * GIB, &seventy, true),
        Ok((47, 33)),
        "two staging buffers cost one resident layer"
    );
    assert_eq!(
        nd::layers_that_fit(80 * L70 + 2 * GIB, 2 * GIB, &seventy, true),
        Ok((80, 0)),
        "a tie: exactly the budget, everything resident, no buffer"
    );
    assert_eq!(
        nd::layers_that_fit(80 * L70 + 2 * GIB - 1, 2 * GIB, &seventy, true),
        Ok((77, 3)),
        "one byte short: two buffers take the room of two layers, and a third streams"
    );

    // Small numbers: reserved 10, three layers of 100.
    let three = [100, 100, 100];
    assert_eq!(nd::layers_that_fit(310, 10, &three, true), Ok((3, 0)));
    assert_eq!(
        nd::layers_that_fit(309, 10, &three, false),
        Ok((1, 2)),
        "one buffer (100) + one resident (100) + 10 = 210; a second resident needs 310"
    );
    assert_eq!(nd::layers_that_fit(309, 10, &three, true), Ok((0, 3)));
    assert_eq!(
        nd::layers_that_fit(210, 10, &three, false),
        Ok((1, 2)),
        "a tie: the resident layer fills the budget exactly"
    );
    assert_eq!(
        nd::layers_that_fit(110, 10, &three, false),
        Ok((0, 3)),
        "a tie: the one staging buffer fills the budget exactly"
    );
    assert_eq!(
        nd::layers_that_fit(210, 10, &three, true),
        Ok((0, 3)),
        "a tie: the two staging buffers fill the budget exactly"
    );
    let err = nd::layers_that_fit(209, 10, &three, true)
        .expect_err("prefetch needs two buffers of 100 + 10 reserved");
    assert!(err.contains("210"), "name the minimum budget, 210: {err:?}");
    let err =
        nd::layers_that_fit(109, 10, &three, false).expect_err("one buffer of 100 + 10 reserved");
    assert!(err.contains("110"), "name the minimum budget, 110: {err:?}");

    // The staging buffers are sized by the largest layer, wherever it is.
    assert_eq!(
        nd::layers_that_fit(185, 20, &[30, 80, 20, 40], false),
        Ok((1, 3)),
        "20 reserved + a buffer of 80 + 30 resident = 130; + 80 > 185"
    );
    assert_eq!(
        nd::layers_that_fit(185, 20, &[30, 80, 20, 40], true),
        Ok((0, 4)),
        "20 reserved + two buffers of 80 = 180; + 30 > 185"
    );
    assert_eq!(
        nd::layers_that_fit(70, 0, &[10, 50, 10, 10], false),
        Ok((1, 3)),
        "residents are a prefix: the small layers after the 50 do not jump the queue"
    );

    // One layer: two buffers are larger than the layer itself.
    let err = nd::layers_that_fit(109, 10, &[100], true).expect_err("110 are needed");
    assert!(
        err.contains("110"),
        "with one layer the minimum is all resident, 110, not two buffers, 210: {err:?}"
    );
    assert_eq!(nd::layers_that_fit(110, 10, &[100], true), Ok((1, 0)));

    // No layers at all.
    assert_eq!(
        nd::layers_that_fit(0, 0, &[], true),
        Ok((0, 0)),
        "nothing to place"
    );
    assert_eq!(
        nd::layers_that_fit(100, 100, &[], false),
        Ok((0, 0)),
        "a tie, no layers"
    );
    let err = nd::layers_that_fit(99, 100, &[], false).expect_err("the reserve alone is too large");
    assert!(err.contains("100"), "name the minimum budget, 100: {err:?}");

    // Invariants on many pseudo-random cases, around the interesting budgets.
    let mut rng = Lcg(42);
    for _ in 0..300 {
        let n = (rng.unit() * 8.0) as usize;
        let layers: Vec<u64> = (0..n).map(|_| 1 + (rng.unit() * 50.0) as u64).collect();
        let reserved = (rng.unit() * 40.0) as u64;
        let prefetch = rng.unit() < 0.5;
        let all = reserved + layers.iter().sum::<u64>();
        let budget = (rng.unit() * (all + 20) as f64) as u64;
        fits_consistently(budget, reserved, &layers, prefetch);
    }
}

pub fn prefetch_schedule() {
    assert_eq!(
        nd::prefetch_schedule(&[], &[], true),
        0.0,
        "no layers, no time"
    );
    assert_eq!(
        nd::prefetch_schedule(&[], &[], false),
        0.0,
        "no layers, no time"
    );
    assert_eq!(
        nd::prefetch_schedule(&[3.0], &[2.0], true),
        5.0,
        "one layer: nothing to overlap"
    );
    let (r, c) = ([10.0, 10.0, 10.0], [1.0, 1.0, 1.0]);
    assert_eq!(nd::prefetch_schedule(&r, &c, false), 33.0, "taking turns");
    assert_eq!(
        nd::prefetch_schedule(&r, &c, true),
        31.0,
        "reads dominate: Σ read + the last compute"
    );
    let (r, c) = ([1.0, 1.0, 1.0], [10.0, 10.0, 10.0]);
    assert_eq!(nd::prefetch_schedule(&r, &c, false), 33.0, "taking turns");
    assert_eq!(
        nd::prefetch_schedule(&r, &c, true),
        31.0,
        "computes dominate: the first read + Σ compute"
    );
    assert_eq!(
        nd::prefetch_schedule(&[5.0; 3], &[5.0; 3], true),
        20.0,
        "a tie: read and compute equal, both bounds meet"
    );
    assert_eq!(
        nd::prefetch_schedule(&[1.0, 1.0, 1.0, 10.0], &[1.0, 10.0, 1.0, 1.0], true),
        23.0,
        "two buffers, no more: read 3 must wait for compute 1 (ends at 12) to free its buffer"
    );
    assert_eq!(
        nd::prefetch_schedule(&[1.0, 1.0, 1.0, 10.0], &[1.0, 10.0, 1.0, 1.0], false),
        26.0
    );
    assert_eq!(
        nd::prefetch_schedule(&[0.0, 0.0], &[2.0, 3.0], true),
        5.0,
        "resident layers read in no time"
    );

    // Pseudo-random layers in the two regimes, and the bounds in between.
    let mut rng = Lcg(7);
    for case in 0..200 {
        let n = 1 + (rng.unit() * 12.0) as usize;
        let mut read: Vec<f64> = (0..n).map(|_| 0.01 + rng.unit()).collect();
        let mut compute: Vec<f64> = (0..n).map(|_| 0.01 + rng.unit()).collect();
        match case % 3 {
            0 => read.iter_mut().for_each(|r| *r += 1.0), // every read ≥ every compute
            1 => compute.iter_mut().for_each(|c| *c += 1.0), // the other way
            _ => {}
        }
        let serial: f64 = read.iter().zip(&compute).map(|(r, c)| r + c).sum();
        let reads_bound = read.iter().sum::<f64>() + compute[n - 1];
        let computes_bound = read[0] + compute.iter().sum::<f64>();
        let t = nd::prefetch_schedule(&read, &compute, true);
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
        assert!(
            close(nd::prefetch_schedule(&read, &compute, false), serial),
            "without prefetch: Σ (read + compute), {read:?} {compute:?}"
        );
        match case % 3 {
            0 => assert!(
                close(t, reads_bound),
                "reads dominate: {t} vs {reads_bound}"
            ),
            1 => assert!(
                close(t, computes_bound),
                "computes dominate: {t} vs {computes_bound}"
            ),
            _ => {}
        }
        assert!(
            t >= reads_bound.max(computes_bound) - 1e-9 && t <= serial + 1e-9,
            "between the overlap bounds and taking turns: {t}, {read:?} {compute:?}"
        );
    }
}

pub fn io_floor() {
    // 40 streamed layers of Llama-2-70B in Q4_0 from an NVMe drive at 7 GB/s.
    let bytes = 40 * L70;
    assert_eq!(bytes, 19_254_476_800);
    let floor = nd::io_floor_seconds(bytes, 7e9);
    assert!(
        near(floor, 19_254_476_800.0 / 7e9),
        "2.75 s per token: {floor}"
    );
    assert!(
        near(nd::io_floor_seconds(L70, 25e9), 481_361_920.0 / 25e9),
        "one layer over PCIe 4.0 x16"
    );
    assert_eq!(nd::io_floor_seconds(0, 7e9), 0.0, "nothing to read");
    assert_eq!(
        nd::io_floor_seconds(0, 0.0),
        0.0,
        "nothing to read over no link: 0, not 0 / 0"
    );
    assert_eq!(
        nd::io_floor_seconds(1, 0.0),
        f64::INFINITY,
        "bytes over no link: never"
    );

    let ceiling = nd::tokens_per_second_ceiling(bytes, 7e9, 0.4);
    assert!(
        near(ceiling, 7e9 / 19_254_476_800.0),
        "IO-bound: the drive sets the pace, 0.3636 tokens/s: {ceiling}"
    );
    assert!(
        near(nd::tokens_per_second_ceiling(bytes, 7e9, 0.04), ceiling),
        "a GPU ten times faster buys nothing"
    );
    assert!(
        near(nd::tokens_per_second_ceiling(1_000_000, 1e9, 0.004), 250.0),
        "compute-bound: 1 ms of reads hides under 4 ms of compute"
    );
    assert!(
        near(nd::tokens_per_second_ceiling(4_000_000, 1e9, 0.004), 250.0),
        "a tie: 4 ms of each"
    );
    assert_eq!(
        nd::tokens_per_second_ceiling(0, 7e9, 0.02),
        50.0,
        "everything resident: only compute is left"
    );
    assert_eq!(
        nd::tokens_per_second_ceiling(0, 0.0, 0.0),
        f64::INFINITY,
        "nothing to read, nothing to compute: no limit, never NaN"
    );
    assert_eq!(
        nd::tokens_per_second_ceiling(1, 0.0, 0.5),
        0.0,
        "no link: an infinite floor"
    );

    // A real schedule (trial 3's) never beats the ceiling: eight layers of
    // 2 GB over 8 GB/s (0.25 s each), computed in 0.125 s each.
    let (read, compute) = ([0.25; 8], [0.125; 8]);
    let schedule = nd::prefetch_schedule(&read, &compute, true);
    let ceiling = nd::tokens_per_second_ceiling(8 * 2_000_000_000, 8e9, 1.0);
    assert!(
        near(ceiling, 0.5) && near(schedule, 2.125),
        "ceiling {ceiling} (expected 0.5), schedule {schedule} s (expected 2.125)"
    );
    assert!(
        1.0 / schedule <= ceiling,
        "the schedule is slower than the ceiling"
    );
}
