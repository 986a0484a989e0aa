//! Distilling a language model: SmolLM2-135M teaches a student of a few
//! million parameters, through the soft targets it cached once
//! ([`crate::distill::soft_targets`]).
//!
//! Two students with the same shape, the same initial weights and the same
//! batches are trained for the same number of steps: one on the hard next
//! tokens only (`α = 0`), one with the distillation loss on the teacher's
//! top-k soft targets. Their held-out perplexity says what the teacher's
//! "dark knowledge" was worth.

use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::distill::loss::{KdConfig, kd_loss_topk_fused};
use crate::distill::soft_targets::{SoftTargets, Windows};
use crate::distill::student::{Student, StudentConfig};
use crate::distill::train::{self, AdamW, AdamWConfig, MetricsLog, TrainState};
use crate::error::{Error, Result, ctx};

/// One training run's settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LmRun {
    pub steps: usize,
    /// Windows per step.
    pub batch: usize,
    pub adamw: AdamWConfig,
    /// Steps of linear warm-up; then the rate decays along a cosine to 10%.
    pub warmup: usize,
    pub seed: u64,
    /// Evaluate (and checkpoint) every this many steps.
    pub eval_every: usize,
    pub kd: KdConfig,
    /// Stop (as if interrupted) after this step's checkpoint; not part of
    /// the run's identity, so a rerun without it resumes and finishes.
    #[serde(skip)]
    pub stop_after: Option<usize>,
}

// ANCHOR: schedule
/// The learning rate at `step` (0-based): linear warm-up to `lr`, then a
/// cosine down to `lr / 10` at the last step.
pub fn learning_rate(run: &LmRun, step: usize) -> f64 {
    let lr = run.adamw.lr;
    if step < run.warmup {
        return lr * (step + 1) as f64 / run.warmup as f64;
    }
    let span = run.steps.saturating_sub(run.warmup).max(1) as f64;
    let progress = ((step - run.warmup) as f64 / span).min(1.0);
    lr * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()))
}
// ANCHOR_END: schedule

/// One evaluation during training.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalPoint {
    pub step: usize,
    /// Mean loss over the steps since the previous evaluation.
    pub train_loss: f64,
    /// Their mean KL to the soft targets at the run's temperature.
    pub train_soft: f64,
    /// Their mean cross-entropy on the hard next tokens.
    pub train_hard: f64,
    pub held_out_ppl: f64,
    pub learning_rate: f64,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LmReport {
    pub kd: KdConfig,
    pub params: usize,
    pub steps: usize,
    pub curve: Vec<EvalPoint>,
    pub held_out_ppl: f64,
    /// Training tokens (positions) per second, evaluations excluded.
    pub tokens_per_sec: f64,
    pub train_seconds: f64,
    pub peak_rss_bytes: Option<u64>,
    /// The step this run resumed from, if it found a checkpoint.
    pub resumed_from: Option<usize>,
}

/// Mean negative log-likelihood of the held-out windows under `student`.
pub fn held_out_nll(student: &Student, windows: &Windows, batch: usize) -> Result<f64> {
    let device = student.params.vars()[0].device().clone();
    let (mut sum, mut count) = (0f64, 0usize);
    for chunk in windows.held_out.chunks(batch.max(1)) {
        let (inputs, targets) = batch_tensors(chunk, windows.len, &device)?;
        let logits = student.forward(&inputs)?.detach();
        let rows = ctx("held-out logits", logits.to_vec2::<f32>())?;
        let targets = ctx("held-out targets", targets.to_vec1::<u32>())?;
        for (row, &t) in rows.iter().zip(&targets) {
            sum += crate::compress::perplexity::nll(row, t as usize);
            count += 1;
        }
    }
    Ok(sum / count.max(1) as f64)
}

/// Inputs `[b, len]` and flattened targets `[b · len]` of some windows.
fn batch_tensors(windows: &[Vec<u32>], len: usize, device: &Device) -> Result<(Tensor, Tensor)> {
    let b = windows.len();
    let inputs: Vec<u32> = windows.iter().flat_map(|w| w[..len].to_vec()).collect();
    let targets: Vec<u32> = windows.iter().flat_map(|w| w[1..=len].to_vec()).collect();
    Ok((
        ctx("batch inputs", Tensor::from_vec(inputs, (b, len), device))?,
        ctx("batch targets", Tensor::from_vec(targets, b * len, device))?,
    ))
}

