//! The digits experiment of "The Transfer of Wisdom": Hinton, Vinyals &
//! Dean's (2015) distillation, replayed on scikit-learn's 8×8 handwritten
//! digits (1797 images, 64 pixels valued 0..16).
//!
//! A large, dropout-regularised teacher is trained once on hard labels; its
//! logits on the training inputs (the transfer set is the training set),
//! computed once in eval mode, become the soft targets. A small student is
//! then trained, seed by seed, on the hard labels alone and with the
//! distillation loss ([`nindub::distill::loss::kd_loss`]) at several temperatures,
//! with and without the `T²` factor. [`Experiment::run`] returns the table
//! of test errors (mean and standard deviation over seeds).
//!
//! The pieces:
//!
//! * [`Digits`]: the data, scaled to `[0, 1]`, with a fixed stratified
//!   train/test split ([`split_indices`]);
//! * [`Mlp`]: a multilayer perceptron on [`nindub::distill::train::Params`], ReLU
//!   hidden layers, optional dropout;
//! * [`RunConfig`] and [`train`]: one seeded run, with a metrics log, a
//!   checkpoint after every epoch and exact resumption;
//! * [`Experiment`]: the teacher, then every condition for every seed.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::plot::{LineChart, Svg};
use nindub::distill::loss::{KdConfig, kd_loss};
use nindub::distill::train::{
    self, AdamW, AdamWConfig, MetricsLog, Params, TrainState, epoch_order, load_checkpoint,
    save_checkpoint,
};
use nindub::error::{Error, Result, ctx};

/// Pixels per image (8 × 8).
pub const FEATURES: usize = 64;
/// Classes (the digits 0 to 9).
pub const CLASSES: usize = 10;
/// Rows in scikit-learn's `digits.csv.gz`.
pub const ROWS: usize = 1797;
/// The share of every class held out for the test set.
pub const TEST_FRACTION: f64 = 0.3;
/// The constant seed of the split (2015-03-09, the paper's arXiv date): the
/// split is the same on every machine and in every run.
pub const SPLIT_SEED: u64 = 20150309;

const FORMAT: &str =
    "digits CSV (.csv or .csv.gz; per row 64 pixel values in 0..16, then a label in 0..9)";

