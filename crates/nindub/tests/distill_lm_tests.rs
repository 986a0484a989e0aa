//! The Transfer of Wisdom, language-model half: the student, its cache of
//! soft targets, exact resumption, and the direction of the result on the
//! real teacher and corpus (a reduced run of the book's experiment).

use nindub::candle_core::{Device, Tensor};
use nindub::distill::lm::{self, LmExperimentConfig, LmRun};
use nindub::distill::loss::KdConfig;
use nindub::distill::soft_targets::{CacheKey, SoftTargets, Windows};
use nindub::distill::student::StudentConfig;
use nindub::distill::train::AdamWConfig;
use nindub::model::llama::{ForwardOptions, Llama};

const VOCAB: usize = 300;
const LEN: usize = 16;

/// Random windows and random top-k "teacher" logits: enough to train on.
fn synthetic(train: usize) -> (Windows, SoftTargets) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let tokens: Vec<u32> = (0..(train + 2) * (LEN + 1) * 10)
        .map(|_| rng.random_range(0..VOCAB as u32))
        .collect();
    let windows = Windows::cut(&tokens, LEN, train, 2).unwrap();
    let rows = windows.train.len() * LEN;
    let k = 4;
    let idx: Vec<u32> = (0..rows * k)
        .map(|_| rng.random_range(0..VOCAB as u32))
        .collect();
    let val: Vec<f32> = (0..rows * k).map(|_| rng.random_range(-3.0..3.0)).collect();
    let key = CacheKey {
        corpus_sha256: "synthetic".into(),
        teacher_sha256: "synthetic".into(),
        vocab: VOCAB,
        window: LEN,
        k,
        train_windows: windows.train.len(),
        held_out_windows: windows.held_out.len(),
    };
    let targets = SoftTargets {
        key,
        indices: Tensor::from_vec(idx, (rows, k), &Device::Cpu).unwrap(),
        values: Tensor::from_vec(val, (rows, k), &Device::Cpu).unwrap(),
        teacher_held_out_nll: 1.0,
        teacher_seconds: 0.0,
        from_cache: false,
    };
    (windows, targets)
}

fn tiny() -> StudentConfig {
    StudentConfig::small(VOCAB, 32, 2, LEN, 0)
}

fn run(steps: usize) -> LmRun {
    LmRun {
        steps,
        batch: 2,
        adamw: AdamWConfig::default(),
        warmup: 2,
        seed: 5,
        eval_every: 2,
        kd: KdConfig::new(2.0, 0.5, true).unwrap(),
        stop_after: None,
    }
}

#[test]
fn an_interrupted_run_resumes_to_the_same_weights() {
    let (windows, targets) = synthetic(8);
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    lm::train_student(
        tiny(),
        &windows,
        &targets,
        &run(6),
        Some(a.path()),
        None,
        false,
    )
    .unwrap();
    let interrupted = LmRun {
        stop_after: Some(2),
        ..run(6)
    };
    let (_, first) = lm::train_student(
        tiny(),
        &windows,
        &targets,
        &interrupted,
        Some(b.path()),
        None,
        false,
    )
    .unwrap();
    assert_eq!(first.curve.len(), 1);
    let (_, second) = lm::train_student(
        tiny(),
        &windows,
        &targets,
        &run(6),
        Some(b.path()),
        None,
        false,
    )
    .unwrap();
    assert_eq!(second.resumed_from, Some(2));
    assert_eq!(
        second.curve.len(),
        3,
        "the curve keeps the first run's point"
    );
    let weights = |d: &std::path::Path| std::fs::read(d.join("student/model.safetensors")).unwrap();
    assert!(
        weights(a.path()) == weights(b.path()),
        "resumed weights differ from the uninterrupted run's"
    );
    let lines = std::fs::read_to_string(b.path().join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 3);
    // Other settings in the same directory: refused, not silently mixed.
    let other = LmRun { seed: 6, ..run(6) };
    let e = lm::train_student(
        tiny(),
        &windows,
        &targets,
        &other,
        Some(b.path()),
        None,
        false,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("other settings"), "{e}");
}