/// The windows of step `step`: `batch` consecutive entries of the
/// concatenated epoch orders (each epoch a new seeded shuffle).
fn windows_of_step(n: usize, batch: usize, seed: u64, step: usize) -> Vec<usize> {
    let mut order: Option<(usize, Vec<usize>)> = None;
    (step * batch..(step + 1) * batch)
        .map(|i| {
            let (epoch, at) = (i / n, i % n);
            match &order {
                Some((e, o)) if *e == epoch => o[at],
                _ => {
                    let o = train::epoch_order(n, seed, epoch);
                    let w = o[at];
                    order = Some((epoch, o));
                    w
                }
            }
        })
        .collect()
}

// ANCHOR: train
/// Trains one student on `windows` with the teacher's `targets` (ignored
/// when `run.kd.alpha == 0`). With `out_dir`, writes `metrics.jsonl`, a
/// checkpoint at every evaluation (a rerun with the same settings resumes
/// from it) and the final student under `out_dir/student`.
pub fn train_student(
    config: StudentConfig,
    windows: &Windows,
    targets: &SoftTargets,
    run: &LmRun,
    out_dir: Option<&Path>,
    tokenizer: Option<&tokenizers::Tokenizer>,
    progress: bool,
) -> Result<(Student, LmReport)> {
    let device = Device::Cpu;
    if config.vocab_size != targets.key.vocab {
        return Err(Error::invalid(
            "distillation",
            format!(
                "the student's vocabulary has {} tokens, the teacher's {}: \
                 they must be the same tokenizer",
                config.vocab_size, targets.key.vocab
            ),
        ));
    }
    let n = windows.train.len();
    if run.batch == 0 || run.batch > n || run.steps == 0 || run.eval_every == 0 {
        return Err(Error::invalid(
            "training run",
            format!(
                "batch {} of {n} training windows, {} steps, evaluation every {}: \
                 need 1 ≤ batch ≤ windows and positive steps",
                run.batch, run.steps, run.eval_every
            ),
        ));
    }
    if targets.indices.dim(0).ok() != Some(n * windows.len) {
        return Err(Error::invalid(
            "distillation",
            "the soft targets were computed for other windows",
        ));
    }
    let student = Student::new(config, run.seed, &device)?;
    let mut opt = AdamW::new(&student.params, run.adamw)?;
    let identity = LmRun {
        stop_after: None,
        ..run.clone()
    };
    let fingerprint =
        serde_json::to_string(&(&identity, &student.config, &targets.key)).unwrap_or_default();
    let ckpt = out_dir.map(|d| d.join("checkpoint.safetensors"));
    let mut resumed_from = None;
    if let Some(path) = ckpt.as_deref().filter(|p| p.exists()) {
        let state = train::load_checkpoint(path, &student.params, &mut opt)?;
        if state.fingerprint != fingerprint {
            return Err(Error::invalid(
                "resume",
                format!(
                    "{} was written by a run with other settings; remove it or choose \
                     another output directory",
                    path.display()
                ),
            ));
        }
        resumed_from = Some(state.step);
    }
    let mut log = match out_dir {
        Some(d) => Some(MetricsLog::open(&d.join("metrics.jsonl"), resumed_from)?),
        None => None,
    };
    let start_step = resumed_from.unwrap_or(0);
    // A resumed run's curve starts with what the interrupted run logged.
    let mut curve: Vec<EvalPoint> = match (out_dir, resumed_from) {
        (Some(d), Some(_)) => std::fs::read_to_string(d.join("metrics.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect(),
        _ => vec![],
    };
    let bar = crate::progress::progress_bar(run.steps as u64, progress, "student", "steps");
    bar.set_position(start_step as u64);
    let (mut sums, mut since) = ([0f64; 3], 0usize);
    let mut train_seconds = 0f64;
    for step in start_step..run.steps {
        let t0 = Instant::now();
        let picked = windows_of_step(n, run.batch, run.seed, step);
        let chosen: Vec<Vec<u32>> = picked.iter().map(|&i| windows.train[i].clone()).collect();
        let (inputs, labels) = batch_tensors(&chosen, windows.len, &device)?;
        let rows: Vec<u32> = picked
            .iter()
            .flat_map(|&w| (w * windows.len..(w + 1) * windows.len).map(|r| r as u32))
            .collect();
        let rows = ctx("teacher rows", Tensor::new(rows.as_slice(), &device))?;
        let (ti, tv) = (
            ctx("teacher rows", targets.indices.index_select(&rows, 0))?,
            ctx("teacher rows", targets.values.index_select(&rows, 0))?,
        );
        let logits = student.forward(&inputs)?;
        let loss = kd_loss_topk_fused(&logits, &ti, &tv, &labels, &run.kd)?;
        opt.config.lr = learning_rate(run, step);
        let grads = ctx("backward", loss.total.backward())?;
        opt.step(&student.params, &grads)?;
        for (s, t) in sums.iter_mut().zip([&loss.total, &loss.soft, &loss.hard]) {
            *s += ctx("loss", t.to_scalar::<f32>())? as f64;
        }
        since += 1;
        train_seconds += t0.elapsed().as_secs_f64();
        bar.inc(1);
        let done = step + 1;
        if done % run.eval_every == 0 || done == run.steps {
            let ppl = held_out_nll(&student, windows, run.batch)?.exp();
            let point = EvalPoint {
                step: done,
                train_loss: sums[0] / since as f64,
                train_soft: sums[1] / since as f64,
                train_hard: sums[2] / since as f64,
                held_out_ppl: ppl,
                learning_rate: opt.config.lr,
            };
            bar.set_message(format!("ppl {ppl:.1}"));
            if let Some(path) = &ckpt {
                let state = TrainState {
                    epoch: done * run.batch / n,
                    step: done,
                    seed: run.seed,
                    fingerprint: fingerprint.clone(),
                };
                train::save_checkpoint(path, &student.params, &opt, &state)?;
            }
            if let Some(log) = log.as_mut() {
                log.write(&point)?;
            }
            curve.push(point);
            (sums, since) = ([0f64; 3], 0);
            if run.stop_after.is_some_and(|s| done >= s) {
                break;
            }
        }
    }
    bar.finish_and_clear();
    if let Some(dir) = out_dir {
        student.save(&dir.join("student"), tokenizer)?;
    }
    let held_out_ppl = held_out_nll(&student, windows, run.batch)?.exp();
    let trained = run.steps - start_step;
    let report = LmReport {
        kd: run.kd,
        params: student.params.count(),
        steps: run.steps,
        curve,
        held_out_ppl,
        tokens_per_sec: (trained * run.batch * windows.len) as f64 / train_seconds.max(1e-9),
        train_seconds,
        peak_rss_bytes: train::peak_rss_bytes(),
        resumed_from,
    };
    Ok((student, report))
}
// ANCHOR_END: train

/// The whole language-model experiment's settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LmExperimentConfig {
    /// Tokens per window (the students' context).
    pub window: usize,
    /// Teacher logits kept per position.
    pub k: usize,
    pub train_windows: usize,
    pub held_out_windows: usize,
    pub hidden: usize,
    pub layers: usize,
    pub steps: usize,
    pub batch: usize,
    pub lr: f64,
    pub warmup: usize,
    pub seed: u64,
    pub eval_every: usize,
    /// The distilled student's temperature and soft weight.
    pub temperature: f64,
    pub alpha: f64,
}

impl LmExperimentConfig {
    /// The book's experiment (about a quarter of an hour on 2 cores).
    pub fn book() -> Self {
        LmExperimentConfig {
            window: 128,
            k: 32,
            train_windows: 512,
            held_out_windows: 32,
            hidden: 128,
            layers: 4,
            steps: 300,
            batch: 4,
            lr: 2e-3,
            warmup: 20,
            seed: 7,
            eval_every: 25,
            temperature: 1.0,
            alpha: 0.5,
        }
    }

    /// A reduced but real version for CI (a few minutes).
    pub fn quick() -> Self {
        LmExperimentConfig {
            train_windows: 96,
            held_out_windows: 16,
            steps: 40,
            eval_every: 10,
            warmup: 10,
            ..Self::book()
        }
    }

    fn run(&self, kd: KdConfig) -> LmRun {
        LmRun {
            steps: self.steps,
            batch: self.batch,
            adamw: AdamWConfig {
                lr: self.lr,
                weight_decay: 0.01,
                ..Default::default()
            },
            warmup: self.warmup,
            seed: self.seed,
            eval_every: self.eval_every,
            kd,
            stop_after: None,
        }
    }
}

/// A sample generated by a saved student through the Cantrip/Ritual path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    pub model: String,
    pub prompt: String,
    pub text: String,
}