// ANCHOR: split
/// The fixed train/test split of rows with these `labels`: stratified, so
/// each class keeps its share. The rows of each class (in file order) are
/// shuffled with a generator seeded by [`SPLIT_SEED`] and the class, and
/// the first `round(0.3 · count)` go to the test set. For scikit-learn's
/// 1797 digits that is 1258 training and 539 test images. Both lists are
/// returned in file order.
pub fn split_indices(labels: &[u32]) -> (Vec<usize>, Vec<usize>) {
    let mut by_class: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, &y) in labels.iter().enumerate() {
        by_class.entry(y).or_default().push(i);
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (class, mut rows) in by_class {
        rows.shuffle(&mut train::rng(SPLIT_SEED, class as u64));
        let n_test = (rows.len() as f64 * TEST_FRACTION).round() as usize;
        test.extend_from_slice(&rows[..n_test]);
        train.extend_from_slice(&rows[n_test..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    (train, test)
}
// ANCHOR_END: split

/// The digits, split and on a device.
#[derive(Debug, Clone)]
pub struct Digits {
    /// Training images `[n_train, 64]`, f32 in `[0, 1]` (pixels / 16).
    pub train_x: Tensor,
    /// Training labels `[n_train]`, u32.
    pub train_y: Tensor,
    /// Test images `[n_test, 64]`.
    pub test_x: Tensor,
    /// Test labels `[n_test]`.
    pub test_y: Tensor,
    /// The training labels, on the host.
    pub train_labels: Vec<u32>,
    /// The test labels, on the host (errors are counted against them).
    pub test_labels: Vec<u32>,
    /// Which rows of the file are training rows (0-based, file order).
    pub train_rows: Vec<usize>,
    /// Which rows of the file are test rows.
    pub test_rows: Vec<usize>,
}

impl Digits {
    /// Loads scikit-learn's digits from the `digits` asset (fetched once
    /// with pip into the cache); all [`ROWS`] rows must be there.
    pub fn load_asset() -> Result<Self> {
        let path = nindub::assets::asset("digits")?
            .ensure()?
            .join("digits.csv.gz");
        let d = Self::load(&path)?;
        let rows = d.n_train() + d.n_test();
        if rows != ROWS {
            return Err(Error::Foreign {
                path,
                expected: FORMAT,
                reason: format!("{rows} rows, scikit-learn's digits have {ROWS}"),
            });
        }
        Ok(d)
    }

    /// Loads a digits CSV, gzip-compressed (recognised by its magic bytes)
    /// or plain: per row 64 pixel values in `0..=16` and a label in `0..=9`,
    /// comma separated, no header. Errors name the file and the line.
    pub fn load(path: &Path) -> Result<Self> {
        let foreign = |reason: String| Error::Foreign {
            path: path.to_path_buf(),
            expected: FORMAT,
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(bytes.as_slice())
                .read_to_end(&mut out)
                .map_err(|e| {
                    foreign(format!(
                        "the gzip stream is damaged or truncated ({e}); \
                         delete the file to fetch it again"
                    ))
                })?;
            out
        } else {
            bytes
        };
        let text = String::from_utf8(bytes).map_err(|e| {
            foreign(format!(
                "not text (invalid UTF-8 at byte {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
        let mut pixels: Vec<f32> = Vec::new();
        let mut labels: Vec<u32> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let n = i + 1;
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            if fields.len() != FEATURES + 1 {
                return Err(foreign(format!(
                    "line {n} has {} columns, expected {} (64 pixels and a label)",
                    fields.len(),
                    FEATURES + 1
                )));
            }
            for (j, f) in fields[..FEATURES].iter().enumerate() {
                let v: f32 = f
                    .parse()
                    .ok()
                    .filter(|v: &f32| (0.0..=16.0).contains(v))
                    .ok_or_else(|| {
                        foreign(format!(
                            "line {n}, column {}: pixel `{f}` is not a number in 0..16",
                            j + 1
                        ))
                    })?;
                pixels.push(v / 16.0);
            }
            let raw = fields[FEATURES];
            let label = raw
                .parse::<f64>()
                .ok()
                .filter(|v| v.fract() == 0.0 && (0.0..CLASSES as f64).contains(v))
                .ok_or_else(|| {
                    foreign(format!("line {n}: label `{raw}` is not a digit in 0..9"))
                })?;
            labels.push(label as u32);
        }
        if labels.is_empty() {
            return Err(foreign("no rows".into()));
        }
        let (train_rows, test_rows) = split_indices(&labels);
        if train_rows.is_empty() || test_rows.is_empty() {
            return Err(foreign(format!(
                "{} rows are too few to split into training and test sets",
                labels.len()
            )));
        }
        let device = Device::Cpu;
        let take = |rows: &[usize]| -> Result<(Tensor, Tensor, Vec<u32>)> {
            let mut x = Vec::with_capacity(rows.len() * FEATURES);
            for &r in rows {
                x.extend_from_slice(&pixels[r * FEATURES..(r + 1) * FEATURES]);
            }
            let y: Vec<u32> = rows.iter().map(|&r| labels[r]).collect();
            let op = "digits tensors";
            Ok((
                ctx(op, Tensor::from_vec(x, (rows.len(), FEATURES), &device))?,
                ctx(op, Tensor::new(y.as_slice(), &device))?,
                y,
            ))
        };
        let (train_x, train_y, train_labels) = take(&train_rows)?;
        let (test_x, test_y, test_labels) = take(&test_rows)?;
        Ok(Digits {
            train_x,
            train_y,
            test_x,
            test_y,
            train_labels,
            test_labels,
            train_rows,
            test_rows,
        })
    }

    /// The same data on another device.
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        let op = "moving the digits";
        Ok(Digits {
            train_x: ctx(op, self.train_x.to_device(device))?,
            train_y: ctx(op, self.train_y.to_device(device))?,
            test_x: ctx(op, self.test_x.to_device(device))?,
            test_y: ctx(op, self.test_y.to_device(device))?,
            ..self.clone()
        })
    }

    pub fn n_train(&self) -> usize {
        self.train_labels.len()
    }

    pub fn n_test(&self) -> usize {
        self.test_labels.len()
    }
}

// ANCHOR: mlp
/// A multilayer perceptron `64 → hidden… → 10` with ReLU between layers.
///
/// Weights are `[out, in]` and, like the biases, drawn uniformly from
/// `±sqrt(1 / in)`: PyTorch's default for `nn.Linear` (its Kaiming-uniform
/// with `a = √5` reduces to that bound). Dropout, when set, drops inputs
/// with probability `input_dropout` and every hidden activation with
/// `hidden_dropout`, during training only.
pub struct Mlp {
    params: Params,
    sizes: Vec<usize>,
    input_dropout: f32,
    hidden_dropout: f32,
}

impl Mlp {
    /// A freshly initialised network; the weights come from
    /// `train::rng(seed, 0)`.
    pub fn new(
        hidden: &[usize],
        input_dropout: f32,
        hidden_dropout: f32,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        if hidden.contains(&0) {
            return Err(Error::invalid(
                "MLP sizes",
                format!("hidden layers must have at least one unit, got {hidden:?}"),
            ));
        }
        for (what, p) in [("input", input_dropout), ("hidden", hidden_dropout)] {
            if !(0.0..1.0).contains(&p) {
                return Err(Error::invalid(
                    "dropout",
                    format!("{what} dropout must be in [0, 1), got {p}"),
                ));
            }
        }
        let mut sizes = vec![FEATURES];
        sizes.extend_from_slice(hidden);
        sizes.push(CLASSES);
        let mut rng = train::rng(seed, 0);
        let mut params = Params::new();
        for (i, w) in sizes.windows(2).enumerate() {
            let (fan_in, fan_out) = (w[0], w[1]);
            let bound = (1.0 / fan_in as f32).sqrt();
            params.uniform(
                &mut rng,
                &format!("layer{i}.weight"),
                (fan_out, fan_in),
                bound,
                device,
            )?;
            params.uniform(&mut rng, &format!("layer{i}.bias"), fan_out, bound, device)?;
        }
        Ok(Mlp {
            params,
            sizes,
            input_dropout,
            hidden_dropout,
        })
    }

    /// Logits `[n, 10]` of images `[n, 64]`. With `dropout` (a generator
    /// for the masks) the network is in training mode; without, in eval
    /// mode (no dropout).
    pub fn forward(&self, x: &Tensor, mut dropout: Option<&mut StdRng>) -> Result<Tensor> {
        let op = "MLP forward";
        let (_, features) = ctx(op, x.dims2())?;
        if features != FEATURES {
            return Err(Error::invalid(
                "MLP input",
                format!("expected [n, {FEATURES}] images, got {:?}", x.dims()),
            ));
        }
        let device = x.device();
        let drop = |h: Tensor, p: f32, rng: &mut Option<&mut StdRng>| -> Result<Tensor> {
            match rng {
                Some(r) if p > 0.0 => {
                    let mask = train::dropout_mask(r, h.dims(), p, device)?;
                    ctx(op, h * mask)
                }
                _ => Ok(h),
            }
        };
        let mut h = drop(x.clone(), self.input_dropout, &mut dropout)?;
        let vars = self.params.vars();
        let layers = self.sizes.len() - 1;
        for i in 0..layers {
            let (w, b) = (vars[2 * i].as_tensor(), vars[2 * i + 1].as_tensor());
            h = ctx(op, w.t().and_then(|wt| h.matmul(&wt)?.broadcast_add(b)))?;
            if i + 1 < layers {
                h = drop(ctx(op, h.relu())?, self.hidden_dropout, &mut dropout)?;
            }
        }
        Ok(h)
    }
    // ANCHOR_END: mlp

    /// Eval-mode logits (no dropout).
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        self.forward(x, None)
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Layer widths, input and output included (`[64, 32, 10]`).
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// Test errors: how many rows of `x` the network misclassifies.
    pub fn errors(&self, x: &Tensor, labels: &[u32]) -> Result<usize> {
        count_errors(&self.logits(x)?, labels)
    }
}

fn count_errors(logits: &Tensor, labels: &[u32]) -> Result<usize> {
    let pred = ctx(
        "counting errors",
        logits.argmax(1).and_then(|p| p.to_vec1::<u32>()),
    )?;
    Ok(pred.iter().zip(labels).filter(|(p, y)| p != y).count())
}

/// The teacher's logits on the training inputs (the transfer set), in eval
/// mode: `[n_train, 10]`, computed once and reused by every student.
pub fn teacher_logits(teacher: &Mlp, data: &Digits) -> Result<Tensor> {
    teacher.logits(&data.train_x)
}

/// The distillation settings of a run (the serializable twin of
/// [`KdConfig`]).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct DistillSettings {
    pub temperature: f64,
    pub alpha: f64,
    pub t_squared: bool,
}

impl DistillSettings {
    /// The validated loss configuration.
    pub fn kd_config(&self) -> Result<KdConfig> {
        KdConfig::new(self.temperature, self.alpha, self.t_squared)
    }
}

// ANCHOR: run_config
/// One training run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunConfig {
    /// Hidden layer widths (`[1200, 1200]` for the teacher).
    pub hidden: Vec<usize>,
    /// Dropout probability on the inputs (training only).
    pub input_dropout: f32,
    /// Dropout probability on hidden activations (training only).
    pub hidden_dropout: f32,
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: AdamWConfig,
    /// Seeds the weights, the epoch orders and the dropout masks.
    pub seed: u64,
    /// `None`: hard labels only. `Some`: the distillation loss, which needs
    /// the teacher's logits.
    pub distill: Option<DistillSettings>,
    /// How the learning rate moves over the run.
    #[serde(default)]
    pub schedule: LrSchedule,
    /// Stop after this epoch, as if interrupted (the checkpoint is written);
    /// a later call with the same settings and directory resumes. `None`:
    /// run to the end. The one setting a resumed run may change.
    #[serde(default)]
    pub stop_after: Option<usize>,
}
// ANCHOR_END: run_config

/// The learning rate over a run of `S` optimiser steps.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum LrSchedule {
    /// The optimiser's `lr` throughout.
    #[default]
    Constant,
    /// `lr · (1 + cos(π s / S)) / 2` at step `s`: from `lr` down to nearly 0,
    /// so the last epochs settle rather than jitter.
    Cosine,
}

impl LrSchedule {
    /// The learning rate of step `step` (0-based) out of `total`.
    pub fn lr(&self, base: f64, step: usize, total: usize) -> f64 {
        match self {
            LrSchedule::Constant => base,
            LrSchedule::Cosine => {
                let x = step as f64 / total.max(1) as f64;
                base * 0.5 * (1.0 + (std::f64::consts::PI * x).cos())
            }
        }
    }
}

impl RunConfig {
    /// The teacher: 64 → 1200 → 1200 → 10 (1.53 M parameters), dropout 0.2
    /// on the inputs and 0.5 on hidden units (the paper's MNIST teacher on
    /// 8×8 inputs); 60 epochs of AdamW at 1e-3 with a cosine schedule. It
    /// makes about 9 test errors of 539 (30 epochs: 14).
    pub fn teacher() -> Self {
        RunConfig {
            hidden: vec![1200, 1200],
            input_dropout: 0.2,
            hidden_dropout: 0.5,
            epochs: 60,
            batch_size: 64,
            optimizer: AdamWConfig {
                lr: 1e-3,
                ..Default::default()
            },
            seed: 0,
            distill: None,
            schedule: LrSchedule::Cosine,
            stop_after: None,
        }
    }

    /// The student: 64 → 64 → 10 (4,810 parameters, 318 times fewer than
    /// the teacher), no dropout; 200 epochs of AdamW at 3e-3, cosine. On
    /// hard labels it makes about 22 test errors, whatever its width from
    /// 16 to 64 units (it fits the training set and stops learning); the
    /// 64-unit student is the one with room to take in the teacher's soft
    /// targets.
    pub fn student() -> Self {
        RunConfig {
            hidden: vec![64],
            input_dropout: 0.0,
            hidden_dropout: 0.0,
            epochs: 200,
            batch_size: 32,
            optimizer: AdamWConfig {
                lr: 3e-3,
                ..Default::default()
            },
            seed: 1,
            distill: None,
            schedule: LrSchedule::Cosine,
            stop_after: None,
        }
    }

    fn validate(&self, n_train: usize) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::invalid("run config", "epochs must be at least 1"));
        }
        if self.batch_size == 0 || self.batch_size > n_train {
            return Err(Error::invalid(
                "run config",
                format!(
                    "batch size must be in 1..={n_train} (the training set), got {}",
                    self.batch_size
                ),
            ));
        }
        let o = &self.optimizer;
        if !(o.lr.is_finite() && o.lr > 0.0) {
            return Err(Error::invalid(
                "run config",
                format!("learning rate must be finite and > 0, got {}", o.lr),
            ));
        }
        Ok(())
    }

    /// What a checkpoint must match to be resumed: every setting but
    /// `stop_after`, and the teacher.
    fn fingerprint(&self, teacher: Option<&[Vec<f32>]>) -> String {
        let cfg = RunConfig {
            stop_after: None,
            ..self.clone()
        };
        let mut s = serde_json::to_string(&cfg).unwrap_or_default();
        if let Some(rows) = teacher {
            // FNV-1a over the teacher's logits: another teacher, another run.
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for v in rows.iter().flatten() {
                for b in v.to_bits().to_le_bytes() {
                    h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
                }
            }
            s.push_str(&format!(" teacher={h:016x}"));
        }
        s
    }
}