#[test]
fn a_saved_student_is_a_llama_for_the_generation_path() {
    let (windows, targets) = synthetic(4);
    let dir = tempfile::tempdir().unwrap();
    let (student, _) = lm::train_student(
        tiny(),
        &windows,
        &targets,
        &run(2),
        Some(dir.path()),
        None,
        false,
    )
    .unwrap();
    let mut llama = Llama::from_safetensors(&dir.path().join("student"), &Device::Cpu).unwrap();
    let w = &windows.train[0][..LEN];
    let ours = student
        .forward(&Tensor::new(w, &Device::Cpu).unwrap().unsqueeze(0).unwrap())
        .unwrap();
    let opts = ForwardOptions {
        all_logits: true,
        ..Default::default()
    };
    let theirs = llama.forward(w, &opts).unwrap().logits;
    let max_diff = |a: &Tensor, b: &Tensor| -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    let diff = max_diff(&ours, &theirs);
    assert!(diff < 1e-4, "student and Llama logits differ by {diff}");
    // Token by token through the KV cache: the same last logits.
    llama.clear_cache();
    let mut last = None;
    for &t in w {
        last = Some(
            llama
                .forward(&[t], &ForwardOptions::default())
                .unwrap()
                .logits,
        );
    }
    let diff = max_diff(&last.unwrap(), &theirs.narrow(0, LEN - 1, 1).unwrap());
    assert!(diff < 1e-4, "cached steps differ by {diff}");
}

#[test]
fn mismatched_and_broken_inputs_are_refused() {
    let (windows, targets) = synthetic(4);
    // A student with another vocabulary.
    let other = StudentConfig::small(VOCAB + 1, 32, 1, LEN, 0);
    let e = lm::train_student(other, &windows, &targets, &run(2), None, None, false)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("vocabulary"), "{e}");
    // A batch larger than the training set.
    let big = LmRun {
        batch: 99,
        ..run(2)
    };
    assert!(lm::train_student(tiny(), &windows, &targets, &big, None, None, false).is_err());
    // A corpus too small for one window.
    let e = Windows::cut(&[1, 2, 3], LEN, 4, 1)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("too few"), "{e}");
    // T ≤ 0.
    assert!(KdConfig::new(0.0, 0.5, true).is_err());
    // A corrupted or foreign soft-target cache.
    let dir = tempfile::tempdir().unwrap();
    let path = targets.key.path_in(dir.path());
    targets.save(&path).unwrap();
    assert!(SoftTargets::load(&path, &targets.key, &Device::Cpu).is_ok());
    let other_key = CacheKey {
        corpus_sha256: "another corpus".into(),
        ..targets.key.clone()
    };
    let e = SoftTargets::load(&path, &other_key, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("made for"), "{e}");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert!(SoftTargets::load(&path, &targets.key, &Device::Cpu).is_err());
    // A checkpoint cut in half.
    let out = tempfile::tempdir().unwrap();
    lm::train_student(
        tiny(),
        &windows,
        &targets,
        &run(2),
        Some(out.path()),
        None,
        false,
    )
    .unwrap();
    let ckpt = out.path().join("checkpoint.safetensors");
    let bytes = std::fs::read(&ckpt).unwrap();
    std::fs::write(&ckpt, &bytes[..bytes.len() / 3]).unwrap();
    let e = lm::train_student(
        tiny(),
        &windows,
        &targets,
        &run(2),
        Some(out.path()),
        None,
        false,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("checkpoint.safetensors"), "{e}");
}

/// The book's experiment, reduced: SmolLM2 teaches a 7M-parameter student
/// on the corpus; the distilled student must beat the hard-label one on
/// held-out text after the same steps, and the teacher must beat both.
#[test]
fn distillation_beats_hard_labels_on_real_text() {
    let Ok(corpus) = nindub::corpus::path() else {
        eprintln!("NINDUB_CORPUS is not set: the language-model experiment is skipped");
        return;
    };
    let teacher = nindub::assets::smollm2().unwrap();
    let out = tempfile::tempdir().unwrap();
    let cfg = LmExperimentConfig::quick();
    let e = lm::run_experiment(
        &teacher,
        &corpus,
        &cfg,
        &nindub::distill::soft_targets::default_dir(),
        Some(out.path()),
        false,
    )
    .unwrap();
    eprintln!(
        "teacher {:.1}, hard {:.1}, distilled {:.1}",
        e.teacher_held_out_ppl, e.hard.held_out_ppl, e.distilled.held_out_ppl
    );
    assert!(e.distilled.held_out_ppl < e.hard.held_out_ppl);
    assert!(e.teacher_held_out_ppl < e.distilled.held_out_ppl);
    assert_eq!(e.samples.len(), 2);
    assert!(e.samples.iter().all(|s| !s.text.is_empty()));
    // Both students share their initial weights: the first evaluation's
    // difference comes from the loss alone.
    assert_eq!(e.hard.params, e.distilled.params);
}
