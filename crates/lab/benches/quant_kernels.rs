//! Quantized kernels against the memory-bandwidth floor, f32 and candle.
//!
//! `cargo bench -p nindub --bench quant_kernels` prints, in one run:
//! quantize throughput, the machine's copy bandwidth and the floor it sets
//! for each weight format, and matrix-vector / matrix-matrix times of f32
//! (candle and a plain rayon loop), our INT8 and INT4 kernels, and candle's
//! Q8_0 and Q4_1. Every time is the median of several repetitions.

use std::hint::black_box;
use std::time::Instant;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor as CandleQTensor};
use candle_core::{Device, Module, Tensor};
use nindub::compress::qlinear::{QLinear, simd_level};
use nindub::compress::quant::{Scheme, quantize};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const GB: f64 = 1e9;
const MIB: usize = 1 << 20;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Evicts the caches by writing a 128 MiB buffer on every thread (four
/// times the 32 MiB L3 of this kind of CPU; reading alone left part of a
/// recently used buffer in cache).
struct Flush(std::cell::RefCell<Vec<u64>>);

impl Flush {
    fn new() -> Flush {
        Flush(std::cell::RefCell::new(vec![1; 128 * MIB / 8]))
    }
    fn run(&self) {
        let mut b = self.0.borrow_mut();
        b.par_chunks_mut(1 << 16)
            .for_each(|c| c.iter_mut().for_each(|v| *v = v.wrapping_mul(3)));
        black_box(&*b);
    }
}

/// Median seconds of `reps` runs of `f`, the caches flushed before each
/// run when `flush` is given.
fn time<T>(reps: usize, flush: Option<&Flush>, mut f: impl FnMut() -> T) -> f64 {
    black_box(f()); // warm-up: page faults, thread pool, lazy init
    let mut v = Vec::with_capacity(reps);
    for _ in 0..reps {
        if let Some(fl) = flush {
            fl.run();
        }
        let t = Instant::now();
        black_box(f());
        v.push(t.elapsed().as_secs_f64());
    }
    median(v)
}

fn random(rng: &mut StdRng, len: usize) -> Vec<f32> {
    // Roughly the spread of a trained projection (N(0, 0.02)-like, with a
    // few larger values), without needing a model file.
    (0..len)
        .map(|_| {
            let u: f32 = rng.random_range(-1.0..1.0);
            0.03 * u * u * u.signum() + 0.01 * u
        })
        .collect()
}

fn rel(a: &[f32], b: &[f32]) -> f64 {
    let (mut num, mut den) = (0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        num += ((x - y) as f64).powi(2);
        den += (y as f64).powi(2);
    }
    (num / den).sqrt()
}

/// The plain f32 baseline: one rayon task per block of output rows, a
/// 16-lane dot product per (row, token).
fn f32_loop(w: &[f32], x: &[f32], n: usize, out: usize, inp: usize) -> Vec<f32> {
    let mut yt = vec![0f32; out * n];
    yt.par_chunks_mut(n * 16).enumerate().for_each(|(t, ys)| {
        for (k, yr) in ys.chunks_mut(n).enumerate() {
            let wr = &w[(t * 16 + k) * inp..(t * 16 + k + 1) * inp];
            for (i, y) in yr.iter_mut().enumerate() {
                let xi = &x[i * inp..(i + 1) * inp];
                let mut acc = [0f32; 16];
                for (a, b) in wr.chunks_exact(16).zip(xi.chunks_exact(16)) {
                    for l in 0..16 {
                        acc[l] += a[l] * b[l];
                    }
                }
                let tail = inp / 16 * 16;
                let t: f32 = (tail..inp).map(|j| wr[j] * xi[j]).sum();
                *y = acc.iter().sum::<f32>() + t;
            }
        }
    });
    if n == 1 {
        return yt;
    }
    let mut y = vec![0f32; n * out];
    for (r, col) in yt.chunks_exact(n).enumerate() {
        for (i, &v) in col.iter().enumerate() {
            y[i * out + r] = v;
        }
    }
    y
}

struct Row {
    name: String,
    bytes: usize,
    mv_cold: f64,
    mv_warm: f64,
    mm: f64,
    err: f64,
}

fn main() -> Res<()> {
    let total = Instant::now();
    let threads = rayon::current_num_threads();
    let profile = if cfg!(debug_assertions) {
        "debug (unoptimised: numbers are meaningless)"
    } else {
        "release (bench profile, opt-level 3)"
    };
    let cpu = lab::machine::cpu();
    println!("# quant_kernels");
    println!(
        "profile: {profile}; rayon threads: {threads}; our kernels: {}; CPU: {cpu}",
        simd_level()
    );
    let load = || {
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "?".into())
    };
    println!(
        "load average at start: {} (other processes on these cores make every number noisier)",
        load()
    );
    println!("every time is the median of the repetitions shown (after one warm-up run)\n");
    let mut rng = StdRng::seed_from_u64(42);

    // --- quantize throughput -------------------------------------------
    // QUANT_KERNELS_ONLY=int4: only the kernels whose name contains "int4",
    // no quantize section and no summary (for quick iterations).
    let only = std::env::var("QUANT_KERNELS_ONLY").ok();
    println!("## Quantize throughput, 2048×2048 f32 (16.8 MB of input)");
    let (qr, qc) = (2048, 2048);
    let wq = random(&mut rng, qr * qc);
    for name in ["int8-channel", "int4-g32"] {
        if only.is_some() {
            println!("(skipped: QUANT_KERNELS_ONLY is set)");
            break;
        }
        let s = Scheme::parse(name)?;
        let t = time(3, None, || quantize(&wq, &[qr, qc], &s).unwrap());
        let gbs = (qr * qc * 4) as f64 / t / GB;
        println!("{name:<14} {:>8.1} ms  {gbs:>6.2} GB/s  (3 reps)", t * 1e3);
    }
    drop(wq);

    // --- memory bandwidth ----------------------------------------------
    println!("\n## Memory bandwidth (256 MiB buffers)");
    let len = 256 * MIB / 8;
    let src: Vec<u64> = (0..len as u64).collect();
    let mut dst = vec![0u64; len];
    let bytes = (len * 8) as f64;
    let t1 = time(5, None, || {
        dst.copy_from_slice(&src);
        dst[len / 2]
    });
    let chunk = len / threads.max(1) / 8;
    let tp = time(5, None, || {
        dst.par_chunks_mut(chunk)
            .zip(src.par_chunks(chunk))
            .for_each(|(d, s)| d.copy_from_slice(s));
        dst[len / 3]
    });
    drop((src, dst));
    // Read-only, cold, on a buffer the size of a big weight matrix.
    let flush = Flush::new();
    let rlen = 64 * MIB / 4;
    let rsrc: Vec<f32> = (0..rlen).map(|i| i as f32).collect();
    let tr = time(7, Some(&flush), || {
        rsrc.par_chunks(rlen / 16)
            .map(|c| {
                let mut a = [0f32; 16];
                for x in c.chunks_exact(16) {
                    for l in 0..16 {
                        a[l] += x[l];
                    }
                }
                a.iter().sum::<f32>()
            })
            .sum::<f32>()
    });
    drop(rsrc);
    let copy1 = 2.0 * bytes / t1 / GB;
    let copy = 2.0 * bytes / tp / GB;
    let read = (rlen * 4) as f64 / tr / GB;
    println!(
        "copy, 1 thread:   {copy1:>6.1} GB/s  (read + write counted: 2 × 256 MiB moved per copy)"
    );
    println!(
        "copy, {threads} threads:  {copy:>6.1} GB/s  (same count)  → floor = weight bytes ÷ this"
    );
    println!(
        "read, {threads} threads:  {read:>6.1} GB/s  (sum of a 64 MiB f32 buffer, caches flushed first)  \
         → floor_r = weight bytes ÷ this"
    );
    let floor = |b: usize| b as f64 / (copy * GB);
    let floor_read = |b: usize| b as f64 / (read * GB);

    // --- kernels ---------------------------------------------------------
    let mut summary = vec![];
    for (out, inp, label) in [
        (5632, 2048, "2048→5632 (TinyLlama up-projection)"),
        (1536, 576, "576→1536 (SmolLM2-135M up-projection)"),
    ] {
        let nmm = 64;
        println!("\n## W [out={out}, in={inp}], {label}");
        let w = random(&mut rng, out * inp);
        let x1: Vec<f32> = (0..inp).map(|_| rng.random_range(-1.0..1.0)).collect();
        let xm: Vec<f32> = (0..nmm * inp)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let dev = Device::Cpu;
        let wt = Tensor::from_vec(w.clone(), (out, inp), &dev)?;
        let x1t = Tensor::from_vec(x1.clone(), (1, inp), &dev)?;
        let xmt = Tensor::from_vec(xm.clone(), (nmm, inp), &dev)?;
        let exact1 = x1t.matmul(&wt.t()?)?.flatten_all()?.to_vec1::<f32>()?;
        let (mv_reps, mm_reps) = (15, 5);
        let mut rows: Vec<Row> = vec![];
        let mut add =
            |name: &str, bytes: usize, mv: &dyn Fn() -> Vec<f32>, mm: &dyn Fn() -> Vec<f32>| {
                if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
                    return;
                }
                let err = rel(&mv(), &exact1);
                let mv_cold = time(mv_reps, Some(&flush), mv);
                let mv_warm = time(mv_reps, None, mv);
                let mm = time(mm_reps, None, mm);
                rows.push(Row {
                    name: name.into(),
                    bytes,
                    mv_cold,
                    mv_warm,
                    mm,
                    err,
                });
            };

        let wtt = wt.t()?;
        add(
            "f32 candle matmul",
            out * inp * 4,
            &|| {
                x1t.matmul(&wtt)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap()
            },
            &|| {
                xmt.matmul(&wtt)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap()
            },
        );
        add(
            "f32 rayon loop",
            out * inp * 4,
            &|| f32_loop(&w, &x1, 1, out, inp),
            &|| f32_loop(&w, &xm, nmm, out, inp),
        );
        let i8l = QLinear::from_f32(&w, out, inp, &Scheme::parse("int8-channel")?, None)?;
        let i4l = QLinear::from_f32(&w, out, inp, &Scheme::parse("int4-g32")?, None)?;
        let i8b = i8l.weight.storage_bytes();
        let i4b = i4l.weight.storage_bytes();
        // Each layer two ways: A dequantizes on the fly, B multiplies in int8.
        for (scheme, l, bytes) in [("int8-channel", &i8l, i8b), ("int4-g32", &i4l, i4b)] {
            add(
                &format!("ours {scheme} A"),
                bytes,
                &|| l.forward(&x1, 1).unwrap(),
                &|| l.forward(&xm, nmm).unwrap(),
            );
            add(
                &format!("ours {scheme} B"),
                bytes,
                &|| l.forward_int8(&x1, 1).unwrap(),
                &|| l.forward_int8(&xm, nmm).unwrap(),
            );
        }
        for dt in [GgmlDType::Q8_0, GgmlDType::Q4_1] {
            let q = CandleQTensor::quantize(&wt, dt)?;
            let qb = out * inp / dt.block_size() * dt.type_size();
            let mm = QMatMul::from_qtensor(q)?;
            add(
                &format!("candle {dt:?}"),
                qb,
                &|| {
                    mm.forward(&x1t)
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1()
                        .unwrap()
                },
                &|| {
                    mm.forward(&xmt)
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1()
                        .unwrap()
                },
            );
        }

        println!(
            "n=1: caches flushed before each of {mv_reps} reps (cold) and not (warm); \
             n={nmm}: {mm_reps} reps, warm"
        );
        println!(
            "{:<20}{:>7}{:>9}{:>9}{:>8}{:>7}{:>7}{:>7}{:>8}{:>8}{:>8}{:>9}",
            "kernel",
            "MB",
            "floor µs",
            "floor_r",
            "n=1 µs",
            "GB/s",
            "×floor",
            "×fl_r",
            "warm µs",
            "n=64 ms",
            "GFLOP/s",
            "rel err"
        );
        for r in &rows {
            println!(
                "{:<20}{:>7.2}{:>9.0}{:>9.0}{:>8.0}{:>7.1}{:>7.2}{:>7.2}{:>8.0}{:>8.2}{:>8.1}{:>9.1e}",
                r.name,
                r.bytes as f64 / 1e6,
                floor(r.bytes) * 1e6,
                floor_read(r.bytes) * 1e6,
                r.mv_cold * 1e6,
                r.bytes as f64 / r.mv_cold / GB,
                r.mv_cold / floor(r.bytes),
                r.mv_cold / floor_read(r.bytes),
                r.mv_warm * 1e6,
                r.mm * 1e3,
                2.0 * (out * inp * nmm) as f64 / r.mm / GB,
                r.err,
            );
        }
        if only.is_some() {
            continue;
        }
        let get = |n: &str| rows.iter().find(|r| r.name == n).unwrap();
        let (a, cand, lp) = (
            get("ours int8-channel A"),
            get("f32 candle matmul"),
            get("f32 rayon loop"),
        );
        let b = get("ours int8-channel B");
        let (i4a, i8blocks, i4blocks) = (
            get("ours int4-g32 A"),
            i8l.weight.params.len(),
            i4l.weight.params.len(),
        );
        println!(
            "note: MB is the storage size (codes, an f16 scale per block and an f16 offset when affine, as GGUF stores them). In memory a \
             QTensor keeps (S, Z) as f32 + i32, 8 bytes a block, so our kernels read {:.2} MB \
             (int8-channel) and {:.2} MB (int4-g32): {:.2}× and {:.2}× the floor on those bytes",
            (i8l.weight.data.len() + 8 * i8blocks) as f64 / 1e6,
            (i4l.weight.data.len() + 8 * i4blocks) as f64 / 1e6,
            a.mv_cold / floor(i8l.weight.data.len() + 8 * i8blocks),
            i4a.mv_cold / floor(i4l.weight.data.len() + 8 * i4blocks),
        );
        summary.push(format!(
            "{label}: INT8 A matvec {:.0} µs = {:.2}× floor ({:.2}× floor_r), {:.2}× candle f32, \
             {:.2}× rayon f32; INT8 B {:.2}× floor; INT4 A {:.2}× its floor",
            a.mv_cold * 1e6,
            a.mv_cold / floor(a.bytes),
            a.mv_cold / floor_read(a.bytes),
            a.mv_cold / cand.mv_cold,
            a.mv_cold / lp.mv_cold,
            b.mv_cold / floor(b.bytes),
            get("ours int4-g32 A").mv_cold / floor(get("ours int4-g32 A").bytes),
        ));
    }
    println!("\n## Summary (cold n=1; ratios are time ÷ time, lower is better)");
    for s in summary {
        println!("{s}");
    }
    println!("targets: INT8 matvec ≤ 1.5× floor, and < 1× f32 matvec");
    println!("load average at the end: {}", load());
    println!("(total bench time {:.0} s)", total.elapsed().as_secs_f64());
    Ok(())
}