/// What the experiment measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LmExperiment {
    pub config: LmExperimentConfig,
    pub corpus_tokens: usize,
    pub teacher_params: u64,
    pub teacher_held_out_ppl: f64,
    pub teacher_seconds: f64,
    pub teacher_tokens_per_sec: f64,
    pub soft_targets_from_cache: bool,
    pub soft_targets_bytes: u64,
    pub hard: LmReport,
    pub distilled: LmReport,
    pub samples: Vec<Sample>,
}

// ANCHOR: experiment
/// Runs the teacher once (or reads its cached soft targets from
/// `cache_dir`), then trains the hard-label and the distilled student with
/// the same initial weights and batches, and, when `out_dir` is given, saves
/// both and generates a sample from each through [`crate::model::generate`].
pub fn run_experiment(
    teacher_gguf: &Path,
    corpus: &Path,
    cfg: &LmExperimentConfig,
    cache_dir: &Path,
    out_dir: Option<&Path>,
    progress: bool,
) -> Result<LmExperiment> {
    let file = crate::model::gguf::GgufFile::open(teacher_gguf)?;
    let arch = file.architecture()?;
    let tokenizer = crate::model::tokenizer::GgufTokenizer::from_gguf(&file)?;
    let text = crate::corpus::read(corpus)?;
    let tokens = tokenizer.encode(&text)?;
    let windows = Windows::cut(&tokens, cfg.window, cfg.train_windows, cfg.held_out_windows)?;
    let key = crate::distill::soft_targets::CacheKey {
        corpus_sha256: crate::fsx::sha256_file(corpus)?,
        teacher_sha256: crate::fsx::sha256_file(teacher_gguf)?,
        vocab: arch.vocab_size as usize,
        window: cfg.window,
        k: cfg.k,
        train_windows: windows.train.len(),
        held_out_windows: windows.held_out.len(),
    };
    let targets = SoftTargets::cached(
        cache_dir,
        key.clone(),
        || {
            Ok(
                crate::compress::qmodel::load_llama(teacher_gguf, None, &Device::Cpu, &mut |_| {})?
                    .0,
            )
        },
        &windows,
        progress,
    )?;
    let student_cfg = StudentConfig::small(
        arch.vocab_size as usize,
        cfg.hidden,
        cfg.layers,
        cfg.window,
        tokenizer.eos,
    );
    let runs = [
        ("hard", KdConfig::hard()),
        (
            "distilled",
            KdConfig::new(cfg.temperature, cfg.alpha, true)?,
        ),
    ];
    let mut reports = vec![];
    for (name, kd) in runs {
        let dir = out_dir.map(|d| d.join(name));
        let (_, report) = train_student(
            student_cfg.clone(),
            &windows,
            &targets,
            &cfg.run(kd),
            dir.as_deref(),
            Some(&tokenizer.inner),
            progress,
        )?;
        reports.push(report);
    }
    let mut samples = vec![];
    if let Some(dir) = out_dir {
        for name in ["hard", "distilled"] {
            let mut g = crate::model::generate::Generator::load(
                &dir.join(name).join("student"),
                &Device::Cpu,
            )?;
            let prompt = "ROMEO:\n";
            let ids = g.tokenizer.encode(prompt)?;
            let gen_cfg = crate::model::generate::GenerateConfig {
                sampling: crate::model::sample::SamplingConfig {
                    temperature: 0.8,
                    seed: cfg.seed,
                    ..Default::default()
                },
                max_tokens: 48,
                ..Default::default()
            };
            let out = g.generate(&ids, &gen_cfg, |_| true)?;
            samples.push(Sample {
                model: name.into(),
                prompt: prompt.into(),
                text: out.text,
            });
        }
    }
    let (Some(distilled), Some(hard)) = (reports.pop(), reports.pop()) else {
        return Err(Error::invalid("experiment", "a student run is missing"));
    };
    let positions = (windows.train.len() + windows.held_out.len()) * cfg.window;
    Ok(LmExperiment {
        config: cfg.clone(),
        corpus_tokens: tokens.len(),
        teacher_params: arch.param_count(),
        teacher_held_out_ppl: targets.teacher_held_out_nll.exp(),
        teacher_seconds: targets.teacher_seconds,
        teacher_tokens_per_sec: positions as f64 / targets.teacher_seconds.max(1e-9),
        soft_targets_from_cache: targets.from_cache,
        soft_targets_bytes: std::fs::metadata(key.path_in(cache_dir))
            .map(|m| m.len())
            .unwrap_or(0),
        hard,
        distilled,
        samples,
    })
}
// ANCHOR_END: experiment

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays() {
        let run = LmRun {
            steps: 100,
            batch: 1,
            adamw: AdamWConfig {
                lr: 1.0,
                ..Default::default()
            },
            warmup: 10,
            seed: 0,
            eval_every: 10,
            kd: KdConfig::hard(),
            stop_after: None,
        };
        assert!((learning_rate(&run, 0) - 0.1).abs() < 1e-12);
        assert!((learning_rate(&run, 9) - 1.0).abs() < 1e-12);
        assert!((learning_rate(&run, 10) - 1.0).abs() < 1e-12);
        assert!((learning_rate(&run, 100) - 0.1).abs() < 1e-12);
        assert!(learning_rate(&run, 50) < learning_rate(&run, 20));
    }

    #[test]
    fn every_window_once_per_epoch() {
        let mut seen: Vec<usize> = (0..5).flat_map(|s| windows_of_step(10, 2, 3, s)).collect();
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
    }
}