/// One epoch's record: a line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochRecord {
    /// Optimiser steps so far.
    pub step: usize,
    /// Epochs completed (1-based).
    pub epoch: usize,
    /// The training objective, averaged over the epoch's examples.
    pub train_loss: f64,
    /// Its hard-label cross-entropy part.
    pub train_hard_loss: f64,
    /// Cross-entropy on the test set (eval mode).
    pub test_loss: f64,
    /// Misclassified test images.
    pub test_errors: usize,
    pub test_accuracy: f64,
    /// Seconds since this process started the run.
    pub elapsed_s: f64,
}

/// What a run reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub config: RunConfig,
    /// Misclassified test images at the end.
    pub test_errors: usize,
    pub n_test: usize,
    pub test_accuracy: f64,
    /// One record per epoch (those before a resume read back from the log).
    pub curve: Vec<EpochRecord>,
    /// Training examples per second (forward, backward and update; this
    /// process's epochs only).
    pub examples_per_s: f64,
    /// Wall time of this call, seconds.
    pub wall_s: f64,
    /// The process's peak resident memory, where the OS reports it.
    pub peak_rss_bytes: Option<u64>,
    pub param_count: usize,
    /// The epoch a checkpoint resumed from, if one did.
    pub resumed_from_epoch: Option<usize>,
}

/// The checkpoint's file name inside a run's directory.
pub const CHECKPOINT: &str = "checkpoint.safetensors";
/// The metrics log's file name inside a run's directory.
pub const METRICS: &str = "metrics.jsonl";

/// Trains a network as `cfg` says and reports on it; see [`train_model`].
pub fn train(
    data: &Digits,
    cfg: &RunConfig,
    teacher: Option<&Tensor>,
    out_dir: Option<&Path>,
    progress: bool,
) -> Result<RunReport> {
    train_model(data, cfg, teacher, out_dir, progress).map(|(_, r)| r)
}

// ANCHOR: train
/// Trains a network and returns it with its report.
///
/// Mini-batches follow [`epoch_order`]; the loss is the cross-entropy of
/// the hard labels, or [`kd_loss`] against `teacher` (its logits on the
/// training set, `[n_train, 10]`, row `i` for training image `i`). After
/// each epoch the test set is evaluated and, with `out_dir`, a line is
/// appended to `metrics.jsonl` and `checkpoint.safetensors` is written
/// (atomically). A checkpoint found there is resumed: the run continues
/// from it and ends with the same weights, bit for bit, as a run never
/// interrupted (the dropout masks of epoch `e` come from
/// `train::rng(seed, 2_000_000 + e)`, so nothing else needs saving).
pub fn train_model(
    data: &Digits,
    cfg: &RunConfig,
    teacher: Option<&Tensor>,
    out_dir: Option<&Path>,
    progress: bool,
) -> Result<(Mlp, RunReport)> {
    let start = Instant::now();
    let n = data.n_train();
    cfg.validate(n)?;
    let kd = cfg.distill.map(|d| d.kd_config()).transpose()?;
    let device = data.train_x.device().clone();
    let teacher = match (kd.is_some(), teacher) {
        (true, None) => {
            return Err(Error::invalid(
                "teacher logits",
                "the config asks for distillation but no teacher logits were given",
            ));
        }
        (false, Some(_)) => {
            return Err(Error::invalid(
                "teacher logits",
                "teacher logits were given but the config has no distillation settings",
            ));
        }
        (_, None) => None,
        (_, Some(t)) => {
            let dims = t.dims();
            if dims.len() != 2 || dims[0] != n || dims[1] != CLASSES {
                return Err(Error::invalid(
                    "teacher logits",
                    format!(
                        "expected [{n}, {CLASSES}] (one row per training image, one column \
                         per class), got {dims:?}"
                    ),
                ));
            }
            Some(ctx(
                "teacher logits",
                t.to_dtype(DType::F32).and_then(|t| t.to_device(&device)),
            )?)
        }
    };
    let teacher_rows = match &teacher {
        Some(t) => Some(ctx("teacher logits", t.to_vec2::<f32>())?),
        None => None,
    };
    let fingerprint = cfg.fingerprint(teacher_rows.as_deref());

    let model = Mlp::new(
        &cfg.hidden,
        cfg.input_dropout,
        cfg.hidden_dropout,
        cfg.seed,
        &device,
    )?;
    let mut opt = AdamW::new(model.params(), cfg.optimizer)?;
    let ckpt = out_dir.map(|d| d.join(CHECKPOINT));
    let mut start_epoch = 0;
    let mut curve = Vec::new();
    let mut resumed = None;
    if let Some(path) = ckpt.as_ref().filter(|p| p.exists()) {
        let state = load_checkpoint(path, model.params(), &mut opt)?;
        if state.fingerprint != fingerprint || state.seed != cfg.seed {
            return Err(Error::invalid(
                "resume",
                format!(
                    "{} was written by a run with other settings or another teacher \
                     (saved: {}; now: {}); use another directory or delete it",
                    path.display(),
                    state.fingerprint,
                    fingerprint
                ),
            ));
        }
        if state.epoch > cfg.epochs {
            return Err(Error::invalid(
                "resume",
                format!(
                    "{} is at epoch {}, past the {} epochs asked for",
                    path.display(),
                    state.epoch,
                    cfg.epochs
                ),
            ));
        }
        start_epoch = state.epoch;
        resumed = Some(state.epoch);
        curve = read_curve(&out_dir.unwrap_or(Path::new(".")).join(METRICS), state.step);
    }
    let mut log = match out_dir {
        Some(d) => Some(MetricsLog::open(
            &d.join(METRICS),
            resumed.map(|_| opt.step),
        )?),
        None => None,
    };

    let batches = n.div_ceil(cfg.batch_size);
    let total_steps = cfg.epochs * batches;
    let end_epoch = cfg.stop_after.map_or(cfg.epochs, |s| s.min(cfg.epochs));
    let bar = nindub::progress::progress_bar(
        (end_epoch.saturating_sub(start_epoch) * batches) as u64,
        progress,
        "",
        "batches",
    );
    let n_test = data.n_test();
    let mut train_time = 0.0;
    let mut examples = 0usize;
    for epoch in start_epoch..end_epoch {
        bar.set_message(format!("epoch {}/{}", epoch + 1, cfg.epochs));
        let t0 = Instant::now();
        let order = epoch_order(n, cfg.seed, epoch);
        let mut drop_rng = train::rng(cfg.seed, 2_000_000 + epoch as u64);
        let (mut sum_loss, mut sum_hard) = (0.0, 0.0);
        for chunk in order.chunks(cfg.batch_size) {
            let op = "training step";
            let idx: Vec<u32> = chunk.iter().map(|&i| i as u32).collect();
            let idx = ctx(op, Tensor::from_vec(idx, chunk.len(), &device))?;
            let xb = ctx(op, data.train_x.index_select(&idx, 0))?;
            let yb = ctx(op, data.train_y.index_select(&idx, 0))?;
            let logits = model.forward(&xb, Some(&mut drop_rng))?;
            let (total, hard) = match (&kd, &teacher) {
                (Some(kd), Some(t)) => {
                    let tb = ctx(op, t.index_select(&idx, 0))?;
                    let l = kd_loss(&logits, &tb, &yb, kd)?;
                    (l.total, l.hard)
                }
                _ => {
                    let l = ctx(op, candle_nn::loss::cross_entropy(&logits, &yb))?;
                    (l.clone(), l)
                }
            };
            let grads = ctx(op, total.backward())?;
            opt.config.lr = cfg.schedule.lr(cfg.optimizer.lr, opt.step, total_steps);
            opt.step(model.params(), &grads)?;
            let k = chunk.len() as f64;
            sum_loss += k * ctx(op, total.to_scalar::<f32>())? as f64;
            sum_hard += k * ctx(op, hard.to_scalar::<f32>())? as f64;
            bar.inc(1);
        }
        train_time += t0.elapsed().as_secs_f64();
        examples += n;
        let test_logits = model.logits(&data.test_x)?;
        let test_errors = count_errors(&test_logits, &data.test_labels)?;
        let test_loss = ctx(
            "test loss",
            candle_nn::loss::cross_entropy(&test_logits, &data.test_y)
                .and_then(|l| l.to_scalar::<f32>()),
        )? as f64;
        let record = EpochRecord {
            step: opt.step,
            epoch: epoch + 1,
            train_loss: sum_loss / n as f64,
            train_hard_loss: sum_hard / n as f64,
            test_loss,
            test_errors,
            test_accuracy: 1.0 - test_errors as f64 / n_test as f64,
            elapsed_s: start.elapsed().as_secs_f64(),
        };
        if let Some(log) = log.as_mut() {
            log.write(&record)?;
        }
        if let Some(path) = &ckpt {
            let state = TrainState {
                epoch: epoch + 1,
                step: opt.step,
                seed: cfg.seed,
                fingerprint: fingerprint.clone(),
            };
            save_checkpoint(path, model.params(), &opt, &state)?;
        }
        bar.set_message(format!(
            "epoch {}/{} test errors {test_errors}/{n_test}",
            epoch + 1,
            cfg.epochs
        ));
        curve.push(record);
    }
    bar.finish_and_clear();
    let test_errors = model.errors(&data.test_x, &data.test_labels)?;
    let report = RunReport {
        config: cfg.clone(),
        test_errors,
        n_test,
        test_accuracy: 1.0 - test_errors as f64 / n_test as f64,
        curve,
        examples_per_s: if train_time > 0.0 {
            examples as f64 / train_time
        } else {
            0.0
        },
        wall_s: start.elapsed().as_secs_f64(),
        peak_rss_bytes: train::peak_rss_bytes(),
        param_count: model.params().count(),
        resumed_from_epoch: resumed,
    };
    Ok((model, report))
}
// ANCHOR_END: train

/// The records of a metrics log up to `step` (a missing or damaged log
/// gives what it can: the curve is a report, not state).
fn read_curve(path: &Path, step: usize) -> Vec<EpochRecord> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<EpochRecord>(l).ok())
        .filter(|r| r.step <= step)
        .collect()
}

// ANCHOR: experiment
/// The whole experiment: one teacher, then for every seed the student on
/// hard labels and distilled at every temperature, with and without `T²`.
///
/// One teacher is shared by all seeds: the comparison between conditions
/// is then paired (the same soft targets, and for a given seed the same
/// initial weights and batch order in every condition), so the spread over
/// seeds is the student's alone; and the teacher is the expensive part
/// (1.5 M parameters against the student's 4.8 k).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Experiment {
    pub teacher: RunConfig,
    /// The student's settings; `seed` and `distill` are set per run.
    pub student: RunConfig,
    pub seeds: Vec<u64>,
    pub temperatures: Vec<f64>,
    /// The weight of the soft term (the hard term gets `1 − α`).
    pub alpha: f64,
}
// ANCHOR_END: experiment

impl Experiment {
    /// The full experiment: 5 seeds, T ∈ {1, 2, 4, 8, 20}, α = 0.5 (an
    /// equal mix: with α = 0.9 and AdamW the soft term without T² still
    /// wins once the hard labels are fitted, since Adam rescales its small
    /// gradient, and the T² ablation says little). 55 student runs after
    /// the teacher. Measured: teacher 9 test errors; hard labels 23.4 ± 1.5;
    /// best distilled 10.8 (T = 8 with T², T = 4 without); at T = 20,
    /// 12.8 with T² against 17.0 without.
    pub fn full() -> Self {
        Experiment {
            teacher: RunConfig::teacher(),
            student: RunConfig::student(),
            seeds: vec![1, 2, 3, 4, 5],
            temperatures: vec![1.0, 2.0, 4.0, 8.0, 20.0],
            alpha: 0.5,
        }
    }

    /// A small version for CI (well under a minute on two cores): a
    /// 64 → 512 → 512 → 10 teacher (same dropout) for 30 epochs at 2e-3
    /// (14 test errors), students for 60 epochs, three seeds, T ∈ {4, 20}.
    pub fn quick() -> Self {
        let full = Self::full();
        Experiment {
            teacher: RunConfig {
                hidden: vec![512, 512],
                epochs: 30,
                optimizer: AdamWConfig {
                    lr: 2e-3,
                    ..full.teacher.optimizer
                },
                ..full.teacher
            },
            student: RunConfig {
                epochs: 60,
                ..full.student
            },
            seeds: vec![1, 2, 3],
            temperatures: vec![4.0, 20.0],
            alpha: full.alpha,
        }
    }

    /// The conditions, in table order: hard labels, then each temperature
    /// with `T²` and without.
    pub fn conditions(&self) -> Vec<Condition> {
        let mut c = vec![Condition {
            key: "hard".into(),
            label: "hard labels".into(),
            distill: None,
        }];
        for &t in &self.temperatures {
            for t_squared in [true, false] {
                c.push(Condition {
                    key: format!("t{t}-{}", if t_squared { "t2" } else { "no-t2" }),
                    label: format!("T={t} {}", if t_squared { "with T²" } else { "without T²" }),
                    distill: Some(DistillSettings {
                        temperature: t,
                        alpha: self.alpha,
                        t_squared,
                    }),
                });
            }
        }
        c
    }

    /// Runs the teacher, then every condition for every seed. With
    /// `out_dir`, each run keeps its metrics and checkpoint in
    /// `out_dir/teacher` and `out_dir/<condition>/seed-<s>`, so an
    /// interrupted experiment resumes where it stopped.
    pub fn run(
        &self,
        data: &Digits,
        out_dir: Option<&Path>,
        progress: bool,
    ) -> Result<ExperimentTable> {
        let start = Instant::now();
        if self.seeds.is_empty() {
            return Err(Error::invalid("experiment", "at least one seed is needed"));
        }
        let conditions = self.conditions();
        let total = 1 + conditions.len() * self.seeds.len();
        let bar = nindub::progress::progress_bar(total as u64, progress, "", "runs");
        bar.set_message("teacher");
        let sub = |parts: &[&str]| -> Option<PathBuf> {
            out_dir.map(|d| parts.iter().fold(d.to_path_buf(), |p, s| p.join(s)))
        };
        let (teacher_model, teacher_run) = train_model(
            data,
            &self.teacher,
            None,
            sub(&["teacher"]).as_deref(),
            false,
        )?;
        let logits = teacher_logits(&teacher_model, data)?;
        let teacher_train_errors = count_errors(&logits, &data.train_labels)?;
        drop(teacher_model);
        bar.inc(1);
        let mut rows = Vec::new();
        let mut student_params = 0;
        for c in &conditions {
            let mut errors = Vec::new();
            let (mut wall, mut eps) = (0.0, 0.0);
            for &seed in &self.seeds {
                bar.set_message(format!("{} seed {seed}", c.label));
                let cfg = RunConfig {
                    seed,
                    distill: c.distill,
                    ..self.student.clone()
                };
                let dir = sub(&[&c.key, &format!("seed-{seed}")]);
                let r = train(
                    data,
                    &cfg,
                    c.distill.is_some().then_some(&logits),
                    dir.as_deref(),
                    false,
                )?;
                errors.push(r.test_errors);
                wall += r.wall_s;
                eps += r.examples_per_s;
                student_params = r.param_count;
                bar.inc(1);
            }
            let k = self.seeds.len() as f64;
            let (mean, std) = mean_std(&errors);
            rows.push(ConditionRow {
                key: c.key.clone(),
                label: c.label.clone(),
                temperature: c.distill.map(|d| d.temperature),
                t_squared: c.distill.map(|d| d.t_squared),
                errors,
                mean_errors: mean,
                std_errors: std,
                mean_wall_s: wall / k,
                examples_per_s: eps / k,
            });
        }
        bar.finish_and_clear();
        let hard = rows[0].mean_errors;
        let best = rows[1..]
            .iter()
            .min_by(|a, b| a.mean_errors.total_cmp(&b.mean_errors))
            .map(|r| (r.key.clone(), r.mean_errors));
        let teacher_errors = teacher_run.test_errors as f64;
        let gap_recovered = best.as_ref().and_then(|(_, b)| {
            (hard > teacher_errors).then(|| (hard - b) / (hard - teacher_errors))
        });
        Ok(ExperimentTable {
            experiment: self.clone(),
            n_train: data.n_train(),
            n_test: data.n_test(),
            teacher: TeacherSummary {
                test_errors: teacher_run.test_errors,
                train_errors: teacher_train_errors,
                param_count: teacher_run.param_count,
                wall_s: teacher_run.wall_s,
                examples_per_s: teacher_run.examples_per_s,
            },
            student_params,
            rows,
            best: best.map(|(k, _)| k),
            gap_recovered,
            wall_s: start.elapsed().as_secs_f64(),
            peak_rss_bytes: train::peak_rss_bytes(),
        })
    }
}

/// One condition of the experiment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Condition {
    /// Directory-safe name (`hard`, `t4-t2`, `t4-no-t2`).
    pub key: String,
    /// Readable name (`T=4 with T²`).
    pub label: String,
    pub distill: Option<DistillSettings>,
}

/// The mean and the sample standard deviation (`n − 1`; 0 for one value).
fn mean_std(v: &[usize]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = v.iter().sum::<usize>() as f64 / n;
    if v.len() < 2 {
        return (mean, 0.0);
    }
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// The teacher's line of the table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TeacherSummary {
    pub test_errors: usize,
    /// Errors on the transfer set (its logits' argmax against the labels).
    pub train_errors: usize,
    pub param_count: usize,
    pub wall_s: f64,
    pub examples_per_s: f64,
}

/// One condition's results over the seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConditionRow {
    pub key: String,
    pub label: String,
    pub temperature: Option<f64>,
    pub t_squared: Option<bool>,
    /// Test errors per seed, in the order of the experiment's seeds.
    pub errors: Vec<usize>,
    pub mean_errors: f64,
    /// Sample standard deviation over seeds.
    pub std_errors: f64,
    /// Mean wall time of one run, seconds.
    pub mean_wall_s: f64,
    pub examples_per_s: f64,
}

/// The experiment's results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExperimentTable {
    pub experiment: Experiment,
    pub n_train: usize,
    pub n_test: usize,
    pub teacher: TeacherSummary,
    pub student_params: usize,
    /// `hard` first, then each temperature with and without `T²`.
    pub rows: Vec<ConditionRow>,
    /// The distilled condition with the fewest mean test errors.
    pub best: Option<String>,
    /// `(hard − best) / (hard − teacher)`: the share of the gap between the
    /// hard-label student and the teacher that distillation closes
    /// (`None` when the teacher is not better than the student).
    pub gap_recovered: Option<f64>,
    /// Wall time of the whole experiment, seconds.
    pub wall_s: f64,
    pub peak_rss_bytes: Option<u64>,
}

impl ExperimentTable {
    /// A condition's row by key (`hard`, `t4-t2`, …).
    pub fn row(&self, key: &str) -> Option<&ConditionRow> {
        self.rows.iter().find(|r| r.key == key)
    }

    /// The table in Markdown.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "| condition | test errors (of {}), mean ± std | per seed |\n|---|---|---|\n",
            self.n_test
        );
        s.push_str(&format!(
            "| teacher ({} params) | {} | |\n",
            self.teacher.param_count, self.teacher.test_errors
        ));
        for r in &self.rows {
            let per: Vec<String> = r.errors.iter().map(|e| e.to_string()).collect();
            s.push_str(&format!(
                "| {} | {:.1} ± {:.1} | {} |\n",
                r.label,
                r.mean_errors,
                r.std_errors,
                per.join(", ")
            ));
        }
        s
    }

    /// Mean test errors against temperature, with and without `T²`; the
    /// hard-label student drawn across.
    pub fn chart(&self) -> Result<Svg> {
        let series = |t2: bool| -> Vec<(f64, f64)> {
            self.rows
                .iter()
                .filter(|r| r.t_squared == Some(t2))
                .filter_map(|r| r.temperature.map(|t| (t, r.mean_errors)))
                .collect()
        };
        let teacher = self.teacher.test_errors as f64;
        let temps: Vec<f64> = series(true).iter().map(|p| p.0).collect();
        LineChart {
            title: format!(
                "digits: student test errors (of {}), mean of {} seeds",
                self.n_test,
                self.experiment.seeds.len()
            ),
            x_desc: "temperature T (log scale)".into(),
            y_desc: "test errors".into(),
            series: vec![
                ("distilled, with T²".into(), series(true)),
                ("distilled, without T²".into(), series(false)),
                (
                    "teacher".into(),
                    temps.iter().map(|&t| (t, teacher)).collect(),
                ),
            ],
            reference: self
                .row("hard")
                .map(|r| ("hard labels".to_string(), r.mean_errors)),
            log_x: true,
            log_y: false,
        }
        .draw()
    }
}
